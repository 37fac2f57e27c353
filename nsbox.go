package nsbox

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/network"
	"github.com/nsbox/nsbox/internal/process"
	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/state"
	"github.com/nsbox/nsbox/internal/userns"
)

// Runtime starts boxes and records them in a state directory.
type Runtime struct {
	store *state.Store
	// Warnings receives problems that do not stop a box's lifecycle, such
	// as a failed poststop hook (default: standard error).
	Warnings io.Writer
}

// New opens the state directory root ("" for the default: /run/nsbox for
// root, $XDG_RUNTIME_DIR/nsbox otherwise).
func New(root string) (*Runtime, error) {
	if root == "" {
		root = state.DefaultRoot()
	}
	st, err := state.Open(root)
	if err != nil {
		return nil, err
	}
	return &Runtime{store: st, Warnings: os.Stderr}, nil
}

// Root is the runtime's state directory.
func (rt *Runtime) Root() string { return rt.store.Root }

// Options are the choices about a box that are not part of its spec.
type Options struct {
	// Init runs a small init as PID 1 that reaps zombies and forwards
	// signals to the command (needs a new pid namespace).
	Init bool
	// AutoIDs fills in the id maps of a new user namespace that has none:
	// the caller's own ids (and subordinate ranges) when unprivileged, an
	// unused range of 65536 ids for root.
	AutoIDs bool
	// IDMapBinds id-maps writable directory binds so that what the box's
	// root writes there belongs to the directory's owner on the host.
	IDMapBinds bool
	// DieWithParent kills the box when the calling process dies.
	DieWithParent bool
	// Ephemeral boxes are removed from the state directory by Wait.
	Ephemeral bool
	// PreserveFDs passes descriptors 3 .. 3+PreserveFDs-1 to the command.
	PreserveFDs int
	// CwdFallback uses "/" when the working directory does not exist in the
	// box, instead of failing.
	CwdFallback bool
	// WinSize is the initial size of the box's terminal, if it has one.
	WinSize unix.Winsize
	// Stdin, Stdout and Stderr become the command's standard streams; nil
	// keeps the caller's.
	Stdin, Stdout, Stderr *os.File `json:"-"`
	// Bundle is the OCI bundle directory, recorded in the state.
	Bundle string
	// Cgroup says when the box gets a cgroup of its own: the spec's
	// linux.cgroupsPath, or /nsbox/ID. (Without root: never, for now.)
	Cgroup CgroupMode
	// ConsoleSocket is the path of a unix socket that receives the master
	// of the box's terminal (SCM_RIGHTS), as with runc --console-socket;
	// otherwise Box.Console holds it.
	ConsoleSocket string
	// NoNewKeyring keeps the caller's session keyring; by default the box
	// (and each process Exec starts in it) joins a new one of its own.
	NoNewKeyring bool
	// NoPivot enters the root with MS_MOVE and chroot instead of
	// pivot_root, for roots pivot_root cannot leave (an initramfs); the
	// old root then stays reachable to a process with CAP_SYS_CHROOT.
	NoPivot bool
	// Network connects the box to a bridge network (it needs a network
	// namespace of its own, and root).
	Network *NetworkOptions
	// Landlock restricts the command's filesystem access to the box's own
	// mounts with a Landlock ruleset, as a second wall behind them (see
	// internal/setup/landlock.go); an error on a kernel without Landlock.
	// Processes that Exec starts in the box later get the same ruleset.
	Landlock bool
	// Debug, when set, receives the list of the child's set-up steps.
	Debug io.Writer `json:"-"`
}

// CgroupMode says when a box gets a cgroup.
type CgroupMode int

const (
	// NoCgroup: the box stays in the caller's cgroups.
	NoCgroup CgroupMode = iota
	// CgroupAlways: the box always gets one (the OCI runtime's way).
	CgroupAlways
	// CgroupWhenCheap: on a pure cgroup v2 host, where a box is born in its
	// cgroup (CLONE_INTO_CGROUP); not on v1, where moving a process into a
	// cgroup waits for an RCU grace period (about half a millisecond here).
	CgroupWhenCheap
)

// Box is a started box.
type Box struct {
	ID string
	// Console is the master side of the box's terminal (spec.process.terminal).
	Console *os.File

	rt      *Runtime
	proc    *process.Process
	st      *state.State
	release func()
	userNet *network.UserNet // pasta or slirp4netns serving the box
}

// Pid is the pid of the box's first process (its init, or the command).
func (b *Box) Pid() int { return b.proc.Pid }

// NewID returns a fresh random box id.
func NewID() string {
	var b [6]byte
	if _, err := unix.Getrandom(b[:], 0); err != nil {
		// No entropy yet (early boot): the time will do for an id.
		t := time.Now().UnixNano()
		for i := range b {
			b[i] = byte(t >> (8 * i))
		}
	}
	return hex.EncodeToString(b[:])
}

// Signal sends sig to the box's first process.
func (b *Box) Signal(sig syscall.Signal) error { return b.proc.Signal(sig) }

// Wait waits for the box to end and returns the command's exit code (128+N
// for signal N). An ephemeral box is then removed from the state directory.
func (b *Box) Wait() (int, error) {
	code, err := b.proc.Wait()
	b.userNet.Close()
	if b.st.Ephemeral {
		b.rt.remove(b.st)
	}
	return code, err
}

// remove deletes a box's record and gives back what it held.
func (rt *Runtime) remove(st *state.State) {
	var part struct {
		Hooks *specs.Hooks `json:"hooks"`
	}
	if err := st.SpecPart(&part); err == nil && part.Hooks != nil && len(part.Hooks.Poststop) > 0 {
		s := &specs.Spec{Hooks: part.Hooks}
		defer func() {
			rt.warn(runHostHooks(s, hookPoststop, hookState(st.ID, specs.StateStopped, 0, st.Bundle, st.Annotations)))
		}()
	}
	rt.releaseNetwork(st)
	if m := cgroupOf(st); m != nil {
		m.Destroy()
	}
	if st.IDRange != 0 {
		userns.Release(rt.rangeDir(), st.IDRange, st.ID)
	}
	rt.store.Remove(st.ID)
}

func (rt *Runtime) rangeDir() string { return filepath.Join(rt.store.Root, ".userns") }

func (rt *Runtime) allocator() *userns.Allocator {
	return userns.NewAllocator(rt.rangeDir(), func(id string) bool {
		st, err := rt.store.Load(id)
		return err == nil && st.Status != specs.StateStopped || errors.Is(err, state.ErrCreating)
	})
}

// checkBindSources stats the sources of bind mounts: a missing one is an
// error, and a file needs a file as its mount point.
func checkBindSources(fs *rootfs.Plan) error {
	for i := range fs.Mounts {
		m := &fs.Mounts[i]
		if m.Kind != rootfs.Bind || m.Cgroups {
			continue // the box's cgroups: made by nsbox, checked where made
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("%s: source: %w", m.Describe(), err)
		}
		m.File = !fi.IsDir()
	}
	return nil
}

func fdOf(f *os.File) int {
	if f == nil {
		return -1
	}
	return int(f.Fd())
}

func checkSpec(s *specs.Spec) error {
	if s == nil || s.Process == nil {
		return errors.New("spec has no process")
	}
	if len(s.Process.Args) == 0 {
		return errors.New("process.args: no command")
	}
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("root.path is required")
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return nil
}

// idDecision is how a box's user namespace gets its maps.
type idDecision struct {
	uids, gids []specs.LinuxIDMapping
	how        userns.How
	rangeStart uint32
	ttyGroup   bool // gid 5 exists inside
	release    func()
}

func (rt *Runtime) decideIDs(id string, s *specs.Spec, ns namespaces.Plan, o Options) (idDecision, error) {
	d := idDecision{release: func() {}, ttyGroup: true}
	if !ns.Is(specs.UserNamespace, namespaces.New) {
		if ns.Is(specs.UserNamespace, namespaces.Share) && os.Geteuid() != 0 {
			return d, errors.New("without root, a box needs its own user namespace")
		}
		return d, nil
	}
	d.uids, d.gids = s.Linux.UIDMappings, s.Linux.GIDMappings
	rootless := os.Geteuid() != 0
	switch {
	case len(d.uids) == 0 && len(d.gids) == 0 && o.AutoIDs && rootless:
		c := userns.LookupCaller()
		var full bool
		d.uids, d.gids, full = c.RootlessMaps()
		d.how = userns.DenyDirect
		if full {
			d.how = userns.Helper
		}
	case len(d.uids) == 0 && len(d.gids) == 0 && o.AutoIDs:
		a := rt.allocator()
		r, err := a.Allocate(id)
		if err != nil {
			return d, fmt.Errorf("allocate ids for the user namespace: %w", err)
		}
		d.rangeStart = r.Start
		d.release = func() { userns.Release(a.Dir, r.Start, id) }
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.Start, Size: r.Count}}
		d.uids, d.gids = m, m
		d.how = userns.Direct
	case len(d.uids) == 0 || len(d.gids) == 0:
		return d, errors.New("a new user namespace needs linux.uidMappings and linux.gidMappings")
	case rootless:
		c := userns.LookupCaller()
		if err := c.CheckAllowed("uid", d.uids, c.UID, c.SubUIDs); err != nil {
			return d, err
		}
		if err := c.CheckAllowed("gid", d.gids, c.GID, c.SubGIDs); err != nil {
			return d, err
		}
		d.how = userns.DenyDirect
		if len(d.uids) > 1 || len(d.gids) > 1 || d.uids[0].Size > 1 || d.gids[0].Size > 1 ||
			d.uids[0].HostID != c.UID || d.gids[0].HostID != c.GID {
			d.how = userns.Helper
		}
	default:
		d.how = userns.Direct
	}
	if err := userns.CheckMaps(d.uids); err != nil {
		return d, fmt.Errorf("uid maps: %w", err)
	}
	if err := userns.CheckMaps(d.gids); err != nil {
		return d, fmt.Errorf("gid maps: %w", err)
	}
	s.Linux.UIDMappings, s.Linux.GIDMappings = d.uids, d.gids
	_, d.ttyGroup = userns.ToHost(d.gids, 5)
	if _, ok := userns.ToHost(d.uids, s.Process.User.UID); !ok {
		d.release()
		return d, fmt.Errorf("user %d does not exist in the box: its user namespace maps uids %s", s.Process.User.UID, userns.Inside(d.uids))
	}
	if _, ok := userns.ToHost(d.gids, s.Process.User.GID); !ok {
		d.release()
		return d, fmt.Errorf("group %d does not exist in the box: its user namespace maps gids %s", s.Process.User.GID, userns.Inside(d.gids))
	}
	return d, nil
}

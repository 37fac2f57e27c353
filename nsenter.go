package nsbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/process"
	"github.com/nsbox/nsbox/internal/setup"
	"github.com/nsbox/nsbox/internal/userns"
)

// EnterOptions say which namespaces Enter joins and how the command runs
// in them.
type EnterOptions struct {
	// Types are the namespaces to enter. None means every namespace of the
	// target that differs from the caller's (nsenter --all). An entered user
	// namespace that is the caller's own is skipped: the kernel refuses it.
	Types []specs.LinuxNamespaceType
	// PreserveCredentials keeps the caller's uid, gid and groups (as the
	// entered user namespace sees them) instead of becoming its root.
	PreserveCredentials bool
	// Root runs the command in the target's root directory, and Wd in its
	// working directory. In a mount namespace that is entered, the root is
	// that of the namespace (a target with a root of its own, after a
	// chroot, is refused) and the working directory is found by its path.
	Root, Wd bool
	// Terminal gives the command a terminal of its own, whose master is
	// then Process.Console, of size WinSize.
	Terminal bool
	WinSize  unix.Winsize
	// Stdin, Stdout and Stderr become the command's standard streams; nil
	// keeps the caller's.
	Stdin, Stdout, Stderr *os.File
	// Debug, when set, receives the list of the child's set-up steps.
	Debug io.Writer
}

// goneError says that the target process does not exist, or no longer;
// it matches unix.ESRCH.
type goneError struct{ msg string }

func (e *goneError) Error() string        { return e.msg }
func (e *goneError) Is(target error) bool { return target == unix.ESRCH }

// Enter starts the command args in the namespaces of process pid, as the
// caller and with its environment: equivalent to `nsenter --target PID
// [--all | --net ...] -- ARGS`. Entering a user namespace makes the
// command its root unless o.PreserveCredentials; entering a pid namespace
// makes the command a process of it (it is forked after the setns). The
// command is the caller's child; wait for it with Process.Wait.
//
// Errors: one that matches unix.ESRCH when there is no process pid (or it
// ends meanwhile), errors.ErrUnsupported for a namespace type the kernel
// lacks; a failed step of the child (a *process.StepError inside) names
// the step and keeps its errno.
func Enter(pid int, args []string, o EnterOptions) (*Process, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, &goneError{fmt.Sprintf("no process %d", pid)}
		}
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	return enter(pid, pidfd, args, o)
}

// EnterBox is Enter into the namespaces of box id (of its init, or,
// when the caller may not reach the init, of its command).
func (rt *Runtime) EnterBox(id string, args []string, o EnterOptions) (*Process, error) {
	st, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	if st.Status == specs.StateStopped {
		return nil, &goneError{fmt.Sprintf("box %s is not running", id)}
	}
	pidfd, err := openPid(st)
	if err != nil {
		return nil, &goneError{err.Error()}
	}
	defer unix.Close(pidfd)
	pid, tfd, err := joinTarget(st.Pid, pidfd)
	if err != nil {
		return nil, fmt.Errorf("box %s: %w", id, err)
	}
	if tfd != pidfd {
		defer unix.Close(tfd)
	}
	return enter(pid, tfd, args, o)
}

// EnterTypes returns the namespaces of process pid that Enter joins with
// types (see EnterOptions.Types), in the order they are joined.
func EnterTypes(pid int, types []specs.LinuxNamespaceType) ([]specs.LinuxNamespaceType, error) {
	for _, t := range types {
		if namespaces.Flag(t) == 0 {
			return nil, fmt.Errorf("unknown namespace type %q", t)
		}
	}
	all := len(types) == 0
	if all {
		types = namespaces.All
	}
	spid := strconv.Itoa(pid)
	var out []specs.LinuxNamespaceType
	for _, t := range namespaces.All {
		if !slices.Contains(types, t) {
			continue
		}
		ours, err := namespaces.Inode("self", t)
		if errors.Is(err, unix.ENOENT) {
			if all {
				continue
			}
			return nil, fmt.Errorf("%s namespaces: %w by this kernel", namespaces.ProcName(t), errors.ErrUnsupported)
		}
		theirs, err := namespaces.Inode(spid, t)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, &goneError{fmt.Sprintf("no process %d", pid)}
		}
		if err != nil {
			return nil, fmt.Errorf("%s namespace of process %d: %w", namespaces.ProcName(t), pid, err)
		}
		if ours == theirs && (all || t == specs.UserNamespace) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// enter is Enter into the namespaces of process pid, held by pidfd.
func enter(pid, pidfd int, args []string, o EnterOptions) (*Process, error) {
	if len(args) == 0 {
		return nil, errors.New("enter: no command")
	}
	types, err := EnterTypes(pid, o.Types)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: args, Env: os.Environ(), Cwd: "/", Terminal: o.Terminal},
		Root:    &specs.Root{Path: "/"},
		Linux:   &specs.Linux{},
	}
	if err := WithCallerCredentials(s); err != nil {
		return nil, err
	}
	dir := "/proc/" + strconv.Itoa(pid)
	for _, t := range types {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: dir + "/ns/" + namespaces.ProcName(t)})
	}
	ns, err := namespaces.PlanFor(s)
	if err != nil {
		return nil, err
	}
	uids, gids, err := idMapsOf(pid)
	if err != nil {
		return nil, &goneError{fmt.Sprintf("no process %d", pid)}
	}
	denied := setgroupsDenied(strconv.Itoa(pid))
	if ns.Is(specs.UserNamespace, namespaces.Join) {
		if err := credentialsIn(s.Process, uids, gids, o.PreserveCredentials, denied); err != nil {
			return nil, fmt.Errorf("the user namespace of process %d: %w", pid, err)
		}
	}
	// setns into a mount namespace moves to its root: with the one of the
	// target, look up its working directory there; otherwise the child
	// inherits a root and working directory set on the thread that starts
	// it (withFS).
	ownFS := !ns.Is(specs.MountNamespace, namespaces.Join)
	if !ownFS && o.Wd {
		if s.Process.Cwd, err = os.Readlink(dir + "/cwd"); err != nil {
			return nil, fmt.Errorf("working directory of process %d: %w", pid, err)
		}
	}
	if !ownFS && o.Root {
		if root, err := os.Readlink(dir + "/root"); err != nil || root != "/" {
			return nil, fmt.Errorf("process %d has a root directory of its own (%s) in its mount namespace: nsbox cannot enter it", pid, root)
		}
	}
	launch := func() (*Process, error) {
		if unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
			return nil, &goneError{fmt.Sprintf("process %d has ended", pid)}
		}
		p, err := launchJoining(setup.Config{
			Spec:            s,
			NS:              ns,
			JoinPidFD:       pidfd,
			DieWithParent:   !(ownFS && (o.Root || o.Wd)), // see withFS
			InheritCwd:      ownFS && (o.Root || o.Wd),    // set by withFS
			SetgroupsDenied: denied,
			WinSize:         o.WinSize,
			Stdio:           [3]int{fdOf(o.Stdin), fdOf(o.Stdout), fdOf(o.Stderr)},
		}, !ns.Is(specs.UserNamespace, namespaces.Join), uids, gids, o.Debug,
			"a process entering the namespaces of "+strconv.Itoa(pid), nil, process.Hooks{})
		if err != nil {
			return nil, err
		}
		return &Process{Console: p.Console, proc: p}, nil
	}
	if ownFS && (o.Root || o.Wd) {
		return withFS(dir, o.Root, o.Wd, launch)
	}
	return launch()
}

// credentialsIn sets the identity of process p in a user namespace it
// enters, whose maps are uids and gids: its root, with the capabilities
// of the caller's bounding set (the capabilities setns gives there), or
// with preserve the caller's own ids as the namespace sees them.
func credentialsIn(p *specs.Process, uids, gids []specs.LinuxIDMapping, preserve, setgroupsDenied bool) error {
	if !preserve {
		c := p.Capabilities
		c.Effective, c.Permitted = c.Bounding, c.Bounding
		p.User = specs.User{Umask: p.User.Umask}
		return nil
	}
	u := p.User
	uid, ok := userns.FromHost(uids, u.UID)
	if !ok {
		return fmt.Errorf("--preserve-credentials: uid %d is not mapped there", u.UID)
	}
	gid, ok := userns.FromHost(gids, u.GID)
	if !ok {
		return fmt.Errorf("--preserve-credentials: gid %d is not mapped there", u.GID)
	}
	var groups []uint32
	for _, g := range u.AdditionalGids {
		if in, ok := userns.FromHost(gids, g); ok && !setgroupsDenied {
			groups = append(groups, in)
		}
	}
	p.User = specs.User{UID: uid, GID: gid, AdditionalGids: groups, Umask: u.Umask}
	return nil
}

// withFS runs launch on a thread of its own whose root and working
// directory become, with root and wd, those of the process whose /proc
// directory is dir (unshare(CLONE_FS), chroot, fchdir), as nsenter sets
// them: the child that launch clones from that thread inherits them. The
// thread ends with it, locked, rather than run other goroutines there —
// which is also why the child cannot ask to die with its parent: the
// kernel counts a parent's thread ending as its death.
func withFS(dir string, root, wd bool, launch func() (*Process, error)) (*Process, error) {
	type result struct {
		p   *Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		p, err := func() (*Process, error) {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return nil, fmt.Errorf("a root and working directory of its own for the thread: %w", err)
			}
			// As nsenter: without wd, stay in the caller's working directory.
			cwd := "."
			if wd {
				cwd = dir + "/cwd"
			}
			fd, err := unix.Open(cwd, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("open the working directory %s: %w", cwd, err)
			}
			defer unix.Close(fd)
			if root {
				if err := unix.Chroot(dir + "/root"); err != nil {
					return nil, fmt.Errorf("change the root to %s/root: %w", dir, err)
				}
			}
			if err := unix.Fchdir(fd); err != nil {
				return nil, fmt.Errorf("change to the working directory %s: %w", cwd, err)
			}
			return launch()
		}()
		done <- result{p, err}
	}()
	r := <-done
	return r.p, r.err
}

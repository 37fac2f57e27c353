package nsbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroups"
	"github.com/nsbox/nsbox/internal/initproc"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/process"
	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/setup"
	"github.com/nsbox/nsbox/internal/state"
	"github.com/nsbox/nsbox/internal/userns"
)

// Run creates box id from spec s and runs its command at once. It returns
// once the command runs, or with an error that names the step that failed,
// after removing everything it made.
func (rt *Runtime) Run(id string, s *specs.Spec, o Options) (*Box, error) {
	return rt.create(id, s, o, false)
}

// Create creates box id from spec s up to the point where its command would
// run, as OCI create does: the command waits for Start. The box's first
// process is a child of the caller until the caller exits.
func (rt *Runtime) Create(id string, s *specs.Spec, o Options) (*Box, error) {
	return rt.create(id, s, o, true)
}

// creation carries one box through its creation; undo reverses what is
// done so far if a later step fails.
type creation struct {
	rt      *Runtime
	id      string
	s       *specs.Spec
	o       Options
	ns      namespaces.Plan
	ids     idDecision
	joinFDs map[namespaces.Type]int
	fs      *rootfs.Plan
	fifo    *os.File // exec.fifo, the Create/Start rendezvous
	cgroup  *cgroups.Manager
	cgfd    int // the cgroup2 directory, for CLONE_INTO_CGROUP (-1: none)
	// landlock is the ruleset of Options.Landlock.
	landlock *state.Landlock
	lockFD   int         // holds the box's lock while it is created
	net      *boxNetwork // its bridge network, if any
	undo     []func()
	// pending is what the box holds before it has a state (savePending).
	pending state.State
}

// savePending records, with change, what the box holds before it has a
// state: should nsbox die before it does, whoever finds the record later
// gives those back (state.Store.Load).
func (c *creation) savePending(change func(*state.State)) error {
	c.pending.ID = c.id
	change(&c.pending)
	return c.rt.store.SavePending(&c.pending)
}

func (rt *Runtime) create(id string, s *specs.Spec, o Options, waitForStart bool) (b *Box, err error) {
	if err := state.CheckID(id); err != nil {
		return nil, err
	}
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	unlock, lockFD, err := rt.store.Create(id)
	if err != nil {
		return nil, err
	}
	defer unlock() // commands on the box wait until then
	c := &creation{rt: rt, id: id, s: s, o: o, joinFDs: map[namespaces.Type]int{}, cgfd: -1, lockFD: lockFD}
	c.undo = append(c.undo, func() { rt.store.Remove(id) })
	defer func() {
		c.closeFiles()
		if err != nil {
			for i := len(c.undo) - 1; i >= 0; i-- {
				c.undo[i]()
			}
		}
	}()
	if err := c.prepare(waitForStart); err != nil {
		return nil, err
	}
	return c.launch(waitForStart)
}

// prepare decides everything about the box that needs the host but not the
// box itself: namespaces to join, id maps, the filesystem plan.
func (c *creation) prepare(waitForStart bool) error {
	s, o := c.s, c.o
	var err error
	if err := checkSupported(s); err != nil {
		return err
	}
	var landlockABI int
	if o.Landlock {
		if landlockABI, err = setup.LandlockABI(); err != nil {
			return fmt.Errorf("--landlock: %w", err)
		}
	}
	if c.ns, err = namespaces.PlanFor(s); err != nil {
		return err
	}
	if o.Landlock && !c.ns.Is(specs.MountNamespace, namespaces.New) {
		return errors.New("--landlock: the rules follow the box's own mounts: it needs a mount namespace of its own")
	}
	if c.ids, err = c.rt.decideIDs(c.id, s, c.ns, o); err != nil {
		return err
	}
	c.undo = append(c.undo, c.ids.release)
	if o.IDMapBinds {
		if err := idmapBinds(s, c.ids); err != nil {
			return err
		}
	}
	for _, t := range c.ns.Joins() {
		fd, err := namespaces.OpenJoin(t, c.ns.Path[t])
		if err != nil {
			return err
		}
		c.joinFDs[t] = fd
	}
	if s.Process.Terminal && waitForStart && o.ConsoleSocket == "" {
		return errors.New("process.terminal needs --console-socket to create a box (nobody would hold its terminal)")
	}
	if waitForStart {
		if c.fifo, err = makeExecFifo(c.rt.store.Dir(c.id)); err != nil {
			return err
		}
	}
	if o.Cgroup == NoCgroup || os.Geteuid() != 0 {
		// No cgroup of its own: limits would be ignored, so they are refused.
		if s.Linux != nil && cgroups.HasLimits(s.Linux.Resources) {
			return errors.New("linux.resources: this box gets no cgroup of its own (rootless, or without a cgroup), so its limits cannot be applied")
		}
	} else {
		if err := c.makeCgroup(o.Cgroup); err != nil {
			return err
		}
	}
	if o.Network != nil {
		if err := c.prepareNetwork(); err != nil {
			return err
		}
		s = c.s // with the binds of its /etc files
	}
	if !c.ns.Is(specs.MountNamespace, namespaces.New) {
		if s.Root != nil && filepath.Clean(s.Root.Path) != "/" {
			return fmt.Errorf("root.path %s needs a new mount namespace", s.Root.Path)
		}
		return nil
	}
	// The root tree is attached over its own path, which must not be a
	// symbolic link (the bundle's rootfs often is one).
	if s.Root != nil && s.Root.Path != "" {
		real, err := filepath.EvalSymlinks(s.Root.Path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("root.path %s: no such directory", s.Root.Path)
		}
		if err != nil {
			return fmt.Errorf("root.path %s: %w", s.Root.Path, err)
		}
		rs, root := *s, *s.Root
		root.Path, rs.Root = real, &root
		s = &rs
	}
	c.fs, err = rootfs.PlanFor(s, rootfs.Context{

		UserNS: !c.ns.Is(specs.UserNamespace, namespaces.Share) || os.Geteuid() != 0,
		OwnPID: c.ns.Is(specs.PIDNamespace, namespaces.New),
		// As root, a joined pid namespace's own proc, made before the
		// box's user namespace (unprivileged, the helper could not mount
		// it in the caller's mount namespace: the host's is shown).
		JoinedPIDProc: c.ns.Is(specs.PIDNamespace, namespaces.Join) && c.ns.Is(specs.UserNamespace, namespaces.New) &&
			os.Geteuid() == 0 && initproc.CanForkHelper,
		JoinedNetSys: c.ns.Is(specs.NetworkNamespace, namespaces.Join) && c.ns.Is(specs.UserNamespace, namespaces.New) &&
			os.Geteuid() == 0,
		OwnNet:     c.ns.Is(specs.NetworkNamespace, namespaces.New),
		HostNet:    c.ns.Is(specs.NetworkNamespace, namespaces.Share),
		OwnIPC:     c.ns.Is(specs.IPCNamespace, namespaces.New),
		TTYGroup:   c.ids.ttyGroup,
		Terminal:   s.Process.Terminal,
		HostMqueue: exists("/dev/mqueue"),
		Cgroups:    c.cgroupView(),
	})
	if err != nil {
		return err
	}
	c.fs.NoPivot = o.NoPivot
	if err := checkBindSources(c.fs); err != nil {
		return err
	}
	if o.Landlock {
		c.landlock = setup.LandlockPolicy(c.fs, landlockABI)
	}
	if os.Geteuid() == 0 && c.ns.Is(specs.UserNamespace, namespaces.New) {
		parentMakesTrees(c.fs, o.IDMapBinds && c.ids.rangeStart != 0, c.ids)
	}
	return nil
}

// launch builds the child's program, starts it, serves it and records the
// box.
func (c *creation) launch(waitForStart bool) (*Box, error) {
	s, o := c.s, c.o
	sync, err := process.NewSync()
	if err != nil {
		return nil, err
	}
	defer sync.Close()
	cfg := setup.Config{
		Spec:            s,
		NS:              c.ns,
		JoinFDs:         c.joinFDs,
		FS:              c.fs,
		Init:            o.Init && c.ns.Is(specs.PIDNamespace, namespaces.New),
		SyncFD:          sync.Child,
		DieWithParent:   o.DieWithParent,
		SetgroupsDenied: c.ids.how == userns.DenyDirect,
		PreserveFDs:     o.PreserveFDs,
		WinSize:         o.WinSize,
		CwdFallback:     o.CwdFallback,
		Stdio:           [3]int{fdOf(o.Stdin), fdOf(o.Stdout), fdOf(o.Stderr)},
		StartFD:         -1,
		SessionKeyring:  sessionKeyring(c.id, o.NoNewKeyring),
		CloseFDs:        []int{c.lockFD, sync.Parent},
		Landlock:        c.landlock,
		Placement:       c.cgroup != nil && !c.cgroup.Layout.Unified(),
		ParentNetwork:   c.net != nil,
		CreateHooks:     len(hooksOf(s, hookPrestart))+len(hooksOf(s, hookCreateRuntime))+len(hooksOf(s, hookCreateContainer)) > 0,
		StartHooks:      !waitForStart && len(hooksOf(s, hookStartContainer)) > 0,
	}
	if c.fifo != nil {
		cfg.StartFD = int(c.fifo.Fd())
	}
	// A box that shares or joins a user namespace is taken to share ids
	// with the caller.
	hostIDs := !c.ns.Is(specs.UserNamespace, namespaces.New)
	r, tf, err := buildGuarded(cfg, hostIDs, c.ids.uids, c.ids.gids)
	if err != nil {
		return nil, err
	}
	if tf != nil {
		defer tf.Close()
	}
	if c.cgfd >= 0 {
		r.Clone.Flags |= unix.CLONE_INTO_CGROUP
		r.Clone.CgroupFD = c.cgfd
	}
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "nsbox: clone flags %#x; set-up steps of box %s:\n%s", r.Clone.Flags, c.id, r.Program)
	}
	st := &state.State{
		State: specs.State{
			Version:     specs.Version,
			ID:          c.id,
			Status:      specs.StateRunning,
			Bundle:      o.Bundle,
			Annotations: s.Annotations,
		},
		Created:      time.Now().UTC(),
		Owner:        os.Geteuid(),
		Rootless:     os.Geteuid() != 0,
		Ephemeral:    o.Ephemeral,
		IDRange:      c.ids.rangeStart,
		NoNewKeyring: o.NoNewKeyring,
		Landlock:     c.landlock,
	}
	if c.cgroup != nil {
		st.CgroupPath, st.CgroupPaths = c.cgroup.Path, c.cgroup.Paths
	}
	if c.net != nil {
		if c.net.net != nil {
			st.Network, st.Addr = c.net.net.Name, c.net.lease.Addr.String()
		} else {
			st.NetworkMode = c.net.mode
		}
	}
	if waitForStart {
		st.Status = specs.StateCreated
	}
	var specErr error
	proc, err := process.Launch(r, &sync, process.Hooks{
		WriteMaps: func(pid int) error { return userns.Write(pid, c.ids.uids, c.ids.gids, c.ids.how) },
		MakeTree: func(i, pid int) (int, error) {
			return makeTree(r.Trees.Trees[i], pid, c.ids)
		},
		Seccomp: func(pid, fd int) error {
			return sendSeccompListener(s.Linux.Seccomp, fd, specs.State{Version: specs.Version, ID: c.id,
				Status: specs.StateCreating, Pid: pid, Bundle: o.Bundle, Annotations: s.Annotations})
		},
		Place: func(pid int) error {
			if c.cgroup != nil && c.cgfd < 0 {
				if err := c.cgroup.Apply(pid); err != nil {
					return err
				}
			}
			if c.net != nil {
				return c.attachNetwork(pid)
			}
			return nil
		},
		Meanwhile:   func() { specErr = st.SetSpec(s) },
		CreateHooks: func(pid int) error { return c.createHooks(pid) },
		StartHooks: func(pid int) error {
			return c.boxHooks(hookStartContainer, pid, hookState(c.id, specs.StateCreated, pid, o.Bundle, s.Annotations))
		},
	})
	if err != nil {
		return nil, err
	}
	kill := func() {
		proc.Signal(unix.SIGKILL)
		proc.Wait()
	}
	st.Pid = proc.Pid
	st.InitStart, _ = state.StartTime(proc.Pid)
	err = specErr
	if err == nil && proc.Console != nil && o.ConsoleSocket != "" {
		err = sendConsole(o.ConsoleSocket, proc.Console)
		proc.Console.Close()
		proc.Console = nil
	}
	if err == nil {
		err = c.rt.store.Save(st)
	}
	if err != nil {
		kill()
		return nil, err
	}
	if !waitForStart {
		// After the save: a hook that asks for the box's state finds it
		// running.
		c.rt.warn(runHostHooks(s, hookPoststart, hookState(c.id, specs.StateRunning, proc.Pid, o.Bundle, s.Annotations)))
	}
	b := &Box{ID: c.id, Console: proc.Console, rt: c.rt, proc: proc, st: st, release: c.ids.release}
	if c.net != nil {
		b.userNet = c.net.userNet
	}
	return b, nil
}

// createHooks runs the prestart and createRuntime hooks in the runtime's
// namespaces, then the createContainer hooks in the box's, while the box's
// first process (pid) waits before pivot_root.
func (c *creation) createHooks(pid int) error {
	state := hookState(c.id, specs.StateCreating, pid, c.o.Bundle, c.s.Annotations)
	for _, kind := range []string{hookPrestart, hookCreateRuntime} {
		if err := runHostHooks(c.s, kind, state); err != nil {
			return err
		}
	}
	return c.boxHooks(hookCreateContainer, pid, state)
}

// boxHooks runs hooks of kind in the namespaces of the box's process pid.
func (c *creation) boxHooks(kind string, pid int, state []byte) error {
	if len(hooksOf(c.s, kind)) == 0 {
		return nil
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("%s hooks: %w", kind, err)
	}
	defer unix.Close(pidfd)
	return runBoxHooks(c.id, c.s, kind, pid, pidfd, state)
}

// makeCgroup creates the box's cgroup: linux.cgroupsPath, or /nsbox/ID.
func (c *creation) makeCgroup(mode CgroupMode) error {
	ownUsers := c.ns.Is(specs.UserNamespace, namespaces.New) || c.ns.Is(specs.UserNamespace, namespaces.Join)
	if mode == CgroupWhenCheap && ownUsers && (c.s.Linux == nil || c.s.Linux.Resources == nil) && cgroups.TmpfsRoot() {
		// Known without reading the layout: a v1 or hybrid host, no
		// limits, no device rules of the box's own (see below).
		return nil
	}
	layout, err := cgroups.Detect()
	if err != nil {
		return err
	}
	var res *specs.LinuxResources
	if c.s.Linux != nil {
		res = c.s.Linux.Resources
	}
	// Planned first: a limit the host cannot take creates nothing.
	plan, err := cgroups.PlanResources(layout, res)
	if err != nil {
		return err
	}
	if res != nil {
		plan.Devices = cgroups.DeviceRules(res.Devices, c.s.Linux.Devices)
	}
	// A box in the host's user namespace holds real capabilities: its root
	// could make and open the host's disks (CAP_MKNOD is in the default
	// set). Without rules of its own it gets runc's: none but the usual
	// devices. (In a user namespace of its own, the kernel lets no device
	// node be made.)
	if plan.Devices == nil && !ownUsers {
		deny := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
		plan.Devices = cgroups.DeviceRules(deny, c.s.Linux.Devices)
	}
	if mode == CgroupWhenCheap && !layout.Unified() && !plan.HasLimits() {
		return nil
	}
	path := "/nsbox/" + c.id
	if c.s.Linux.CgroupsPath != "" {
		path = c.s.Linux.CgroupsPath
	}
	if c.cgroup, err = cgroups.Resolve(layout, path); err != nil {
		return fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	// Recorded first (pending.json: a later command cleans up after a
	// killed nsbox), then made. (They used to be made in a goroutine while
	// the rest was planned: its thread and stack cost more than the
	// overlap won — 5% of an OCI run, and 0.4 MB of peak RSS.)
	c.undo = append(c.undo, func() { c.cgroup.Destroy() })
	err = c.savePending(func(st *state.State) { st.CgroupPath, st.CgroupPaths = c.cgroup.Path, c.cgroup.Paths })
	if err == nil {
		err = c.cgroup.Create(plan)
	}
	if err == nil {
		err = c.cgroup.Set(plan)
	}
	if err != nil {
		return err
	}
	for _, w := range plan.Warnings {
		c.rt.warn(errors.New(w))
	}
	c.cgfd, err = c.cgroup.OpenV2()
	return err
}

// cgroupView describes the box's cgroup hierarchies for its /sys/fs/cgroup.
func (c *creation) cgroupView() *rootfs.CgroupView {
	if c.cgroup == nil {
		return nil
	}
	l := c.cgroup.Layout
	v := &rootfs.CgroupView{NewNS: c.ns.Is(specs.CgroupNamespace, namespaces.New), Unified: l.Unified()}
	for i := range l.Hierarchies {
		h := &l.Hierarchies[i]
		if filepath.Dir(h.Mount) != "/sys/fs/cgroup" && h.Mount != "/sys/fs/cgroup" {
			continue // mounted somewhere of its own choosing: not part of the usual view
		}
		v.Hierarchies = append(v.Hierarchies, rootfs.CgroupHierarchy{
			Name: h.Name(), V2: h.V2, Controllers: h.Controllers, HostDir: c.cgroup.Dir(h),
		})
	}
	return v
}

func (c *creation) closeFiles() {
	if c.cgfd >= 0 {
		unix.Close(c.cgfd)
	}
	for _, fd := range c.joinFDs {
		unix.Close(fd)
	}
	if c.fifo != nil {
		c.fifo.Close()
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// makeExecFifo creates the FIFO and opens it for the child. Opened for
// reading and writing, it never blocks here; the child blocks reading it
// until Start writes a byte.
func makeExecFifo(dir string) (*os.File, error) {
	path := filepath.Join(dir, state.ExecFifo)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	// A plain descriptor: os.OpenFile would set up the runtime's poller
	// for it, which costs more than the rest of the call.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Start lets the command of created box id run (OCI start).
func (rt *Runtime) Start(id string) error {
	st, unlock, err := rt.loadLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	if st.Status != specs.StateCreated {
		return fmt.Errorf("box %s is %s, not created: it can only be started once", id, st.Status)
	}
	spec, err := st.Spec()
	if err != nil {
		return err
	}
	if len(hooksOf(spec, hookStartContainer)) > 0 {
		pidfd, err := openPid(st)
		if err != nil {
			return err
		}
		err = runBoxHooks(id, spec, hookStartContainer, st.Pid, pidfd, hookState(id, specs.StateCreated, st.Pid, st.Bundle, st.Annotations))
		unix.Close(pidfd)
		if err != nil {
			return err
		}
	}
	path := filepath.Join(rt.store.Dir(id), state.ExecFifo)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("box %s is no longer waiting to start", id)
		}
		return fmt.Errorf("start box %s: %w", id, err)
	}
	_, err = unix.Write(fd, []byte{0})
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("start box %s: %w", id, err)
	}
	unix.Unlink(path)
	st.Status = specs.StateRunning
	if err := rt.store.Save(st); err != nil {
		return err
	}
	rt.warn(runHostHooks(spec, hookPoststart, hookState(id, specs.StateRunning, st.Pid, st.Bundle, st.Annotations)))
	return nil
}

// checkSupported refuses the parts of the spec nsbox does not implement,
// rather than ignoring them.
func checkSupported(s *specs.Spec) error {
	if s.Linux == nil {
		return nil
	}
	if s.Linux.IntelRdt != nil {
		return errors.New("linux.intelRdt: Intel RDT is not supported by nsbox")
	}
	if len(s.Linux.NetDevices) > 0 {
		return errors.New("linux.netDevices: moving host network devices into a box is not supported by nsbox yet")
	}
	return nil
}

// Package setup turns a box's spec into the Program its first process runs,
// in a fixed order of stages:
//
//	namespaces   join (setns) and create (clone/unshare) — user first
//	id maps      wait for the parent to write them
//	time         offsets of a new time namespace
//	pid 1        fork into a joined or unshared pid namespace
//	filesystem   mounts, /dev, pivot_root (package rootfs)
//	identity     hostname, domain name, loopback up
//	init         fork the command; the parent stays as PID 1 and reaps
//	process      terminal, rlimits, credentials, capabilities, cwd, exec
//
// Everything here is planning: it builds data and touches nothing.
package setup

import (
	"fmt"
	"path"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/caps"
	"github.com/nsbox/nsbox/internal/initproc"
	"github.com/nsbox/nsbox/internal/lsm"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/seccomp"
	"github.com/nsbox/nsbox/internal/state"
)

// Config is everything the program depends on.
type Config struct {
	Spec *specs.Spec
	NS   namespaces.Plan
	// JoinFDs are the namespace files opened by the parent, for Join modes;
	// or, with JoinPidFD, a pidfd whose process's namespaces are all joined
	// in one setns(2).
	JoinFDs   map[namespaces.Type]int
	JoinPidFD int
	// FS is the filesystem plan; nil when the box keeps the mount namespace
	// it shares or joins as it is.
	FS *rootfs.Plan
	// Init runs a reaper as PID 1 that forwards signals to the command.
	Init bool
	// SyncFD is the child's end of the sync socket.
	SyncFD int
	// DieWithParent: the box is killed when the parent dies.
	DieWithParent bool
	// SetgroupsDenied: setgroups(2) is denied in the box's user namespace.
	SetgroupsDenied bool
	// PreserveFDs: fds 3 .. 3+PreserveFDs-1 are passed to the command.
	PreserveFDs int
	// WinSize is the initial size of the box's terminal.
	WinSize unix.Winsize
	// CwdFallback: use "/" when the working directory does not exist.
	CwdFallback bool
	// Stdio are descriptors (of the parent, so also of the child) to become
	// the command's standard streams; -1 keeps the parent's.
	Stdio [3]int
	// CreateHooks: the child stops before pivot_root (or, keeping its
	// mount namespace as it is, after its namespaces) for the OCI create
	// hooks; StartHooks: it stops right before the exec for startContainer
	// hooks (without StartFD, where Start runs them).
	CreateHooks, StartHooks bool
	// ExecPath, if set, is the executable to run; Spec.Process.Args is then
	// only its argv (an OCI hook's path and args).
	ExecPath string
	// Placement: the parent puts the child into the box's cgroup right
	// after the clone (cgroup v1, or v2 without CLONE_INTO_CGROUP). A new
	// cgroup namespace is then made after it, so that its root is the box's
	// cgroup.
	Placement bool
	// CloseFDs are closed first thing: descriptors of the parent the child
	// must not hold (the box's state lock; the parent's end of the sync
	// socket, so that the parent's death reads as the end of the socket).
	CloseFDs []int
	// TrampolineFD, if not 0, is an empty memfd for the exec trampoline
	// (initproc.Trampoline), through which the command is executed: the
	// caller writes Result.Trampoline into it.
	TrampolineFD int
	// SessionKeyring, if set, is the name of a new session keyring the
	// process joins, so that it does not share the caller's keys.
	SessionKeyring string
	// ParentNetwork: the parent connects the box's network namespace to a
	// network after the clone; the child waits for it before it forks or
	// executes (as for Placement).
	ParentNetwork bool
	// StartFD, if not -1, is the exec FIFO: once set up, the child reports
	// MsgReady and waits for a byte on it before running the command (OCI
	// create/start).
	StartFD int
	// InheritCwd keeps the working directory the child inherits from the
	// thread that starts it (nsenter's --wd without the mount namespace),
	// instead of process.cwd.
	InheritCwd bool
	// Landlock, if set, restricts the command with this Landlock ruleset
	// (LandlockPolicy; paths in the box). See landlock.go.
	Landlock *state.Landlock
}

// Result is the program and how to start it.
type Result struct {
	Program *initproc.Program
	Clone   initproc.Clone
	// Trees are made by the parent and sent, in order, once the id maps
	// are written (see rootfs.ParentTrees).
	Trees rootfs.ParentTrees
	// GoAhead: the child's first step waits for the parent, which right
	// after the clone writes the id maps (MapsAtClone) and places the child
	// in its cgroup (Config.Placement), then sends the go-ahead.
	GoAhead, MapsAtClone bool
	// NeedsMaps: the child waits for its id maps, written at the clone
	// (MapsAtClone) or when it asks with MsgMaps, after unsharing its user
	// namespace (the path that joins namespaces).
	NeedsMaps bool
	// ForksPID1: the first child forks into its pid namespace and reports
	// the new pid (MsgPid); the first child itself exits.
	ForksPID1 bool
	// Trampoline is what goes into Config.TrampolineFD.
	Trampoline *initproc.Trampoline
	// WaitsForStart: the child reports MsgReady and then waits on StartFD;
	// the parent is done at MsgReady rather than at end of file.
	WaitsForStart bool
}

// DefaultPath is the PATH used to find the command when the process
// environment has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxFD is ~0U, the last fd for close_range(2).
const maxFD = 0xffffffff

// forwarded are the signals the init passes on to the command.
var forwarded = []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// Build assembles the program of c.
func Build(c Config) (*Result, error) {
	s := c.Spec
	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, fmt.Errorf("process.args: no command")
	}
	if err := checkStrings(s); err != nil {
		return nil, err
	}
	if err := checkSysctls(s, c.NS); err != nil {
		return nil, err
	}
	r := &Result{}
	var err error
	b := initproc.NewBuilder(c.SyncFD)
	imm := func(v uintptr) initproc.Arg { return initproc.Imm(v) }
	b.HideCommandLine()

	// Stage: namespaces.
	newFlags := c.NS.NewFlags()
	joins := c.NS.Joins()
	newUser := c.NS.Is(specs.UserNamespace, namespaces.New)
	newTime := newFlags&unix.CLONE_NEWTIME != 0
	newFlags &^= unix.CLONE_NEWTIME // created by unshare, after its offsets are known
	lateCgroupNS := c.Placement && newFlags&unix.CLONE_NEWCGROUP != 0
	if lateCgroupNS {
		newFlags &^= unix.CLONE_NEWCGROUP // its root is the cgroup at its creation
	}
	for _, fd := range c.CloseFDs {
		b.Call("close a descriptor of the parent's", unix.SYS_CLOSE, imm(uintptr(fd)))
	}
	premade := map[string]initproc.Reg{} // filesystems of joined namespaces (rootfs Mount.Premade)
	mapsAtClone := len(joins) == 0 && newUser
	r.GoAhead = c.Placement || c.ParentNetwork || mapsAtClone
	cgroupNS := func() {
		if lateCgroupNS {
			b.Call("create a cgroup namespace", unix.SYS_UNSHARE, imm(unix.CLONE_NEWCGROUP))
		}
	}
	switch {
	case mapsAtClone:
		b.Wait("wait for the parent (id maps, cgroup)")
	case c.Placement || c.ParentNetwork:
		// The parent places this process in the box's cgroup (and
		// connects its network) meanwhile:
		// wait only where it matters — before a fork (children stay where
		// they are born), the exec, a mount of the box's cgroups, or a
		// reply from the parent.
		b.Before(func() {
			b.Wait("wait for the parent to place this process in the box's cgroup (and network)")
			cgroupNS()
		})
	}
	if len(joins) == 0 {
		// Fast path: one clone creates every namespace, the child is PID 1.
		r.Clone.Flags = newFlags
		if newUser {
			r.NeedsMaps, r.MapsAtClone = true, true
		}
	} else {
		var all uint64
		for _, t := range joins {
			if t == specs.UserNamespace && newUser {
				return nil, fmt.Errorf("cannot both create and join a user namespace")
			}
			all |= namespaces.Flag(t)
			if c.JoinPidFD > 0 {
				continue
			}
			fd, ok := c.JoinFDs[t]
			if !ok {
				return nil, fmt.Errorf("no open file for the %s namespace to join", t)
			}
			b.Call("join "+namespaces.ProcName(t)+" namespace "+c.NS.Path[t], unix.SYS_SETNS, imm(uintptr(fd)), imm(uintptr(namespaces.Flag(t))))
		}
		if c.JoinPidFD > 0 {
			b.Call(fmt.Sprintf("join the namespaces of the target process (%#x)", all), unix.SYS_SETNS, imm(uintptr(c.JoinPidFD)), imm(uintptr(all)))
		}
		if c.FS != nil && c.FS.Premade("proc") {
			premade["proc"] = joinedPIDProc(b)
		}
		if c.FS != nil && c.FS.Premade("sysfs") {
			premade["sysfs"] = joinedNetSys(b)
		}

		if newUser {
			b.Call("create a user namespace", unix.SYS_UNSHARE, imm(unix.CLONE_NEWUSER))
			b.Sync("wait for the id maps", initproc.MsgMaps, 0, false)
			r.NeedsMaps = true
		}
		if rest := newFlags &^ unix.CLONE_NEWUSER; rest != 0 {
			b.Call("create namespaces", unix.SYS_UNSHARE, imm(uintptr(rest)))
		}
	}
	if mapsAtClone {
		cgroupNS()
	}
	if newTime {
		b.Call("create a time namespace", unix.SYS_UNSHARE, imm(unix.CLONE_NEWTIME))
		if offs := timeOffsets(s); offs != "" {
			f := b.Call("open timens_offsets", unix.SYS_OPENAT, initproc.Imm(unix.AT_FDCWD), b.Str("/proc/self/timens_offsets"),
				imm(unix.O_WRONLY|unix.O_CLOEXEC)).Out()
			b.Call("set time offsets "+strings.ReplaceAll(strings.TrimSpace(offs), "\n", ", "), unix.SYS_WRITE, initproc.R(f), b.Bytes([]byte(offs)), imm(uintptr(len(offs))))
			b.Close(f)
		}
	}
	// The root tree, while the process still has the caller's ids.
	var fsEmit *rootfs.Emitter
	if c.FS != nil {
		c.FS.HookSync = c.CreateHooks
		fsEmit = c.FS.EmitRoot(b, &r.Trees)
		fsEmit.Premade = premade
	}
	// Only now switch to the user namespace's root: changing ids makes the
	// process undumpable, and its /proc files (timens_offsets above) would
	// then belong to the host's root.
	if newUser {
		becomeRoot(b, c.SetgroupsDenied)
	}
	// No process in the box may read this one's memory (a copy of the
	// parent's) or reach the nsbox binary through /proc/PID/exe: from
	// before it enters the box's pid namespace, where they could see it.
	b.Call("make the box's first process undumpable", unix.SYS_PRCTL, imm(unix.PR_SET_DUMPABLE), imm(0))
	pidNotInherited := c.NS.Is(specs.PIDNamespace, namespaces.Join) || (len(joins) > 0 && c.NS.Is(specs.PIDNamespace, namespaces.New))
	if pidNotInherited {
		b.ForkPID1("fork into the pid namespace")
		r.ForksPID1 = true
	}
	// After the last change of ids, which clears it; then make sure the
	// parent did not die before it was set (the send fails on a closed peer).
	if c.DieWithParent {
		b.Call("ask to die with the parent", unix.SYS_PRCTL, imm(unix.PR_SET_PDEATHSIG), imm(uintptr(unix.SIGKILL)))
		b.Send("check that the parent lives", initproc.MsgAlive, 0, 0)
	}
	b.Call("leave the caller's session", unix.SYS_SETSID)
	b.Call("clear the umask", unix.SYS_UMASK, imm(0))

	// Stage: filesystem.
	if fsEmit != nil {
		fsEmit.EmitMounts(c.FS)
	} else if c.CreateHooks {
		b.Sync("run the create hooks", initproc.MsgHooks, 0, false)
	}

	// Stage: identity.
	if s.Hostname != "" {
		b.Call("set hostname "+s.Hostname, unix.SYS_SETHOSTNAME, b.Str(s.Hostname), imm(uintptr(len(s.Hostname))))
	}
	if s.Domainname != "" {
		b.Call("set domain name "+s.Domainname, unix.SYS_SETDOMAINNAME, b.Str(s.Domainname), imm(uintptr(len(s.Domainname))))
	}
	if c.NS.Is(specs.NetworkNamespace, namespaces.New) {
		loopbackUp(b)
	}

	// Stage: init.
	if c.Init {
		var block uint64
		for _, sig := range forwarded {
			block |= 1 << (sig - 1)
		}
		block |= 1 << (unix.SIGCHLD - 1)
		mask := initproc.Ptr(b, &block)
		b.Call("block the forwarded signals", unix.SYS_RT_SIGPROCMASK, imm(unix.SIG_BLOCK), mask, imm(0), imm(8))
		cmd, fork := b.ForkInit("fork the command")
		// The command's branch: unblock, then the process stage below.
		var empty uint64
		b.Call("unblock signals", unix.SYS_RT_SIGPROCMASK, imm(unix.SIG_SETMASK), initproc.Ptr(b, &empty), imm(0), imm(8))
		if r.Trampoline, err = processStage(b, c, true); err != nil {
			return nil, err
		}
		// The init's branch: keep nothing open, read signals, reap.
		b.SetInitStart(fork, b.Label())
		b.Call("close the init's files", unix.SYS_CLOSE_RANGE, imm(0), imm(maxFD), imm(0))
		sfd := b.Call("open a signalfd", unix.SYS_SIGNALFD4, imm(^uintptr(0)), mask, imm(8), imm(unix.SFD_CLOEXEC)).Out()
		b.InitLoop("run as init", cmd, initproc.R(sfd))
	} else if r.Trampoline, err = processStage(b, c, false); err != nil {
		return nil, err
	}
	r.WaitsForStart = c.StartFD >= 0
	r.Program = b.Program()
	return r, r.Program.Validate()
}

// becomeRoot switches to the new user namespace's root: until then the
// process keeps its host ids, which are not mapped there, so it could not
// create files.
func becomeRoot(b *initproc.Builder, setgroupsDenied bool) {
	if !setgroupsDenied {
		b.Call("drop the host's supplementary groups", unix.SYS_SETGROUPS, initproc.Imm(0), initproc.Imm(0))
	}
	b.Call("become root of the user namespace (gid)", unix.SYS_SETRESGID, initproc.Imm(0), initproc.Imm(0), initproc.Imm(0))
	b.Call("become root of the user namespace (uid)", unix.SYS_SETRESUID, initproc.Imm(0), initproc.Imm(0), initproc.Imm(0))
}

// processStage appends the steps that turn the current process into the
// command: terminal, limits, identity, capabilities, cwd, exec. With
// c.TrampolineFD it returns the trampoline the exec goes through.
func processStage(b *initproc.Builder, c Config, forked bool) (*initproc.Trampoline, error) {
	p := c.Spec.Process
	imm := func(v uintptr) initproc.Arg { return initproc.Imm(v) }
	for i, fd := range c.Stdio {
		if fd >= 0 && fd != i {
			b.Call(fmt.Sprintf("connect standard stream %d", i), unix.SYS_DUP3, imm(uintptr(fd)), imm(uintptr(i)), imm(0))
		}
	}
	if p.Terminal {
		if forked {
			b.Call("start a session for the terminal", unix.SYS_SETSID)
		}
		terminal(b, c)
	}
	for _, rl := range p.Rlimits {
		res, ok := rlimits[rl.Type]
		if !ok {
			return nil, fmt.Errorf("process.rlimits: unknown type %q", rl.Type)
		}
		lim := &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		b.Call("set "+rl.Type, unix.SYS_PRLIMIT64, imm(0), imm(uintptr(res)), initproc.Ptr(b, lim), imm(0))
	}
	if s := c.Spec.Linux; s != nil && s.Personality != nil {
		pers, err := personality(s.Personality)
		if err != nil {
			return nil, err
		}
		b.Call(fmt.Sprintf("set personality %s", s.Personality.Domain), unix.SYS_PERSONALITY, imm(pers))
	}
	if err := labels(b, c); err != nil {
		return nil, err
	}
	if c.SessionKeyring != "" {
		sessionKeyring(b, c.SessionKeyring)
	}
	if err := scheduling(b, c.Spec); err != nil {
		return nil, err
	}
	if p.OOMScoreAdj != nil {
		v := fmt.Sprint(*p.OOMScoreAdj)
		f := b.Call("open oom_score_adj", unix.SYS_OPENAT, initproc.Imm(unix.AT_FDCWD), b.Str("/proc/self/oom_score_adj"), imm(unix.O_WRONLY|unix.O_CLOEXEC)).Out()
		b.Call("set oom_score_adj "+v, unix.SYS_WRITE, initproc.R(f), b.Bytes([]byte(v)), imm(uintptr(len(v))))
		b.Close(f)
	}
	// Landlock after the last write to /proc above, while the process
	// still has CAP_SYS_ADMIN (without no_new_privs, restricting itself
	// needs it), and before any seccomp filter.
	if c.Landlock != nil {
		emitLandlock(b, c.Landlock)
	}

	// Identity and capabilities, in the order that keeps the capabilities
	// the process needs until the very end.
	sets, err := caps.FromSpec(p.Capabilities)
	if err != nil {
		return nil, err
	}
	b.Call("keep capabilities across setuid", unix.SYS_PRCTL, imm(unix.PR_SET_KEEPCAPS), imm(1))
	last := caps.LastCap()
	for cp := 0; cp <= last; cp++ {
		if !sets.Bounding.Has(cp) {
			b.Call("drop "+caps.Name(cp)+" from the bounding set", unix.SYS_PRCTL, imm(unix.PR_CAPBSET_DROP), imm(uintptr(cp)))
		}
	}
	// Seccomp: without no_new_privs loading a filter needs CAP_SYS_ADMIN,
	// so it comes before the identity changes drop it (as runc does); with
	// it, last before the exec.
	var filter *seccomp.Filter // usually precompiled (seccomp.Precompiled)
	if c.Spec.Linux != nil && c.Spec.Linux.Seccomp != nil {
		if filter, err = seccomp.Compile(c.Spec.Linux.Seccomp); err != nil {
			return nil, err
		}
	}
	if filter != nil && filter.Notify && c.Spec.Linux.Seccomp.ListenerPath == "" {
		return nil, fmt.Errorf("linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath to send the notifications' descriptor to")
	}
	if filter != nil && !p.NoNewPrivileges {
		loadSeccomp(b, filter)
	}
	// A filter that notifies is loaded before the box is reported created
	// (as runc does): its listener goes to the agent at create.
	notifyLate := filter != nil && filter.Notify && p.NoNewPrivileges
	u := p.User
	if len(u.AdditionalGids) > 0 && c.SetgroupsDenied {
		return nil, fmt.Errorf("process.user.additionalGids: supplementary groups need a user namespace with setgroups allowed (newgidmap, or root)")
	}
	if !c.SetgroupsDenied {
		groups := append([]uint32{}, u.AdditionalGids...)
		if len(groups) == 0 {
			b.Call("clear supplementary groups", unix.SYS_SETGROUPS, imm(0), imm(0))
		} else {
			b.Call(fmt.Sprintf("set supplementary groups %v", groups), unix.SYS_SETGROUPS, imm(uintptr(len(groups))), initproc.Ptr(b, &groups[0]))
		}
	}
	b.Call(fmt.Sprintf("set gid %d", u.GID), unix.SYS_SETRESGID, imm(uintptr(u.GID)), imm(uintptr(u.GID)), imm(uintptr(u.GID)))
	b.Call(fmt.Sprintf("set uid %d", u.UID), unix.SYS_SETRESUID, imm(uintptr(u.UID)), imm(uintptr(u.UID)), imm(uintptr(u.UID)))
	b.Call("stop keeping capabilities", unix.SYS_PRCTL, imm(unix.PR_SET_KEEPCAPS), imm(0))
	hdr, data := sets.Capset()
	b.Call("set capabilities", unix.SYS_CAPSET, initproc.Ptr(b, hdr), initproc.Ptr(b, data))
	// The kernel raises an ambient capability only if it is permitted and
	// inheritable; runc's default spec lists ambient ones without the
	// inheritable set, and runs: so do we, without them.
	for cp := 0; cp <= last; cp++ {
		if sets.Ambient.Has(cp) && sets.Inheritable.Has(cp) && sets.Permitted.Has(cp) {
			b.Call("raise ambient "+caps.Name(cp), unix.SYS_PRCTL, imm(unix.PR_CAP_AMBIENT), imm(unix.PR_CAP_AMBIENT_RAISE), imm(uintptr(cp)))
		}
	}
	if p.NoNewPrivileges {
		b.Call("set no_new_privs", unix.SYS_PRCTL, imm(unix.PR_SET_NO_NEW_PRIVS), imm(1))
	}
	umask := uint32(0o022)
	if u.Umask != nil {
		umask = *u.Umask & 0o777
	}
	b.Call(fmt.Sprintf("set umask %04o", umask), unix.SYS_UMASK, imm(uintptr(umask)))

	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("process.cwd %q must be an absolute path", cwd)
	}
	if !c.InheritCwd {
		// Resolve the working directory beneath the root, never through a /proc
		// magic link (such as /proc/self/fd/N of an inherited descriptor).
		// The root is the current directory (AT_FDCWD): after pivot_root it is
		// "/" already; in a mount namespace not of the box's own, go there.
		if c.FS == nil {
			b.Call("change to /", unix.SYS_CHDIR, b.Str("/"))
		}
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
		wd := b.NewReg()
		open := b.Call("resolve the working directory "+cwd, unix.SYS_OPENAT2, initproc.Imm(unix.AT_FDCWD), b.Str(cwd),
			initproc.Ptr(b, how), imm(unix.SizeofOpenHow)).OutTo(wd)
		if c.CwdFallback && cwd != "/" {
			open.Allow(unix.ENOENT).JumpOnSuccess(-1)
			b.Call("resolve the working directory /", unix.SYS_OPENAT2, initproc.Imm(unix.AT_FDCWD), b.Str("/"),
				initproc.Ptr(b, how), imm(unix.SizeofOpenHow)).OutTo(wd)
			b.PatchJump(open.Index(), b.Label())
		}
		b.Call("change to the working directory "+cwd, unix.SYS_FCHDIR, initproc.R(wd))
		b.Close(wd)
	}
	// No descriptor of the parent reaches the command, except those asked for.
	b.Call("close inherited files on exec", unix.SYS_CLOSE_RANGE, imm(uintptr(3+c.PreserveFDs)), imm(maxFD), imm(unix.CLOSE_RANGE_CLOEXEC))

	paths := candidates(p.Args[0], p.Env)
	if c.ExecPath != "" {
		paths = []string{c.ExecPath}
	}
	if notifyLate {
		loadSeccomp(b, filter)
	}
	if c.StartFD >= 0 {
		// Fail now, at create, rather than after start when nobody listens.
		b.CheckExec("find "+p.Args[0]+" in the box", paths)
		b.Send("report the box created", initproc.MsgReady, 0, 0)
		var buf [8]byte
		b.Call("wait for start", unix.SYS_READ, imm(uintptr(c.StartFD)), initproc.Ptr(b, &buf), imm(1))
	} else if c.StartHooks {
		b.CheckExec("find "+p.Args[0]+" in the box", paths)
		b.Sync("run the startContainer hooks", initproc.MsgStartHooks, 0, false)
	}
	if a := p.ExecCPUAffinity; a != nil && a.Final != "" {
		if err := affinity(b, "process.execCPUAffinity.final", a.Final); err != nil {
			return nil, err
		}
	}
	if c.TrampolineFD > 0 {
		b.Call("keep the sync socket open for the trampoline", unix.SYS_FCNTL, imm(uintptr(c.SyncFD)), imm(unix.F_SETFD), imm(0))
		// The filter is loaded before the trampoline runs, not by it: a
		// process of the box may win a ptrace attach on the trampoline
		// before it makes itself undumpable, and must not find it
		// unfiltered. (The trampoline's own calls — prctl, fcntl, execve,
		// write — must be allowed by the profile.)
		// The trampoline cannot be read: executed without the
		// capabilities that would read it anyway, it is undumpable from
		// its first instruction (see initproc.NewTrampolineFile). Those
		// come back with the exec of the command as its set says.
		noRead := sets
		noRead.Effective &^= 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH
		hdr, data := noRead.Capset()
		b.Call("drop the capabilities that read files, to run the trampoline", unix.SYS_CAPSET, initproc.Ptr(b, hdr), initproc.Ptr(b, data))
		if filter != nil && p.NoNewPrivileges && !notifyLate {
			loadSeccomp(b, filter)
		}
		if c.StartFD < 0 { // after create, nobody listens any more
			b.Send("start the trampoline", initproc.MsgVia, 0, 0)
		}
		t := &initproc.Trampoline{SyncFD: c.SyncFD}
		t.Op = b.ExecVia("exec "+p.Args[0]+" (through the trampoline)", c.TrampolineFD, paths, p.Args, p.Env)
		return t, nil
	}
	if filter != nil && p.NoNewPrivileges && !notifyLate {
		loadSeccomp(b, filter)
	}
	b.Exec("exec "+p.Args[0], paths, p.Args, p.Env)
	return nil, nil
}

// Key permissions (keyctl(2)): the possessor may do anything; processes of
// the same uid that do not possess it may view, read, search and link.
const sessionKeyringPerm = 0x3f000000 | 0x010000 | 0x020000 | 0x080000 | 0x100000

// sessionKeyring joins a new session keyring called name, so that the box
// neither sees nor changes the caller's session keys. Kernels without keys
// (ENOSYS) are let be, as runc does.
func sessionKeyring(b *initproc.Builder, name string) {
	k := b.NewReg()
	join := b.Call("join a new session keyring "+name, unix.SYS_KEYCTL, initproc.Imm(unix.KEYCTL_JOIN_SESSION_KEYRING), b.Str(name)).OutTo(k)
	join.OnErrno(unix.ENOSYS, -1)
	b.Call("set the session keyring's permissions", unix.SYS_KEYCTL, initproc.Imm(unix.KEYCTL_SETPERM), initproc.R(k), initproc.Imm(sessionKeyringPerm))
	b.PatchErrJump(join.Index(), b.Label())
	b.FreeReg(k)
}

// loadSeccomp appends the seccomp(2) call that installs f; for a filter
// that notifies, with a listener, which goes to the parent (MsgSeccomp).
func loadSeccomp(b *initproc.Builder, f *seccomp.Filter) {
	prog := &unix.SockFprog{Len: uint16(len(f.Prog)), Filter: &f.Prog[0]}
	flags := f.Flags
	if f.Notify {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	load := b.Call(fmt.Sprintf("load the seccomp filter (%d instructions)", len(f.Prog)), unix.SYS_SECCOMP,
		initproc.Imm(unix.SECCOMP_SET_MODE_FILTER), initproc.Imm(flags), initproc.Ptr(b, prog))
	if f.Notify {
		fd := load.Out()
		b.Send("hand on the seccomp listener", initproc.MsgSeccomp, 0, fd)
		b.Close(fd)
	}
}

// terminal opens a terminal in the box's devpts, makes it the controlling
// terminal and standard streams, and sends its master to the parent.
func terminal(b *initproc.Builder, c Config) {
	imm := func(v uintptr) initproc.Arg { return initproc.Imm(v) }
	m := b.Call("open /dev/ptmx", unix.SYS_OPENAT, initproc.Imm(unix.AT_FDCWD), b.Str("/dev/ptmx"),
		imm(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)).Out()
	var zero int32
	b.Call("unlock the terminal", unix.SYS_IOCTL, initproc.R(m), imm(unix.TIOCSPTLCK), initproc.Ptr(b, &zero))
	ws := c.WinSize
	if ws.Row == 0 && c.Spec.Process.ConsoleSize != nil {
		ws.Row, ws.Col = uint16(c.Spec.Process.ConsoleSize.Height), uint16(c.Spec.Process.ConsoleSize.Width)
	}
	if ws.Row != 0 {
		b.Call("set the terminal size", unix.SYS_IOCTL, initproc.R(m), imm(unix.TIOCSWINSZ), initproc.Ptr(b, &ws))
	}
	s := b.Call("open the terminal", unix.SYS_IOCTL, initproc.R(m), imm(unix.TIOCGPTPEER), imm(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)).Out()
	if c.FS != nil && c.FS.Console {
		tree := b.Call("bind the terminal on /dev/console", unix.SYS_OPEN_TREE, initproc.R(s), b.Str(""),
			imm(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)).Out()
		b.Call("bind the terminal on /dev/console", unix.SYS_MOVE_MOUNT, initproc.R(tree), b.Str(""), initproc.Imm(unix.AT_FDCWD),
			b.Str("/dev/console"), imm(unix.MOVE_MOUNT_F_EMPTY_PATH))
		b.Close(tree)
	}
	b.Call("make it the controlling terminal", unix.SYS_IOCTL, initproc.R(s), imm(unix.TIOCSCTTY), imm(0))
	b.Send("send the terminal to the parent", initproc.MsgPty, 0, m)
	for fd := uintptr(0); fd < 3; fd++ {
		b.Call("connect the terminal", unix.SYS_DUP3, initproc.R(s), imm(fd), imm(0))
	}
	b.Close(s)
	b.Close(m)
}

// loopbackUp brings lo up with SIOCSIFFLAGS on a socket of the new network
// namespace.
func loopbackUp(b *initproc.Builder) {
	var ifr [40]byte // struct ifreq: name[16], then flags (short)
	copy(ifr[:], "lo")
	*(*uint16)(unsafe.Pointer(&ifr[16])) = unix.IFF_UP
	s := b.Call("open a socket", unix.SYS_SOCKET, initproc.Imm(unix.AF_INET), initproc.Imm(unix.SOCK_DGRAM|unix.SOCK_CLOEXEC), initproc.Imm(0)).Out()
	b.Call("bring lo up", unix.SYS_IOCTL, initproc.R(s), initproc.Imm(unix.SIOCSIFFLAGS), initproc.Ptr(b, &ifr))
	b.Close(s)
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

func timeOffsets(s *specs.Spec) string {
	if s.Linux == nil {
		return ""
	}
	var sb strings.Builder
	for _, clock := range []string{"monotonic", "boottime"} {
		if o, ok := s.Linux.TimeOffsets[clock]; ok {
			fmt.Fprintf(&sb, "%s %d %d\n", clock, o.Secs, o.Nanosecs)
		}
	}
	return sb.String()
}

// candidates lists the paths to try for the command, as execvp(3) searches
// PATH (taken from the process environment).
func candidates(arg0 string, env []string) []string {
	if strings.Contains(arg0, "/") {
		return []string{arg0}
	}
	pathVar := DefaultPath
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			pathVar = e[len("PATH="):]
		}
	}
	var out []string
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		out = append(out, dir+"/"+arg0)
	}
	return out
}

// checkStrings rejects strings that cannot be passed to the kernel.
func checkStrings(s *specs.Spec) error {
	for _, f := range []struct {
		name string
		list []string
	}{{"process.args", s.Process.Args}, {"process.env", s.Process.Env}} {
		for _, v := range f.list {
			if strings.IndexByte(v, 0) >= 0 {
				return fmt.Errorf("%s: %q contains a NUL byte", f.name, v)
			}
		}
	}
	return nil
}

// personality returns the personality(2) value of an OCI personality.
func personality(p *specs.LinuxPersonality) (uintptr, error) {
	if len(p.Flags) > 0 {
		return 0, fmt.Errorf("linux.personality.flags: no flags are defined, got %v", p.Flags)
	}
	switch p.Domain {
	case specs.PerLinux:
		return 0x0000, nil
	case specs.PerLinux32:
		return 0x0008, nil
	}
	return 0, fmt.Errorf("linux.personality.domain: unknown %q (want LINUX or LINUX32)", p.Domain)
}

// labels applies the AppArmor profile and SELinux label of the process, at
// its exec; asking for them where the module is not enabled is an error.
func labels(b *initproc.Builder, c Config) error {
	p := c.Spec.Process
	var writes [][2]string
	if p.ApparmorProfile != "" {
		if !lsm.AppArmor() {
			return fmt.Errorf("process.apparmorProfile %q: AppArmor is not enabled on this kernel", p.ApparmorProfile)
		}
		writes = append(writes, [2]string{"/proc/thread-self/attr/apparmor/exec", "exec " + p.ApparmorProfile})
	}
	if p.SelinuxLabel != "" {
		if !lsm.SELinux() {
			return fmt.Errorf("process.selinuxLabel %q: SELinux is not enabled on this kernel", p.SelinuxLabel)
		}
		writes = append(writes, [2]string{"/proc/thread-self/attr/exec", p.SelinuxLabel})
	}
	if l := c.Spec.Linux; l != nil && l.MountLabel != "" && !lsm.SELinux() {
		return fmt.Errorf("linux.mountLabel %q: SELinux is not enabled on this kernel", l.MountLabel)
	}
	for _, w := range writes {
		what := "set the exec label " + w[1]
		f := b.Call(what, unix.SYS_OPENAT, initproc.Imm(unix.AT_FDCWD), b.Str(w[0]), initproc.Imm(unix.O_WRONLY|unix.O_CLOEXEC)).Out()
		b.Call(what, unix.SYS_WRITE, initproc.R(f), b.Bytes([]byte(w[1])), initproc.Imm(len(w[1])))
		b.Close(f)
	}
	return nil
}

// ipcSysctls are the kernel.* parameters of an IPC namespace.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// checkSysctls allows only parameters of namespaces the box has to itself,
// as runc does: setting another would change the host.
func checkSysctls(s *specs.Spec, ns namespaces.Plan) error {
	if s.Linux == nil {
		return nil
	}
	own := func(t namespaces.Type) bool { return !ns.Is(t, namespaces.Share) }
	for k := range s.Linux.Sysctl {
		var t namespaces.Type
		switch {
		case ipcSysctls[k] || strings.HasPrefix(k, "fs.mqueue."):
			t = specs.IPCNamespace
		case strings.HasPrefix(k, "net."):
			t = specs.NetworkNamespace
		case k == "kernel.hostname" || k == "kernel.domainname":
			t = specs.UTSNamespace
		default:
			return fmt.Errorf("linux.sysctl %q: not a parameter of a namespace the box has to itself", k)
		}
		if !own(t) {
			return fmt.Errorf("linux.sysctl %q: the box shares the host's %s namespace", k, namespaces.ProcName(t))
		}
		if strings.Contains(k, "/") || strings.Contains(k, "..") {
			return fmt.Errorf("linux.sysctl %q: not a parameter name", k)
		}
	}
	return nil
}

// joinedPIDProc makes a proc of the pid namespace this process joined (which
// only its children enter), for a box whose own user namespace does not own
// it and so could not mount one: a helper born into that namespace makes it
// with the caller's privileges, before the box's user namespace exists. It
// returns the register holding the detached mount.
func joinedPIDProc(b *initproc.Builder) initproc.Reg {
	// Its processes could open the helper's /proc/PID/exe (nsbox) or
	// memory (this process's): undumpable while it is there (dumpability
	// belongs to the memory the helper shares), as the box's first
	// process is before it enters the box's pid namespace.
	b.Call("make the helper undumpable", unix.SYS_PRCTL, initproc.Imm(unix.PR_SET_DUMPABLE), initproc.Imm(0))
	b.ForkHelper("fork a helper into the joined pid namespace, to make its proc")
	tree := detachedFS(b, "proc", "pid", unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	b.EndHelper()
	b.Call("make this process dumpable again, for its /proc files", unix.SYS_PRCTL, initproc.Imm(unix.PR_SET_DUMPABLE), initproc.Imm(1))
	return tree
}

// joinedNetSys makes a read-only sysfs of the network namespace this process
// joined (a sysfs shows its mounter's), for a box whose own user namespace
// does not own it and so could not mount one (it would see the host's
// devices): made now, with the caller's privileges, before the box's user
// namespace exists. It returns the register holding the detached mount.
func joinedNetSys(b *initproc.Builder) initproc.Reg {
	return detachedFS(b, "sysfs", "network", unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// detachedFS makes a new filesystem of type fstype, mounted nowhere yet
// (fsopen, fsconfig, fsmount with attrs), for the joined namespace of type
// nsType, and returns the register holding the mount.
func detachedFS(b *initproc.Builder, fstype, nsType string, attrs uintptr) initproc.Reg {
	of := " " + fstype + " of the joined " + nsType + " namespace"
	tree := b.NewReg()
	fsfd := b.Call("open a"+of, unix.SYS_FSOPEN, b.Str(fstype), initproc.Imm(unix.FSOPEN_CLOEXEC)).Out()
	b.Call("create the"+of, unix.SYS_FSCONFIG, initproc.R(fsfd), initproc.Imm(unix.FSCONFIG_CMD_CREATE), initproc.Imm(0), initproc.Imm(0), initproc.Imm(0))
	b.Call("mount the"+of, unix.SYS_FSMOUNT, initproc.R(fsfd), initproc.Imm(unix.FSMOUNT_CLOEXEC), initproc.Imm(attrs)).OutTo(tree)
	b.Close(fsfd)
	return tree
}

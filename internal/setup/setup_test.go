package setup

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/rootfs"
)

func spec(ns ...specs.LinuxNamespace) *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{Args: []string{"sh"}, Env: []string{"PATH=/bin:/usr/bin"}, Cwd: "/"},
		Root:    &specs.Root{Path: "/"},
		Linux:   &specs.Linux{Namespaces: ns},
	}
}

func build(t *testing.T, c Config) (*Result, string) {
	t.Helper()
	c.Stdio = [3]int{-1, -1, -1}
	if c.NS.Mode == nil {
		p, err := namespaces.PlanFor(c.Spec)
		if err != nil {
			t.Fatal(err)
		}
		c.NS = p
	}
	r, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Program.String()
}

// order checks that the steps named appear in the program in this order.
func order(t *testing.T, prog string, steps ...string) {
	t.Helper()
	at := 0
	for _, s := range steps {
		i := strings.Index(prog[at:], s)
		if i < 0 {
			t.Fatalf("no %q after position %d in:\n%s", s, at, prog)
		}
		at += i + len(s)
	}
}

func TestFastPathClonesEveryNamespace(t *testing.T) {
	s := spec(specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.PIDNamespace},
		specs.LinuxNamespace{Type: specs.NetworkNamespace})
	r, prog := build(t, Config{Spec: s, Init: true, DieWithParent: true})
	if r.Clone.Flags != unix.CLONE_NEWUSER|unix.CLONE_NEWPID|unix.CLONE_NEWNET || r.ForksPID1 || !r.NeedsMaps {
		t.Fatalf("clone flags %#x, forks %v, maps %v", r.Clone.Flags, r.ForksPID1, r.NeedsMaps)
	}
	order(t, prog, "wait for the parent (id maps, cgroup)", "become root of the user namespace", "make the box's first process undumpable",
		"ask to die with the parent", "check that the parent lives", "bring lo up", "fork the command",
		"unblock signals", "set capabilities", "exec sh", "close the init's files", "run as init")
}

func TestJoinsUnshareAndForkIntoThePidNamespace(t *testing.T) {
	s := spec(specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.PIDNamespace},
		specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/netns/x"})
	r, prog := build(t, Config{Spec: s, JoinFDs: map[namespaces.Type]int{specs.NetworkNamespace: 7}})
	if r.Clone.Flags != 0 || !r.ForksPID1 {
		t.Fatalf("clone flags %#x, forks %v", r.Clone.Flags, r.ForksPID1)
	}
	// Joined before the new user namespace exists, while the caller's
	// privileges still apply; the new ones after the id maps.
	// Undumpable before it enters the pid namespace, where the box's
	// processes could open its /proc/PID/exe.
	order(t, prog, "join net namespace /run/netns/x", "create a user namespace", "wait for the id maps",
		"create namespaces", "become root", "make the box's first process undumpable", "fork into the pid namespace", "exec sh")
}

func TestTrampolineTakesTheLastSteps(t *testing.T) {
	s := spec(specs.LinuxNamespace{Type: specs.PIDNamespace})
	s.Process.NoNewPrivileges = true
	s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mknod"}, Action: specs.ActErrno}}}
	r, prog := build(t, Config{Spec: s, TrampolineFD: 9, SyncFD: 5, StartFD: -1})
	if r.Trampoline == nil || r.Trampoline.SyncFD != 5 || len(r.Trampoline.Filter) != 0 || !r.Program.IsExec(r.Trampoline.Op) {
		t.Fatalf("trampoline %+v", r.Trampoline)
	}
	// The child loads the filter last before the trampoline, not the
	// trampoline (a box's process may ptrace it before it is undumpable),
	// and tells the parent the trampoline comes next.
	order(t, prog, "set no_new_privs", "close inherited files on exec", "keep the sync socket open for the trampoline",
		"drop the capabilities that read files, to run the trampoline", "load the seccomp filter", "start the trampoline",
		"exec sh (through the trampoline)")
	// After create, the parent no longer listens: nothing to tell it.
	if _, prog := build(t, Config{Spec: s, TrampolineFD: 9, SyncFD: 5, StartFD: 7}); strings.Contains(prog, "start the trampoline") {
		t.Errorf("a box made by create tells a parent that is gone:\n%s", prog)
	}
	// Without no_new_privs the filter goes in early, as without trampoline.
	s.Process.NoNewPrivileges = false
	r, prog = build(t, Config{Spec: s, TrampolineFD: 9, SyncFD: 5})
	if len(r.Trampoline.Filter) != 0 {
		t.Error("the trampoline loads a filter the child loaded")
	}
	order(t, prog, "load the seccomp filter", "set uid", "exec sh (through the trampoline)")
	if r, _ = build(t, Config{Spec: s}); r.Trampoline != nil {
		t.Error("a trampoline without TrampolineFD")
	}
}

func TestTimeOffsetsBeforeBecomingRoot(t *testing.T) {
	s := spec(specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.TimeNamespace})
	s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 10}, "boottime": {Secs: -3, Nanosecs: 5}}
	r, prog := build(t, Config{Spec: s})
	if r.Clone.Flags&unix.CLONE_NEWTIME != 0 {
		t.Error("the time namespace must be unshared, not cloned (offsets first)")
	}
	order(t, prog, "create a time namespace", "set time offsets monotonic 10 0, boottime -3 5", "become root")
}

func TestNoInitExecsDirectly(t *testing.T) {
	_, prog := build(t, Config{Spec: spec(specs.LinuxNamespace{Type: specs.PIDNamespace})})
	if strings.Contains(prog, "fork the command") || strings.Contains(prog, "run as init") {
		t.Errorf("no init requested:\n%s", prog)
	}
}

func TestCapabilitiesAndIdentity(t *testing.T) {
	s := spec()
	s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 6}}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"},
		Permitted: []string{"CAP_KILL"}, Inheritable: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}}
	s.Process.NoNewPrivileges = true
	_, prog := build(t, Config{Spec: s})
	order(t, prog, "keep capabilities across setuid", "drop CAP_CHOWN from the bounding set", "set supplementary groups [5 6]",
		"set gid 1000", "set uid 1000", "stop keeping capabilities", "set capabilities", "raise ambient CAP_KILL",
		"set no_new_privs", "set umask 0022", "resolve the working directory /", "close inherited files on exec", "exec sh")
	if strings.Contains(prog, "drop CAP_KILL") {
		t.Error("CAP_KILL dropped from the bounding set")
	}
	s.Process.Capabilities.Bounding = []string{"CAP_NOPE"}
	if _, err := Build(Config{Spec: s}); err == nil {
		t.Error("unknown capability accepted")
	}
}

func TestSetgroupsDenied(t *testing.T) {
	s := spec()
	_, prog := build(t, Config{Spec: s, SetgroupsDenied: true})
	if strings.Contains(prog, "supplementary groups") {
		t.Errorf("setgroups used where it is denied:\n%s", prog)
	}
	s.Process.User.AdditionalGids = []uint32{1}
	if _, err := Build(Config{Stdio: [3]int{-1, -1, -1}, Spec: s, SetgroupsDenied: true, NS: namespaces.Plan{Mode: map[namespaces.Type]namespaces.Mode{}}}); err == nil {
		t.Error("additional gids accepted with setgroups denied")
	}
}

func TestCandidates(t *testing.T) {
	if got := candidates("sh", []string{"PATH=/a:/b"}); strings.Join(got, " ") != "/a/sh /b/sh" {
		t.Errorf("%v", got)
	}
	if got := candidates("./x", nil); len(got) != 1 || got[0] != "./x" {
		t.Errorf("%v", got)
	}
	if got := candidates("ls", nil); len(got) != 6 || got[0] != "/usr/local/sbin/ls" {
		t.Errorf("default PATH: %v", got)
	}
}

func TestRejects(t *testing.T) {
	for name, mut := range map[string]func(*specs.Spec){
		"no args":      func(s *specs.Spec) { s.Process.Args = nil },
		"NUL in args":  func(s *specs.Spec) { s.Process.Args = []string{"a\x00b"} },
		"relative cwd": func(s *specs.Spec) { s.Process.Cwd = "tmp" },
		"bad rlimit":   func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}} },
	} {
		s := spec()
		mut(s)
		if _, err := Build(Config{Stdio: [3]int{-1, -1, -1}, Spec: s, NS: namespaces.Plan{Mode: map[namespaces.Type]namespaces.Mode{}}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPlacementComesBeforeTheCgroupNamespace(t *testing.T) {
	s := spec(specs.LinuxNamespace{Type: specs.CgroupNamespace}, specs.LinuxNamespace{Type: specs.PIDNamespace})
	r, prog := build(t, Config{Spec: s, Placement: true})
	if !r.GoAhead || r.Clone.Flags&unix.CLONE_NEWCGROUP != 0 || r.Clone.Flags&unix.CLONE_NEWPID == 0 {
		t.Fatalf("go-ahead %v, clone flags %#x: the cgroup namespace must wait for the placement", r.GoAhead, r.Clone.Flags)
	}
	order(t, prog, "wait for the parent", "create a cgroup namespace", "exec sh")
}

func TestSchedulingSteps(t *testing.T) {
	s := spec()
	s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}}
	s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 7}
	s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0-1", Final: "1"}
	s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"}
	_, prog := build(t, Config{Spec: s})
	order(t, prog, "set the cpu affinity 0-1", "set the I/O priority IOPRIO_CLASS_IDLE 7", "set the scheduling policy SCHED_BATCH",
		"set the memory policy MPOL_BIND on nodes 0", "set capabilities", "set the cpu affinity 1", "exec sh")
	for _, bad := range []func(*specs.Spec){
		func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_ISO"} },
		func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Nice: 40} },
		func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"X"}}
		},
		func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_X"} },
		func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		},
		func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Final: "3-1"} },
		func(s *specs.Spec) { s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind} },
		func(s *specs.Spec) { s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: "MPOL_X"} },
	} {
		s := spec()
		bad(s)
		if _, err := Build(Config{Spec: s}); err == nil {
			t.Errorf("accepted %+v %+v", s.Process, s.Linux.MemoryPolicy)
		}
	}
}

func TestPlacementWaitIsDeferred(t *testing.T) {
	// No user namespace, a cgroup to be placed in: the child gets on with
	// its namespaces and waits for the placement only before it execs.
	s := spec(specs.LinuxNamespace{Type: specs.PIDNamespace}, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	r, prog := build(t, Config{Spec: s, Placement: true})
	if !r.GoAhead {
		t.Fatal("the parent must send the go-ahead")
	}
	order(t, prog, "leave the caller's session", "wait for the parent to place this process in the box's cgroup",
		"create a cgroup namespace", "exec sh")
	// A reply from the parent must not be taken for the go-ahead: the wait
	// comes before the first step that waits for one.
	_, prog = build(t, Config{Spec: s, Placement: true, CreateHooks: true})
	order(t, prog, "wait for the parent to place this process in the box's cgroup", "run the create hooks")
	// With a user namespace made at the clone, one wait at the start covers
	// the maps and the placement.
	s = spec(specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	_, prog = build(t, Config{Spec: s, Placement: true})
	if strings.Contains(prog, "wait for the parent to place") {
		t.Errorf("a second wait:\n%s", prog)
	}
	order(t, prog, "wait for the parent (id maps, cgroup)", "create a cgroup namespace", "become root")
}

// TestJoinedPIDProcHelperIsUndumpable: the helper that makes the proc of a
// joined pid namespace is born into that namespace: undumpable while it is
// (it shares this process's memory), its proc made before the box's user
// namespace, and the process dumpable again afterwards for its /proc files.
func TestJoinedPIDProcHelperIsUndumpable(t *testing.T) {
	s := spec(specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.MountNamespace},
		specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"})
	s.Mounts = []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}}
	fs, err := rootfs.PlanFor(s, rootfs.Context{UserNS: true, JoinedPIDProc: true})
	if err != nil {
		t.Fatal(err)
	}
	_, prog := build(t, Config{Spec: s, FS: fs, JoinFDs: map[namespaces.Type]int{specs.PIDNamespace: 7}})
	order(t, prog, "join pid namespace /proc/1/ns/pid", "make the helper undumpable", "fork a helper into the joined pid namespace",
		"mount the proc of the joined pid namespace", "exit", "make this process dumpable again", "create a user namespace",
		"mount the joined namespace's proc on /proc")
}

package seccomp

import (
	"runtime"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
)

// outcome is what one system call did under a filter.
type outcome struct {
	errno  unix.Errno // 0: it succeeded (or failed for its own reasons: see own)
	signal unix.Signal
}

// try loads f in a forked child, makes the system call nr(args...) and
// reports how it ended. ownErrno lists errnos the call returns by itself
// (so they are not mistaken for the filter's).
func try(t *testing.T, f *Filter, nr uintptr, args ...uintptr) outcome {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	b := initproc.NewBuilder(fds[1])
	b.Call("no_new_privs", unix.SYS_PRCTL, initproc.Imm(unix.PR_SET_NO_NEW_PRIVS), initproc.Imm(1))
	prog := &unix.SockFprog{Len: uint16(len(f.Prog)), Filter: &f.Prog[0]}
	b.Call("load", unix.SYS_SECCOMP, initproc.Imm(unix.SECCOMP_SET_MODE_FILTER), initproc.Imm(f.Flags), initproc.Ptr(b, prog))
	var a []initproc.Arg
	for _, x := range args {
		a = append(a, initproc.Imm(x))
	}
	b.Call("the call", nr, a...)
	b.Exit(0)
	pid, pidfd, err := initproc.Start(b.Program(), initproc.Clone{})
	unix.Close(fds[1])
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	var o outcome
	buf := make([]byte, initproc.MsgSize)
	if n, _ := unix.Read(fds[0], buf); n == initproc.MsgSize {
		m := (*initproc.Msg)(unsafe.Pointer(&buf[0]))
		if m.Op != 2 {
			t.Fatalf("step %d failed with %v (the filter blocks the test's own calls?)", m.Op, unix.Errno(m.Errno))
		}
		o.errno = unix.Errno(m.Errno)
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
	if ws.Signaled() {
		o.signal = ws.Signal()
	}
	return o
}

func compile(t *testing.T, cfg *specs.LinuxSeccomp) *Filter {
	t.Helper()
	f, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func errnoRet(e unix.Errno) *uint { v := uint(e); return &v }

// allowTheTest lets through what the test child needs after the load.
var allowTheTest = specs.LinuxSyscall{Names: []string{"sendto", "exit_group", "exit"}, Action: specs.ActAllow}

func TestDenyList(t *testing.T) {
	f := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchAARCH64, specs.ArchARM},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getppid"}, Action: specs.ActErrno},
			{Names: []string{"getuid"}, Action: specs.ActErrno, ErrnoRet: errnoRet(unix.EXDEV)},
			{Names: []string{"getgid"}, Action: specs.ActKillProcess},
			{Names: []string{"not_a_syscall_anywhere"}, Action: specs.ActErrno},
		},
	})
	if o := try(t, f, unix.SYS_GETPPID); o.errno != unix.EPERM {
		t.Errorf("getppid: %+v, want EPERM", o)
	}
	if o := try(t, f, unix.SYS_GETUID); o.errno != unix.EXDEV {
		t.Errorf("getuid: %+v, want EXDEV (errnoRet)", o)
	}
	if o := try(t, f, unix.SYS_GETPID); o.errno != 0 || o.signal != 0 {
		t.Errorf("getpid: %+v, want allowed", o)
	}
	if o := try(t, f, unix.SYS_GETGID); o.signal != unix.SIGSYS {
		t.Errorf("getgid: %+v, want killed by SIGSYS", o)
	}
}

func TestAllowListAndENOSYS(t *testing.T) {
	f := compile(t, &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: errnoRet(unix.EACCES),
		Syscalls: []specs.LinuxSyscall{allowTheTest,
			{Names: []string{"getpid", "getppid"}, Action: specs.ActAllow}},
	})
	if o := try(t, f, unix.SYS_GETPPID); o.errno != 0 {
		t.Errorf("getppid: %+v, want allowed", o)
	}
	if o := try(t, f, unix.SYS_GETUID); o.errno != unix.EACCES {
		t.Errorf("getuid: %+v, want EACCES (defaultErrnoRet)", o)
	}
	// Newer than anything the profile names, and clone3 when unnamed:
	// ENOSYS, so that libc falls back.
	if o := try(t, f, unix.SYS_CLONE3, 0, 0); o.errno != unix.ENOSYS {
		t.Errorf("clone3: %+v, want ENOSYS", o)
	}
	if o := try(t, f, unix.SYS_CLOSE_RANGE, 1000, 1000, 0); o.errno != unix.ENOSYS {
		t.Errorf("close_range: %+v, want ENOSYS", o)
	}
}

func TestArgumentConditions(t *testing.T) {
	const big = uint64(1) << 33 // exercises the high halves
	ops := []struct {
		op          specs.LinuxSeccompOperator
		value, two  uint64
		pass, block []uint64 // getpriority's first argument
	}{
		{specs.OpEqualTo, 7, 0, []uint64{7}, []uint64{6, 7 + big}},
		{specs.OpNotEqual, 7, 0, []uint64{8, 7 + big}, []uint64{7}},
		{specs.OpGreaterThan, big + 5, 0, []uint64{big + 6, 2 * big}, []uint64{big + 5, 5, big}},
		{specs.OpGreaterEqual, big + 5, 0, []uint64{big + 5, 2 * big}, []uint64{big + 4, 6}},
		{specs.OpLessThan, big + 5, 0, []uint64{big + 4, 7}, []uint64{big + 5, 2 * big}},
		{specs.OpLessEqual, big + 5, 0, []uint64{big + 5, 1}, []uint64{big + 6, 2 * big}},
		{specs.OpMaskedEqual, 0xff | big, 0x12 | big, []uint64{0x12 | big, 0x312 | big}, []uint64{0x12, 0x13 | big}},
	}
	for _, c := range ops {
		// Block (EXDEV) when the condition holds; pass[] are values for
		// which it must hold.
		f := compile(t, &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: errnoRet(unix.EXDEV),
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: c.value, ValueTwo: c.two, Op: c.op}}}},
		})
		for _, v := range c.pass {
			if o := try(t, f, unix.SYS_GETPRIORITY, uintptr(v), 0); o.errno != unix.EXDEV {
				t.Errorf("%s %#x: arg %#x should match (got %+v)", c.op, c.value, v, o)
			}
		}
		for _, v := range c.block {
			if o := try(t, f, unix.SYS_GETPRIORITY, uintptr(v), 0); o.errno == unix.EXDEV {
				t.Errorf("%s %#x: arg %#x should not match", c.op, c.value, v)
			}
		}
	}
}

func TestConditionalRulesComeFirst(t *testing.T) {
	// As with libseccomp: an unconditional allow does not hide a
	// conditional deny listed after it (Docker's socket/AF_VSOCK rule).
	f := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{allowTheTest,
			{Names: []string{"getpriority"}, Action: specs.ActAllow},
			{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: errnoRet(unix.EXDEV),
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: 40, Op: specs.OpEqualTo}}},
		},
	})
	if o := try(t, f, unix.SYS_GETPRIORITY, 40, 0); o.errno != unix.EXDEV {
		t.Errorf("getpriority(40): %+v, want EXDEV", o)
	}
	if o := try(t, f, unix.SYS_GETPRIORITY, 0, 0); o.errno == unix.EXDEV || o.errno == unix.EPERM {
		t.Errorf("getpriority(0): %+v, want allowed", o)
	}
}

func TestLargeProfileFits(t *testing.T) {
	var names []string
	native, _ := nativeArch()
	for _, e := range arches[native].syscalls {
		names = append(names, e.name)
	}
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}}
	for i, n := range names {
		sc := specs.LinuxSyscall{Names: []string{n}, Action: specs.ActAllow}
		if i%10 == 0 {
			sc.Args = []specs.LinuxSeccompArg{{Index: 1, Value: uint64(i), Op: specs.OpNotEqual}}
		}
		cfg.Syscalls = append(cfg.Syscalls, sc)
	}
	f := compile(t, cfg)
	if len(f.Prog) > 4096 {
		t.Fatalf("%d instructions", len(f.Prog))
	}
	t.Logf("every syscall, 10%% with a condition, 2 architectures: %d instructions", len(f.Prog))
}

func TestBadInput(t *testing.T) {
	for name, cfg := range map[string]*specs.LinuxSeccomp{
		"action":   {DefaultAction: "SCMP_ACT_MAYBE"},
		"arch":     {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}},
		"flag":     {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"}},
		"operator": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_ABOUT"}}}}},
		"index":    {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
		"names":    {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Action: specs.ActErrno}}},
		"errno":    {DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoRet(70000)},
		"notify":   {DefaultAction: specs.ActNotify},
	} {
		if _, err := Compile(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "seccomp") && !strings.Contains(err.Error(), "action") {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestSysTableLookup(t *testing.T) {
	for _, a := range arches {
		tab := a.syscalls
		for i, e := range tab {
			if i > 0 && tab[i-1].name >= e.name {
				t.Fatalf("table not sorted at %q", e.name)
			}
			if nr, ok := tab.lookup(e.name); !ok || nr != e.nr {
				t.Fatalf("lookup(%q) = %d, %v", e.name, nr, ok)
			}
		}
		if _, ok := tab.lookup("no_such_call"); ok {
			t.Fatal("found no_such_call")
		}
	}
	if nr, _ := arches["SCMP_ARCH_X86_64"].syscalls.lookup("openat2"); runtime.GOARCH == "amd64" && nr != 437 {
		t.Fatalf("openat2 = %d", nr)
	}
}

// TestAssembleJumpReach checks the jump layout: a conditional jump whose
// label is within 255 instructions is one instruction; one beyond becomes
// a test and a JA; and an expansion that pushes another jump out of reach
// expands that one too. Every jump must land on its label's instruction.
func TestAssembleJumpReach(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fill      int  // instructions between the jumps and the label
		negate    bool // jne rather than jeq
		wantLen   int
		wantShort int // conditional jumps left as one instruction
	}{
		{name: "near", fill: 10, wantLen: 2 + 10 + 1, wantShort: 2},
		{name: "near, negated", fill: 10, negate: true, wantLen: 2 + 10 + 1, wantShort: 2},
		{name: "at the edge", fill: 254, wantLen: 2 + 254 + 1, wantShort: 2},
		// The second jump reaches (offset 254 + 1 = 255); the first
		// does not, and its JA moves the label one further from it,
		// not from the second.
		{name: "first out of reach", fill: 255, wantLen: 3 + 255 + 1, wantShort: 1},
		{name: "both out of reach", fill: 300, negate: true, wantLen: 4 + 300 + 1, wantShort: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &asm{}
			l := a.newLabel()
			for _, k := range []uint32{1, 2} {
				if tc.negate {
					a.jne(k, l)
				} else {
					a.jeq(k, l)
				}
			}
			for range tc.fill {
				a.load(offNr)
			}
			a.place(l)
			a.ret(unix.SECCOMP_RET_ALLOW)
			prog, err := a.assemble()
			if err != nil {
				t.Fatal(err)
			}
			if len(prog) != tc.wantLen {
				t.Fatalf("%d instructions, want %d:\n%s", len(prog), tc.wantLen, Dump(prog))
			}
			short, target := 0, len(prog)-1
			for pc := 0; pc < len(prog); pc++ {
				f := prog[pc]
				if f.Code&0x07 != unix.BPF_JMP {
					continue
				}
				if f.Code == unix.BPF_JMP|unix.BPF_JA {
					if got := pc + 1 + int(f.K); got != target {
						t.Errorf("JA at %d lands at %d, want %d", pc, got, target)
					}
					continue
				}
				taken, other := int(f.Jt), int(f.Jf)
				if tc.negate {
					taken, other = other, taken
				}
				if taken > 1 || other > 1 { // a short jump
					short++
					if got := pc + 1 + taken; got != target {
						t.Errorf("jump at %d lands at %d, want %d", pc, got, target)
					}
					continue
				}
				// A long one: the taken branch reaches the JA right after.
				if taken != 0 || other != 1 || prog[pc+1].Code != unix.BPF_JMP|unix.BPF_JA {
					t.Errorf("jump at %d: jt=%d jf=%d, not a test before a JA:\n%s", pc, f.Jt, f.Jf, Dump(prog))
				}
			}
			if short != tc.wantShort {
				t.Errorf("%d short jumps, want %d:\n%s", short, tc.wantShort, Dump(prog))
			}
		})
	}
}

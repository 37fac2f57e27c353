package seccomp

import (
	"encoding/binary"
	"runtime"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// dockerDefaultCaps is the bounding set of a box by default (caps.Default,
// which this package cannot import).
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// run interprets prog on one system call, as the kernel would: the value
// the filter returns.
func run(t *testing.T, prog []unix.SockFilter, audit, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], audit)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			var ok bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				ok = acc == in.K
			case unix.BPF_JGT:
				ok = acc > in.K
			case unix.BPF_JGE:
				ok = acc >= in.K
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			t.Fatalf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	t.Fatal("fell off the end of the program")
	return 0
}

func nativeTable(t *testing.T) arch {
	native, _ := nativeArch()
	a, ok := arches[native]
	if !ok {
		t.Skipf("no seccomp tables for %s", runtime.GOARCH)
	}
	return a
}

// TestDefaultProfileDecisions checks the default profile call by call
// against what Docker's documentation lists as blocked by its default
// profile, and against calls every program needs.
func TestDefaultProfileDecisions(t *testing.T) {
	a := nativeTable(t)
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	decide := func(caps []string, name string, args [6]uint64) (uint32, bool) {
		f, err := Compile(Default(caps))
		if err != nil {
			t.Fatal(err)
		}
		nr, ok := a.syscalls.lookup(name)
		if !ok {
			return 0, false
		}
		return run(t, f.Prog, a.audit, nr, args), true
	}
	blocked := []string{"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module",
		"finit_module", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load",
		"keyctl", "lookup_dcookie", "mbind", "mount", "move_pages", "name_to_handle_at", "nfsservctl",
		"open_by_handle_at", "perf_event_open", "pivot_root", "quotactl", "reboot", "request_key", "set_mempolicy",
		"setns", "settimeofday", "swapon", "swapoff", "sysfs", "_sysctl", "umount2", "uselib", "userfaultfd",
		"ustat", "vm86", "vm86old", "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen", "open_tree",
		"move_mount", "fsmount", "mount_setattr", "syslog", "sethostname", "setdomainname", "pidfd_getfd"}
	for _, name := range blocked {
		if got, ok := decide(dockerDefaultCaps, name, [6]uint64{}); ok && got != eperm {
			t.Errorf("%s: filter returns %#x, want EPERM", name, got)
		}
	}
	needed := []string{"read", "write", "openat", "execve", "mmap", "futex", "rt_sigaction", "clone", "wait4",
		"exit_group", "getpid", "socket", "ioctl", "statx", "prctl", "ptrace", "chroot", "landlock_create_ruleset",
		"seccomp", "setuid", "capset", "rseq", "getrandom", "memfd_create", "unshare"}
	for _, name := range needed {
		if got, ok := decide(dockerDefaultCaps, name, [6]uint64{}); ok && got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("%s: filter returns %#x, want ALLOW", name, got)
		}
	}
	// clone3 without CAP_SYS_ADMIN: ENOSYS, so that libc uses clone.
	if got, _ := decide(dockerDefaultCaps, "clone3", [6]uint64{}); got != unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS) {
		t.Errorf("clone3: %#x, want ENOSYS", got)
	}
	// Capabilities open their calls.
	for _, c := range []struct{ capability, name string }{
		{"CAP_SYS_ADMIN", "mount"}, {"CAP_SYS_ADMIN", "setns"}, {"CAP_SYS_ADMIN", "clone3"}, {"CAP_BPF", "bpf"},
		{"CAP_PERFMON", "perf_event_open"}, {"CAP_SYS_TIME", "settimeofday"}, {"CAP_SYS_PTRACE", "kcmp"},
		{"CAP_SYS_MODULE", "finit_module"}, {"CAP_SYS_BOOT", "reboot"}, {"CAP_SYS_NICE", "mbind"},
	} {
		if got, ok := decide(append([]string{c.capability}, dockerDefaultCaps...), c.name, [6]uint64{}); ok && got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("%s with %s: %#x, want ALLOW", c.name, c.capability, got)
		}
	}
	// Keys stay out of reach whatever the capabilities.
	if got, _ := decide(append([]string{"CAP_SYS_ADMIN"}, dockerDefaultCaps...), "keyctl", [6]uint64{}); got != eperm {
		t.Errorf("keyctl with CAP_SYS_ADMIN: %#x, want EPERM", got)
	}
	// Arguments: new namespaces, personalities, audit sockets.
	for _, c := range []struct {
		caps []string
		name string
		args [6]uint64
		want uint32
	}{
		{dockerDefaultCaps, "clone", [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, eperm},
		{dockerDefaultCaps, "clone", [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, unix.SECCOMP_RET_ALLOW},
		{dockerDefaultCaps, "unshare", [6]uint64{unix.CLONE_NEWUSER}, eperm},
		{dockerDefaultCaps, "unshare", [6]uint64{unix.CLONE_NEWNS}, eperm},
		{dockerDefaultCaps, "unshare", [6]uint64{unix.CLONE_NEWTIME}, eperm},
		{dockerDefaultCaps, "unshare", [6]uint64{unix.CLONE_FS | unix.CLONE_FILES}, unix.SECCOMP_RET_ALLOW},
		{[]string{"CAP_SYS_ADMIN"}, "unshare", [6]uint64{unix.CLONE_NEWUSER}, unix.SECCOMP_RET_ALLOW},
		{dockerDefaultCaps, "personality", [6]uint64{0xffffffff}, unix.SECCOMP_RET_ALLOW},
		{dockerDefaultCaps, "personality", [6]uint64{0x0008}, unix.SECCOMP_RET_ALLOW},
		{dockerDefaultCaps, "personality", [6]uint64{0x0400000}, eperm}, // READ_IMPLIES_EXEC
		{[]string{"CAP_KILL"}, "socket", [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}, eperm},
		{[]string{"CAP_KILL"}, "socket", [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE}, unix.SECCOMP_RET_ALLOW},
		{[]string{"CAP_KILL"}, "socket", [6]uint64{unix.AF_INET, unix.SOCK_RAW, unix.NETLINK_AUDIT}, unix.SECCOMP_RET_ALLOW},
		{dockerDefaultCaps, "socket", [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}, unix.SECCOMP_RET_ALLOW},
	} {
		if got, _ := decide(c.caps, c.name, c.args); got != c.want {
			t.Errorf("%s(%#x) with %v: %#x, want %#x", c.name, c.args[0], c.caps, got, c.want)
		}
	}
	// Other ABIs: the 32-bit one is filtered too, x32 is killed.
	f, err := Compile(Default(dockerDefaultCaps))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOARCH == "amd64" {
		if got := run(t, f.Prog, a.audit, x32SyscallBit|0, [6]uint64{}); got != unix.SECCOMP_RET_KILL_PROCESS {
			t.Errorf("x32 read: %#x, want KILL_PROCESS", got)
		}
		x86 := arches["SCMP_ARCH_X86"]
		nr, _ := x86.syscalls.lookup("keyctl")
		if got := run(t, f.Prog, x86.audit, nr, [6]uint64{}); got != eperm {
			t.Errorf("i386 keyctl: %#x, want EPERM", got)
		}
	}
	t.Logf("default profile: %d instructions", len(f.Prog))
}

// TestDefaultProfileOnTheKernel loads the default profile for real and
// makes the calls it decides.
func TestDefaultProfileOnTheKernel(t *testing.T) {
	f, err := Compile(Default(dockerDefaultCaps))
	if err != nil {
		t.Fatal(err)
	}
	if o := try(t, f, unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(^uint32(0)-2), 0); o.errno != unix.EPERM {
		t.Errorf("keyctl: %+v, want EPERM", o)
	}
	if o := try(t, f, unix.SYS_UNSHARE, unix.CLONE_NEWUSER); o.errno != unix.EPERM {
		t.Errorf("unshare(CLONE_NEWUSER): %+v, want EPERM", o)
	}
	if o := try(t, f, unix.SYS_UNSHARE, unix.CLONE_FS); o.errno != 0 {
		t.Errorf("unshare(CLONE_FS): %+v, want allowed", o)
	}
	if o := try(t, f, unix.SYS_CLONE3, 0, 0); o.errno != unix.ENOSYS {
		t.Errorf("clone3: %+v, want ENOSYS", o)
	}
	if o := try(t, f, unix.SYS_GETPID); o.errno != 0 || o.signal != 0 {
		t.Errorf("getpid: %+v, want allowed", o)
	}
	if o := try(t, f, unix.SYS_PERSONALITY, 0xffffffff); o.errno != 0 {
		t.Errorf("personality query: %+v, want allowed", o)
	}
}

func BenchmarkCompileDefault(b *testing.B) {
	for b.Loop() {
		if _, err := Compile(Default(dockerDefaultCaps)); err != nil {
			b.Fatal(err)
		}
	}
}

// The profile a spec would carry for the default capabilities is a valid
// one for Compile on every architecture name it lists.
func TestDefaultProfileValid(t *testing.T) {
	p := Default(nil)
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != uint(unix.EPERM) {
		t.Fatalf("default action %s", p.DefaultAction)
	}
	if _, err := Compile(p); err != nil {
		t.Fatal(err)
	}
}

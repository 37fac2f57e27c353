package initproc

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/nsbox/nsbox/internal/testenv"
	"golang.org/x/sys/unix"
)

// runProgram builds a program with build, starts it with flags and collects
// the messages the child sends until end of file, then reaps the child.
func runProgram(t *testing.T, flags uint64, build func(b *Builder)) (msgs []Msg, status unix.WaitStatus) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := fds[0], fds[1]
	defer unix.Close(parent)
	b := NewBuilder(child)
	build(b)
	pid, pidfd, err := Start(b.Program(), Clone{Flags: flags})
	unix.Close(child)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	buf := make([]byte, MsgSize)
	for {
		n, err := unix.Read(parent, buf)
		if err != nil || n == 0 {
			break
		}
		m := *(*Msg)(unsafe.Pointer(&buf[0]))
		msgs = append(msgs, m)
		if m.Kind == MsgMaps {
			unix.Write(parent, []byte{0})
		}
	}
	if _, err := unix.Wait4(pid, &status, 0, nil); err != nil {
		t.Fatal(err)
	}
	return msgs, status
}

func requireRoot(t *testing.T) { testenv.RequireRoot(t) }

func TestExecAndExitStatus(t *testing.T) {
	msgs, st := runProgram(t, 0, func(b *Builder) {
		b.Exec("exec sh", []string{"/nonexistent/sh", "/bin/sh"}, []string{"sh", "-c", "exit 7"}, nil)
	})
	if len(msgs) != 0 || st.ExitStatus() != 7 {
		t.Fatalf("msgs %v, status %v; want none and 7", msgs, st)
	}
}

func TestExecNotFoundReportsStep(t *testing.T) {
	var b0 *Builder
	msgs, st := runProgram(t, 0, func(b *Builder) {
		b0 = b
		b.Call("first", unix.SYS_GETPID)
		b.Exec("exec nope", []string{"/nonexistent/a", "/nonexistent/b"}, []string{"nope"}, nil)
	})
	if len(msgs) != 1 || msgs[0].Kind != MsgError || msgs[0].Op != 1 || unix.Errno(msgs[0].Errno) != unix.ENOENT {
		t.Fatalf("msgs %+v; want one MsgError for step 1 with ENOENT", msgs)
	}
	if !b0.Program().IsExec(1) || st.ExitStatus() != ExitChildFailed {
		t.Fatalf("status %v", st)
	}
}

func TestFailingCallAndAllowedErrno(t *testing.T) {
	msgs, _ := runProgram(t, 0, func(b *Builder) {
		b.Call("close a bad fd, tolerated", unix.SYS_CLOSE, Imm(9999)).Allow(unix.EBADF)
		b.Call("close a bad fd", unix.SYS_CLOSE, Imm(9998))
		b.Exit(0)
	})
	if len(msgs) != 1 || msgs[0].Op != 1 || unix.Errno(msgs[0].Errno) != unix.EBADF {
		t.Fatalf("msgs %+v; want step 1 failing with EBADF", msgs)
	}
}

func TestRegistersAndJumps(t *testing.T) {
	// Open /dev/null into a register, jump over a failing step, and dup the
	// register onto fd 1 so that the command's output vanishes.
	out := captureStdout(t, func() {
		msgs, st := runProgram(t, 0, func(b *Builder) {
			null := b.Call("open /dev/null", unix.SYS_OPENAT, Imm(unix.AT_FDCWD), b.Str("/dev/null"), Imm(unix.O_WRONLY)).Out()
			j := b.Call("getpid", unix.SYS_GETPID)
			b.Call("never runs", unix.SYS_CLOSE, Imm(9999))
			j.JumpOnSuccess(b.Label())
			b.Call("dup to stdout", unix.SYS_DUP3, R(null), Imm(1), Imm(0))
			b.Exec("exec echo", []string{"/bin/echo"}, []string{"echo", "hidden"}, nil)
		})
		if len(msgs) != 0 || st.ExitStatus() != 0 {
			t.Errorf("msgs %+v status %v", msgs, st)
		}
	})
	if strings.Contains(out, "hidden") {
		t.Fatalf("output %q escaped /dev/null", out)
	}
}

func TestStoreFillsAStructure(t *testing.T) {
	// The child opens /dev/null and stores the fd into a struct pollfd laid
	// out by the parent with fd -1: poll then finds it readable (1) only if
	// the store happened (a negative fd is ignored: 0). The count goes back
	// in a message.
	var pfd unix.PollFd
	pfd.Fd, pfd.Events = -1, unix.POLLIN
	msgs, st := runProgram(t, 0, func(b *Builder) {
		null := b.Call("open /dev/null", unix.SYS_OPENAT, Imm(unix.AT_FDCWD), b.Str("/dev/null"), Imm(unix.O_RDONLY)).Out()
		b.Store("store the fd", null, &pfd.Fd)
		var now unix.Timespec
		n := b.Call("poll", unix.SYS_PPOLL, Ptr(b, &pfd), Imm(1), Ptr(b, &now), Imm(0), Imm(0)).Out()
		b.Send("report", MsgReady, n, 0)
		b.Exit(0)
	})
	if len(msgs) != 1 || msgs[0].Kind != MsgReady || msgs[0].Val != 1 || st.ExitStatus() != 0 {
		t.Fatalf("msgs %+v status %v; want one MsgReady with 1 ready fd", msgs, st)
	}
	if pfd.Fd != -1 {
		t.Errorf("the child's store reached the parent's memory: fd %d", pfd.Fd)
	}
}

func TestNamespacesAndHostname(t *testing.T) {
	requireRoot(t)
	out := captureStdout(t, func() {
		_, st := runProgram(t, unix.CLONE_NEWUTS, func(b *Builder) {
			name := "initproc-test"
			b.Call("set hostname", unix.SYS_SETHOSTNAME, b.Str(name), Imm(len(name)))
			b.Exec("exec hostname", []string{"/bin/hostname"}, []string{"hostname"}, nil)
		})
		if st.ExitStatus() != 0 {
			t.Errorf("status %v", st)
		}
	})
	if strings.TrimSpace(out) != "initproc-test" {
		t.Fatalf("hostname in the box = %q", out)
	}
	if h, _ := os.Hostname(); h == "initproc-test" {
		t.Fatal("hostname leaked to the host")
	}
}

func TestWaitForTheParent(t *testing.T) {
	// With Wait the child asks nothing: the parent speaks first.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	b := NewBuilder(fds[1])
	b.Wait("wait")
	b.Exit(3)
	pid, pidfd, err := Start(b.Program(), Clone{})
	unix.Close(fds[1])
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	unix.Write(fds[0], []byte{0})
	var st unix.WaitStatus
	unix.Wait4(pid, &st, 0, nil)
	if st.ExitStatus() != 3 {
		t.Fatalf("status %v, want 3 after the go-ahead", st)
	}
}

func TestUserNamespaceSync(t *testing.T) {
	// The child waits in MsgMaps until the parent answers.
	msgs, st := runProgram(t, unix.CLONE_NEWUSER, func(b *Builder) {
		b.Sync("wait for id maps", MsgMaps, 0, false)
		b.Exit(3)
	})
	if len(msgs) != 1 || msgs[0].Kind != MsgMaps || st.ExitStatus() != 3 {
		t.Fatalf("msgs %+v status %v", msgs, st)
	}
}

func TestInitReapsAndPropagatesSignal(t *testing.T) {
	requireRoot(t)
	// PID 1 of a new pid namespace forks "sh", which leaves an orphan behind
	// and kills itself with SIGTERM: the init must exit with 128+15.
	_, st := runProgram(t, unix.CLONE_NEWPID, func(b *Builder) {
		var set uint64 = 1<<(unix.SIGCHLD-1) | 1<<(unix.SIGTERM-1)
		mask := Ptr(b, &set)
		b.Call("block signals", unix.SYS_RT_SIGPROCMASK, Imm(unix.SIG_BLOCK), mask, Imm(0), Imm(8))
		sfd := b.Call("signalfd", unix.SYS_SIGNALFD4, Imm(-1), mask, Imm(8), Imm(unix.SFD_CLOEXEC)).Out()
		pid, fork := b.ForkInit("fork the command")
		var empty uint64
		b.Call("unblock signals", unix.SYS_RT_SIGPROCMASK, Imm(unix.SIG_SETMASK), Ptr(b, &empty), Imm(0), Imm(8))
		b.Exec("exec sh", []string{"/bin/sh"}, []string{"sh", "-c", "sleep 0.2 & kill -TERM $$"}, nil)
		b.SetInitStart(fork, b.Label())
		b.InitLoop("reap", pid, R(sfd))
	})
	if st.ExitStatus() != 128+15 {
		t.Fatalf("init exit status %v, want 143", st)
	}
}

func TestChildMakesNoCalls(t *testing.T) {
	// After the fork, start may only call the runtime's fork hooks and raw
	// system calls. Any other call could grow the stack or allocate, which
	// kills a forked child.
	// Test binaries have no symbol table, so build one that has.
	exe := t.TempDir() + "/initproc.test"
	if out, err := exec.Command("go", "test", "-c", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v: %s", err, out)
	}
	out, err := exec.Command("go", "tool", "objdump", "-s", `initproc\.start$`, exe).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump: %v: %s", err, out)
	}
	if !bytes.Contains(out, []byte("TEXT")) {
		t.Fatal("start not found in the test binary")
	}
	allowed := map[string]bool{
		"syscall.RawSyscall":                                     true,
		"syscall.RawSyscall6":                                    true,
		"syscall.runtime_BeforeFork":                             true,
		"syscall.runtime_AfterFork":                              true,
		"syscall.runtime_AfterForkInChild":                       true,
		"runtime.morestack_noctxt.abi0":                          true, // the prologue, before the fork
		"github.com/nsbox/nsbox/internal/initproc.rawVfork.abi0": true, // assembly, no stack use
	}
	re := regexp.MustCompile(`CALL ([\w./]+)\(SB\)`)
	for _, m := range re.FindAllSubmatch(out, -1) {
		name := string(m[1])
		if !allowed[name] {
			t.Errorf("start calls %s, which a forked child must not", name)
		}
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, _ := unix.Dup(1)
	unix.Dup2(int(w.Fd()), 1)
	f()
	unix.Dup2(saved, 1)
	unix.Close(saved)
	w.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r)
	r.Close()
	return buf.String()
}

func TestExpectChecksMemory(t *testing.T) {
	// fstat /dev/null into memory the program keeps, then expect it to be
	// the character device 1:3 (passes) and 1:5 (fails at that step).
	for _, c := range []struct {
		minor uint32
		fails bool
	}{{3, false}, {5, true}} {
		var st unix.Stat_t
		var stepWant int32
		msgs, status := runProgram(t, 0, func(b *Builder) {
			null := b.Call("open /dev/null", unix.SYS_OPENAT, Imm(unix.AT_FDCWD), b.Str("/dev/null"), Imm(unix.O_PATH)).Out()
			b.Call("fstat", unix.SYS_FSTAT, R(null), Ptr(b, &st))
			stepWant = int32(len(b.p.ops))
			b.Expect("is the null device", &st.Rdev, ^uint64(0), unix.Mkdev(1, c.minor))
			b.Exit(0)
		})
		switch {
		case c.fails && (len(msgs) != 1 || msgs[0].Kind != MsgError || msgs[0].Errno != 0 || msgs[0].Op != stepWant):
			t.Errorf("1:%d: msgs %+v status %v; want the expect step (%d) to fail (errno 0)", c.minor, msgs, status, stepWant)
		case !c.fails && (len(msgs) != 0 || status.ExitStatus() != 0):
			t.Errorf("1:%d: msgs %+v status %v; want a clean exit", c.minor, msgs, status)
		}
	}
}

// TestForkHelper: the helper's registers and descriptors are the forking
// process's once it has exited, which then goes on after the helper's
// steps; a failing step of the helper is reported as its own, and the
// process stops there.
func TestForkHelper(t *testing.T) {
	if !CanForkHelper {
		t.Skip("no ForkHelper on this architecture")
	}
	msgs, st := runProgram(t, 0, func(b *Builder) {
		pid, null := b.NewReg(), b.NewReg()
		b.ForkHelper("helper")
		b.Call("helper's pid", unix.SYS_GETPID).OutTo(pid)
		b.Call("open /dev/null", unix.SYS_OPENAT, Imm(unix.AT_FDCWD), b.Str("/dev/null"), Imm(unix.O_RDONLY)).OutTo(null)
		b.EndHelper()
		b.Send("the helper's pid", MsgReady, pid, 0)
		b.Call("the helper's descriptor is ours", unix.SYS_FCNTL, R(null), Imm(unix.F_GETFD))
		b.Exit(7)
	})
	if st.ExitStatus() != 7 || len(msgs) != 1 || msgs[0].Kind != MsgReady || msgs[0].Val <= 0 {
		t.Fatalf("status %v, messages %+v: want 7 and the helper's pid", st, msgs)
	}
	var failing int
	msgs, st = runProgram(t, 0, func(b *Builder) {
		b.ForkHelper("helper")
		failing = b.Call("fails in the helper", unix.SYS_CLOSE, Imm(9999)).Index()
		b.EndHelper()
		b.Send("never sent", MsgReady, 0, 0)
		b.Exit(0)
	})
	if st.ExitStatus() != ExitChildFailed || len(msgs) != 1 || msgs[0].Kind != MsgError || int(msgs[0].Op) != failing || msgs[0].Errno != int32(unix.EBADF) {
		t.Fatalf("status %v, messages %+v: want %d and the helper's step %d failing with EBADF", st, msgs, ExitChildFailed, failing)
	}
}

// TestHideCommandLineOnlyOverTheArgvArea: the command line is written over
// only while os.Args are strings laid out one after another, each ended by
// a NUL (the process's argv area); a program that replaced them does not
// get memory beyond them overwritten.
func TestHideCommandLineOnlyOverTheArgvArea(t *testing.T) {
	saved := os.Args
	defer func() { os.Args = saved }()
	for _, tc := range []struct {
		area  string
		gap   int // bytes between the first string's NUL and the second
		steps int
	}{
		{"abc\x00def\x00", 0, 1},
		{"abc\x00\x00def\x00", 1, 0},
	} {
		area := []byte(tc.area)
		os.Args = []string{unsafe.String(&area[0], 3), unsafe.String(&area[4+tc.gap], 3)}
		b := NewBuilder(-1)
		b.HideCommandLine()
		if n := len(b.Program().ops); n != tc.steps {
			t.Errorf("arguments %q with a gap of %d: %d steps, want %d", tc.area, tc.gap, n, tc.steps)
		}
		runtime.KeepAlive(area)
	}
}

// Package initproc is the child side of a box: a Program of steps that a freshly
// cloned process runs between clone(2) and execve(2), and the PID-1 reaper that
// stays behind when the box has its own pid namespace.
//
// The child is a fork of the Go parent without a working Go runtime: it may only
// make raw system calls on memory that the parent prepared. So the steps are
// data — system calls whose arguments were laid out before the fork, plus a few
// control steps (wait for the parent, fork, exec, reap) — built by pure code
// (Builder) and run by one small interpreter (Start). Nothing in the child
// allocates, takes a lock or grows its stack; TestChildMakesNoCalls checks the
// compiled interpreter for that.
//
// A failing step is reported to the parent over the sync socket as its index
// and errno, so the parent can say which step failed in words ("mount proc on
// /proc: operation not permitted") without the child formatting anything.
package initproc

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reg names a register of the interpreter: a slot that holds the result of an
// earlier step (usually a file descriptor) for use as a later step's argument.
// The zero Reg means "no register".
type Reg uint8

// NumRegs is the number of registers, including the unused zero register.
const NumRegs = 32

type kind uint8

const (
	kindSyscall    kind = iota // a raw system call
	kindSync                   // send a message, wait for the parent's reply (maybe an fd)
	kindSend                   // send a message, maybe with an fd, without waiting
	kindForkPID1               // clone(CLONE_PARENT): the new process goes on, this one reports its pid and exits
	kindForkInit               // fork: the child goes on, the parent jumps to the init steps
	kindForkHelper             // vfork a helper sharing memory and files: it runs the steps up to its exit, the parent then goes on after them
	kindInitLoop               // reap children and forward signals until the command exits
	kindExec                   // execve the first candidate path that exists
	kindExit                   // exit_group with a code
	kindJump                   // continue at step jump
	kindStore                  // write a register's value into memory the parent laid out
	kindExpect                 // fail unless a word in memory, masked, has a value
	kindCopy                   // copy bytes within the process's memory
)

// Op is one step of a Program.
type Op struct {
	kind    kind
	trap    uintptr
	args    [6]uintptr
	regs    [6]Reg // argument i comes from register regs[i] when it is not zero
	out     Reg    // register that receives the call's result
	okErrno unix.Errno
	jump    int32 // on success, continue at this step (0: the next one)
	errJump int32 // on okErrno, continue at this step (0: the next one)
	// Memory the step reads or writes, kept by the Program:
	//   kindExec: p1 is the *execArgs;
	//   kindStore: p1 is the *int32 that gets the value of register regs[0];
	//   kindExpect: the word at p1 (a uint32 when args[2] is 1, else a
	//   uint64), masked with args[0], must be args[1], or the step fails
	//   (errno 0);
	//   kindCopy: args[0] bytes from p1 to p2.
	// (Two pointers, not a field for each use: a program has hundreds of
	// steps, and each is laid out before the fork.)
	p1, p2 unsafe.Pointer
	what   string // what the step does, for error messages; never read by the child
}

type execArgs struct {
	check bool    // only check that a candidate is executable (faccessat)
	paths []*byte // candidate executables, tried in order as execvp does
	argv  []*byte // NULL-terminated
	envv  []*byte // NULL-terminated
	// via: the first executable candidate is run by the trampoline in
	// file viaFD, with targv: its path, then argv (see Trampoline).
	via   bool
	viaFD uintptr
	targv []uintptr
	path0 *uintptr // &targv[0], set by the child
	empty *byte    // ""
}

// Program is the complete list of steps a child runs. Build one with a Builder.
type Program struct {
	ops    []Op
	syncFD int
	// Where the init goes on after ForkInit, and the register that gets the
	// command's pid: kept here, not in the step, since the forked command
	// shares (and overwrites) the interpreter's locals until it execs.
	initStart int
	initOut   Reg
	// Where the process that forked a helper (ForkHelper) goes on once the
	// helper has exited: kept here for the same reason.
	helperResume int
	keep         []any // memory that arguments point into
	recv         *recvArea
	send         *sendArea
}

// Len returns the number of steps.
func (p *Program) Len() int { return len(p.ops) }

// What describes step i, for error messages.
func (p *Program) What(i int) string {
	if i < 0 || i >= len(p.ops) {
		return fmt.Sprintf("step %d", i)
	}
	return p.ops[i].what
}

// IsExec reports whether step i executes the command: its failure means the
// command could not be started rather than that the box could not be set up.
func (p *Program) IsExec(i int) bool {
	return i >= 0 && i < len(p.ops) && p.ops[i].kind == kindExec
}

// String lists the steps, one per line: what each does and the call it makes.
func (p *Program) String() string {
	var sb strings.Builder
	for i, op := range p.ops {
		fmt.Fprintf(&sb, "%3d %-10s %s\n", i, op.kind, op.what)
	}
	return sb.String()
}

func (k kind) String() string {
	switch k {
	case kindSyscall:
		return "syscall"
	case kindSync:
		return "sync"
	case kindSend:
		return "send"
	case kindForkPID1:
		return "fork-pid1"
	case kindForkInit:
		return "fork-init"
	case kindForkHelper:
		return "fork-helper"
	case kindInitLoop:
		return "init-loop"
	case kindExec:
		return "exec"
	case kindExit:
		return "exit"
	case kindJump:
		return "jump"
	case kindStore:
		return "store"
	case kindExpect:
		return "expect"
	case kindCopy:
		return "copy"
	}
	return "?"
}

// Arg is an argument of a step: an immediate value, a pointer into memory kept
// alive by the Program, or a register.
type Arg struct {
	v uintptr
	r Reg
}

// Imm is an immediate argument.
func Imm[T ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64 | ~uintptr](v T) Arg {
	return Arg{v: uintptr(v)}
}

// R is an argument taken from register r when the step runs.
func R(r Reg) Arg { return Arg{r: r} }

// Builder assembles a Program. Its methods describe system calls; none of them
// touch the kernel.
type Builder struct {
	p       *Program
	used    uint32 // bit i set: register i is in use
	pending func()
}

// Before defers steps: f appends them right before the next step that
// forks, executes or waits for the parent's reply (whose reply must not be
// taken for something else), or at Flush — whichever comes first. It lets
// the child get on with its work while the parent does something the
// child needs only later.
func (b *Builder) Before(f func()) { b.pending = f }

// Flush appends the deferred steps now, if they are still pending.
func (b *Builder) Flush() {
	if f := b.pending; f != nil {
		b.pending = nil
		f()
	}
}

// NewBuilder starts a Program whose child reports to the parent on syncFD.
func NewBuilder(syncFD int) *Builder {
	return &Builder{
		p: &Program{syncFD: syncFD, recv: newRecvArea(), send: newSendArea(),
			// Room for a usual box's steps at once (a run box has about
			// 450, an OCI box 600): growing by appending would leave every
			// smaller copy behind. Room not written to costs no memory.
			ops: make([]Op, 0, 1024)},
		used: 1, // register 0 means "none"
	}
}

// Program returns the assembled program.
func (b *Builder) Program() *Program {
	b.Flush()
	return b.p
}

// Str returns an argument pointing at a NUL-terminated copy of s.
//
//go:noinline
func (b *Builder) Str(s string) Arg {
	buf := make([]byte, len(s)+1)
	copy(buf, s)
	b.p.keep = append(b.p.keep, buf)
	return Arg{v: uintptr(unsafe.Pointer(&buf[0]))}
}

// Bytes returns an argument pointing at a copy of data.
//
//go:noinline
func (b *Builder) Bytes(data []byte) Arg {
	if len(data) == 0 {
		return Arg{}
	}
	buf := append([]byte(nil), data...)
	b.p.keep = append(b.p.keep, buf)
	return Arg{v: uintptr(unsafe.Pointer(&buf[0]))}
}

// Ptr returns an argument pointing at *v, which the Program keeps alive.
// v must not contain Go pointers that the kernel would follow.
//
//go:noinline
func Ptr[T any](b *Builder, v *T) Arg {
	b.p.keep = append(b.p.keep, v)
	return Arg{v: uintptr(unsafe.Pointer(v))}
}

// NewReg reserves a register.
//
//go:noinline
func (b *Builder) NewReg() Reg {
	for i := Reg(1); i < NumRegs; i++ {
		if b.used&(1<<i) == 0 {
			b.used |= 1 << i
			return i
		}
	}
	panic("initproc: out of registers")
}

// FreeReg releases r without closing what it holds.
func (b *Builder) FreeReg(r Reg) { b.used &^= 1 << r }

// add appends op. It is not inlined (nor is Call): hundreds of call sites
// in the planners would each get a copy of the append, making the binary —
// every page of which a box's start maps — 90 KB larger for no speed.
//
//go:noinline
func (b *Builder) add(op Op) *Op {
	b.p.ops = append(b.p.ops, op)
	return &b.p.ops[len(b.p.ops)-1]
}

// Call appends a system call. The returned Step can ask for its result or
// tolerate an errno.
//
//go:noinline
func (b *Builder) Call(what string, trap uintptr, args ...Arg) Step {
	if len(args) > 6 {
		panic("initproc: more than six arguments")
	}
	op := Op{kind: kindSyscall, trap: trap, what: what}
	for i, a := range args {
		op.args[i], op.regs[i] = a.v, a.r
	}
	b.add(op)
	return Step{b: b, i: len(b.p.ops) - 1}
}

// Step refers to an appended step, to refine it.
type Step struct {
	b *Builder
	i int
}

// Out stores the call's result in a new register and returns it.
func (s Step) Out() Reg {
	r := s.b.NewReg()
	s.b.p.ops[s.i].out = r
	return r
}

// OutTo stores the call's result in register r.
func (s Step) OutTo(r Reg) Step {
	s.b.p.ops[s.i].out = r
	return s
}

// Allow makes errno e count as success (with result 0).
func (s Step) Allow(e unix.Errno) Step {
	s.b.p.ops[s.i].okErrno = e
	return s
}

// Index is the step's position in the program.
func (s Step) Index() int { return s.i }

// Label is the index the next appended step will have, as a jump target.
func (b *Builder) Label() int { return len(b.p.ops) }

// JumpOnSuccess makes a successful call continue at step target instead of the
// next one. Use PatchJump when the target is not known yet.
func (s Step) JumpOnSuccess(target int) Step {
	s.b.p.ops[s.i].jump = int32(target)
	return s
}

// OnErrno makes errno e continue at step target instead of failing. Use
// PatchErrJump when the target is not known yet.
func (s Step) OnErrno(e unix.Errno, target int) Step {
	s.b.p.ops[s.i].okErrno = e
	s.b.p.ops[s.i].errJump = int32(target)
	return s
}

// PatchErrJump sets the errno jump target of step i.
func (b *Builder) PatchErrJump(i, target int) { b.p.ops[i].errJump = int32(target) }

// Jump continues at step target; it returns the step, for PatchJump.
func (b *Builder) Jump(target int) int {
	b.add(Op{kind: kindJump, jump: int32(target), what: "jump"})
	return len(b.p.ops) - 1
}

// PatchJump sets the jump target of step i.
func (b *Builder) PatchJump(i, target int) { b.p.ops[i].jump = int32(target) }

// Close appends close(r) and frees the register.
//
//go:noinline
func (b *Builder) Close(r Reg) {
	b.Call("close fd", unix.SYS_CLOSE, R(r))
	b.FreeReg(r)
}

// Store writes the value of register r, as a 32-bit integer, to *dst when
// the step runs: for a descriptor the child opened that a structure passed
// to a later call must hold (landlock_path_beneath_attr.parent_fd). dst
// must point into memory the Program keeps, such as a field of a value
// given to Ptr; the Program keeps it too.
func (b *Builder) Store(what string, r Reg, dst *int32) {
	if r == 0 || dst == nil {
		panic("initproc: store without a register or a destination")
	}
	b.p.keep = append(b.p.keep, dst)
	op := Op{kind: kindStore, p1: unsafe.Pointer(dst), what: what}
	op.regs[0] = r
	b.add(op)
}

// Expect fails the program unless the 64-bit word at src, masked with
// mask, equals want when the step runs: to check what an earlier call
// wrote into memory the Program keeps (the st_rdev of an fstat, the
// f_type of an fstatfs). The failure has no errno (StepError.Errno 0):
// what says what was wrong. The Program keeps src.
func (b *Builder) Expect(what string, src *uint64, mask, want uint64) {
	if src == nil {
		panic("initproc: expect without a word")
	}
	b.expect(Op{kind: kindExpect, p1: unsafe.Pointer(src), what: what}, src, mask, want)
}

// Expect32 is Expect for a 32-bit word (st_mode).
func (b *Builder) Expect32(what string, src *uint32, mask, want uint32) {
	if src == nil {
		panic("initproc: expect without a word")
	}
	op := Op{kind: kindExpect, p1: unsafe.Pointer(src), what: what}
	op.args[2] = 1
	b.expect(op, src, uint64(mask), uint64(want))
}

func (b *Builder) expect(op Op, src any, mask, want uint64) {
	b.p.keep = append(b.p.keep, src)
	op.args[0], op.args[1] = uintptr(mask), uintptr(want)
	b.add(op)
}

// HideCommandLine overwrites, in the child's copy of the memory, the
// command line it inherited from nsbox (the kernel's /proc/PID/cmdline):
// it would show the box's processes nsbox's flags, such as host paths,
// once the child is their init or before it executes the command. It
// reads "nsbox-init" instead.
func (b *Builder) HideCommandLine() {
	args := os.Args
	if len(args) == 0 || len(args[0]) == 0 {
		return
	}
	// The Go runtime's os.Args are the strings of the process's argv
	// area, one after another, each ended by a NUL. Only if they still are
	// (a program that embeds nsbox may have replaced them) is that area
	// written over; otherwise it is left as it is.
	start := unsafe.Pointer(unsafe.StringData(args[0]))
	next := uintptr(start)
	for _, a := range args {
		if uintptr(unsafe.Pointer(unsafe.StringData(a))) != next {
			return
		}
		next += uintptr(len(a)) + 1
	}
	n := int(next - uintptr(start))
	if n > 1<<20 {
		return
	}
	title := make([]byte, n) // NULs after the name
	copy(title[:n-1], "nsbox-init")
	b.p.keep = append(b.p.keep, title)
	op := Op{kind: kindCopy, p1: unsafe.Pointer(&title[0]), p2: start, what: "hide nsbox's command line"}
	op.args[0] = uintptr(n)
	b.add(op)
}

// Sync sends the parent a message of the given kind with value val and waits
// for its reply. When the parent passes a file descriptor, it lands in the
// returned register (0 when wantFD is false).
func (b *Builder) Sync(what string, msg MsgKind, val int, wantFD bool) Reg {
	b.Flush()
	op := Op{kind: kindSync, what: what}
	op.args[0], op.args[1] = uintptr(msg), uintptr(val)
	if wantFD {
		op.out = b.NewReg()
	}
	b.add(op)
	return op.out
}

// Wait waits for the parent's go-ahead (one byte, 0) without asking: for
// what the parent does unprompted right after the clone.
func (b *Builder) Wait(what string) {
	b.add(Op{kind: kindSync, what: what})
}

// ReceiveFD waits for a file descriptor the parent sends without being
// asked (a reply of 0 with one SCM_RIGHTS descriptor), and returns the
// register it lands in. The parent's unasked messages come in the order of
// the child's ReceiveFD and Wait steps.
func (b *Builder) ReceiveFD(what string) Reg {
	b.Flush()
	op := Op{kind: kindSync, what: what, out: b.NewReg()}
	b.add(op)
	return op.out
}

// Send sends the parent a message of the given kind carrying the value of
// register val (0: none), and the file descriptor in register fd (0: none).
func (b *Builder) Send(what string, msg MsgKind, val, fd Reg) {
	op := Op{kind: kindSend, what: what}
	op.args[0] = uintptr(msg)
	op.regs[1], op.regs[2] = val, fd
	b.add(op)
}

// ForkPID1 forks a process that becomes a child of the parent (CLONE_PARENT)
// and continues with the next step; the current process reports the new pid
// (MsgPid) and exits. Use it after entering a pid namespace with
// setns/unshare, which only affects children.
func (b *Builder) ForkPID1(what string) {
	b.Flush()
	b.add(Op{kind: kindForkPID1, what: what})
}

// ForkInit forks the command's process, which continues with the next step.
// The current process stores the command's pid in the returned register and
// continues at the step given later with SetInitStart.
func (b *Builder) ForkInit(what string) (pid Reg, step int) {
	b.Flush()
	if b.p.initOut != 0 {
		panic("initproc: one ForkInit per program")
	}
	pid = b.NewReg()
	b.p.initOut = pid
	b.add(Op{kind: kindForkInit, out: pid, what: what})
	return pid, len(b.p.ops) - 1
}

// CanForkHelper: ForkHelper works on this architecture (it needs the
// stack-safe vfork of vfork_$GOARCH.s).
const CanForkHelper = shareMemoryOnFork

// ForkHelper starts a helper process that shares this one's memory and
// descriptors (CLONE_VM|CLONE_VFORK|CLONE_FILES) and runs the steps that
// follow, up to EndHelper; this process waits for it to exit, then goes on
// after those steps. What the helper's calls put in registers, and the
// descriptors it opens, are this process's too. For work that needs the
// helper to be a new process — one born into the pid namespace that
// setns(CLONE_NEWPID) chose for children — while this one keeps its place.
// A step of the helper that fails reports itself, and this process then
// exits quietly. One helper per program.
func (b *Builder) ForkHelper(what string) {
	b.Flush()
	if b.p.helperResume != 0 || !CanForkHelper {
		panic("initproc: one ForkHelper per program, on an architecture that can")
	}
	b.add(Op{kind: kindForkHelper, what: what})
	b.p.helperResume = -1 // until EndHelper
}

// EndHelper ends the helper's steps (it exits with status 0).
func (b *Builder) EndHelper() {
	if b.p.helperResume != -1 {
		panic("initproc: EndHelper without ForkHelper")
	}
	b.Exit(0)
	b.p.helperResume = len(b.p.ops)
}

// SetInitStart sets where the init branch of the fork at step continues.
func (b *Builder) SetInitStart(step, target int) {
	b.p.ops[step].args[0] = uintptr(target)
	b.p.initStart = target
}

// InitLoop reaps children and forwards the signals read from signalfd sfd to
// the command's process until it exits; then it exits with the command's
// status (128+N for signal N).
func (b *Builder) InitLoop(what string, cmd Reg, sfd Arg) {
	op := Op{kind: kindInitLoop, what: what}
	op.regs[0] = cmd
	op.args[1], op.regs[1] = sfd.v, sfd.r
	b.add(op)
}

// Exec executes argv with environment env, trying each candidate path in turn
// as execvp(3) does. It is the last step of a branch.
func (b *Builder) Exec(what string, paths, argv, env []string) {
	b.Flush()
	if len(paths) == 0 || len(argv) == 0 {
		panic("initproc: exec without a path or argv")
	}
	ex := &execArgs{paths: cstrings(paths, false), argv: cstrings(argv, true), envv: cstrings(env, true)}
	b.p.keep = append(b.p.keep, ex)
	b.add(Op{kind: kindExec, p1: unsafe.Pointer(ex), what: what})
}

// ExecVia is Exec through a trampoline (see Trampoline) in file fd: the
// first candidate that is an executable file is handed to it with
// execveat(2), and it executes the command. It returns the step's index,
// which the trampoline reports its errors with.
func (b *Builder) ExecVia(what string, fd int, paths, argv, env []string) int {
	b.Flush()
	if len(paths) == 0 || len(argv) == 0 {
		panic("initproc: exec without a path or argv")
	}
	ex := &execArgs{paths: cstrings(paths, false), argv: cstrings(argv, true), envv: cstrings(env, true), via: true, viaFD: uintptr(fd)}
	ex.targv = make([]uintptr, len(ex.argv)+1)
	for i, a := range ex.argv {
		ex.targv[i+1] = uintptr(unsafe.Pointer(a))
	}
	ex.path0 = &ex.targv[0]
	ex.empty = new(byte)
	b.p.keep = append(b.p.keep, ex)
	b.add(Op{kind: kindExec, p1: unsafe.Pointer(ex), what: what})
	return len(b.p.ops) - 1
}

// CheckExec fails unless one of the candidate paths is an executable file,
// with the errno Exec would report. The program goes on.
func (b *Builder) CheckExec(what string, paths []string) {
	b.Flush()
	if len(paths) == 0 {
		panic("initproc: check without a path")
	}
	ex := &execArgs{check: true, paths: cstrings(paths, false), argv: cstrings([]string{"-"}, true), envv: cstrings(nil, true)}
	b.p.keep = append(b.p.keep, ex)
	b.add(Op{kind: kindExec, p1: unsafe.Pointer(ex), what: what})
}

// Exit ends the process with code.
func (b *Builder) Exit(code int) {
	op := Op{kind: kindExit, what: "exit"}
	op.args[0] = uintptr(code)
	b.add(op)
}

func cstrings(ss []string, nullTerminated bool) []*byte {
	out := make([]*byte, 0, len(ss)+1)
	for _, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil { // a NUL inside: the caller validated, so this is a bug
			panic("initproc: NUL in string " + fmt.Sprintf("%q", s))
		}
		out = append(out, p)
	}
	if nullTerminated {
		out = append(out, nil)
	}
	return out
}

// Validate checks the program's jumps, so the child never indexes out of range.
func (p *Program) Validate() error {
	for i, op := range p.ops {
		if op.jump < 0 || int(op.jump) > len(p.ops) || op.errJump < 0 || int(op.errJump) > len(p.ops) {
			return fmt.Errorf("step %d (%s): jump to %d/%d out of range", i, op.what, op.jump, op.errJump)
		}
		if op.kind == kindJump && op.jump == 0 {
			return fmt.Errorf("step %d: jump without a target", i)
		}
		if op.kind == kindForkInit && (op.args[0] <= uintptr(i) || op.args[0] >= uintptr(len(p.ops))) {
			return fmt.Errorf("step %d (%s): init start %d out of range", i, op.what, op.args[0])
		}
		if op.kind == kindForkHelper && (p.helperResume <= i || p.helperResume >= len(p.ops)) {
			return fmt.Errorf("step %d (%s): the helper's steps do not end before the program does", i, op.what)
		}
	}
	return nil
}

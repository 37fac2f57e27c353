// Package process is the parent side of a box's first process: it starts the
// program built by package setup, answers the child over the sync socket
// (id maps, detached mount trees, the terminal), turns a failed step into an
// error that names it, and waits for and signals the box.
package process

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
	"github.com/nsbox/nsbox/internal/setup"
)

// Sync is the socket pair between parent and child.
type Sync struct {
	Parent, Child int
}

// NewSync creates the sync socket pair. The child's end is what setup.Config
// calls SyncFD.
func NewSync() (Sync, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Sync{-1, -1}, fmt.Errorf("sync socket: %w", err)
	}
	return Sync{Parent: fds[0], Child: fds[1]}, nil
}

// Close closes both ends (those still open).
func (s *Sync) Close() {
	if s.Parent >= 0 {
		unix.Close(s.Parent)
		s.Parent = -1
	}
	if s.Child >= 0 {
		unix.Close(s.Child)
		s.Child = -1
	}
}

// Hooks answer the child's requests.
type Hooks struct {
	// WriteMaps writes the id maps of the user namespace of process pid.
	WriteMaps func(pid int) error
	// MakeTree returns detached mount tree i (of setup.Result.Trees), made
	// for the child process pid.
	MakeTree func(i, pid int) (int, error)
	// Place puts the child pid into the box's cgroup, before the go-ahead.
	Place func(pid int) error
	// CreateHooks and StartHooks run the OCI hooks the child stops for
	// (MsgHooks, MsgStartHooks), for the box whose first process is pid.
	CreateHooks, StartHooks func(pid int) error
	// Seccomp hands on the listener fd of the seccomp filter of process
	// pid (SCMP_ACT_NOTIFY), which the caller then closes.
	Seccomp func(pid, fd int) error
	// Meanwhile, if set, runs once while the child works on its own: after
	// the go-ahead (or right after the clone when there is none). Work done
	// here overlaps the kernel's namespace set-up.
	Meanwhile func()
}

// StepError is a failed step of the child.
type StepError struct {
	What  string
	Errno unix.Errno
	// Exec: the failing step was executing the command.
	Exec bool
}

func (e *StepError) Error() string {
	if e.Errno == 0 { // a check of the set-up failed: What says which
		return e.What
	}
	return e.What + ": " + e.Errno.Error()
}
func (e *StepError) Unwrap() error { return e.Errno }

// ExecErrno returns the errno of a failed exec of the command.
func (e *StepError) ExecErrno() (unix.Errno, bool) { return e.Errno, e.Exec }

// Process is a started box: its first process (PID 1 of the box when it has
// its own pid namespace) and, with a terminal, the terminal's master.
type Process struct {
	Pid   int
	PidFD int
	// Console is the master of the box's terminal, when it has one.
	Console *os.File
}

// Launch starts the program of r and serves the child until the command is
// executed (end of file on the sync socket) or a step fails. On failure
// every process it started is killed and reaped.
func Launch(r *setup.Result, sync *Sync, hooks Hooks) (*Process, error) {
	pid, pidfd, err := initproc.Start(r.Program, r.Clone)
	unix.Close(sync.Child)
	sync.Child = -1
	if err != nil {
		return nil, err
	}
	p := &Process{Pid: pid, PidFD: pidfd}
	first := pid // the process clone made; with ForksPID1 it exits early
	if err := p.serve(r, sync.Parent, hooks); err != nil {
		err = childReason(sync.Parent, r, err)
		p.kill()
		if first != p.Pid {
			reap(first)
		}
		return nil, err
	}
	if first != p.Pid {
		reap(first)
	}
	return p, nil
}

func (p *Process) serve(r *setup.Result, fd int, hooks Hooks) error {
	first := p.Pid
	meanwhile := hooks.Meanwhile
	if r.GoAhead {
		if err := p.goAhead(fd, r, hooks, first); err != nil {
			return err
		}
	} else if !r.NeedsMaps && len(r.Trees.Trees) > 0 {
		if err := p.reply(fd, r, hooks, true, false); err != nil {
			return err
		}
	}
	if (!r.NeedsMaps || r.MapsAtClone) && meanwhile != nil {
		meanwhile()
		meanwhile = nil
	}
	buf := make([]byte, initproc.MsgSize)
	oob := make([]byte, unix.CmsgSpace(4))
	via := false // the trampoline was started (MsgVia)
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sync with the box: %w", err)
		}
		if n == 0 {
			if r.ForksPID1 && p.Pid == first {
				return errors.New("the box's first process exited before starting the box")
			}
			return nil // the command was executed
		}
		if n != initproc.MsgSize {
			return fmt.Errorf("sync with the box: short message (%d bytes)", n)
		}
		msg := *(*initproc.Msg)(unsafe.Pointer(&buf[0]))
		// Once the trampoline runs, a process of the box might reach it
		// before it makes itself undumpable (ptrace), and speak on its
		// socket: nothing but the trampoline's own report is taken.
		// (The pid of a process forked into the pid namespace comes from
		// its parent, and may come after its child's MsgVia.)
		pidToCome := msg.Kind == initproc.MsgPid && r.ForksPID1 && p.Pid == first
		trampolineReport := msg.Kind == initproc.MsgError && r.Trampoline != nil && int(msg.Op) == r.Trampoline.Op
		if via && !pidToCome && !trampolineReport {
			return errors.New("sync with the box: an unexpected message after its set-up (a process of the box tampering with the start of the command?)")
		}
		switch msg.Kind {
		case initproc.MsgVia:
			via = true
		case initproc.MsgError:
			return &StepError{What: r.Program.What(int(msg.Op)), Errno: unix.Errno(msg.Errno), Exec: r.Program.IsExec(int(msg.Op))}
		case initproc.MsgMaps:
			if err := hooks.WriteMaps(first); err != nil {
				unix.Sendmsg(fd, []byte{1}, nil, nil, 0)
				return fmt.Errorf("write id maps: %w", err)
			}
			if err := p.reply(fd, r, hooks, true, true); err != nil {
				return err
			}
			if meanwhile != nil {
				meanwhile()
				meanwhile = nil
			}
		case initproc.MsgPid:
			pidfd, err := unix.PidfdOpen(int(msg.Val), 0)
			if err != nil {
				return fmt.Errorf("open the box's pid %d: %w", msg.Val, err)
			}
			unix.Close(p.PidFD)
			p.Pid, p.PidFD = int(msg.Val), pidfd
		case initproc.MsgReady:
			if r.WaitsForStart {
				return nil // created: the child waits for start
			}
		case initproc.MsgHooks, initproc.MsgStartHooks:
			run := hooks.CreateHooks
			if msg.Kind == initproc.MsgStartHooks {
				run = hooks.StartHooks
			}
			if run != nil {
				if err := run(p.Pid); err != nil {
					unix.Sendmsg(fd, []byte{1}, nil, nil, 0)
					return err
				}
			}
			if err := unix.Sendmsg(fd, []byte{0}, nil, nil, 0); err != nil {
				return fmt.Errorf("sync with the box: %w", err)
			}
		case initproc.MsgAlive:
		case initproc.MsgSeccomp:
			fds, err := receivedFDs(oob[:oobn])
			if err != nil || len(fds) != 1 {
				return fmt.Errorf("receive the seccomp listener of the box: %v", err)
			}
			if hooks.Seccomp == nil {
				unix.Close(fds[0])
				return errors.New("a seccomp listener nobody takes")
			}
			err = hooks.Seccomp(p.Pid, fds[0])
			unix.Close(fds[0])
			if err != nil {
				return err
			}
		case initproc.MsgPty:
			fds, err := receivedFDs(oob[:oobn])
			if err != nil || len(fds) != 1 {
				return fmt.Errorf("receive the box's terminal: %v", err)
			}
			p.Console = os.NewFile(uintptr(fds[0]), "console")
		default:
			return fmt.Errorf("sync with the box: unknown message %d", msg.Kind)
		}
	}
}

// goAhead does what the parent owes the child right after the clone (its
// id maps, its cgroup) and lets it go on.
func (p *Process) goAhead(fd int, r *setup.Result, hooks Hooks, pid int) error {
	var err error
	if r.MapsAtClone {
		if err = hooks.WriteMaps(pid); err != nil {
			err = fmt.Errorf("write id maps: %w", err)
		}
	}
	if err == nil && hooks.Place != nil {
		err = hooks.Place(pid)
	}
	if err != nil {
		unix.Sendmsg(fd, []byte{1}, nil, nil, 0)
		return err
	}
	return p.reply(fd, r, hooks, r.MapsAtClone || !r.NeedsMaps, true)
}

// reply sends the child its go-ahead (a reply of 0) when goOn is set, and,
// when trees is set, the trees it mounts (rootfs.ParentTrees), in order,
// each as a reply with its descriptor: the child takes each where it mounts
// it, without asking (a request would cost a round trip: two wake-ups of a
// sleeping process). The trees are made first, so that the child, woken
// once, finds them all: its user namespace is reached through its pid, and
// a child that forks into a pid namespace goes on in another process, once
// it has its root tree, and exits.
func (p *Process) reply(fd int, r *setup.Result, hooks Hooks, trees, goOn bool) error {
	var fds []int
	defer func() {
		for _, t := range fds {
			unix.Close(t)
		}
	}()
	n := 0
	if trees {
		n = len(r.Trees.Trees)
	}
	for i := range n {
		tfd, err := hooks.MakeTree(i, p.Pid)
		if err != nil {
			unix.Sendmsg(fd, []byte{1}, nil, nil, 0)
			return err
		}
		fds = append(fds, tfd)
	}
	if goOn {
		if err := unix.Sendmsg(fd, []byte{0}, nil, nil, 0); err != nil {
			return fmt.Errorf("sync with the box: %w", err)
		}
	}
	for _, t := range fds {
		if err := unix.Sendmsg(fd, []byte{0}, unix.UnixRights(t), nil, 0); err != nil {
			return fmt.Errorf("sync with the box: %w", err)
		}
	}
	return nil
}

// childReason returns, for err, a failure of the parent's side of the sync
// (a reply the child did not wait for: broken pipe), the child's own
// reason when it sent one before it exited: the step that failed.
func childReason(fd int, r *setup.Result, err error) error {
	var se *StepError
	if errors.As(err, &se) {
		return err
	}
	buf := make([]byte, initproc.MsgSize)
	for {
		n, _, _, _, rerr := unix.Recvmsg(fd, buf, nil, unix.MSG_DONTWAIT)
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil || n != initproc.MsgSize {
			return err
		}
		msg := *(*initproc.Msg)(unsafe.Pointer(&buf[0]))
		if msg.Kind == initproc.MsgError {
			return &StepError{What: r.Program.What(int(msg.Op)), Errno: unix.Errno(msg.Errno), Exec: r.Program.IsExec(int(msg.Op))}
		}
	}
}

func receivedFDs(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

// kill ends the box and reaps its first process.
func (p *Process) kill() {
	p.Signal(unix.SIGKILL)
	reap(p.Pid)
	p.close()
}

func (p *Process) close() {
	if p.PidFD >= 0 {
		unix.Close(p.PidFD)
		p.PidFD = -1
	}
	if p.Console != nil {
		p.Console.Close()
	}
}

func reap(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

// Signal sends sig to the box's first process (its init, which forwards it).
func (p *Process) Signal(sig syscall.Signal) error {
	if p.PidFD < 0 {
		return os.ErrProcessDone
	}
	return unix.PidfdSendSignal(p.PidFD, sig, nil, 0)
}

// Wait waits for the box's first process to exit and returns its exit code,
// 128+N when signal N killed it.
func (p *Process) Wait() (int, error) {
	ws, err := reap(p.Pid)
	if p.PidFD >= 0 {
		unix.Close(p.PidFD)
		p.PidFD = -1
	}
	if err != nil {
		return -1, fmt.Errorf("wait for the box: %w", err)
	}
	return ExitCode(ws), nil
}

// ExitCode is a shell's view of a wait status.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

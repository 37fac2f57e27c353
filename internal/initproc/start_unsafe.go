package initproc

import (
	"errors"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Go runtime's own hooks around fork, as used by syscall.forkExec. The
// runtime keeps them reachable by linkname for this purpose (go.dev/issue/67401).

//go:linkname runtimeBeforeFork syscall.runtime_BeforeFork
func runtimeBeforeFork()

//go:linkname runtimeAfterFork syscall.runtime_AfterFork
func runtimeAfterFork()

//go:linkname runtimeAfterForkInChild syscall.runtime_AfterForkInChild
func runtimeAfterForkInChild()

// cloneArgs is struct clone_args of clone3(2).
type cloneArgs struct {
	flags      uint64
	pidfd      uint64
	childTID   uint64
	parentTID  uint64
	exitSignal uint64
	stack      uint64
	stackSize  uint64
	tls        uint64
	setTID     uint64
	setTIDSize uint64
	cgroup     uint64
}

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uintptr(99)

// ExitChildFailed is the exit status of a child whose step failed.
const ExitChildFailed = 125

// Clone says how the first process is created.
type Clone struct {
	Flags    uint64 // CLONE_NEW* flags
	CgroupFD int    // with CLONE_INTO_CGROUP: the cgroup directory; otherwise ignored
}

// Start clones a child that runs p, and returns the child's pid and a pidfd
// for it. The parent's end of the sync socket is the caller's to read.
//
// Start runs on the calling goroutine; it does not lock the OS thread, but the
// clone is made from whichever thread runs it, so per-thread state (a setns on
// a locked thread) is inherited.
func Start(p *Program, c Clone) (pid, pidfd int, err error) {
	if err := p.Validate(); err != nil {
		return 0, -1, err
	}
	args := &cloneArgs{flags: c.Flags | unix.CLONE_PIDFD, exitSignal: uint64(unix.SIGCHLD)}
	fd := int32(-1)
	args.pidfd = uint64(uintptr(unsafe.Pointer(&fd)))
	if c.Flags&unix.CLONE_INTO_CGROUP != 0 {
		args.cgroup = uint64(c.CgroupFD)
	}
	syscall.ForkLock.Lock()
	r, errno := start(p, args)
	syscall.ForkLock.Unlock()
	runtime.KeepAlive(p)
	runtime.KeepAlive(args)
	if errno != 0 {
		return 0, -1, &startError{errno}
	}
	return int(r), int(fd), nil
}

type startError struct{ errno unix.Errno }

func (e *startError) Error() string { return "clone3: " + e.errno.Error() }
func (e *startError) Unwrap() error { return e.errno }

// IsCloneError reports whether err came from clone3 itself.
func IsCloneError(err error) bool {
	var se *startError
	return errors.As(err, &se)
}

// start forks and, in the child, interprets the program. In the child it may
// only call functions marked go:nosplit (syscall.RawSyscall6 and the runtime's
// fork hooks); every variable is declared up front so that nothing is
// allocated after the fork.
//
//go:noinline
//go:norace
//go:nocheckptr
func start(p *Program, args *cloneArgs) (pid uintptr, errno unix.Errno) {
	var (
		ops      []Op
		n        int
		i        int
		j        int
		k        int
		op       *Op
		a        [6]uintptr
		regs     [NumRegs]uintptr
		r1       uintptr
		err1     unix.Errno
		err2     unix.Errno
		errv     uintptr
		sawAcces bool
		word     uint64
		ex       *execArgs
		paths    []*byte
		argv     []*byte
		envv     []*byte
		msg      Msg
		syncFD   uintptr
		recv     *recvArea
		send     *sendArea
		cmd      uintptr
		sfd      uintptr
		siginfo  [128]byte
		status   uint32
		signo    uint32
		code     uintptr
	)
	ops = p.ops
	n = len(ops)
	syncFD = uintptr(p.syncFD)
	recv = p.recv
	send = p.send

	runtimeBeforeFork()
	pid, _, errno = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	if errno != 0 || pid != 0 {
		runtimeAfterFork()
		return pid, errno
	}

	// In the child. From here on: raw system calls only.
	runtimeAfterForkInChild()

	for i = 0; i < n; i++ {
		if uint(i) >= uint(len(ops)) {
			break
		}
		op = &ops[i]
		for j = 0; j < 6; j++ {
			if op.regs[j] != 0 {
				a[j] = regs[op.regs[j]%NumRegs]
			} else {
				a[j] = op.args[j]
			}
		}
		switch op.kind {
		case kindSyscall:
			r1, _, err1 = syscall.RawSyscall6(op.trap, a[0], a[1], a[2], a[3], a[4], a[5])
			if err1 != 0 {
				if err1 != op.okErrno {
					goto fail
				}
				if op.errJump != 0 {
					i = int(op.errJump) - 1
					continue
				}
				r1 = 0
			} else if op.jump != 0 {
				if op.out != 0 {
					regs[op.out%NumRegs] = r1
				}
				i = int(op.jump) - 1
				continue
			}
			if op.out != 0 {
				regs[op.out%NumRegs] = r1
			}

		case kindSync:
			if a[0] != 0 { // kind 0: the parent speaks first
				msg = Msg{Kind: MsgKind(a[0]), Op: int32(i), Val: int32(a[1])}
				_, _, err1 = syscall.RawSyscall6(unix.SYS_SENDTO, syncFD, uintptr(unsafe.Pointer(&msg)), unsafe.Sizeof(msg), unix.MSG_NOSIGNAL, 0, 0)
				if err1 != 0 {
					goto fail
				}
			}
			recv.data[0] = 0xff
			recv.hdr.Controllen = uint64(len(recv.ctl))
			r1, _, err1 = syscall.RawSyscall(unix.SYS_RECVMSG, syncFD, uintptr(unsafe.Pointer(&recv.hdr)), unix.MSG_CMSG_CLOEXEC)
			if err1 != 0 {
				goto fail
			}
			if r1 != 1 || recv.data[0] != 0 {
				// The parent gave up (or went away): leave quietly.
				syscall.RawSyscall(unix.SYS_EXIT_GROUP, ExitChildFailed, 0, 0)
			}
			if op.out != 0 {
				if recv.hdr.Controllen < 20 {
					err1 = unix.EBADMSG
					goto fail
				}
				regs[op.out%NumRegs] = uintptr(*(*int32)(unsafe.Pointer(&recv.ctl[16])))
			}

		case kindSend:
			send.msg = Msg{Kind: MsgKind(a[0]), Op: int32(i), Val: int32(a[1])}
			if op.regs[2] != 0 {
				*(*int32)(unsafe.Pointer(&send.ctl[16])) = int32(a[2])
				send.hdr.Controllen = uint64(len(send.ctl))
			} else {
				send.hdr.Controllen = 0 // Control stays set; a zero length means none
			}
			_, _, err1 = syscall.RawSyscall(unix.SYS_SENDMSG, syncFD, uintptr(unsafe.Pointer(&send.hdr)), unix.MSG_NOSIGNAL)
			if err1 != 0 {
				goto fail
			}

		case kindForkPID1:
			r1, _, err1 = syscall.RawSyscall6(unix.SYS_CLONE, unix.CLONE_PARENT|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
			if err1 != 0 {
				goto fail
			}
			if r1 != 0 {
				msg = Msg{Kind: MsgPid, Op: int32(i), Val: int32(r1)}
				syscall.RawSyscall6(unix.SYS_SENDTO, syncFD, uintptr(unsafe.Pointer(&msg)), unsafe.Sizeof(msg), unix.MSG_NOSIGNAL, 0, 0)
				syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
			}

		case kindForkInit:
			// The command's process shares this one's memory until it
			// execs (CLONE_VM|CLONE_VFORK): no copy of the address space
			// to make, and none to tear down at its exec. Meanwhile this
			// process is suspended; when it resumes, the child has written
			// over the locals, so it relies only on the program (p) and
			// on the result of the call.
			r1, errv = rawVfork(unix.CLONE_VM|unix.CLONE_VFORK|uintptr(unix.SIGCHLD), nil)
			if errv != 0 {
				err1 = unix.Errno(errv)
				goto fail
			}
			if r1 != 0 {
				regs[p.initOut%NumRegs] = r1
				i = p.initStart - 1
				continue
			}

		case kindForkHelper:
			// As ForkInit: the helper runs on this stack, over the
			// locals, until it exits; then only p and the call's result
			// are trusted. Its registers and descriptors stay.
			r1, errv = rawVfork(unix.CLONE_VM|unix.CLONE_VFORK|unix.CLONE_FILES|uintptr(unix.SIGCHLD), nil)
			if errv != 0 {
				err1 = unix.Errno(errv)
				goto fail
			}
			if r1 != 0 {
				status = 0
				for {
					_, _, err1 = syscall.RawSyscall6(unix.SYS_WAIT4, r1, uintptr(unsafe.Pointer(&status)), 0, 0, 0, 0)
					if err1 != unix.EINTR {
						break
					}
				}
				if err1 != 0 || status != 0 {
					// The helper reported its failing step.
					syscall.RawSyscall(unix.SYS_EXIT_GROUP, ExitChildFailed, 0, 0)
				}
				i = p.helperResume - 1
				continue
			}

		case kindInitLoop:
			cmd, sfd = a[0], a[1]
			for {
				r1, _, err1 = syscall.RawSyscall(unix.SYS_READ, sfd, uintptr(unsafe.Pointer(&siginfo[0])), uintptr(len(siginfo)))
				if err1 == unix.EINTR {
					continue
				}
				if err1 != 0 || r1 != uintptr(len(siginfo)) {
					syscall.RawSyscall(unix.SYS_EXIT_GROUP, ExitChildFailed, 0, 0)
				}
				signo = *(*uint32)(unsafe.Pointer(&siginfo[0]))
				if signo != uint32(unix.SIGCHLD) {
					syscall.RawSyscall(unix.SYS_KILL, cmd, uintptr(signo), 0)
					continue
				}
				for {
					r1, _, err1 = syscall.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(&status)), unix.WNOHANG, 0, 0, 0)
					if err1 == unix.EINTR {
						continue
					}
					if err1 != 0 || r1 == 0 {
						break
					}
					if r1 != cmd {
						continue
					}
					if status&0x7f == 0 { // exited
						code = uintptr(status>>8) & 0xff
					} else {
						code = 128 + uintptr(status&0x7f)
					}
					syscall.RawSyscall(unix.SYS_EXIT_GROUP, code, 0, 0)
				}
			}

		case kindExec:
			ex = (*execArgs)(op.p1)
			paths, argv, envv = ex.paths, ex.argv, ex.envv
			if len(argv) == 0 || len(envv) == 0 {
				err1 = unix.EINVAL
				goto fail
			}
			sawAcces = false
			err1 = unix.ENOENT
			for k = 0; k < len(paths); k++ {
				if ex.check || ex.via {
					_, _, err1 = syscall.RawSyscall6(unix.SYS_FACCESSAT, atFDCWD, uintptr(unsafe.Pointer(paths[k])), unix.X_OK, 0, 0, 0)
					if err1 == 0 {
						if ex.via {
							*ex.path0 = uintptr(unsafe.Pointer(paths[k]))
						}
						break
					}
				} else {
					_, _, err1 = syscall.RawSyscall(unix.SYS_EXECVE,
						uintptr(unsafe.Pointer(paths[k])),
						uintptr(unsafe.Pointer(&argv[0])),
						uintptr(unsafe.Pointer(&envv[0])))
				}
				if err1 == unix.EACCES {
					// A PATH directory the box may not search does not hold
					// the command: only an existing file counts as EACCES.
					_, _, err2 = syscall.RawSyscall(unix.SYS_FACCESSAT, atFDCWD, uintptr(unsafe.Pointer(paths[k])), unix.F_OK)
					if err2 == 0 {
						sawAcces = true
					}
					err1 = unix.ENOENT
					continue
				}
				if err1 != unix.ENOENT && err1 != unix.ENOTDIR {
					break
				}
			}
			if sawAcces && (err1 == unix.ENOENT || err1 == unix.ENOTDIR) {
				err1 = unix.EACCES
			}
			if ex.check && err1 == 0 {
				continue
			}
			if ex.via && err1 == 0 {
				_, _, err1 = syscall.RawSyscall6(unix.SYS_EXECVEAT, ex.viaFD, uintptr(unsafe.Pointer(ex.empty)),
					uintptr(unsafe.Pointer(ex.path0)), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
			}
			goto fail

		case kindExit:
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, a[0], 0, 0)

		case kindJump:
			i = int(op.jump) - 1

		case kindStore:
			*(*int32)(op.p1) = int32(a[0])

		case kindCopy:
			for k = 0; k < int(op.args[0]); k++ {
				*(*byte)(unsafe.Add(op.p2, k)) = *(*byte)(unsafe.Add(op.p1, k))
			}

		case kindExpect:
			if op.args[2] == 1 {
				word = uint64(*(*uint32)(op.p1))
			} else {
				word = *(*uint64)(op.p1)
			}
			if word&uint64(op.args[0]) != uint64(op.args[1]) {
				err1 = 0
				goto fail
			}
		}
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)

fail:
	msg = Msg{Kind: MsgError, Op: int32(i), Errno: int32(err1)}
	syscall.RawSyscall6(unix.SYS_SENDTO, syncFD, uintptr(unsafe.Pointer(&msg)), unsafe.Sizeof(msg), unix.MSG_NOSIGNAL, 0, 0)
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, ExitChildFailed, 0, 0)
	}
}

//go:build linux && !(amd64 || arm64)

package initproc

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// rawVfork falls back to a plain fork where there is no assembly for a
// stack-safe vfork.
//
//go:nosplit
func rawVfork(flags uintptr, ptid *int32) (pid uintptr, errno uintptr) {
	r1, _, e := syscall.RawSyscall6(unix.SYS_CLONE, flags&^(unix.CLONE_VM|unix.CLONE_VFORK), 0, 0, 0, 0, 0)
	return r1, uintptr(e)
}

const shareMemoryOnFork = false

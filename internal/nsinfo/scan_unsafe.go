package nsinfo

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls below take their path as a NUL-terminated byte slice, built
// in a buffer the scan reuses: unix.Openat and friends copy every path
// into a new allocation, and the scan names a dozen files per process.

// openat is openat(2) with O_CLOEXEC.
func openat(dirfd int, path []byte, flags int) (int, error) {
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// readlinkat is readlinkat(2) into buf.
func readlinkat(dirfd int, path, buf []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// nlinkat returns the link count of path, with statx(2).
func nlinkat(dirfd int, path []byte) (uint32, error) {
	var st unix.Statx_t
	_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), 0, unix.STATX_NLINK, uintptr(unsafe.Pointer(&st)), 0)
	if e != 0 {
		return 0, e
	}
	return st.Nlink, nil
}

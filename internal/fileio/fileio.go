// Package fileio reads and writes small files with plain system calls. The
// os package registers every file it opens with the runtime's poller (which
// refuses regular files after a few calls) and attaches a finalizer; on the
// path that starts a box, that is a measurable share of the work.
package fileio

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// ReadFile returns the contents of path (up to 1 MiB).
func ReadFile(path string) ([]byte, error) {
	fd, err := open(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// Room for a regular file's size at once (one allocation, not a
	// doubling series); files of /proc and /sys say 0 and grow from 1 KiB.
	size := 1024
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 && st.Size < 1<<20 {
		size = int(st.Size) + 1 // +1: end of file is seen without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= 1<<20 {
				return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("file too large")}
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// WriteFile writes data to path, creating it with perm or truncating it.
func WriteFile(path string, data []byte, perm uint32) error {
	return Write(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, perm, data)
}

// Write opens path with flags and writes data in one call.
func Write(path string, flags int, perm uint32, data []byte) error {
	fd, err := open(path, flags, perm)
	if err != nil {
		return err
	}
	n, err := unix.Write(fd, data)
	if err == nil && n != len(data) {
		err = errors.New("short write")
	}
	cerr := unix.Close(fd)
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if cerr != nil {
		return &fs.PathError{Op: "close", Path: path, Err: cerr}
	}
	return nil
}

func open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

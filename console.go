package nsbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sendConsole passes the master of a box's terminal to the unix socket at
// path, as runc --console-socket does (conmon and containerd's shim wait
// for it there). Plain system calls: the net package would double nsbox's
// memory.
func sendConsole(path string, console *os.File) error {
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer unix.Close(s)
	if err := unix.Connect(s, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("console socket %s: %w", path, err)
	}
	// The message names the file, as runc's does.
	if err := unix.Sendmsg(s, []byte("/dev/ptmx"), unix.UnixRights(int(console.Fd())), nil, 0); err != nil {
		return fmt.Errorf("send the terminal to %s: %w", path, err)
	}
	return nil
}

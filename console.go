package nsbox

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendConsole passes the master of a box's terminal to the unix socket at
// path, as runc --console-socket does (conmon and containerd's shim wait
// for it there).
func sendConsole(path string, console *os.File) error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("console socket %s: %w", path, err)
	}
	defer conn.Close()
	// The message names the file, as runc's does.
	if _, _, err := conn.WriteMsgUnix([]byte("/dev/ptmx"), unix.UnixRights(int(console.Fd())), nil); err != nil {
		return fmt.Errorf("send the terminal to %s: %w", path, err)
	}
	return nil
}

package main

import (
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// consoleRelay connects the caller's terminal to the box's: the caller's
// terminal goes raw, keystrokes (Ctrl-C included) flow to the box's terminal,
// whose line discipline turns them into signals for the box's foreground job.
type consoleRelay struct {
	console *os.File
	saved   *unix.Termios
	outDone chan struct{}
}

func startRelay(console *os.File) (*consoleRelay, error) {
	r := &consoleRelay{console: console, outDone: make(chan struct{})}
	if t, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		r.saved = t
		raw := *t
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
		if err := unix.IoctlSetTermios(0, unix.TCSETS, &raw); err != nil {
			return nil, err
		}
	}
	go io.Copy(console, os.Stdin)
	go func() {
		io.Copy(os.Stdout, console) // ends with EIO when the box's side closes
		close(r.outDone)
	}()
	return r, nil
}

// resize copies the caller's terminal size to the box's.
func (r *consoleRelay) resize() {
	if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(r.console.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// finish drains the box's output and restores the caller's terminal.
func (r *consoleRelay) finish() {
	select {
	case <-r.outDone:
	case <-time.After(2 * time.Second): // something outside the box still holds it
	}
	if r.saved != nil {
		unix.IoctlSetTermios(0, unix.TCSETS, r.saved)
	}
	r.console.Close()
}

package tests

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// terminal runs nsbox on a new pty, as an interactive shell would be.
type terminal struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

func startTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", stateRoot}, args...)...)
	cmd.Env = append(os.Environ(), marker, "TERM=dumb", "PS1=$ ")
	return startTerminalCmd(t, cmd)
}

// startTerminalCmd runs cmd on a new pty, as an interactive shell would.
func startTerminalCmd(t *testing.T, cmd *exec.Cmd) *terminal {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100})
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	watchLeftovers(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	term := &terminal{t: t, master: master, cmd: cmd, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				close(term.done)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		master.Close()
	})
	return term
}

func (term *terminal) send(s string) { term.master.WriteString(s) }

// expect waits until the output contains want.
func (term *terminal) expect(want string) {
	term.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		term.mu.Lock()
		got := term.out.String()
		term.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	term.mu.Lock()
	defer term.mu.Unlock()
	term.t.Fatalf("terminal never showed %q; got:\n%s", want, term.out.String())
}

func (term *terminal) wait() int {
	term.cmd.Wait()
	return term.cmd.ProcessState.ExitCode()
}

func TestInteractiveShell(t *testing.T) {
	requireRoot(t)
	term := startTerminal(t, "run", "--rootfs", rootfs, "--", "/bin/sh")
	term.expect("$ ")
	// The box has a terminal of its own, sized like the caller's.
	term.send("tty; stty size\n")
	term.expect("/dev/pts/0")
	term.expect("40 100")
	// Ctrl-C interrupts the foreground job, not the shell.
	term.send("sleep 30\n")
	time.Sleep(300 * time.Millisecond)
	term.send("\x03")
	term.send("echo status-$?\n")
	term.expect("status-130")
	// Job control: a background job, listed, then brought back and stopped.
	term.send("sleep 30 &\n")
	term.send("jobs\n")
	term.expect("Running")
	term.send("kill %1; wait %1; echo waited-$?\n")
	term.expect("waited-143")
	term.send("exit 5\n")
	if code := term.wait(); code != 5 {
		t.Errorf("exit status %d, want 5", code)
	}
}

func TestTerminalIsNotTheCallers(t *testing.T) {
	requireRoot(t)
	// TIOCSTI into the caller's terminal needs it to be the box's
	// controlling terminal: the box runs on its own pty instead.
	term := startTerminal(t, "run", "--rootfs", rootfs, "--", "/bin/sh", "-c", "readlink /proc/self/fd/0; ls /dev/pts")
	term.expect("/dev/pts/0")
	term.wait()
	// Without a terminal, the box is in a session of its own.
	out := inBox(t, opts{}, "cat /proc/self/stat | cut -d' ' -f6; tty || true")
	if !strings.Contains(out, "not a tty") {
		t.Errorf("box without --tty: %q", out)
	}
}

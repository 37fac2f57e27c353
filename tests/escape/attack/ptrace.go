package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ptraceRuntime is CVE-2016-9962 (runc's init was dumpable while it still
// held the host's descriptors): the box reaches into a process of nsbox
// that runs in its pid namespace — the box's init, and the child of every
// `nsbox exec` before it executes its command — with ptrace, its memory,
// its environment, its root and its executable.
//
// Usage: attack ptrace DIR DEV:INO MARKER [init]
//
// DEV:INO is the nsbox binary, MARKER the absolute path of a file of the
// host outside the box; the suite runs `nsbox exec` with
// NSBOX_ESCAPE_HOSTONLY in nsbox's own environment. With "init", PID 1
// (nsbox's init) is attacked first. ESCAPED: a tracer attached to a
// process that did not run its command yet (it ran nsbox or nsbox's exec
// trampoline: unconfined by the box's seccomp filter, holding nsbox's
// descriptors), or /proc/PID led to the marker, the runtime's environment
// or the nsbox binary.
func ptraceRuntime(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: ptrace DIR DEV:INO MARKER [init]")
	}
	p := &prober{target: args[1], marker: args[2]}
	var first func()
	if len(args) > 3 && args[3] == "init" {
		first = p.init
	}
	return watchBox(args[0], first, p.probe, func() {
		report("INFO", "coverage", "seen=%d caught=%d", p.t.get("seen"), p.t.get("caught"))
		if n := p.t.get("attached"); n > 0 {
			report("CONTROL", "seize", "attached to %d of the box's own commands", n)
		}
		for _, k := range []string{"seize", "environ", "root", "exe"} {
			report("BLOCKED", k, "%d attempts on nsbox's exec processes before their command", p.t.get("caught"))
		}
	})
}

type prober struct {
	target, marker string
	t              tally
}

// init attacks PID 1, nsbox's init: every way in must fail.
func (p *prober) init() {
	_, err := os.Readlink("/proc/1/exe")
	attempt("init exe", err, "read the link /proc/1/exe")
	fd, err := unix.Open("/proc/1/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
	}
	attempt("init exe open", err, "opened /proc/1/exe (%s)", fileKey(fd))
	_, err = os.ReadFile("/proc/1/environ")
	attempt("init environ", err, "read /proc/1/environ")
	_, err = os.ReadFile("/proc/1/root" + p.marker)
	attempt("init root", err, "read the host's %s through /proc/1/root", p.marker)
	// The numbers of its descriptors may show (real root owns the
	// directory of an undumpable process); where they lead must not.
	attempt("init fds", initFDLinks(), "read where the descriptors of PID 1 lead (/proc/1/fd/N)")
	_, err = os.Readlink("/proc/1/cwd")
	attempt("init cwd", err, "read the link /proc/1/cwd")
	attempt("init mem", readMem(1), "read the memory of PID 1 through /proc/1/mem")
	attempt("init process_vm_readv", vmRead(1), "read the memory of PID 1 with process_vm_readv")
	attached, _, err := seize(1)
	if err == nil && !attached {
		err = fmt.Errorf("not attached")
	}
	attempt("init ptrace", err, "attached to PID 1 with PTRACE_SEIZE")
}

// readMem reads a few bytes of pid's memory through /proc/PID/mem, at the
// start of its first mapping (or where a static Go binary is loaded, when
// the maps are hidden).
func readMem(pid int) error {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		return err
	}
	defer f.Close()
	addr, err := firstMapping(pid)
	if err != nil {
		addr = 0x400000
	}
	_, err = f.ReadAt(make([]byte, 16), int64(addr))
	return err
}

func vmRead(pid int) error {
	addr, err := firstMapping(pid)
	if err != nil {
		addr = 0x400000 // where a static Go binary is loaded: the maps are hidden
	}
	buf := make([]byte, 16)
	_, err = unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &buf[0], Len: 16}}, []unix.RemoteIovec{{Base: uintptr(addr), Len: 16}}, 0)
	return err
}

func firstMapping(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return 0, err
	}
	start, _, _ := strings.Cut(string(b), "-")
	return strconv.ParseUint(start, 16, 64)
}

// seize attaches to pid with PTRACE_SEIZE and reports whether it
// attached and what the tracee was then: its executable and the
// confinement /proc/PID/status shows. It detaches at once (interrupting the
// tracee to do so), or reaps the tracee's exit for its parent.
func seize(pid int) (attached bool, then string, err error) {
	type res struct {
		then string
		err  error
	}
	c := make(chan res, 1)
	go func() {
		// A tracer is a thread: this one stays locked to the goroutine
		// until it has let the tracee go.
		runtime.LockOSThread()
		if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, 0, 0, 0); e != 0 {
			c <- res{err: e}
			runtime.UnlockOSThread()
			return
		}
		c <- res{then: describe(pid)}
		if release(pid) {
			runtime.UnlockOSThread()
		} // else the thread ends with the goroutine, which detaches the tracee
	}()
	r := <-c
	return r.err == nil, r.then, r.err
}

// release lets a seized tracee go: it stops it with PTRACE_INTERRUPT and
// detaches (handing back a signal it stopped for), or sees it exit.
func release(pid int) bool {
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_INTERRUPT, uintptr(pid), 0, 0, 0, 0); e != 0 {
		return false
	}
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
			return err == unix.ECHILD
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return true
		case ws.Stopped():
			sig := uintptr(0)
			if uint32(ws)>>16 == 0 && ws.StopSignal() != unix.SIGTRAP {
				sig = uintptr(ws.StopSignal()) // a signal being delivered, not our stop
			}
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(pid), 0, sig, 0, 0)
			return e == 0
		}
	}
}

// describe says what process pid runs and how it is confined.
func describe(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid)
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		exe = "exe: " + errText(err)
	}
	d := []string{exe}
	b, _ := os.ReadFile(dir + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "Uid", "Seccomp", "NoNewPrivs", "CapEff":
			d = append(d, k+" "+strings.Join(strings.Fields(v), " "))
		}
	}
	return strings.Join(d, ", ")
}

// probe attacks one process of the box while it lives: what succeeds
// before nsbox's child has executed its command is an escape.
func (p *prober) probe(pid int) {
	dir := "/proc/" + strconv.Itoa(pid)
	own := map[string]bool{pathKey("/bin/busybox"): true, pathKey("/proc/self/exe"): true}
	first := true
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) && time.Now().Before(deadline) {
		fd, err := unix.Open(dir+"/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		key := ""
		if err == nil {
			key = fileKey(fd)
			unix.Close(fd)
		}
		if first && (err == unix.EACCES || err == unix.EPERM || (err == nil && !own[key])) {
			p.t.add("caught")
		}
		first = false
		if key == p.target {
			report("ESCAPED", "exe", "opened the nsbox binary through %s/exe", dir)
		}
		if env, err := os.ReadFile(dir + "/environ"); err == nil && bytes.Contains(env, []byte("NSBOX_ESCAPE_HOSTONLY=")) {
			report("ESCAPED", "environ", "read the environment of nsbox exec through %s/environ", dir)
		}
		if _, err := os.Stat(dir + "/root" + p.marker); err == nil {
			report("ESCAPED", "root", "reached the host's %s through %s/root", p.marker, dir)
		}
		if err == nil && own[key] {
			break // the command runs: the box's own process
		}
		// Attached while the process still runs nsbox or its trampoline
		// (not yet its command, nor its filter): it is the runtime's.
		if attached, then, _ := seize(pid); attached {
			exe := strings.SplitN(then, ",", 2)[0]
			switch {
			case own[pathKey(exe)]:
				p.t.add("attached") // to the box's own command: allowed
			case !strings.Contains(exe, "ENOENT"): // not the command, nor gone
				report("ESCAPED", "seize", "attached to process %d before it executed its command: %s", pid, then)
			}
			break
		}
		runtime.Gosched()
	}
	p.t.add("seen")
}

// initFDLinks reads the links in /proc/1/fd: nil if one could be read.
func initFDLinks() error {
	ents, err := os.ReadDir("/proc/1/fd")
	if err != nil {
		return err
	}
	err = fmt.Errorf("no descriptors listed")
	for _, e := range ents {
		if _, err = os.Readlink("/proc/1/fd/" + e.Name()); err == nil {
			return nil
		}
	}
	return err
}

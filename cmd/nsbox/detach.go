package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/specjson"
)

// monitorVerb is the hidden verb of the process that owns a detached box:
// it starts the box, waits for it and removes its record when it ends.
const monitorVerb = "__monitor"

type monitorRequest struct {
	Root    string        `json:"root"`
	ID      string        `json:"id"`
	Spec    *specs.Spec   `json:"spec"`
	Options nsbox.Options `json:"options"`
}

// detach hands the box to a monitor process in its own session and prints
// the box id once the box runs.
func detach(g *global, id string, s *specs.Spec, opts nsbox.Options) int {
	if opts.PreserveFDs > 0 {
		return fail(g, &usageError{"--preserve-fds cannot be combined with --detach"})
	}
	status, statusW, err := os.Pipe()
	if err != nil {
		return fail(g, err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return fail(g, err)
	}
	// The monitor and the box keep none of the caller's streams: a caller
	// reading our output (ID=$(nsbox run -d ...)) must see its end now.
	cmd := exec.Command("/proc/self/exe", monitorVerb)
	cmd.ExtraFiles = []*os.File{statusW, reqR} // fds 3 and 4
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail(g, fmt.Errorf("start the box's monitor: %w", err))
	}
	statusW.Close()
	reqR.Close()
	err = writeJSON(reqW, monitorRequest{Root: g.root, ID: id, Spec: s, Options: opts})
	reqW.Close()
	if err != nil {
		return fail(g, err)
	}
	out, _ := io.ReadAll(status)
	msg := strings.TrimSpace(string(out))
	if msg != "ok" {
		cmd.Wait()
		if msg == "" {
			msg = "the box's monitor exited before starting it"
		}
		logError(g, fmt.Errorf("%s", msg))
		return exitError
	}
	cmd.Process.Release()
	fmt.Println(id)
	return 0
}

func cmdMonitor(args []string) int {
	// Inherited open: no process the monitor starts (the box, pasta) may
	// keep them, or the caller would wait for their end forever.
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	status := os.NewFile(3, "status")
	reqFile := os.NewFile(4, "request")
	var req monitorRequest
	b, err := io.ReadAll(reqFile)
	if err == nil {
		err = specjson.Unmarshal(b, &req)
	}
	reqFile.Close()
	if err != nil {
		fmt.Fprintf(status, "monitor: read request: %v\n", err)
		return exitError
	}
	rt, err := nsbox.New(req.Root)
	if err != nil {
		fmt.Fprintln(status, err)
		return exitError
	}
	// The box reads nothing and writes to a log in its state directory
	// (removed with the box).
	if err := os.MkdirAll(rt.Root(), 0o700); err != nil {
		fmt.Fprintln(status, err)
		return exitError
	}
	logPath := filepath.Join(rt.Root(), "."+req.ID+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(status, "box output log: %v\n", err)
		return exitError
	}
	defer os.Remove(logPath)
	if null, err := os.Open(os.DevNull); err == nil {
		unix.Dup2(int(null.Fd()), 0)
		null.Close()
	}
	unix.Dup2(int(logFile.Fd()), 1)
	unix.Dup2(int(logFile.Fd()), 2)
	logFile.Close()
	box, err := rt.Run(req.ID, req.Spec, req.Options)
	if err != nil {
		fmt.Fprintln(status, err)
		return exitError
	}
	fmt.Fprintln(status, "ok")
	status.Close()
	code, _ := box.Wait()
	return code
}

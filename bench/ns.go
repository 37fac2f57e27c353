package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// nsProcs processes with nsPerProc new namespaces each make the host's
// namespaces that the ns suite lists.
const (
	nsProcs   = 100
	nsPerProc = 5 // mnt, uts, ipc, net, pid
)

// nsSuite times `nsbox ns ls` against util-linux's lsns on a host with
// nsProcs*nsPerProc more namespaces than usual: setup starts nsProcs
// unshares, each with a sleep in namespaces of its own, and clean kills
// them by pid (--kill-child takes each sleep along).
func nsSuite(e environment) suite {
	var procs []*exec.Cmd
	nsbox := []string{e.nsbox, "--root", filepath.Join(e.work, "state"), "ns", "ls"}
	s := suite{
		name: "ns",
		about: fmt.Sprintf("list the namespaces of the host, with %d more (%d unshare processes, each with a sleep in new mnt, uts, ipc, net and pid namespaces)",
			nsProcs*nsPerProc, nsProcs),
		tools: []*tool{
			{name: "nsbox ns ls", argv: nsbox},
			{name: "lsns", argv: []string{"lsns"}, retries: 3},
			{name: "nsbox ns ls --json", argv: append(nsbox[:len(nsbox):len(nsbox)], "--json")},
			{name: "lsns --json", argv: []string{"lsns", "--json"}, retries: 3},
		},
		ratios:  [][2]string{{"nsbox ns ls", "lsns"}, {"nsbox ns ls --json", "lsns --json"}},
		maxRuns: 100,
	}
	s.setup = func() error {
		for i := 0; i < nsProcs; i++ {
			cmd := exec.Command("unshare", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "--net", "--pid", "sleep", "1000000")
			if err := cmd.Start(); err != nil {
				return err
			}
			procs = append(procs, cmd)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, cmd := range procs {
			for !runsSleep(cmd.Process.Pid) {
				if time.Now().After(deadline) {
					return fmt.Errorf("unshare %d: no sleep in new namespaces after 10s", cmd.Process.Pid)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return nil
	}
	s.clean = func() error {
		var errs []error
		for _, cmd := range procs {
			cmd.Process.Kill()
			if err := cmd.Wait(); err != nil && !isKilled(err) {
				errs = append(errs, err)
			}
		}
		procs = nil
		return errors.Join(errs...)
	}
	return s
}

// runsSleep reports whether the child of unshare pid is the sleep (it has
// unshared and forked).
func runsSleep(pid int) bool {
	p := strconv.Itoa(pid)
	kids, _ := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	f := strings.Fields(string(kids))
	if len(f) == 0 {
		return false
	}
	cmdline, _ := os.ReadFile("/proc/" + f[0] + "/cmdline")
	return strings.HasPrefix(string(cmdline), "sleep\x00")
}

// isKilled reports whether err is the end of a process killed by SIGKILL.
func isKilled(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == -1
}

package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/caps"
	"github.com/nsbox/nsbox/internal/fileio"
)

type execFlags struct {
	processFile, cwd, user, pidFile, consoleSocket, apparmor, label string
	env, groups, caps                                               []string
	tty, noNewPrivs, detach                                         bool
	preserveFDs                                                     int
}

func cmdExec(g *global, args []string) int {
	sigs := catchSignals() // overlaps the work up to the start (see cmdRun)
	var f execFlags
	fs := newFlagSet("exec", "[flags] ID COMMAND [ARG...]\n       nsbox exec [flags] --process FILE ID",
		"Run a process in a running box, with the box's process settings as defaults.")
	fs.stringVar(&f.processFile, "process", "p", "FILE", "the process, as OCI process JSON")
	fs.boolVar(&f.tty, "tty", "t", "give the process a terminal")
	fs.stringVar(&f.cwd, "cwd", "", "DIR", "working directory")
	fs.listVar(&f.env, "env", "e", "KEY=VALUE", "add an environment variable (repeatable)")
	fs.stringVar(&f.user, "user", "u", "UID[:GID]", "run as UID:GID")
	fs.listVar(&f.groups, "additional-gids", "g", "GID", "add a supplementary group (repeatable)")
	fs.listVar(&f.caps, "cap", "c", "CAP", "add a capability (repeatable)")
	fs.boolVar(&f.noNewPrivs, "no-new-privs", "", "set no_new_privs")
	fs.boolVar(&f.detach, "detach", "d", "do not wait for the process")
	fs.stringVar(&f.pidFile, "pid-file", "", "FILE", "write the process's pid to FILE")
	fs.stringVar(&f.consoleSocket, "console-socket", "", "SOCKET", "send the terminal's master to this unix socket")
	fs.intVar(&f.preserveFDs, "preserve-fds", "", "N", "pass descriptors 3..3+N-1 to the process")
	fs.stringVar(&f.apparmor, "apparmor", "", "PROFILE", "AppArmor profile")
	fs.stringVar(&f.label, "process-label", "", "LABEL", "SELinux label")
	id, cmd, err := fs.parseUntilArg(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return 0
	}
	if err != nil {
		return fail(g, err)
	}
	rt, err := nsbox.New(g.root)
	if err != nil {
		return fail(g, err)
	}
	p, err := f.process(rt, id, cmd)
	if err != nil {
		return fail(g, err)
	}
	if p.Terminal && f.detach && f.consoleSocket == "" {
		return fail(g, &usageError{"a detached process with a terminal needs --console-socket"})
	}
	o := nsbox.Options{PreserveFDs: f.preserveFDs + listenFDs(), ConsoleSocket: f.consoleSocket}
	if p.Terminal && f.consoleSocket == "" {
		if ws, err := unixWinsize(); err == nil {
			o.WinSize = ws
		}
	}
	if g.debug {
		o.Debug = os.Stderr
	}
	c := <-sigs
	if f.detach {
		signal.Stop(c) // nothing to forward them to
	}
	proc, err := rt.Exec(id, p, o)
	if err != nil {
		return startFailed(g, err)
	}
	if f.pidFile != "" {
		if err := writePidFile(f.pidFile, proc.Pid()); err != nil {
			proc.Signal(unix.SIGKILL)
			proc.Wait()
			return fail(g, err)
		}
	}
	if f.detach {
		return 0
	}
	return waitProcess(g, proc, c)
}

// process builds the process to exec: from --process, or from the box's own
// process with the flags' changes, as runc exec does.
func (f *execFlags) process(rt *nsbox.Runtime, id string, cmd []string) (*specs.Process, error) {
	if f.processFile != "" {
		if len(cmd) > 0 {
			return nil, &usageError{"give the command either in --process or after the id, not both"}
		}
		b, err := fileio.ReadFile(f.processFile)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		p, err := nsbox.ParseProcess(b)
		if err != nil {
			return nil, fmt.Errorf("--process %s: %w", f.processFile, err)
		}
		return p, nil
	}
	if len(cmd) == 0 {
		return nil, &usageError{"no command: nsbox exec [flags] ID COMMAND [ARG...]"}
	}
	p, err := rt.BoxProcess(id)
	if err != nil {
		return nil, err
	}
	p.Args = cmd
	p.Terminal = f.tty
	if f.cwd != "" {
		p.Cwd = f.cwd
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", e)
		}
		p.Env = append(p.Env, e)
	}
	if f.user != "" {
		uid, gid, err := parseUser(f.user)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: uid, GID: gid, Umask: p.User.Umask}
	}
	for _, gs := range f.groups {
		gid, _, err := parseUser(gs)
		if err != nil {
			return nil, fmt.Errorf("--additional-gids %q: want a number", gs)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, gid)
	}
	if len(f.caps) > 0 {
		if p.Capabilities == nil {
			p.Capabilities = &specs.LinuxCapabilities{}
		}
		for _, c := range f.caps {
			n, err := caps.Parse(c)
			if err != nil {
				return nil, fmt.Errorf("--cap: %w", err)
			}
			name := caps.Name(n)
			pc := p.Capabilities
			pc.Bounding = append(pc.Bounding, name)
			pc.Effective = append(pc.Effective, name)
			pc.Permitted = append(pc.Permitted, name)
		}
	}
	if f.noNewPrivs {
		p.NoNewPrivileges = true
	}
	if f.apparmor != "" {
		p.ApparmorProfile = f.apparmor
	}
	if f.label != "" {
		p.SelinuxLabel = f.label
	}
	return p, nil
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
)

// noMoreArgs ends the arguments given to parseUntilArg, so that none
// (no box, no command) is not an error: no argument can hold a NUL.
const noMoreArgs = "\x00"

// enterFlags are nsenter's flags for the namespace types.
var enterFlags = []struct {
	long, short string
	t           specs.LinuxNamespaceType
}{
	{"user", "U", specs.UserNamespace}, {"mount", "m", specs.MountNamespace}, {"uts", "u", specs.UTSNamespace},
	{"ipc", "i", specs.IPCNamespace}, {"net", "n", specs.NetworkNamespace}, {"pid", "p", specs.PIDNamespace},
	{"cgroup", "C", specs.CgroupNamespace}, {"time", "T", specs.TimeNamespace},
}

func nsEnter(g *global, fs *flagSet, args []string) int {
	sigs := catchSignals()
	var target int
	var all bool
	var o nsbox.EnterOptions
	fs.intVar(&target, "target", "t", "PID", "enter the namespaces of process PID")
	fs.boolVar(&all, "all", "a", "enter every namespace of the target that differs from nsbox's (the default)")
	chosen := make([]bool, len(enterFlags))
	for i, f := range enterFlags {
		fs.boolVar(&chosen[i], f.long, f.short, "enter the "+f.long+" namespace")
	}
	fs.boolVar(&o.Root, "root", "r", "run in the target's root directory")
	fs.boolVar(&o.Wd, "wd", "w", "run in the target's working directory")
	fs.boolVar(&o.PreserveCredentials, "preserve-credentials", "", "keep the caller's uid and gid in an entered user namespace")
	box, cmd, err := enterArgs(fs, args, &target)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return 0
	}
	if err != nil {
		return nsFail(g, err)
	}
	if !all {
		for i, f := range enterFlags {
			if chosen[i] {
				o.Types = append(o.Types, f.t)
			}
		}
	}
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh"}
		if sh := os.Getenv("SHELL"); sh != "" {
			cmd[0] = sh
		}
	}
	var rt *nsbox.Runtime
	if box != "" {
		if rt, err = nsbox.New(g.root); err != nil {
			return nsFail(g, err)
		}
		if st, err := rt.State(box); err == nil {
			target = st.Pid // only to decide on a terminal
		}
	}
	if isTerminal(0) && isTerminal(1) && hasTerminalDevice(target, o.Types) {
		o.Terminal = true
		o.WinSize, _ = unixWinsize()
	}
	if g.debug {
		o.Debug = os.Stderr
	}
	var proc *nsbox.Process
	if box != "" {
		proc, err = rt.EnterBox(box, cmd, o)
	} else {
		proc, err = nsbox.Enter(target, cmd, o)
	}
	if err != nil {
		if errors.Is(err, unix.ESRCH) || errors.Is(err, errors.ErrUnsupported) || errors.Is(err, nsbox.ErrNotExist) {
			return nsFail(g, err)
		}
		return startFailed(g, err)
	}
	return waitProcess(g, proc, <-sigs)
}

// enterArgs parses the arguments of ns enter: flags, then the box (unless
// --target), then the command, with "--" or not before it.
func enterArgs(fs *flagSet, args []string, target *int) (box string, cmd []string, err error) {
	first, rest, err := fs.parseUntilArg(append(args[:len(args):len(args)], noMoreArgs))
	if err != nil {
		return "", nil, err
	}
	if *target == 0 && first != noMoreArgs {
		box = first
		if first, rest, err = fs.parseUntilArg(rest); err != nil {
			return "", nil, err
		}
	}
	switch {
	case *target < 0:
		return "", nil, fs.errorf("--target %d: not a pid", *target)
	case *target == 0 && box == "":
		return "", nil, fs.errorf("want --target PID or a box")
	}
	if first == noMoreArgs {
		return box, nil, nil
	}
	return box, append([]string{first}, rest[:len(rest)-1]...), nil
}

// hasTerminalDevice reports whether a terminal can be opened for the
// command: in the target's mount namespace, when it is entered, only if
// it has a /dev/ptmx.
func hasTerminalDevice(pid int, types []specs.LinuxNamespaceType) bool {
	if pid <= 0 {
		return false
	}
	entered, err := nsbox.EnterTypes(pid, types)
	if err != nil {
		return false
	}
	for _, t := range entered {
		if t == specs.MountNamespace {
			_, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/root/dev/ptmx")
			return err == nil
		}
	}
	return true
}

// waitProcess relays the process's terminal, if it has one, and forwards
// the signals of c to it until it ends; it returns its exit status. (For
// ns enter and exec.)
func waitProcess(g *global, proc *nsbox.Process, c chan os.Signal) int {
	var relay *consoleRelay
	if proc.Console != nil {
		var err error
		if relay, err = startRelay(proc.Console); err != nil {
			proc.Signal(unix.SIGKILL)
			proc.Wait()
			return fail(g, err)
		}
	}
	go func() {
		for sig := range c {
			if sig == unix.SIGWINCH && relay != nil {
				relay.resize()
				continue
			}
			proc.Signal(sig.(unix.Signal))
		}
	}()
	code, err := proc.Wait()
	if relay != nil {
		relay.finish()
	}
	if err != nil {
		return fail(g, err)
	}
	return code
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/fileio"
)

// loadBundle reads DIR/config.json, with root.path made absolute.
func loadBundle(dir string) (*specs.Spec, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	b, err := fileio.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return nil, abs, err
	}
	s, err := nsbox.ParseSpec(b)
	if err != nil {
		return nil, abs, fmt.Errorf("%s/config.json: %w", abs, err)
	}
	if s.Root != nil && s.Root.Path != "" && !filepath.IsAbs(s.Root.Path) {
		s.Root.Path = filepath.Join(abs, s.Root.Path)
	}
	return s, abs, nil
}

// ociFlags are the flags create and run share, as runc's.
type ociFlags struct {
	bundle, pidFile, consoleSocket string
	preserveFDs                    int
	noPivot, noNewKeyring, detach  bool
}

func (f *ociFlags) define(fs *flagSet) {
	fs.stringVar(&f.bundle, "bundle", "b", "DIR", "OCI bundle directory (default: the current directory)")
	fs.stringVar(&f.pidFile, "pid-file", "", "FILE", "write the box's pid to FILE")
	fs.stringVar(&f.consoleSocket, "console-socket", "", "SOCKET", "send the terminal's master to this unix socket")
	fs.intVar(&f.preserveFDs, "preserve-fds", "", "N", "pass descriptors 3..3+N-1 to the command")
	fs.boolVar(&f.noPivot, "no-pivot", "", "enter the root with MS_MOVE and chroot, not pivot_root (for an initramfs)")
	fs.boolVar(&f.noNewKeyring, "no-new-keyring", "", "keep the caller's session keyring instead of a new one")
}

func (f *ociFlags) options() nsbox.Options {
	return nsbox.Options{PreserveFDs: f.preserveFDs + listenFDs(), ConsoleSocket: f.consoleSocket, Cgroup: nsbox.CgroupAlways,
		NoPivot: f.noPivot, NoNewKeyring: f.noNewKeyring}
}

// listenFDs is the number of descriptors systemd's socket activation passed
// to this process (LISTEN_FDS, for LISTEN_PID), which pass through to the
// box as with runc: they stay at 3.., before any --preserve-fds.
func listenFDs() int {
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// passListenFDs tells the box's command, process pid in its pid namespace,
// about the activation descriptors (runc sets LISTEN_PID=1 likewise).
func passListenFDs(p *specs.Process, pid int) {
	if n := listenFDs(); n > 0 {
		p.Env = append(p.Env, "LISTEN_FDS="+strconv.Itoa(n), "LISTEN_PID="+strconv.Itoa(pid))
	}
}

func (f *ociFlags) load(g *global, id string) (*specs.Spec, nsbox.Options, int) {
	dir := f.bundle
	if dir == "" {
		dir = "."
	}
	s, abs, err := loadBundle(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nsbox.Options{}, fail(g, &usageError{fmt.Sprintf("no config.json in %s for OCI box %q: %s", abs, id, bothForms)})
	}
	if err != nil {
		return nil, nsbox.Options{}, fail(g, err)
	}
	o := f.options()
	if g.rootlessMode() {
		o.Cgroup = nsbox.NoCgroup // as runc --rootless: no cgroup of its own
	}
	o.Bundle = abs
	if s.Process != nil {
		passListenFDs(s.Process, 1)
	}
	return s, o, 0
}

func cmdCreate(g *global, args []string) int {
	var f ociFlags
	fs := newFlagSet("create", "[--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] ID",
		"Create an OCI box from a bundle; its command waits for 'nsbox start ID'.")
	f.define(fs)
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	s, o, code := f.load(g, pos[0])
	if s == nil {
		return code
	}
	box, err := rt.Create(pos[0], s, o)
	if err != nil {
		return startFailed(g, err)
	}
	if f.pidFile != "" {
		if err := writePidFile(f.pidFile, box.Pid()); err != nil {
			rt.Delete(pos[0], true)
			return fail(g, err)
		}
	}
	return 0
}

func cmdStart(g *global, args []string) int {
	fs := newFlagSet("start", "ID", "Run the command of a created box.")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := rt.Start(pos[0]); err != nil {
		return fail(g, err)
	}
	return 0
}

// runBundle is `nsbox run [--bundle DIR] ID`: create and start an OCI
// bundle; in the foreground wait for it and remove it, as `runc run` does.
func runBundle(g *global, f *runFlags, id string) int {
	s, o, code := f.oci.load(g, id)
	if s == nil {
		return code
	}
	if f.oci.detach {
		rt, err := nsbox.New(g.root)
		if err != nil {
			return fail(g, err)
		}
		if s.Process.Terminal && o.ConsoleSocket == "" {
			return fail(g, &usageError{"a detached box with a terminal needs --console-socket"})
		}
		box, err := rt.Run(id, s, o)
		if err != nil {
			return startFailed(g, err)
		}
		if f.oci.pidFile != "" {
			if err := writePidFile(f.oci.pidFile, box.Pid()); err != nil {
				rt.Delete(id, true)
				return fail(g, err)
			}
		}
		return 0
	}
	o.Ephemeral, o.DieWithParent = true, true
	if s.Process.Terminal && o.ConsoleSocket == "" && isTerminal(0) {
		if ws, err := unixWinsize(); err == nil {
			o.WinSize = ws
		}
	}
	return runForeground(g, id, s, o, f.oci.pidFile)
}

package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/userns"
)

// runFlags are the flags of `nsbox run`, for both of its forms.
type runFlags struct {
	name, rootfs, workdir, hostname, domainname, user, usernsMode, timeOffset string
	binds, tmpfs, env, share, join                                            []string
	readOnly, clearEnv, noInit, detach                                        bool
	security                                                                  securityFlags
	tty                                                                       string // "" = auto
	oci                                                                       ociFlags
	limits                                                                    resourceFlags
	net                                                                       netFlags
}

func runFlagSet(f *runFlags) *flagSet {
	fs := newFlagSet("run", "[flags] -- CMD [ARG...]\n       nsbox run [--bundle DIR] [flags] ID",
		`Run CMD in a new box: new mount, pid, network, IPC, UTS, cgroup and user namespaces;
the host's / read-only (or --rootfs DIR), a fresh /proc, a minimal /dev, tmpfs /tmp
and /run, /sys read-only, loopback up. Run by root, the box's root is an unused
range of ids; run by anyone else, it is the caller. Confined as Docker confines
a container: a seccomp filter, the default capabilities, no_new_privs, masked
and read-only /proc and /sys paths (--privileged turns that off). With a lone
ID instead of a command, run the OCI bundle in --bundle (default: the current
directory).`)
	fs.stringVar(&f.name, "name", "", "NAME", "box id (default: random)")
	fs.stringVar(&f.rootfs, "rootfs", "", "DIR", "use DIR as the root instead of the host's /")
	fs.boolVar(&f.readOnly, "read-only", "", "make the --rootfs root read-only")
	fs.listVar(&f.binds, "bind", "", "SRC:DST[:ro]", "bind-mount host path SRC at DST (repeatable)")
	fs.listVar(&f.tmpfs, "tmpfs", "", "DST", "mount an empty tmpfs at DST (repeatable)")
	fs.stringVar(&f.workdir, "workdir", "w", "DIR", "working directory in the box")
	fs.stringVar(&f.hostname, "hostname", "", "NAME", "hostname (default: the box id)")
	fs.stringVar(&f.domainname, "domainname", "", "NAME", "NIS domain name")
	fs.stringVar(&f.user, "user", "u", "UID[:GID]", "run the command as UID:GID inside the box")
	fs.listVar(&f.env, "env", "e", "KEY=VALUE", "set an environment variable (repeatable)")
	fs.boolVar(&f.clearEnv, "clear-env", "", "start from an empty environment")
	fs.listVar(&f.share, "share", "", "TYPE[,TYPE]", "keep the host's namespace of TYPE: "+namespaces.Names())
	fs.listVar(&f.join, "ns", "", "TYPE=PATH", "join the namespace at PATH (/proc/PID/ns/net, /run/netns/NAME)")
	fs.stringVar(&f.usernsMode, "userns", "", "auto|host|C:H:S[,..]", "user namespace: an unused id range (auto), none (host), or maps")
	fs.stringVar(&f.timeOffset, "time-offset", "", "monotonic=S,boottime=S", "new time namespace with these clock offsets (seconds)")
	fs.boolVar(&f.noInit, "no-init", "", "exec the command as PID 1 instead of a small init")
	fs.funcVar("detach", "d", "", "run in the background and print the box id", func(v string) error {
		b, err := strconv.ParseBool(v)
		f.detach, f.oci.detach = b, b
		return err
	})
	fs.defs[len(fs.defs)-1].arg = "" // a boolean
	fs.funcVar("tty", "t", "", "give the box a terminal (default: when stdin and stdout are terminals)", func(v string) error {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("want true or false")
		}
		f.tty = v
		return nil
	})
	fs.defs[len(fs.defs)-1].arg = "" // a boolean
	f.security.define(fs)
	f.limits.defineRun(fs)
	f.net.define(fs)
	f.oci.define(fs)
	return fs
}

const bothForms = "use 'nsbox run [flags] -- CMD [ARG...]' for a new box, or 'nsbox run [--bundle DIR] ID' for an OCI bundle"

// catchSignals arms the signals a foreground box forwards. os/signal starts
// a thread on first use: started first thing in its own goroutine, that
// overlaps the parsing and planning of the box.
func catchSignals() <-chan chan os.Signal {
	ready := make(chan chan os.Signal, 1)
	go func() {
		sigs := make(chan os.Signal, 16)
		signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
		ready <- sigs
	}()
	return ready
}

func cmdRun(g *global, args []string) int {
	g.signals = catchSignals()
	var f runFlags
	fs := runFlagSet(&f)
	pos, cmd, dashdash, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return 0
	}
	if err != nil {
		return fail(g, err)
	}
	switch {
	case dashdash && len(pos) > 0:
		return fail(g, &usageError{fmt.Sprintf("unexpected %q before --: %s", strings.Join(pos, " "), bothForms)})
	case dashdash && len(cmd) == 0:
		return fail(g, &usageError{"no command after --: " + bothForms})
	case dashdash:
		return runCommand(g, &f, cmd)
	case len(pos) == 1:
		for _, name := range fs.seen {
			if !ociRunFlags[name] {
				return fail(g, &usageError{fmt.Sprintf("--%s belongs to the command form: %s", name, bothForms)})
			}
		}
		return runBundle(g, &f, pos[0])
	case len(pos) == 0:
		return fail(g, &usageError{"no command: " + bothForms})
	default:
		return fail(g, &usageError{fmt.Sprintf("%q is not a box id: %s", strings.Join(pos, " "), bothForms)})
	}
}

// ociRunFlags are the flags of `run` that apply to an OCI bundle (the
// bundle's config.json says the rest).
var ociRunFlags = map[string]bool{"bundle": true, "pid-file": true, "console-socket": true, "preserve-fds": true,
	"no-pivot": true, "no-new-keyring": true, "detach": true}

// specFromFlags turns the flags of the command form into a spec.
func specFromFlags(f *runFlags, cmd []string, id string) (*specs.Spec, error) {
	var opts []nsbox.SpecOpt
	if f.rootfs != "" {
		opts = append(opts, nsbox.WithRootfs(f.rootfs))
		if f.readOnly {
			opts = append(opts, nsbox.WithReadonlyRoot)
		}
	} else if f.readOnly {
		return nil, &usageError{"--read-only applies to --rootfs (the host root is always read-only)"}
	}
	if f.clearEnv {
		opts = append(opts, nsbox.WithClearEnv)
	}
	if len(f.env) > 0 {
		opts = append(opts, nsbox.WithEnv(f.env...))
	}
	for _, b := range f.binds {
		src, dst, ro, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nsbox.WithBind(src, dst, ro))
	}
	for _, t := range f.tmpfs {
		opts = append(opts, nsbox.WithTmpfs(t))
	}
	if f.workdir != "" {
		opts = append(opts, nsbox.WithWorkdir(f.workdir))
	}
	if f.limits.set() {
		opts = append(opts, nsbox.WithResources(&f.limits.r))
	}
	if f.user != "" {
		uid, gid, err := parseUser(f.user)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nsbox.WithUser(uid, gid))
	}
	shared := map[specs.LinuxNamespaceType]bool{}
	for _, list := range f.share {
		for _, name := range strings.Split(list, ",") {
			t, err := namespaces.Parse(name)
			if err != nil {
				return nil, fmt.Errorf("--share: %w", err)
			}
			shared[t] = true
			opts = append(opts, nsbox.WithSharedNamespace(t))
		}
	}
	joined := map[specs.LinuxNamespaceType]bool{}
	for _, j := range f.join {
		name, path, ok := strings.Cut(j, "=")
		if !ok {
			return nil, fmt.Errorf("--ns %q: want TYPE=PATH", j)
		}
		t, err := namespaces.Parse(name)
		if err != nil {
			return nil, fmt.Errorf("--ns: %w", err)
		}
		if shared[t] {
			return nil, fmt.Errorf("--ns %s: the %s namespace is also given to --share", j, name)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("--ns %s: %w", j, err)
		}
		joined[t] = true
		opts = append(opts, nsbox.WithJoinedNamespace(t, path))
	}
	switch mode := f.usernsMode; {
	case mode == "" || mode == "auto":
	case mode == "host":
		if joined[specs.UserNamespace] {
			return nil, fmt.Errorf("--userns=host conflicts with --ns user=...")
		}
		opts = append(opts, nsbox.WithSharedNamespace(specs.UserNamespace))
		shared[specs.UserNamespace] = true
	default:
		maps, err := userns.ParseMaps(mode)
		if err != nil {
			return nil, fmt.Errorf("--userns: %w", err)
		}
		if shared[specs.UserNamespace] || joined[specs.UserNamespace] {
			return nil, fmt.Errorf("--userns=%s conflicts with sharing or joining the user namespace", mode)
		}
		opts = append(opts, nsbox.WithIDMaps(maps, maps))
	}
	if shared[specs.UserNamespace] && os.Geteuid() != 0 {
		return nil, fmt.Errorf("--userns=host (or --share user) needs root: without it a box must have its own user namespace")
	}
	if f.timeOffset != "" {
		mono, boot, err := parseTimeOffsets(f.timeOffset)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nsbox.WithTimeOffsets(mono, boot))
	}
	if shared[specs.MountNamespace] || joined[specs.MountNamespace] {
		if f.rootfs != "" || len(f.binds) > 0 || len(f.tmpfs) > 0 {
			return nil, fmt.Errorf("--rootfs, --bind and --tmpfs need the box's own mount namespace")
		}
	}
	hostname := f.hostname
	if hostname == "" && !shared[specs.UTSNamespace] && !joined[specs.UTSNamespace] {
		hostname = id
	}
	if hostname != "" {
		if shared[specs.UTSNamespace] || joined[specs.UTSNamespace] {
			return nil, fmt.Errorf("--hostname needs the box's own UTS namespace")
		}
		opts = append(opts, nsbox.WithHostname(hostname))
	}
	if f.domainname != "" {
		opts = append(opts, nsbox.WithDomainname(f.domainname))
	}
	sec, err := f.security.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	s, err := nsbox.NewSpec(cmd, opts...)
	if err != nil {
		return nil, err
	}
	if shared[specs.MountNamespace] || joined[specs.MountNamespace] {
		// Nothing to mount over: the mounts are someone else's.
		s.Mounts, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil, nil
	}
	if f.security.mayRemount(s) && (f.rootfs == "" || hasReadOnlyBind(f.binds)) {
		fmt.Fprintln(os.Stderr, "nsbox: warning: with CAP_SYS_ADMIN the box can make its read-only view of host directories writable again; add --landlock to keep it read-only")
	}
	return s, nil
}

// parseBind reads SRC:DST[:ro|:rw].
func parseBind(v string) (src, dst string, ro bool, err error) {
	parts := strings.Split(v, ":")
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw"):
		ro = parts[2] == "ro"
	default:
		return "", "", false, fmt.Errorf("--bind %q: want SRC:DST[:ro]", v)
	}
	src, dst = parts[0], parts[1]
	if src == "" || dst == "" {
		return "", "", false, fmt.Errorf("--bind %q: want SRC:DST[:ro]", v)
	}
	if _, err := os.Stat(src); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", "", false, fmt.Errorf("--bind %s: source %s: %w", v, src, err)
	}
	if !strings.HasPrefix(dst, "/") {
		return "", "", false, fmt.Errorf("--bind %s: destination %q must be an absolute path", v, dst)
	}
	return src, dst, ro, nil
}

// parseUser reads UID[:GID] (numbers: the box may have no user database).
func parseUser(v string) (uid, gid uint32, err error) {
	u, g, hasGID := strings.Cut(v, ":")
	n, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("--user %q: want numeric UID[:GID]", v)
	}
	uid, gid = uint32(n), uint32(n)
	if hasGID {
		m, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("--user %q: want numeric UID[:GID]", v)
		}
		gid = uint32(m)
	}
	return uid, gid, nil
}

// parseTimeOffsets reads monotonic=S,boottime=S (seconds, or Go durations).
func parseTimeOffsets(v string) (mono, boot time.Duration, err error) {
	for _, part := range strings.Split(v, ",") {
		clock, val, ok := strings.Cut(part, "=")
		if !ok {
			return 0, 0, fmt.Errorf("--time-offset %q: want monotonic=S,boottime=S", v)
		}
		d, err := parseSeconds(val)
		if err != nil {
			return 0, 0, fmt.Errorf("--time-offset %s: %v", part, err)
		}
		switch clock {
		case "monotonic":
			mono = d
		case "boottime":
			boot = d
		default:
			return 0, 0, fmt.Errorf("--time-offset %s: unknown clock %q (want monotonic or boottime)", part, clock)
		}
	}
	return mono, boot, nil
}

func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > 1<<40 || n < -(1<<40) {
			return 0, fmt.Errorf("offset out of range")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration like 90m", v)
	}
	return d, nil
}

// runCommand is `nsbox run [flags] -- CMD`.
func runCommand(g *global, f *runFlags, cmd []string) int {
	if f.oci.bundle != "" || f.oci.consoleSocket != "" {
		return fail(g, &usageError{"--bundle and --console-socket belong to the OCI form: nsbox run [--bundle DIR] ID"})
	}
	id := f.name
	if id == "" {
		id = nsbox.NewID()
	}
	s, err := specFromFlags(f, cmd, id)
	if err != nil {
		return fail(g, err)
	}
	cmdPid := 1
	if !f.noInit {
		cmdPid = 2 // the init's first child
	}
	passListenFDs(s.Process, cmdPid)
	terminal := isTerminal(0) && isTerminal(1)
	if f.tty != "" {
		terminal, _ = strconv.ParseBool(f.tty)
	}
	if terminal {
		if f.detach {
			return fail(g, &usageError{"--detach cannot be combined with a terminal; add --tty=false"})
		}
		if !isTerminal(0) {
			return fail(g, &usageError{"--tty needs standard input to be a terminal"})
		}
		s.Process.Terminal = true
	}
	opts := nsbox.Options{
		Landlock:      f.security.landlock,
		Init:          !f.noInit,
		AutoIDs:       true,
		IDMapBinds:    true,
		DieWithParent: true,
		Ephemeral:     true,
		PreserveFDs:   f.oci.preserveFDs + listenFDs(),
		CwdFallback:   f.workdir == "",
		Cgroup:        nsbox.CgroupWhenCheap,
		NoPivot:       f.oci.noPivot,
		NoNewKeyring:  f.oci.noNewKeyring,
	}
	if err := f.net.apply(g, s, &opts); err != nil {
		return fail(g, err)
	}
	if f.detach {
		return detach(g, id, s, opts)
	}
	if terminal {
		if ws, err := unixWinsize(); err == nil {
			opts.WinSize = ws
		}
	}
	return runForeground(g, id, s, opts, f.oci.pidFile)
}

// runForeground starts the box, relays its terminal and signals, and returns
// the command's exit status.
func runForeground(g *global, id string, s *specs.Spec, opts nsbox.Options, pidFile string) int {
	rt, err := nsbox.New(g.root)
	if err != nil {
		return fail(g, err)
	}
	if g.debug {
		opts.Debug = os.Stderr
	}
	sigs := <-g.signals // forwarded from before the box exists
	box, err := rt.Run(id, s, opts)
	if err != nil {
		if errors.Is(err, unix.EROFS) && s.Root != nil && s.Root.Path == "/" {
			err = fmt.Errorf("%w: the host's / is read-only in the box; mount on an existing directory, or under /tmp or /run", err)
		}
		return startFailed(g, err)
	}
	if pidFile != "" {
		if err := writePidFile(pidFile, box.Pid()); err != nil {
			box.Signal(unix.SIGKILL)
			box.Wait()
			return fail(g, err)
		}
	}
	var relay *consoleRelay
	if box.Console != nil {
		relay, err = startRelay(box.Console)
		if err != nil {
			box.Signal(unix.SIGKILL)
			box.Wait()
			return fail(g, err)
		}
	}
	go func() {
		for sig := range sigs {
			if sig == unix.SIGWINCH && relay != nil {
				relay.resize()
				continue
			}
			box.Signal(sig.(unix.Signal))
		}
	}()
	code, err := box.Wait()
	if relay != nil {
		relay.finish()
	}
	if err != nil {
		logError(g, err)
		return exitError
	}
	return code
}

// startFailed reports a failed start; a command that could not be executed
// gets 126 or 127 as in a shell.
func startFailed(g *global, err error) int {
	logError(g, err)
	var se interface{ ExecErrno() (unix.Errno, bool) }
	if errors.As(err, &se) {
		if errno, ok := se.ExecErrno(); ok {
			switch errno {
			case unix.ENOENT, unix.ENOTDIR:
				return exitNotFound
			case unix.EACCES, unix.ENOEXEC, unix.EISDIR, unix.EPERM:
				return exitCannotExec
			}
		}
	}
	return exitError
}

func writePidFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := fileio.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}

func unixWinsize() (unix.Winsize, error) {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return unix.Winsize{}, err
	}
	return *ws, nil
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

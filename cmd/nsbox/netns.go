package main

// `nsbox netns`: the named network namespaces of iproute2's `ip netns`,
// kept in the same files, so that either tool sees and uses the other's.
//
// A named namespace is an nsfs bind mount at /run/netns/NAME. As ip does,
// /run/netns is made a shared mount point (bound onto itself first if it is
// not a mount point), so that a namespace added or removed in one mount
// namespace is added or removed in all of those that share it.
//
// `netns exec` runs its command through the nsbox engine: the spec joins
// the network namespace by path, keeps every other namespace of the caller
// but the mount namespace, and in a mount namespace of its own shows the
// host's / with a fresh /sys (which then lists the namespace's interfaces)
// and the files of /etc/netns/NAME bound over those of /etc — what ip netns
// exec does by hand after setns.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/namespaces"
)

const (
	netnsRunDir = "/run/netns" // the named namespaces, as iproute2 keeps them
	netnsEtcDir = "/etc/netns" // per namespace files shown over /etc by exec
)

type netnsVerb struct {
	names []string // the first is the verb's name, the rest its aliases
	usage string
	short string // for the list of verbs
	about string // for the verb's help
	run   func(g *global, fs *flagSet, args []string) int
}

var netnsVerbs = []netnsVerb{
	{[]string{"add"}, "NAME", "create a network namespace named NAME",
		"Create a network namespace and name it: bind it at " + netnsRunDir + "/NAME, as ip netns add.\n" +
			"Its loopback stays down, as with ip.", netnsAdd},
	{[]string{"attach"}, "NAME PID", "name the network namespace of process PID",
		"Name the network namespace of process PID, as ip netns attach.", netnsAttach},
	{[]string{"ls", "list", "show"}, "", "list the named network namespaces",
		"List the named network namespaces as ip netns ls does: in the order of the\n" +
			"directory " + netnsRunDir + " (newest first on a tmpfs /run), each with \"(id: N)\"\n" +
			"when the current network namespace has given it an id.", netnsList},
	{[]string{"exec"}, "NAME CMD [ARG...]", "run CMD in network namespace NAME",
		"Run CMD in network namespace NAME as ip netns exec does: as the caller and in\n" +
			"the caller's other namespaces, but in a mount namespace of its own where /sys\n" +
			"is a fresh sysfs (/sys/class/net lists NAME's interfaces) and each entry of\n" +
			netnsEtcDir + "/NAME is bound over the one of the same name in /etc (entries\n" +
			"without a counterpart in /etc are skipped with a warning). The exit status is\n" +
			"CMD's (127: not found, 126: cannot be executed, 125: nsbox failed).", netnsExec},
	{[]string{"rm", "delete", "del"}, "NAME", "remove the name NAME",
		"Remove the name NAME: unmount and delete " + netnsRunDir + "/NAME, as ip netns delete.\n" +
			"The namespace itself lives on while a process is in it.", netnsDelete},
	{[]string{"identify"}, "[PID]", "print the names of the network namespace of PID",
		"Print the names of the network namespace of process PID (default: nsbox itself).", netnsIdentify},
	{[]string{"pids"}, "NAME", "print the pids of the processes in NAME",
		"Print the pids of the processes in network namespace NAME.", netnsPids},
}

func cmdNetns(g *global, args []string) int {
	if len(args) == 0 {
		args = []string{"ls"} // as plain `ip netns`
	}
	switch args[0] {
	case "help", "--help", "-h":
		fmt.Print(netnsUsage())
		return 0
	}
	for _, v := range netnsVerbs {
		for _, name := range v.names {
			if name == args[0] {
				return v.run(g, newFlagSet("netns "+v.names[0], v.usage, v.about), args[1:])
			}
		}
	}
	return fail(g, &usageError{fmt.Sprintf("unknown command %q for 'nsbox netns' (see 'nsbox netns --help')", args[0])})
}

func netnsUsage() string {
	var b strings.Builder
	b.WriteString(`Usage: nsbox netns [VERB [ARGS]]

Named network namespaces, shared with iproute2: 'ip netns' and 'nsbox netns'
see and use each other's (bind mounts at ` + netnsRunDir + `/NAME).

Verbs:
`)
	for _, v := range netnsVerbs {
		about := v.short
		if len(v.names) > 1 {
			about += " (also: " + strings.Join(v.names[1:], ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-24s %s\n", strings.TrimSpace(v.names[0]+" "+v.usage), about)
	}
	b.WriteString("\nWithout a verb: ls. Run 'nsbox netns VERB --help' for more.\n")
	return b.String()
}

// netnsArgs parses a verb without flags that takes between min and max
// arguments. When ok is false the verb is done and returns code.
func netnsArgs(g *global, fs *flagSet, args []string, min, max int) (pos []string, code int, ok bool) {
	pos, rest, _, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return nil, 0, false
	}
	if err != nil {
		return nil, fail(g, err), false
	}
	pos = append(pos, rest...)
	if len(pos) < min || len(pos) > max {
		if fs.usage == "" {
			return nil, fail(g, fs.errorf("unexpected arguments %q", pos)), false
		}
		return nil, fail(g, fs.errorf("want %s", fs.usage)), false
	}
	return pos, 0, true
}

// netnsPath checks a namespace name as ip does and returns its file.
func netnsPath(name string) (string, error) {
	switch {
	case name == "", name == ".", name == "..", strings.Contains(name, "/"), len(name) > unix.NAME_MAX:
		return "", &usageError{fmt.Sprintf("invalid network namespace name %q: want a file name (no '/', not . or ..)", name)}
	}
	return filepath.Join(netnsRunDir, name), nil
}

// existingNetns returns the file of the named namespace NAME, which must exist.
func existingNetns(name string) (string, error) {
	path, err := netnsPath(name)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no network namespace %q (see 'nsbox netns ls')", name)
	} else if err != nil {
		return "", err
	}
	return path, nil
}

func netnsAdd(g *global, fs *flagSet, args []string) int {
	pos, code, ok := netnsArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := addNetns(pos[0], 0); err != nil {
		return fail(g, err)
	}
	return 0
}

func netnsAttach(g *global, fs *flagSet, args []string) int {
	pos, code, ok := netnsArgs(g, fs, args, 2, 2)
	if !ok {
		return code
	}
	pid, err := strconv.Atoi(pos[1])
	if err != nil || pid <= 0 {
		return fail(g, fs.errorf("%q is not a pid", pos[1]))
	}
	if err := addNetns(pos[0], pid); err != nil {
		return fail(g, err)
	}
	return 0
}

// addNetns names a network namespace NAME: a new one when pid is 0,
// otherwise that of process pid. Equivalent to `ip netns add NAME` and
// `ip netns attach NAME PID`.
func addNetns(name string, pid int) (err error) {
	path, err := netnsPath(name)
	if err != nil {
		return err
	}
	if err := prepareNetnsDir(); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("network namespace %q exists already", name)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	unix.Close(fd)
	defer func() {
		if err != nil {
			removeNetns(path)
		}
	}()
	if pid != 0 {
		src := fmt.Sprintf("/proc/%d/ns/net", pid)
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", src, path, err)
		}
		return nil
	}
	return bindNewNetns(path)
}

// bindNewNetns creates a network namespace and binds it at path. It does so
// on a thread of its own, locked and never unlocked: the thread leaves the
// namespace only by ending with its goroutine, instead of going back to the
// scheduler to run other goroutines in it.
func bindNewNetns(path string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("create a network namespace: %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			done <- fmt.Errorf("bind the new network namespace on %s: %w", path, err)
			return
		}
		done <- nil
	}()
	return <-done
}

// prepareNetnsDir makes /run/netns a shared mount point, as ip does: created
// if need be, bound onto itself if it is not a mount point, and shared, so
// that later binds and unmounts there propagate to every mount namespace
// that has a copy of it. Like ip, it holds a lock on the directory meanwhile
// (two binds at once would stack two mounts), and goes on without one if
// the lock cannot be had.
func prepareNetnsDir() error {
	if err := os.Mkdir(netnsRunDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", netnsRunDir, err)
	}
	if lock, err := unix.Open(netnsRunDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(lock) // and with it the lock
		unix.Flock(lock, unix.LOCK_EX)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", netnsRunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || bound { // EINVAL: not a mount point yet
			return fmt.Errorf("make %s a shared mount: %w", netnsRunDir, err)
		}
		if err := unix.Mount(netnsRunDir, netnsRunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", netnsRunDir, err)
		}
	}
}

// removeNetns unmounts and deletes the file of a named namespace, as ip
// netns delete: unmounted lazily (a process may have it open), and not
// mounted at all is fine.
func removeNetns(path string) error {
	unix.Unmount(path, unix.MNT_DETACH)
	if err := unix.Unlink(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func netnsDelete(g *global, fs *flagSet, args []string) int {
	pos, code, ok := netnsArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	path, err := existingNetns(pos[0])
	if err == nil {
		err = removeNetns(path)
	}
	if err != nil {
		return fail(g, err)
	}
	return 0
}

// netnsNames lists /run/netns in the directory's order, as ip does; none
// when it does not exist.
func netnsNames() ([]string, error) {
	f, err := os.Open(netnsRunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func netnsList(g *global, fs *flagSet, args []string) int {
	if _, code, ok := netnsArgs(g, fs, args, 0, 0); !ok {
		return code
	}
	names, err := netnsNames()
	if err != nil {
		return fail(g, err)
	}
	q, qerr := openNsidQuery() // without it, no ids (as ip on old kernels)
	if qerr == nil {
		defer q.close()
	}
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		if qerr == nil {
			if id := q.idOf(filepath.Join(netnsRunDir, name)); id >= 0 {
				fmt.Fprintf(&b, " (id: %d)", id)
			}
		}
		b.WriteByte('\n')
	}
	fmt.Print(b.String())
	return 0
}

// nsidQuery asks the kernel over rtnetlink for the ids (nsid) that the
// caller's network namespace gives to others.
type nsidQuery struct {
	fd  int
	seq uint32
}

func openNsidQuery() (*nsidQuery, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &nsidQuery{fd: fd}, nil
}

func (q *nsidQuery) close() { unix.Close(q.fd) }

// idOf returns the nsid of the namespace at path, or -1 when it has none
// (or the question fails). Equivalent to the ids of `ip netns list-id`.
func (q *nsidQuery) idOf(path string) int {
	ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(ns)
	q.seq++
	// struct nlmsghdr, struct rtgenmsg (padded to 4), NETNSA_FD attribute.
	const size = unix.SizeofNlMsghdr + 4 + unix.SizeofNlAttr + 4
	req := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], size)
	ne.PutUint16(req[4:], unix.RTM_GETNSID)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], q.seq)
	req[16] = unix.AF_UNSPEC
	ne.PutUint16(req[20:], unix.SizeofNlAttr+4)
	ne.PutUint16(req[22:], unix.NETNSA_FD)
	ne.PutUint32(req[24:], uint32(ns))
	if err := unix.Sendto(q.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return -1
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			return -1
		}
		for msg := buf[:n]; len(msg) >= unix.SizeofNlMsghdr; {
			l, t, seq := int(ne.Uint32(msg[0:])), ne.Uint16(msg[4:]), ne.Uint32(msg[8:])
			if l < unix.SizeofNlMsghdr || l > len(msg) {
				return -1
			}
			data := msg[unix.SizeofNlMsghdr:l]
			msg = msg[min((l+3)&^3, len(msg)):]
			if seq != q.seq {
				continue // an answer to an earlier question
			}
			if t != unix.RTM_NEWNSID || len(data) < 4 {
				return -1 // NLMSG_ERROR
			}
			for a := data[4:]; len(a) >= unix.SizeofNlAttr; {
				l, t := int(ne.Uint16(a[0:])), ne.Uint16(a[2:])
				if l < unix.SizeofNlAttr || l > len(a) {
					return -1
				}
				if t == unix.NETNSA_NSID && l >= unix.SizeofNlAttr+4 {
					return int(int32(ne.Uint32(a[unix.SizeofNlAttr:]))) // -1: none assigned
				}
				a = a[min((l+3)&^3, len(a)):]
			}
			return -1
		}
	}
}

func netnsIdentify(g *global, fs *flagSet, args []string) int {
	pos, code, ok := netnsArgs(g, fs, args, 0, 1)
	if !ok {
		return code
	}
	pid := "self"
	if len(pos) == 1 {
		if n, err := strconv.Atoi(pos[0]); err != nil || n <= 0 {
			return fail(g, fs.errorf("%q is not a pid", pos[0]))
		}
		pid = pos[0]
	}
	var target unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/net", &target); err != nil {
		return fail(g, fmt.Errorf("network namespace of process %s: %w", pid, err))
	}
	names, err := netnsNames()
	if err != nil {
		return fail(g, err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(netnsRunDir, name), &st) == nil && st.Dev == target.Dev && st.Ino == target.Ino {
			fmt.Println(name)
		}
	}
	return 0
}

func netnsPids(g *global, fs *flagSet, args []string) int {
	pos, code, ok := netnsArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	path, err := existingNetns(pos[0])
	if err != nil {
		return fail(g, err)
	}
	var target unix.Stat_t
	if err := unix.Stat(path, &target); err != nil {
		return fail(g, err)
	}
	proc, err := os.Open("/proc")
	if err != nil {
		return fail(g, err)
	}
	defer proc.Close()
	entries, err := proc.Readdirnames(-1)
	if err != nil {
		return fail(g, err)
	}
	var b strings.Builder
	for _, e := range entries {
		if _, err := strconv.Atoi(e); err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e+"/ns/net", &st) == nil && st.Dev == target.Dev && st.Ino == target.Ino {
			b.WriteString(e + "\n")
		}
	}
	fmt.Print(b.String())
	return 0
}

func netnsExec(g *global, fs *flagSet, args []string) int {
	g.signals = catchSignals()
	name, cmd, err := fs.parseUntilArg(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return 0
	}
	if err != nil {
		return fail(g, err)
	}
	if len(cmd) == 0 {
		return fail(g, fs.errorf("no command to run in network namespace %q", name))
	}
	if os.Geteuid() != 0 {
		return fail(g, errors.New("nsbox netns exec needs root, as ip netns exec does"))
	}
	path, err := existingNetns(name)
	if err != nil {
		return fail(g, err)
	}
	s, err := netnsExecSpec(name, path, cmd)
	if err != nil {
		return fail(g, err)
	}
	opts := nsbox.Options{
		DieWithParent: true,
		Ephemeral:     true,
		CwdFallback:   true,
		Cgroup:        nsbox.NoCgroup,
		NoNewKeyring:  true, // the caller's keys, as after a plain exec
	}
	if isTerminal(0) && isTerminal(1) {
		s.Process.Terminal = true
		if ws, err := unixWinsize(); err == nil {
			opts.WinSize = ws
		}
	}
	return runForeground(g, nsbox.NewID(), s, opts, "")
}

// netnsExecSpec is the spec of `nsbox netns exec NAME CMD`: CMD runs as the
// caller, in the caller's namespaces but two. It joins the network
// namespace at path, and gets a mount namespace of its own with the
// caller's / (read-write), a fresh sysfs on /sys, read-only only when the
// caller's is (as ip mounts it: named after the namespace, with no other
// option), and each entry of /etc/netns/NAME bound (not recursively) over
// the one of the same name in /etc.
func netnsExecSpec(name, path string, cmd []string) (*specs.Spec, error) {
	opts := []nsbox.SpecOpt{nsbox.WithJoinedNamespace(specs.NetworkNamespace, path), nsbox.WithCallerCredentials}
	for _, t := range namespaces.All {
		if t != specs.NetworkNamespace && t != specs.MountNamespace {
			opts = append(opts, nsbox.WithSharedNamespace(t))
		}
	}
	s, err := nsbox.NewSpec(cmd, opts...)
	if err != nil {
		return nil, err
	}
	s.Root = &specs.Root{Path: "/"}
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: name}
	var fsst unix.Statfs_t
	if unix.Statfs("/sys", &fsst) == nil && fsst.Flags&unix.ST_RDONLY != 0 {
		// A read-only sysfs cannot be covered by a read-write one.
		sys.Options = []string{"ro"}
	}
	s.Mounts = append([]specs.Mount{sys}, etcBinds(name)...)
	return s, nil
}

// etcBinds lists the binds of /etc/netns/NAME/* over /etc/*, in the
// directory's order. Like ip, it skips (with a warning) those that cannot
// be made: nothing is created in /etc.
func etcBinds(name string) []specs.Mount {
	dir := filepath.Join(netnsEtcDir, name)
	f, err := os.Open(dir)
	if err != nil {
		return nil // none for this namespace
	}
	defer f.Close()
	entries, _ := f.Readdirnames(-1)
	var binds []specs.Mount
	for _, e := range entries {
		src, dst := filepath.Join(dir, e), filepath.Join("/etc", e)
		si, err := os.Stat(src)
		var di os.FileInfo
		if err == nil {
			di, err = os.Stat(dst)
		}
		if err == nil && si.IsDir() != di.IsDir() {
			err = unix.ENOTDIR
		}
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			fmt.Fprintf(os.Stderr, "nsbox: warning: cannot bind %s over %s: %v\n", src, dst, err)
			continue
		}
		binds = append(binds, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"bind"}})
	}
	return binds
}

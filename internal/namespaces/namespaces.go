// Package namespaces names the eight Linux namespace types, maps them to clone
// flags and /proc/PID/ns files, and decides for a spec which namespaces a box
// creates, joins or shares with the host.
package namespaces

import (
	"fmt"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Type is a namespace type, named as in the OCI runtime spec.
type Type = specs.LinuxNamespaceType

// The namespace types, in the order a process joins them: user first (it
// grants the capabilities the others need), mount last but one so that paths
// of the other namespaces are still resolved on the host, and time, which
// only takes effect at the next fork or exec.
var All = []Type{
	specs.UserNamespace,
	specs.IPCNamespace,
	specs.UTSNamespace,
	specs.NetworkNamespace,
	specs.PIDNamespace,
	specs.CgroupNamespace,
	specs.MountNamespace,
	specs.TimeNamespace,
}

var info = map[Type]struct {
	flag  uint64
	proc  string // name under /proc/PID/ns
	short []string
}{
	specs.UserNamespace:    {unix.CLONE_NEWUSER, "user", []string{"user"}},
	specs.IPCNamespace:     {unix.CLONE_NEWIPC, "ipc", []string{"ipc"}},
	specs.UTSNamespace:     {unix.CLONE_NEWUTS, "uts", []string{"uts"}},
	specs.NetworkNamespace: {unix.CLONE_NEWNET, "net", []string{"net", "network"}},
	specs.PIDNamespace:     {unix.CLONE_NEWPID, "pid", []string{"pid"}},
	specs.CgroupNamespace:  {unix.CLONE_NEWCGROUP, "cgroup", []string{"cgroup"}},
	specs.MountNamespace:   {unix.CLONE_NEWNS, "mnt", []string{"mnt", "mount"}},
	specs.TimeNamespace:    {unix.CLONE_NEWTIME, "time", []string{"time"}},
}

// Flag returns the CLONE_NEW* flag of t.
func Flag(t Type) uint64 { return info[t].flag }

// ProcName returns the name of t under /proc/PID/ns ("mnt", "net", ...).
func ProcName(t Type) string { return info[t].proc }

// Parse accepts a namespace type as users write it: "net" or "network",
// "mnt" or "mount", and so on.
func Parse(s string) (Type, error) {
	for _, t := range All {
		for _, name := range info[t].short {
			if s == name {
				return t, nil
			}
		}
	}
	return "", fmt.Errorf("unknown namespace type %q (want one of %s)", s, Names())
}

// Names lists the short names of all types, for error messages.
func Names() string {
	var names []string
	for _, t := range All {
		names = append(names, info[t].proc)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Mode says what a box does with one namespace type.
type Mode int

const (
	Share Mode = iota // stay in the caller's namespace
	New               // create a new one
	Join              // enter an existing one, given by path
)

// Plan is what a box does with each namespace type.
type Plan struct {
	Mode map[Type]Mode
	Path map[Type]string // for Join
}

// PlanFor reads the namespaces of a spec: listed without a path means new,
// with a path means join, absent means shared with the caller.
func PlanFor(s *specs.Spec) (Plan, error) {
	p := Plan{Mode: map[Type]Mode{}, Path: map[Type]string{}}
	if s.Linux == nil {
		return p, nil
	}
	for _, ns := range s.Linux.Namespaces {
		if _, ok := info[ns.Type]; !ok {
			return p, fmt.Errorf("linux.namespaces: unknown type %q", ns.Type)
		}
		if _, dup := p.Mode[ns.Type]; dup {
			return p, fmt.Errorf("linux.namespaces: %s listed twice", ns.Type)
		}
		if ns.Path == "" {
			p.Mode[ns.Type] = New
		} else {
			p.Mode[ns.Type] = Join
			p.Path[ns.Type] = ns.Path
		}
	}
	return p, nil
}

// Is reports whether type t has mode m.
func (p Plan) Is(t Type, m Mode) bool { return p.Mode[t] == m }

// NewFlags returns the CLONE_NEW* flags of the namespaces to create.
func (p Plan) NewFlags() uint64 {
	var f uint64
	for t, m := range p.Mode {
		if m == New {
			f |= Flag(t)
		}
	}
	return f
}

// Joins lists the namespaces to join, in join order.
func (p Plan) Joins() []Type {
	var ts []Type
	for _, t := range All {
		if p.Mode[t] == Join {
			ts = append(ts, t)
		}
	}
	return ts
}

// OwnsUserNS reports whether namespaces created by the box are owned by a
// user namespace in which the box has capabilities: its own new one, or a
// joined one. With a shared user namespace they belong to the caller's.
func (p Plan) OwnsUserNS() bool { return p.Mode[specs.UserNamespace] != Share }

// OpenJoin opens the namespace file at path for setns and checks that it is a
// namespace of type t.
func OpenJoin(t Type, path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s namespace %s: %w", ProcName(t), path, err)
	}
	got, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		unix.Close(fd)
		if err == unix.ENOTTY {
			return -1, fmt.Errorf("%s is not a namespace file", path)
		}
		return -1, fmt.Errorf("inspect namespace %s: %w", path, err)
	}
	if uint64(got) != Flag(t) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is a %s namespace, not %s", path, nameOfFlag(uint64(got)), ProcName(t))
	}
	return fd, nil
}

func nameOfFlag(f uint64) string {
	for _, i := range info {
		if i.flag == f {
			return i.proc
		}
	}
	return fmt.Sprintf("unknown (%#x)", f)
}

// Inode returns the inode number of namespace type t of process pid ("self"
// for the caller), which identifies the namespace.
func Inode(pid string, t Type) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/"+ProcName(t), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

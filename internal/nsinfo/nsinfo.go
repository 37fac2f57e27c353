// Package nsinfo finds the namespaces of the host and what keeps each alive:
// the processes in it (/proc/PID/ns/*, and the threads of a process whose
// namespaces differ from its own), nsfs bind mounts (/run/netns/NAME),
// open file descriptors, the namespaces for a process's future children
// (pid_for_children, time_for_children), and the namespaces it owns or is
// the parent of. For each it asks the kernel for its owning user namespace
// and its parent (the NS_GET_USERNS, NS_GET_PARENT and NS_GET_OWNER_UID
// ioctls), once per namespace.
//
// Decoding what /proc says (namespace links, mountinfo lines, directory
// entries) and building the trees are pure functions, in this file,
// mountinfo.go, dirent.go and tree.go; scan.go and owners.go read /proc.
package nsinfo

import (
	"math"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
)

// Type is a namespace type, as a small number for tables.
type Type uint8

// The namespace types, user first: the owner of the others.
const (
	User Type = iota
	Mnt
	Net
	PID
	IPC
	UTS
	Cgroup
	Time
	NumTypes
)

var typeNames = [NumTypes]string{"user", "mnt", "net", "pid", "ipc", "uts", "cgroup", "time"}

// String is the name of t under /proc/PID/ns.
func (t Type) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return "type" + strconv.Itoa(int(t))
}

// ParseType accepts a type as users write it ("net" or "network", "mnt"
// or "mount", ...).
func ParseType(s string) (Type, error) {
	t, err := namespaces.Parse(s)
	if err != nil {
		return 0, err
	}
	return typeNamed([]byte(namespaces.ProcName(t)))
}

func typeNamed(name []byte) (Type, error) {
	for i, n := range typeNames {
		if string(name) == n {
			return Type(i), nil
		}
	}
	return 0, unix.EINVAL
}

// Types is a set of types.
type Types uint16

// Has reports whether t is in the set.
func (s Types) Has(t Type) bool { return s&(1<<t) != 0 }

// Of returns the set of ts.
func Of(ts ...Type) Types {
	var s Types
	for _, t := range ts {
		s |= 1 << t
	}
	return s
}

// ParseLink decodes the text of a namespace link, "net:[4026531840]", as
// readlink(2) gives it for /proc/PID/ns/net or for a descriptor of a
// namespace (/proc/PID/fd/N). ok is false for anything else (the link of
// a file or a socket).
func ParseLink(b []byte) (t Type, inode uint64, ok bool) {
	colon := -1
	for i := 0; i < len(b) && i < 8; i++ {
		if b[i] == ':' {
			colon = i
			break
		}
	}
	if colon < 3 || len(b) < colon+4 || b[colon+1] != '[' || b[len(b)-1] != ']' {
		return 0, 0, false
	}
	t, err := typeNamed(b[:colon])
	if err != nil {
		return 0, 0, false
	}
	digits := b[colon+2 : len(b)-1]
	if len(digits) == 0 || len(digits) > 20 {
		return 0, 0, false
	}
	for _, c := range digits {
		d := uint64(c - '0')
		if c < '0' || c > '9' || inode > (math.MaxUint64-d)/10 {
			return 0, 0, false
		}
		inode = inode*10 + d
	}
	return t, inode, true
}

// Link is the text of a namespace's link: "net:[4026531840]".
func Link(t Type, inode uint64) string {
	return t.String() + ":[" + strconv.FormatUint(inode, 10) + "]"
}

// Namespace is one namespace and what keeps it alive.
type Namespace struct {
	Type  Type
	Inode uint64
	// Procs is the number of processes in the namespace (by their main
	// thread), Pid the lowest of them (0: none) and Command its command
	// line (with Options.Commands).
	Procs   int
	Pid     int
	Command string
	// Pids are all of them, in order (with Options.Pids).
	Pids []int
	// Owner is the inode of the user namespace that owns this one (for a
	// user namespace: its parent); Parent the parent of a pid or user
	// namespace. 0 when there is none, or none that nsbox may see.
	Owner, Parent uint64
	// UID is the uid that created the owning user namespace (for a user
	// namespace, the uid that created it); -1 when unknown.
	UID int
	// Holders are what keeps it alive, processes first (see Holder).
	Holders []Holder
	// NetnsNames are its names under /run/netns (network namespaces bound
	// there, in nsbox's mount namespace).
	NetnsNames []string

	described bool // its owner and parent are asked for
}

// Link is the text of the namespace's link: "net:[4026531840]".
func (ns *Namespace) Link() string { return Link(ns.Type, ns.Inode) }

// Holder returns what chiefly keeps the namespace alive: its processes if
// it has any, otherwise the first of its other holders.
func (ns *Namespace) Holder() Holder {
	best := Holder{Kind: numKinds}
	for _, h := range ns.Holders {
		if h.Kind < best.Kind {
			best = h
		}
	}
	return best
}

// Path returns a path that opens the namespace from nsbox's mount
// namespace (as nsenter or ip netns take it), or "" when nothing but
// another namespace holds it.
func (ns *Namespace) Path() string {
	h := ns.Holder()
	p := "/proc/" + strconv.Itoa(h.Pid)
	switch h.Kind {
	case Process:
		return p + "/ns/" + ns.Type.String()
	case Thread:
		return p + "/task/" + strconv.Itoa(h.TID) + "/ns/" + ns.Type.String()
	case Children:
		return p + "/ns/" + ns.Type.String() + "_for_children"
	case Bind:
		if h.Pid == 0 {
			return h.Path
		}
		return p + "/root" + h.Path
	case FD:
		return p + "/fd/" + strconv.Itoa(h.FD)
	}
	return ""
}

// HolderKind is what keeps a namespace alive.
type HolderKind uint8

const (
	// Process: a process is in it (Pid: the lowest).
	Process HolderKind = iota
	// Thread: a thread (TID) of process Pid is in it, not the process.
	Thread
	// Children: process Pid's next children will be in it
	// (pid_for_children, time_for_children).
	Children
	// Bind: an nsfs bind mount at Path, in the mount namespace MountNS
	// of process Pid (0: nsbox's own).
	Bind
	// FD: process Pid holds it open as descriptor FD.
	FD
	// Reference: only another namespace (Of, of type OfType) holds it, as
	// its owner or (ParentOf) its parent.
	Reference
	numKinds
)

var kindNames = [numKinds]string{"process", "thread", "children", "bind", "fd", "reference"}

// String is the kind's name.
func (k HolderKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "none"
}

// Holder is one thing that keeps a namespace alive.
type Holder struct {
	Kind    HolderKind
	Pid     int
	TID     int
	FD      int
	Path    string
	MountNS uint64
	Of      uint64
	OfType  Type
	// ParentOf: a Reference as the parent of Of, not its owner.
	ParentOf bool
}

// String describes the holder in a few words: "process 1234", "thread
// 1235 of 1234", "children of 1234", "bind /run/netns/red", "fd 1234:5",
// "owner of net:[4026532290]".
func (h Holder) String() string {
	pid := strconv.Itoa(h.Pid)
	switch h.Kind {
	case Process:
		return "process " + pid
	case Thread:
		return "thread " + strconv.Itoa(h.TID) + " of " + pid
	case Children:
		return "children of " + pid
	case Bind:
		if h.Pid != 0 {
			return "bind " + h.Path + " (mnt:[" + strconv.FormatUint(h.MountNS, 10) + "])"
		}
		return "bind " + h.Path
	case FD:
		return "fd " + pid + ":" + strconv.Itoa(h.FD)
	case Reference:
		if h.ParentOf {
			return "parent of " + Link(h.OfType, h.Of)
		}
		return "owner of " + Link(h.OfType, h.Of)
	}
	return "-"
}

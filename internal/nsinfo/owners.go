package nsinfo

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// owners asks each namespace for its owner and parent (which may add
// namespaces that nothing else holds).
func (s *scanner) owners() {
	for i := 0; i < len(s.r.Namespaces); i++ {
		ns := s.r.Namespaces[i]
		if ns.described {
			continue
		}
		if fd, err := s.open(ns); err == nil {
			s.describe(ns, fd)
			unix.Close(fd)
		}
	}
	for _, ns := range s.r.Namespaces {
		if ns.Type != User {
			if u := s.r.byInode[ns.Owner]; u != nil && ns.Owner != 0 {
				ns.UID = u.UID
			}
		}
	}
}

// open opens the namespace through the first of its holders that works,
// and is it: a holder is a process's file (its pid may be reused, the file
// under a bind mount point swapped by whoever owns it, for a FIFO that
// would block an open or a device), so the file opened must be on nsfs
// with the namespace's inode; it is opened without blocking or taking a
// terminal (the /proc links it goes through are symbolic by nature).
func (s *scanner) open(ns *Namespace) (int, error) {
	err := error(unix.ENOENT)
	for _, h := range ns.Holders {
		var p []byte
		switch h.Kind {
		case Process:
			p = s.pathOf(h.Pid, "/ns/", ns.Type.String())
		case Thread:
			p = s.pathOf(h.Pid, "/task/", strconv.Itoa(h.TID), "/ns/", ns.Type.String())
		case Children:
			p = s.pathOf(h.Pid, "/ns/", ns.Type.String(), "_for_children")
		case FD:
			p = s.pathOf(h.Pid, "/fd/", strconv.Itoa(h.FD))
		case Bind:
			if h.Pid == 0 {
				p = append(append(s.path[:0], h.Path...), 0)
			} else {
				p = s.pathOf(h.Pid, "/root", h.Path)
			}
		default:
			continue
		}
		var fd int
		if fd, err = openat(s.proc, p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY); err != nil {
			continue
		}
		var fs unix.Statfs_t
		var st unix.Stat_t
		if unix.Fstatfs(fd, &fs) == nil && fs.Type == unix.NSFS_MAGIC && unix.Fstat(fd, &st) == nil && st.Ino == ns.Inode {
			return fd, nil
		}
		unix.Close(fd)
		err = unix.ESTALE // not (any more) this namespace
	}
	return -1, err
}

// describe asks the namespace open as fd for its owner, parent and (a
// user namespace) creator's uid.
func (s *scanner) describe(ns *Namespace, fd int) {
	ns.described = true
	if ns.Type == User {
		if uid, err := unix.IoctlGetUint32(fd, unix.NS_GET_OWNER_UID); err == nil {
			ns.UID = int(uid)
		}
	}
	// EPERM: the owner or parent is outside the caller's user namespace.
	if ufd, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS); err == nil {
		ns.Owner = s.reference(ufd, User, ns)
	}
	switch ns.Type {
	case User:
		ns.Parent = ns.Owner
	case PID:
		if pfd, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT); err == nil {
			ns.Parent = s.reference(pfd, PID, ns)
		}
	}
}

// reference records the namespace open as fd, of type t, which owns ns
// or is its parent, describes it if it is new, closes fd and returns its
// inode.
func (s *scanner) reference(fd int, t Type, of *Namespace) uint64 {
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	other := s.r.byInode[st.Ino]
	if other == nil {
		other = s.hold(t, st.Ino, Holder{Kind: Reference, Of: of.Inode, OfType: of.Type, ParentOf: of.Type == t})
	}
	if !other.described {
		s.describe(other, fd)
	}
	return st.Ino
}

// commands reads the command line of the lowest pid of each namespace of
// r (its arguments joined by spaces, or for a kernel thread its name),
// the pids shared out among the scanners.
func commands(parts []*scanner, r *Report) {
	var pids []int
	seen := map[int]bool{}
	for _, ns := range r.Namespaces {
		if ns.Pid != 0 && !seen[ns.Pid] {
			seen[ns.Pid] = true
			pids = append(pids, ns.Pid)
		}
	}
	cmds := make([]string, len(pids))
	parallel(len(parts), func(i int) {
		for j := i; j < len(pids); j += len(parts) {
			cmds[j] = parts[i].command(pids[j])
		}
	})
	byPid := make(map[int]string, len(pids))
	for j, pid := range pids {
		byPid[pid] = cmds[j]
	}
	for _, ns := range r.Namespaces {
		ns.Command = byPid[ns.Pid]
	}
}

func (s *scanner) command(pid int) string {
	b, err := s.readFile(s.pathOf(pid, "/cmdline"))
	if err == nil {
		if cmd := CommandLine(b); cmd != "" {
			return cmd
		}
	}
	if b, err = s.readFile(s.pathOf(pid, "/comm")); err == nil {
		return strings.TrimSuffix(string(b), "\n")
	}
	return ""
}

// CommandLine turns the contents of /proc/PID/cmdline (arguments ended
// by NULs) into one line.
func CommandLine(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	out := make([]byte, len(b))
	for i, c := range b {
		if c == 0 || c == '\n' {
			c = ' '
		}
		out[i] = c
	}
	return string(out)
}

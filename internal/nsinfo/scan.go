package nsinfo

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Options choose what Scan finds out besides the namespaces, their
// processes and their other holders.
type Options struct {
	// Types limits the scan to namespaces of these types (0: all). The
	// user namespaces that own them are reported too with Owners.
	Types Types
	// Pids records every process of each namespace (Namespace.Pids).
	Pids bool
	// Commands reads the command line of each namespace's lowest pid.
	Commands bool
	// Owners asks the kernel, once per namespace, for its owning user
	// namespace, its parent and the owner's uid.
	Owners bool
}

// Report is what Scan found.
type Report struct {
	// Namespaces are ordered by inode.
	Namespaces []*Namespace
	// Processes counts the processes whose namespaces were read;
	// Unreadable those nsbox may not look into (another user's, without
	// root).
	Processes, Unreadable int
	byInode               map[uint64]*Namespace
}

// Find returns the namespace with this inode, or nil.
func (r *Report) Find(inode uint64) *Namespace { return r.byInode[inode] }

// netnsDir is where named network namespaces are bound (ip netns).
const netnsDir = "/run/netns/"

// Supported returns the namespace types this kernel has.
func Supported() Types {
	var s Types
	for t := Type(0); t < NumTypes; t++ {
		if _, err := unix.Readlink("/proc/self/ns/"+t.String(), make([]byte, 64)); err == nil {
			s |= Of(t)
		}
	}
	return s
}

// Scan reads /proc for the namespaces of the host, as far as the caller
// may see them. Each process costs one readlink per namespace type (and,
// for processes with threads or descriptors, one per thread and type and
// one per descriptor); each mount namespace, one read of a mountinfo file;
// each namespace, with Owners, one open and a few ioctls. The processes
// are shared out among a few goroutines, one per CPU (up to maxWorkers).
func Scan(o Options) (*Report, error) {
	proc, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /proc: %w", err)
	}
	defer unix.Close(proc)
	var pids []int
	if err := eachEntry(proc, make([]byte, 32<<10), func(name []byte) {
		if pid, ok := atoi(name); ok {
			pids = append(pids, pid)
		}
	}); err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	wanted := Supported()
	if o.Types != 0 {
		wanted &= o.Types
	}
	parts := make([]*scanner, workers(len(pids)))
	for i := range parts {
		parts[i] = newScanner(o, proc, wanted)
	}
	s := parts[0]
	self := append(s.path[:0], "self/ns/mnt\x00"...)
	if n, err := readlinkat(proc, self, s.link); err == nil {
		_, s.selfMnt, _ = ParseLink(s.link[:n])
	}
	// Contiguous runs of pids, so that the first run has the lowest.
	parallel(len(parts), func(i int) {
		p := parts[i]
		p.selfMnt = s.selfMnt
		for _, pid := range pids[i*len(pids)/len(parts) : (i+1)*len(pids)/len(parts)] {
			p.process(pid)
		}
	})
	for _, p := range parts[1:] {
		s.merge(p)
	}
	if !s.mounts[s.selfMnt] {
		s.mounts[s.selfMnt] = true
		s.bindMounts(0, s.selfMnt)
	}
	if o.Owners {
		s.owners()
	}
	if o.Commands {
		commands(parts, s.r)
	}
	sort.Slice(s.r.Namespaces, func(i, j int) bool { return s.r.Namespaces[i].Inode < s.r.Namespaces[j].Inode })
	return s.r, nil
}

// maxWorkers caps the goroutines of a scan: the work is the kernel's, in
// system calls, and more than a few only contend there.
const maxWorkers = 4

// workers returns how many goroutines scan n processes: one per CPU, but
// one per 64 processes at most.
func workers(n int) int {
	return max(1, min(runtime.GOMAXPROCS(0), maxWorkers, n/64))
}

// parallel runs f(0) ... f(n-1) at once and waits for them.
func parallel(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

func newScanner(o Options, proc int, wanted Types) *scanner {
	return &scanner{
		o:      o,
		wanted: wanted,
		proc:   proc,
		r:      &Report{byInode: map[uint64]*Namespace{}},
		path:   make([]byte, 0, 256),
		link:   make([]byte, 256),
		dents:  make([]byte, 8<<10),
		mounts: map[uint64]bool{},
	}
}

// merge adds what p found, in processes of higher pids, to what s found.
func (s *scanner) merge(p *scanner) {
	s.r.Processes += p.r.Processes
	s.r.Unreadable += p.r.Unreadable
	for _, ns := range p.r.Namespaces {
		have := s.r.byInode[ns.Inode]
		if have == nil {
			have = s.add(ns.Type, ns.Inode)
		} else if have.Procs > 0 && ns.Procs > 0 {
			ns.Holders = dropProcess(ns.Holders) // the lower pid holds it
		}
		if have.Procs == 0 {
			have.Pid = ns.Pid
		}
		have.Procs += ns.Procs
		have.Pids = append(have.Pids, ns.Pids...)
		for _, h := range ns.Holders {
			if h.Kind != Bind || !s.mounts[h.MountNS] { // read by both
				have.Holders = append(have.Holders, h)
			}
		}
		for _, name := range ns.NetnsNames {
			if !contains(have.NetnsNames, name) {
				have.NetnsNames = append(have.NetnsNames, name)
			}
		}
	}
	for mnt := range p.mounts {
		s.mounts[mnt] = true
	}
}

func dropProcess(hs []Holder) []Holder {
	out := hs[:0:0]
	for _, h := range hs {
		if h.Kind != Process {
			out = append(out, h)
		}
	}
	return out
}

type scanner struct {
	o       Options
	wanted  Types
	proc    int // /proc
	r       *Report
	path    []byte // the path being built, reused
	link    []byte // what readlink returns, reused
	dents   []byte // for the directories of a process, reused
	file    []byte // file contents, reused
	mounts  map[uint64]bool
	selfMnt uint64
}

// pathOf builds "PID/rest..." followed by a NUL in s.path.
func (s *scanner) pathOf(pid int, rest ...string) []byte {
	p := strconv.AppendInt(s.path[:0], int64(pid), 10)
	for _, r := range rest {
		p = append(p, r...)
	}
	s.path = append(p, 0)
	return s.path
}

// nsOf reads the namespace of type t (or its variant for children, with
// suffix "_for_children") of the task whose /proc directory is dir
// ("PID" or "PID/task/TID").
func (s *scanner) nsOf(dir []byte, t Type, suffix string) (uint64, error) {
	p := append(append(append(append(s.path[:0], dir...), "/ns/"...), typeNames[t]...), suffix...)
	s.path = append(p, 0)
	n, err := readlinkat(s.proc, s.path, s.link)
	if err != nil {
		return 0, err
	}
	if _, ino, ok := ParseLink(s.link[:n]); ok {
		return ino, nil
	}
	return 0, unix.EINVAL
}

// process records the namespaces of process pid and what it holds.
func (s *scanner) process(pid int) {
	var dir [24]byte
	d := strconv.AppendInt(dir[:0], int64(pid), 10)
	var inos [NumTypes]uint64
	read := s.wanted | Of(Mnt) // the mount namespace, for its bind mounts
	found := false
	for t := Type(0); t < NumTypes; t++ {
		if !read.Has(t) {
			continue
		}
		ino, err := s.nsOf(d, t, "")
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			s.r.Unreadable++
			return
		}
		// A zombie keeps only its user and pid namespaces (which lsns
		// counts too); a process that has gone, none.
		if err == nil {
			inos[t], found = ino, true
		}
	}
	if !found {
		return
	}
	s.r.Processes++
	for t := Type(0); t < NumTypes; t++ {
		if !s.wanted.Has(t) || inos[t] == 0 {
			continue
		}
		ns := s.add(t, inos[t])
		if ns.Procs == 0 {
			ns.Pid = pid
			ns.Holders = append(ns.Holders, Holder{Kind: Process, Pid: pid})
		}
		ns.Procs++
		if s.o.Pids {
			ns.Pids = append(ns.Pids, pid)
		}
	}
	for _, t := range [...]Type{PID, Time} {
		if !s.wanted.Has(t) {
			continue
		}
		if ino, err := s.nsOf(d, t, "_for_children"); err == nil && inos[t] != 0 && ino != inos[t] {
			s.hold(t, ino, Holder{Kind: Children, Pid: pid})
		}
	}
	if mnt := inos[Mnt]; mnt != 0 && !s.mounts[mnt] {
		s.mounts[mnt] = true
		s.bindMounts(pid, mnt)
	}
	s.threads(pid, d, &inos)
	s.descriptors(pid)
}

// add returns the namespace with this inode, recorded if new.
func (s *scanner) add(t Type, ino uint64) *Namespace {
	ns := s.r.byInode[ino]
	if ns == nil {
		ns = &Namespace{Type: t, Inode: ino, UID: -1}
		s.r.byInode[ino] = ns
		s.r.Namespaces = append(s.r.Namespaces, ns)
	}
	return ns
}

// hold records h as a holder of the namespace.
func (s *scanner) hold(t Type, ino uint64, h Holder) *Namespace {
	ns := s.add(t, ino)
	ns.Holders = append(ns.Holders, h)
	return ns
}

// threads records the namespaces that threads of process pid (dir) are
// in and the process is not. Only processes with more than one thread
// are looked at: /proc/PID/task has a link for each.
func (s *scanner) threads(pid int, dir []byte, inos *[NumTypes]uint64) {
	if n, err := nlinkat(s.proc, s.pathOf(pid, "/task")); err != nil || n <= 3 {
		return
	}
	fd, err := openat(s.proc, s.pathOf(pid, "/task"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	seen := map[uint64]bool{}
	var buf [48]byte
	eachEntry(fd, s.dents, func(name []byte) {
		tid, ok := atoi(name)
		if !ok || tid == pid {
			return
		}
		task := append(append(append(buf[:0], dir...), "/task/"...), name...)
		for t := Type(0); t < NumTypes; t++ {
			if !s.wanted.Has(t) {
				continue
			}
			if ino, err := s.nsOf(task, t, ""); err == nil && ino != inos[t] && !seen[ino] {
				seen[ino] = true
				s.hold(t, ino, Holder{Kind: Thread, Pid: pid, TID: tid})
			}
		}
	})
}

// descriptors records the namespaces that process pid holds open.
func (s *scanner) descriptors(pid int) {
	fd, err := openat(s.proc, s.pathOf(pid, "/fd"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var name [16]byte
	eachEntry(fd, s.dents, func(n []byte) {
		num, ok := atoi(n)
		if !ok {
			return
		}
		p := append(append(name[:0], n...), 0)
		l, err := readlinkat(fd, p, s.link)
		if err != nil {
			return
		}
		if t, ino, ok := ParseLink(s.link[:l]); ok && s.wanted.Has(t) {
			s.hold(t, ino, Holder{Kind: FD, Pid: pid, FD: num})
		}
	})
}

// bindMounts records the nsfs mounts of mount namespace mnt, as process
// pid (0: nsbox itself) sees them.
func (s *scanner) bindMounts(pid int, mnt uint64) {
	var path []byte
	if pid == 0 {
		path = append(s.path[:0], "self/mountinfo\x00"...)
	} else {
		path = s.pathOf(pid, "/mountinfo")
	}
	b, err := s.readFile(path)
	if err != nil {
		return
	}
	if mnt == s.selfMnt {
		pid = 0 // the paths are nsbox's own
	}
	for _, m := range NsfsMounts(b) {
		if !s.wanted.Has(m.Type) {
			continue
		}
		ns := s.hold(m.Type, m.Inode, Holder{Kind: Bind, Pid: pid, Path: m.MountPoint, MountNS: mnt})
		if pid == 0 && m.Type == Net && strings.HasPrefix(m.MountPoint, netnsDir) {
			name := m.MountPoint[len(netnsDir):]
			if name != "" && !strings.Contains(name, "/") && !contains(ns.NetnsNames, name) {
				ns.NetnsNames = append(ns.NetnsNames, name)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// readFile reads the file at path (relative to /proc) into s.file.
func (s *scanner) readFile(path []byte) ([]byte, error) {
	fd, err := openat(s.proc, path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if s.file == nil {
		s.file = make([]byte, 16<<10)
	}
	n := 0
	for {
		if n == len(s.file) {
			s.file = append(s.file, make([]byte, len(s.file))...)
		}
		m, err := unix.Read(fd, s.file[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return s.file[:n], nil
		}
		n += m
	}
}

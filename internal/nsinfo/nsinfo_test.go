package nsinfo

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseLink(t *testing.T) {
	for _, c := range []struct {
		in    string
		t     Type
		inode uint64
		ok    bool
	}{
		{"net:[4026531840]", Net, 4026531840, true},
		{"mnt:[4026531841]", Mnt, 4026531841, true},
		{"user:[1]", User, 1, true},
		{"cgroup:[4026531835]", Cgroup, 4026531835, true},
		{"time:[4026531834]", Time, 4026531834, true},
		{"pid:[18446744073709551615]", PID, 18446744073709551615, true},
		{"pid:[18446744073709551616]", 0, 0, false},
		{"socket:[4026531840]", 0, 0, false},
		{"anon_inode:[eventfd]", 0, 0, false},
		{"net:[]", 0, 0, false},
		{"net:[12a]", 0, 0, false},
		{"net:[4026531840", 0, 0, false},
		{"net:4026531840]", 0, 0, false},
		{"/run/netns/red", 0, 0, false},
		{"pipe:[123]", 0, 0, false},
		{"", 0, 0, false},
	} {
		typ, ino, ok := ParseLink([]byte(c.in))
		if ok != c.ok || typ != c.t || ino != c.inode {
			t.Errorf("ParseLink(%q) = %v %d %v, want %v %d %v", c.in, typ, ino, ok, c.t, c.inode, c.ok)
		}
		if ok && Link(typ, ino) != c.in {
			t.Errorf("Link(%v, %d) = %q, want %q", typ, ino, Link(typ, ino), c.in)
		}
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{"net": Net, "network": Net, "mnt": Mnt, "mount": Mnt, "user": User,
		"pid": PID, "ipc": IPC, "uts": UTS, "cgroup": Cgroup, "time": Time} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseType("bogus"); err == nil {
		t.Error("ParseType accepted bogus")
	}
	if s := Of(Net, PID); !s.Has(Net) || !s.Has(PID) || s.Has(User) {
		t.Errorf("type sets: %b", s)
	}
}

func TestNsfsMounts(t *testing.T) {
	info := strings.Join([]string{
		"22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw",
		"36 25 0:4 net:[4026532290] /run/netns/red rw shared:5 - nsfs nsfs rw",
		"37 25 0:4 net:[4026532291] /run/netns/with\\040space rw - nsfs nsfs rw",
		"38 25 254:0 /srv/nsfs /mnt/nsfs\\134dir rw - ext4 /dev/vda rw", // "nsfs" only in paths
		"39 25 0:4 mnt:[4026532300] /run/mntns/a rw master:1 shared:7 - nsfs nsfs rw",
		"40 25 0:4 net:[4026532290] /run/netns/red rw - nsfs nsfs rw",
		"41 25 0:4 garbage /x rw - nsfs nsfs rw",
	}, "\n")
	got := NsfsMounts([]byte(info))
	want := []NsfsMount{
		{Net, 4026532290, "/run/netns/red"},
		{Net, 4026532291, "/run/netns/with space"},
		{Mnt, 4026532300, "/run/mntns/a"},
		{Net, 4026532290, "/run/netns/red"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NsfsMounts:\n got %+v\nwant %+v", got, want)
	}
	if m, ok := ParseNsfsLine([]byte("36 25 0:4 net:[1] /a rw - tmpfs tmpfs rw")); ok {
		t.Errorf("a tmpfs line read as nsfs: %+v", m)
	}
	if got := NsfsMounts(nil); got != nil {
		t.Errorf("no mountinfo: %v", got)
	}
}

// dirent encodes one linux_dirent64 record.
func dirent(name string) []byte {
	size := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, size)
	binary.NativeEndian.PutUint64(b[0:], 1)
	binary.NativeEndian.PutUint16(b[16:], uint16(size))
	b[18] = unix.DT_DIR
	copy(b[19:], name)
	return b
}

func TestDirents(t *testing.T) {
	var buf []byte
	for _, n := range []string{".", "..", "1", "self", "12345", "a-rather-long-name-of-twenty-nine"} {
		buf = append(buf, dirent(n)...)
	}
	var got []string
	Dirents(buf, func(name []byte) { got = append(got, string(name)) })
	if want := []string{"1", "self", "12345", "a-rather-long-name-of-twenty-nine"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dirents: %q, want %q", got, want)
	}
	got = nil
	Dirents(buf[:len(buf)-3], func(name []byte) { got = append(got, string(name)) }) // a truncated record
	if len(got) != 3 {
		t.Errorf("truncated: %q", got)
	}
	for in, want := range map[string]int{"1": 1, "4194304": 4194304} {
		if n, ok := atoi([]byte(in)); !ok || n != want {
			t.Errorf("atoi(%q) = %d %v", in, n, ok)
		}
	}
	for _, in := range []string{"", "self", "12a", "12345678901"} {
		if _, ok := atoi([]byte(in)); ok {
			t.Errorf("atoi(%q) accepted", in)
		}
	}
}

// render draws a forest as "type:inode" lines indented by depth.
func render(roots []*Node) string {
	var b strings.Builder
	Walk(roots, func(n *Node, depth int, last []bool) {
		b.WriteString(strings.Repeat("  ", depth) + n.Link() + "\n")
	})
	return b.String()
}

func TestTrees(t *testing.T) {
	nss := []*Namespace{
		{Type: Net, Inode: 20, Owner: 10},
		{Type: User, Inode: 10},
		{Type: PID, Inode: 30, Owner: 10},
		{Type: User, Inode: 11, Owner: 10, Parent: 10},
		{Type: PID, Inode: 31, Owner: 11, Parent: 30},
		{Type: User, Inode: 12, Owner: 11, Parent: 11},
		{Type: PID, Inode: 32, Owner: 12, Parent: 31},
		{Type: Mnt, Inode: 40, Owner: 99}, // its owner is out of sight
		{Type: Net, Inode: 21, Owner: 12},
	}
	want := `user:[10]
  user:[11]
    user:[12]
      net:[21]
      pid:[32]
    pid:[31]
  net:[20]
  pid:[30]
mnt:[40]
`
	if got := render(OwnershipTree(nss)); got != want {
		t.Errorf("OwnershipTree:\n%s\nwant:\n%s", got, want)
	}
	want = "pid:[30]\n  pid:[31]\n    pid:[32]\n"
	if got := render(PIDTree(nss)); got != want {
		t.Errorf("PIDTree:\n%s\nwant:\n%s", got, want)
	}
	// A cycle (which the kernel does not make) does not hang or lose nodes.
	cyc := []*Namespace{{Type: PID, Inode: 1, Parent: 2}, {Type: PID, Inode: 2, Parent: 1}}
	if got := render(PIDTree(cyc)); got != "pid:[1]\npid:[2]\n" {
		t.Errorf("cycle: %q", got)
	}
}

func TestHolders(t *testing.T) {
	ns := &Namespace{Type: Net, Inode: 7, Holders: []Holder{
		{Kind: FD, Pid: 40, FD: 5},
		{Kind: Bind, Path: "/run/netns/red"},
		{Kind: Bind, Pid: 41, Path: "/run/netns/blue", MountNS: 9},
	}}
	if h := ns.Holder(); h.Kind != Bind || h.String() != "bind /run/netns/red" || ns.Path() != "/run/netns/red" {
		t.Errorf("holder %v, path %s", h, ns.Path())
	}
	for _, c := range []struct {
		h          Holder
		text, path string
	}{
		{Holder{Kind: Process, Pid: 1}, "process 1", "/proc/1/ns/net"},
		{Holder{Kind: Thread, Pid: 2, TID: 3}, "thread 3 of 2", "/proc/2/task/3/ns/net"},
		{Holder{Kind: Children, Pid: 4}, "children of 4", "/proc/4/ns/net_for_children"},
		{Holder{Kind: Bind, Pid: 41, Path: "/run/netns/blue", MountNS: 9}, "bind /run/netns/blue (mnt:[9])", "/proc/41/root/run/netns/blue"},
		{Holder{Kind: FD, Pid: 40, FD: 5}, "fd 40:5", "/proc/40/fd/5"},
		{Holder{Kind: Reference, Of: 8, OfType: Net}, "owner of net:[8]", ""},
		{Holder{Kind: Reference, Of: 8, OfType: PID, ParentOf: true}, "parent of pid:[8]", ""},
	} {
		one := &Namespace{Type: Net, Inode: 7, Holders: []Holder{c.h}}
		if c.h.String() != c.text || one.Path() != c.path {
			t.Errorf("%+v: %q %q, want %q %q", c.h, c.h.String(), one.Path(), c.text, c.path)
		}
	}
}

func TestCommandLine(t *testing.T) {
	for in, want := range map[string]string{"sleep\x00100\x00": "sleep 100", "": "", "a\nb\x00": "a b", "x": "x"} {
		if got := CommandLine([]byte(in)); got != want {
			t.Errorf("CommandLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestScanFindsItself runs anywhere: a process may read its own
// namespaces, and those it holds open.
func TestScanFindsItself(t *testing.T) {
	f, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Scan(Options{Owners: true, Commands: true, Pids: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Processes == 0 {
		t.Fatal("no process read")
	}
	self := os.Getpid()
	for typ := Type(0); typ < NumTypes; typ++ {
		link, err := os.Readlink("/proc/self/ns/" + typ.String())
		if err != nil {
			continue // a type this kernel lacks
		}
		_, ino, _ := ParseLink([]byte(link))
		ns := r.Find(ino)
		if ns == nil || ns.Type != typ || ns.Procs == 0 || !hasPid(ns.Pids, self) || ns.Command == "" {
			t.Fatalf("%s: %+v", link, ns)
		}
		if typ != User && ns.Owner == 0 {
			t.Errorf("%s: no owner", link)
		}
		if ns.UID < 0 {
			t.Errorf("%s: no owner uid", link)
		}
		if typ == Net && !hasFD(ns, self, int(f.Fd())) {
			t.Errorf("%s: descriptor %d of %d not among its holders %v", link, f.Fd(), self, ns.Holders)
		}
	}
	// Only Net asked for (and the owners of what is found).
	r, err = Scan(Options{Types: Of(Net), Owners: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range r.Namespaces {
		if ns.Type != Net && ns.Type != User {
			t.Errorf("--type net found %s", ns.Link())
		}
	}
}

func hasPid(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

func hasFD(ns *Namespace, pid, fd int) bool {
	for _, h := range ns.Holders {
		if h.Kind == FD && h.Pid == pid && h.FD == fd {
			return true
		}
	}
	return false
}

// TestOpenChecksWhatItOpened: a holder's file is opened only if it is the
// namespace: a FIFO in place of a bind mount point (which a box could put
// there) neither blocks the open nor passes for the namespace; the
// caller's own network namespace, through /proc, does.
func TestOpenChecksWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "net")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(proc)
	var own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		t.Fatal(err)
	}
	s := &scanner{proc: proc}
	ns := &Namespace{Type: Net, Inode: own.Ino, Holders: []Holder{{Kind: Bind, Path: fifo}}}
	done := make(chan error, 1)
	go func() {
		fd, err := s.open(ns)
		if err == nil {
			unix.Close(fd)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a FIFO passed for a network namespace")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the open of a FIFO in place of a namespace blocked")
	}
	ns.Holders = append(ns.Holders, Holder{Kind: Process, Pid: os.Getpid()})
	fd, err := s.open(ns)
	if err != nil {
		t.Fatalf("the caller's network namespace through /proc: %v", err)
	}
	unix.Close(fd)
}

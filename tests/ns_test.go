package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests of `nsbox ns` make namespaces of every type and every kind of
// holder — a box, unshare processes, a network namespace bound under
// /run/netns, one that only an open descriptor keeps — and look for them
// with `nsbox ns ls`, `ns tree` and util-linux's lsns, then enter them with
// `nsbox ns enter` and read /proc/self/ns from inside. Every process a
// test starts carries the run's marker and is killed by its pid when the
// test ends.

// nsTypes are the namespace types as /proc/PID/ns names them.
var nsTypes = []string{"user", "mnt", "net", "pid", "ipc", "uts", "cgroup", "time"}

// nsEntry is one namespace of `nsbox ns ls --json` (every column).
type nsEntry struct {
	NS      uint64   `json:"ns"`
	Type    string   `json:"type"`
	NProcs  int      `json:"nprocs"`
	PID     int      `json:"pid"`
	User    string   `json:"user"`
	UID     *int     `json:"uid"`
	Owner   uint64   `json:"owner"`
	Parent  uint64   `json:"parent"`
	Netns   []string `json:"netns"`
	Box     string   `json:"box"`
	Holder  string   `json:"holder"`
	Holders []string `json:"holders"`
	Path    string   `json:"path"`
	Command string   `json:"command"`
}

// nsList runs `nsbox ns ls --json` with args and returns the namespaces by
// inode.
func nsList(t *testing.T, o opts, args ...string) map[uint64]nsEntry {
	t.Helper()
	out := ok(t, o, append([]string{"ns", "ls", "--json"}, args...)...)
	var doc struct{ Namespaces []nsEntry }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("ns ls --json: %v\n%s", err, out)
	}
	byInode := map[uint64]nsEntry{}
	for _, e := range doc.Namespaces {
		byInode[e.NS] = e
	}
	return byInode
}

// linkInode reads a namespace link (/proc/PID/ns/net) as an inode.
func linkInode(t *testing.T, path string) uint64 {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	_, digits, _ := strings.Cut(strings.TrimSuffix(l, "]"), ":[")
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		t.Fatalf("%s: %q", path, l)
	}
	return n
}

// startProc starts argv (as user u, if not nil, in dir, if set) and kills
// it by its pid when the test ends. It returns once the last command of
// its chain of unshares, named leaf, runs, and returns that one's pid.
func startProc(t *testing.T, u *testUser, dir, leaf string, argv ...string) (top, pid int) {
	t.Helper()
	needClient(t, argv[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), marker)
	cmd.Dir = dir
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}}
	}
	watchLeftovers(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // unshare --kill-child takes its child along
	deadline := time.Now().Add(5 * time.Second)
	for p := cmd.Process.Pid; ; {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if args := strings.Split(string(b), "\x00"); args[0] == leaf {
			return cmd.Process.Pid, p
		}
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
		if f := strings.Fields(string(kids)); len(f) > 0 {
			p, _ = strconv.Atoi(f[0])
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not start", strings.Join(argv, " "), leaf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allNamespaces is unshare making one namespace of each type and running
// sleep in them (forked: as PID 1 of its pid namespace).
var allNamespaces = []string{"unshare", "--fork", "--kill-child", "--user", "--map-root-user", "--mount", "--uts", "--ipc",
	"--net", "--pid", "--cgroup", "--time", "sleep", "1000"}

// runBox starts a detached box running sleep, removed when the test ends,
// and returns its id and pid.
func runBox(t *testing.T, o opts, flags ...string) (string, int) {
	t.Helper()
	id := fmt.Sprintf("ns-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	o.files = true
	args := append([]string{"run", "-d", "--name", id, "--rootfs", rootfs}, flags...)
	ok(t, o, append(args, "--", "sleep", "1000")...)
	t.Cleanup(func() { nsbox(t, o, "delete", "--force", id) })
	var st struct{ Pid int }
	if err := json.Unmarshal([]byte(ok(t, o, "state", id)), &st); err != nil || st.Pid == 0 {
		t.Fatalf("state of %s: %v", id, err)
	}
	return id, st.Pid
}

// fdHeldNetns makes a network namespace that only a descriptor (3) of a
// sleep keeps alive: the namespace of an unshare that then ends. It
// returns the namespace's inode and the holder's pid.
func fdHeldNetns(t *testing.T) (uint64, int) {
	t.Helper()
	owner := exec.Command("unshare", "--net", "sleep", "1000")
	owner.Env = append(os.Environ(), marker)
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { owner.Process.Kill(); owner.Wait() }()
	nsPath := fmt.Sprintf("/proc/%d/ns/net", owner.Process.Pid)
	var ino uint64
	for i := 0; ; i++ { // until unshare has unshared
		if ino = linkInode(t, nsPath); ino != linkInode(t, "/proc/self/ns/net") {
			break
		}
		if i == 500 {
			t.Fatal("unshare --net did not make a namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("sleep", "1000")
	holder.Env = append(os.Environ(), marker)
	holder.ExtraFiles = []*os.File{f}
	err = holder.Start()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	return ino, holder.Process.Pid
}

func TestNsLsFindsEveryKind(t *testing.T) {
	requireRoot(t)
	hostUser, hostPid := linkInode(t, "/proc/self/ns/user"), linkInode(t, "/proc/self/ns/pid")
	box, boxPid := runBox(t, opts{})
	_, un := startProc(t, nil, "", "sleep", allNamespaces...)
	name := testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", name), &st); err != nil {
		t.Fatal(err)
	}
	bound := st.Ino
	held, holder := fdHeldNetns(t)

	got := nsList(t, opts{})
	// The box's own namespaces: all but time, which it shares.
	for _, typ := range nsTypes {
		ino := linkInode(t, fmt.Sprintf("/proc/%d/ns/%s", boxPid, typ))
		e, found := got[ino]
		switch {
		case !found:
			t.Errorf("box %s: its %s namespace %d is not listed", box, typ, ino)
		case typ == "time" && e.Box != "":
			t.Errorf("box %s: the host's time namespace is said to be the box's (%q)", box, e.Box)
		case typ != "time" && (e.Box != box || e.PID != boxPid || e.Type != typ || e.NProcs < 2 || e.Holder != "process "+strconv.Itoa(boxPid)):
			t.Errorf("box %s (pid %d): %s namespace listed as %+v", box, boxPid, typ, e)
		}
	}
	// unshare's: one of each type, owned by the new user namespace.
	userNS := linkInode(t, fmt.Sprintf("/proc/%d/ns/user", un))
	for _, typ := range nsTypes {
		e := got[linkInode(t, fmt.Sprintf("/proc/%d/ns/%s", un, typ))]
		wantOwner := userNS
		if typ == "user" {
			wantOwner = hostUser
		}
		if e.Type != typ || e.PID == 0 || e.Command == "" || e.Owner != wantOwner || e.User != "root" || e.UID == nil || *e.UID != 0 {
			t.Errorf("unshare's %s namespace: %+v (want owner %d)", typ, e, wantOwner)
		}
		if e.Box != "" {
			t.Errorf("unshare's %s namespace is said to be box %s's", typ, e.Box)
		}
	}
	if e := got[linkInode(t, fmt.Sprintf("/proc/%d/ns/pid", un))]; e.Parent != hostPid || e.NProcs != 1 || e.PID != un || e.Command != "sleep 1000" {
		t.Errorf("unshare's pid namespace: %+v, want parent %d and only sleep (%d)", e, hostPid, un)
	}
	if e := got[userNS]; e.Parent != hostUser {
		t.Errorf("unshare's user namespace: %+v, want parent %d", e, hostUser)
	}
	// Held by a bind mount only, and by a descriptor only.
	if e := got[bound]; e.Type != "net" || e.NProcs != 0 || e.PID != 0 || e.Holder != "bind /run/netns/"+name ||
		len(e.Netns) != 1 || e.Netns[0] != name || e.Path != "/run/netns/"+name || e.Command != "[bind /run/netns/"+name+"]" {
		t.Errorf("the namespace bound at /run/netns/%s: %+v", name, e)
	}
	wantFD := fmt.Sprintf("fd %d:3", holder)
	if e := got[held]; e.Type != "net" || e.NProcs != 0 || e.Holder != wantFD || e.Path != fmt.Sprintf("/proc/%d/fd/3", holder) || e.Owner != hostUser {
		t.Errorf("the namespace held by %s: %+v", wantFD, e)
	}

	// --type and an inode narrow the list.
	for ino, e := range nsList(t, opts{}, "--type", "network") {
		if e.Type != "net" {
			t.Errorf("--type network lists %d, a %s namespace", ino, e.Type)
		}
	}
	if one := nsList(t, opts{}, strconv.FormatUint(held, 10)); len(one) != 1 || one[held].NS != held {
		t.Errorf("ns ls %d: %v", held, one)
	}
	table := ok(t, opts{}, "ns", "ls", "-t", "net")
	if head := strings.Fields(strings.SplitN(table, "\n", 2)[0]); strings.Join(head, " ") != "NS TYPE NPROCS PID USER NETNS BOX COMMAND" {
		t.Errorf("ns ls -t net header: %q", head)
	}
	if !strings.Contains(table, "[fd "+strconv.Itoa(holder)+":3]") || !strings.Contains(table, " "+name+" ") {
		t.Errorf("ns ls -t net does not show the fd and the bind:\n%s", table)
	}
	compareWithLsns(t, box, un)
}

// lsnsEntry is one namespace of lsns --json.
type lsnsEntry struct {
	NS     uint64 `json:"ns"`
	Type   string `json:"type"`
	NProcs int    `json:"nprocs"`
	PID    int    `json:"pid"`
}

// lsns lists the namespaces util-linux's lsns sees, by inode.
func lsns(t *testing.T) map[uint64]lsnsEntry {
	t.Helper()
	needClient(t, "lsns")
	var doc struct{ Namespaces []lsnsEntry }
	// lsns fails now and then when a process ends while it reads /proc.
	var out []byte
	var err error
	for try := 0; try < 3; try++ {
		cmd := exec.Command("lsns", "--json", "-o", "NS,TYPE,NPROCS,PID")
		cmd.Env = append(os.Environ(), marker)
		if out, err = cmd.Output(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("lsns --json: %v", err)
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("lsns --json: %v", err)
	}
	byInode := map[uint64]lsnsEntry{}
	for _, n := range doc.Namespaces {
		byInode[n.NS] = n
	}
	return byInode
}

// compareWithLsns checks that ns ls finds the namespaces lsns finds, and
// lsns those of ns ls that have a process (lsns misses the others), with
// the same process counts and lowest pids for the test's own. Other
// processes come and go meanwhile (the machine is shared), so lsns runs
// before and after ns ls: a namespace missing from one side is an error
// only if lsns saw it both times, or neither time while its lowest pid is
// still in it.
func compareWithLsns(t *testing.T, box string, un int) {
	t.Helper()
	before := lsns(t)
	ours := nsList(t, opts{})
	after := lsns(t)
	stillThere := func(pid int, typ string, ino uint64) bool {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, typ))
		return err == nil && l == fmt.Sprintf("%s:[%d]", typ, ino)
	}
	for ino, n := range after {
		e, found := ours[ino]
		if _, both := before[ino]; !found && both && stillThere(n.PID, n.Type, ino) {
			t.Errorf("lsns lists %s namespace %d (pid %d), ns ls does not", n.Type, ino, n.PID)
		}
		if found && (e.Box == box || e.PID == un) && (e.NProcs != n.NProcs || e.PID != n.PID) {
			t.Errorf("%s namespace %d: ns ls counts %d processes from %d, lsns %d from %d", n.Type, ino, e.NProcs, e.PID, n.NProcs, n.PID)
		}
	}
	for ino, e := range ours {
		_, b := before[ino]
		_, a := after[ino]
		if e.NProcs > 0 && !a && !b && stillThere(e.PID, e.Type, ino) {
			t.Errorf("ns ls lists %s namespace %d (pid %d), lsns does not", e.Type, ino, e.PID)
		}
	}
	if len(ours) < len(after)/2 {
		t.Errorf("ns ls lists %d namespaces, lsns %d", len(ours), len(after))
	}
}

// treeNode is a node of `nsbox ns tree --json`.
type treeNode struct {
	NS       uint64     `json:"ns"`
	Type     string     `json:"type"`
	Pids     []int      `json:"pids"`
	UID      *int       `json:"uid"`
	Children []treeNode `json:"children"`
}

// pathTo returns the inodes from a root of the forest down to ino.
func pathTo(nodes []treeNode, ino uint64) []uint64 {
	for _, n := range nodes {
		if n.NS == ino {
			return []uint64{ino}
		}
		if p := pathTo(n.Children, ino); p != nil {
			return append([]uint64{n.NS}, p...)
		}
	}
	return nil
}

func findNode(nodes []treeNode, ino uint64) *treeNode {
	for i := range nodes {
		if nodes[i].NS == ino {
			return &nodes[i]
		}
		if n := findNode(nodes[i].Children, ino); n != nil {
			return n
		}
	}
	return nil
}

func TestNsTreeNested(t *testing.T) {
	requireRoot(t)
	// unshare in unshare: user and pid namespaces two levels deep.
	outer, sleep := startProc(t, nil, "", "sleep", "unshare", "-Urpf", "--kill-child", "unshare", "-Urpf", "--kill-child", "sleep", "1000")
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", outer, outer))
	inner, _ := strconv.Atoi(strings.TrimSpace(string(kids))) // the inner unshare
	ino := func(pid int, typ string) uint64 { return linkInode(t, fmt.Sprintf("/proc/%d/ns/%s", pid, typ)) }
	hostUser, hostPid := linkInode(t, "/proc/self/ns/user"), linkInode(t, "/proc/self/ns/pid")
	user1, user2 := ino(outer, "user"), ino(sleep, "user") // unshare enters its new user namespace itself
	pid1, pid2 := ino(inner, "pid"), ino(sleep, "pid")
	if user1 == hostUser || user2 == user1 || pid1 == hostPid || pid2 == pid1 {
		t.Fatalf("unshare did not nest: user %d %d %d, pid %d %d %d", hostUser, user1, user2, hostPid, pid1, pid2)
	}

	var doc struct{ User, Pid []treeNode }
	out := ok(t, opts{}, "ns", "tree", "--json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("ns tree --json: %v", err)
	}
	if got, want := fmt.Sprint(pathTo(doc.User, user2)), fmt.Sprint([]uint64{hostUser, user1, user2}); got != want {
		t.Errorf("user namespaces: path to the inner one %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(pathTo(doc.User, pid2)), fmt.Sprint([]uint64{hostUser, user1, user2, pid2}); got != want {
		t.Errorf("ownership: path to the inner pid namespace %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(pathTo(doc.Pid, pid2)), fmt.Sprint([]uint64{hostPid, pid1, pid2}); got != want {
		t.Errorf("pid namespaces: path to the inner one %s, want %s", got, want)
	}
	if n := findNode(doc.Pid, pid2); n == nil || fmt.Sprint(n.Pids) != fmt.Sprint([]int{sleep}) {
		t.Errorf("inner pid namespace: %+v, want only sleep (%d)", n, sleep)
	}
	if n := findNode(doc.Pid, pid1); n == nil || fmt.Sprint(n.Pids) != fmt.Sprint([]int{inner}) {
		t.Errorf("outer pid namespace: %+v, want only the inner unshare (%d)", n, inner)
	}
	if n := findNode(doc.User, user2); n == nil || n.UID == nil || *n.UID != 0 {
		t.Errorf("inner user namespace: %+v, want made by uid 0", n)
	}

	// The text tree indents the inner namespaces below the outer ones.
	text := ok(t, opts{}, "ns", "tree")
	depth := func(link string) int {
		for _, line := range strings.Split(text, "\n") {
			if i := strings.Index(line, link); i >= 0 {
				return len([]rune(line[:i]))
			}
		}
		return -1
	}
	l := func(typ string, n uint64) string { return fmt.Sprintf("%s:[%d]", typ, n) }
	if d0, d1, d2 := depth(l("user", hostUser)), depth(l("user", user1)), depth(l("user", user2)); !(d0 == 0 && d1 > d0 && d2 > d1) {
		t.Errorf("text tree: user namespaces at depths %d %d %d:\n%s", d0, d1, d2, text)
	}
	dot := ok(t, opts{}, "ns", "tree", "--dot")
	for _, edge := range []string{fmt.Sprintf("n%d -> n%d;", user1, user2), fmt.Sprintf("n%d -> n%d [style=bold", pid1, pid2)} {
		if !strings.Contains(dot, edge) {
			t.Errorf("ns tree --dot lacks %q:\n%s", edge, dot)
		}
	}
	if !strings.HasPrefix(dot, "digraph namespaces {") {
		t.Errorf("ns tree --dot: %.60q", dot)
	}
}

// enterReads runs `nsbox ns enter` with args and a shell script printing
// the namespace links of the command, and returns them by type.
func enterReads(t *testing.T, o opts, args ...string) map[string]string {
	t.Helper()
	script := `for n in user mnt net pid ipc uts cgroup time; do echo $n $(readlink /proc/self/ns/$n); done`
	out := ok(t, o, append(append([]string{"ns", "enter"}, args...), "--", "sh", "-c", script)...)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	return got
}

func TestNsEnterEachType(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	_, target := startProc(t, nil, dir, "sleep", allNamespaces...)
	theirs := map[string]string{}
	for _, typ := range nsTypes {
		theirs[typ], _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", target, typ))
		if theirs[typ] == hostNS(t, typ) {
			t.Fatalf("unshare made no %s namespace", typ)
		}
	}
	pid := strconv.Itoa(target)
	for _, typ := range nsTypes {
		flag := "--" + map[string]string{"mnt": "mount"}[typ]
		if flag == "--" {
			flag += typ
		}
		got := enterReads(t, opts{}, "--target", pid, flag)
		for _, other := range nsTypes {
			want := hostNS(t, other)
			if other == typ {
				want = theirs[typ]
			}
			if got[other] != want {
				t.Errorf("ns enter %s: %s namespace inside %q, want %q", flag, other, got[other], want)
			}
		}
	}
	for _, how := range [][]string{{"--all"}, nil, {"-U", "-m", "-n", "-p", "-i", "-u", "-C", "-T"}} {
		got := enterReads(t, opts{}, append([]string{"-t", pid}, how...)...)
		for _, typ := range nsTypes {
			if got[typ] != theirs[typ] {
				t.Errorf("ns enter %v: %s namespace inside %q, want %q", how, typ, got[typ], theirs[typ])
			}
		}
	}
	// As root of the user namespace; a process of the pid namespace (forked
	// after the setns); in the target's working directory.
	out := ok(t, opts{}, "ns", "enter", "-t", pid, "--", "sh", "-c", "id -u; pwd; echo $$; while read -r l; do case $l in NSpid*) echo $l;; esac; done </proc/self/status")
	if f := strings.Fields(out); len(f) != 6 || f[0] != "0" || f[1] != "/" || f[5] != f[2] || f[2] == "1" {
		t.Errorf("uid, directory, pid and NSpid inside: %q, want 0, / and a pid of the namespace that sleep is 1 of", f)
	}
	if out := ok(t, opts{}, "ns", "enter", "-t", pid, "--mount", "--wd", "--", "pwd"); strings.TrimSpace(out) != dir {
		t.Errorf("--mount --wd: %q, want %s", out, dir)
	}
	if out := ok(t, opts{}, "ns", "enter", "-t", pid, "--uts", "--wd", "--root", "--", "pwd"); strings.TrimSpace(out) != dir {
		t.Errorf("--uts --wd --root: %q, want %s", out, dir)
	}
	if r := nsbox(t, opts{}, "ns", "enter", "-t", pid, "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("the command's status: %s", r)
	}
	if r := nsbox(t, opts{}, "ns", "enter", "-t", pid, "--", "/nonexistent"); r.code != 127 {
		t.Errorf("a command that does not exist: %s", r)
	}

	// --preserve-credentials: the caller (root) is uid 1000 of this one.
	_, mapped := startProc(t, nil, "", "sleep", "unshare", "--user", "--map-user=1000", "--map-group=1000", "sleep", "1000")
	if out := ok(t, opts{}, "ns", "enter", "-t", strconv.Itoa(mapped), "--user", "--preserve-credentials", "--", "id", "-u"); strings.TrimSpace(out) != "1000" {
		t.Errorf("--preserve-credentials: uid %q, want 1000", out)
	}
}

func TestNsEnterBox(t *testing.T) {
	requireRoot(t)
	box, pid := runBox(t, opts{})
	got := enterReads(t, opts{}, box)
	for _, typ := range nsTypes {
		want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, typ))
		if got[typ] != want {
			t.Errorf("ns enter %s: %s namespace inside %q, want %q", box, typ, got[typ], want)
		}
	}
	if out := ok(t, opts{}, "ns", "enter", box, "--net", "--", "cat", "/proc/self/uid_map"); strings.Fields(out)[1] != "0" {
		t.Errorf("ns enter --net only: uid_map %q, want the host's", out)
	}
}

func TestNsRootless(t *testing.T) {
	requireRoot(t) // to make the test user; nsbox runs as that user
	u := users[userFull]
	o := opts{as: userFull}
	_, target := startProc(t, u, "/", "sleep", "unshare", "-Urpf", "--kill-child", "sleep", "1000")
	userNS, pidNS := linkInode(t, fmt.Sprintf("/proc/%d/ns/user", target)), linkInode(t, fmt.Sprintf("/proc/%d/ns/pid", target))

	r := nsbox(t, o, "ns", "ls", "--json")
	if r.code != 0 || !strings.Contains(r.stderr, "processes not readable (run as root to see them)") {
		t.Fatalf("ns ls as %s: %s", u.name, r)
	}
	got := nsList(t, o)
	if e := got[userNS]; e.UID == nil || *e.UID != u.uid || e.User != u.name || e.PID == 0 {
		t.Errorf("the user's user namespace: %+v, want made by %s", e, u.name)
	}
	if e := got[pidNS]; e.NProcs != 1 || e.PID != target {
		t.Errorf("the user's pid namespace: %+v", e)
	}
	for ino, e := range got {
		var st unix.Stat_t
		if e.PID != 0 && unix.Stat(fmt.Sprintf("/proc/%d", e.PID), &st) == nil && int(st.Uid) != u.uid {
			t.Errorf("as %s, ns ls lists namespace %d from process %d of uid %d: %+v", u.name, ino, e.PID, st.Uid, e)
		}
	}
	in := enterReads(t, o, "-t", strconv.Itoa(target))
	if in["user"] != fmt.Sprintf("user:[%d]", userNS) || in["pid"] != fmt.Sprintf("pid:[%d]", pidNS) {
		t.Errorf("ns enter as %s: %v", u.name, in)
	}

	// A rootless box: ns enter and nsbox inspect find the same namespaces.
	box, _ := runBox(t, o)
	var info struct{ Namespaces map[string]uint64 }
	if err := json.Unmarshal([]byte(ok(t, o, "inspect", box)), &info); err != nil || len(info.Namespaces) != len(nsTypes) {
		t.Fatalf("inspect %s: %v %v", box, info, err)
	}
	in = enterReads(t, o, box)
	for _, typ := range nsTypes {
		if want := fmt.Sprintf("%s:[%d]", typ, info.Namespaces[typ]); in[typ] != want {
			t.Errorf("ns enter %s as %s: %s namespace %q, want %q", box, u.name, typ, in[typ], want)
		}
	}
	if e := nsList(t, o)[info.Namespaces["net"]]; e.Box != box {
		t.Errorf("ns ls as %s: the box's network namespace: %+v", u.name, e)
	}
}

func TestNsBadInput(t *testing.T) {
	requireRoot(t)
	needClient(t, "nsenter", "lsns")
	// A pid that was a process and no longer is.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(gone.Process.Pid)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ns", "enter", "-t", "99999999", "true"}, 1, "no process 99999999"},
		{[]string{"ns", "enter", "-t", dead, "true"}, 1, "no process " + dead},
		{[]string{"ns", "enter", "no-such-box", "true"}, 1, "no such box"},
		{[]string{"ns", "enter", "true"}, 1, "no such box"},
		{[]string{"ns", "enter"}, 1, "want --target PID or a box"},
		{[]string{"ns", "enter", "-t", "x", "true"}, 1, "want a number"},
		{[]string{"ns", "enter", "--bogus", "-t", "1", "true"}, 1, "unknown flag --bogus"},
		{[]string{"ns", "ls", "--type", "bogus"}, 1, `unknown namespace type "bogus"`},
		{[]string{"ns", "ls", "-o", "NS,NOPE"}, 1, "unknown column: NOPE"},
		{[]string{"ns", "ls", "--bogus"}, 1, "unknown flag --bogus"},
		{[]string{"ns", "ls", "not-an-inode"}, 1, "not a namespace inode"},
		{[]string{"ns", "tree", "--json", "--dot"}, 1, "choose one"},
		{[]string{"ns", "bogus"}, 1, `unknown command "bogus"`},
		{[]string{"inspect", "no-such-box"}, 125, "no such box"},
	} {
		r := nsbox(t, opts{}, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("nsbox %s: %s\nwant exit %d and one line with %q", strings.Join(c.args, " "), r, c.code, c.want)
		}
	}
	// The statuses nsenter and lsns give for the same mistakes.
	for _, argv := range [][]string{{"nsenter", "-t", "99999999", "-n", "true"}, {"lsns", "-o", "NOPE"}, {"lsns", "--type", "bogus"}} {
		if err := exec.Command(argv[0], argv[1:]...).Run(); err == nil || err.(*exec.ExitError).ExitCode() != 1 {
			t.Errorf("%s: %v, want exit status 1 (as nsbox gives)", strings.Join(argv, " "), err)
		}
	}
	for _, args := range [][]string{{"ns", "--help"}, {"ns", "ls", "--help"}, {"ns", "tree", "--help"}, {"ns", "enter", "--help"}} {
		if r := nsbox(t, opts{}, args...); r.code != 0 || !strings.Contains(r.stdout, "Usage: nsbox ns") {
			t.Errorf("nsbox %s: %s", strings.Join(args, " "), r)
		}
	}
}

func TestNsPsAndInspect(t *testing.T) {
	requireRoot(t)
	box, pid := runBox(t, opts{}, "--memory", "256m", "--pids-limit", "100", "--cpus", "0.5")
	var boxes []struct {
		ID            string            `json:"id"`
		Pid           int               `json:"pid"`
		Status        string            `json:"status"`
		Namespaces    map[string]uint64 `json:"namespaces"`
		NewNamespaces []string          `json:"newNamespaces"`
		Cgroup        string            `json:"cgroup"`
		Resources     *struct {
			Memory struct{ Limit int64 }
			Pids   struct{ Limit int64 }
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(ok(t, opts{}, "ps", "--json")), &boxes); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range boxes {
		if b.ID != box {
			continue
		}
		found = true
		if b.Pid != pid || b.Status != "running" || b.Cgroup == "" || b.Resources == nil || b.Resources.Memory.Limit != 256<<20 || b.Resources.Pids.Limit != 100 {
			t.Errorf("ps --json: %+v", b)
		}
		for _, typ := range nsTypes {
			if want := linkInode(t, fmt.Sprintf("/proc/%d/ns/%s", pid, typ)); b.Namespaces[typ] != want {
				t.Errorf("ps --json: %s namespace %d, want %d", typ, b.Namespaces[typ], want)
			}
		}
		if strings.Join(b.NewNamespaces, ",") == "" || strings.Contains(strings.Join(b.NewNamespaces, ","), "time") {
			t.Errorf("ps --json: new namespaces %v", b.NewNamespaces)
		}
	}
	if !found {
		t.Fatalf("ps --json does not list %s", box)
	}
	table := ok(t, opts{}, "ps")
	var line string
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, box+" ") {
			line = l
		}
	}
	netns := strconv.FormatUint(linkInode(t, fmt.Sprintf("/proc/%d/ns/net", pid)), 10)
	if !strings.Contains(line, " "+strconv.Itoa(pid)+" running ") || !strings.Contains(line, netns) || !strings.Contains(line, "mem=256M cpu=0.5") || !strings.Contains(line, "pids=100") {
		t.Errorf("nsbox ps: the line of %s: %q\n%s", box, line, table)
	}
	if out := ok(t, opts{}, "ps", "-o", "id,netns", "--noheadings"); !hasLine(out, box+" "+netns) {
		t.Errorf("ps -o id,netns --noheadings: %q, want a line %q", out, box+" "+netns)
	}
	var info struct {
		ID         string            `json:"id"`
		Command    []string          `json:"command"`
		Namespaces map[string]uint64 `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(ok(t, opts{}, "inspect", box)), &info); err != nil || info.ID != box || strings.Join(info.Command, " ") != "sleep 1000" || len(info.Namespaces) != len(nsTypes) {
		t.Errorf("inspect %s: %+v %v", box, info, err)
	}
	// ps with an id keeps runc's meaning: the box's processes.
	if out := ok(t, opts{}, "ps", "--format", "json", box); !strings.HasPrefix(out, "[") || !strings.Contains(out, strconv.Itoa(pid)) {
		t.Errorf("ps --format json %s: %q", box, out)
	}
	if out := ok(t, opts{}, "ps", box); !strings.Contains(out, "PID") || !strings.Contains(out, "sleep 1000") {
		t.Errorf("ps %s:\n%s", box, out)
	}
}

// hasLine reports whether a line of out has the words of want.
func hasLine(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}

package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests of `nsbox netns` compare it with iproute2's `ip netns`, which
// keeps its named namespaces in the same place, /run/netns. Each test makes
// namespaces with names of its own (nsbox-test-PID-N) and removes them, and
// /etc/netns/NAME, when it ends, however it ends; it never touches others.

var (
	netnsSeq      int
	runNetnsReady sync.Once
	etcNetnsMade  bool // /etc/netns did not exist before the tests
)

// testNetns returns a fresh namespace name for t, registered for removal.
func testNetns(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	needClient(t, "ip")
	// The first namespace ever added makes /run/netns a shared mount point,
	// for good (as ip does): done once, up front, so that the leftover check
	// below sees only what the test makes.
	runNetnsReady.Do(func() {
		_, err := os.Stat("/etc/netns")
		etcNetnsMade = os.IsNotExist(err)
		if !isMountPoint("/run/netns") {
			name := fmt.Sprintf("nsbox-test-%d-0", os.Getpid())
			exec.Command(bin, "netns", "add", name).Run()
			exec.Command(bin, "netns", "rm", name).Run()
		}
	})
	watchLeftovers(t) // registered before the removal, so it runs after it
	netnsSeq++
	name := fmt.Sprintf("nsbox-test-%d-%d", os.Getpid(), netnsSeq)
	t.Cleanup(func() { removeTestNetns(t, name) })
	return name
}

func removeTestNetns(t *testing.T, name string) {
	path := filepath.Join("/run/netns", name)
	for i := 0; i < 8 && unix.Unmount(path, unix.MNT_DETACH) == nil; i++ {
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Errorf("remove %s: %v", path, err)
	}
	if err := os.RemoveAll(filepath.Join("/etc/netns", name)); err != nil {
		t.Errorf("remove /etc/netns/%s: %v", name, err)
	}
	if etcNetnsMade {
		os.Remove("/etc/netns") // once empty again
	}
}

func isMountPoint(path string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// ipCmd runs ip (or another host tool) and returns its standard output.
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), marker)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// nsInode is the inode of the namespace bound at /run/netns/NAME, as
// /proc/PID/ns/net names it: "net:[INODE]".
func nsInode(t *testing.T, name string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", name), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// ours keeps the lines of a listing that name one of names, in order.
func ours(out string, names ...string) []string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		for _, n := range names {
			if f := strings.Fields(line); len(f) > 0 && f[0] == n {
				keep = append(keep, line)
			}
		}
	}
	return keep
}

func TestNetnsAddLsExecRm(t *testing.T) {
	name := testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	path := filepath.Join("/run/netns", name)
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		t.Fatalf("%s is not an nsfs bind (statfs: %v, type %#x)", path, err, fs.Type)
	}
	if got := ours(ok(t, opts{}, "netns", "ls"), name); len(got) != 1 || got[0] != name {
		t.Errorf("nsbox netns ls: %q, want %s", got, name)
	}
	if got := ours(ok(t, opts{}, "netns"), name); len(got) != 1 {
		t.Errorf("nsbox netns (no verb) does not list %s", name)
	}

	// The seeds' workflow: only lo, and down, as ip leaves it.
	links := ok(t, opts{}, "netns", "exec", name, "ip", "-o", "link")
	if lines := strings.Split(strings.TrimSpace(links), "\n"); len(lines) != 1 || !strings.Contains(lines[0], " lo: ") || !strings.Contains(lines[0], "state DOWN") {
		t.Errorf("ip link in %s: %q, want only lo, down", name, links)
	}
	if want := ipCmd(t, "ip", "netns", "exec", name, "ip", "-o", "link"); links != want {
		t.Errorf("ip link: nsbox netns exec shows %q, ip netns exec %q", links, want)
	}
	out := ok(t, opts{}, "netns", "exec", name, "sh", "-c",
		`readlink /proc/self/ns/net; ls /sys/class/net; cat /sys/class/net/lo/flags; grep " /sys " /proc/self/mountinfo | tail -n 1`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("unexpected output in %s:\n%s", name, out)
	}
	if lines[0] != nsInode(t, name) || lines[0] == hostNS(t, "net") {
		t.Errorf("network namespace inside %s, want %s (the bind at %s)", lines[0], nsInode(t, name), path)
	}
	if lines[1] != "lo" {
		t.Errorf("/sys/class/net inside: %q, want only lo (a fresh sysfs)", lines[1])
	}
	if flags, err := strconv.ParseUint(strings.TrimPrefix(lines[2], "0x"), 16, 32); err != nil || flags&unix.IFF_UP != 0 {
		t.Errorf("lo flags %s: want it down, as ip netns add leaves it", lines[2])
	}
	if f := strings.Fields(lines[3]); len(f) < 10 || f[len(f)-3] != "sysfs" || f[len(f)-2] != name {
		t.Errorf("/sys inside: %q, want a sysfs named %s (as ip mounts it)", lines[3], name)
	}
	if got := strings.TrimSpace(ok(t, opts{}, "netns", "exec", name, bin, "netns", "identify")); got != name {
		t.Errorf("nsbox netns identify inside %s: %q", name, got)
	}

	ok(t, opts{}, "netns", "rm", name)
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after rm: %v", path, err)
	}
	if isMountPoint(path) {
		t.Errorf("%s still mounted after rm", path)
	}
	if got := ours(ok(t, opts{}, "netns", "ls"), name); len(got) != 0 {
		t.Errorf("nsbox netns ls after rm: %q", got)
	}
	if got := ours(ipCmd(t, "ip", "netns", "ls"), name); len(got) != 0 {
		t.Errorf("ip netns ls after rm: %q", got)
	}
}

func TestNetnsInteroperatesWithIP(t *testing.T) {
	byIP, byNsbox := testNetns(t), testNetns(t)
	ipCmd(t, "ip", "netns", "add", byIP)
	ok(t, opts{}, "netns", "add", byNsbox)

	// Both see both, in the same order (ip's: the directory's).
	want := ours(ipCmd(t, "ip", "netns", "ls"), byIP, byNsbox)
	if got := ours(ok(t, opts{}, "netns", "ls"), byIP, byNsbox); len(want) != 2 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nsbox netns ls: %q; ip netns ls: %q", got, want)
	}
	// Each tool enters the other's namespace.
	for _, name := range []string{byIP, byNsbox} {
		a := strings.TrimSpace(ok(t, opts{}, "netns", "exec", name, "readlink", "/proc/self/ns/net"))
		b := strings.TrimSpace(ipCmd(t, "ip", "netns", "exec", name, "readlink", "/proc/self/ns/net"))
		if a != nsInode(t, name) || b != a {
			t.Errorf("%s: nsbox netns exec in %s, ip netns exec in %s, want %s", name, a, b, nsInode(t, name))
		}
	}
	// Namespace ids: a veth pair between the two makes each give the
	// other an id, which ls prints as "(id: N)" — as ip does.
	ipCmd(t, "ip", "link", "add", "nsbt0", "netns", byIP, "type", "veth", "peer", "name", "nsbt1", "netns", byNsbox)
	ids := 0
	for _, in := range []string{byIP, byNsbox} {
		want := ours(ipCmd(t, "ip", "netns", "exec", in, "ip", "netns", "ls"), byIP, byNsbox)
		got := ours(ok(t, opts{}, "netns", "exec", in, bin, "netns", "ls"), byIP, byNsbox)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("ls inside %s: nsbox %q, ip %q", in, got, want)
		}
		ids += strings.Count(strings.Join(got, "\n"), "(id: ")
	}
	if ids == 0 {
		t.Errorf("no namespace id listed after linking the two namespaces")
	}
	// And each removes the other's.
	ok(t, opts{}, "netns", "rm", byIP)
	ipCmd(t, "ip", "netns", "delete", byNsbox)
	if left := ours(ipCmd(t, "ip", "netns", "ls"), byIP, byNsbox); len(left) != 0 {
		t.Errorf("left after removal: %q", left)
	}
}

// TestNetnsExecIsIPNetnsExec compares what a command sees of itself under
// both tools: credentials, capabilities, umask, namespaces, working
// directory, environment, the host's files.
func TestNetnsExecIsIPNetnsExec(t *testing.T) {
	name := testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	dir := t.TempDir()
	script := `grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Umask):' /proc/self/status
for n in cgroup ipc net pid time user uts; do echo $n $(readlink /proc/self/ns/$n); done
pwd; echo "var=$NSBOX_NETNS_VAR"; echo $$ >` + dir + `/written-by-$1; ls /run/netns/` + name
	run := func(args ...string) string {
		cmd := exec.Command("sh", append([]string{"-c", `umask 027; exec "$@"`, "sh"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), marker, "NSBOX_NETNS_VAR=kept")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	got := run(bin, "--root", stateRoot, "netns", "exec", name, "sh", "-c", script, "sh", "nsbox")
	want := run("ip", "netns", "exec", name, "sh", "-c", script, "sh", "ip")
	if got != want {
		t.Errorf("nsbox netns exec sees:\n%s\nip netns exec sees:\n%s", got, want)
	}
	for _, l := range []string{"Umask:\t0027", "var=kept", "net " + nsInode(t, name), "pid " + hostNS(t, "pid"), "user " + hostNS(t, "user"), dir + "\n"} {
		if !strings.Contains(got, l) {
			t.Errorf("want %q in what the command sees:\n%s", l, got)
		}
	}
	// The host's file system, read-write: what the command wrote is there.
	for _, who := range []string{"nsbox", "ip"} {
		if _, err := os.Stat(filepath.Join(dir, "written-by-"+who)); err != nil {
			t.Errorf("file written under %s netns exec: %v", who, err)
		}
	}
	// Its own mount namespace, though.
	if mnt := strings.TrimSpace(ok(t, opts{}, "netns", "exec", name, "readlink", "/proc/self/ns/mnt")); mnt == hostNS(t, "mnt") {
		t.Errorf("nsbox netns exec runs in the host's mount namespace")
	}
}

func TestNetnsExecStatus(t *testing.T) {
	name := testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	notExec := filepath.Join(t.TempDir(), "not-executable")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"nsbox-no-such-command"}, 127},
		{[]string{notExec}, 126},
	} {
		r := nsbox(t, opts{}, append([]string{"netns", "exec", name}, c.args...)...)
		if r.code != c.code {
			t.Errorf("netns exec %s: %s, want exit %d", strings.Join(c.args, " "), r, c.code)
		}
	}
}

// TestNetnsEtcFiles: /etc/netns/NAME/resolv.conf shows over
// /etc/resolv.conf inside, and nothing in /etc changes on the host.
func TestNetnsEtcFiles(t *testing.T) {
	name := testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	etc := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	hostResolv, resolvErr := os.ReadFile("/etc/resolv.conf")
	content := "nameserver 192.0.2.53 # " + name + "\n"
	absent := "nsbox-test-absent-" + strconv.Itoa(os.Getpid())
	for file, data := range map[string]string{"resolv.conf": content, absent: "x\n"} {
		if err := os.WriteFile(filepath.Join(etc, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if resolvErr != nil {
		// Nothing to bind over: like ip, a warning and no bind.
		r := nsbox(t, opts{}, "netns", "exec", name, "true")
		if r.code != 0 || !strings.Contains(r.stderr, "/etc/resolv.conf") {
			t.Errorf("without /etc/resolv.conf: %s", r)
		}
		t.Logf("the host has no /etc/resolv.conf (%v): checked the warning only", resolvErr)
		return
	}
	r := nsbox(t, opts{}, "netns", "exec", name, "cat", "/etc/resolv.conf")
	if r.code != 0 || r.stdout != content {
		t.Errorf("/etc/resolv.conf in %s: %s\nwant %q", name, r, content)
	}
	if want := ipCmd(t, "ip", "netns", "exec", name, "cat", "/etc/resolv.conf"); r.stdout != want {
		t.Errorf("/etc/resolv.conf: nsbox shows %q, ip %q", r.stdout, want)
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "/etc/"+absent) {
		t.Errorf("want one warning about /etc/%s, got %q", absent, r.stderr)
	}
	if _, err := os.Lstat("/etc/" + absent); !os.IsNotExist(err) {
		t.Errorf("/etc/%s was created on the host: %v", absent, err)
		os.Remove("/etc/" + absent)
	}
	if b, _ := os.ReadFile("/etc/resolv.conf"); string(b) != string(hostResolv) {
		t.Errorf("the host's /etc/resolv.conf changed")
	}
}

// TestNetnsPidsIdentifyAttach: a process in a named namespace, found by
// pids and identify, and named again by attach; compared with ip.
func TestNetnsPidsIdentifyAttach(t *testing.T) {
	name, second := testNetns(t), testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	cmd, stdout := startReady(t, "netns", "exec", name, "sh", "-c", "echo ready; echo $$; exec sleep 60")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid == 0 {
		t.Fatalf("no pid from the command: %q %v", line, err)
	}
	pids := ok(t, opts{}, "netns", "pids", name)
	if !strings.Contains("\n"+pids, "\n"+strconv.Itoa(pid)+"\n") {
		t.Errorf("nsbox netns pids %s: %q, want %d among them", name, pids, pid)
	}
	if want := ipCmd(t, "ip", "netns", "pids", name); pids != want {
		t.Errorf("pids: nsbox %q, ip %q", pids, want)
	}
	if got := ours(ok(t, opts{}, "netns", "identify", strconv.Itoa(pid)), name); len(got) != 1 {
		t.Errorf("nsbox netns identify %d: %q, want %s", pid, got, name)
	}
	ok(t, opts{}, "netns", "attach", second, strconv.Itoa(pid))
	if nsInode(t, second) != nsInode(t, name) {
		t.Errorf("attach: %s is %s, want %s", second, nsInode(t, second), nsInode(t, name))
	}
	// Every name, as ip's manual says (ip 6.1 itself prints only the last).
	got := ours(ok(t, opts{}, "netns", "identify", strconv.Itoa(pid)), name, second)
	want := ours(ipCmd(t, "ip", "netns", "identify", strconv.Itoa(pid)), name, second)
	if len(got) != 2 || len(want) == 0 || !strings.Contains(strings.Join(got, " "), want[0]) {
		t.Errorf("identify after attach: nsbox %q, ip %q", got, want)
	}
	ok(t, opts{}, "netns", "rm", second)
	ok(t, opts{}, "netns", "rm", name) // the namespace lives on in its process
	if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || l == hostNS(t, "net") {
		t.Errorf("the command left its namespace when its name was removed: %s %v", l, err)
	}
	cmd.Process.Signal(syscall.SIGTERM) // forwarded to the command
	io.Copy(io.Discard, stdout)
	cmd.Wait()
}

func TestNetnsBadInput(t *testing.T) {
	name := testNetns(t)
	ok(t, opts{}, "netns", "add", name)
	ino := nsInode(t, name)
	missing := testNetns(t)
	before, _ := os.ReadDir("/run/netns")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", missing, "true"}, "no network namespace"},
		{[]string{"exec", name}, "no command"},
		{[]string{"add", name}, "exists already"},
		{[]string{"rm", missing}, "no network namespace"},
		{[]string{"pids", missing}, "no network namespace"},
		{[]string{"add", "a/b"}, "invalid network namespace name"},
		{[]string{"add", ".."}, "invalid network namespace name"},
		{[]string{"add", ""}, "invalid network namespace name"},
		{[]string{"exec", "../" + name, "true"}, "invalid network namespace name"},
		{[]string{"rm", "../netns"}, "invalid network namespace name"},
		{[]string{"add"}, "want NAME"},
		{[]string{"add", "x", "y"}, "want NAME"},
		{[]string{"attach", missing, "notapid"}, "not a pid"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		r := nsbox(t, opts{}, append([]string{"netns"}, c.args...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 125 || len(lines) != 1 || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("netns %q: %s\nwant exit 125 and one line with %q", c.args, r, c.want)
		}
	}
	after, _ := os.ReadDir("/run/netns")
	if len(after) != len(before) {
		t.Errorf("/run/netns had %d entries, has %d after the bad commands", len(before), len(after))
	}
	if nsInode(t, name) != ino {
		t.Errorf("add of an existing name replaced it")
	}
	for _, p := range []string{"/run/netns/a", "/run/netns/" + missing} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after the bad commands", p)
		}
	}
}

// TestNetnsAddSharesRunNetns: on a /run where /run/netns does not exist
// (a private mount namespace with a fresh tmpfs on /run), add makes it a
// shared mount point, once however many namespaces are added, as ip does.
func TestNetnsAddSharesRunNetns(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	needClient(t, "unshare")
	script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs /run
"$0" netns add %[1]s
"$0" netns add %[2]s
grep " /run/netns " /proc/self/mountinfo | grep -- " - tmpfs "
ip netns ls
"$0" netns rm %[1]s
ip netns delete %[2]s
ls /run/netns | wc -l`, a, b)
	out := ipCmd(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, bin)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if !strings.Contains(lines[0], " shared:") {
		t.Errorf("/run/netns is not one shared mount point: %q", lines[0])
	}
	if ls := ours(strings.Join(lines[1:3], "\n"), a, b); len(ls) != 2 {
		t.Errorf("ip netns ls does not list both: %q", lines[1:3])
	}
	if lines[3] != "0" {
		t.Errorf("%s entries left in /run/netns", lines[3])
	}
}

func TestNetnsHelp(t *testing.T) {
	if out := ok(t, opts{}, "--help"); !strings.Contains(out, "netns") {
		t.Errorf("nsbox --help does not list netns:\n%s", out)
	}
	out := ok(t, opts{}, "netns", "--help")
	for _, v := range []string{"add NAME", "ls", "exec NAME CMD", "rm NAME", "identify", "pids NAME", "attach NAME PID"} {
		if !strings.Contains(out, v) {
			t.Errorf("nsbox netns --help lacks %q:\n%s", v, out)
		}
	}
	if out := ok(t, opts{}, "netns", "exec", "--help"); !strings.Contains(out, "/etc/netns/NAME") {
		t.Errorf("nsbox netns exec --help:\n%s", out)
	}
}

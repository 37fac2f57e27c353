package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	nsboxlib "github.com/nsbox/nsbox"
)

var nsNames = []string{"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"}

// nsInside reads /proc/self/ns/* from inside a box run with flags.
func nsInside(t *testing.T, o opts, flags ...string) map[string]string {
	t.Helper()
	out := inBox(t, o, `for n in cgroup ipc mnt net pid time user uts; do echo $n $(readlink /proc/self/ns/$n); done`, flags...)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	return got
}

func TestEveryNamespaceIsNew(t *testing.T) {
	requireRoot(t)
	got := nsInside(t, opts{})
	for _, n := range nsNames {
		if got[n] == "" || got[n] == hostNS(t, n) {
			t.Errorf("%s namespace: inside %q, host %q: want a new one", n, got[n], hostNS(t, n))
		}
	}
	if got["time"] != hostNS(t, "time") {
		t.Errorf("time namespace is new without --time-offset")
	}
}

func TestSharedNamespacesAreTheHosts(t *testing.T) {
	requireRoot(t)
	got := nsInside(t, opts{}, "--share", "net,ipc", "--share", "uts")
	for _, n := range []string{"net", "ipc", "uts"} {
		if got[n] != hostNS(t, n) {
			t.Errorf("--share %s: inside %s, host %s", n, got[n], hostNS(t, n))
		}
	}
	for _, n := range []string{"mnt", "pid", "user", "cgroup"} {
		if got[n] == hostNS(t, n) {
			t.Errorf("%s namespace is the host's, want a new one", n)
		}
	}
	got = nsInside(t, opts{}, "--userns=host")
	if got["user"] != hostNS(t, "user") {
		t.Errorf("--userns=host: user namespace %s, host %s", got["user"], hostNS(t, "user"))
	}
}

// netns makes a named network namespace (as `ip netns add` does) for one test.
func netns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("nsbox-t-%d", time.Now().UnixNano())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

func TestJoinNetworkNamespace(t *testing.T) {
	requireRoot(t)
	path := netns(t)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	got := nsInside(t, opts{}, "--ns", "net="+path)
	if got["net"] != fmt.Sprintf("net:[%d]", st.Ino) {
		t.Errorf("--ns net=%s: inside %s, want net:[%d]", path, got["net"], st.Ino)
	}
	if got["pid"] == hostNS(t, "pid") || got["user"] == hostNS(t, "user") {
		t.Errorf("joining net must not share the other namespaces: %v", got)
	}
}

// background starts a long-running box and returns its id and init pid.
func background(t *testing.T, o opts, script string, flags ...string) (string, int) {
	t.Helper()
	args := append([]string{"run", "-d", "--rootfs", rootfs}, flags...)
	args = append(args, "--", "/bin/sh", "-c", script)
	id := strings.TrimSpace(ok(t, o, args...))
	t.Cleanup(func() { nsbox(t, o, "delete", "--force", id) })
	return id, boxPid(t, o, id)
}

func boxPid(t *testing.T, o opts, id string) int {
	t.Helper()
	out := ok(t, o, "state", id)
	m := regexp.MustCompile(`"pid":\s*(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pid in state: %s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func TestJoinUserAndMountNamespacesOfABox(t *testing.T) {
	requireRoot(t)
	_, pid := background(t, opts{}, "echo from-the-first-box > /tmp/mark; exec sleep 60")
	// Wait for the mark: the box runs its script asynchronously.
	for i := 0; i < 100; i++ {
		out := nsbox(t, opts{}, "run", "--ns", fmt.Sprintf("user=/proc/%d/ns/user", pid), "--ns", fmt.Sprintf("mnt=/proc/%d/ns/mnt", pid),
			"--", "/bin/cat", "/tmp/mark")
		if out.code == 0 {
			if strings.TrimSpace(out.stdout) != "from-the-first-box" {
				t.Fatalf("joined mount namespace shows %q", out.stdout)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Joining the box's pid namespace too (through a fork into it), /proc
	// of its mount namespace shows this process.
	join := []string{"run", "--ns", fmt.Sprintf("user=/proc/%d/ns/user", pid), "--ns", fmt.Sprintf("mnt=/proc/%d/ns/mnt", pid),
		"--ns", fmt.Sprintf("pid=/proc/%d/ns/pid", pid), "--", "/bin/sh", "-c", "for n in user mnt pid; do readlink /proc/self/ns/$n; done"}
	out := strings.Fields(ok(t, opts{}, join...))
	for i, n := range []string{"user", "mnt", "pid"} {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, n))
		if i >= len(out) || out[i] != target {
			t.Errorf("joined %s namespace: inside %v, box %s", n, out, target)
		}
	}
}

// TestJoinPIDNamespaceOfABox: a box with its own user namespace that joins
// another box's pid namespace sees that namespace's processes in its /proc —
// the first box's sleep, itself — and not the host's; joining its network
// namespace, its /sys shows that namespace's devices (lo), not the host's.
// (Its user namespace cannot mount a proc or sysfs for namespaces it does
// not own: they are made before that user namespace exists.)
func TestJoinPIDNamespaceOfABox(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	id, pid := background(t, opts{}, "exec sleep 61")
	hostDevs, _ := os.ReadDir("/sys/class/net")
	if len(hostDevs) < 2 {
		t.Fatalf("the host has %d network devices: the test needs more than lo", len(hostDevs))
	}
	devs := inBox(t, opts{}, "ls /sys/class/net; grep ' /sys ' /proc/self/mountinfo", "--net=container:"+id)
	if !strings.HasPrefix(devs, "lo\n") || !strings.Contains(devs, " /sys ro,") {
		t.Errorf("/sys of a box in another box's network namespace:\n%s", devs)
	}
	target, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	out := inBox(t, opts{}, "readlink /proc/self/ns/pid; for p in /proc/[0-9]*; do echo \"$(cat $p/cmdline | tr '\\0' ' ')\"; done; grep ' /proc ' /proc/self/mountinfo",
		"--ns", fmt.Sprintf("pid=/proc/%d/ns/pid", pid))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != target {
		t.Fatalf("joined pid namespace %q, the box's is %s", lines[0], target)
	}
	if !strings.Contains(out, "sleep 61") {
		t.Errorf("the first box's process is not in /proc:\n%s", out)
	}
	host, _ := os.ReadFile("/proc/1/cmdline")
	if first := strings.TrimRight(strings.ReplaceAll(string(host), "\x00", " "), " "); strings.Contains(out, first) {
		t.Errorf("the host's PID 1 (%s) is in the box's /proc:\n%s", first, out)
	}
	if !strings.Contains(out, "nosuid,nodev,noexec") {
		t.Errorf("/proc not nosuid,nodev,noexec:\n%s", out)
	}
}

func TestHostnameAndDomainname(t *testing.T) {
	requireRoot(t)
	host, _ := os.Hostname()
	out := inBox(t, opts{}, "hostname; cat /proc/sys/kernel/domainname", "--hostname", "boxy", "--domainname", "example.test")
	if out != "boxy\nexample.test\n" {
		t.Errorf("inside: %q", out)
	}
	out = inBox(t, opts{}, "hostname", "--name", "named-box")
	if strings.TrimSpace(out) != "named-box" {
		t.Errorf("default hostname %q, want the box name", out)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("host hostname changed to %q", h)
	}
}

func TestHostProcessesInvisible(t *testing.T) {
	requireRoot(t)
	out := inBox(t, opts{}, "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; echo $$")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	pids := strings.Fields(lines[0])
	// init (1), the shell (2) and the ls/grep/sort/tr pipeline.
	if len(pids) > 7 || pids[0] != "1" {
		t.Errorf("processes visible in the box: %v", pids)
	}
	if lines[1] != "2" {
		t.Errorf("the command is pid %s, want 2 (after the init)", lines[1])
	}
	out = inBox(t, opts{}, "echo $$", "--no-init")
	if strings.TrimSpace(out) != "1" {
		t.Errorf("--no-init: the command is pid %s, want 1", out)
	}
}

func TestHostMessageQueueInvisible(t *testing.T) {
	requireRoot(t)
	out, err := exec.Command("ipcmk", "-Q").CombinedOutput()
	if err != nil {
		t.Fatalf("ipcmk: %v: %s", err, out)
	}
	id := regexp.MustCompile(`\d+`).FindString(string(out))
	t.Cleanup(func() { exec.Command("ipcrm", "-q", id).Run() })
	if b, _ := os.ReadFile("/proc/sysvipc/msg"); !strings.Contains(string(b), " "+id+" ") {
		t.Fatalf("host queue %s not in /proc/sysvipc/msg", id)
	}
	inside := inBox(t, opts{}, "cat /proc/sysvipc/msg")
	if lines := strings.Split(strings.TrimSpace(inside), "\n"); len(lines) != 1 {
		t.Errorf("message queues visible in the box:\n%s", inside)
	}
	shared := inBox(t, opts{}, "cat /proc/sysvipc/msg", "--share", "ipc")
	if !strings.Contains(shared, " "+id+" ") {
		t.Errorf("--share ipc: host queue %s not visible:\n%s", id, shared)
	}
}

func TestOnlyLoopbackAndUp(t *testing.T) {
	requireRoot(t)
	out := inBox(t, opts{}, "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags")
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "lo" {
		t.Fatalf("interfaces in the box: %q", out)
	}
	flags, _ := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
	if flags&syscall.IFF_UP == 0 {
		t.Errorf("lo is down (flags %s)", f[2])
	}
}

func TestUIDMaps(t *testing.T) {
	requireRoot(t)
	out := inBox(t, opts{}, "cat /proc/self/uid_map /proc/self/gid_map; id -u")
	f := strings.Fields(out)
	if len(f) != 7 || f[0] != "0" || f[2] != "65536" || f[3] != "0" || f[6] != "0" {
		t.Fatalf("maps inside: %q", out)
	}
	start, _ := strconv.Atoi(f[1])
	if start < 65536 {
		t.Errorf("box root maps to host id %d: want an unused subordinate range", start)
	}
	out = inBox(t, opts{}, "cat /proc/self/uid_map", "--userns", "0:200000:1000,1000:300000:10")
	if strings.Join(strings.Fields(out), " ") != "0 200000 1000 1000 300000 10" {
		t.Errorf("--userns maps inside: %q", out)
	}
	out = inBox(t, opts{}, "cat /proc/self/uid_map", "--userns=host")
	if strings.Join(strings.Fields(out), " ") != "0 0 4294967295" {
		t.Errorf("--userns=host: %q", out)
	}
	// Two boxes at once get different ranges.
	_, pid := background(t, opts{}, "exec sleep 60")
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	out = inBox(t, opts{}, "cat /proc/self/uid_map")
	if strings.Fields(string(b))[1] == strings.Fields(out)[1] {
		t.Errorf("two boxes share the id range %s", strings.Fields(out)[1])
	}
}

func TestHostSecretsUnreadable(t *testing.T) {
	requireRoot(t)
	r := nsbox(t, opts{}, "run", "--", "/bin/cat", "/etc/shadow")
	if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "ermission denied") {
		t.Errorf("the box's root read /etc/shadow: %s", r)
	}
	r = nsbox(t, opts{}, "run", "--", "/bin/sh", "-c", "echo x > /etc/nsbox-test-write")
	if r.code == 0 {
		os.Remove("/etc/nsbox-test-write")
		t.Errorf("the box wrote to the host's /etc")
	}
	if !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("write to the host root: %s", r)
	}
}

func TestTimeNamespaceOffsets(t *testing.T) {
	requireRoot(t)
	out := inBox(t, opts{}, "cat /proc/self/timens_offsets; cat /proc/uptime", "--time-offset", "monotonic=86400,boottime=172800")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "monotonic 86400 0" ||
		strings.Join(strings.Fields(lines[1]), " ") != "boottime 172800 0" {
		t.Fatalf("timens_offsets: %q", out)
	}
	inside, _ := strconv.ParseFloat(strings.Fields(lines[2])[0], 64)
	hostB, _ := os.ReadFile("/proc/uptime")
	host, _ := strconv.ParseFloat(strings.Fields(string(hostB))[0], 64)
	if d := inside - host; d < 172800-5 || d > 172800+5 {
		t.Errorf("boot time inside is %.0fs ahead, want 172800", d)
	}
	// CLOCK_MONOTONIC, read by the test binary itself run inside the box.
	// (The box has its own /tmp: bind the binary in.)
	self := filepath.Join(t.TempDir(), "helper")
	if out, err := exec.Command("cp", os.Args[0], self).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	for _, init := range []string{"", "--no-init"} {
		args := []string{"run", "--time-offset", "monotonic=86400", "--bind", self + ":/tmp/helper:ro"}
		if init != "" {
			args = append(args, init)
		}
		args = append(args, "--", "/tmp/helper", "-test.run=^TestHelperMonotonic$")
		r := nsbox(t, opts{env: []string{"NSBOX_HELPER=monotonic"}}, args...)
		if r.code != 0 {
			t.Fatalf("helper: %s", r)
		}
		var ts syscall.Timespec
		clockGettime(&ts)
		got, _ := strconv.ParseInt(strings.TrimSpace(r.stdout), 10, 64)
		if d := got - ts.Sec; d < 86400-5 || d > 86400+5 {
			t.Errorf("%s: CLOCK_MONOTONIC inside is %ds ahead, want 86400 (inside %d, host %d)", init, d, got, ts.Sec)
		}
	}
}

// TestHelperMonotonic prints CLOCK_MONOTONIC seconds when run as a helper
// inside a box.
func TestHelperMonotonic(t *testing.T) {
	if os.Getenv("NSBOX_HELPER") != "monotonic" {
		return // not a test: the program TestTimeNamespaceOffsets runs in a box
	}
	var ts syscall.Timespec
	clockGettime(&ts)
	fmt.Println(ts.Sec)
	os.Exit(0)
}

func TestExitCodesAndSignals(t *testing.T) {
	requireRoot(t)
	// (With --no-init the command is PID 1, which signals from inside its
	// namespace cannot kill: the signals come from a child shell.)
	for _, init := range [][]string{nil, {"--no-init"}} {
		for _, c := range []struct {
			script string
			want   int
		}{
			{"exit 0", 0}, {"exit 42", 42}, {"sh -c 'kill -TERM $$'; exit $?", 128 + 15}, {"sh -c 'kill -KILL $$'; exit $?", 128 + 9},
		} {
			args := append([]string{"run", "--rootfs", rootfs}, init...)
			args = append(args, "--", "/bin/sh", "-c", c.script)
			if r := nsbox(t, opts{}, args...); r.code != c.want {
				t.Errorf("%v %q: exit %d, want %d (%s)", init, c.script, r.code, c.want, r.stderr)
			}
		}
	}
	if r := nsbox(t, opts{}, "run", "--rootfs", rootfs, "--", "/bin/sh", "-c", "kill -KILL $$"); r.code != 128+9 {
		t.Errorf("init forwards the command's own death by signal: %s", r)
	}
	if r := nsbox(t, opts{}, "run", "--rootfs", rootfs, "--", "nonexistent"); r.code != 127 || !strings.Contains(r.stderr, "nonexistent") {
		t.Errorf("missing command: %s", r)
	}
	if r := nsbox(t, opts{}, "run", "--rootfs", rootfs, "--", "/etc/passwd"); r.code != 126 {
		t.Errorf("non-executable command: %s", r)
	}
}

func TestSignalsAreForwarded(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH} {
		for _, init := range [][]string{nil, {"--no-init"}} {
			name := strings.TrimPrefix(unixSignalName(sig), "SIG")
			script := fmt.Sprintf(`trap "echo got-%s; exit 3" %s; echo ready; while :; do sleep 0.05; done`, name, name)
			args := append([]string{"run", "--rootfs", rootfs}, init...)
			cmd, stdout := startReady(t, append(args, "--", "/bin/sh", "-c", script)...)
			cmd.Process.Signal(sig)
			rest := make([]byte, 64)
			n := readWithin(t, stdout, rest, 10*time.Second)
			cmd.Wait()
			if got := strings.TrimSpace(string(rest[:n])); got != "got-"+name || cmd.ProcessState.ExitCode() != 3 {
				t.Errorf("%v %s: output %q, exit %d", init, name, got, cmd.ProcessState.ExitCode())
			}
		}
	}
}

func TestZombiesAreReaped(t *testing.T) {
	requireRoot(t)
	// Orphans re-parented to the init must not stay zombies.
	out := inBox(t, opts{}, `for i in 1 2 3 4 5; do sh -c 'sleep 0.05 &'; done; sleep 0.5; grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l`)
	if strings.TrimSpace(out) != "0" {
		t.Errorf("%s zombies in the box", strings.TrimSpace(out))
	}
}

func TestRootfsPivotsAndDetachesTheHostRoot(t *testing.T) {
	requireRoot(t)
	out := inBox(t, opts{}, "cat /proc/self/mountinfo")
	allowed := regexp.MustCompile(`^/(|proc|sys|sys/fs/cgroup(/[a-z_,=]+)?|tmp|run|dev|dev/(pts|shm|mqueue|null|zero|full|random|urandom|tty))$`)
	// And the masked and read-only paths, bound over the box's own /proc
	// and /sys.
	confined := map[string]bool{}
	for _, p := range append(nsboxlib.DefaultMaskedPaths, nsboxlib.DefaultReadonlyPaths...) {
		confined[p] = true
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, line := range lines {
		if f := strings.Fields(line); !allowed.MatchString(f[4]) && !confined[f[4]] {
			t.Errorf("mount on %s in the box: the host's mounts must be gone after pivot_root", f[4])
		}
	}
	if root := strings.Fields(lines[0]); root[4] != "/" {
		t.Errorf("first mount is %s, want the root", root[4])
	}
	for _, want := range []string{" /proc ", " /dev ", " /dev/pts ", " /dev/shm ", " /dev/mqueue ", " /sys ", " /tmp ", " /run "} {
		if !strings.Contains(out, want) {
			t.Errorf("no mount on%s in the box", want)
		}
	}
	devs := inBox(t, opts{}, "ls /dev; ls -l /dev/ptmx; echo x > /dev/null && head -c 4 /dev/zero | wc -c; test -c /dev/urandom && echo chr")
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "stdin"} {
		if !regexp.MustCompile(`(?m)^` + d + `$`).MatchString(devs) {
			t.Errorf("/dev/%s missing:\n%s", d, devs)
		}
	}
	if !strings.Contains(devs, "ptmx -> pts/ptmx") || !strings.Contains(devs, "\n4\n") || !strings.Contains(devs, "chr") {
		t.Errorf("/dev: %s", devs)
	}
	if r := nsbox(t, opts{}, "run", "--rootfs", rootfs, "--", "/bin/sh", "-c", "touch /sys/x"); r.code == 0 {
		t.Errorf("/sys is writable")
	}
}

func TestHostRootIsReadOnlyAndVisible(t *testing.T) {
	requireRoot(t)
	out := ok(t, opts{dir: "/usr/share"}, "run", "--", "/bin/sh", "-c", "test -x /usr/bin/env && echo visible; touch /usr/x 2>&1; pwd")
	if !strings.Contains(out, "visible") || !strings.Contains(out, "Read-only file system") {
		t.Errorf("host root in the box: %q", out)
	}
	if !strings.HasSuffix(out, "\n/usr/share\n") {
		t.Errorf("working directory: %q, want the caller's (/usr/share)", out)
	}
	// The caller's directory under /tmp does not exist in the box (its /tmp
	// is new): the box starts in / instead of failing.
	if out := ok(t, opts{}, "run", "--", "/bin/pwd"); out != "/\n" {
		t.Errorf("working directory under the box's own /tmp: %q, want /", out)
	}
}

func TestBindTmpfsWorkdirUserEnv(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o777) // writable for the box's user 1000
	os.WriteFile(filepath.Join(dir, "in"), []byte("hello\n"), 0o644)
	out := inBox(t, opts{env: []string{"FROM_HOST=1"}}, `cat /data/in; cat /ro/in; echo w > /data/out; touch /ro/x 2>/dev/null || echo ro-refused;
		touch /scratch/f && echo tmpfs-ok; pwd; id -u; id -g; echo $FOO $FROM_HOST`,
		"--bind", dir+":/data", "--bind", dir+":/ro:ro", "--tmpfs", "/scratch", "--workdir", "/scratch",
		"--user", "1000:1000", "--env", "FOO=bar", "--userns=host")
	want := "hello\nhello\nro-refused\ntmpfs-ok\n/scratch\n1000\n1000\nbar 1\n"
	if out != want {
		t.Errorf("inside:\n%s\nwant:\n%s", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "w\n" {
		t.Errorf("write through the bind: %q %v", b, err)
	}
	out = inBox(t, opts{env: []string{"FROM_HOST=1"}}, "tr '\\0' '\\n' < /proc/$$/environ; true", "--clear-env", "--env", "ONLY=1")
	if out != "ONLY=1\n" {
		t.Errorf("--clear-env: %q", out)
	}
}

func TestIDMappedBindBelongsToTheDirectoryOwner(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := os.Chown(dir, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	out := inBox(t, opts{}, "stat -c '%u:%g' /data; echo x > /data/f; mkdir /data/d; stat -c '%u:%g' /data/f", "--bind", dir+":/data")
	if out != "0:0\n0:0\n" {
		t.Errorf("inside, the directory and the new file should belong to root: %q", out)
	}
	for _, name := range []string{"f", "d"} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 4321 || st.Gid != 4322 {
			t.Errorf("%s on the host belongs to %d:%d, want the directory's owner 4321:4322", name, st.Uid, st.Gid)
		}
	}
	r := nsbox(t, opts{}, "run", "--bind", "/sys/kernel:/mnt", "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "id-mapped") {
		t.Errorf("id-mapped bind of sysfs: %s", r)
	}
}

func TestPipesAndStdin(t *testing.T) {
	requireRoot(t)
	r := nsbox(t, opts{stdin: "line one\nline two\n"}, "run", "--rootfs", rootfs, "--", "/bin/sh", "-c", "wc -l; tty || true")
	if !strings.HasPrefix(r.stdout, "2\nnot a tty") || r.code != 0 {
		t.Errorf("stdin through a pipe: %s", r)
	}
}

func TestDetachListKill(t *testing.T) {
	requireRoot(t)
	start := time.Now()
	id := strings.TrimSpace(ok(t, opts{}, "run", "-d", "--name", "det", "--rootfs", rootfs, "--", "/bin/sh", "-c", "echo to-log; exec sleep 60"))
	if id != "det" || time.Since(start) > 3*time.Second {
		t.Fatalf("detach printed %q after %v", id, time.Since(start))
	}
	list := ok(t, opts{}, "list")
	if !regexp.MustCompile(`(?m)^det\s+\d+\s+running`).MatchString(list) {
		t.Errorf("list:\n%s", list)
	}
	if q := ok(t, opts{}, "list", "-q"); q != "det\n" {
		t.Errorf("list -q: %q", q)
	}
	state := ok(t, opts{}, "state", "det")
	for _, f := range []string{`"ociVersion"`, `"id": "det"`, `"status": "running"`, `"pid"`} {
		if !strings.Contains(state, f) {
			t.Errorf("state lacks %s:\n%s", f, state)
		}
	}
	if r := nsbox(t, opts{}, "run", "-d", "--name", "det", "--rootfs", rootfs, "--", "/bin/true"); r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("duplicate name: %s", r)
	}
	if r := nsbox(t, opts{}, "delete", "det"); r.code == 0 || !strings.Contains(r.stderr, "running") {
		t.Errorf("delete of a running box: %s", r)
	}
	ok(t, opts{}, "kill", "det", "TERM")
	for i := 0; i < 100 && strings.TrimSpace(ok(t, opts{}, "list", "-q")) != ""; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if q := ok(t, opts{}, "list", "-q"); q != "" {
		t.Errorf("box still listed after kill: %q", q)
	}
	if r := nsbox(t, opts{}, "kill", "det"); r.code == 0 || !strings.Contains(r.stderr, "no such box") {
		t.Errorf("kill of a gone box: %s", r)
	}
}

func TestForegroundBoxDiesWithNsbox(t *testing.T) {
	requireRoot(t)
	cmd, _ := startReady(t, "run", "--name", "orphan", "--rootfs", rootfs, "--", "/bin/sh", "-c", "echo ready; exec sleep 60")
	pid := boxPid(t, opts{}, "orphan")
	cmd.Process.Kill() // SIGKILL: nsbox cannot clean up itself
	cmd.Wait()
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("box init %d outlived its nsbox", pid)
	}
	// The next command that lists boxes removes the record of the dead one.
	if q := ok(t, opts{}, "list", "-q"); q != "" {
		t.Errorf("list after the owner died: %q", q)
	}
}

func TestBadInput(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string // in the one line of stderr
	}{
		{[]string{"run"}, "no command"},
		{[]string{"run", "--"}, "no command"},
		{[]string{"run", "--no-such-flag", "--", "true"}, "unknown flag --no-such-flag"},
		{[]string{"run", "-Z", "--", "true"}, "unknown flag -Z"},
		{[]string{"run", "--rootfs", "/nonexistent", "--", "true"}, "/nonexistent"},
		{[]string{"run", "--bind", "/nonexistent:/x", "--", "true"}, "source /nonexistent"},
		{[]string{"run", "--bind", "/tmp", "--", "true"}, "SRC:DST"},
		{[]string{"run", "--time-offset", "monotonic=soon", "--", "true"}, "monotonic=soon"},
		{[]string{"run", "--time-offset", "uptime=5", "--", "true"}, "unknown clock"},
		{[]string{"run", "--userns", "0:1", "--", "true"}, "CONTAINER:HOST:SIZE"},
		{[]string{"run", "--userns", "0:100000:10,5:200000:10", "--", "true"}, "overlap"},
		{[]string{"run", "--share", "nope", "--", "true"}, "unknown namespace type"},
		{[]string{"run", "--ns", "net=" + dir, "--", "true"}, "not a namespace"},
		{[]string{"run", "--ns", "net=/proc/self/ns/user", "--", "true"}, "user namespace, not net"},
		{[]string{"run", "--user", "root", "--", "true"}, "numeric"},
		{[]string{"run", "--user", "70000", "--", "true"}, "does not exist in the box"},
		{[]string{"run", "--workdir", "relative", "--", "true"}, "absolute"},
		{[]string{"run", "--bind", dir + ":/nonexistent-mountpoint", "--", "true"}, "read-only"},
		{[]string{"run", "--name", "a/b", "--", "true"}, "invalid box id"},
		{[]string{"run", "two", "ids"}, "nsbox run [flags] -- CMD"},
		{[]string{"run", "lone-id"}, "nsbox run [flags] -- CMD"},
		{[]string{"run", "stray", "--", "true"}, "nsbox run [flags] -- CMD"},
		{[]string{"nosuchverb"}, "unknown command"},
	}
	for _, c := range cases {
		r := nsbox(t, opts{}, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 125 || len(lines) != 1 || !strings.Contains(r.stderr, c.want) || !strings.HasPrefix(r.stderr, "nsbox: ") {
			t.Errorf("nsbox %s: want exit 125 and one line with %q; got %s", strings.Join(c.args, " "), c.want, r)
		}
	}
}

func TestHelp(t *testing.T) {
	out := ok(t, opts{}, "run", "--help")
	for _, f := range []string{"--rootfs", "--bind", "--share", "--ns", "--userns", "--time-offset", "--no-init", "--detach", "--tty"} {
		if !strings.Contains(out, f) {
			t.Errorf("run --help does not mention %s", f)
		}
	}
	if out := ok(t, opts{}, "--help"); !strings.Contains(out, "nsbox run [flags] -- CMD") {
		t.Errorf("--help:\n%s", out)
	}
}

func TestProcOverASymlinkIsRefused(t *testing.T) {
	requireRoot(t)
	// A rootfs whose /proc points elsewhere must not get proc mounted there.
	evil := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", rootfs, evil).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	os.Remove(filepath.Join(evil, "proc"))
	os.Symlink("/etc", filepath.Join(evil, "proc"))
	r := nsbox(t, opts{}, "run", "--rootfs", evil, "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "/proc") || !strings.Contains(r.stderr, "symbolic link") {
		t.Errorf("/proc as a symlink: %s", r)
	}
}

// TestWorkdirWithTheHostsMounts: with the caller's mount namespace, the
// working directory is the caller's path, not that path beneath it.
func TestWorkdirWithTheHostsMounts(t *testing.T) {
	requireRoot(t)
	dir, err := os.MkdirTemp(work, "cwd-") // where the box's root may go
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if err := os.MkdirAll(filepath.Join(dir, dir), 0o755); err != nil { // a decoy: DIR/DIR
		t.Fatal(err)
	}
	out := ok(t, opts{dir: dir}, "run", "--share", "mnt", "--", "sh", "-c", "pwd; ls -a | wc -l")
	if f := strings.Fields(out); len(f) != 2 || f[0] != dir || f[1] != "3" {
		t.Errorf("working directory in a box with the host's mounts: %q, want %s holding only its decoy", out, dir)
	}
}

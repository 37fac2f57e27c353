package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// podmanEnv is a private podman: its own storage, run directory, config
// and network configuration, all in the test run's directory.
type podmanEnv struct {
	dir   string
	image string
}

var (
	podmanOnce sync.Once
	podmanErr  error
	pm         podmanEnv
)

// needClient fails (in CI) or skips a test whose client is not installed.
func needClient(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("NSBOX_REQUIRE_ALL") != "" {
				t.Fatalf("%s is not installed (test.sh installs it)", n)
			}
			t.Skipf("SKIPPED: %s is not installed", n)
		}
	}
}

// setupPodman imports the busybox rootfs as an image, once per run.
func setupPodman(t *testing.T) *podmanEnv {
	t.Helper()
	requireRoot(t)
	needClient(t, "podman", "conmon")
	podmanOnce.Do(func() {
		pm.dir = filepath.Join(work, "podman")
		pm.image = "localhost/nsbox-busybox:test"
		os.MkdirAll(filepath.Join(pm.dir, "net"), 0o755)
		conf := fmt.Sprintf(`[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
[network]
network_config_dir = %q
`, filepath.Join(pm.dir, "events.log"), filepath.Join(pm.dir, "net"))
		if podmanErr = os.WriteFile(filepath.Join(pm.dir, "containers.conf"), []byte(conf), 0o644); podmanErr != nil {
			return
		}
		tar := exec.Command("tar", "-C", rootfs, "-c", ".")
		imp := pm.cmd("import", "-", pm.image)
		imp.Stdin, _ = tar.StdoutPipe()
		var out bytes.Buffer
		imp.Stdout, imp.Stderr = &out, &out
		if podmanErr = imp.Start(); podmanErr == nil {
			if podmanErr = tar.Run(); podmanErr == nil {
				podmanErr = imp.Wait()
			}
		}
		if podmanErr != nil {
			podmanErr = fmt.Errorf("podman import: %v: %s", podmanErr, out.String())
		}
	})
	if podmanErr != nil {
		t.Fatal(podmanErr)
	}
	return &pm
}

func (p *podmanEnv) cmd(args ...string) *exec.Cmd {
	full := append([]string{"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"),
		"--runtime", bin, "--cgroup-manager", "cgroupfs"}, args...)
	c := exec.Command("podman", full...)
	c.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(p.dir, "containers.conf"), marker)
	return c
}

// run runs podman and returns its output and exit code.
func (p *podmanEnv) run(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	c := p.cmd(args...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("podman %v: %v", args, err)
	}
	return out.String(), code
}

func (p *podmanEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, code := p.run(t, "", args...)
	if code != 0 {
		t.Fatalf("podman %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// removeAfter removes container name when the test ends.
func (p *podmanEnv) removeAfter(t *testing.T, name string) {
	t.Cleanup(func() { p.run(t, "", "rm", "-f", "-t", "0", name) })
}

func TestPodmanRun(t *testing.T) {
	p := setupPodman(t)
	netState(t)
	if out := p.ok(t, "run", "--rm", p.image, "echo", "hello"); out != "hello\n" {
		t.Errorf("run: %q", out)
	}
	if _, code := p.run(t, "", "run", "--rm", p.image, "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	if out, _ := p.run(t, "line one\nline two\n", "run", "--rm", "-i", p.image, "wc", "-l"); strings.TrimSpace(out) != "2" {
		t.Errorf("-i with stdin: %q", out)
	}
	out := p.ok(t, "run", "--rm", "--user", "1000:1000", "--hostname", "hh", "-e", "FOO=bar", "-w", "/tmp", p.image,
		"sh", "-c", "id -u; id -g; hostname; echo $FOO; pwd")
	if out != "1000\n1000\nhh\nbar\n/tmp\n" {
		t.Errorf("--user --hostname -e -w: %q", out)
	}
	out = p.ok(t, "run", "--rm", "--read-only", p.image, "sh", "-c", "touch /x 2>&1; touch /tmp/y && echo tmp-ok")
	if !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "tmp-ok") {
		t.Errorf("--read-only: %q", out)
	}
	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "f"), []byte("volfile\n"), 0o644)
	out = p.ok(t, "run", "--rm", "-v", vol+":/data", "--tmpfs", "/scratch", p.image,
		"sh", "-c", "cat /data/f; echo w > /data/g; touch /scratch/z && echo tmpfs-ok")
	if out != "volfile\ntmpfs-ok\n" {
		t.Errorf("-v --tmpfs: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "g")); string(b) != "w\n" {
		t.Errorf("write through -v: %q", b)
	}
	if out := p.ok(t, "run", "--rm", "--cap-drop", "all", p.image, "grep", "CapEff", "/proc/self/status"); !strings.Contains(out, "0000000000000000") {
		t.Errorf("--cap-drop all: %q", out)
	}
	if out := p.ok(t, "run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", p.image, "cat", "/proc/sys/net/ipv4/ip_forward"); out != "1\n" {
		t.Errorf("--sysctl: %q", out)
	}
	out = p.ok(t, "run", "--rm", "--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536", p.image, "cat", "/proc/self/uid_map")
	if strings.Join(strings.Fields(out), " ") != "0 200000 65536" {
		t.Errorf("--uidmap: %q", out)
	}
}

func TestPodmanDetachedLifecycle(t *testing.T) {
	p := setupPodman(t)
	netState(t)
	p.removeAfter(t, "nsbox-d1")
	p.ok(t, "run", "-d", "--name", "nsbox-d1", p.image, "sh", "-c",
		`echo started; trap "echo got-term; exit 3" TERM; while :; do sleep 0.1; done`)
	if out := p.ok(t, "exec", "nsbox-d1", "sh", "-c", "echo exec-ok"); out != "exec-ok\n" {
		t.Errorf("exec: %q", out)
	}
	if out := p.ok(t, "exec", "-e", "X=1", "--user", "1000", "nsbox-d1", "sh", "-c", "id -u; echo $X"); out != "1000\n1\n" {
		t.Errorf("exec --user -e: %q", out)
	}
	if out := p.ok(t, "logs", "nsbox-d1"); !strings.Contains(out, "started") {
		t.Errorf("logs: %q", out)
	}
	if out := p.ok(t, "top", "nsbox-d1"); !strings.Contains(out, "sleep") {
		t.Errorf("top: %q", out)
	}
	p.ok(t, "pause", "nsbox-d1")
	if out := p.ok(t, "inspect", "--format", "{{.State.Status}}", "nsbox-d1"); strings.TrimSpace(out) != "paused" {
		t.Errorf("after pause: %q", out)
	}
	p.ok(t, "unpause", "nsbox-d1")
	if out := p.ok(t, "inspect", "--format", "{{.State.Status}}", "nsbox-d1"); strings.TrimSpace(out) != "running" {
		t.Errorf("after unpause: %q", out)
	}
	p.ok(t, "stop", "-t", "10", "nsbox-d1")
	if out := p.ok(t, "inspect", "--format", "{{.State.ExitCode}}", "nsbox-d1"); strings.TrimSpace(out) != "3" {
		t.Errorf("exit code after stop: %q", out)
	}
	if out := p.ok(t, "logs", "nsbox-d1"); !strings.Contains(out, "got-term") {
		t.Errorf("stop did not deliver SIGTERM: %q", out)
	}
	p.ok(t, "rm", "nsbox-d1")

	// kill -s reaches the container's process.
	p.removeAfter(t, "nsbox-d2")
	p.ok(t, "run", "-d", "--name", "nsbox-d2", p.image, "sh", "-c", `trap "exit 9" USR1; while :; do sleep 0.1; done`)
	time.Sleep(200 * time.Millisecond)
	p.ok(t, "kill", "-s", "USR1", "nsbox-d2")
	p.ok(t, "wait", "nsbox-d2")
	if out := p.ok(t, "inspect", "--format", "{{.State.ExitCode}}", "nsbox-d2"); strings.TrimSpace(out) != "9" {
		t.Errorf("exit code after kill -s USR1: %q", out)
	}
}

func TestPodmanTerminal(t *testing.T) {
	p := setupPodman(t)
	netState(t)
	c := p.cmd("run", "-it", "--rm", p.image, "sh")
	term := startTerminalCmd(t, c)
	term.expect("# ")
	term.send("tty; echo $TERM\n")
	term.expect("/dev/pts/0")
	term.send("sleep 30\n")
	time.Sleep(300 * time.Millisecond)
	term.send("\x03")
	term.send("echo status-$?\n")
	term.expect("status-130")
	term.send("exit 4\n")
	if code := term.wait(); code != 4 {
		t.Errorf("exit status %d, want 4", code)
	}
}

func TestPodmanPublishedPort(t *testing.T) {
	p := setupPodman(t)
	netState(t)
	www := t.TempDir()
	os.Chmod(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from a box\n"), 0o644)
	p.removeAfter(t, "nsbox-web")
	p.ok(t, "run", "-d", "--name", "nsbox-web", "-p", "127.0.0.1:18089:80", "-v", www+":/www:ro", p.image,
		"httpd", "-f", "-p", "80", "-h", "/www")
	if out := p.ok(t, "exec", "nsbox-web", "cat", "/proc/net/route"); !strings.Contains(out, "eth0") {
		t.Errorf("no eth0 route in the box's network namespace:\n%s", out)
	}
	var body string
	for i := 0; i < 50; i++ {
		out, err := exec.Command("busybox", "wget", "-qO-", "http://127.0.0.1:18089/").CombinedOutput()
		if err == nil {
			body = string(out)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "hello from a box\n" {
		t.Errorf("published port: %q", body)
	}
}

// netState restores the host's nftables tables after a test that lets
// netavark configure the network: it leaves its iptables-nft tables.
func netState(t *testing.T) {
	t.Helper()
	before := nftTables()
	links := linkNames()
	t.Cleanup(func() {
		for table := range nftTables() {
			if !before[table] {
				exec.Command("nft", "delete", "table", strings.Fields(table)[0], strings.Fields(table)[1]).Run()
			}
		}
		for l := range linkNames() {
			if !links[l] && (l == "podman0" || strings.HasPrefix(l, "veth")) {
				exec.Command("ip", "link", "del", l).Run()
			}
		}
	})
}

func nftTables() map[string]bool {
	out, _ := exec.Command("nft", "list", "tables").Output()
	set := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			set[f[1]+" "+f[2]] = true
		}
	}
	return set
}

func linkNames() map[string]bool {
	out, _ := exec.Command("ip", "-o", "link").Output()
	set := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			set[strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]] = true
		}
	}
	return set
}

// Package tests drives the built nsbox binary as users do and checks the
// results from inside the box. As root (as in CI) every test runs; without
// root the privileged tests skip, and fail instead when NSBOX_REQUIRE_ALL is
// set, so that a skip can never hide a regression in CI.
package tests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/testenv"
)

var (
	bin       string // the nsbox binary under test
	rootfs    string // a busybox root filesystem
	stateRoot string // --root of every box the tests start
	work      string // temporary directory of the whole run
	marker    string // environment entry carried by every process the tests start
	users     = map[string]*testUser{}
	inGuest   = os.Getenv(testenv.GuestEnv) != "" // inside the VM of vm_test.go
)

// testUser is an unprivileged account made for the rootless tests.
type testUser struct {
	name     string
	uid, gid int
	home     string
}

const (
	userFull   = "nsbox-t-full" // has /etc/subuid and /etc/subgid ranges
	userSingle = "nsbox-t-one"  // has none: single-id maps
)

func TestMain(m *testing.M) {
	if os.Getenv("NSBOX_HELPER") != "" {
		// The test binary itself, run inside a box as a helper.
		os.Exit(m.Run())
	}
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test setup:", err)
		teardown()
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	teardown()
	os.Exit(code)
}

func setup() (int, error) {
	var err error
	work, err = os.MkdirTemp("", "nsbox-tests-")
	if err != nil {
		return 0, err
	}
	// Everyone must reach the binary and the rootfs (rootless tests).
	if err := os.Chmod(work, 0o755); err != nil {
		return 0, err
	}
	marker = "NSBOX_TEST_RUN=" + filepath.Base(work)
	bin = filepath.Join(work, "nsbox")
	if inGuest {
		// The VM of vm_test.go: no Go toolchain, the binary is given.
		bin = os.Getenv(testenv.GuestBinEnv)
	} else {
		build := exec.Command("go", "build", "-o", bin, "../cmd/nsbox")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build nsbox: %v\n%s", err, out)
		}
	}
	if rootfs, err = testenv.BusyboxRootfs(filepath.Join(work, "rootfs")); err != nil {
		return 0, err
	}
	stateRoot = filepath.Join(work, "state")
	recordCgroups()
	// The guest has no useradd: the tests it runs need no test users.
	if os.Geteuid() == 0 && !inGuest {
		if err := addUser(userFull, true); err != nil {
			return 0, err
		}
		if err := addUser(userSingle, false); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// clientCgroups are the parent cgroups podman and containerd give the
// boxes they start (the runtime creates them); removed at the end unless
// they were there before.
var clientCgroups = []string{"libpod_parent", "default"}

// preexisting records which of clientCgroups existed before the run.
var preexisting = map[string]bool{}

func recordCgroups() {
	for _, name := range clientCgroups {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
		preexisting[name] = len(dirs) > 0
	}
}

// removeClientCgroups removes the parent cgroups the clients' boxes left,
// children first, if they hold no process.
func removeClientCgroups() {
	for _, name := range clientCgroups {
		if preexisting[name] {
			continue
		}
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
		for _, d := range dirs {
			var all []string
			filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					all = append(all, p)
				}
				return nil
			})
			for i := len(all) - 1; i >= 0; i-- {
				syscall.Rmdir(all[i])
			}
		}
	}
}

func teardown() {
	defer removeClientCgroups()
	if pm.dir != "" {
		c := pm.cmd("system", "reset", "--force")
		c.Run()
	}
	stopContainerd()
	for _, u := range users {
		exec.Command("userdel", "-r", u.name).Run()
		dropSubIDs(u.name)
		os.RemoveAll(filepath.Join(os.TempDir(), "nsbox-"+strconv.Itoa(u.uid)))
	}
	if work != "" {
		os.RemoveAll(work)
	}
}

// addUser creates an unprivileged user; with sub, it gets 65536 subordinate
// ids in /etc/subuid and /etc/subgid, otherwise none.
func addUser(name string, sub bool) error {
	exec.Command("userdel", "-r", name).Run() // a leftover of a killed run
	dropSubIDs(name)
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		return fmt.Errorf("useradd %s: %v: %s", name, err, out)
	}
	dropSubIDs(name) // useradd may have added ranges
	if sub {
		start := 3000000 + 65536*len(users)
		for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
			fh, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			fmt.Fprintf(fh, "%s:%d:65536\n", name, start)
			fh.Close()
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	users[name] = &testUser{name: name, uid: uid, gid: gid, home: u.HomeDir}
	return nil
}

func dropSubIDs(name string) {
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var keep []string
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if line != "" && !strings.HasPrefix(line, name+":") {
				keep = append(keep, line)
			}
		}
		out := strings.Join(keep, "\n")
		if out != "" {
			out += "\n"
		}
		os.WriteFile(f, []byte(out), 0o644)
	}
}

// requireRoot skips a test that needs root, loudly, or fails it when
// NSBOX_REQUIRE_ALL is set (as in CI).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NSBOX_REQUIRE_ALL") != "" {
		t.Fatal("this test needs root and NSBOX_REQUIRE_ALL forbids skipping it")
	}
	t.Skip("SKIPPED: needs root (run the suite as root, as CI does)")
}

// result is what one nsbox invocation did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// opts tune an invocation.
type opts struct {
	as    string // run as this test user (rootless)
	stdin string
	env   []string
	root  string // --root (default: the shared test state root)
	dir   string // working directory of nsbox
	// files captures the output through files instead of pipes: for verbs
	// that leave a process holding nsbox's stdout and stderr (create, a
	// detached run or exec), whose pipes would never reach their end.
	files bool
	extra []*os.File // descriptors 3, 4, ... of nsbox
}

// nsbox runs the binary with args and returns what it did. Every box it
// starts is checked for leftovers when the test ends.
func nsbox(t *testing.T, o opts, args ...string) result {
	t.Helper()
	root := o.root
	if root == "" {
		root = stateRoot
		if o.as != "" {
			root = filepath.Join(work, "state-"+o.as)
		}
	}
	full := append([]string{"--root", root}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Dir = work
	if o.dir != "" {
		cmd.Dir = o.dir
	}
	cmd.Env = append(os.Environ(), marker)
	cmd.Env = append(cmd.Env, o.env...)
	if o.as != "" {
		u := users[o.as]
		if u == nil {
			t.Fatalf("no test user %s", o.as)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}}
		cmd.Env = append(cmd.Env, "HOME="+u.home, "USER="+u.name, "XDG_RUNTIME_DIR=")
		cmd.Dir = "/"
		ensureState(t, root, u)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var outFile, errFile *os.File
	if o.files {
		dir := t.TempDir()
		var err1, err2 error
		outFile, err1 = os.Create(filepath.Join(dir, "stdout"))
		errFile, err2 = os.Create(filepath.Join(dir, "stderr"))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		defer outFile.Close()
		defer errFile.Close()
		cmd.Stdout, cmd.Stderr = outFile, errFile
	}
	cmd.ExtraFiles = o.extra
	if o.stdin != "" {
		cmd.Stdin = strings.NewReader(o.stdin)
	}
	watchLeftovers(t)
	err := cmd.Run()
	if o.files {
		// What nsbox wrote before it exited (its box may write on).
		b1, _ := os.ReadFile(outFile.Name())
		b2, _ := os.ReadFile(errFile.Name())
		stdout.Write(b1)
		stderr.Write(b2)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			t.Fatalf("nsbox %v: %v", args, err)
		}
	}
	return r
}

func ensureState(t *testing.T, root string, u *testUser) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(root, u.uid, u.gid)
}

// startReady starts nsbox with args (whose command prints "ready" first)
// and returns once the box runs, with the rest of its output to read.
func startReady(t *testing.T, args ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", stateRoot}, args...)...)
	cmd.Env = append(os.Environ(), marker)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	watchLeftovers(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("box did not start: %q %v", buf, err)
	}
	return cmd, stdout
}

// readWithin reads once from r into buf, failing the test if nothing comes
// within d.
func readWithin(t *testing.T, r io.Reader, buf []byte, d time.Duration) int {
	t.Helper()
	got := make(chan int, 1)
	go func() {
		n, _ := r.Read(buf)
		got <- n
	}()
	select {
	case n := <-got:
		return n
	case <-time.After(d):
		t.Fatalf("no output within %v", d)
		return 0
	}
}

// ok runs nsbox and requires success; it returns standard output.
func ok(t *testing.T, o opts, args ...string) string {
	t.Helper()
	r := nsbox(t, o, args...)
	if r.code != 0 {
		t.Fatalf("nsbox %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// inBox runs a shell script in a box over the busybox rootfs.
func inBox(t *testing.T, o opts, script string, flags ...string) string {
	t.Helper()
	args := append([]string{"run", "--rootfs", rootfs}, flags...)
	args = append(args, "--", "/bin/sh", "-c", script)
	return ok(t, o, args...)
}

// hostNS returns the inode link of the test process's namespace of a type.
func hostNS(t *testing.T, name string) string {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var watched = map[*testing.T]bool{}

// watchLeftovers registers, once per test, a check that the test left no
// mounts, state, processes or id ranges behind.
func watchLeftovers(t *testing.T) {
	if watched[t] {
		return
	}
	watched[t] = true
	before := mountSet(t)
	t.Cleanup(func() {
		delete(watched, t)
		// Give boxes killed by the test a moment to be torn down.
		deadline := time.Now().Add(3 * time.Second)
		for {
			// Records of boxes whose nsbox was killed are reclaimed by the
			// next command that lists boxes, as documented.
			roots, _ := filepath.Glob(filepath.Join(work, "state*"))
			for _, root := range roots {
				exec.Command(bin, "--root", root, "list").Run()
			}
			left := leftovers(before)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leftovers after the test:\n  %s", strings.Join(left, "\n  "))
				killMarked()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func leftovers(before map[string]bool) []string {
	var left []string
	for m := range mountSet(nil) {
		if !before[m] {
			left = append(left, "mount: "+m)
		}
	}
	for _, pid := range markedPids() {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		left = append(left, fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
	}
	roots, _ := filepath.Glob(filepath.Join(work, "state*"))
	for _, root := range roots {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.Name() == ".userns" {
				ranges, _ := os.ReadDir(filepath.Join(root, e.Name()))
				for _, r := range ranges {
					if r.Name() != ".lock" {
						left = append(left, "id range: "+filepath.Join(root, e.Name(), r.Name()))
					}
				}
				continue
			}
			left = append(left, "state: "+filepath.Join(root, e.Name()))
		}
	}
	return left
}

// mountSet is the host's mount table (mount point + source) as a set.
func mountSet(t *testing.T) map[string]bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil && t != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			set[f[4]+" "+f[3]] = true
		}
	}
	return set
}

// markedPids lists the processes that carry this run's marker: every
// process a test started, including those inside boxes.
func markedPids() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		if bytes.Contains(env, []byte(marker+"\x00")) {
			stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue // a zombie waiting for its parent
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// killMarked ends the processes this run started, by pid.
func killMarked() {
	for _, pid := range markedPids() {
		unix.Kill(pid, unix.SIGKILL)
	}
}

package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// consoleSocket listens on a unix socket, as conmon and containerd's shim
// do, for the master of a box's terminal sent with SCM_RIGHTS.
func consoleSocket(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan *os.File, 1)
	go func() {
		defer close(got)
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4*4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "console")
	}()
	return path, got
}

// consoleOutput collects what a terminal's master reads.
type consoleOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func readConsole(t *testing.T, got <-chan *os.File) *consoleOutput {
	t.Helper()
	var master *os.File
	select {
	case master = <-got:
	case <-time.After(10 * time.Second):
	}
	if master == nil {
		t.Fatal("no terminal master arrived on the console socket")
	}
	t.Cleanup(func() { master.Close() })
	out := &consoleOutput{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			out.mu.Lock()
			out.buf.Write(b[:n])
			out.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return out
}

// expect waits until the terminal has shown every one of want.
func (c *consoleOutput) expect(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		s := c.buf.String()
		c.mu.Unlock()
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; got %q", missing, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOCIConsoleSocket(t *testing.T) {
	requireRoot(t)
	id := boxID("console")
	b := newBundle(t, []string{"sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; stty size; echo hello-console; exec sleep 600"},
		func(s *specs.Spec) {
			s.Process.Terminal = true
			s.Process.ConsoleSize = &specs.Box{Height: 30, Width: 90}
		})
	// Without a socket nobody would hold the terminal of a created box.
	noSocket := boxID("console")
	r := nsbox(t, opts{files: true}, "create", "--bundle", b, noSocket)
	removeAtEnd(t, opts{}, noSocket)
	wantError(t, "create with a terminal and no --console-socket", r, "console-socket")

	sock, got := consoleSocket(t)
	ociCreate(t, opts{}, id, b, "--console-socket", sock)
	console := readConsole(t, got)
	ok(t, opts{}, "start", id)
	console.expect(t, "on-a-tty", "30 90", "hello-console")

	// A process started by exec gets a terminal of its own, sent likewise.
	sock2, got2 := consoleSocket(t)
	r = nsbox(t, opts{files: true}, "exec", "--tty", "--detach", "--console-socket", sock2, id, "sh", "-c", "tty; echo exec-console")
	if r.code != 0 {
		t.Fatalf("exec --tty --console-socket: %s", r)
	}
	readConsole(t, got2).expect(t, "/dev/pts/", "exec-console")

	ok(t, opts{}, "kill", id, "KILL")
	waitStatus(t, opts{}, id, specs.StateStopped)
	ok(t, opts{}, "delete", id)
}

// listFDs prints the descriptors the shell has open (no helper process, so
// no descriptor of its own in the list).
const listFDs = `for i in $(seq 0 40); do [ -e /proc/$$/fd/$i ] && echo -n "$i "; done; echo`

func TestOCIPreserveFDs(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	three, four := filepath.Join(dir, "three"), filepath.Join(dir, "four")
	os.WriteFile(three, []byte("fd-three\n"), 0o644)
	os.WriteFile(four, []byte("fd-four\n"), 0o644)
	f3, _ := os.Open(three)
	f4, _ := os.Open(four)
	defer f3.Close()
	defer f4.Close()
	b := newBundle(t, []string{"sh", "-c", listFDs + `; cat <&3; env | grep ^LISTEN_ | sort; echo pid=$$`})

	r := ociRun(t, opts{extra: []*os.File{f3, f4}}, boxID("fds"), b, "--preserve-fds", "1")
	if want := "0 1 2 3 \nfd-three\npid=1\n"; r.stdout != want {
		t.Errorf("--preserve-fds 1 with descriptors 3 and 4 open: %s\nwant stdout:\n%s", r, want)
	}
	r = ociRun(t, opts{extra: []*os.File{f3, f4}}, boxID("fds"), b)
	if !strings.HasPrefix(r.stdout, "0 1 2 \n") || strings.Contains(r.stdout, "fd-") {
		t.Errorf("without --preserve-fds, descriptors 3 and 4 open: %s", r)
	}

	// Socket activation: LISTEN_FDS descriptors for nsbox's own pid pass
	// through, and the box's command learns it is their LISTEN_PID.
	activated := func(listenPid string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", `exec env LISTEN_PID=`+listenPid+` LISTEN_FDS=1 "$0" --root "$1" run --bundle "$2" "$3" 3<"$4"`,
			bin, stateRoot, b, boxID("listen"), three)
		cmd.Env = append(os.Environ(), marker)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		watchLeftovers(t)
		if err := cmd.Run(); err != nil {
			t.Fatalf("LISTEN_PID=%s: %v: %s", listenPid, err, stderr.String())
		}
		return stdout.String()
	}
	if out, want := activated("$$"), "0 1 2 3 \nfd-three\nLISTEN_FDS=1\nLISTEN_PID=1\npid=1\n"; out != want {
		t.Errorf("LISTEN_PID of nsbox, LISTEN_FDS=1: box shows\n%s\nwant\n%s", out, want)
	}
	if out, want := activated("1"), "0 1 2 \npid=1\n"; out != want {
		t.Errorf("LISTEN_PID of another process: box shows\n%s\nwant\n%s", out, want)
	}
}

// progress reads the counter a box writes to a bind-mounted file.
func progress(t *testing.T, path string) int {
	t.Helper()
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func TestOCIExecPsPause(t *testing.T) {
	requireRoot(t)
	share := t.TempDir()
	count := filepath.Join(share, "count")
	id := boxID("exec")
	b := newBundle(t, []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /mnt/count.new; mv /mnt/count.new /mnt/count; sleep 0.02; done"},
		withBind(share, "/mnt"))
	r := nsbox(t, opts{files: true}, "run", "--detach", "--bundle", b, id)
	removeAtEnd(t, opts{}, id)
	if r.code != 0 {
		t.Fatalf("run --detach: %s", r)
	}
	st := ociState(t, opts{}, id)
	if st.Status != specs.StateRunning {
		t.Fatalf("after run --detach: %+v", st)
	}
	waitFile(t, count)

	// exec joins the box's namespaces, with the flags' changes.
	mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", st.Pid))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{id, "readlink", "/proc/self/ns/mnt"}, mnt},
		{[]string{"--env", "FOO=bar", id, "sh", "-c", "echo $FOO"}, "bar"},
		{[]string{"--user", "1000:1000", id, "sh", "-c", "echo $(id -u) $(id -g)"}, "1000 1000"},
		{[]string{"--cwd", "/etc", id, "pwd"}, "/etc"},
	} {
		out := ok(t, opts{}, append([]string{"exec"}, c.args...)...)
		if strings.TrimSpace(out) != c.want {
			t.Errorf("exec %v: %q, want %q", c.args, out, c.want)
		}
	}
	if r := nsbox(t, opts{}, "exec", id, "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exec of a command that exits 7: %s", r)
	}
	proc := filepath.Join(t.TempDir(), "process.json")
	p := specs.Process{Args: []string{"sh", "-c", "echo $X $(id -u) $(pwd)"}, Env: []string{"X=from-process-json", "PATH=/bin", marker},
		Cwd: "/tmp", User: specs.User{UID: 1000, GID: 1000}}
	pj, _ := json.Marshal(p)
	os.WriteFile(proc, pj, 0o644)
	if out := ok(t, opts{}, "exec", "--process", proc, id); strings.TrimSpace(out) != "from-process-json 1000 /tmp" {
		t.Errorf("exec --process: %q", out)
	}

	// A detached exec: its pid in the pid file, in the box, listed by ps.
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	if r := nsbox(t, opts{files: true}, "exec", "--detach", "--pid-file", pidFile, id, "sleep", "600"); r.code != 0 {
		t.Fatalf("exec --detach: %s", r)
	}
	pb, _ := os.ReadFile(pidFile)
	execPid, _ := strconv.Atoi(strings.TrimSpace(string(pb)))
	if execPid <= 0 || !alive(execPid) {
		t.Fatalf("exec --detach --pid-file: pid %q is not running", pb)
	}
	if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", execPid)); l != hostNSOf(t, st.Pid, "pid") {
		t.Errorf("detached exec's pid namespace %s, box's %s", l, hostNSOf(t, st.Pid, "pid"))
	}
	var pids []int
	out := ok(t, opts{}, "ps", "--format", "json", id)
	if err := json.Unmarshal([]byte(out), &pids); err != nil || !slices.Contains(pids, st.Pid) || !slices.Contains(pids, execPid) {
		t.Errorf("ps --format json: %q (%v), want pids %d and %d among them", out, err, st.Pid, execPid)
	}
	table := ok(t, opts{}, "ps", id)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !strings.Contains(lines[0], "PID") || !strings.Contains(table, " "+strconv.Itoa(execPid)+" ") || !strings.Contains(table, "sleep 600") {
		t.Errorf("ps %s:\n%s", id, table)
	}

	// Pause freezes the box: no progress until resume.
	ok(t, opts{}, "pause", id)
	if st := ociState(t, opts{}, id); st.Status != "paused" {
		t.Errorf("after pause: %s", st.Status)
	}
	time.Sleep(100 * time.Millisecond)
	n := progress(t, count)
	time.Sleep(500 * time.Millisecond)
	if m := progress(t, count); m != n {
		t.Errorf("paused box counted from %d to %d", n, m)
	}
	wantError(t, "exec into a paused box", nsbox(t, opts{}, "exec", id, "true"), id)
	wantError(t, "second pause", nsbox(t, opts{}, "pause", id), id)
	ok(t, opts{}, "resume", id)
	wantError(t, "resume of a running box", nsbox(t, opts{}, "resume", id), id)
	time.Sleep(500 * time.Millisecond)
	if m := progress(t, count); m <= n {
		t.Errorf("resumed box did not count on: %d then %d", n, m)
	}
	if st := ociState(t, opts{}, id); st.Status != specs.StateRunning {
		t.Errorf("after resume: %s", st.Status)
	}

	// Kill, then delete: every process of the box is gone.
	ok(t, opts{}, "kill", id, "KILL")
	waitStatus(t, opts{}, id, specs.StateStopped)
	wantError(t, "exec into a stopped box", nsbox(t, opts{}, "exec", id, "true"), id)
	ok(t, opts{}, "delete", id)
	if alive(execPid) || alive(st.Pid) {
		t.Errorf("processes %d/%d outlived the box", st.Pid, execPid)
	}
	noRecord(t, opts{}, id)
}

func hostNSOf(t *testing.T, pid int, name string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestOCISessionKeyring(t *testing.T) {
	requireRoot(t)
	share := t.TempDir()
	// The template masks /proc/keys: unmask it to look at the keyrings.
	b := newBundle(t, []string{"sh", "-c", "cat /proc/keys > /mnt/keys-$(hostname); cat /proc/keys"}, withBind(share, "/mnt"),
		func(s *specs.Spec) {
			s.Linux.MaskedPaths = slices.DeleteFunc(s.Linux.MaskedPaths, func(p string) bool { return p == "/proc/keys" })
			s.Hostname = "keys"
		})
	for _, noNew := range []bool{false, true} {
		var flags []string
		if noNew {
			flags = []string{"--no-new-keyring"}
		}
		// With run.
		id := boxID("keyring")
		r := ociRun(t, opts{}, id, b, flags...)
		if has := strings.Contains(r.stdout, " _ses."+id+":"); has == noNew || r.code != 0 {
			t.Errorf("run %v: session keyring _ses.%s in the box: %v\n%s", flags, id, has, r)
		}
		// With create and start.
		id = boxID("keyring")
		ociCreate(t, opts{}, id, b, flags...)
		ok(t, opts{}, "start", id)
		waitStatus(t, opts{}, id, specs.StateStopped)
		keys := waitFile(t, filepath.Join(share, "keys-keys"))
		os.Remove(filepath.Join(share, "keys-keys"))
		if has := strings.Contains(keys, " _ses."+id+":"); has == noNew {
			t.Errorf("create %v: session keyring _ses.%s in the box: %v\n%s", flags, id, has, keys)
		}
		ok(t, opts{}, "delete", id)
	}
}

func TestOCINoPivot(t *testing.T) {
	requireRoot(t)
	var root syscall.Stat_t
	if err := syscall.Stat(rootfs, &root); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d\nno-shadow\n", root.Dev, root.Ino)
	b := newBundle(t, []string{"sh", "-c", "stat -c '%d %i' /; [ -e /etc/shadow ] || echo no-shadow"})
	if r := ociRun(t, opts{}, boxID("nopivot"), b, "--no-pivot"); r.stdout != want {
		t.Errorf("run --no-pivot: %s\nwant the bundle's rootfs in stdout: %q", r, want)
	}
	share := t.TempDir()
	b = newBundle(t, []string{"sh", "-c", "(stat -c '%d %i' /; [ -e /etc/shadow ] || echo no-shadow) > /mnt/root"}, withBind(share, "/mnt"))
	id := boxID("nopivot")
	ociCreate(t, opts{}, id, b, "--no-pivot")
	ok(t, opts{}, "start", id)
	waitStatus(t, opts{}, id, specs.StateStopped)
	if out := waitFile(t, filepath.Join(share, "root")); out != want {
		t.Errorf("create --no-pivot: root of the box %q, want the bundle's rootfs %q", out, want)
	}
	// exec lands in the box's root too (setns puts a process on the top
	// mount of its new namespace's root, where --no-pivot moved the root).
	b = newBundle(t, []string{"sleep", "600"})
	id = boxID("nopivot")
	ociCreate(t, opts{}, id, b, "--no-pivot")
	ok(t, opts{}, "start", id)
	if out := ok(t, opts{}, "exec", id, "sh", "-c", "stat -c '%d %i' /; [ -e /etc/shadow ] || echo no-shadow"); out != want {
		t.Errorf("exec into a --no-pivot box: %q, want the bundle's rootfs %q", out, want)
	}
}

func TestOCISystemdCgroupRefused(t *testing.T) {
	requireRoot(t)
	b := newBundle(t, []string{"true"})
	for _, verb := range []string{"create", "run"} {
		id := boxID("systemd")
		r := nsbox(t, opts{files: true}, "--systemd-cgroup", verb, "--bundle", b, id)
		removeAtEnd(t, opts{}, id)
		wantError(t, "--systemd-cgroup "+verb, r, "--systemd-cgroup")
		noRecord(t, opts{}, id)
		noCgroup(t, id)
	}
}

func TestOCIRootlessSpec(t *testing.T) {
	requireRoot(t) // to create the users; the boxes run unprivileged
	for _, name := range []string{userFull, userSingle} {
		u := users[name]
		o := opts{as: name}
		dir := filepath.Join(work, "oci-rootless-"+name)
		os.RemoveAll(dir)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, u.uid, u.gid)
		t.Cleanup(func() { os.RemoveAll(dir) })
		ok(t, o, "spec", "--rootless", "--bundle", dir)
		s := readSpec(t, dir)
		if len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0].HostID != uint32(u.uid) ||
			len(s.Linux.GIDMappings) != 1 || s.Linux.GIDMappings[0].HostID != uint32(u.gid) {
			t.Errorf("spec --rootless by %s: maps %v %v", name, s.Linux.UIDMappings, s.Linux.GIDMappings)
		}
		s.Root.Path = rootfs
		s.Process.Terminal = false
		share := filepath.Join(dir, "share")
		os.Mkdir(share, 0o755)
		os.Chown(share, u.uid, u.gid)
		s.Process.Args = []string{"sh", "-c", "{ id -u; cat /proc/self/uid_map; echo rootless-ok; } | tee /mnt/out"}
		s.Process.Env = append(s.Process.Env, marker)
		withBind(share, "/mnt")(s)
		writeSpec(t, dir, s)
		want := fmt.Sprintf("0\n0 %d 1\nrootless-ok\n", u.uid)

		r := ociRun(t, o, boxID("rootless"), dir)
		if r.code != 0 || normalize(r.stdout) != want {
			t.Errorf("%s: run of a spec --rootless bundle: %s\nwant stdout:\n%s", name, r, want)
		}
		os.Remove(filepath.Join(share, "out"))
		id := boxID("rootless")
		ociCreate(t, o, id, dir)
		if st := ociState(t, o, id); st.Status != specs.StateCreated {
			t.Errorf("%s: after create: %+v", name, st)
		}
		ok(t, o, "start", id)
		waitStatus(t, o, id, specs.StateStopped)
		if out := normalize(waitFile(t, filepath.Join(share, "out"))); out != want {
			t.Errorf("%s: create and start of a spec --rootless bundle: box shows\n%s\nwant\n%s", name, out, want)
		}
		ok(t, o, "delete", id)
		noRecord(t, o, id)
	}
}

func TestOCIFeaturesAndSpec(t *testing.T) {
	requireRoot(t)
	out := ok(t, opts{}, "features")
	var f features.Features
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("features is not JSON: %v\n%s", err, out)
	}
	if f.OCIVersionMin != "1.0.0" || f.OCIVersionMax != specs.Version {
		t.Errorf("features: ociVersionMin %q, ociVersionMax %q; want 1.0.0 and %s", f.OCIVersionMin, f.OCIVersionMax, specs.Version)
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("features: hook %s missing from %v", h, f.Hooks)
		}
	}
	if f.Linux == nil || !slices.Contains(f.Linux.Namespaces, "user") {
		t.Errorf("features: linux namespaces %+v", f.Linux)
	}
	// spec writes a config of the version features announces, and refuses
	// to overwrite one.
	dir := t.TempDir()
	ok(t, opts{}, "spec", "--bundle", dir)
	if s := readSpec(t, dir); s.Version != f.OCIVersionMax {
		t.Errorf("spec writes ociVersion %s, features says %s", s.Version, f.OCIVersionMax)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	wantError(t, "spec over an existing config.json", nsbox(t, opts{}, "spec", "--bundle", dir), "config.json")
	if after, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(before, after) {
		t.Errorf("spec changed an existing config.json")
	}
}

func TestOCIConcurrentCreateStartDelete(t *testing.T) {
	requireRoot(t)
	share := t.TempDir()
	id := boxID("race")
	b := newBundle(t, []string{"sh", "-c", "echo $$ >> /mnt/starts; while true; do sleep 0.05; done"}, withBind(share, "/mnt"))

	// Ten concurrent creates of one id: exactly one box.
	var wg sync.WaitGroup
	results := make([]result, 10)
	nsbox(t, opts{}, "list") // registers the leftover check before the goroutines
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = nsbox(t, opts{files: true}, "create", "--bundle", b, id)
		}()
	}
	wg.Wait()
	removeAtEnd(t, opts{}, id)
	count := func(what string) {
		n := 0
		for _, r := range results {
			if r.code == 0 {
				n++
			} else {
				wantError(t, "concurrent "+what, r, id)
			}
		}
		if n != 1 {
			t.Errorf("%d of 10 concurrent %s succeeded, want exactly 1", n, what)
		}
	}
	count("create")
	st := ociState(t, opts{}, id)
	if st.Status != specs.StateCreated {
		t.Fatalf("after concurrent creates: %+v", st)
	}

	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = nsbox(t, opts{}, "start", id)
		}()
	}
	wg.Wait()
	count("start")
	time.Sleep(300 * time.Millisecond)
	if got := strings.Fields(waitFile(t, filepath.Join(share, "starts"))); len(got) != 1 {
		t.Errorf("the command started %d times: %v", len(got), got)
	}
	if st := ociState(t, opts{}, id); st.Status != specs.StateRunning {
		t.Errorf("after concurrent starts: %+v", st)
	}

	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = nsbox(t, opts{}, "delete", "--force", id)
		}()
	}
	wg.Wait()
	for _, r := range results {
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") || (r.code != 0 && r.code != 125) {
			t.Errorf("concurrent delete --force crashed: %s", r)
		}
	}
	if alive(st.Pid) {
		t.Errorf("box process %d outlived concurrent deletes", st.Pid)
	}
	noRecord(t, opts{}, id)
	noCgroup(t, id)
}

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The OCI runtime face of nsbox, driven as runc's clients drive it: bundles
// made with `nsbox spec`, then create, start, state, kill, delete and the
// rest, against runtime-spec's runtime.md and runc's command line.

var boxSeq atomic.Int64

// boxID returns an id no other box of this run has.
func boxID(tag string) string {
	return fmt.Sprintf("oci-%s-%d-%d", tag, os.Getpid(), boxSeq.Add(1))
}

// newBundle makes an OCI bundle in a temporary directory with `nsbox spec`,
// then adjusts its config.json: the shared busybox rootfs as a read-only
// root, no terminal, cmd as the command, the run's marker in its
// environment (so that the leftover check sees the box's processes), and
// whatever edits change.
func newBundle(t *testing.T, cmd []string, edits ...func(*specs.Spec)) string {
	t.Helper()
	dir := t.TempDir()
	ok(t, opts{}, "spec", "--bundle", dir)
	s := readSpec(t, dir)
	s.Root = &specs.Root{Path: rootfs, Readonly: true}
	s.Process.Terminal = false
	s.Process.Args = cmd
	s.Process.Env = append(s.Process.Env, marker)
	for _, edit := range edits {
		edit(s)
	}
	writeSpec(t, dir, s)
	return dir
}

func readSpec(t *testing.T, dir string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("config.json written by nsbox spec: %v", err)
	}
	return &s
}

func writeSpec(t *testing.T, dir string, s *specs.Spec) {
	t.Helper()
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// withBind bind-mounts the host directory src read-write at dst.
func withBind(src, dst string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rw"}})
	}
}

// ociCreate creates box id from bundle (removed with delete --force when the
// test ends) and returns what create printed.
func ociCreate(t *testing.T, o opts, id, bundle string, flags ...string) result {
	t.Helper()
	o.files = true
	args := append([]string{"create", "--bundle", bundle}, flags...)
	r := nsbox(t, o, append(args, id)...)
	removeAtEnd(t, o, id)
	if r.code != 0 {
		t.Fatalf("create %s: %s", id, r)
	}
	return r
}

// ociRun runs box id from bundle in the foreground (`run [flags] --bundle
// DIR ID`), and makes sure it is gone when the test ends.
func ociRun(t *testing.T, o opts, id, bundle string, flags ...string) result {
	t.Helper()
	args := append(append([]string{"run"}, flags...), "--bundle", bundle, id)
	r := nsbox(t, o, args...)
	removeAtEnd(t, o, id)
	return r
}

// removeAtEnd deletes box id when the test ends, then checks that its cgroup
// went with it.
func removeAtEnd(t *testing.T, o opts, id string) {
	t.Cleanup(func() {
		o.files = true
		nsbox(t, o, "delete", "--force", id)
		noCgroup(t, id)
	})
}

// ociState returns the state `nsbox state` prints for box id.
func ociState(t *testing.T, o opts, id string) specs.State {
	t.Helper()
	out := ok(t, o, "state", id)
	var st specs.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state %s is not JSON: %v\n%s", id, err, out)
	}
	return st
}

// waitStatus waits until box id has status want.
func waitStatus(t *testing.T, o opts, id string, want specs.ContainerState) specs.State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := ociState(t, o, id)
		if st.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("box %s is %s after 10s, want %s", id, st.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile waits until path exists and is not empty, and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 10s (%v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// wantError requires r to be a failure reported in one line of standard
// error that contains every one of words.
func wantError(t *testing.T, what string, r result, words ...string) {
	t.Helper()
	msg := strings.TrimSpace(r.stderr)
	switch {
	case r.code == 0:
		t.Errorf("%s succeeded, want an error: %s", what, r)
	case msg == "" || strings.Contains(msg, "\n"):
		t.Errorf("%s: want one line of error, got %s", what, r)
	default:
		for _, w := range words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not name %q", what, msg, w)
			}
		}
	}
}

// noCgroup fails the test if box id has a cgroup directory in any
// hierarchy (nsbox puts an OCI box without linux.cgroupsPath in /nsbox/ID).
func noCgroup(t *testing.T, id string) {
	t.Helper()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/nsbox/" + id)
	if exists("/sys/fs/cgroup/nsbox/" + id) {
		dirs = append(dirs, "/sys/fs/cgroup/nsbox/"+id)
	}
	if len(dirs) > 0 {
		t.Errorf("cgroup of box %s left behind: %v", id, dirs)
	}
}

// noRecord fails the test if box id is in the state directory.
func noRecord(t *testing.T, o opts, id string) {
	t.Helper()
	root := o.root
	if root == "" {
		root = stateRoot
		if o.as != "" {
			root = filepath.Join(work, "state-"+o.as)
		}
	}
	if exists(filepath.Join(root, id)) {
		t.Errorf("state of box %s left in %s", id, root)
	}
	if r := nsbox(t, o, "state", id); r.code == 0 {
		t.Errorf("state of box %s: %s", id, r)
	}
}

// listed is how `list`, `list --format json` and `list -q` show box id
// ("" when it is absent).
type listed struct{ table, json string }

func listOf(t *testing.T, o opts, id string) (l listed, quiet bool) {
	t.Helper()
	for _, line := range strings.Split(ok(t, o, "list"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == id {
			l.table = f[2]
		}
	}
	var entries []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	out := ok(t, o, "list", "--format", "json")
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("list --format json: %v\n%s", err, out)
	}
	for _, e := range entries {
		if e.ID == id {
			l.json = e.Status
		}
	}
	for _, line := range strings.Split(ok(t, o, "list", "-q"), "\n") {
		if strings.TrimSpace(line) == id {
			quiet = true
		}
	}
	return l, quiet
}

func wantListed(t *testing.T, id string, status specs.ContainerState) {
	t.Helper()
	l, quiet := listOf(t, opts{}, id)
	if l.table != string(status) || l.json != string(status) || !quiet {
		t.Errorf("list shows box %s as %q, json %q, -q %v: want %s", id, l.table, l.json, quiet, status)
	}
}

func TestOCILifecycle(t *testing.T) {
	requireRoot(t)
	share := t.TempDir()
	id := boxID("life")
	b := newBundle(t, []string{"sh", "-c",
		"echo ran > /mnt/ran; while [ ! -e /mnt/stop ]; do sleep 0.05; done; echo done > /mnt/done"},
		withBind(share, "/mnt"),
		func(s *specs.Spec) { s.Annotations = map[string]string{"org.nsbox.test": "lifecycle", "k": "v"} })

	ociCreate(t, opts{}, id, b)
	st := ociState(t, opts{}, id)
	if st.Status != specs.StateCreated || st.ID != id || st.Bundle != b || st.Version != specs.Version {
		t.Errorf("state after create: %+v", st)
	}
	if st.Annotations["org.nsbox.test"] != "lifecycle" || st.Annotations["k"] != "v" {
		t.Errorf("annotations in the state: %v", st.Annotations)
	}
	if st.Pid <= 0 {
		t.Fatalf("created box has pid %d", st.Pid)
	}
	// Its first process exists, in namespaces of its own, but the command
	// has not run.
	if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", st.Pid)); err != nil || l == hostNS(t, "pid") {
		t.Errorf("created box's process %d: pid namespace %q (%v), host %s", st.Pid, l, err, hostNS(t, "pid"))
	}
	time.Sleep(300 * time.Millisecond)
	if exists(filepath.Join(share, "ran")) {
		t.Errorf("the command ran before start")
	}
	wantListed(t, id, specs.StateCreated)

	ok(t, opts{}, "start", id)
	waitFile(t, filepath.Join(share, "ran"))
	if st2 := ociState(t, opts{}, id); st2.Status != specs.StateRunning || st2.Pid != st.Pid {
		t.Errorf("state after start: %+v (created with pid %d)", st2, st.Pid)
	}
	wantListed(t, id, specs.StateRunning)

	os.WriteFile(filepath.Join(share, "stop"), nil, 0o644)
	st = waitStatus(t, opts{}, id, specs.StateStopped)
	if st.Pid != 0 {
		t.Errorf("stopped box shows pid %d", st.Pid)
	}
	if !exists(filepath.Join(share, "done")) {
		t.Errorf("box stopped before its command finished")
	}
	wantListed(t, id, specs.StateStopped)

	ok(t, opts{}, "delete", id)
	wantError(t, "state of a deleted box", nsbox(t, opts{}, "state", id), id)
	if l, quiet := listOf(t, opts{}, id); l.table != "" || l.json != "" || quiet {
		t.Errorf("deleted box still listed: %+v -q %v", l, quiet)
	}
	noRecord(t, opts{}, id)
	noCgroup(t, id)
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}

func TestOCIWrongStateChangesNothing(t *testing.T) {
	requireRoot(t)
	share := t.TempDir()
	loop := newBundle(t, []string{"sh", "-c", "echo $$ >> /mnt/starts; while true; do sleep 0.05; done"}, withBind(share, "/mnt"))

	// Start twice: the second fails and the box runs on, once.
	id := boxID("twice")
	ociCreate(t, opts{}, id, loop)
	ok(t, opts{}, "start", id)
	wantError(t, "second start", nsbox(t, opts{}, "start", id), id)
	st := ociState(t, opts{}, id)
	time.Sleep(200 * time.Millisecond)
	if st.Status != specs.StateRunning || !alive(st.Pid) {
		t.Errorf("after a second start: %+v", st)
	}
	if got := strings.Fields(waitFile(t, filepath.Join(share, "starts"))); len(got) != 1 {
		t.Errorf("the command started %d times", len(got))
	}

	// Delete without --force fails on a running box; with it, succeeds.
	wantError(t, "delete of a running box", nsbox(t, opts{}, "delete", id), id)
	if st2 := ociState(t, opts{}, id); st2.Status != specs.StateRunning || !alive(st.Pid) {
		t.Errorf("after a refused delete: %+v", st2)
	}
	ok(t, opts{}, "delete", "--force", id)
	if alive(st.Pid) {
		t.Errorf("delete --force left the box's process %d", st.Pid)
	}
	noRecord(t, opts{}, id)

	// A stopped box can be neither started nor killed.
	id = boxID("stopped")
	ociCreate(t, opts{}, id, newBundle(t, []string{"true"}))
	ok(t, opts{}, "start", id)
	waitStatus(t, opts{}, id, specs.StateStopped)
	wantError(t, "start of a stopped box", nsbox(t, opts{}, "start", id), id)
	wantError(t, "kill of a stopped box", nsbox(t, opts{}, "kill", id), id)
	wantError(t, "kill KILL of a stopped box", nsbox(t, opts{}, "kill", id, "KILL"), id)
	if st := ociState(t, opts{}, id); st.Status != specs.StateStopped {
		t.Errorf("after refused operations: %+v", st)
	}
	ok(t, opts{}, "delete", id)

	// A second create with the same id fails and leaves the first box as it
	// was: created, with its pid and bundle, and startable.
	id = boxID("dup")
	first := newBundle(t, []string{"sh", "-c", "echo first > /mnt/dup"}, withBind(share, "/mnt"))
	second := newBundle(t, []string{"sh", "-c", "echo second > /mnt/dup"}, withBind(share, "/mnt"))
	ociCreate(t, opts{}, id, first)
	before := ociState(t, opts{}, id)
	wantError(t, "create with a duplicate id", nsbox(t, opts{files: true}, "create", "--bundle", second, id), id)
	wantError(t, "run with a duplicate id", ociRun(t, opts{}, id, second), id)
	after := ociState(t, opts{}, id)
	if after.Status != specs.StateCreated || after.Pid != before.Pid || after.Bundle != first || !alive(before.Pid) {
		t.Errorf("after a duplicate create: %+v, before %+v", after, before)
	}
	ok(t, opts{}, "start", id)
	if got := strings.TrimSpace(waitFile(t, filepath.Join(share, "dup"))); got != "first" {
		t.Errorf("the box's command wrote %q, want the first bundle's", got)
	}
	waitStatus(t, opts{}, id, specs.StateStopped)
	ok(t, opts{}, "delete", id)

	// Every verb refuses an unknown id, naming it.
	unknown := boxID("nosuchbox")
	for _, args := range [][]string{
		{"start", unknown}, {"state", unknown}, {"kill", unknown}, {"kill", unknown, "KILL"},
		{"delete", unknown}, {"pause", unknown}, {"resume", unknown}, {"ps", unknown},
		{"exec", unknown, "true"},
	} {
		wantError(t, strings.Join(args, " "), nsbox(t, opts{}, args...), unknown)
	}
	// As with runc, delete --force of a missing box succeeds.
	if r := nsbox(t, opts{}, "delete", "--force", unknown); r.code != 0 {
		t.Errorf("delete --force of a missing box: %s", r)
	}
	noRecord(t, opts{}, unknown)
}

func TestOCIBadConfig(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name string
		edit func(m map[string]any) // nil: not JSON at all
		want []string
	}{
		{"malformed JSON", nil, []string{"config.json"}},
		{"process.args a string", func(m map[string]any) { m["process"].(map[string]any)["args"] = "sh" }, []string{"process.args"}},
		{"ociVersion 2.0.0", func(m map[string]any) { m["ociVersion"] = "2.0.0" }, []string{"ociVersion", "2.0.0"}},
		{"no root.path", func(m map[string]any) { delete(m["root"].(map[string]any), "path") }, []string{"root.path"}},
		{"missing root", func(m map[string]any) { m["root"].(map[string]any)["path"] = "/nonexistent/nsbox-root" }, []string{"root.path", "/nonexistent"}},
		{"unknown namespace", func(m map[string]any) {
			l := m["linux"].(map[string]any)
			l["namespaces"] = append(l["namespaces"].([]any), map[string]any{"type": "bogusns"})
		}, []string{"bogusns"}},
	}
	good := newBundle(t, []string{"true"})
	raw, err := os.ReadFile(filepath.Join(good, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		dir := t.TempDir()
		b := []byte(`{"ociVersion": "1.0.2", "process": {`)
		if c.edit != nil {
			var m map[string]any
			json.Unmarshal(raw, &m)
			c.edit(m)
			b, _ = json.Marshal(m)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"create", "run"} {
			id := boxID("bad")
			r := nsbox(t, opts{files: true}, verb, "--bundle", dir, id)
			removeAtEnd(t, opts{}, id)
			wantError(t, c.name+": "+verb, r, c.want...)
			noRecord(t, opts{}, id)
			noCgroup(t, id)
		}
	}

	// An invalid signal changes nothing either.
	id := boxID("badsig")
	ociCreate(t, opts{}, id, newBundle(t, []string{"sleep", "60"}))
	st := ociState(t, opts{}, id)
	for _, sig := range []string{"SIGFOO", "FOO", "0", "65", "-9"} {
		wantError(t, "kill "+id+" "+sig, nsbox(t, opts{}, "kill", id, sig), sig)
	}
	if st2 := ociState(t, opts{}, id); st2.Status != specs.StateCreated || !alive(st.Pid) {
		t.Errorf("after invalid signals: %+v", st2)
	}
}

// hookLog is a host file the hooks of a test append to, one line per hook:
// its name and the state it read on its standard input.
type hookLog struct {
	path, script string
}

func newHookLog(t *testing.T) *hookLog {
	dir := t.TempDir()
	h := &hookLog{path: filepath.Join(dir, "hooks.log"), script: filepath.Join(dir, "hook.sh")}
	script := "#!/bin/sh\necho \"$1 $(cat)\" >> " + h.path + "\n"
	if err := os.WriteFile(h.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// hook records its name and state when run.
func (h *hookLog) hook(name string) specs.Hook {
	return specs.Hook{Path: h.script, Args: []string{"hook.sh", name}, Env: []string{marker, "PATH=/usr/bin:/bin"}}
}

type hookCall struct {
	name  string
	state specs.State
}

func (h *hookLog) calls(t *testing.T) []hookCall {
	t.Helper()
	b, _ := os.ReadFile(h.path)
	var out []hookCall
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		name, js, _ := strings.Cut(line, " ")
		c := hookCall{name: name}
		if err := json.Unmarshal([]byte(js), &c.state); err != nil {
			t.Errorf("hook %s read a state that is not JSON: %q", name, js)
		}
		out = append(out, c)
	}
	return out
}

func (h *hookLog) names(t *testing.T) string {
	var n []string
	for _, c := range h.calls(t) {
		n = append(n, c.name)
	}
	return strings.Join(n, " ")
}

func TestOCIHooks(t *testing.T) {
	requireRoot(t)
	share := t.TempDir()
	h := newHookLog(t)
	id := boxID("hooks")
	b := newBundle(t, []string{"sh", "-c", "while [ ! -e /mnt/stop ]; do sleep 0.05; done"}, withBind(share, "/mnt"),
		func(s *specs.Spec) {
			s.Annotations = map[string]string{"org.nsbox.test": "hooks"}
			s.Hooks = &specs.Hooks{
				Prestart:      []specs.Hook{h.hook("prestart")}, //nolint:staticcheck // deprecated, still in the spec
				CreateRuntime: []specs.Hook{h.hook("createRuntime")},
				Poststart:     []specs.Hook{h.hook("poststart")},
				Poststop:      []specs.Hook{h.hook("poststop")},
			}
		})
	ociCreate(t, opts{}, id, b)
	pid := ociState(t, opts{}, id).Pid
	if got := h.names(t); got != "prestart createRuntime" {
		t.Errorf("hooks run by create: %q", got)
	}
	ok(t, opts{}, "start", id)
	if got := h.names(t); got != "prestart createRuntime poststart" {
		t.Errorf("hooks run by create and start: %q", got)
	}
	os.WriteFile(filepath.Join(share, "stop"), nil, 0o644)
	waitStatus(t, opts{}, id, specs.StateStopped)
	ok(t, opts{}, "delete", id)
	want := []struct {
		name   string
		status specs.ContainerState
		pid    int
	}{
		{"prestart", specs.StateCreating, pid}, {"createRuntime", specs.StateCreating, pid},
		{"poststart", specs.StateRunning, pid}, {"poststop", specs.StateStopped, -1},
	}
	calls := h.calls(t)
	if len(calls) != len(want) {
		t.Fatalf("hooks run: %q, want %d", h.names(t), len(want))
	}
	for i, w := range want {
		c := calls[i]
		if c.name != w.name || c.state.Status != w.status || c.state.ID != id || c.state.Bundle != b ||
			(w.pid >= 0 && c.state.Pid != w.pid) || c.state.Annotations["org.nsbox.test"] != "hooks" {
			t.Errorf("hook %d: %s got %+v; want %s with status %s, id %s, pid %d", i, c.name, c.state, w.name, w.status, id, w.pid)
		}
	}
}

// TestOCIHookAsksForTheState: hooks that ask nsbox for the box's state while
// it is created get an answer — creating during create (it used to wait
// for the creation, which waited for the hook), running in poststart of
// run — instead of hanging until their timeout.
func TestOCIHookAsksForTheState(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	dir := t.TempDir()
	id := boxID("hookstate")
	ask := func(name string) specs.Hook {
		timeout := 5
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", bin + " --root " + stateRoot + " state " + id + " > " + filepath.Join(dir, name)},
			Timeout: &timeout}
	}
	b := newBundle(t, []string{"sleep", "0.5"}, func(s *specs.Spec) { // running while poststart asks
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{ask("createRuntime")}, Poststart: []specs.Hook{ask("poststart")}}
	})
	ok(t, opts{}, "run", "--bundle", b, id)
	for name, want := range map[string]specs.ContainerState{"createRuntime": specs.StateCreating, "poststart": specs.StateRunning} {
		out, _ := os.ReadFile(filepath.Join(dir, name))
		var st specs.State
		if err := json.Unmarshal(out, &st); err != nil || st.Status != want || st.ID != id {
			t.Errorf("%s hook asked for the state: %q (%v), want status %s", name, out, err, want)
		}
	}
}

// A failing poststart or poststop hook is a warning: the remaining hooks
// run and the lifecycle goes on (runtime.md, lifecycle steps 7 and 11).
func TestOCIFailingPoststartAndPoststopHooksWarn(t *testing.T) {
	requireRoot(t)
	h := newHookLog(t)
	fail := specs.Hook{Path: "/bin/false", Env: []string{marker}}
	id := boxID("warnhooks")
	b := newBundle(t, []string{"sleep", "60"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Poststart: []specs.Hook{fail, h.hook("poststart-after-failure")},
			Poststop:  []specs.Hook{fail, h.hook("poststop-after-failure")},
		}
	})
	ociCreate(t, opts{}, id, b)
	r := nsbox(t, opts{}, "start", id)
	if r.code != 0 || !strings.Contains(r.stderr, "poststart") {
		t.Errorf("start with a failing poststart hook: want success and a warning: %s", r)
	}
	if st := ociState(t, opts{}, id); st.Status != specs.StateRunning {
		t.Errorf("after a failing poststart hook the box is %s", st.Status)
	}
	ok(t, opts{}, "delete", "--force", id)
	if got := h.names(t); got != "poststart-after-failure poststop-after-failure" {
		t.Errorf("hooks after a failing one: ran %q, want poststart-after-failure poststop-after-failure", got)
	}
}

func TestOCIFailingCreateHooks(t *testing.T) {
	requireRoot(t)
	timeout := 1
	runtimeHook := func(h specs.Hook) *specs.Hooks { return &specs.Hooks{CreateRuntime: []specs.Hook{h}} }
	containerHook := func(h specs.Hook) *specs.Hooks { return &specs.Hooks{CreateContainer: []specs.Hook{h}} }
	sleeper := specs.Hook{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Env: []string{marker}, Timeout: &timeout}
	// A hook script whose child sleeps past the timeout: create still
	// fails at the timeout, and the child does not outlive it.
	script := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 10; echo done"}, Env: []string{marker}, Timeout: &timeout}
	for _, c := range []struct {
		name  string
		hooks *specs.Hooks
		want  []string
	}{
		{"createRuntime hook exits 1", runtimeHook(specs.Hook{Path: "/bin/false", Env: []string{marker}}), []string{"createRuntime", "/bin/false"}},
		{"prestart hook exits 1", &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/false", Env: []string{marker}}}}, //nolint:staticcheck // deprecated, still in the spec
			[]string{"prestart", "/bin/false"}},
		{"createRuntime hook sleeps past its timeout", runtimeHook(sleeper), []string{"createRuntime", "timed out"}},
		{"createRuntime hook script sleeps past its timeout", runtimeHook(script), []string{"createRuntime", "timed out"}},
		{"createContainer hook sleeps past its timeout", containerHook(sleeper), []string{"createContainer", "timed out"}},
		{"createContainer hook script sleeps past its timeout", containerHook(script), []string{"createContainer", "timed out"}},
	} {
		id := boxID("hookfail")
		b := newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Hooks = c.hooks })
		start := time.Now()
		r := nsbox(t, opts{files: true}, "create", "--bundle", b, id)
		took := time.Since(start)
		removeAtEnd(t, opts{}, id)
		wantError(t, "create with a "+c.name, r, c.want...)
		if took > 5*time.Second {
			t.Errorf("create with a %s took %v: want it to fail within a few seconds of the 1s timeout", c.name, took.Round(time.Millisecond))
		}
		noRecord(t, opts{}, id)
		noCgroup(t, id)
	}
}

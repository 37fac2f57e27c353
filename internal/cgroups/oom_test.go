package cgroups

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseInotify(t *testing.T) {
	var buf []byte
	add := func(wd int32, mask uint32, name string) {
		n := 0
		if name != "" {
			n = (len(name) + 16) &^ 15 // NUL-padded, as the kernel does
		}
		ev := unix.InotifyEvent{Wd: wd, Mask: mask, Len: uint32(n)}
		buf, _ = binary.Append(buf, binary.NativeEndian, &ev)
		buf = append(buf, make([]byte, n)...)
		copy(buf[len(buf)-n:], name)
	}
	add(1, unix.IN_MODIFY, "")
	add(2, unix.IN_DELETE|unix.IN_ISDIR, "nsbox-box")
	add(1, unix.IN_IGNORED, "")
	want := []inotifyEvent{{1, unix.IN_MODIFY, ""}, {2, unix.IN_DELETE | unix.IN_ISDIR, "nsbox-box"}, {1, unix.IN_IGNORED, ""}}
	if got := parseInotify(buf); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := parseInotify(buf[:20]); len(got) != 1 {
		t.Fatalf("truncated buffer: got %v, want the first event only", got)
	}
}

func TestOOMKillsFake(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		name  string
		v2    bool
		file  string
		data  string
		want  uint64
		unsup bool
	}{
		{"v2", true, "memory.events", "low 0\nhigh 0\nmax 9\noom 3\noom_kill 2\n", 2, false},
		{"v1", false, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n", 5, false},
		{"v1 before 4.13", false, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n", 0, true},
	} {
		mount := filepath.Join(root, tc.name)
		writeTree(t, mount, map[string]string{"box/" + tc.file: tc.data})
		l := &Layout{Hierarchies: []Hierarchy{{Mount: mount, Root: "/", V2: tc.v2, Controllers: []string{"memory"}}}}
		got, err := (&Manager{Layout: l, Path: "/box"}).OOMKills()
		if got != tc.want || errors.Is(err, errors.ErrUnsupported) != tc.unsup || (err != nil && !tc.unsup) {
			t.Errorf("%s: got %d, %v; want %d (unsupported: %v)", tc.name, got, err, tc.want, tc.unsup)
		}
	}
	_, err := (&Manager{Layout: &Layout{}, Path: "/box"}).OOMKills()
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("no memory controller: %v; want ErrUnsupported", err)
	}
}

// openFDs counts the test process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitEvent waits up to d for a value (true) or the close (false) of ch.
func waitEvent(t *testing.T, ch <-chan struct{}, d time.Duration) (got, open bool) {
	t.Helper()
	select {
	case _, ok := <-ch:
		return true, ok
	case <-time.After(d):
		return false, true
	}
}

// TestWatchOOMFakeV2 drives the v2 watcher with plain files: inotify
// reports writes to them as it reports the kernel's updates of
// memory.events.
func TestWatchOOMFakeV2(t *testing.T) {
	root := t.TempDir()
	events := filepath.Join(root, "box", "memory.events")
	writeEvents := func(oom, kill int) {
		data := "low 0\nhigh 0\nmax 1\noom " + strconv.Itoa(oom) + "\noom_kill " + strconv.Itoa(kill) + "\n"
		if err := os.WriteFile(events, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(events), 0o755); err != nil {
		t.Fatal(err)
	}
	writeEvents(0, 0)
	l := &Layout{Hierarchies: []Hierarchy{{Mount: root, Root: "/", V2: true, Controllers: []string{"memory"}}}}
	m := &Manager{Layout: l, Path: "/box"}

	// Warm up: the runtime's poller opens its own descriptors on first use.
	stop := make(chan struct{})
	ch, err := m.WatchOOM(stop)
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	if got, open := waitEvent(t, ch, 5*time.Second); !got || open {
		t.Fatal("channel not closed after stop")
	}
	before := openFDs(t)

	stop = make(chan struct{})
	ch, err = m.WatchOOM(stop)
	if err != nil {
		t.Fatal(err)
	}
	writeEvents(0, 0) // a change that is no OOM
	if got, _ := waitEvent(t, ch, 200*time.Millisecond); got {
		t.Fatal("event without an OOM")
	}
	writeEvents(1, 1)
	if got, open := waitEvent(t, ch, 5*time.Second); !got || !open {
		t.Fatal("no event for oom_kill 0 → 1")
	}
	writeEvents(2, 1) // oom without a kill counts too
	if got, open := waitEvent(t, ch, 5*time.Second); !got || !open {
		t.Fatal("no event for oom 1 → 2")
	}
	close(stop)
	if got, open := waitEvent(t, ch, 5*time.Second); !got || open {
		t.Fatal("channel not closed after stop")
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the watch, %d before", after, before)
	}

	// Removing the cgroup's directory ends the watch.
	ch, err = m.WatchOOM(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(events)); err != nil {
		t.Fatal(err)
	}
	if got, open := waitEvent(t, ch, 5*time.Second); !got || open {
		t.Fatal("channel not closed after the cgroup's removal")
	}
	if _, err := m.WatchOOM(nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("watching a missing cgroup: %v; want ErrNotExist", err)
	}
}

// setMemoryLimit caps the box's memory (and swap, where accounted) at n
// bytes, in the files of whichever version has the memory controller.
func setMemoryLimit(t *testing.T, m *Manager, n int) {
	t.Helper()
	h := m.Layout.Find("memory")
	if h == nil {
		t.Fatal("no memory controller on this host")
	}
	files := []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
	if h.V2 {
		files = []string{"memory.max", "memory.swap.max"}
	}
	for i, f := range files {
		v := strconv.Itoa(n)
		if h.V2 && i == 1 {
			v = "0"
		}
		err := os.WriteFile(filepath.Join(m.Dir(h), f), []byte(v), 0)
		if err != nil && !(i == 1 && errors.Is(err, os.ErrNotExist)) { // no swap accounting
			t.Fatalf("limit memory: %v", err)
		}
	}
}

func TestWatchOOMReal(t *testing.T) {
	m := newTestBox(t, "oom")
	setMemoryLimit(t, m, 8<<20)
	stop := make(chan struct{})
	defer close(stop)
	ch, err := m.WatchOOM(stop)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.OOMKills(); err != nil || n != 0 {
		t.Fatalf("OOM kills before the test: %d, %v", n, err)
	}
	cmd, _, out := startInBox(t, m, "oom")
	if got, open := waitEvent(t, ch, 10*time.Second); !got || !open {
		t.Fatal("no OOM event within 10s")
	}
	line, _ := out.ReadString('\n')
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("helper (said %q) ended with %v; want killed by SIGKILL", line, err)
	}
	if n, err := m.OOMKills(); err != nil || n < 1 {
		t.Errorf("OOM kills: %d, %v; want at least 1", n, err)
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Failcnt is not checked: Linux 6.18 leaves v1's memory.failcnt at 0
	// even through an OOM kill.
	if u := s.Memory.Usage; u.Limit != 8<<20 || (u.Max != 0 && u.Max < 4<<20) {
		t.Errorf("memory %+v; want limit 8 MiB, and a peak near it", u)
	}
}

func TestWatchOOMEndsWithCgroup(t *testing.T) {
	m := newTestBox(t, "oomgone")
	ch, err := m.WatchOOM(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if got, open := waitEvent(t, ch, 5*time.Second); !got || open {
		t.Fatal("channel not closed after the cgroup's removal")
	}
}

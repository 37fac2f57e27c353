package tests

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestOCIResourcesAndUpdate: linux.resources are in force from inside the
// box (its cgroup namespace shows its own cgroup), `update` changes them
// live and records them, and a value the kernel refuses changes nothing.
func TestOCIResourcesAndUpdate(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	limit, pids := int64(64<<20), int64(20)
	quota, period := int64(50000), uint64(100000)
	b := newBundle(t, []string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: &limit},
			Pids:   &specs.LinuxPids{Limit: &pids},
			CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
		}
	})
	id := boxID("res")
	ociCreate(t, opts{}, id, b)
	ok(t, opts{}, "start", id)
	files := cgroupFile(t, "memory", "memory.limit_in_bytes") + " " + cgroupFile(t, "pids", "pids.max") + " " + cgroupFile(t, "cpu", "cpu.cfs_quota_us")
	if unifiedHost(t) {
		// cpu.max holds "quota period": the period is cut off below.
		files = "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max"
	}
	look := func() string {
		out := ok(t, opts{}, "exec", id, "sh", "-c", "cat "+files)
		return strings.ReplaceAll(out, " 100000\n", "\n")
	}
	if got := look(); got != "67108864\n20\n50000\n" {
		t.Fatalf("limits seen in the box: %q", got)
	}
	ok(t, opts{}, "update", "--memory", "32m", "--pids-limit", "9", "--cpu-quota", "20000", id)
	if got := look(); got != "33554432\n9\n20000\n" {
		t.Fatalf("limits after update: %q", got)
	}
	// From a file, and recorded in the box's config.
	file := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(file, []byte(`{"pids":{"limit":11}}`), 0o644)
	ok(t, opts{}, "update", "-r", file, id)
	if got := look(); !strings.Contains(got, "\n11\n") {
		t.Fatalf("limits after update -r: %q", got)
	}
	// Refused values change nothing: one by nsbox, one by the kernel
	// (after a value that was written first and must be put back).
	wantError(t, "update with swap below memory", nsbox(t, opts{}, "update", "--memory", "64m", "--memory-swap", "32m", id), "memory.swap")
	wantError(t, "update to a cpu the host lacks", nsbox(t, opts{}, "update", "--pids-limit", "3", "--cpuset-cpus", "63", id), "cpu.cpus")
	wantError(t, "update of an unknown box", nsbox(t, opts{}, "update", "--memory", "1m", "no-such-box"), "no-such-box")
	if got := look(); got != "33554432\n11\n20000\n" {
		t.Fatalf("limits after refused updates: %q", got)
	}
	// A fork over pids.max fails in the box.
	ok(t, opts{}, "update", "--pids-limit", "4", id)
	r := nsbox(t, opts{}, "exec", id, "sh", "-c", "for i in 1 2 3 4 5 6; do sleep 5 & done; wait")
	if !strings.Contains(r.stderr, "fork") && !strings.Contains(r.stderr, "Resource temporarily unavailable") {
		t.Errorf("six forks under pids.max 4: %s", r)
	}
}

// TestOCIEvents: events --stats prints runc's JSON; the stream reports an
// OOM kill and ends when the box stops.
func TestOCIEvents(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	limit := int64(16 << 20)
	b := newBundle(t, []string{"sh", "-c", `sleep 1; head -c 100000000 /dev/zero | tr "\0" a | (x=$(cat)); sleep 1`}, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	})
	id := boxID("ev")
	ociCreate(t, opts{}, id, b)
	out := ok(t, opts{}, "events", "--stats", id)
	var ev struct {
		Type string
		ID   string
		Data struct {
			Memory struct{ Usage struct{ Limit, Usage uint64 } }
			Pids   struct{ Current uint64 }
			CPU    struct{ Usage struct{ Total uint64 } }
		}
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("events --stats: %v: %q", err, out)
	}
	if ev.Type != "stats" || ev.ID != id || ev.Data.Memory.Usage.Limit != uint64(limit) || ev.Data.Pids.Current < 1 {
		t.Fatalf("events --stats: %+v", ev)
	}
	ok(t, opts{}, "start", id)
	done := make(chan result, 1)
	go func() { done <- nsbox(t, opts{}, "events", "--interval", "200ms", id) }()
	select {
	case r := <-done:
		if !strings.Contains(r.stdout, `"type":"oom"`) || !strings.Contains(r.stdout, `"type":"stats"`) {
			t.Fatalf("events stream lacks an oom or stats event: %s", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("events did not end when the box stopped")
	}
}

// TestOCIProcessScheduling: process.scheduler, ioPriority, execCPUAffinity
// and linux.memoryPolicy as the box's command sees them; intelRdt refused.
func TestOCIProcessScheduling(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	b := newBundle(t, []string{"sh", "-c", `set -- $(cat /proc/self/stat); echo policy=${41} nice=${19}; ionice; grep Cpus_allowed_list /proc/self/status; grep -c bind:0 /proc/self/numa_maps`},
		func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7}
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
			s.Process.ExecCPUAffinity = &specs.CPUAffinity{Final: "0"}
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"}
		})
	r := ociRun(t, opts{}, boxID("sched"), b)
	for _, want := range []string{"policy=3 nice=7", "best-effort: prio 6", "Cpus_allowed_list:\t0\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("box lacks %q: %s", want, r)
		}
	}
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) < 4 || lines[len(lines)-1] == "0" {
		t.Errorf("no bind:0 memory policy in numa_maps: %s", r)
	}
	b = newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} })
	id := boxID("rdt")
	wantError(t, "intelRdt", ociRun(t, opts{}, id, b), "linux.intelRdt")
	noCgroup(t, id)
}

// TestOCIRootlessFlag: --rootless true gives the box no cgroup of its own,
// so limits are refused rather than ignored; a bad value is refused.
func TestOCIRootlessFlag(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	// Without a cgroup namespace, /proc/self/cgroup shows where the box is.
	b := newBundle(t, []string{"cat", "/proc/self/cgroup"}, func(s *specs.Spec) {
		var nss []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.CgroupNamespace {
				nss = append(nss, n)
			}
		}
		s.Linux.Namespaces = nss
	})
	id := boxID("rootlessflag")
	if r := ociRun(t, opts{}, id, b); r.code != 0 || !strings.Contains(r.stdout, "/nsbox/"+id) {
		t.Fatalf("a box of its own cgroup: %s", r)
	}
	id = boxID("rootlessflag")
	r := nsbox(t, opts{}, "--rootless", "true", "run", "--bundle", b, id)
	removeAtEnd(t, opts{}, id)
	if r.code != 0 || strings.Contains(r.stdout, "/nsbox/") {
		t.Fatalf("--rootless true: want no cgroup of its own: %s", r)
	}
	limit := int64(5)
	b = newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}} })
	id = boxID("rootlessflag")
	r = nsbox(t, opts{}, "--rootless", "true", "run", "--bundle", b, id)
	removeAtEnd(t, opts{}, id)
	wantError(t, "limits with --rootless true", r, "linux.resources")
	noCgroup(t, id)
	wantError(t, "--rootless maybe", nsbox(t, opts{}, "--rootless", "maybe", "list"), "--rootless")
}

// TestOCIRelativeCgroupsPath: a relative linux.cgroupsPath is taken below
// the caller's own cgroup of each hierarchy, as runc does, and is removed
// with the box.
func TestOCIRelativeCgroupsPath(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	id := boxID("relcg")
	rel := "nsbox-test-rel/" + id
	b := newBundle(t, []string{"cat", "/proc/self/cgroup"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = rel
		var nss []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.CgroupNamespace {
				nss = append(nss, n)
			}
		}
		s.Linux.Namespaces = nss
	})
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if f[2] == "/" {
			f[2] = ""
		}
		want = append(want, f[0]+":"+f[1]+":"+f[2]+"/"+rel)
	}
	r := ociRun(t, opts{}, id, b)
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("cgroups of the box:\n%s\nwant:\n%s", r, strings.Join(want, "\n"))
	}
	t.Cleanup(func() {
		for _, d := range append(mustGlob("/sys/fs/cgroup/*/nsbox-test-rel"), mustGlob("/sys/fs/cgroup/*/*/*/nsbox-test-rel")...) {
			os.Remove(d)
		}
	})
	if left := append(mustGlob("/sys/fs/cgroup/*/nsbox-test-rel/"+id), mustGlob("/sys/fs/cgroup/*/*/*/nsbox-test-rel/"+id)...); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

func mustGlob(p string) []string {
	m, _ := filepath.Glob(p)
	return m
}

// TestOCIRootfsPropagation: with rootfsPropagation rslave the box receives
// mounts the host makes later under its binds (from a shared mount, as the
// test makes one); by default (private) it does not.
func TestOCIRootfsPropagation(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prop string
		want bool
	}{{"rslave", true}, {"", false}} {
		b := newBundle(t, []string{"sh", "-c", "echo ready; sleep 1; ls /mnt/sub"}, withBind(dir, "/mnt"), func(s *specs.Spec) {
			s.Linux.RootfsPropagation = c.prop
		})
		id := boxID("prop")
		cmd := exec.Command(bin, "--root", stateRoot, "run", "--bundle", b, id)
		cmd.Env = append(os.Environ(), marker)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		removeAtEnd(t, opts{}, id)
		buf := make([]byte, 64)
		readWithin(t, out, buf, 5*time.Second) // "ready"
		if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(sub, "seen"), nil, 0o644)
		rest, _ := io.ReadAll(out)
		cmd.Wait()
		syscall.Unmount(sub, syscall.MNT_DETACH)
		if got := strings.Contains(string(rest), "seen"); got != c.want {
			t.Errorf("rootfsPropagation %q: the host's later mount seen = %v, want %v (%q)", c.prop, got, c.want, rest)
		}
	}
}

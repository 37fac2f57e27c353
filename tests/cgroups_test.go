package tests

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The effects of limits, seen from inside boxes. These run on the host's
// layout (hybrid v1 on the build machines) and, through TestCgroupV2InGuest,
// on pure cgroup v2 in a virtual machine.

// unifiedHost reports whether /sys/fs/cgroup is a cgroup2 mount.
func unifiedHost(t *testing.T) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

// cgroupFile is where a box sees controller file name of its own cgroup:
// /sys/fs/cgroup/NAME on v2, /sys/fs/cgroup/CONTROLLER/NAME on v1.
func cgroupFile(t *testing.T, controller, name string) string {
	if unifiedHost(t) {
		return "/sys/fs/cgroup/" + name
	}
	return "/sys/fs/cgroup/" + controller + "/" + name
}

// TestCgroupMemoryLimitKills: a command over its memory limit is killed by
// the OOM killer (status 137), and the limit is what the box sees.
func TestCgroupMemoryLimitKills(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	limitFile := cgroupFile(t, "memory", "memory.limit_in_bytes")
	if unifiedHost(t) {
		limitFile = cgroupFile(t, "memory", "memory.max")
	}
	r := nsbox(t, opts{}, "run", "--memory", "16m", "--memory-swap", "16m", "--rootfs", rootfs, "--no-init", "--",
		"/bin/sh", "-c", `read l < `+limitFile+`; echo limit $l; x=$(head -c 67108864 /dev/zero | tr "\0" a); echo survived`)
	if r.code != 137 || !strings.Contains(r.stdout, "limit 16777216") || strings.Contains(r.stdout, "survived") {
		t.Fatalf("64 MiB under a 16 MiB limit: %s", r)
	}
	// The control: the same without a limit survives.
	r = nsbox(t, opts{}, "run", "--rootfs", rootfs, "--", "/bin/sh", "-c", `x=$(head -c 67108864 /dev/zero | tr "\0" a); echo survived`)
	if r.code != 0 || !strings.Contains(r.stdout, "survived") {
		t.Fatalf("64 MiB without a limit: %s", r)
	}
}

// TestCgroupPidsLimit: --pids-limit 5 stops the sixth process. The shell
// is the first (no init); before each fork it prints how many processes
// the box has; busybox sh gives up at the first fork that fails.
func TestCgroupPidsLimit(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	script := `for i in 1 2 3 4 5 6; do read c < ` + cgroupFile(t, "pids", "pids.current") + `; echo "fork $i with $c"; sleep 30 & done; echo all`
	r := nsbox(t, opts{}, "run", "--rootfs", rootfs, "--no-init", "--pids-limit", "5", "--", "/bin/sh", "-c", script)
	if !strings.Contains(r.stdout, "fork 5 with 5\n") || strings.Contains(r.stdout, "fork 6") || !strings.Contains(r.stderr, "can't fork") {
		t.Errorf("six forks under --pids-limit 5: %s\nwant the fifth fork (the sixth process) to fail", r)
	}
	r = nsbox(t, opts{}, "run", "--rootfs", rootfs, "--no-init", "--pids-limit", "20", "--", "/bin/sh", "-c", script)
	if r.code != 0 || !strings.Contains(r.stdout, "fork 6 with 6\nall") {
		t.Errorf("six forks under --pids-limit 20: %s", r)
	}
}

// TestCgroupCPUQuota: --cpus 0.2 slows a busy loop measurably: in one
// second of wall time it gets about a fifth of a cpu.
func TestCgroupCPUQuota(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	usage := func(flags ...string) float64 {
		var script string
		if unifiedHost(t) {
			script = `timeout 1 sh -c 'while :; do :; done'; while read k v; do [ $k != usage_usec ] || echo $v; done < /sys/fs/cgroup/cpu.stat`
		} else {
			script = `timeout 1 sh -c 'while :; do :; done'; read v < /sys/fs/cgroup/cpuacct/cpuacct.usage; echo $((v/1000))`
		}
		out := inBox(t, opts{}, script, append(flags, "--cpuset-cpus", "0")...)
		us, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			t.Fatalf("cpu usage: %q", out)
		}
		return us / 1e6
	}
	limited := usage("--cpus", "0.2")
	free := usage("--cpu-weight", "100") // a cgroup of its own, no quota
	t.Logf("cpu seconds in 1 s of wall time: %.2f with --cpus 0.2, %.2f without", limited, free)
	if limited > 0.35 || free < 2*limited {
		t.Errorf("--cpus 0.2 gave %.2f s of cpu in 1 s (%.2f without a quota)", limited, free)
	}
}

// TestCgroupDevices: a box's device rules allow only what they list (and
// the devices every box has): opening a device node outside them fails,
// even for the box's root.
func TestCgroupDevices(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	// /dev/kmsg (1:11) may be opened for writing without privileges.
	script := `mknod /dev/k c 1 11 && : > /dev/k && echo opened`
	allow := func(rules ...specs.LinuxDeviceCgroup) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_MKNOD")
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_MKNOD")
			s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_MKNOD")
			s.Linux.Resources = &specs.LinuxResources{Devices: append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, rules...)}
		}
	}
	r := ociRun(t, opts{}, boxID("dev"), newBundle(t, []string{"sh", "-c", script}, allow()))
	if r.code == 0 || strings.Contains(r.stdout, "opened") || !strings.Contains(r.stderr, "not permitted") {
		t.Errorf("a device outside the rules: %s", r)
	}
	one, kmsg := int64(1), int64(11)
	r = ociRun(t, opts{}, boxID("dev"), newBundle(t, []string{"sh", "-c", script}, allow(specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &one, Minor: &kmsg, Access: "w"})))
	if r.code != 0 || !strings.Contains(r.stdout, "opened") {
		t.Errorf("a device the rules allow: %s", r)
	}
	// The devices every box has stay usable under a deny-all rule.
	r = ociRun(t, opts{}, boxID("dev"), newBundle(t, []string{"sh", "-c", "echo x > /dev/null && head -c1 /dev/zero | wc -c"}, allow()))
	if r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("/dev/null and /dev/zero under deny-all: %s", r)
	}
}

// TestCgroupCleanupAfterKills: the box's cgroup goes when its processes
// are killed with SIGKILL, and when nsbox itself is killed mid-way a later
// delete --force finishes the job.
func TestCgroupCleanupAfterKills(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	b := newBundle(t, []string{"sleep", "600"}, func(s *specs.Spec) {
		limit := int64(50)
		s.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}
	})
	start := func(id string) (*exec.Cmd, int) {
		cmd := exec.Command(bin, "--root", stateRoot, "run", "--bundle", b, id)
		cmd.Env = append(os.Environ(), marker)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if r := nsbox(t, opts{}, "state", id); r.code == 0 && strings.Contains(r.stdout, `"running"`) {
				return cmd, ociState(t, opts{}, id).Pid
			}
		}
		t.Fatalf("box %s never ran", id)
		return nil, 0
	}
	// The box's process killed: nsbox returns 137 and removes everything.
	id := boxID("kill")
	cmd, pid := start(id)
	syscall.Kill(pid, syscall.SIGKILL)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
		t.Errorf("run after its box was killed: %v", err)
	}
	noCgroup(t, id)
	noRecord(t, opts{}, id)
	// nsbox killed: the box dies with it, its record and cgroup stay until
	// delete --force (or list) finishes the job.
	id = boxID("kill")
	cmd, pid = start(id)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); alive(pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatalf("box process %d outlived its nsbox", pid)
	}
	ok(t, opts{}, "delete", "--force", id)
	noCgroup(t, id)
	noRecord(t, opts{}, id)
}

// TestCgroupBadLimits: limits the host cannot take are refused before
// anything is made.
func TestCgroupBadLimits(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--cpuset-cpus", "63"}, "cpu.cpus"},
		{[]string{"--cpuset-cpus", "1-0"}, "cpu.cpus"},
		{[]string{"--memory", "64m", "--memory-swap", "32m"}, "memory.swap"},
		{[]string{"--memory", "lots"}, "--memory"},
		{[]string{"--cpus", "0.001"}, "--cpus"},
		{[]string{"--pids-limit", "x"}, "--pids-limit"},
		{[]string{"--io-weight", "5000"}, "--io-weight"},
		{[]string{"--device-read-bps", "/dev/null:1m"}, "not a block device"},
		{[]string{"--device-read-bps", "250:250:1m"}, "blockIO"},
	} {
		id := "badlimit-" + strconv.Itoa(os.Getpid())
		args := append(append([]string{"run", "--name", id}, c.flags...), "--rootfs", rootfs, "--", "/bin/true")
		wantError(t, strings.Join(c.flags, " "), nsbox(t, opts{}, args...), c.want)
		noCgroup(t, id)
		noRecord(t, opts{}, id)
	}
}

package cgroups

import (
	"math"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var (
	layoutV1 = &Layout{Hierarchies: []Hierarchy{
		{Mount: "/sys/fs/cgroup/memory", Controllers: []string{"memory"}},
		{Mount: "/sys/fs/cgroup/cpu,cpuacct", Controllers: []string{"cpu", "cpuacct"}},
		{Mount: "/sys/fs/cgroup/cpuset", Controllers: []string{"cpuset"}},
		{Mount: "/sys/fs/cgroup/pids", Controllers: []string{"pids"}},
		{Mount: "/sys/fs/cgroup/blkio", Controllers: []string{"blkio"}},
		{Mount: "/sys/fs/cgroup/unified", V2: true, Controllers: []string{"hugetlb"}},
	}}
	layoutV2 = &Layout{Hierarchies: []Hierarchy{
		{Mount: "/sys/fs/cgroup", V2: true, Controllers: []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"}},
	}}
)

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }
func yes() *bool           { b := true; return &b }
func settings(p *Plan) string {
	var b strings.Builder
	for _, s := range p.Settings {
		b.WriteString(s.File + "=" + s.Value)
		if s.Else != nil {
			b.WriteString(" (else " + s.Else.File + "=" + s.Else.Value + ")")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestPlanResources(t *testing.T) {
	for _, c := range []struct {
		name   string
		layout *Layout
		r      specs.LinuxResources
		want   string
	}{
		{"v1 memory", layoutV1, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Reservation: i64(32 << 20), Swap: i64(128 << 20), Swappiness: u64(10), DisableOOMKiller: yes()}},
			"memory.soft_limit_in_bytes=33554432\nmemory.limit_in_bytes=67108864\nmemory.memsw.limit_in_bytes=134217728\nmemory.swappiness=10\nmemory.oom_control=1\n"},
		{"v2 memory: swap is memory+swap less memory", layoutV2, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Reservation: i64(32 << 20), Swap: i64(128 << 20)}},
			"memory.low=33554432\nmemory.max=67108864\nmemory.swap.max=67108864\n"},
		{"v2 unlimited", layoutV2, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1)}},
			"memory.max=max\nmemory.swap.max=max\n"},
		{"unset swappiness (runc's -1)", layoutV2, specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(math.MaxUint64)}}, ""},
		{"v1 cpu", layoutV1, specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(512), Quota: i64(50000), Period: u64(100000), Cpus: "0-1", Mems: "0"}},
			"cpuset.cpus=0-1\ncpuset.mems=0\ncpu.shares=512\ncpu.cfs_period_us=100000\ncpu.cfs_quota_us=50000\n"},
		{"v2 cpu: shares to weight, quota and period in cpu.max", layoutV2, specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1024), Quota: i64(50000), Burst: u64(1000), Idle: i64(1)}},
			"cpu.weight=39\ncpu.idle=1\ncpu.max=50000 100000\ncpu.max.burst=1000\n"},
		{"v2 cpu: period alone", layoutV2, specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(20000)}}, "cpu.max=max 20000\n"},
		{"pids", layoutV1, specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}}, "pids.max=5\n"},
		{"pids unlimited", layoutV2, specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(0)}}, "pids.max=max\n"},
		{"v1 blkio", layoutV1, specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500),
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1048576}}}},
			"blkio.weight=500 (else blkio.bfq.weight=500)\nblkio.throttle.read_bps_device=8:0 1048576\n"},
		{"v2 io: one io.max line per device", layoutV2, specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(1000),
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 7}}}},
			"io.bfq.weight=default 1000 (else io.weight=default 10000)\nio.max=8:0 rbps=100 wiops=7\n"},
		{"hugetlb on the hybrid's v2 tree", layoutV1, specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}},
			"hugetlb.2MB.max=4194304\n"},
		{"rdma", layoutV2, specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: u32(3), HcaObjects: u32(100)}}},
			"rdma.max=mlx5_0 hca_handle=3 hca_object=100\n"},
		{"unified", layoutV2, specs.LinuxResources{Unified: map[string]string{"memory.high": "1000000", "cgroup.max.depth": "3"}},
			"cgroup.max.depth=3\nmemory.high=1000000\n"},
	} {
		p, err := PlanResources(c.layout, &c.r)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := settings(p); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestPlanResourcesRefuses(t *testing.T) {
	for _, c := range []struct {
		layout *Layout
		r      specs.LinuxResources
		want   string
	}{
		{layoutV1, specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(100), Swap: i64(50)}}, "memory.swap"},
		{layoutV2, specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(50)}}, "memory.swap needs a memory limit"},
		{layoutV2, specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(10)}}, "swappiness"},
		{layoutV1, specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(200)}}, "want 0 to 100"},
		{layoutV2, specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: yes()}}, "disableOOMKiller"},
		{layoutV2, specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(10)}}, "realtime"},
		{layoutV1, specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}, "cpu.cpus"},
		{layoutV1, specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "zero"}}, "cpu.mems"},
		{layoutV2, specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: u16(10)}}, "leafWeight"},
		{layoutV1, specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2XB"}}}, "page size"},
		{layoutV2, specs.LinuxResources{Unified: map[string]string{"../x": "1"}}, "not a cgroup file"},
		{layoutV2, specs.LinuxResources{Unified: map[string]string{"misc.max": "1"}}, "no misc controller"},
		{&Layout{}, specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, "no cgroup v2"},
		{layoutV1, specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}}, "devices"},
	} {
		_, err := PlanResources(c.layout, &c.r)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one about %q", c.r, err, c.want)
		}
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 2: 1, 1024: 39, 262144: 10000, 1 << 20: 10000} {
		if got := SharesToWeight(shares); got != want {
			t.Errorf("shares %d: weight %d, want %d", shares, got, want)
		}
	}
}

func TestDeviceRules(t *testing.T) {
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	rules := DeviceRules([]specs.LinuxDeviceCgroup{deny}, []specs.LinuxDevice{{Type: "c", Major: 10, Minor: 229}})
	var lines []string
	for _, r := range rules {
		f, l, err := DeviceRule(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, f+":"+l)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{"devices.deny:a", "devices.allow:c 1:3 rwm", "devices.allow:c 136:* rwm", "devices.allow:c *:* m", "devices.allow:c 10:229 rwm"} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, "devices.deny:a\n") {
		t.Errorf("the box's own rules come first:\n%s", got)
	}
	if DeviceRules(nil, []specs.LinuxDevice{{Type: "c", Major: 1, Minor: 3}}) != nil {
		t.Error("no rules of its own: the box keeps its parent's")
	}
}

func TestHasLimits(t *testing.T) {
	for _, c := range []struct {
		r    *specs.LinuxResources
		want bool
	}{
		{nil, false},
		{&specs.LinuxResources{}, false},
		{&specs.LinuxResources{Memory: &specs.LinuxMemory{}, CPU: &specs.LinuxCPU{}}, false},
		{&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}, false},
		{&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}}, true},
		{&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20)}}, true},
		{&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}, true},
	} {
		if got := HasLimits(c.r); got != c.want {
			t.Errorf("HasLimits(%+v) = %v", c.r, got)
		}
	}
}

func TestDeviceRulesOfLinuxDevices(t *testing.T) {
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	rules := DeviceRules([]specs.LinuxDeviceCgroup{deny}, []specs.LinuxDevice{
		{Type: "u", Major: 4, Minor: 64}, {Type: "p"}, {Type: "b", Major: 8, Minor: 0},
	})
	var got []string
	for _, r := range rules[1+len(DefaultDeviceRules):] {
		_, line, err := DeviceRule(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line)
	}
	if strings.Join(got, ";") != "c 4:64 rwm;b 8:0 rwm" {
		t.Fatalf("rules of linux.devices: %q", got)
	}
}

func TestResolveCgroupsPath(t *testing.T) {
	l := &Layout{Hierarchies: []Hierarchy{
		{Mount: "/sys/fs/cgroup/memory", Controllers: []string{"memory"}, Own: "/process_api/x"},
		{Mount: "/sys/fs/cgroup/cpu", Controllers: []string{"cpu"}, Own: "/"},
		{Mount: "/sys/fs/cgroup/unified", V2: true, Own: "/user.slice"},
	}}
	dirs := func(m *Manager) string {
		var out []string
		for i := range l.Hierarchies {
			out = append(out, m.Dir(&l.Hierarchies[i]))
		}
		return strings.Join(out, " ")
	}
	m, err := Resolve(l, "/nsbox/b1")
	if err != nil || dirs(m) != "/sys/fs/cgroup/memory/nsbox/b1 /sys/fs/cgroup/cpu/nsbox/b1 /sys/fs/cgroup/unified/nsbox/b1" {
		t.Errorf("absolute: %v %v", dirs(m), err)
	}
	// Relative: below the caller's cgroup of each hierarchy.
	m, err = Resolve(l, "boxes/b2")
	if err != nil || dirs(m) != "/sys/fs/cgroup/memory/process_api/x/boxes/b2 /sys/fs/cgroup/cpu/boxes/b2 /sys/fs/cgroup/unified/user.slice/boxes/b2" {
		t.Errorf("relative: %v %v", dirs(m), err)
	}
	for _, bad := range []string{"/", ".", "system.slice:nsbox:b3"} {
		if _, err := Resolve(l, bad); err == nil {
			t.Errorf("cgroupsPath %q accepted", bad)
		}
	}
}

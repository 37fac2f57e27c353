package cgroups

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A Setting is one value written to one file of a box's cgroup: the plan
// of linux.resources, made without touching anything (PlanResources) and
// written by Manager.Set.
type Setting struct {
	// Controller is the controller the file belongs to; it picks the
	// hierarchy (on v2 also "cgroup" for core files).
	Controller string
	File       string
	Value      string
	// OrderFree: if the write fails with EINVAL, write the next setting
	// first and then this one again. The kernel checks some pairs against
	// each other (v1 memory and memory+swap limits), so which goes first
	// depends on the current values.
	OrderFree bool
	// Field names the spec field the value comes from, for errors.
	Field string
	// Else is written instead when File does not exist (the same limit
	// under another scheduler's name, such as BFQ's blkio.bfq.weight).
	Else *Setting
}

// Plan is what applying a linux.resources takes.
type Plan struct {
	Settings []Setting
	// Warnings are fields accepted but without effect, as runc does.
	Warnings []string
	// Devices: the device rules (v1: devices.allow/deny; v2: an eBPF
	// device filter attached to the box's cgroup).
	Devices []specs.LinuxDeviceCgroup
}

// v2For reports whether controller c is served by the cgroup2 tree (no v1
// hierarchy has it).
func v2For(l *Layout, c string) bool {
	h := l.Find(c)
	return h != nil && h.V2
}

// PlanResources turns r into the settings of a box's cgroup on layout l.
// Fields the layout cannot honour are errors naming the field; values are
// converted where v1 and v2 differ (shares to weight, memory+swap to swap).
func PlanResources(l *Layout, r *specs.LinuxResources) (*Plan, error) {
	p := &Plan{}
	if r == nil {
		return p, nil
	}
	steps := []func(*Layout, *specs.LinuxResources, *Plan) error{
		planMemory, planCPU, planPids, planBlockIO, planHugetlb, planNetwork, planRdma, planUnified,
	}
	for _, step := range steps {
		if err := step(l, r, p); err != nil {
			return nil, err
		}
	}
	for _, d := range r.Devices {
		if _, _, err := DeviceRule(d); err != nil {
			return nil, err
		}
	}
	p.Devices = r.Devices
	return p, nil
}

// HasLimits reports whether r limits anything (device rules aside, which a
// box without a cgroup of its own does without, as with runc rootless).
func HasLimits(r *specs.LinuxResources) bool {
	if r == nil {
		return false
	}
	p, err := PlanResources(everything, r)
	return err != nil || len(p.Settings) > 0 || r.Network != nil
}

// everything is a layout with every controller, for HasLimits.
var everything = &Layout{Hierarchies: []Hierarchy{{Mount: "/sys/fs/cgroup", V2: true,
	Controllers: []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}}}}

// add appends a setting; not inlined at its many call sites (binary size).
//
//go:noinline
func (p *Plan) add(ctrl, file, value, field string) {
	p.Settings = append(p.Settings, Setting{Controller: ctrl, File: file, Value: value, Field: field})
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func planMemory(l *Layout, r *specs.LinuxResources, p *Plan) error {
	m := r.Memory
	if m == nil {
		return nil
	}
	v2 := v2For(l, "memory")
	if m.Kernel != nil {
		p.Warnings = append(p.Warnings, "linux.resources.memory.kernel is ignored: kernel memory is accounted with the memory limit")
	}
	if m.KernelTCP != nil {
		if v2 {
			p.Warnings = append(p.Warnings, "linux.resources.memory.kernelTCP is ignored on cgroup v2: TCP memory is accounted with the memory limit")
		} else {
			p.add("memory", "memory.kmem.tcp.limit_in_bytes", itoa(*m.KernelTCP), "memory.kernelTCP")
		}
	}
	limit := int64(0)
	if m.Limit != nil {
		limit = *m.Limit
	}
	if v2 {
		if m.Reservation != nil && *m.Reservation != 0 {
			p.add("memory", "memory.low", maxOr(*m.Reservation), "memory.reservation")
		}
		if m.Limit != nil && limit != 0 {
			p.add("memory", "memory.max", maxOr(limit), "memory.limit")
		}
		if m.Swap != nil && *m.Swap != 0 {
			v, err := swapV2(*m.Swap, limit)
			if err != nil {
				return err
			}
			p.add("memory", "memory.swap.max", v, "memory.swap")
		}
		if m.Swappiness != nil && *m.Swappiness <= 100 {
			return fmt.Errorf("linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness")
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			return fmt.Errorf("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
		}
		return nil
	}
	if m.Reservation != nil && *m.Reservation != 0 {
		p.add("memory", "memory.soft_limit_in_bytes", itoa(*m.Reservation), "memory.reservation")
	}
	if m.Limit != nil && limit != 0 {
		if m.Swap != nil && *m.Swap != 0 {
			if *m.Swap != -1 && limit != -1 && *m.Swap < limit {
				return fmt.Errorf("linux.resources.memory.swap %d is below the memory limit %d (swap counts memory+swap)", *m.Swap, limit)
			}
			// Raising both needs memory+swap first, lowering both the
			// memory limit first.
			p.Settings = append(p.Settings, Setting{Controller: "memory", File: "memory.limit_in_bytes", Value: itoa(limit), OrderFree: true, Field: "memory.limit"})
			p.add("memory", "memory.memsw.limit_in_bytes", itoa(*m.Swap), "memory.swap")
		} else {
			p.add("memory", "memory.limit_in_bytes", itoa(limit), "memory.limit")
		}
	} else if m.Swap != nil && *m.Swap != 0 {
		p.add("memory", "memory.memsw.limit_in_bytes", itoa(*m.Swap), "memory.swap")
	}
	if m.Swappiness != nil && *m.Swappiness <= 100 {
		p.add("memory", "memory.swappiness", strconv.FormatUint(*m.Swappiness, 10), "memory.swappiness")
	} else if m.Swappiness != nil && *m.Swappiness != math.MaxUint64 {
		return fmt.Errorf("linux.resources.memory.swappiness %d: want 0 to 100", *m.Swappiness)
	}
	if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
		p.add("memory", "memory.oom_control", "1", "memory.disableOOMKiller")
	}
	return nil
}

// maxOr is v, or "max" for -1 (unlimited), as v2 files take it.
func maxOr(v int64) string {
	if v == -1 {
		return "max"
	}
	return itoa(v)
}

// swapV2 converts OCI's memory+swap limit to cgroup v2's swap-only limit.
func swapV2(swap, limit int64) (string, error) {
	switch {
	case swap == -1:
		return "max", nil
	case limit == 0 || limit == -1:
		return "", fmt.Errorf("linux.resources.memory.swap needs a memory limit on cgroup v2 (it counts memory+swap)")
	case swap < limit:
		return "", fmt.Errorf("linux.resources.memory.swap %d is below the memory limit %d (swap counts memory+swap)", swap, limit)
	}
	return itoa(swap - limit), nil
}

// SharesToWeight converts v1 cpu.shares (2..262144) to v2 cpu.weight
// (1..10000), mapping the range linearly as runc and crun do.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares <= 2 {
		return 1
	}
	if shares >= 262144 {
		return 10000
	}
	return 1 + (shares-2)*9999/262142
}

func planCPU(l *Layout, r *specs.LinuxResources, p *Plan) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if c.Cpus != "" {
		if err := checkList(c.Cpus); err != nil {
			return fmt.Errorf("linux.resources.cpu.cpus: %w", err)
		}
		p.add("cpuset", "cpuset.cpus", c.Cpus, "cpu.cpus")
	}
	if c.Mems != "" {
		if err := checkList(c.Mems); err != nil {
			return fmt.Errorf("linux.resources.cpu.mems: %w", err)
		}
		p.add("cpuset", "cpuset.mems", c.Mems, "cpu.mems")
	}
	if !v2For(l, "cpu") {
		if c.Shares != nil && *c.Shares != 0 {
			p.add("cpu", "cpu.shares", strconv.FormatUint(*c.Shares, 10), "cpu.shares")
		}
		if c.Period != nil && *c.Period != 0 {
			p.add("cpu", "cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10), "cpu.period")
		}
		if c.Quota != nil && *c.Quota != 0 {
			p.add("cpu", "cpu.cfs_quota_us", itoa(*c.Quota), "cpu.quota")
		}
		if c.Burst != nil {
			p.add("cpu", "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10), "cpu.burst")
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
			p.add("cpu", "cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10), "cpu.realtimePeriod")
		}
		if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			p.add("cpu", "cpu.rt_runtime_us", itoa(*c.RealtimeRuntime), "cpu.realtimeRuntime")
		}
		if c.Idle != nil {
			p.add("cpu", "cpu.idle", itoa(*c.Idle), "cpu.idle")
		}
		return nil
	}
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 || c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		return fmt.Errorf("linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime cpu limits")
	}
	if c.Shares != nil && *c.Shares != 0 {
		p.add("cpu", "cpu.weight", strconv.FormatUint(SharesToWeight(*c.Shares), 10), "cpu.shares")
	}
	if c.Idle != nil {
		p.add("cpu", "cpu.idle", itoa(*c.Idle), "cpu.idle")
	}
	if c.Quota != nil && *c.Quota != 0 || c.Period != nil && *c.Period != 0 {
		quota, period := "max", uint64(100000)
		if c.Quota != nil && *c.Quota > 0 {
			quota = itoa(*c.Quota)
		}
		if c.Period != nil && *c.Period != 0 {
			period = *c.Period
		}
		p.add("cpu", "cpu.max", quota+" "+strconv.FormatUint(period, 10), "cpu.quota")
	}
	if c.Burst != nil {
		p.add("cpu", "cpu.max.burst", strconv.FormatUint(*c.Burst, 10), "cpu.burst")
	}
	return nil
}

// checkList checks a cpu or memory node list such as "0-3,5".
func checkList(s string) error {
	if _, err := ParseList([]byte(s)); err != nil {
		return fmt.Errorf("%q is not a list like 0-3,5", s)
	}
	return nil
}

func planPids(l *Layout, r *specs.LinuxResources, p *Plan) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	v := "max"
	if *r.Pids.Limit > 0 {
		v = itoa(*r.Pids.Limit)
	}
	p.add("pids", "pids.max", v, "pids.limit")
	return nil
}

// WeightToIOWeight converts a blkio weight (10..1000) to io.weight
// (1..10000).
func WeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

func planBlockIO(l *Layout, r *specs.LinuxResources, p *Plan) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	dev := func(major, minor int64) string { return itoa(major) + ":" + itoa(minor) }
	if !v2For(l, "io") && !v2For(l, "blkio") {
		// CFQ's files, or BFQ's (the only ones on current kernels).
		weight := func(file, value, field string) {
			p.Settings = append(p.Settings, Setting{Controller: "blkio", File: "blkio." + file, Value: value, Field: field,
				Else: &Setting{Controller: "blkio", File: "blkio.bfq." + file, Value: value, Field: field}})
		}
		if b.Weight != nil && *b.Weight != 0 {
			weight("weight", strconv.Itoa(int(*b.Weight)), "blockIO.weight")
		}
		if b.LeafWeight != nil && *b.LeafWeight != 0 {
			p.add("blkio", "blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight)), "blockIO.leafWeight")
		}
		for _, d := range b.WeightDevice {
			if d.Weight != nil {
				weight("weight_device", dev(d.Major, d.Minor)+" "+strconv.Itoa(int(*d.Weight)), "blockIO.weightDevice")
			}
			if d.LeafWeight != nil {
				p.add("blkio", "blkio.leaf_weight_device", dev(d.Major, d.Minor)+" "+strconv.Itoa(int(*d.LeafWeight)), "blockIO.weightDevice")
			}
		}
		for _, t := range []struct {
			file string
			devs []specs.LinuxThrottleDevice
		}{
			{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
			{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
			{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
			{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
		} {
			for _, d := range t.devs {
				p.add("blkio", t.file, dev(d.Major, d.Minor)+" "+strconv.FormatUint(d.Rate, 10), "blockIO")
			}
		}
		return nil
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		return fmt.Errorf("linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weights")
	}
	// BFQ's io.bfq.weight takes blkio's range as it is; io.weight (the
	// io.cost controller) its own.
	ioWeight := func(prefix string, w uint16, field string) {
		p.Settings = append(p.Settings, Setting{Controller: "io", File: "io.bfq.weight", Value: prefix + strconv.Itoa(int(w)), Field: field,
			Else: &Setting{Controller: "io", File: "io.weight", Value: prefix + strconv.FormatUint(WeightToIOWeight(w), 10), Field: field}})
	}
	if b.Weight != nil && *b.Weight != 0 {
		ioWeight("default ", *b.Weight, "blockIO.weight")
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			ioWeight(dev(d.Major, d.Minor)+" ", *d.Weight, "blockIO.weightDevice")
		}
	}
	// io.max takes one line per device with any of its four limits.
	limits := map[string][]string{}
	var order []string
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice}, {"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice}, {"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			k := dev(d.Major, d.Minor)
			if _, ok := limits[k]; !ok {
				order = append(order, k)
			}
			v := strconv.FormatUint(d.Rate, 10)
			if d.Rate == 0 {
				v = "max"
			}
			limits[k] = append(limits[k], t.key+"="+v)
		}
	}
	for _, k := range order {
		p.add("io", "io.max", k+" "+strings.Join(limits[k], " "), "blockIO")
	}
	return nil
}

func planHugetlb(l *Layout, r *specs.LinuxResources, p *Plan) error {
	file := "limit_in_bytes"
	if v2For(l, "hugetlb") {
		file = "max"
	}
	for _, h := range r.HugepageLimits {
		if !validPageSize(h.Pagesize) {
			return fmt.Errorf("linux.resources.hugepageLimits: page size %q is not like 2MB or 1GB", h.Pagesize)
		}
		p.add("hugetlb", "hugetlb."+h.Pagesize+"."+file, strconv.FormatUint(h.Limit, 10), "hugepageLimits")
	}
	return nil
}

func validPageSize(s string) bool {
	n := strings.TrimRight(s, "KMGB")
	if n == s || n == "" || !strings.HasSuffix(s, "B") {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 32)
	return err == nil
}

func planNetwork(l *Layout, r *specs.LinuxResources, p *Plan) error {
	n := r.Network
	if n == nil {
		return nil
	}
	if n.ClassID != nil {
		p.add("net_cls", "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10), "network.classID")
	}
	for _, pr := range n.Priorities {
		p.add("net_prio", "net_prio.ifpriomap", pr.Name+" "+strconv.FormatUint(uint64(pr.Priority), 10), "network.priorities")
	}
	return nil
}

func planRdma(l *Layout, r *specs.LinuxResources, p *Plan) error {
	names := make([]string, 0, len(r.Rdma))
	for name := range r.Rdma {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		lim := r.Rdma[name]
		v := name
		if lim.HcaHandles != nil {
			v += " hca_handle=" + strconv.FormatUint(uint64(*lim.HcaHandles), 10)
		}
		if lim.HcaObjects != nil {
			v += " hca_object=" + strconv.FormatUint(uint64(*lim.HcaObjects), 10)
		}
		if v != name {
			p.add("rdma", "rdma.max", v, "rdma")
		}
	}
	return nil
}

func planUnified(l *Layout, r *specs.LinuxResources, p *Plan) error {
	if len(r.Unified) == 0 {
		return nil
	}
	v2 := l.V2()
	if v2 == nil {
		return fmt.Errorf("linux.resources.unified: the host has no cgroup v2")
	}
	keys := make([]string, 0, len(r.Unified))
	for k := range r.Unified {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ctrl, _, ok := strings.Cut(k, ".")
		if !ok || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." {
			return fmt.Errorf("linux.resources.unified: %q is not a cgroup file name", k)
		}
		if ctrl != "cgroup" && !v2.Has(ctrl) {
			return fmt.Errorf("linux.resources.unified %q: the cgroup v2 tree has no %s controller", k, ctrl)
		}
		p.Settings = append(p.Settings, Setting{Controller: "unified", File: k, Value: r.Unified[k], Field: "unified." + k})
	}
	return nil
}

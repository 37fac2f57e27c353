package cgroups

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Event is one line of `events` output, shaped like runc's: Type is "stats"
// (Data set) or "oom" (no Data).
type Event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data *Stats `json:"data,omitempty"`
}

// Stats is a snapshot of a box's cgroup counters. Its JSON is the "data" of
// `runc events --stats`.
type Stats struct {
	CPU    CPUStats    `json:"cpu"`
	CPUSet CPUSetStats `json:"cpuset"`
	Memory MemoryStats `json:"memory"`
	Pids   PidsStats   `json:"pids"`
	Blkio  BlkioStats  `json:"blkio"`
	// Hugetlb is keyed by page size as the kernel names it ("2MB", "1GB").
	Hugetlb map[string]HugetlbStats `json:"hugetlb"`
}

// CPUStats is CPU time used and CFS throttling.
type CPUStats struct {
	Usage      CPUUsage   `json:"usage"`
	Throttling Throttling `json:"throttling"`
}

// CPUUsage is CPU time in nanoseconds. The per-CPU lists exist only on v1
// (cpuacct).
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

// Throttling counts CFS bandwidth periods; ThrottledTime is in nanoseconds.
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUSetStats is the box's cpuset: the CPUs and memory nodes it may use
// (the effective sets where the kernel has them) and, on v1, its flags.
type CPUSetStats struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

// MemoryEntry is one memory counter, in bytes. An unlimited Limit is
// math.MaxUint64 on v2 ("max") and the kernel's own ceiling on v1
// (9223372036854771712 with 4 KiB pages), as runc reports them.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"` // peak usage
	Failcnt uint64 `json:"failcnt"`
}

// MemoryStats is the memory controller's view of the box. Swap counts
// memory plus swap on both versions (v1's memsw semantics). On v2, Kernel
// and KernelTCP stay empty (see Raw's "kernel" and "sock"), Usage.Failcnt
// is memory.events' "max", and Swap.Max is not known.
type MemoryStats struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage"`
	Swap      MemoryEntry       `json:"swap"`
	Kernel    MemoryEntry       `json:"kernel"`
	KernelTCP MemoryEntry       `json:"kernelTCP"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
}

// PidsStats is the number of tasks in the box and its limit; a Limit of 0
// means unlimited (pids.max is "max").
type PidsStats struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// BlkioEntry is one per-device block I/O counter; Op is "Read", "Write",
// "Sync", "Async", "Discard" or "Total", or empty for single-valued files.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// BlkioStats is block I/O per device. v2 (io.stat) fills only the first two
// lists; the others come from v1's cfq or bfq scheduler files.
type BlkioStats struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
}

// HugetlbStats is one huge page size's usage in bytes. v2 keeps no peak,
// so Max stays 0 there; Failcnt is hugetlb.<size>.events' "max" on v2.
type HugetlbStats struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Stats reads the box's counters. Each controller is read from the
// hierarchy that has it (a v1 mount, else the cgroup2 tree); files that
// this kernel or layout lacks are skipped. A box directory that does not
// exist in a hierarchy it needs is an error.
func (m *Manager) Stats() (*Stats, error) {
	s := &Stats{Hugetlb: map[string]HugetlbStats{}}
	v1 := func(c string) *Hierarchy {
		if h := m.Layout.Find(c); h != nil && !h.V2 {
			return h
		}
		return nil
	}
	type step struct {
		h    *Hierarchy
		read func(r *statReader, s *Stats)
	}
	var steps []step
	add := func(h *Hierarchy, read func(*statReader, *Stats)) {
		if h != nil {
			steps = append(steps, step{h, read})
		}
	}
	if h := v1("cpuacct"); h != nil {
		add(h, readCpuacct)
		add(v1("cpu"), readCPUThrottlingV1)
	} else {
		add(m.Layout.V2(), readCPUStatV2) // cpu.stat's usage is in every v2 cgroup
	}
	add(m.Layout.Find("cpuset"), readCPUSet)
	if h := m.Layout.Find("memory"); h != nil && h.V2 {
		add(h, readMemoryV2)
	} else {
		add(h, readMemoryV1)
	}
	add(m.Layout.Find("pids"), readPids)
	if h := v1("blkio"); h != nil {
		add(h, readBlkioV1)
	} else if h := m.Layout.Find("io"); h != nil && h.V2 {
		add(h, readIOStatV2)
	}
	add(m.Layout.Find("hugetlb"), readHugetlb)

	checked := map[string]bool{}
	for _, st := range steps {
		dir := m.Dir(st.h)
		if !checked[dir] {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("stats of box cgroup %s: %w", m.Path, err)
			}
			checked[dir] = true
		}
		r := &statReader{dir: dir, v2: st.h.V2}
		st.read(r, s)
		if r.err != nil {
			return nil, r.err
		}
	}
	return s, nil
}

// statReader reads files of one cgroup directory. A missing file reads as
// nothing; the first other error sticks in err and stops further reads.
type statReader struct {
	dir string
	v2  bool
	err error
}

func (r *statReader) read(name string) ([]byte, bool) {
	if r.err != nil {
		return nil, false
	}
	b, err := fileio.ReadFile(filepath.Join(r.dir, name))
	if err == nil {
		return b, true
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil, false
	}
	r.err = fmt.Errorf("read %s of cgroup %s: %w", name, r.dir, err)
	return nil, false
}

// parse runs fn on file name's contents, if the file exists.
func (r *statReader) parse(name string, fn func([]byte) error) bool {
	b, ok := r.read(name)
	if !ok {
		return false
	}
	if err := fn(b); err != nil {
		r.err = fmt.Errorf("parse %s of cgroup %s: %w", name, r.dir, err)
		return false
	}
	return true
}

// readInto reads file name with parse into *dst, if the file exists.
func readInto[T any](r *statReader, name string, dst *T, parse func([]byte) (T, error)) bool {
	return r.parse(name, func(b []byte) (err error) { *dst, err = parse(b); return err })
}

// uint reads a one-number file into dst ("max" is math.MaxUint64).
func (r *statReader) uint(name string, dst *uint64) bool {
	return readInto(r, name, dst, func(b []byte) (uint64, error) { return parseUint(string(b)) })
}

// keys reads a "key value" file; nil if it is missing.
func (r *statReader) keys(name string) (kv map[string]uint64) {
	readInto(r, name, &kv, parseKeyValues)
	return kv
}

func (r *statReader) blkio(name string) (e []BlkioEntry) {
	readInto(r, name, &e, parseBlkio)
	return e
}

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

func readCpuacct(r *statReader, s *Stats) {
	u := &s.CPU.Usage
	r.uint("cpuacct.usage", &u.Total)
	readInto(r, "cpuacct.usage_percpu", &u.Percpu, parseUints)
	readInto(r, "cpuacct.usage_percpu_user", &u.PercpuUser, parseUints) // Linux 4.7
	readInto(r, "cpuacct.usage_percpu_sys", &u.PercpuKernel, parseUints)
	// Nanoseconds where the kernel has them (4.7+), else clock ticks.
	if !r.uint("cpuacct.usage_user", &u.User) || !r.uint("cpuacct.usage_sys", &u.Kernel) {
		if kv := r.keys("cpuacct.stat"); kv != nil {
			u.User = kv["user"] * (1e9 / userHZ)
			u.Kernel = kv["system"] * (1e9 / userHZ)
		}
	}
}

func readCPUThrottlingV1(r *statReader, s *Stats) {
	if kv := r.keys("cpu.stat"); kv != nil {
		s.CPU.Throttling = Throttling{kv["nr_periods"], kv["nr_throttled"], kv["throttled_time"]}
	}
}

func readCPUStatV2(r *statReader, s *Stats) {
	kv := r.keys("cpu.stat")
	if kv == nil {
		return
	}
	s.CPU.Usage.Total = kv["usage_usec"] * 1000
	s.CPU.Usage.User = kv["user_usec"] * 1000
	s.CPU.Usage.Kernel = kv["system_usec"] * 1000
	s.CPU.Throttling = Throttling{kv["nr_periods"], kv["nr_throttled"], kv["throttled_usec"] * 1000}
}

func readCPUSet(r *statReader, s *Stats) {
	c := &s.CPUSet
	list := func(dst *[]uint16, names ...string) {
		for _, n := range names {
			if readInto(r, n, dst, ParseList) {
				return
			}
		}
	}
	if r.v2 {
		list(&c.CPUs, "cpuset.cpus.effective", "cpuset.cpus")
		list(&c.Mems, "cpuset.mems.effective", "cpuset.mems")
		return
	}
	list(&c.CPUs, "cpuset.effective_cpus", "cpuset.cpus")
	list(&c.Mems, "cpuset.effective_mems", "cpuset.mems")
	for name, dst := range map[string]*uint64{
		"cpuset.cpu_exclusive": &c.CPUExclusive, "cpuset.mem_hardwall": &c.MemHardwall,
		"cpuset.mem_exclusive": &c.MemExclusive, "cpuset.memory_migrate": &c.MemoryMigrate,
		"cpuset.memory_spread_page": &c.MemorySpreadPage, "cpuset.memory_spread_slab": &c.MemorySpreadSlab,
		"cpuset.memory_pressure": &c.MemoryPressure, "cpuset.sched_load_balance": &c.SchedLoadBalance,
	} {
		r.uint(name, dst)
	}
	readInto(r, "cpuset.sched_relax_domain_level", &c.SchedRelaxDomainLevel, func(b []byte) (int64, error) {
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	})
}

func readMemoryV1(r *statReader, s *Stats) {
	mem := &s.Memory
	if kv := r.keys("memory.stat"); kv != nil {
		mem.Raw = kv
		mem.Cache = kv["cache"]
		if v, ok := kv["total_cache"]; ok { // hierarchical, like usage_in_bytes
			mem.Cache = v
		}
	}
	entry := func(e *MemoryEntry, prefix string) {
		r.uint(prefix+"usage_in_bytes", &e.Usage)
		r.uint(prefix+"limit_in_bytes", &e.Limit)
		r.uint(prefix+"max_usage_in_bytes", &e.Max)
		r.uint(prefix+"failcnt", &e.Failcnt)
	}
	entry(&mem.Usage, "memory.")
	entry(&mem.Swap, "memory.memsw.")
	entry(&mem.Kernel, "memory.kmem.")
	entry(&mem.KernelTCP, "memory.kmem.tcp.")
}

func readMemoryV2(r *statReader, s *Stats) {
	mem := &s.Memory
	if kv := r.keys("memory.stat"); kv != nil {
		mem.Raw = kv
		mem.Cache = kv["file"]
	}
	r.uint("memory.current", &mem.Usage.Usage)
	r.uint("memory.max", &mem.Usage.Limit)
	r.uint("memory.peak", &mem.Usage.Max) // Linux 5.19
	if ev := r.keys("memory.events"); ev != nil {
		mem.Usage.Failcnt = ev["max"]
	}
	if r.uint("memory.swap.current", &mem.Swap.Usage) {
		mem.Swap.Usage += mem.Usage.Usage
		r.uint("memory.swap.max", &mem.Swap.Limit)
		if mem.Swap.Limit != math.MaxUint64 && mem.Usage.Limit != math.MaxUint64 {
			mem.Swap.Limit += mem.Usage.Limit
		} else {
			mem.Swap.Limit = math.MaxUint64
		}
		if ev := r.keys("memory.swap.events"); ev != nil {
			mem.Swap.Failcnt = ev["max"]
		}
	}
}

func readPids(r *statReader, s *Stats) {
	r.uint("pids.current", &s.Pids.Current)
	if r.uint("pids.max", &s.Pids.Limit) && s.Pids.Limit == math.MaxUint64 {
		s.Pids.Limit = 0 // "max": unlimited
	}
}

func readBlkioV1(r *statReader, s *Stats) {
	b := &s.Blkio
	b.IoServiceBytesRecursive = r.blkio("blkio.throttle.io_service_bytes_recursive")
	b.IoServicedRecursive = r.blkio("blkio.throttle.io_serviced_recursive")
	// The cfq (before 5.0) or bfq scheduler's own counters, where present.
	for _, p := range []string{"blkio.", "blkio.bfq."} {
		if _, ok := r.read(p + "io_serviced_recursive"); !ok {
			continue
		}
		if len(b.IoServiceBytesRecursive) == 0 && len(b.IoServicedRecursive) == 0 {
			b.IoServiceBytesRecursive = r.blkio(p + "io_service_bytes_recursive")
			b.IoServicedRecursive = r.blkio(p + "io_serviced_recursive")
		}
		b.IoQueuedRecursive = r.blkio(p + "io_queued_recursive")
		b.IoServiceTimeRecursive = r.blkio(p + "io_service_time_recursive")
		b.IoWaitTimeRecursive = r.blkio(p + "io_wait_time_recursive")
		b.IoMergedRecursive = r.blkio(p + "io_merged_recursive")
		b.IoTimeRecursive = r.blkio(p + "time_recursive")
		b.SectorsRecursive = r.blkio(p + "sectors_recursive")
		break
	}
}

func readIOStatV2(r *statReader, s *Stats) {
	r.parse("io.stat", func(b []byte) (err error) {
		s.Blkio.IoServiceBytesRecursive, s.Blkio.IoServicedRecursive, err = parseIOStat(b)
		return err
	})
}

func readHugetlb(r *statReader, s *Stats) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		r.err = fmt.Errorf("list cgroup %s: %w", r.dir, err)
		return
	}
	usage := ".usage_in_bytes"
	if r.v2 {
		usage = ".current"
	}
	for _, e := range ents {
		size, ok1 := strings.CutPrefix(e.Name(), "hugetlb.")
		size, ok2 := strings.CutSuffix(size, usage)
		if !ok1 || !ok2 || strings.Contains(size, ".") {
			continue // not a usage file, or a .rsvd one
		}
		var h HugetlbStats
		p := "hugetlb." + size + "."
		if r.v2 {
			r.uint(p+"current", &h.Usage)
			if ev := r.keys(p + "events"); ev != nil {
				h.Failcnt = ev["max"]
			}
		} else {
			r.uint(p+"usage_in_bytes", &h.Usage)
			r.uint(p+"max_usage_in_bytes", &h.Max)
			r.uint(p+"failcnt", &h.Failcnt)
		}
		s.Hugetlb[size] = h
	}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/specjson"
)

// resourceFlags are the limit flags of `update` (as runc's), which fill in
// a LinuxResources; only the flags given are set.
type resourceFlags struct {
	r specs.LinuxResources
}

func (f *resourceFlags) memory() *specs.LinuxMemory {
	if f.r.Memory == nil {
		f.r.Memory = &specs.LinuxMemory{}
	}
	return f.r.Memory
}

func (f *resourceFlags) cpu() *specs.LinuxCPU {
	if f.r.CPU == nil {
		f.r.CPU = &specs.LinuxCPU{}
	}
	return f.r.CPU
}

// bytes defines a flag taking a size (parseBytes).
func (f *resourceFlags) bytes(fs *flagSet, name, help string, set func(v int64)) {
	fs.funcVar(name, "", "BYTES", help, func(s string) error {
		v, err := parseBytes(s)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		set(v)
		return nil
	})
}

// int defines a flag taking an integer.
func (f *resourceFlags) int(fs *flagSet, name, help string, set func(v int64) error) {
	fs.funcVar(name, "", "N", help, func(s string) error {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("--%s: %q is not a number", name, s)
		}
		if err := set(v); err != nil {
			return fmt.Errorf("--%s %d: %w", name, v, err)
		}
		return nil
	})
}

func ok[T any](set func(T)) func(T) error { return func(v T) error { set(v); return nil } }

func u64(v int64) *uint64 { u := uint64(v); return &u }

// common defines the flags `update` and `run` share.
func (f *resourceFlags) common(fs *flagSet) {
	f.bytes(fs, "memory", "memory limit (-1: none; suffixes k, m, g)", func(v int64) { f.memory().Limit = &v })
	f.bytes(fs, "memory-swap", "memory+swap limit (-1: unlimited swap)", func(v int64) { f.memory().Swap = &v })
	fs.funcVar("cpuset-cpus", "", "LIST", "cpus to use (0-3,5)", func(s string) error { f.cpu().Cpus = s; return nil })
	f.int(fs, "pids-limit", "maximum number of processes (0 or -1: none)", ok(func(v int64) { f.r.Pids = &specs.LinuxPids{Limit: &v} }))
}

// define defines runc's flags of `update`.
func (f *resourceFlags) define(fs *flagSet) {
	f.common(fs)
	f.bytes(fs, "memory-reservation", "memory soft limit", func(v int64) { f.memory().Reservation = &v })
	f.bytes(fs, "kernel-memory", "obsolete, ignored as by runc", func(v int64) { f.memory().Kernel = &v })
	f.bytes(fs, "kernel-memory-tcp", "kernel TCP buffer limit (cgroup v1)", func(v int64) { f.memory().KernelTCP = &v })
	f.int(fs, "cpu-share", "cpu shares (relative weight)", ok(func(v int64) { f.cpu().Shares = u64(v) }))
	f.int(fs, "cpu-period", "cpu CFS period in microseconds", ok(func(v int64) { f.cpu().Period = u64(v) }))
	f.int(fs, "cpu-quota", "cpu CFS quota in microseconds per period (-1: none)", ok(func(v int64) { f.cpu().Quota = &v }))
	f.int(fs, "cpu-burst", "cpu CFS burst in microseconds", ok(func(v int64) { f.cpu().Burst = u64(v) }))
	f.int(fs, "cpu-rt-period", "realtime period in microseconds (cgroup v1)", ok(func(v int64) { f.cpu().RealtimePeriod = u64(v) }))
	f.int(fs, "cpu-rt-runtime", "realtime runtime in microseconds (cgroup v1)", ok(func(v int64) { f.cpu().RealtimeRuntime = &v }))
	f.int(fs, "cpu-idle", "1: SCHED_IDLE for the box's cgroup", ok(func(v int64) { f.cpu().Idle = &v }))
	fs.funcVar("cpuset-mems", "", "LIST", "memory nodes to use", func(s string) error { f.cpu().Mems = s; return nil })
	f.int(fs, "blkio-weight", "block IO weight, 10 to 1000", f.ioWeight)
	fs.funcVar("l3-cache-schema", "", "SCHEMA", "Intel RDT: not supported", func(string) error {
		return fmt.Errorf("--l3-cache-schema: Intel RDT is not supported by nsbox")
	})
	fs.funcVar("mem-bw-schema", "", "SCHEMA", "Intel RDT: not supported", func(string) error {
		return fmt.Errorf("--mem-bw-schema: Intel RDT is not supported by nsbox")
	})
}

// defineRun defines the limit flags of `nsbox run`.
func (f *resourceFlags) defineRun(fs *flagSet) {
	f.common(fs)
	fs.funcVar("cpus", "", "N", "cpu time, in cpus (1.5: one and a half)", func(s string) error {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n <= 0 || n > 1e4 {
			return fmt.Errorf("--cpus %q: want a positive number of cpus", s)
		}
		period := uint64(100000)
		quota := int64(n * float64(period))
		if quota < 1000 {
			return fmt.Errorf("--cpus %q: below the kernel's least quota (0.01)", s)
		}
		f.cpu().Quota, f.cpu().Period = &quota, &period
		return nil
	})
	f.int(fs, "cpu-weight", "relative cpu weight, 1 to 10000 (100: the default)", func(v int64) error {
		if v < 1 || v > 10000 {
			return errors.New("want 1 to 10000")
		}
		f.cpu().Shares = u64(int64(weightToShares(uint64(v))))
		return nil
	})
	f.int(fs, "io-weight", "relative block IO weight, 10 to 1000", f.ioWeight)
	for _, d := range []struct {
		name string
		list func() *[]specs.LinuxThrottleDevice
	}{
		{"device-read-bps", func() *[]specs.LinuxThrottleDevice { return &f.blockIO().ThrottleReadBpsDevice }},
		{"device-write-bps", func() *[]specs.LinuxThrottleDevice { return &f.blockIO().ThrottleWriteBpsDevice }},
	} {
		fs.funcVar(d.name, "", "DEV:RATE", "limit "+strings.TrimPrefix(d.name, "device-")+" of block device DEV (repeatable)", func(s string) error {
			t, err := throttleDevice(s)
			if err != nil {
				return fmt.Errorf("--%s: %w", d.name, err)
			}
			*d.list() = append(*d.list(), t)
			return nil
		})
	}
}

func (f *resourceFlags) ioWeight(v int64) error {
	if v < 10 || v > 1000 {
		return errors.New("want 10 to 1000")
	}
	f.blockIO().Weight = new(uint16(v))
	return nil
}

func (f *resourceFlags) blockIO() *specs.LinuxBlockIO {
	if f.r.BlockIO == nil {
		f.r.BlockIO = &specs.LinuxBlockIO{}
	}
	return f.r.BlockIO
}

// set reports whether any limit flag was given.
func (f *resourceFlags) set() bool {
	r := f.r
	return r.Memory != nil || r.CPU != nil || r.Pids != nil || r.BlockIO != nil
}

// weightToShares is the v1 cpu.shares that nsbox turns back into v2
// cpu.weight w exactly (cgroups.SharesToWeight rounds down).
func weightToShares(w uint64) uint64 {
	return 2 + ((w-1)*262142+9998)/9999
}

// throttleDevice reads DEV:RATE: a block device path (or MAJOR:MINOR) and
// a rate in bytes per second.
func throttleDevice(s string) (specs.LinuxThrottleDevice, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return specs.LinuxThrottleDevice{}, fmt.Errorf("%q: want DEVICE:RATE, as /dev/sda:10m", s)
	}
	dev, rate := s[:i], s[i+1:]
	r, err := parseBytes(rate)
	if err != nil || r <= 0 {
		return specs.LinuxThrottleDevice{}, fmt.Errorf("%q: rate %q is not a size like 10m", s, rate)
	}
	var t specs.LinuxThrottleDevice
	t.Rate = uint64(r)
	if maj, min, ok := strings.Cut(dev, ":"); ok && !strings.HasPrefix(dev, "/") {
		a, err1 := strconv.ParseInt(maj, 10, 64)
		b, err2 := strconv.ParseInt(min, 10, 64)
		if err1 != nil || err2 != nil {
			return t, fmt.Errorf("%q: device %q is neither a path nor MAJOR:MINOR", s, dev)
		}
		t.Major, t.Minor = a, b
		return t, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return t, fmt.Errorf("%q: %w", s, &os.PathError{Op: "stat", Path: dev, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return t, fmt.Errorf("%q: %s is not a block device", s, dev)
	}
	t.Major, t.Minor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	return t, nil
}

// parseBytes reads a size such as 512, 64k, 256m, 1.5g (binary units) or
// -1.
func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(mult) >= 1<<63 {
		return 0, fmt.Errorf("%q is not a size like 512m", s)
	}
	return int64(v * float64(mult)), nil
}

func cmdUpdate(g *global, args []string) int {
	var f resourceFlags
	var file string
	fs := newFlagSet("update", "[flags] ID", "Change the resource limits of a box (runc's flags, or -r FILE with a linux.resources JSON; '-' reads standard input).")
	fs.stringVar(&file, "resources", "r", "FILE", "linux.resources JSON to apply ('-': standard input)")
	f.define(fs)
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	r := &f.r
	if file != "" {
		var in io.Reader = os.Stdin
		if file != "-" {
			fh, err := os.Open(file)
			if err != nil {
				return fail(g, fmt.Errorf("--resources: %w", err))
			}
			defer fh.Close()
			in = fh
		}
		var fromFile specs.LinuxResources
		b, err := io.ReadAll(in)
		if err == nil {
			err = specjson.Unmarshal(b, &fromFile)
		}
		if err != nil {
			return fail(g, fmt.Errorf("--resources %s: %w", file, err))
		}
		// Flags given as well take precedence, as with runc.
		r = nsbox.MergeResources(&fromFile, &f.r)
	}
	if err := rt.Update(pos[0], r); err != nil {
		return fail(g, err)
	}
	return 0
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox"
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

func (f *resourceFlags) define(fs *flagSet) {
	bytesFlag := func(name, help string, set func(v int64)) {
		fs.funcVar(name, "", "BYTES", help, func(s string) error {
			v, err := parseBytes(s)
			if err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
			set(v)
			return nil
		})
	}
	intFlag := func(name, help string, set func(v int64)) {
		fs.funcVar(name, "", "N", help, func(s string) error {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("--%s: %q is not a number", name, s)
			}
			set(v)
			return nil
		})
	}
	u64 := func(v int64) *uint64 { u := uint64(v); return &u }
	bytesFlag("memory", "memory limit (-1: none; suffixes k, m, g)", func(v int64) { f.memory().Limit = &v })
	bytesFlag("memory-reservation", "memory soft limit", func(v int64) { f.memory().Reservation = &v })
	bytesFlag("memory-swap", "memory+swap limit (-1: unlimited swap)", func(v int64) { f.memory().Swap = &v })
	bytesFlag("kernel-memory", "obsolete, ignored as by runc", func(v int64) { f.memory().Kernel = &v })
	bytesFlag("kernel-memory-tcp", "kernel TCP buffer limit (cgroup v1)", func(v int64) { f.memory().KernelTCP = &v })
	intFlag("cpu-share", "cpu shares (relative weight)", func(v int64) { f.cpu().Shares = u64(v) })
	intFlag("cpu-period", "cpu CFS period in microseconds", func(v int64) { f.cpu().Period = u64(v) })
	intFlag("cpu-quota", "cpu CFS quota in microseconds per period (-1: none)", func(v int64) { f.cpu().Quota = &v })
	intFlag("cpu-burst", "cpu CFS burst in microseconds", func(v int64) { f.cpu().Burst = u64(v) })
	intFlag("cpu-rt-period", "realtime period in microseconds (cgroup v1)", func(v int64) { f.cpu().RealtimePeriod = u64(v) })
	intFlag("cpu-rt-runtime", "realtime runtime in microseconds (cgroup v1)", func(v int64) { f.cpu().RealtimeRuntime = &v })
	intFlag("cpu-idle", "1: SCHED_IDLE for the box's cgroup", func(v int64) { f.cpu().Idle = &v })
	fs.funcVar("cpuset-cpus", "", "LIST", "cpus to use (0-3,5)", func(s string) error { f.cpu().Cpus = s; return nil })
	fs.funcVar("cpuset-mems", "", "LIST", "memory nodes to use", func(s string) error { f.cpu().Mems = s; return nil })
	intFlag("pids-limit", "maximum number of processes (0 or -1: none)", func(v int64) { f.r.Pids = &specs.LinuxPids{Limit: &v} })
	intFlag("blkio-weight", "block IO weight, 10 to 1000", func(v int64) {
		w := uint16(v)
		f.r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	})
	fs.funcVar("l3-cache-schema", "", "SCHEMA", "Intel RDT: not supported", func(string) error {
		return fmt.Errorf("--l3-cache-schema: Intel RDT is not supported by nsbox")
	})
	fs.funcVar("mem-bw-schema", "", "SCHEMA", "Intel RDT: not supported", func(string) error {
		return fmt.Errorf("--mem-bw-schema: Intel RDT is not supported by nsbox")
	})
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
		dec := json.NewDecoder(in)
		if err := dec.Decode(&fromFile); err != nil {
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

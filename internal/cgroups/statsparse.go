package cgroups

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parsers of the cgroup files statistics come from.

// parseUint parses a one-number cgroup file; "max" is math.MaxUint64.
func parseUint(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return math.MaxUint64, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// parseUints parses a line of space-separated numbers (cpuacct.usage_percpu).
func parseUints(b []byte) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Fields(string(b)) {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// splitLines splits a cgroup file into the fields of its non-empty lines.
func splitLines(b []byte) [][]string {
	var out [][]string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// parseKeyValues parses "key value" lines (memory.stat, cpu.stat,
// memory.events, memory.oom_control).
func parseKeyValues(b []byte) (map[string]uint64, error) {
	kv := map[string]uint64{}
	for _, f := range splitLines(b) {
		if len(f) != 2 {
			return nil, fmt.Errorf("malformed line %q", strings.Join(f, " "))
		}
		v, err := parseUint(f[1])
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", f[0], err)
		}
		kv[f[0]] = v
	}
	return kv, nil
}

// parseBlkio parses v1 blkio files: "MAJ:MIN Op value" or "MAJ:MIN value"
// lines, and a closing "Total value" that is left out.
func parseBlkio(b []byte) ([]BlkioEntry, error) {
	var out []BlkioEntry
	for _, f := range splitLines(b) {
		if f[0] == "Total" {
			continue
		}
		if len(f) != 2 && len(f) != 3 {
			return nil, fmt.Errorf("malformed line %q", strings.Join(f, " "))
		}
		op := ""
		if len(f) == 3 {
			op = f[1]
		}
		e, err := parseDeviceValue(f[0], op, f[len(f)-1])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// parseIOStat parses v2 io.stat ("MAJ:MIN rbytes=N wbytes=N rios=N ...")
// into bytes and operations per device and direction.
func parseIOStat(b []byte) (bytes, ios []BlkioEntry, err error) {
	ops := map[string]string{"r": "Read", "w": "Write", "d": "Discard"}
	for _, f := range splitLines(b) {
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			list := &bytes
			dir, ok := strings.CutSuffix(k, "bytes")
			if !ok {
				list = &ios
				dir, ok = strings.CutSuffix(k, "ios")
			}
			if op := ops[dir]; ok && op != "" { // not cost.*, rwait, ...
				e, err := parseDeviceValue(f[0], op, v)
				if err != nil {
					return nil, nil, err
				}
				*list = append(*list, e)
			}
		}
	}
	return bytes, ios, nil
}

// parseDeviceValue makes an entry of "MAJ:MIN", an op and a number.
func parseDeviceValue(dev, op, value string) (BlkioEntry, error) {
	maj, min, _ := strings.Cut(dev, ":")
	a, err1 := strconv.ParseUint(maj, 10, 64)
	b, err2 := strconv.ParseUint(min, 10, 64)
	v, err3 := strconv.ParseUint(value, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return BlkioEntry{}, fmt.Errorf("malformed entry %q %q %q: %w", dev, op, value, err)
	}
	return BlkioEntry{Major: a, Minor: b, Op: op, Value: v}, nil
}

// ParseList parses the kernel's list format of cpus and memory nodes
// ("0-3,8,10-11").
func ParseList(b []byte) ([]uint16, error) {
	var out []uint16
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 10, 16)
		z, err2 := strconv.ParseUint(hi, 10, 16)
		if err := errors.Join(err1, err2); err != nil || z < a {
			return nil, fmt.Errorf("malformed list %q", s)
		}
		for i := a; i <= z; i++ {
			out = append(out, uint16(i))
		}
	}
	return out, nil
}

package seccomp

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox/internal/specjson"
)

// A profile file is either an OCI linux.seccomp object or a profile in the
// format Docker and podman ship (/usr/share/containers/seccomp.json): the
// same object plus "archMap" (an architecture with its
// sub-architectures) and, per rule, "includes"/"excludes" conditions on
// the box's capabilities, the architecture and the kernel version.

// fileProfile is a profile file as written.
type fileProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet"`
	Architectures    []specs.Arch             `json:"architectures"`
	Flags            []specs.LinuxSeccompFlag `json:"flags"`
	ListenerPath     string                   `json:"listenerPath"`
	ListenerMetadata string                   `json:"listenerMetadata"`
	ArchMap          []struct {
		Arch    specs.Arch   `json:"architecture"`
		SubArch []specs.Arch `json:"subArchitectures"`
	} `json:"archMap"`
	Syscalls []fileRule `json:"syscalls"`
}

type fileRule struct {
	specs.LinuxSyscall
	Name     string     `json:"name"` // an old spelling of names: [name]
	Includes *condition `json:"includes"`
	Excludes *condition `json:"excludes"`
}

// condition holds when every capability is in the box's bounding set, the
// architecture is one of arches, and the kernel is at least minKernel
// (those given).
type condition struct {
	Caps      []string `json:"caps"`
	Arches    []string `json:"arches"`
	MinKernel string   `json:"minKernel"`
}

// Target is what a profile file's conditions are decided against.
type Target struct {
	Bounding []string // capability names, "CAP_..."
	Kernel   string   // the running kernel's release, as uname -r
}

// ParseFile reads a profile file (either format) into the OCI profile it
// means for target t, and checks that it compiles. Errors name the field
// at fault.
func ParseFile(data []byte, t Target) (*specs.LinuxSeccomp, error) {
	var f fileProfile
	if err := specjson.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	p := specs.LinuxSeccomp{DefaultAction: f.DefaultAction, DefaultErrnoRet: f.DefaultErrnoRet, Architectures: f.Architectures,
		Flags: f.Flags, ListenerPath: f.ListenerPath, ListenerMetadata: f.ListenerMetadata}
	native, _ := nativeArch()
	if len(p.Architectures) == 0 {
		for _, m := range f.ArchMap {
			if string(m.Arch) == native {
				p.Architectures = append([]specs.Arch{m.Arch}, m.SubArch...)
			}
		}
	}
	for i, r := range f.Syscalls {
		if r.Name != "" {
			r.Names = append(r.Names, r.Name)
		}
		in, err := r.Includes.holds(t, native, true)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d].includes: %w", i, err)
		}
		out, err := r.Excludes.holds(t, native, false)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d].excludes: %w", i, err)
		}
		if in && !out {
			p.Syscalls = append(p.Syscalls, r.LinuxSyscall)
		}
	}
	if _, err := Compile(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// holds decides condition c for target t on architecture arch. For
// includes (all), every given part must hold; for excludes, any. A nil
// condition holds for includes and not for excludes.
func (c *condition) holds(t Target, arch string, all bool) (bool, error) {
	if c == nil {
		return all, nil
	}
	var parts []bool
	if len(c.Caps) > 0 {
		has := map[string]bool{}
		for _, n := range t.Bounding {
			has[n] = true
		}
		ok := all
		for _, n := range c.Caps {
			if all {
				ok = ok && has[n]
			} else {
				ok = ok || has[n]
			}
		}
		parts = append(parts, ok)
	}
	if len(c.Arches) > 0 {
		ok := false
		for _, a := range c.Arches {
			ok = ok || archMatches(a, arch)
		}
		parts = append(parts, ok)
	}
	if c.MinKernel != "" {
		min, err := kernelVersion(c.MinKernel)
		if err != nil {
			return false, fmt.Errorf("minKernel: %w", err)
		}
		have, err := kernelVersion(t.Kernel)
		if err != nil {
			return false, fmt.Errorf("the running kernel: %w", err)
		}
		parts = append(parts, have[0] > min[0] || have[0] == min[0] && have[1] >= min[1])
	}
	if len(parts) == 0 {
		return all, nil
	}
	ok := all
	for _, p := range parts {
		if all {
			ok = ok && p
		} else {
			ok = ok || p
		}
	}
	return ok, nil
}

// archMatches: a (a Go or Docker name, "amd64", "x86_64", or a
// SCMP_ARCH_ name) is architecture native (a SCMP_ARCH_ name).
func archMatches(a, native string) bool {
	aliases := map[string]string{"amd64": "SCMP_ARCH_X86_64", "x86_64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86",
		"386": "SCMP_ARCH_X86", "x32": "SCMP_ARCH_X32", "arm64": "SCMP_ARCH_AARCH64", "aarch64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM"}
	if s, ok := aliases[strings.ToLower(a)]; ok {
		a = s
	}
	return a == native
}

// kernelVersion reads the major and minor numbers of a release string
// ("6.1", "6.18.44-fc-v595").
func kernelVersion(v string) ([2]int, error) {
	var out [2]int
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return out, fmt.Errorf("kernel version %q: want MAJOR.MINOR", v)
	}
	for i := range out {
		digits := parts[i]
		if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
			digits = digits[:j]
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return out, fmt.Errorf("kernel version %q: want MAJOR.MINOR", v)
		}
		out[i] = n
	}
	return out, nil
}

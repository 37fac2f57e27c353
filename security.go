package nsbox

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/caps"
	"github.com/nsbox/nsbox/internal/seccomp"
)

// The security options of NewSpec. By default a box made by NewSpec gets
// the default capability set (caps.Default), no_new_privs, the masked and
// read-only paths below, and the built-in seccomp profile
// (seccomp.Default) for its final bounding set.

// DefaultMaskedPaths are hidden from a box (an empty read-only file or
// directory over them): what the kernel would tell about the host's
// hardware, keys and timers.
var DefaultMaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are read-only in a box: kernel settings and
// triggers.
var DefaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// unconfined is the profile WithSeccomp(nil) leaves until NewSpec ends:
// allow everything, which NewSpec turns into no filter at all.
func unconfined() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
}

// finishSecurity completes a spec from NewSpec once every option has run:
// the default seccomp profile for the final bounding set unless one was
// given, none for WithSeccomp(nil).
func finishSecurity(s *specs.Spec) {
	p := s.Linux.Seccomp
	switch {
	case p == nil:
		var bounding []string
		if s.Process.Capabilities != nil {
			bounding = s.Process.Capabilities.Bounding
		}
		s.Linux.Seccomp = seccomp.Default(bounding)
	case p.DefaultAction == specs.ActAllow && len(p.Syscalls) == 0 && len(p.Flags) == 0:
		s.Linux.Seccomp = nil
	}
}

// WithSeccomp gives the box seccomp profile p instead of the default; nil
// runs it unconfined (no filter).
func WithSeccomp(p *specs.LinuxSeccomp) SpecOpt {
	return func(s *specs.Spec) error {
		if p == nil {
			p = unconfined()
		}
		s.Linux.Seccomp = p
		return nil
	}
}

// WithSeccompFile reads the box's seccomp profile from file: an OCI
// linux.seccomp object, or a Docker or podman profile, whose rules for
// capabilities are decided by the bounding set the options before it
// left. "unconfined" runs the box without a filter, and "default" keeps
// the built-in profile.
func WithSeccompFile(file string) SpecOpt {
	return func(s *specs.Spec) error {
		switch file {
		case "unconfined":
			return WithSeccomp(nil)(s)
		case "default":
			s.Linux.Seccomp = nil
			return nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("seccomp profile: %w", err)
		}
		var uts unix.Utsname
		unix.Uname(&uts)
		t := seccomp.Target{Kernel: unix.ByteSliceToString(uts.Release[:])}
		if s.Process.Capabilities != nil {
			t.Bounding = s.Process.Capabilities.Bounding
		}
		p, err := seccomp.ParseFile(data, t)
		if err != nil {
			return fmt.Errorf("seccomp profile %s: %w", file, err)
		}
		return WithSeccomp(p)(s)
	}
}

// capNames reads capability names as users write them ("sys_admin",
// "CAP_SYS_ADMIN", "ALL") into canonical names; "ALL" is every
// capability the kernel knows.
func capNames(flag string, list []string) ([]string, error) {
	var out []string
	for _, n := range list {
		if strings.EqualFold(n, "ALL") {
			out = append(out, caps.All()...)
			continue
		}
		c, err := caps.Parse(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		out = append(out, caps.Name(c))
	}
	return out, nil
}

// WithCapAdd adds capabilities (names with or without CAP_, any case, or
// ALL) to the box's bounding, effective and permitted sets.
func WithCapAdd(names ...string) SpecOpt {
	return func(s *specs.Spec) error {
		add, err := capNames("--cap-add", names)
		if err != nil {
			return err
		}
		c := capsOf(s)
		for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
			*set = slices.Clone(*set) // the sets may share an array
			for _, n := range add {
				if !slices.Contains(*set, n) {
					*set = append(*set, n)
				}
			}
		}
		return nil
	}
}

// WithCapDrop removes capabilities (as WithCapAdd, or ALL) from every set
// of the box's process.
func WithCapDrop(names ...string) SpecOpt {
	return func(s *specs.Spec) error {
		drop, err := capNames("--cap-drop", names)
		if err != nil {
			return err
		}
		c := capsOf(s)
		for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted, &c.Inheritable, &c.Ambient} {
			*set = slices.DeleteFunc(slices.Clone(*set), func(n string) bool { return slices.Contains(drop, n) })
		}
		return nil
	}
}

func capsOf(s *specs.Spec) *specs.LinuxCapabilities {
	if s.Process.Capabilities == nil {
		s.Process.Capabilities = &specs.LinuxCapabilities{}
	}
	return s.Process.Capabilities
}

// WithPrivileged turns off what confines a box beyond its namespaces:
// it gets every capability (in its own user namespace; sharing the host's,
// every one the caller's bounding set holds), no seccomp filter, no masked
// or read-only paths, and setuid programs work again (no no_new_privs).
// Apply it after the options that choose the namespaces.
func WithPrivileged(s *specs.Spec) error {
	all := caps.All()
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace }) {
		// In the host's user namespace, a capability outside the
		// bounding set cannot be had (a new or joined user namespace
		// starts with a full one), and asking for it would fail the start
		// (as podman does: the host's bounding set).
		bounding := caps.Bounding()
		all = slices.DeleteFunc(all, func(name string) bool {
			c, err := caps.Parse(name)
			return err != nil || !bounding.Has(c)
		})
	}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	s.Process.NoNewPrivileges = false
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	return WithSeccomp(nil)(s)
}

// rlimitNames are the resource names of WithRlimit, as ulimit and Docker
// spell them.
var rlimitNames = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
	"locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
	"nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
	"rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

// ParseRlimit reads a resource limit as Docker's --ulimit writes it:
// TYPE=SOFT[:HARD] (HARD defaults to SOFT; -1 or "unlimited" for no limit).
func ParseRlimit(v string) (specs.POSIXRlimit, error) {
	name, vals, ok := strings.Cut(v, "=")
	typ := rlimitNames[strings.ToLower(name)]
	if !ok || typ == "" {
		return specs.POSIXRlimit{}, fmt.Errorf("--ulimit %q: want TYPE=SOFT[:HARD], TYPE one of %s", v, strings.Join(slices.Sorted(maps.Keys(rlimitNames)), ", "))
	}
	softS, hardS, hasHard := strings.Cut(vals, ":")
	if !hasHard {
		hardS = softS
	}
	parse := func(x string) (uint64, error) {
		if x == "-1" || x == "unlimited" {
			return unix.RLIM_INFINITY, nil
		}
		return strconv.ParseUint(x, 10, 64)
	}
	soft, err1 := parse(softS)
	hard, err2 := parse(hardS)
	if err := errors.Join(err1, err2); err != nil {
		return specs.POSIXRlimit{}, fmt.Errorf("--ulimit %q: limits are numbers, -1 or unlimited", v)
	}
	if soft > hard {
		return specs.POSIXRlimit{}, fmt.Errorf("--ulimit %q: the soft limit is above the hard one", v)
	}
	return specs.POSIXRlimit{Type: typ, Soft: soft, Hard: hard}, nil
}

// WithRlimit sets a resource limit of the box's process (replacing one of
// the same type).
func WithRlimit(r specs.POSIXRlimit) SpecOpt {
	return func(s *specs.Spec) error {
		s.Process.Rlimits = slices.DeleteFunc(s.Process.Rlimits, func(x specs.POSIXRlimit) bool { return x.Type == r.Type })
		s.Process.Rlimits = append(s.Process.Rlimits, r)
		return nil
	}
}

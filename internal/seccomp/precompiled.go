package seccomp

import (
	"slices"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/caps"
)

// The default profile (Default) for the capability sets nsbox gives boxes
// itself — caps.Default (nsbox run) and caps.Template (nsbox spec, hence most
// bundles) — is compiled ahead of time for this architecture
// (precompiled_$GOARCH.go, written by gen_precompiled.go): in a fresh
// process, compiling it takes 140–170 µs and 57 KB of short-lived memory on
// the path that starts a box. TestPrecompiledMatchesCompile keeps the two
// in step.
//
// precompiledSets lists the capability sets, in the order of the generated
// programs (precompiledProgs, nil where none was generated).
var precompiledSets = [][]string{caps.Default, caps.Template}

// precompiledProfiles are the default profiles of precompiledSets, made once.
var precompiledProfiles = sync.OnceValue(func() []*specs.LinuxSeccomp {
	ps := make([]*specs.LinuxSeccomp, len(precompiledSets))
	for i, set := range precompiledSets {
		ps[i] = Default(set)
	}
	return ps
})

// Precompiled returns the filter of cfg without compiling it, when cfg is
// (field by field) the default profile of one of precompiledSets and this
// architecture has its program. The program is shared: callers must not
// change it.
func Precompiled(cfg *specs.LinuxSeccomp) (*Filter, bool) {
	if cfg == nil || len(precompiledProgs) == 0 {
		return nil, false
	}
	for i, p := range precompiledProfiles() {
		if i < len(precompiledProgs) && precompiledProgs[i] != nil && sameProfile(cfg, p) {
			return &Filter{Prog: precompiledProgs[i]}, true
		}
	}
	return nil, false
}

// sameProfile reports whether a and b compile to the same filter: every
// field is equal (nil and empty lists alike).
func sameProfile(a, b *specs.LinuxSeccomp) bool {
	return a.DefaultAction == b.DefaultAction && sameUint(a.DefaultErrnoRet, b.DefaultErrnoRet) &&
		slices.Equal(a.Architectures, b.Architectures) && slices.Equal(a.Flags, b.Flags) &&
		a.ListenerPath == b.ListenerPath && a.ListenerMetadata == b.ListenerMetadata &&
		slices.EqualFunc(a.Syscalls, b.Syscalls, func(x, y specs.LinuxSyscall) bool {
			return x.Action == y.Action && sameUint(x.ErrnoRet, y.ErrnoRet) &&
				slices.Equal(x.Names, y.Names) && slices.Equal(x.Args, y.Args)
		})
}

func sameUint(a, b *uint) bool {
	return a == b || a != nil && b != nil && *a == *b
}

// A program as gen_precompiled.go writes it.
type sockFilters = []unix.SockFilter

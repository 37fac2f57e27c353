package seccomp

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestPrecompiledMatchesCompile: each precompiled program is what the
// compiler makes of its profile now (run gen_precompiled.go when it is not),
// Precompiled finds it for that profile and for a decoded copy of it, and
// any change to the profile makes it compile instead.
func TestPrecompiledMatchesCompile(t *testing.T) {
	if len(precompiledProgs) == 0 {
		if _, ok := Precompiled(Default(precompiledSets[0])); ok {
			t.Fatal("a precompiled filter on an architecture without programs")
		}
		return
	}
	if len(precompiledProgs) != len(precompiledSets) {
		t.Fatalf("%d programs for %d capability sets: run gen_precompiled.go", len(precompiledProgs), len(precompiledSets))
	}
	for i, set := range precompiledSets {
		fresh, err := CompileAnew(Default(set))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fresh.Prog, precompiledProgs[i]) {
			t.Fatalf("set %d: the precompiled program (%d instructions) is not what the compiler makes now (%d): run gen_precompiled.go",
				i, len(precompiledProgs[i]), len(fresh.Prog))
		}
		// A profile as a bundle's config.json gives it: decoded, so
		// equal field by field but not the same memory; flags empty.
		p := Default(set)
		p.Flags = []specs.LinuxSeccompFlag{}
		p.Syscalls = slices.Clone(p.Syscalls)
		f, ok := Precompiled(p)
		if !ok || !slices.Equal(f.Prog, fresh.Prog) || f.Flags != 0 || f.Notify {
			t.Fatalf("set %d: Precompiled did not give the program of its own profile", i)
		}
		if g, err := Compile(p); err != nil || &g.Prog[0] != &precompiledProgs[i][0] {
			t.Fatalf("set %d: Compile compiled the default profile anew (%v)", i, err)
		}
	}
	// Any difference compiles.
	errno := uint(38) // ENOSYS: the default is EPERM
	for name, change := range map[string]func(*specs.LinuxSeccomp){
		"one more rule":  func(p *specs.LinuxSeccomp) { p.Syscalls = append(p.Syscalls, allowTheTest) },
		"one name less":  func(p *specs.LinuxSeccomp) { p.Syscalls[0].Names = p.Syscalls[0].Names[1:] },
		"another errno":  func(p *specs.LinuxSeccomp) { p.DefaultErrnoRet = &errno },
		"a flag":         func(p *specs.LinuxSeccomp) { p.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_LOG"} },
		"another action": func(p *specs.LinuxSeccomp) { p.Syscalls[0].Action = specs.ActLog },
		"an argument": func(p *specs.LinuxSeccomp) {
			i := slices.IndexFunc(p.Syscalls, func(s specs.LinuxSyscall) bool { return len(s.Args) > 0 })
			p.Syscalls[i].Args = slices.Clone(p.Syscalls[i].Args)
			p.Syscalls[i].Args[0].Value++
		},
		"fewer architectures": func(p *specs.LinuxSeccomp) { p.Architectures = p.Architectures[:1] },
	} {
		p := Default(precompiledSets[0])
		change(p)
		if _, ok := Precompiled(p); ok {
			t.Errorf("%s: still the precompiled program", name)
		}
	}
	if _, ok := Precompiled(nil); ok {
		t.Error("a precompiled program for no profile")
	}
}

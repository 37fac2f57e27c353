// Package seccomp compiles an OCI seccomp configuration to a classic BPF
// program in pure Go (the binary stays static), for the native
// architecture and its 32-bit compat ABI.
//
// Semantics follow what runc gets from libseccomp: for each syscall, its
// rules with argument conditions are tried in order, then its rule without
// conditions, then the profile's default action. Unknown syscall names are
// ignored (as runc does); syscalls newer than any the profile names get
// ENOSYS rather than the default error, so that libc can fall back (runc's
// "enosys" patch), and so does clone3 when the profile does not name it.
// x32 system calls and unknown architectures are killed.
package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// arch is one ABI a filter can handle.
// sysTable maps syscall names to numbers, sorted by name.
type sysTable []struct {
	name string
	nr   uint32
}

// lookup returns the number of syscall name.
func (t sysTable) lookup(name string) (uint32, bool) {
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t) && t[lo].name == name {
		return t[lo].nr, true
	}
	return 0, false
}

// maxNr is the highest system call number of t.
func (t sysTable) maxNr() uint32 {
	var max uint32
	for _, s := range t {
		max = maxOf(max, s.nr)
	}
	return max
}

type arch struct {
	audit    uint32
	syscalls sysTable
	x32      bool // nr with bit 30 set under this audit arch is x32
}

// arches (tables_*_generated.go) are the ABIs this build filters: the
// machine's own and its compat one.

// knownArches are names the spec allows that nsbox cannot filter (their
// calls are killed, never let through unfiltered); the other family's
// ABIs are among them, since this machine cannot make their calls.
var knownArches = map[string]bool{
	"SCMP_ARCH_X86_64": true, "SCMP_ARCH_X86": true, "SCMP_ARCH_AARCH64": true, "SCMP_ARCH_ARM": true,
	"SCMP_ARCH_X32": true, "SCMP_ARCH_MIPS": true, "SCMP_ARCH_MIPS64": true, "SCMP_ARCH_MIPS64N32": true,
	"SCMP_ARCH_MIPSEL": true, "SCMP_ARCH_MIPSEL64": true, "SCMP_ARCH_MIPSEL64N32": true, "SCMP_ARCH_PPC": true,
	"SCMP_ARCH_PPC64": true, "SCMP_ARCH_PPC64LE": true, "SCMP_ARCH_S390": true, "SCMP_ARCH_S390X": true,
	"SCMP_ARCH_PARISC": true, "SCMP_ARCH_PARISC64": true, "SCMP_ARCH_RISCV64": true, "SCMP_ARCH_LOONGARCH64": true,
	"SCMP_ARCH_M68K": true, "SCMP_ARCH_SH": true, "SCMP_ARCH_SHEB": true,
}

// nativeArch and compatArch are the ABIs of the machine nsbox runs on.
func nativeArch() (native, compat string) {
	switch runtime.GOARCH {
	case "amd64":
		return "SCMP_ARCH_X86_64", "SCMP_ARCH_X86"
	case "arm64":
		return "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"
	case "386":
		return "SCMP_ARCH_X86", ""
	case "arm":
		return "SCMP_ARCH_ARM", ""
	}
	return "", ""
}

// Filter is a compiled filter.
type Filter struct {
	Prog  []unix.SockFilter
	Flags uintptr // SECCOMP_FILTER_FLAG_*
	// Notify: the filter uses SCMP_ACT_NOTIFY (it needs a listener).
	Notify bool
}

var flagValues = map[specs.LinuxSeccompFlag]uintptr{
	"SECCOMP_FILTER_FLAG_TSYNC":              unix.SECCOMP_FILTER_FLAG_TSYNC,
	"SECCOMP_FILTER_FLAG_LOG":                unix.SECCOMP_FILTER_FLAG_LOG,
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW":         unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

// action is a SECCOMP_RET_* value with its data.
type action uint32

func actionOf(a specs.LinuxSeccompAction, errnoRet *uint, defaultErrno uint32) (action, error) {
	errno := defaultErrno
	if errnoRet != nil {
		if *errnoRet > 0xffff {
			return 0, fmt.Errorf("errnoRet %d out of range", *errnoRet)
		}
		errno = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		return action(unix.SECCOMP_RET_ERRNO | errno), nil
	case specs.ActTrace:
		return action(unix.SECCOMP_RET_TRACE | errno), nil
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	}
	return 0, fmt.Errorf("unknown action %q", a)
}

// cond is one argument comparison.
type cond struct {
	index      uint
	value, two uint64
	op         specs.LinuxSeccompOperator
}

// rule is one way a syscall may be decided: all conds hold, then act.
type rule struct {
	conds []cond
	act   action
}

// Compile builds the filter of cfg for this machine: a precompiled one when
// cfg is the default profile of a capability set nsbox gives boxes itself
// (see Precompiled).
func Compile(cfg *specs.LinuxSeccomp) (*Filter, error) {
	if f, ok := Precompiled(cfg); ok {
		return f, nil
	}
	return CompileAnew(cfg)
}

// CompileAnew builds the filter of cfg, never taking a precompiled one.
func CompileAnew(cfg *specs.LinuxSeccomp) (*Filter, error) {
	if cfg == nil {
		return nil, errors.New("no seccomp configuration")
	}
	f := &Filter{}
	for _, fl := range cfg.Flags {
		v, ok := flagValues[fl]
		if !ok {
			return nil, fmt.Errorf("linux.seccomp.flags: unknown flag %q", fl)
		}
		f.Flags |= v
	}
	defErrno := uint32(unix.EPERM)
	if cfg.DefaultErrnoRet != nil {
		if *cfg.DefaultErrnoRet > 0xffff {
			return nil, fmt.Errorf("linux.seccomp.defaultErrnoRet %d out of range", *cfg.DefaultErrnoRet)
		}
		defErrno = uint32(*cfg.DefaultErrnoRet)
	}
	def, err := actionOf(cfg.DefaultAction, nil, defErrno)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp.defaultAction: %w", err)
	}
	if cfg.DefaultAction == specs.ActNotify {
		return nil, errors.New("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default")
	}

	native, compat := nativeArch()
	if native == "" {
		return nil, fmt.Errorf("seccomp filters are not supported on %s", runtime.GOARCH)
	}
	handled := []string{native}
	for _, a := range cfg.Architectures {
		name := string(a)
		if _, ok := arches[name]; !ok && !knownArches[name] {
			return nil, fmt.Errorf("linux.seccomp.architectures: unknown architecture %q", name)
		}
		if name == compat {
			handled = append(handled, compat)
		}
	}

	// Rules per architecture, by syscall number.
	rules := make([][][]rule, len(handled))
	for i, name := range handled {
		rules[i] = make([][]rule, arches[name].syscalls.maxNr()+1)
	}
	for i, sc := range cfg.Syscalls {
		act, err := actionOf(sc.Action, sc.ErrnoRet, defErrno)
		if err != nil {
			return nil, fmt.Errorf("linux.seccomp.syscalls[%d]: %w", i, err)
		}
		if sc.Action == specs.ActNotify {
			f.Notify = true
		}
		var conds []cond
		for j, a := range sc.Args {
			if a.Index > 5 {
				return nil, fmt.Errorf("linux.seccomp.syscalls[%d].args[%d]: index %d (syscalls have 6 arguments)", i, j, a.Index)
			}
			switch a.Op {
			case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
				specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
			default:
				return nil, fmt.Errorf("linux.seccomp.syscalls[%d].args[%d]: unknown operator %q", i, j, a.Op)
			}
			conds = append(conds, cond{index: a.Index, value: a.Value, two: a.ValueTwo, op: a.Op})
		}
		if len(sc.Names) == 0 {
			return nil, fmt.Errorf("linux.seccomp.syscalls[%d]: no names", i)
		}
		// The calls that get no other rule share one list (capped, so
		// that appending to it copies).
		only := []rule{{conds: conds, act: act}}
		for _, name := range sc.Names {
			for k, an := range handled {
				nr, ok := arches[an].syscalls.lookup(name)
				if !ok {
					continue // unknown here: ignored, as runc does
				}
				if rules[k][nr] == nil {
					rules[k][nr] = only[:1:1]
				} else {
					rules[k][nr] = append(rules[k][nr], only[0])
				}
			}
		}
	}
	deny := def != unix.SECCOMP_RET_ALLOW && def != unix.SECCOMP_RET_LOG

	a := &asm{}
	dflt, enosys, kill := a.newLabel(), a.newLabel(), a.newLabel()
	archLabels := make([]label, len(handled))
	a.load(offArch)
	for i, an := range handled {
		archLabels[i] = a.newLabel()
		a.jeq(arches[an].audit, archLabels[i])
	}
	a.ret(unix.SECCOMP_RET_KILL_PROCESS)
	for i, an := range handled {
		a.place(archLabels[i])
		a.load(offNr)
		if arches[an].x32 {
			a.jge(x32SyscallBit, kill)
		}
		if deny {
			var max uint32
			for nr, rs := range rules[i] {
				if rs != nil {
					max = uint32(nr)
				}
			}
			a.jgt(max, enosys)
			if nr, ok := arches[an].syscalls.lookup("clone3"); ok && rules[i][nr] == nil {
				a.jeq(nr, enosys)
			}
		}
		a.tree(a.segments(rules[i], dflt))
	}
	// Blocks, then the endings they share (BPF jumps only forward).
	a.emitBlocks(dflt)
	a.place(dflt)
	a.ret(uint32(def))
	a.place(enosys)
	a.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	a.place(kill)
	a.ret(unix.SECCOMP_RET_KILL_PROCESS)
	prog, err := a.assemble()
	if err != nil {
		return nil, err
	}
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter of %d instructions exceeds the kernel's %d", len(prog), unix.BPF_MAXINSNS)
	}
	f.Prog = prog
	return f, nil
}

func maxOf(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// Offsets in struct seccomp_data (little-endian: an argument's low half
// first).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// x32SyscallBit marks the system calls of the x32 ABI under AUDIT_ARCH_X86_64.
const x32SyscallBit = 0x40000000

// Supported lists what Compile accepts, for the runtime's features.
func Supported() (actions, operators, archs, flags []string) {
	actions = []string{string(specs.ActKill), string(specs.ActKillProcess), string(specs.ActKillThread), string(specs.ActTrap),
		string(specs.ActErrno), string(specs.ActTrace), string(specs.ActAllow), string(specs.ActLog), string(specs.ActNotify)}
	operators = []string{string(specs.OpNotEqual), string(specs.OpLessThan), string(specs.OpLessEqual), string(specs.OpEqualTo),
		string(specs.OpGreaterEqual), string(specs.OpGreaterThan), string(specs.OpMaskedEqual)}
	for a := range arches {
		archs = append(archs, a)
	}
	for a := range knownArches {
		if _, dup := arches[a]; !dup {
			archs = append(archs, a)
		}
	}
	for f := range flagValues {
		flags = append(flags, string(f))
	}
	sort.Strings(archs)
	sort.Strings(flags)
	return
}

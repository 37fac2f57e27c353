package cgroups

// Device rules on cgroup v2. The v2 hierarchy has no devices.allow and
// devices.deny: a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the
// box's cgroup answers each device access instead. The rules are first
// reduced to what a v1 devices cgroup would hold (planDeviceFilter: a
// default and exceptions), then compiled to instructions
// (deviceProgram); both are pure. attachDeviceFilter loads the program and
// puts it in place of the one nsbox attached before, with the bpf(2) calls
// of devices_v2_unsafe.go.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// deviceFilter is what a list of device rules amounts to, as a v1 devices
// cgroup keeps it: a default answer, and exceptions that get the other.
type deviceFilter struct {
	// allow is the answer when no exception matches.
	allow bool
	// exceptions, in the order they were first made. Deny exceptions (when
	// allow is true) match an access that uses any of their access bits;
	// allow exceptions one that uses only their bits.
	exceptions []deviceMatch
}

// deviceMatch is a set of devices and the kinds of access to them.
type deviceMatch struct {
	typ          int32 // unix.BPF_DEVCG_DEV_CHAR or unix.BPF_DEVCG_DEV_BLOCK
	major, minor int64 // -1: any
	access       int32 // unix.BPF_DEVCG_ACC_* bits
}

const devAccessAll = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD

// String is m in the v1 devices.list syntax ("c 1:* rw").
func (m deviceMatch) String() string {
	num := func(n int64) string {
		if n == -1 {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	typ := "c"
	if m.typ == unix.BPF_DEVCG_DEV_BLOCK {
		typ = "b"
	}
	var acc strings.Builder
	for _, a := range []struct {
		bit int32
		c   byte
	}{{unix.BPF_DEVCG_ACC_READ, 'r'}, {unix.BPF_DEVCG_ACC_WRITE, 'w'}, {unix.BPF_DEVCG_ACC_MKNOD, 'm'}} {
		if m.access&a.bit != 0 {
			acc.WriteByte(a.c)
		}
	}
	return typ + " " + num(m.major) + ":" + num(m.minor) + " " + acc.String()
}

// parseDeviceRule turns an OCI device rule into a match; all is true for
// type "a", which (as in v1) stands for every device and access whatever
// its other fields say.
func parseDeviceRule(r specs.LinuxDeviceCgroup) (m deviceMatch, all bool, err error) {
	switch r.Type {
	case "", "a":
		return m, true, nil
	case "c":
		m.typ = unix.BPF_DEVCG_DEV_CHAR
	case "b":
		m.typ = unix.BPF_DEVCG_DEV_BLOCK
	default:
		return m, false, fmt.Errorf("type %q: want a, b or c", r.Type)
	}
	num := func(what string, p *int64) (int64, error) {
		if p == nil {
			return -1, nil
		}
		if *p < -1 || *p > math.MaxUint32 {
			return 0, fmt.Errorf("%s %d: want 0 to %d, or -1 for any", what, *p, uint32(math.MaxUint32))
		}
		return *p, nil
	}
	if m.major, err = num("major", r.Major); err != nil {
		return m, false, err
	}
	if m.minor, err = num("minor", r.Minor); err != nil {
		return m, false, err
	}
	access := r.Access
	if access == "" {
		access = "rwm"
	}
	for _, c := range access {
		switch c {
		case 'r':
			m.access |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			m.access |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			m.access |= unix.BPF_DEVCG_ACC_MKNOD
		default:
			return m, false, fmt.Errorf("access %q: want letters of rwm", r.Access)
		}
	}
	return m, false, nil
}

// planDeviceFilter evaluates rules in order, as the v1 devices cgroup and
// runc do: no rule yet means deny; a rule of type "a" sets the default
// and drops every exception; any other rule either adds an exception to
// the default (its access merged with an exception for the same devices)
// or takes access back from the exceptions it covers. So the last rule
// that matches an access decides it. A rule that would take access back
// from part of a wider exception (deny c 1:3 after allow c 1:*) is an
// error, as with runc: exceptions cannot have holes, and v1 would ignore
// it silently.
func planDeviceFilter(rules []specs.LinuxDeviceCgroup) (*deviceFilter, error) {
	f := &deviceFilter{}
	for i, r := range rules {
		m, all, err := parseDeviceRule(r)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		switch {
		case all:
			f = &deviceFilter{allow: r.Allow}
		case r.Allow != f.allow:
			f.add(m)
		default:
			if err := f.remove(m); err != nil {
				return nil, fmt.Errorf("linux.resources.devices[%d] (%s %s): %w", i, verb(r.Allow), m, err)
			}
		}
	}
	return f, nil
}

func verb(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// add makes m an exception, merging its access into an exception for the
// same devices if there is one.
func (f *deviceFilter) add(m deviceMatch) {
	for i := range f.exceptions {
		e := &f.exceptions[i]
		if e.typ == m.typ && e.major == m.major && e.minor == m.minor {
			e.access |= m.access
			return
		}
	}
	f.exceptions = append(f.exceptions, m)
}

// remove takes m's access away from the exceptions m covers.
func (f *deviceFilter) remove(m deviceMatch) error {
	overlap := func(a, b int64) bool { return a == -1 || b == -1 || a == b }
	covers := func(outer, inner int64) bool { return outer == -1 || outer == inner }
	kept := make([]deviceMatch, 0, len(f.exceptions))
	for _, e := range f.exceptions {
		if e.typ != m.typ || !overlap(e.major, m.major) || !overlap(e.minor, m.minor) || e.access&m.access == 0 {
			kept = append(kept, e)
			continue
		}
		if !covers(m.major, e.major) || !covers(m.minor, e.minor) {
			return fmt.Errorf("cannot make a hole in the earlier rule %s %s: put the narrower rule first", verb(!f.allow), e)
		}
		if e.access &^= m.access; e.access != 0 {
			kept = append(kept, e)
		}
	}
	f.exceptions = kept
	return nil
}

// bpfInsn is one eBPF instruction (struct bpf_insn).
type bpfInsn struct {
	op       uint8
	dst, src uint8 // registers r0 to r10
	off      int16
	imm      int32
}

// The instructions device programs use. Loads and ALU operations are
// 32-bit: the result is zero-extended to the 64-bit register.
func loadWord(dst, src uint8, off int16) bpfInsn {
	return bpfInsn{op: unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W, dst: dst, src: src, off: off}
}
func alu32(op, dst uint8, imm int32) bpfInsn {
	return bpfInsn{op: unix.BPF_ALU | op | unix.BPF_K, dst: dst, imm: imm}
}
func mov32Reg(dst, src uint8) bpfInsn {
	return bpfInsn{op: unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X, dst: dst, src: src}
}

// jumpImm compares 64-bit dst with imm, sign-extended; jumpReg with src.
// Their offsets are set by exceptionBlock.
func jumpImm(op, dst uint8, imm int32) bpfInsn {
	return bpfInsn{op: unix.BPF_JMP | op | unix.BPF_K, dst: dst, imm: imm}
}
func jumpReg(op, dst, src uint8) bpfInsn {
	return bpfInsn{op: unix.BPF_JMP | op | unix.BPF_X, dst: dst, src: src}
}
func exit() bpfInsn { return bpfInsn{op: unix.BPF_JMP | unix.BPF_EXIT} }

func (i bpfInsn) isJump() bool {
	return i.op&0x07 == unix.BPF_JMP && i.op&0xf0 != unix.BPF_EXIT
}

// bigEndian: struct bpf_insn's register nibbles follow the byte order.
var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// encode is the program as the kernel takes it.
func encode(insns []bpfInsn) []byte {
	b := make([]byte, 0, 8*len(insns))
	for _, i := range insns {
		regs := i.dst | i.src<<4
		if bigEndian {
			regs = i.dst<<4 | i.src
		}
		b = append(b, i.op, regs)
		b = binary.NativeEndian.AppendUint16(b, uint16(i.off))
		b = binary.NativeEndian.AppendUint32(b, uint32(i.imm))
	}
	return b
}

// deviceProgram compiles f into a BPF_PROG_TYPE_CGROUP_DEVICE program. Its
// context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
// u32 minor; }, access_type being access<<16 | type; it returns 1 to allow
// the access, 0 to deny it:
//
//	r2 = type; r3 = access; r4 = major; r5 = minor
//	for each exception: if it matches, return !default
//	return default
func deviceProgram(f *deviceFilter) []bpfInsn {
	insns := []bpfInsn{
		loadWord(2, 1, 0),
		alu32(unix.BPF_AND, 2, 0xffff),
		loadWord(3, 1, 0),
		alu32(unix.BPF_RSH, 3, 16),
		loadWord(4, 1, 4),
		loadWord(5, 1, 8),
	}
	for _, e := range f.exceptions {
		insns = append(insns, exceptionBlock(e, !f.allow)...)
	}
	return append(insns, alu32(unix.BPF_MOV, 0, verdict(f.allow)), exit())
}

// exceptionBlock returns answer when the access in r2..r5 matches e, and
// falls through to the instruction after it otherwise. An allow exception
// matches an access that needs only its bits; a deny exception one that
// needs any of them.
func exceptionBlock(e deviceMatch, answer bool) []bpfInsn {
	// Each test jumps past the end of the block when it fails; the offsets
	// are filled in once the block's length is known.
	b := []bpfInsn{jumpImm(unix.BPF_JNE, 2, e.typ)}
	if e.access != devAccessAll {
		if answer {
			b = append(b, jumpImm(unix.BPF_JSET, 3, devAccessAll&^e.access))
		} else {
			b = append(b, mov32Reg(1, 3), alu32(unix.BPF_AND, 1, e.access), jumpImm(unix.BPF_JEQ, 1, 0))
		}
	}
	for _, n := range []struct {
		reg uint8
		v   int64
	}{{4, e.major}, {5, e.minor}} {
		switch {
		case n.v == -1:
		case n.v <= math.MaxInt32:
			b = append(b, jumpImm(unix.BPF_JNE, n.reg, int32(n.v)))
		default:
			// An immediate is sign-extended: compare with a register
			// holding the zero-extended u32 instead.
			b = append(b, alu32(unix.BPF_MOV, 1, int32(uint32(n.v))), jumpReg(unix.BPF_JNE, n.reg, 1))
		}
	}
	b = append(b, alu32(unix.BPF_MOV, 0, verdict(answer)), exit())
	for i := range b {
		if b[i].isJump() {
			b[i].off = int16(len(b) - 1 - i)
		}
	}
	return b
}

func verdict(allow bool) int32 {
	if allow {
		return 1
	}
	return 0
}

// deviceFilterName names the programs nsbox attaches (at most 15
// characters), so that an update finds the one it replaces.
const deviceFilterName = "nsbox_devices"

// attachDeviceFilter makes rules the device filter of the cgroup2
// directory dir. It loads the program and attaches it with BPF_PROG_ATTACH
// and BPF_F_ALLOW_MULTI, so that the filters of parent cgroups still
// apply, then detaches the programs nsbox attached there before (between
// the two, both apply: an access is allowed only if both allow it). The
// attachment belongs to the cgroup, not to a file descriptor: it outlives
// this process and ends with the cgroup. Equivalent to bpftool's
// `prog load` then `cgroup attach DIR device PROG multi`.
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	f, err := planDeviceFilter(rules)
	if err != nil {
		return err
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("linux.resources.devices: attach device filter to cgroup %s: %s: %w", dir, what, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open", err)
	}
	defer unix.Close(fd)
	prog, err := loadDeviceProgram(deviceProgram(f), deviceFilterName)
	if err != nil {
		return fail("load BPF program", err)
	}
	defer unix.Close(prog)
	old, err := deviceFilters(fd)
	defer closeAll(old)
	if err != nil {
		return fail("BPF_PROG_QUERY for the previous filter", err)
	}
	if err := bpfProgAttach(unix.BPF_PROG_ATTACH, fd, prog, unix.BPF_F_ALLOW_MULTI); err != nil {
		return fail("BPF_PROG_ATTACH", err)
	}
	for _, p := range old {
		err := bpfProgAttach(unix.BPF_PROG_DETACH, fd, p, 0)
		if err != nil && !errors.Is(err, unix.ENOENT) { // ENOENT: someone else detached it
			return fail("BPF_PROG_DETACH of the previous filter", err)
		}
	}
	return nil
}

// deviceFilters opens the device programs nsbox attached to the cgroup
// open at fd (those attached there, not those inherited).
func deviceFilters(fd int) ([]int, error) {
	ids, err := attachedDevicePrograms(fd)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, id := range ids {
		p, err := bpfProgByID(id)
		if errors.Is(err, unix.ENOENT) {
			continue // detached since the query
		}
		if err != nil {
			return out, fmt.Errorf("open program %d: %w", id, err)
		}
		name, err := bpfProgName(p)
		if err != nil {
			unix.Close(p)
			return out, fmt.Errorf("program %d: %w", id, err)
		}
		if name != deviceFilterName {
			unix.Close(p)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

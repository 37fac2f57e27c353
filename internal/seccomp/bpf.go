package seccomp

import (
	"encoding/binary"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// asm assembles classic BPF with symbolic labels. A conditional jump to a
// label becomes one instruction when the label is within the 255
// instructions its 8-bit offset reaches, and otherwise a test that skips
// or falls through to a JA (with a 32-bit offset) to the label. Programs of
// any shape thus assemble, and stay short (fewer instructions for the
// kernel to check, convert and compile at every box's start).
type asm struct {
	ins    []insn
	at     []int   // where each label is (an index into ins), -1 until placed
	blocks []block // rule blocks, emitted after the decision trees
	// byKey and byList find the block of a list of rules: by content, and
	// (faster) by the list itself, which many calls share.
	byKey  map[string]label
	byList map[*rule]label
}

// label names a place in the program.
type label int32

// insn is an instruction, or a conditional jump to a label (to >= 0 and a
// conditional code): taken when the test holds, or when it fails if
// negate.
type insn struct {
	f      unix.SockFilter
	to     label // for a JA or a conditional jump: where it goes
	negate bool
}

type block struct {
	at    label
	rules []rule
}

func (a *asm) emit(code uint16, jt, jf uint8, k uint32) {
	a.ins = append(a.ins, insn{f: unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}, to: -1})
}

// newLabel returns a label to place later.
func (a *asm) newLabel() label {
	a.at = append(a.at, -1)
	return label(len(a.at) - 1)
}

// place puts l at the next instruction.
func (a *asm) place(l label) { a.at[l] = len(a.ins) }

func (a *asm) ja(l label) {
	a.ins = append(a.ins, insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, to: l})
}

func (a *asm) load(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 0, 0, off) }
func (a *asm) and(k uint32)    { a.emit(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0, 0, k) }
func (a *asm) ret(k uint32)    { a.emit(unix.BPF_RET|unix.BPF_K, 0, 0, k) }

// cond jumps to l when A <op> k holds.
func (a *asm) cond(op uint16, k uint32, l label) {
	a.ins = append(a.ins, insn{f: unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k}, to: l})
}

func (a *asm) jeq(k uint32, l label) { a.cond(unix.BPF_JEQ, k, l) }
func (a *asm) jgt(k uint32, l label) { a.cond(unix.BPF_JGT, k, l) }
func (a *asm) jge(k uint32, l label) { a.cond(unix.BPF_JGE, k, l) }

// jne jumps to l when A != k.
func (a *asm) jne(k uint32, l label) {
	a.cond(unix.BPF_JEQ, k, l)
	a.ins[len(a.ins)-1].negate = true
}

// segment is a run of syscall numbers, from lo up to the next segment's
// lo, decided by the code at label to.
type segment struct {
	lo uint32
	to label
}

// segments partitions the syscall numbers: each run of consecutive numbers
// with the same rules goes to one block, the gaps to dflt.
func (a *asm) segments(rules [][]rule, dflt label) []segment {
	var segs []segment
	add := func(lo uint32, to label) {
		if n := len(segs); n > 0 && segs[n-1].to == to {
			return // the previous run goes on
		}
		segs = append(segs, segment{lo, to})
	}
	next := uint32(0)
	for i, rs := range rules {
		if rs == nil {
			continue
		}
		nr := uint32(i)
		if nr > next {
			add(next, dflt)
		}
		add(nr, a.blockFor(rs))
		next = nr + 1
	}
	add(next, dflt)
	return segs
}

// tree emits a binary search over segs (A holds the syscall number).
func (a *asm) tree(segs []segment) {
	if len(segs) == 1 {
		a.ja(segs[0].to)
		return
	}
	mid := len(segs) / 2
	if len(segs) == 2 { // a jump straight to the right segment's code
		a.jge(segs[1].lo, segs[1].to)
		a.ja(segs[0].to)
		return
	}
	right := a.newLabel()
	a.jge(segs[mid].lo, right)
	a.tree(segs[:mid])
	a.place(right)
	a.tree(segs[mid:])
}

// blockFor returns the label of the block deciding rules, sharing one block
// between syscalls with the same rules.
func (a *asm) blockFor(rs []rule) label {
	if l, ok := a.byList[&rs[0]]; ok && len(rs) == 1 {
		return l
	}
	if a.byKey == nil {
		a.byKey, a.byList = map[string]label{}, map[*rule]label{}
	}
	key := ruleKey(rs)
	l, ok := a.byKey[string(key)]
	if !ok {
		l = a.newLabel()
		a.byKey[string(key)] = l
		a.blocks = append(a.blocks, block{at: l, rules: rs})
	}
	if len(rs) == 1 {
		a.byList[&rs[0]] = l
	}
	return l
}

// ruleKey is an identity of a list of rules.
func ruleKey(rs []rule) []byte {
	key := make([]byte, 0, 8*len(rs))
	for _, r := range rs {
		key = binary.LittleEndian.AppendUint32(key, uint32(r.act))
		for _, c := range r.conds {
			key = append(key, byte(c.index))
			key = append(key, c.op...)
			key = binary.LittleEndian.AppendUint64(key, c.value)
			key = binary.LittleEndian.AppendUint64(key, c.two)
		}
		key = append(key, '|')
	}
	return key
}

// emitBlocks emits the rule blocks: the rules with conditions in order, then
// the first without, then the default action at dflt.
func (a *asm) emitBlocks(dflt label) {
	for _, b := range a.blocks {
		a.place(b.at)
		var plain *rule
		for i := range b.rules {
			r := &b.rules[i]
			if len(r.conds) == 0 {
				if plain == nil {
					plain = r
				}
				continue
			}
			next := a.newLabel()
			for _, c := range r.conds {
				a.compare(c, next)
			}
			a.ret(uint32(r.act))
			a.place(next)
		}
		if plain != nil {
			a.ret(uint32(plain.act))
		} else {
			a.ja(dflt)
		}
	}
}

// compare emits the test of one condition on a 64-bit argument, jumping to
// fail when it does not hold.
func (a *asm) compare(c cond, fail label) {
	lo := offArgs + 8*uint32(c.index)
	hi := lo + 4
	vlo, vhi := uint32(c.value), uint32(c.value>>32)
	ok := a.newLabel()
	switch c.op {
	case specs.OpEqualTo:
		a.load(hi)
		a.jne(vhi, fail)
		a.load(lo)
		a.jne(vlo, fail)
	case specs.OpNotEqual:
		a.load(hi)
		a.jne(vhi, ok)
		a.load(lo)
		a.jeq(vlo, fail)
	case specs.OpMaskedEqual:
		tlo, thi := uint32(c.two), uint32(c.two>>32)
		a.load(hi)
		a.and(vhi)
		a.jne(thi, fail)
		a.load(lo)
		a.and(vlo)
		a.jne(tlo, fail)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		a.load(hi)
		a.jgt(vhi, ok)
		a.jne(vhi, fail)
		a.load(lo)
		if c.op == specs.OpGreaterThan {
			a.jgt(vlo, ok)
		} else {
			a.jge(vlo, ok)
		}
		a.ja(fail)
	case specs.OpLessThan, specs.OpLessEqual:
		a.load(hi)
		a.jgt(vhi, fail)
		a.jne(vhi, ok)
		a.load(lo)
		if c.op == specs.OpLessThan {
			a.jge(vlo, fail)
		} else {
			a.jgt(vlo, fail)
		}
	}
	a.place(ok)
}

// assemble resolves the labels. Every conditional jump starts short; one
// whose label is out of reach becomes long (test + JA), which moves what
// follows it and may push others out of reach, until nothing changes.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	isCond := func(in insn) bool {
		return in.to >= 0 && in.f.Code&0x07 == unix.BPF_JMP && in.f.Code&0xf0 != unix.BPF_JA
	}
	for pc, in := range a.ins {
		if in.to < 0 {
			continue
		}
		target := a.at[in.to]
		if target < 0 {
			return nil, fmt.Errorf("seccomp: label %d never placed", in.to)
		}
		if target <= pc {
			return nil, fmt.Errorf("seccomp: backward jump to label %d", in.to)
		}
	}
	long := make([]bool, len(a.ins))
	pos := make([]int, len(a.ins)+1) // where each insn lands in the output
	for changed := true; changed; {
		changed = false
		for i := range a.ins {
			pos[i+1] = pos[i] + 1
			if long[i] {
				pos[i+1]++
			}
		}
		for i, in := range a.ins {
			if !long[i] && isCond(in) && pos[a.at[in.to]]-pos[i]-1 > 0xff {
				long[i], changed = true, true
			}
		}
	}
	out := make([]unix.SockFilter, 0, pos[len(a.ins)])
	for i, in := range a.ins {
		f := in.f
		switch {
		case in.to < 0:
		case !isCond(in): // JA
			f.K = uint32(pos[a.at[in.to]] - pos[i] - 1)
		case !long[i]:
			off := uint8(pos[a.at[in.to]] - pos[i] - 1)
			if in.negate {
				f.Jt, f.Jf = 0, off
			} else {
				f.Jt, f.Jf = off, 0
			}
		default: // the test skips the JA, or falls through to it
			if in.negate {
				f.Jt, f.Jf = 1, 0
			} else {
				f.Jt, f.Jf = 0, 1
			}
			out = append(out, f)
			f = unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(pos[a.at[in.to]] - pos[i] - 2)}
		}
		out = append(out, f)
	}
	return out, nil
}

// Dump renders a program, one instruction per line (for debugging and
// tests).
func Dump(prog []unix.SockFilter) string {
	var b strings.Builder
	for i, f := range prog {
		fmt.Fprintf(&b, "%4d: code=%#04x jt=%d jf=%d k=%#x\n", i, f.Code, f.Jt, f.Jf, f.K)
	}
	return b.String()
}

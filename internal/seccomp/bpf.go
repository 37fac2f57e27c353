package seccomp

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// asm assembles classic BPF with symbolic labels. Every conditional jump
// only chooses between the next instruction and the one after; a JA (with
// a 32-bit offset) then goes to the label. Programs of any shape thus
// assemble without the 8-bit range of conditional jumps getting in the way.
type asm struct {
	ins    []insn
	labels map[string]int
	blocks []block // rule blocks, emitted after the decision tree
	seq    int
}

type insn struct {
	f  unix.SockFilter
	to string // for a JA: the label it goes to
}

type block struct {
	label string
	rules []rule
}

func (a *asm) emit(code uint16, jt, jf uint8, k uint32) {
	a.ins = append(a.ins, insn{f: unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}})
}

func (a *asm) label(l string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[l] = len(a.ins)
}

func (a *asm) fresh(prefix string) string {
	a.seq++
	return prefix + ":" + strconv.Itoa(a.seq)
}

func (a *asm) ja(l string) {
	a.ins = append(a.ins, insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, to: l})
}

func (a *asm) load(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 0, 0, off) }
func (a *asm) and(k uint32)    { a.emit(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0, 0, k) }
func (a *asm) ret(k uint32)    { a.emit(unix.BPF_RET|unix.BPF_K, 0, 0, k) }

// cond jumps to l when A <op> k holds: the test falls through to the JA
// when true, and skips it when false.
func (a *asm) cond(op uint16, k uint32, l string) {
	a.emit(unix.BPF_JMP|op|unix.BPF_K, 0, 1, k)
	a.ja(l)
}

func (a *asm) jeq(k uint32, l string) { a.cond(unix.BPF_JEQ, k, l) }
func (a *asm) jgt(k uint32, l string) { a.cond(unix.BPF_JGT, k, l) }
func (a *asm) jge(k uint32, l string) { a.cond(unix.BPF_JGE, k, l) }

// jne jumps to l when A != k.
func (a *asm) jne(k uint32, l string) {
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 1, 0, k)
	a.ja(l)
}

// tree emits a binary search over the sorted syscall numbers nrs (A holds
// the number), jumping to each one's rule block, or to "default".
func (a *asm) tree(arch string, nrs []uint32, rules map[uint32][]rule, blocks map[string]string) {
	if len(nrs) <= 4 {
		for _, nr := range nrs {
			a.jeq(nr, a.blockFor(rules[nr], blocks))
		}
		a.ja("default")
		return
	}
	mid := len(nrs) / 2
	right := a.fresh("tree")
	a.jge(nrs[mid], right)
	a.tree(arch, nrs[:mid], rules, blocks)
	a.label(right)
	a.tree(arch, nrs[mid:], rules, blocks)
}

// blockFor returns the label of the block deciding rules, sharing one block
// between syscalls with the same rules.
func (a *asm) blockFor(rs []rule, blocks map[string]string) string {
	key := fmt.Sprint(rs)
	if l, ok := blocks[key]; ok {
		return l
	}
	l := a.fresh("block")
	blocks[key] = l
	a.blocks = append(a.blocks, block{label: l, rules: rs})
	return l
}

// emitBlocks emits the rule blocks: the rules with conditions in order, then
// the first without, then the default action.
func (a *asm) emitBlocks() {
	for _, b := range a.blocks {
		a.label(b.label)
		var plain *rule
		for i := range b.rules {
			r := &b.rules[i]
			if len(r.conds) == 0 {
				if plain == nil {
					plain = r
				}
				continue
			}
			next := a.fresh("next")
			for _, c := range r.conds {
				a.compare(c, next)
			}
			a.ret(uint32(r.act))
			a.label(next)
		}
		if plain != nil {
			a.ret(uint32(plain.act))
		} else {
			a.ja("default")
		}
	}
}

// compare emits the test of one condition on a 64-bit argument, jumping to
// fail when it does not hold.
func (a *asm) compare(c cond, fail string) {
	lo := offArgs + 8*uint32(c.index)
	hi := lo + 4
	vlo, vhi := uint32(c.value), uint32(c.value>>32)
	ok := a.fresh("ok")
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
	a.label(ok)
}

// assemble resolves the labels.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	out := make([]unix.SockFilter, len(a.ins))
	for pc, in := range a.ins {
		out[pc] = in.f
		if in.to == "" {
			continue
		}
		target, ok := a.labels[in.to]
		if !ok {
			return nil, fmt.Errorf("seccomp: undefined label %s", in.to)
		}
		if target <= pc {
			return nil, fmt.Errorf("seccomp: backward jump to %s", in.to)
		}
		out[pc].K = uint32(target - pc - 1)
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

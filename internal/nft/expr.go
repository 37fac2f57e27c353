package nft

import (
	"golang.org/x/sys/unix"
)

// The expressions that nsbox's rules are made of, as plain values with
// their netlink encoding (the attributes of NFTA_EXPR_DATA) and decoding.
// Each is a comparable struct, so that a rule read back from the kernel
// compares with == to the rule nsbox would write. An expression of
// another kind, or of a known kind with attributes that nsbox does not
// write, reads back as other{}, which equals nothing nsbox writes.

// Registers: the verdict register and two of the four 16-byte data
// registers (NFT_REG_1, NFT_REG_2).
const (
	regVerdict = unix.NFT_REG_VERDICT
	reg1       = unix.NFT_REG_1
	reg2       = unix.NFT_REG_2
)

// Constants that golang.org/x/sys/unix lacks (linux/netfilter.h,
// linux/netfilter/nf_tables.h).
const (
	verdictDrop   = 0 // NF_DROP
	verdictAccept = 1 // NF_ACCEPT
	attrBitwiseOp = 6 // NFTA_BITWISE_OP; 0 is NFT_BITWISE_BOOL (mask and xor)
)

// expr is one expression of a rule.
type expr interface {
	// kind is the expression's name in the kernel.
	kind() string
	// encode appends the attributes of NFTA_EXPR_DATA.
	encode(e *encoder)
}

// meta loads a packet's meta data into reg: `meta KEY`.
type meta struct{ key, reg uint32 }

// cmp compares reg with data.
type cmp struct {
	op, reg uint32
	data    string
}

// payload loads len bytes at offset of a header into reg: `ip daddr`.
type payload struct{ base, offset, len, reg uint32 }

// bitwise sets dreg to (sreg & mask) ^ xor, on len bytes.
type bitwise struct {
	sreg, dreg, len uint32
	mask, xor       string
}

// ct loads a conntrack key into reg: `ct status`.
type ct struct{ key, reg uint32 }

// fib looks the packet up in the routing tables: `fib daddr type`.
type fib struct{ flags, result, reg uint32 }

// immediate loads data into reg.
type immediate struct {
	reg  uint32
	data string
}

// verdict ends the rule: accept, drop, or jump to chain. The kernel calls
// it an immediate into the verdict register.
type verdict struct {
	code  int32
	chain string
}

// nat rewrites the address (from regAddr, 0 for none) and port (from
// regProto) of family's packets: `dnat ip to ADDR:PORT`.
type nat struct{ typ, family, regAddr, regProto uint32 }

// masq is `masquerade`.
type masq struct{}

// other is an expression that nsbox does not write, as read back.
type other struct{ name string }

func (meta) kind() string      { return "meta" }
func (cmp) kind() string       { return "cmp" }
func (payload) kind() string   { return "payload" }
func (bitwise) kind() string   { return "bitwise" }
func (ct) kind() string        { return "ct" }
func (fib) kind() string       { return "fib" }
func (immediate) kind() string { return "immediate" }
func (verdict) kind() string   { return "immediate" }
func (nat) kind() string       { return "nat" }
func (masq) kind() string      { return "masq" }
func (x other) kind() string   { return x.name }

// value appends data as NFTA_DATA_VALUE, nested in typ.
func (e *encoder) value(typ uint16, data string) {
	n := e.begin(typ)
	e.attr(unix.NFTA_DATA_VALUE, []byte(data))
	e.end(n)
}

func (x meta) encode(e *encoder) {
	e.u32(unix.NFTA_META_KEY, x.key)
	e.u32(unix.NFTA_META_DREG, x.reg)
}

func (x cmp) encode(e *encoder) {
	e.u32(unix.NFTA_CMP_SREG, x.reg)
	e.u32(unix.NFTA_CMP_OP, x.op)
	e.value(unix.NFTA_CMP_DATA, x.data)
}

func (x payload) encode(e *encoder) {
	e.u32(unix.NFTA_PAYLOAD_DREG, x.reg)
	e.u32(unix.NFTA_PAYLOAD_BASE, x.base)
	e.u32(unix.NFTA_PAYLOAD_OFFSET, x.offset)
	e.u32(unix.NFTA_PAYLOAD_LEN, x.len)
}

func (x bitwise) encode(e *encoder) {
	e.u32(unix.NFTA_BITWISE_SREG, x.sreg)
	e.u32(unix.NFTA_BITWISE_DREG, x.dreg)
	e.u32(unix.NFTA_BITWISE_LEN, x.len)
	e.value(unix.NFTA_BITWISE_MASK, x.mask)
	e.value(unix.NFTA_BITWISE_XOR, x.xor)
}

func (x ct) encode(e *encoder) {
	e.u32(unix.NFTA_CT_KEY, x.key)
	e.u32(unix.NFTA_CT_DREG, x.reg)
}

func (x fib) encode(e *encoder) {
	e.u32(unix.NFTA_FIB_DREG, x.reg)
	e.u32(unix.NFTA_FIB_RESULT, x.result)
	e.u32(unix.NFTA_FIB_FLAGS, x.flags)
}

func (x immediate) encode(e *encoder) {
	e.u32(unix.NFTA_IMMEDIATE_DREG, x.reg)
	e.value(unix.NFTA_IMMEDIATE_DATA, x.data)
}

func (x verdict) encode(e *encoder) {
	e.u32(unix.NFTA_IMMEDIATE_DREG, regVerdict)
	data := e.begin(unix.NFTA_IMMEDIATE_DATA)
	v := e.begin(unix.NFTA_DATA_VERDICT)
	e.u32(unix.NFTA_VERDICT_CODE, uint32(x.code))
	if x.chain != "" {
		e.str(unix.NFTA_VERDICT_CHAIN, x.chain)
	}
	e.end(v)
	e.end(data)
}

// encode leaves the maximum registers out (the kernel takes the
// minimum's) and the flags (the kernel sets NF_NAT_RANGE_MAP_IPS and
// NF_NAT_RANGE_PROTO_SPECIFIED for the registers given).
func (x nat) encode(e *encoder) {
	e.u32(unix.NFTA_NAT_TYPE, x.typ)
	e.u32(unix.NFTA_NAT_FAMILY, x.family)
	if x.regAddr != 0 {
		e.u32(unix.NFTA_NAT_REG_ADDR_MIN, x.regAddr)
	}
	if x.regProto != 0 {
		e.u32(unix.NFTA_NAT_REG_PROTO_MIN, x.regProto)
	}
}

func (masq) encode(*encoder)  {}
func (other) encode(*encoder) {} // never written

// encodeExprs appends the list of NFTA_RULE_EXPRESSIONS.
func encodeExprs(e *encoder, exprs []expr) {
	list := e.begin(unix.NFTA_RULE_EXPRESSIONS)
	for _, x := range exprs {
		el := e.begin(unix.NFTA_LIST_ELEM)
		e.str(unix.NFTA_EXPR_NAME, x.kind())
		data := e.begin(unix.NFTA_EXPR_DATA)
		x.encode(e)
		e.end(data)
		e.end(el)
	}
	e.end(list)
}

// decodeExprs reads the list of NFTA_RULE_EXPRESSIONS.
func decodeExprs(b []byte) []expr {
	var out []expr
	for _, el := range elems(b) {
		if el.typ == unix.NFTA_LIST_ELEM {
			a := parseAttrs(el.data)
			out = append(out, decodeExpr(a.str(unix.NFTA_EXPR_NAME), parseAttrs(a[unix.NFTA_EXPR_DATA])))
		}
	}
	return out
}

// value reads the NFTA_DATA_VALUE nested in typ.
func (a attrs) value(typ uint16) string {
	return string(parseAttrs(a[typ])[unix.NFTA_DATA_VALUE])
}

// only reports whether a has no attribute but those of types.
func (a attrs) only(types ...uint16) bool {
	n := 0
	for _, t := range types {
		if a.has(t) {
			n++
		}
	}
	return n == len(a)
}

// decodeExpr reads expression name with data as the kernel lists it.
func decodeExpr(name string, d attrs) expr {
	switch name {
	case "meta":
		if d.only(unix.NFTA_META_KEY, unix.NFTA_META_DREG) {
			return meta{key: d.u32(unix.NFTA_META_KEY), reg: d.u32(unix.NFTA_META_DREG)}
		}
	case "cmp":
		return cmp{op: d.u32(unix.NFTA_CMP_OP), reg: d.u32(unix.NFTA_CMP_SREG), data: d.value(unix.NFTA_CMP_DATA)}
	case "payload":
		if d.only(unix.NFTA_PAYLOAD_DREG, unix.NFTA_PAYLOAD_BASE, unix.NFTA_PAYLOAD_OFFSET, unix.NFTA_PAYLOAD_LEN) {
			return payload{base: d.u32(unix.NFTA_PAYLOAD_BASE), offset: d.u32(unix.NFTA_PAYLOAD_OFFSET),
				len: d.u32(unix.NFTA_PAYLOAD_LEN), reg: d.u32(unix.NFTA_PAYLOAD_DREG)}
		}
	case "bitwise":
		if d.u32(attrBitwiseOp) == 0 && d.only(unix.NFTA_BITWISE_SREG, unix.NFTA_BITWISE_DREG, unix.NFTA_BITWISE_LEN,
			unix.NFTA_BITWISE_MASK, unix.NFTA_BITWISE_XOR, attrBitwiseOp) {
			return bitwise{sreg: d.u32(unix.NFTA_BITWISE_SREG), dreg: d.u32(unix.NFTA_BITWISE_DREG), len: d.u32(unix.NFTA_BITWISE_LEN),
				mask: d.value(unix.NFTA_BITWISE_MASK), xor: d.value(unix.NFTA_BITWISE_XOR)}
		}
	case "ct":
		if d.only(unix.NFTA_CT_KEY, unix.NFTA_CT_DREG) {
			return ct{key: d.u32(unix.NFTA_CT_KEY), reg: d.u32(unix.NFTA_CT_DREG)}
		}
	case "fib":
		return fib{flags: d.u32(unix.NFTA_FIB_FLAGS), result: d.u32(unix.NFTA_FIB_RESULT), reg: d.u32(unix.NFTA_FIB_DREG)}
	case "immediate":
		data := parseAttrs(d[unix.NFTA_IMMEDIATE_DATA])
		if v, ok := data[unix.NFTA_DATA_VERDICT]; ok {
			va := parseAttrs(v)
			return verdict{code: int32(va.u32(unix.NFTA_VERDICT_CODE)), chain: va.str(unix.NFTA_VERDICT_CHAIN)}
		}
		return immediate{reg: d.u32(unix.NFTA_IMMEDIATE_DREG), data: string(data[unix.NFTA_DATA_VALUE])}
	case "nat":
		x := nat{typ: d.u32(unix.NFTA_NAT_TYPE), family: d.u32(unix.NFTA_NAT_FAMILY),
			regAddr: d.u32(unix.NFTA_NAT_REG_ADDR_MIN), regProto: d.u32(unix.NFTA_NAT_REG_PROTO_MIN)}
		var implied uint32
		if x.regAddr != 0 {
			implied |= unix.NF_NAT_RANGE_MAP_IPS
		}
		if x.regProto != 0 {
			implied |= unix.NF_NAT_RANGE_PROTO_SPECIFIED
		}
		maxOK := func(typ uint16, min uint32) bool { return !d.has(typ) || d.u32(typ) == min }
		if d.u32(unix.NFTA_NAT_FLAGS)&^implied == 0 &&
			maxOK(unix.NFTA_NAT_REG_ADDR_MAX, x.regAddr) && maxOK(unix.NFTA_NAT_REG_PROTO_MAX, x.regProto) {
			return x
		}
	case "masq":
		if d.u32(unix.NFTA_MASQ_FLAGS) == 0 && !d.has(unix.NFTA_MASQ_REG_PROTO_MIN) {
			return masq{}
		}
	}
	return other{name}
}

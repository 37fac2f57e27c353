package nft

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// Pure tests of the netlink encoding: no kernel, no privileges.

// allRules is every kind of rule that nsbox writes.
func allRules() []rule {
	rs := append(tableRules(), networkRules(Network{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64")}})...)
	for _, p := range []Port{
		{HostPort: 8080, Proto: "tcp", BoxIP: netip.MustParseAddr("10.77.0.2"), BoxPort: 80},
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, Proto: "udp", BoxIP: netip.MustParseAddr("10.77.0.3"), BoxPort: 5353},
		{HostPort: 443, Proto: "tcp", BoxIP: netip.MustParseAddr("fd00::2"), BoxPort: 8443},
	} {
		p.Network, p.Box = "n", "b"
		rs = append(rs, portRule(p))
	}
	return rs
}

func TestExprsRoundTrip(t *testing.T) {
	for _, r := range allRules() {
		var e encoder
		encodeExprs(&e, r.exprs)
		a := parseAttrs(e.b)
		if len(a) != 1 || len(e.b)%4 != 0 {
			t.Fatalf("rule of chain %s: %d attributes in %d bytes, want one list, aligned", r.chain, len(a), len(e.b))
		}
		got := decodeExprs(a[unix.NFTA_RULE_EXPRESSIONS])
		if !slices.Equal(got, r.exprs) {
			t.Errorf("rule of chain %s:\nwrote %#v\nread  %#v", r.chain, r.exprs, got)
		}
	}
}

// exprData encodes attributes as the kernel lists an expression.
func exprData(fill func(e *encoder)) attrs {
	var e encoder
	fill(&e)
	return parseAttrs(e.b)
}

// TestDecodeKernelForms reads expressions in the forms the kernel lists
// them, which are not always the forms written.
func TestDecodeKernelForms(t *testing.T) {
	dnat := nat{typ: unix.NFT_NAT_DNAT, family: unix.NFPROTO_IPV4, regAddr: reg1, regProto: reg2}
	for name, c := range map[string]struct {
		kind string
		data attrs
		want expr
	}{
		// The kernel adds the maximum registers and the flags they imply.
		"dnat as listed": {"nat", exprData(func(e *encoder) {
			dnat.encode(e)
			e.u32(unix.NFTA_NAT_REG_ADDR_MAX, reg1)
			e.u32(unix.NFTA_NAT_REG_PROTO_MAX, reg2)
			e.u32(unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_MAP_IPS|unix.NF_NAT_RANGE_PROTO_SPECIFIED)
		}), dnat},
		"dnat to a range": {"nat", exprData(func(e *encoder) {
			dnat.encode(e)
			e.u32(unix.NFTA_NAT_REG_ADDR_MAX, reg2)
		}), other{"nat"}},
		"dnat random": {"nat", exprData(func(e *encoder) {
			dnat.encode(e)
			e.u32(unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_MAP_IPS|unix.NF_NAT_RANGE_PROTO_RANDOM)
		}), other{"nat"}},
		// And the operation of a bitwise.
		"bitwise as listed": {"bitwise", exprData(func(e *encoder) {
			bitwise{sreg: reg1, dreg: reg1, len: 4, mask: "\xff\x00\x00\x00", xor: "\x00\x00\x00\x00"}.encode(e)
			e.u32(attrBitwiseOp, 0)
		}), bitwise{sreg: reg1, dreg: reg1, len: 4, mask: "\xff\x00\x00\x00", xor: "\x00\x00\x00\x00"}},
		"bitwise shift": {"bitwise", exprData(func(e *encoder) {
			e.u32(unix.NFTA_BITWISE_SREG, reg1)
			e.u32(unix.NFTA_BITWISE_DREG, reg1)
			e.u32(unix.NFTA_BITWISE_LEN, 4)
			e.u32(attrBitwiseOp, 1)
		}), other{"bitwise"}},
		"meta set": {"meta", exprData(func(e *encoder) {
			e.u32(unix.NFTA_META_KEY, unix.NFT_META_MARK)
			e.u32(unix.NFTA_META_SREG, reg1)
		}), other{"meta"}},
		"masquerade random": {"masq", exprData(func(e *encoder) { e.u32(unix.NFTA_MASQ_FLAGS, 4) }), other{"masq"}},
		"counter":           {"counter", exprData(func(e *encoder) { e.u64(1, 5) }), other{"counter"}},
		"jump": {"immediate", exprData(verdict{code: unix.NFT_JUMP, chain: "ports"}.encode),
			verdict{code: unix.NFT_JUMP, chain: "ports"}},
	} {
		if got := decodeExpr(c.kind, c.data); got != c.want {
			t.Errorf("%s: decoded %#v, want %#v", name, got, c.want)
		}
	}
}

// TestBatchLayout checks the framing of a batch against the layout that
// nfnetlink expects: begin, the messages, end, each with a struct nfgenmsg.
func TestBatchLayout(t *testing.T) {
	var e encoder
	e.u32(unix.NFNL_BATCH_GENID, 7)
	b := appendMsg(nil, unix.NFNL_MSG_BATCH_BEGIN, 0, 1, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, e.b)
	m := addTable()
	b = appendMsg(b, nfNftables|m.typ, m.flags|unix.NLM_F_ACK, 2, m.family, 0, m.attrs)
	b = appendMsg(b, unix.NFNL_MSG_BATCH_END, 0, 3, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	var types []uint16
	for seq := uint32(1); len(b) > 0; seq++ {
		l := int(binary.NativeEndian.Uint32(b))
		if l%4 != 0 || l > len(b) || binary.NativeEndian.Uint32(b[8:]) != seq {
			t.Fatalf("message %d: length %d of %d bytes left, seq %d", seq, l, len(b), binary.NativeEndian.Uint32(b[8:]))
		}
		if binary.NativeEndian.Uint16(b[6:])&unix.NLM_F_REQUEST == 0 {
			t.Errorf("message %d is no request", seq)
		}
		types = append(types, binary.NativeEndian.Uint16(b[4:]))
		if seq != 2 && binary.BigEndian.Uint16(b[18:]) != unix.NFNL_SUBSYS_NFTABLES {
			t.Errorf("message %d: res_id %d, want NFNL_SUBSYS_NFTABLES in network byte order", seq, binary.BigEndian.Uint16(b[18:]))
		}
		b = b[l:]
	}
	want := []uint16{unix.NFNL_MSG_BATCH_BEGIN, unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE, unix.NFNL_MSG_BATCH_END}
	if !slices.Equal(types, want) {
		t.Errorf("message types %v, want %v", types, want)
	}
}

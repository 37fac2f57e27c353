package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file describes the rules as plain data (no kernel): what
// EnsureNetwork and Publish add, and how a rule read back from the kernel
// maps to a tag and a Port.

// TableName is the name of nsbox's table (family inet).
const TableName = "nsbox"

// Chain names.
const (
	chainRawPre   = "raw-prerouting"
	chainNATPre   = "nat-prerouting"
	chainNATOut   = "nat-output"
	chainNATPost  = "nat-postrouting"
	chainForward  = "filter-forward"
	chainPorts    = "ports"
	maxNameLen    = 64  // a network name, as internal/network allows
	maxBoxLen     = 160 // the comment stays within 255 bytes of user data
	ifNameSize    = unix.IFNAMSIZ
	ipsDstNAT     = 1 << 5 // IPS_DST_NAT, linux/netfilter/nf_conntrack_common.h
	tagPrefix     = "nsbox"
	commentUdType = 0 // NFTNL_UDATA_RULE_COMMENT
)

// chainSpec is a chain of the table: a base chain (with a type) attached
// to a hook at a priority, or a regular chain (jumped to).
type chainSpec struct {
	name string
	typ  string // "filter" or "nat"; "" for a regular chain
	hook uint32 // NF_INET_*
	prio int32
}

// Chain priorities, as nft names them.
const (
	prioRaw    = -300
	prioDstNAT = -100
	prioFilter = 0
	prioSrcNAT = 100
)

// chainSpecs are the table's chains, base chains first, in the order they
// are created.
var chainSpecs = []chainSpec{
	{chainRawPre, "filter", unix.NF_INET_PRE_ROUTING, prioRaw},
	{chainNATPre, "nat", unix.NF_INET_PRE_ROUTING, prioDstNAT},
	{chainNATOut, "nat", unix.NF_INET_LOCAL_OUT, prioDstNAT},
	{chainForward, "filter", unix.NF_INET_FORWARD, prioFilter},
	{chainNATPost, "nat", unix.NF_INET_POST_ROUTING, prioSrcNAT},
	{name: chainPorts},
}

// isChain reports whether name is a chain of the table.
func isChain(name string) bool {
	for _, c := range chainSpecs {
		if c.name == name {
			return true
		}
	}
	return false
}

// Network is what the rules need to know of one bridge network.
type Network struct {
	// Name tags the network's rules: letters, digits, '-', '_' and '.',
	// at most 64 bytes.
	Name string
	// Bridge is the bridge's interface name.
	Bridge string
	// Subnets are the boxes' subnets: an IPv4 one and optionally an IPv6
	// one.
	Subnets []netip.Prefix
}

// Port is one published port.
type Port struct {
	Network string
	Box     string
	// HostIP is the host address the port is published on; the zero Addr
	// means every local address of the host (of BoxIP's family).
	HostIP   netip.Addr
	HostPort uint16
	Proto    string // "tcp" or "udp"
	BoxIP    netip.Addr
	BoxPort  uint16
}

// String is the port as `-p` writes it, with the box's side:
// "[HOSTIP:]HOSTPORT->BOXIP:BOXPORT/PROTO".
func (p Port) String() string {
	host := strconv.Itoa(int(p.HostPort))
	if p.HostIP.IsValid() {
		host = netip.AddrPortFrom(p.HostIP, p.HostPort).String()
	}
	return host + "->" + netip.AddrPortFrom(p.BoxIP, p.BoxPort).String() + "/" + p.Proto
}

// ErrPortInUse is returned by Publish for a host port that another rule
// already publishes.
var ErrPortInUse = errors.New("port already published")

// ErrNoNetwork is returned by Publish for a network that EnsureNetwork has
// not set up.
var ErrNoNetwork = errors.New("network not set up")

// checkName checks a network name or box id for use in a comment.
func checkName(what, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s %q: want 1 to %d bytes", what, s, max)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '=' || c == '"' || c == '\\' {
			return fmt.Errorf("%s %q: want printable ASCII without spaces, '=', '\"' or '\\'", what, s)
		}
	}
	return nil
}

func (n Network) check() error {
	if err := checkName("network name", n.Name, maxNameLen); err != nil {
		return err
	}
	if n.Bridge == "" || len(n.Bridge) >= ifNameSize || strings.ContainsAny(n.Bridge, "/ \x00") {
		return fmt.Errorf("network %s: bad bridge name %q", n.Name, n.Bridge)
	}
	if len(n.Subnets) == 0 {
		return fmt.Errorf("network %s: no subnet", n.Name)
	}
	var v4, v6 int
	for _, s := range n.Subnets {
		switch {
		case !s.IsValid() || s.Addr().Is4In6() || s.Addr().Zone() != "":
			return fmt.Errorf("network %s: bad subnet %s", n.Name, s)
		case s.Addr().Is4():
			v4++
		default:
			v6++
		}
	}
	if v4 > 1 || v6 > 1 {
		return fmt.Errorf("network %s: want at most one IPv4 and one IPv6 subnet, have %v", n.Name, n.Subnets)
	}
	return nil
}

func (p Port) check() error {
	if err := checkName("network name", p.Network, maxNameLen); err != nil {
		return err
	}
	if err := checkName("box id", p.Box, maxBoxLen); err != nil {
		return err
	}
	if p.Proto != "tcp" && p.Proto != "udp" {
		return fmt.Errorf("port %s: protocol %q: want tcp or udp", p, p.Proto)
	}
	if p.HostPort == 0 || p.BoxPort == 0 {
		return fmt.Errorf("port %s: port 0", p)
	}
	if !p.BoxIP.IsValid() || p.BoxIP.Is4In6() || p.BoxIP.Zone() != "" || p.BoxIP.IsUnspecified() {
		return fmt.Errorf("port %s: bad box address", p)
	}
	if p.HostIP.IsValid() {
		switch {
		case p.HostIP.Is4In6() || p.HostIP.Zone() != "":
			return fmt.Errorf("port %s: bad host address", p)
		case p.HostIP.Is4() != p.BoxIP.Is4():
			return fmt.Errorf("port %s: host and box addresses of different families", p)
		case p.HostIP == netip.IPv6Loopback():
			return fmt.Errorf("port %s: IPv6 has no route_localnet: [::1] cannot be published", p)
		}
	}
	return nil
}

// normal returns p with the host's "any address" (0.0.0.0, ::) as the
// zero Addr.
func (p Port) normal() Port {
	if p.HostIP.IsUnspecified() {
		p.HostIP = netip.Addr{}
	}
	return p
}

// overlaps reports whether p and q claim the same packets: same family,
// protocol and host port, and the same host address or either on every
// address.
func (p Port) overlaps(q Port) bool {
	return p.BoxIP.Is4() == q.BoxIP.Is4() && p.Proto == q.Proto && p.HostPort == q.HostPort &&
		(!p.HostIP.IsValid() || !q.HostIP.IsValid() || p.HostIP == q.HostIP)
}

// tag is what a rule's comment says.
type tag struct {
	ours bool   // the comment starts with "nsbox"
	net  string // "" for the table's own rules
	box  string // "" but for published ports
}

func (t tag) comment() string {
	s := tagPrefix
	if t.net != "" {
		s += " net=" + t.net
	}
	if t.box != "" {
		s += " box=" + t.box
	}
	return s
}

// userData encodes a comment as nft does (a TLV of type comment, with the
// terminating NUL).
func userData(comment string) []byte {
	b := []byte{commentUdType, byte(len(comment) + 1)}
	b = append(b, comment...)
	return append(b, 0)
}

// parseTag reads the tag of a rule's user data.
func parseTag(ud []byte) tag {
	var comment string
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			break
		}
		if typ == commentUdType {
			comment = strings.TrimSuffix(string(ud[2:2+n]), "\x00")
			break
		}
		ud = ud[2+n:]
	}
	f := strings.Fields(comment)
	if len(f) == 0 || f[0] != tagPrefix {
		return tag{}
	}
	t := tag{ours: true}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "net":
			t.net = v
		case "box":
			t.box = v
		}
	}
	return t
}

// Expression building blocks. Register 1 holds what is compared;
// register 2 the DNAT port.

func nfproto(a netip.Addr) []expr {
	p := byte(unix.NFPROTO_IPV6)
	if a.Is4() {
		p = unix.NFPROTO_IPV4
	}
	return []expr{
		meta{key: unix.NFT_META_NFPROTO, reg: reg1},
		cmp{op: unix.NFT_CMP_EQ, reg: reg1, data: string([]byte{p})},
	}
}

// ifname matches the input or output interface's name (key
// NFT_META_IIFNAME or NFT_META_OIFNAME), compared with op.
func ifname(key, op uint32, name string) []expr {
	b := make([]byte, ifNameSize)
	copy(b, name)
	return []expr{
		meta{key: key, reg: reg1},
		cmp{op: op, reg: reg1, data: string(b)},
	}
}

// addrOffset is the offset of the source or destination address in the
// network header.
func addrOffset(a netip.Addr, dst bool) uint32 {
	switch {
	case a.Is4() && dst:
		return 16
	case a.Is4():
		return 12
	case dst:
		return 24
	default:
		return 8
	}
}

// inPrefix matches the source or destination address against p.
func inPrefix(p netip.Prefix, dst bool) []expr {
	p = p.Masked()
	n := uint32(p.Addr().BitLen() / 8)
	mask := netip.PrefixFrom(allOnes(p.Addr()), p.Bits()).Masked().Addr().AsSlice()
	return []expr{
		payload{base: unix.NFT_PAYLOAD_NETWORK_HEADER, offset: addrOffset(p.Addr(), dst), len: n, reg: reg1},
		bitwise{sreg: reg1, dreg: reg1, len: n, mask: string(mask), xor: string(make([]byte, n))},
		cmp{op: unix.NFT_CMP_EQ, reg: reg1, data: string(p.Addr().AsSlice())},
	}
}

func allOnes(a netip.Addr) netip.Addr {
	b := a.AsSlice()
	for i := range b {
		b[i] = 0xff
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}

// daddr compares the destination address with a.
func daddr(op uint32, a netip.Addr) []expr {
	return []expr{
		payload{base: unix.NFT_PAYLOAD_NETWORK_HEADER, offset: addrOffset(a, true), len: uint32(a.BitLen() / 8), reg: reg1},
		cmp{op: op, reg: reg1, data: string(a.AsSlice())},
	}
}

func ctDNAT() []expr {
	return []expr{
		ct{key: unix.NFT_CT_STATUS, reg: reg1},
		bitwise{sreg: reg1, dreg: reg1, len: 4, mask: string(binary.NativeEndian.AppendUint32(nil, ipsDstNAT)), xor: string(make([]byte, 4))},
		cmp{op: unix.NFT_CMP_NEQ, reg: reg1, data: string(make([]byte, 4))},
	}
}

func concat(parts ...[]expr) []expr {
	var all []expr
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

var (
	accept     = []expr{verdict{code: verdictAccept}}
	drop       = []expr{verdict{code: verdictDrop}}
	masquerade = []expr{masq{}}
	loopback4  = netip.MustParsePrefix("127.0.0.0/8")
)

// rule is a rule to add: its chain, expressions and tag.
type rule struct {
	chain string
	exprs []expr
	tag   tag
}

// tableRules are the rules of the table itself: the jumps to the ports.
func tableRules() []rule {
	localDst := []expr{
		fib{flags: unix.NFTA_FIB_F_DADDR, result: unix.NFT_FIB_RESULT_ADDRTYPE, reg: reg1},
		cmp{op: unix.NFT_CMP_EQ, reg: reg1, data: string(binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL))},
		verdict{code: unix.NFT_JUMP, chain: chainPorts},
	}
	t := tag{ours: true}
	return []rule{
		{chain: chainNATPre, exprs: localDst, tag: t},
		{chain: chainNATOut, exprs: localDst, tag: t},
	}
}

// networkRules are network n's rules (n must be checked).
func networkRules(n Network) []rule {
	t := tag{ours: true, net: n.Name}
	iif := func(op uint32) []expr { return ifname(unix.NFT_META_IIFNAME, op, n.Bridge) }
	oif := func(op uint32) []expr { return ifname(unix.NFT_META_OIFNAME, op, n.Bridge) }
	const eq, neq = unix.NFT_CMP_EQ, unix.NFT_CMP_NEQ
	rs := []rule{
		{chainForward, concat(iif(eq), accept), t},
		{chainForward, concat(oif(eq), accept), t},
	}
	for _, s := range n.Subnets {
		fam := nfproto(s.Addr())
		rs = append(rs,
			rule{chainNATPost, concat(fam, oif(neq), inPrefix(s, false), masquerade), t},
			rule{chainNATPost, concat(fam, oif(eq), inPrefix(s, false), ctDNAT(), masquerade), t},
		)
		if s.Addr().Is4() {
			rs = append(rs,
				rule{chainNATPost, concat(fam, oif(eq), inPrefix(loopback4, false), ctDNAT(), masquerade), t},
				rule{chainRawPre, concat(fam, iif(eq), inPrefix(loopback4, true), drop), t},
			)
		}
	}
	return rs
}

// portRule is the DNAT rule of p (p must be checked and normal).
func portRule(p Port) rule {
	l4 := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		l4 = unix.IPPROTO_UDP
	}
	family := uint32(unix.NFPROTO_IPV6)
	if p.BoxIP.Is4() {
		family = unix.NFPROTO_IPV4
	}
	var dst []expr
	switch {
	case p.HostIP.IsValid():
		dst = daddr(unix.NFT_CMP_EQ, p.HostIP)
	case p.BoxIP.Is6():
		dst = daddr(unix.NFT_CMP_NEQ, netip.IPv6Loopback())
	}
	return rule{
		chain: chainPorts,
		tag:   tag{ours: true, net: p.Network, box: p.Box},
		exprs: concat(nfproto(p.BoxIP), dst, []expr{
			meta{key: unix.NFT_META_L4PROTO, reg: reg1},
			cmp{op: unix.NFT_CMP_EQ, reg: reg1, data: string([]byte{l4})},
			payload{base: unix.NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, len: 2, reg: reg1},
			cmp{op: unix.NFT_CMP_EQ, reg: reg1, data: string(binary.BigEndian.AppendUint16(nil, p.HostPort))},
			immediate{reg: reg1, data: string(p.BoxIP.AsSlice())},
			immediate{reg: reg2, data: string(binary.BigEndian.AppendUint16(nil, p.BoxPort))},
			nat{typ: unix.NFT_NAT_DNAT, family: family, regAddr: reg1, regProto: reg2},
		}),
	}
}

// parsePort reads a port back from the expressions of its rule, as the
// kernel lists them: it follows what each register was loaded with, and
// takes the values that it is compared equal to or DNATed to. ok is false
// if the rule is no DNAT of an address and a port.
func parsePort(exprs []expr) (p Port, ok bool) {
	type load struct {
		meta    uint32 // a meta key, if loaded with meta
		payload *payload
		imm     string
		masked  bool
	}
	regs := map[uint32]load{}
	var family byte
	var dnat bool
	for _, e := range exprs {
		switch e := e.(type) {
		case meta:
			regs[e.reg] = load{meta: e.key}
		case payload:
			regs[e.reg] = load{payload: &e}
		case immediate:
			regs[e.reg] = load{imm: e.data}
		case bitwise:
			regs[e.dreg] = load{masked: true}
		case ct:
			regs[e.reg] = load{masked: true}
		case fib:
			regs[e.reg] = load{masked: true}
		case cmp:
			l := regs[e.reg]
			if e.op != unix.NFT_CMP_EQ || l.masked {
				continue
			}
			switch {
			case l.payload == nil && l.meta == unix.NFT_META_NFPROTO && len(e.data) == 1:
				family = e.data[0]
			case l.payload == nil && l.meta == unix.NFT_META_L4PROTO && len(e.data) == 1:
				switch e.data[0] {
				case unix.IPPROTO_TCP:
					p.Proto = "tcp"
				case unix.IPPROTO_UDP:
					p.Proto = "udp"
				}
			case l.payload != nil && l.payload.base == unix.NFT_PAYLOAD_TRANSPORT_HEADER && l.payload.offset == 2 && len(e.data) == 2:
				p.HostPort = binary.BigEndian.Uint16([]byte(e.data))
			case l.payload != nil && l.payload.base == unix.NFT_PAYLOAD_NETWORK_HEADER &&
				(l.payload.offset == 16 && len(e.data) == 4 || l.payload.offset == 24 && len(e.data) == 16):
				p.HostIP, _ = netip.AddrFromSlice([]byte(e.data))
			}
		case nat:
			if e.typ != unix.NFT_NAT_DNAT {
				return Port{}, false
			}
			p.BoxIP, _ = netip.AddrFromSlice([]byte(regs[e.regAddr].imm))
			if b := regs[e.regProto].imm; len(b) == 2 {
				p.BoxPort = binary.BigEndian.Uint16([]byte(b))
			}
			dnat = true
		}
	}
	okFamily := family == unix.NFPROTO_IPV4 && p.BoxIP.Is4() || family == unix.NFPROTO_IPV6 && p.BoxIP.Is6()
	if !dnat || !okFamily || p.Proto == "" || p.HostPort == 0 || p.BoxPort == 0 {
		return Port{}, false
	}
	return p, true
}

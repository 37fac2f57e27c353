package nft

import (
	"net/netip"
	"strings"
	"testing"
)

// Pure tests: no kernel, no privileges.

func TestPortRuleReadsBack(t *testing.T) {
	for _, p := range []Port{
		{HostPort: 8080, Proto: "tcp", BoxIP: netip.MustParseAddr("10.77.0.2"), BoxPort: 80},
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, Proto: "udp", BoxIP: netip.MustParseAddr("10.77.0.3"), BoxPort: 5353},
		{HostPort: 443, Proto: "tcp", BoxIP: netip.MustParseAddr("fd00::2"), BoxPort: 8443},
		{HostIP: netip.MustParseAddr("2001:db8::1"), HostPort: 1, Proto: "udp", BoxIP: netip.MustParseAddr("fd00::2"), BoxPort: 65535},
	} {
		p.Network, p.Box = "net", "box"
		if err := p.check(); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		r := portRule(p)
		got, ok := parsePort(r.exprs)
		got.Network, got.Box = "net", "box"
		if !ok || got != p {
			t.Errorf("parsePort(portRule(%v)) = %v, %v", p, got, ok)
		}
		if tg := parseTag(userData(r.tag.comment())); tg != r.tag {
			t.Errorf("tag %+v reads back as %+v", r.tag, tg)
		}
	}
	// Rules that are not a port's do not read as one.
	for _, r := range append(networkRules(Network{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}), tableRules()...) {
		if p, ok := parsePort(r.exprs); ok {
			t.Errorf("rule of chain %s reads as port %v", r.chain, p)
		}
	}
}

func TestTags(t *testing.T) {
	for ud, want := range map[string]tag{
		"":                                   {},
		"\x00\x06nsbox\x00":                  {ours: true},
		"\x00\x0dnsbox net=n1\x00":           {ours: true, net: "n1"},
		"\x00\x14nsbox net=n1 box=b2\x00":    {ours: true, net: "n1", box: "b2"},
		"\x00\x08nsboxes\x00":                {},
		"\x00\x05other":                      {},
		"\x00\xffnsbox":                      {}, // truncated: no panic
		"\x07\x01x\x00\x06nsbox\x00":         {ours: true},
		"\x00\x0fsomething else\x00":         {},
		"\x00\x0dnsbox box=b1\x00":           {ours: true, box: "b1"},
		"\x00\x11nsbox  net=a  \x00\x00\x00": {ours: true, net: "a"},
	} {
		if got := parseTag([]byte(ud)); got != want {
			t.Errorf("parseTag(%q) = %+v, want %+v", ud, got, want)
		}
	}
	long := tag{ours: true, net: strings.Repeat("n", maxNameLen), box: strings.Repeat("b", maxBoxLen)}
	if ud := userData(long.comment()); len(ud) > 256 || int(ud[1]) != len(ud)-2 {
		t.Errorf("the longest comment makes %d bytes of user data (length byte %d)", len(ud), ud[1])
	}
}

func TestChecks(t *testing.T) {
	box := netip.MustParseAddr("10.77.0.2")
	good := Port{Network: "n", Box: "b", HostPort: 1, Proto: "tcp", BoxIP: box, BoxPort: 1}
	for name, change := range map[string]func(*Port){
		"no network":      func(p *Port) { p.Network = "" },
		"space in box":    func(p *Port) { p.Box = "a b" },
		"= in box":        func(p *Port) { p.Box = "a=b" },
		"long box":        func(p *Port) { p.Box = strings.Repeat("b", maxBoxLen+1) },
		"sctp":            func(p *Port) { p.Proto = "sctp" },
		"host port 0":     func(p *Port) { p.HostPort = 0 },
		"box port 0":      func(p *Port) { p.BoxPort = 0 },
		"no box address":  func(p *Port) { p.BoxIP = netip.Addr{} },
		"box address any": func(p *Port) { p.BoxIP = netip.IPv4Unspecified() },
		"mixed families":  func(p *Port) { p.HostIP = netip.MustParseAddr("::1") },
		"::1":             func(p *Port) { p.BoxIP, p.HostIP = netip.MustParseAddr("fd00::2"), netip.IPv6Loopback() },
		"4in6 box":        func(p *Port) { p.BoxIP = netip.AddrFrom16(box.As16()) },
	} {
		p := good
		change(&p)
		if err := p.check(); err == nil {
			t.Errorf("%s: %v passes the check", name, p)
		}
	}
	if err := good.check(); err != nil {
		t.Errorf("%v: %v", good, err)
	}
	v4, v6 := netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")
	for _, n := range []Network{
		{Name: "", Bridge: "br0", Subnets: []netip.Prefix{v4}},
		{Name: "n", Bridge: "", Subnets: []netip.Prefix{v4}},
		{Name: "n", Bridge: "a-very-long-bridge", Subnets: []netip.Prefix{v4}},
		{Name: "n", Bridge: "br0"},
		{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{v4, v4}},
		{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{{}}},
	} {
		if err := n.check(); err == nil {
			t.Errorf("%+v passes the check", n)
		}
	}
	if err := (Network{Name: "n", Bridge: "br0", Subnets: []netip.Prefix{v4, v6}}).check(); err != nil {
		t.Error(err)
	}
}

func TestOverlaps(t *testing.T) {
	a4 := netip.MustParseAddr("10.77.0.2")
	a6 := netip.MustParseAddr("fd00::2")
	h1, h2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	p := func(host netip.Addr, port uint16, proto string, box netip.Addr) Port {
		return Port{HostIP: host, HostPort: port, Proto: proto, BoxIP: box, BoxPort: 80}
	}
	any := netip.Addr{}
	for _, c := range []struct {
		a, b Port
		want bool
	}{
		{p(any, 80, "tcp", a4), p(any, 80, "tcp", a4), true},
		{p(any, 80, "tcp", a4), p(h1, 80, "tcp", a4), true},
		{p(h1, 80, "tcp", a4), p(any, 80, "tcp", a4), true},
		{p(h1, 80, "tcp", a4), p(h1, 80, "tcp", a4), true},
		{p(h1, 80, "tcp", a4), p(h2, 80, "tcp", a4), false},
		{p(any, 80, "tcp", a4), p(any, 81, "tcp", a4), false},
		{p(any, 80, "tcp", a4), p(any, 80, "udp", a4), false},
		{p(any, 80, "tcp", a4), p(any, 80, "tcp", a6), false},
	} {
		if got := c.a.overlaps(c.b); got != c.want {
			t.Errorf("%v overlaps %v = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	if got := (Port{HostIP: netip.IPv4Unspecified()}).normal().HostIP; got.IsValid() {
		t.Errorf("0.0.0.0 normalizes to %v, want the zero Addr", got)
	}
}

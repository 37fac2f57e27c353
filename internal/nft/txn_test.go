package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// parallel runs fn(0..n-1) at once and returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			errs[i] = fn(i)
			done <- struct{}{}
		}()
	}
	close(start)
	for range n {
		<-done
	}
	return errs
}

// TestConcurrentConns: connections that change the table at once (as
// separate nsbox processes would) do not both act on what they read
// before the other's change: the kernel refuses a batch built on an older
// generation of the ruleset, and the connection reads again.
func TestConcurrentConns(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	const n = 8
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = openConn(t, mid)
	}
	net := Network{Name: "testnet", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}
	for i, err := range parallel(n, func(i int) error { return conns[i].EnsureNetwork(net) }) {
		if err != nil {
			t.Fatalf("EnsureNetwork %d: %v", i, err)
		}
	}
	tables, rules := ruleset(t, mid)
	if len(tables) != 1 || len(rules) != 2+6 || countComment(rules, "net=testnet") != 6 {
		t.Fatalf("after %d EnsureNetwork at once: tables %v, rules %v; want the table's 2 rules and the network's 6", n, tables, rules)
	}
	// Once set up, EnsureNetwork changes nothing: not even the generation.
	before, err := conns[0].load()
	if err != nil {
		t.Fatal(err)
	}
	if err := conns[1].EnsureNetwork(net); err != nil {
		t.Fatal(err)
	}
	if after, err := conns[0].load(); err != nil || after.gen != before.gen {
		t.Errorf("EnsureNetwork of a network set up: generation %d, then %d, %v; want no change", before.gen, after.gen, err)
	}
	for round := range 5 {
		errs := parallel(n, func(i int) error {
			return conns[i].Publish(Port{Network: "testnet", Box: fmt.Sprintf("box%d", i), HostPort: 8080, Proto: "tcp",
				BoxIP: netip.AddrFrom4([4]byte{10, 99, 0, byte(2 + i)}), BoxPort: 80})
		})
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Errorf("round %d: box%d and box%d both published host port 8080", round, won, i)
			case err == nil:
				won = i
			case !errors.Is(err, ErrPortInUse):
				t.Errorf("round %d: Publish of box%d: %v, want ErrPortInUse", round, i, err)
			}
		}
		got, err := conns[0].Published()
		if err != nil || len(got) != 1 || won < 0 || got[0].Box != fmt.Sprintf("box%d", won) {
			t.Fatalf("round %d: Published() = %v, %v; want only the port of box%d", round, got, err, won)
		}
		if err := conns[1].Unpublish(got[0].Box); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListing reads the table with nft as an administrator would: the
// rules of the package doc, and ports of every kind.
func TestListing(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "nsbox0", "type", "bridge")
	c := openConn(t, mid)
	err := c.EnsureNetwork(Network{Name: "nsbox", Bridge: "nsbox0", Subnets: []netip.Prefix{
		netip.MustParsePrefix("10.77.0.0/24"), netip.MustParsePrefix("fd77::/64")}})
	if err != nil {
		t.Fatal(err)
	}
	ports := []Port{
		{HostPort: 8080, Proto: "tcp", BoxIP: netip.MustParseAddr("10.77.0.2"), BoxPort: 80},
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, Proto: "udp", BoxIP: netip.MustParseAddr("10.77.0.2"), BoxPort: 5353},
		{HostPort: 8080, Proto: "tcp", BoxIP: netip.MustParseAddr("fd77::2"), BoxPort: 80},
		{HostIP: netip.MustParseAddr("2001:db8::1"), HostPort: 9, Proto: "udp", BoxIP: netip.MustParseAddr("fd77::2"), BoxPort: 65535},
	}
	for i := range ports {
		ports[i].Network, ports[i].Box = "nsbox", "ID"
	}
	if err := c.Publish(ports...); err != nil {
		t.Fatal(err)
	}
	want := `
table inet nsbox {
chain raw-prerouting {
type filter hook prerouting priority raw; policy accept;
iifname "nsbox0" ip daddr 127.0.0.0/8 drop comment "nsbox net=nsbox"
}
chain nat-prerouting {
type nat hook prerouting priority dstnat; policy accept;
fib daddr type local jump ports comment "nsbox"
}
chain nat-output {
type nat hook output priority -100; policy accept;
fib daddr type local jump ports comment "nsbox"
}
chain filter-forward {
type filter hook forward priority filter; policy accept;
iifname "nsbox0" accept comment "nsbox net=nsbox"
oifname "nsbox0" accept comment "nsbox net=nsbox"
}
chain nat-postrouting {
type nat hook postrouting priority srcnat; policy accept;
oifname != "nsbox0" ip saddr 10.77.0.0/24 masquerade comment "nsbox net=nsbox"
oifname "nsbox0" ip saddr 10.77.0.0/24 ct status dnat masquerade comment "nsbox net=nsbox"
oifname "nsbox0" ip saddr 127.0.0.0/8 ct status dnat masquerade comment "nsbox net=nsbox"
oifname != "nsbox0" ip6 saddr fd77::/64 masquerade comment "nsbox net=nsbox"
oifname "nsbox0" ip6 saddr fd77::/64 ct status dnat masquerade comment "nsbox net=nsbox"
}
chain ports {
meta nfproto ipv4 tcp dport 8080 dnat ip to 10.77.0.2:80 comment "nsbox net=nsbox box=ID"
ip daddr 127.0.0.1 udp dport 53 dnat ip to 10.77.0.2:5353 comment "nsbox net=nsbox box=ID"
ip6 daddr != ::1 tcp dport 8080 dnat ip6 to [fd77::2]:80 comment "nsbox net=nsbox box=ID"
ip6 daddr 2001:db8::1 udp dport 9 dnat ip6 to [fd77::2]:65535 comment "nsbox net=nsbox box=ID"
}
}`
	out := run(t, "ip", "netns", "exec", mid, "nft", "list", "table", "inet", TableName)
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, l)
		}
	}
	if g, w := strings.Join(got, "\n"), strings.TrimSpace(want); g != w {
		t.Errorf("nft list table inet %s:\n%s\nwant:\n%s", TableName, g, w)
	}
}

// TestLargeBatch publishes a range of 2000 ports in one call: a batch and
// dumps far larger than a socket buffer or a datagram.
func TestLargeBatch(t *testing.T) {
	requireRoot(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	c := openConn(t, mid)
	if err := c.EnsureNetwork(Network{Name: "testnet", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var ports []Port
	for i := range n {
		ports = append(ports, Port{Network: "testnet", Box: "box", HostPort: uint16(10000 + i), Proto: "udp", BoxIP: box4, BoxPort: uint16(20000 + i)})
	}
	if err := c.Publish(ports...); err != nil {
		t.Fatal(err)
	}
	got, err := openConn(t, mid).Published()
	if err != nil || !slices.Equal(got, ports) {
		t.Fatalf("Published() = %d ports, %v; want the %d published, in order", len(got), err, n)
	}
	if err := c.Unpublish("box"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Published(); err != nil || len(got) != 0 {
		t.Errorf("Published() after Unpublish = %d ports, %v; want none", len(got), err)
	}
}

// TestBatchErrors: a batch that fails does nothing, and its error names
// the message that failed and keeps the errno.
func TestBatchErrors(t *testing.T) {
	requireRoot(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	c := openConn(t, mid)
	if err := c.EnsureNetwork(Network{Name: "testnet", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	before, err := c.load()
	if err != nil {
		t.Fatal(err)
	}
	p := portRule(Port{Network: "testnet", Box: "b", HostPort: 1, Proto: "tcp", BoxIP: box4, BoxPort: 1})
	bad := p
	bad.chain = "nosuchchain"
	err = c.commit(before.gen, []message{addRule(p), addRule(bad), addRule(p)})
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "to chain nosuchchain") {
		t.Errorf("batch with a rule for a missing chain: %v; want ENOENT naming the chain", err)
	}
	// Another generation.
	if err := c.commit(before.gen+1, []message{addRule(p)}); !errors.Is(err, unix.ERESTART) {
		t.Errorf("batch of another generation: %v, want ERESTART", err)
	}
	after, err := c.load()
	if err != nil {
		t.Fatal(err)
	}
	if after.gen != before.gen || len(after.rules) != len(before.rules) {
		t.Errorf("failed batches changed the ruleset: generation %d → %d, %d → %d rules", before.gen, after.gen, len(before.rules), len(after.rules))
	}
}

package nft

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPublishedPortsCarryTraffic proves the rules with real connections:
// published ports from another namespace and from the host itself
// (127.0.0.1 and its own address), over IPv4 and IPv6, TCP and UDP; the
// hairpin from the box to its own published port; masquerade on the way
// out; and nothing left once the box's ports are unpublished.
func TestPublishedPortsCarryTraffic(t *testing.T) {
	requireRoot(t)
	brnfModes(t, testPublishedPortsCarryTraffic)
}

func testPublishedPortsCarryTraffic(t *testing.T, brnf bool) {
	tp := newTopo(t, brnf)
	c := openConn(t, tp.mid)
	if err := c.EnsureNetwork(tp.net); err != nil {
		t.Fatal(err)
	}
	serve(t, tp.box, "tcp", ":80", "box")
	serve(t, tp.box, "udp", ":53", "box")
	serve(t, tp.client, "tcp", ":9000", "client")
	ports := []Port{
		{Network: "testnet", Box: "box1", HostPort: 8080, Proto: "tcp", BoxIP: box4, BoxPort: 80},
		{Network: "testnet", Box: "box1", HostPort: 8080, Proto: "tcp", BoxIP: box6, BoxPort: 80},
		{Network: "testnet", Box: "box1", HostPort: 5353, Proto: "udp", BoxIP: box4, BoxPort: 53},
	}
	if err := c.Publish(ports...); err != nil {
		t.Fatal(err)
	}

	// (1) From another namespace, to the host's address: DNAT keeps the
	// client's address.
	expectAnswer(t, tp.client, "tcp", "10.98.0.1:8080", "hello from box to 10.98.0.2")
	expectAnswer(t, tp.client, "tcp", "[fd98::1]:8080", "hello from box to fd98::2")
	expectAnswer(t, tp.client, "udp", "10.98.0.1:5353", "hello from box to 10.98.0.2")
	// (2) From the host itself: on 127.0.0.1 (route_localnet, and the
	// box sees the bridge's address), and on its own address.
	expectAnswer(t, tp.mid, "tcp", "127.0.0.1:8080", "hello from box to 10.99.0.1")
	expectAnswer(t, tp.mid, "tcp", "10.98.0.1:8080", "hello from box to 10.98.0.1")
	expectAnswer(t, tp.mid, "udp", "127.0.0.1:5353", "hello from box to 10.99.0.1")
	expectAnswer(t, tp.mid, "tcp", "[fd98::1]:8080", "hello from box to fd98::1")
	// [::1] has no route_localnet: not published, refused at once.
	if got, err := ask(tp.mid, "tcp", "[::1]:8080"); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("tcp [::1]:8080: got %q, %v; want connection refused", got, err)
	}
	// Hairpin: the box through the host's address to its own port.
	expectAnswer(t, tp.box, "tcp", "10.98.0.1:8080", "hello from box to 10.99.0.1")
	expectAnswer(t, tp.box, "tcp", "[fd98::1]:8080", "hello from box to fd99::1")
	// (3) Masquerade: the client sees the host's address, not the box's.
	expectAnswer(t, tp.box, "tcp", "10.98.0.2:9000", "hello from client to 10.98.0.1")
	serve(t, tp.client, "tcp", "[fd98::2]:9001", "client")
	expectAnswer(t, tp.box, "tcp", "[fd98::2]:9001", "hello from client to fd98::1")

	if got := readSysctl(t, tp.mid, "net/ipv4/conf/br0/route_localnet"); got != "1" {
		t.Errorf("route_localnet on br0 = %s, want 1", got)
	}

	if err := c.Unpublish("box1"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.98.0.1:8080", "[fd98::1]:8080"} {
		if got, err := ask(tp.client, "tcp", a); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("tcp %s after Unpublish: got %q, %v; want connection refused", a, got, err)
		}
	}
	if got, err := ask(tp.mid, "tcp", "127.0.0.1:8080"); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("tcp 127.0.0.1:8080 after Unpublish: got %q, %v; want connection refused", got, err)
	}
	// Outbound NAT is the network's, not the box's: it stays.
	expectAnswer(t, tp.box, "tcp", "10.98.0.2:9000", "hello from client to 10.98.0.1")
}

// TestBridgeCannotReachHostLoopback checks the guard that route_localnet
// needs: a box that routes 127.0.0.0/8 to the bridge must not reach the
// host's services on 127.0.0.1 (CVE-2020-8558).
func TestBridgeCannotReachHostLoopback(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	brnfModes(t, testBridgeCannotReachHostLoopback)
}

func testBridgeCannotReachHostLoopback(t *testing.T, brnf bool) {
	tp := newTopo(t, brnf)
	c := openConn(t, tp.mid)
	if err := c.EnsureNetwork(tp.net); err != nil {
		t.Fatal(err)
	}
	got := receive(t, tp.mid, "127.0.0.1:7000")
	// The box gives up its own loopback range and sends it to the host.
	ip(t, tp.box, "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local")
	ip(t, tp.box, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
	ip(t, tp.box, "route", "add", "127.0.0.1/32", "via", "10.99.0.1", "dev", "eth0")
	send(t, tp.box, "127.0.0.1:7000")
	select {
	case from := <-got:
		t.Errorf("the host's 127.0.0.1:7000 got a datagram from the box (%s)", from)
	case <-time.After(time.Second):
	}
	// Without the guard, it would get through (so the test can tell).
	run(t, "ip", "netns", "exec", tp.mid, "nft", "flush", "chain", "inet", TableName, chainRawPre)
	send(t, tp.box, "127.0.0.1:7000")
	select {
	case from := <-got:
		if !strings.HasPrefix(from, "10.99.0.2:") {
			t.Errorf("datagram from %s, want the box", from)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("without the guard, the datagram did not arrive either: the test proves nothing")
	}
}

// TestUnpublishRemovesOnlyTheBoxsRules publishes for two boxes, removes
// one, and reads the ruleset back with nft, and with a new Conn as the
// next command after a crash would.
func TestUnpublishRemovesOnlyTheBoxsRules(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	c := openConn(t, mid)
	n := Network{Name: "testnet", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}
	if err := c.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	a := []Port{
		{Network: "testnet", Box: "a", HostPort: 8080, Proto: "tcp", BoxIP: box4, BoxPort: 80},
		{Network: "testnet", Box: "a", HostIP: midClient4, HostPort: 53, Proto: "udp", BoxIP: box4, BoxPort: 53},
	}
	b := []Port{{Network: "testnet", Box: "b", HostPort: 8081, Proto: "tcp", BoxIP: netip.MustParseAddr("10.99.0.3"), BoxPort: 80}}
	for _, ports := range [][]Port{a, b} {
		if err := c.Publish(ports...); err != nil {
			t.Fatal(err)
		}
	}
	_, before := ruleset(t, mid)
	if got := countComment(before, "box="); got != 3 {
		t.Fatalf("%d port rules, want 3: %v", got, before)
	}
	if err := c.Unpublish("a"); err != nil {
		t.Fatal(err)
	}
	_, after := ruleset(t, mid)
	if got := countComment(after, "box=a"); got != 0 {
		t.Errorf("box a has %d rules left", got)
	}
	if got, want := len(after), len(before)-len(a); got != want {
		t.Errorf("%d rules after Unpublish, want %d", got, want)
	}
	for _, r := range before {
		if !strings.Contains(r.Comment, "box=a") && !slices.ContainsFunc(after, func(x jsonRule) bool { return x.Handle == r.Handle }) {
			t.Errorf("rule %d (%s, %q) is gone", r.Handle, r.Chain, r.Comment)
		}
	}

	c2 := openConn(t, mid)
	got, err := c2.Published()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, b) {
		t.Errorf("Published() = %v, want %v", got, b)
	}
	if err := c2.Unpublish("a"); err != nil {
		t.Errorf("Unpublish of a box without rules: %v", err)
	}
}

func countComment(rules []jsonRule, s string) int {
	n := 0
	for _, r := range rules {
		if strings.Contains(r.Comment, s) {
			n++
		}
	}
	return n
}

// TestPublishRefusesPortInUse: a host port that another box publishes on
// the same address, or on every address, is refused, and with it every
// port of the call.
func TestPublishRefusesPortInUse(t *testing.T) {
	requireRoot(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	c := openConn(t, mid)
	n := Network{Name: "testnet", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24"), netip.MustParsePrefix("fd99::/64")}}
	if err := c.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	a := Port{Network: "testnet", Box: "a", HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 8080, Proto: "tcp", BoxIP: box4, BoxPort: 80}
	if err := c.Publish(a); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(a); err != nil {
		t.Errorf("publishing the same port of the same box again: %v", err)
	}
	b := Port{Network: "testnet", Box: "b", HostPort: 8080, Proto: "tcp", BoxIP: netip.MustParseAddr("10.99.0.3"), BoxPort: 80}
	for _, p := range []Port{
		b,
		func() Port { p := b; p.HostIP = midClient4; return p }(),
		func() Port { p := b; p.HostIP = netip.MustParseAddr("127.0.0.1"); p.BoxPort = 81; return p }(),
	} {
		other := Port{Network: "testnet", Box: "b", HostPort: 9090, Proto: "tcp", BoxIP: p.BoxIP, BoxPort: 90}
		err := c.Publish(other, p)
		if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "box a") {
			t.Errorf("Publish(%v): %v; want ErrPortInUse naming box a", p, err)
		}
	}
	if got, err := c.Published(); err != nil || len(got) != 1 {
		t.Errorf("Published() = %v, %v; want only box a's port (a refused call adds nothing)", got, err)
	}
	// Another protocol or family is another port.
	udp := b
	udp.Proto = "udp"
	v6 := b
	v6.BoxIP = netip.MustParseAddr("fd99::3")
	if err := c.Publish(udp, v6); err != nil {
		t.Errorf("Publish(udp, IPv6): %v", err)
	}
	// Two of the call's own ports clash.
	x := Port{Network: "testnet", Box: "c", HostPort: 7000, Proto: "tcp", BoxIP: netip.MustParseAddr("10.99.0.4"), BoxPort: 1}
	y := x
	y.BoxPort = 2
	if err := c.Publish(x, y); !errors.Is(err, ErrPortInUse) {
		t.Errorf("Publish of two ports on one host port: %v, want ErrPortInUse", err)
	}
	unknown := x
	unknown.Network = "nonet"
	if err := c.Publish(unknown); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("Publish on an unknown network: %v, want ErrNoNetwork", err)
	}
}

// TestEnsureAndRemoveNetwork: EnsureNetwork twice changes nothing,
// networks are removed one by one, and the table goes with the last.
func TestEnsureAndRemoveNetwork(t *testing.T) {
	requireRoot(t)
	requireNft(t)
	mid := newNetNS(t, "mid")
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	ip(t, mid, "link", "add", "br1", "type", "bridge")
	c := openConn(t, mid)
	n0 := Network{Name: "net0", Bridge: "br0", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24"), netip.MustParsePrefix("fd99::/64")}}
	n1 := Network{Name: "net1", Bridge: "br1", Subnets: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/24")}}

	err := c.EnsureNetwork(Network{Name: "nobridge", Bridge: "br9", Subnets: n1.Subnets})
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("EnsureNetwork without its bridge: %v, want ENODEV", err)
	}
	if tables, _ := ruleset(t, mid); len(tables) != 0 {
		t.Errorf("a failed EnsureNetwork left %v", tables)
	}

	for _, n := range []Network{n0, n1} {
		if err := c.EnsureNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	_, first := ruleset(t, mid)
	for _, n := range []Network{n0, n1, n0} {
		if err := c.EnsureNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	_, again := ruleset(t, mid)
	if !sameListing(first, again) {
		t.Errorf("EnsureNetwork again changed the rules:\n%v\n%v", first, again)
	}
	if got := countComment(first, "net=net0"); got != 8 {
		t.Errorf("net0 has %d rules, want 8 (2 forward, 2+2 masquerade, loopback masquerade and guard)", got)
	}

	p := Port{Network: "net0", Box: "a", HostPort: 8080, Proto: "tcp", BoxIP: box4, BoxPort: 80}
	if err := c.Publish(p); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNetwork("net0"); err != nil {
		t.Fatal(err)
	}
	tables, rules := ruleset(t, mid)
	if len(tables) != 1 || countComment(rules, "net=net0") != 0 || countComment(rules, "net=net1") != 6 || len(rules) != 6+2 {
		t.Errorf("after removing net0: tables %v, rules %v; want only net1's 6 rules and the table's 2", tables, rules)
	}
	if err := c.RemoveNetwork("net1"); err != nil {
		t.Fatal(err)
	}
	if tables, _ := ruleset(t, mid); len(tables) != 0 {
		t.Errorf("after removing every network: tables %v, want none", tables)
	}
	if err := c.RemoveNetwork("net1"); err != nil {
		t.Errorf("RemoveNetwork without a table: %v", err)
	}
}

// sameRules compares two listings but for the handles.
func sameListing(a, b []jsonRule) bool {
	return slices.EqualFunc(a, b, func(x, y jsonRule) bool {
		return x.Chain == y.Chain && x.Comment == y.Comment && string(x.Expr) == string(y.Expr)
	})
}

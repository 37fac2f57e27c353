package nft

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/testenv"
	"golang.org/x/sys/unix"
)

// The privileged tests build their own network namespaces with `ip netns`
// (names unique to the test process) and never touch the caller's:
//
//	client ns            mid ns ("the host")                 box ns
//	eth0 10.98.0.2 ── vc0 10.98.0.1   br0 10.99.0.1 ── vb0 ── eth0 10.99.0.2
//	     fd98::2          fd98::1         fd99::1                  fd99::2
//
// The rules go into mid; traffic flows only between these namespaces and
// their loopbacks.

func requireRoot(t *testing.T) { testenv.RequireRoot(t, "ip", "nft") }

// newNetNS makes a network namespace with lo up, removed when the test ends.
func newNetNS(t *testing.T, role string) string {
	t.Helper()
	name := testenv.NewNetNS(t, "nsbox-nft-"+role)
	ip(t, name, "link", "set", "lo", "up")
	return name
}

var run = testenv.Run

// ip runs `ip -n NS ARGS`.
func ip(t *testing.T, ns string, args ...string) {
	t.Helper()
	run(t, "ip", append([]string{"-n", ns}, args...)...)
}

// inNetNS runs fn on an OS thread that joined network namespace ns, and
// puts the thread back into its own namespace afterwards (a thread that
// cannot go back is never unlocked, so the runtime ends it). A socket fn
// makes stays in ns and can be used from any goroutine afterwards.
func inNetNS(ns string, fn func() error) error {
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return namespaces.InNet(fd, fn)
}

// sysctl writes a sysctl of ns, e.g. "net/ipv4/ip_forward".
func sysctl(t *testing.T, ns, key, value string) {
	t.Helper()
	if err := inNetNS(ns, func() error { return os.WriteFile("/proc/sys/"+key, []byte(value), 0) }); err != nil {
		t.Fatalf("sysctl %s in %s: %v", key, ns, err)
	}
}

func readSysctl(t *testing.T, ns, key string) string {
	t.Helper()
	var v []byte
	err := inNetNS(ns, func() (err error) { v, err = os.ReadFile("/proc/sys/" + key); return err })
	if err != nil {
		t.Fatalf("read sysctl %s in %s: %v", key, ns, err)
	}
	return strings.TrimSpace(string(v))
}

// topo is the three namespaces of the picture above.
type topo struct {
	mid, box, client string
	net              Network
}

var (
	midClient4 = netip.MustParseAddr("10.98.0.1")
	client4    = netip.MustParseAddr("10.98.0.2")
	midClient6 = netip.MustParseAddr("fd98::1")
	client6    = netip.MustParseAddr("fd98::2")
	bridge4    = netip.MustParseAddr("10.99.0.1")
	box4       = netip.MustParseAddr("10.99.0.2")
	bridge6    = netip.MustParseAddr("fd99::1")
	box6       = netip.MustParseAddr("fd99::2")
)

// newTopo builds the namespaces; brnf says whether the bridge passes its
// IP traffic through the inet hooks (br_netfilter's
// bridge-nf-call-iptables, per namespace): the rules must work either way.
func newTopo(t *testing.T, brnf bool) *topo {
	t.Helper()
	tp := &topo{mid: newNetNS(t, "mid"), box: newNetNS(t, "box"), client: newNetNS(t, "client")}
	tp.net = Network{Name: "testnet", Bridge: "br0", Subnets: []netip.Prefix{
		netip.MustParsePrefix("10.99.0.0/24"), netip.MustParsePrefix("fd99::/64"),
	}}
	mid, box, client := tp.mid, tp.box, tp.client
	ip(t, mid, "link", "add", "br0", "type", "bridge")
	ip(t, mid, "addr", "add", "10.99.0.1/24", "dev", "br0")
	ip(t, mid, "addr", "add", "fd99::1/64", "dev", "br0", "nodad")
	ip(t, mid, "link", "set", "br0", "up")
	ip(t, mid, "link", "add", "vb0", "type", "veth", "peer", "name", "eth0", "netns", box)
	ip(t, mid, "link", "set", "vb0", "master", "br0", "up")
	// With br_netfilter, a box's connection to its own published port is
	// bridged back out of the port it came from: that takes hairpin mode.
	ip(t, mid, "link", "set", "vb0", "type", "bridge_slave", "hairpin", "on")
	ip(t, box, "addr", "add", "10.99.0.2/24", "dev", "eth0")
	ip(t, box, "addr", "add", "fd99::2/64", "dev", "eth0", "nodad")
	ip(t, box, "link", "set", "eth0", "up")
	ip(t, box, "route", "add", "default", "via", "10.99.0.1")
	ip(t, box, "-6", "route", "add", "default", "via", "fd99::1")
	ip(t, mid, "link", "add", "vc0", "type", "veth", "peer", "name", "eth0", "netns", client)
	ip(t, mid, "addr", "add", "10.98.0.1/24", "dev", "vc0")
	ip(t, mid, "addr", "add", "fd98::1/64", "dev", "vc0", "nodad")
	ip(t, mid, "link", "set", "vc0", "up")
	ip(t, client, "addr", "add", "10.98.0.2/24", "dev", "eth0")
	ip(t, client, "addr", "add", "fd98::2/64", "dev", "eth0", "nodad")
	ip(t, client, "link", "set", "eth0", "up")
	sysctl(t, mid, "net/ipv4/ip_forward", "1")
	sysctl(t, mid, "net/ipv6/conf/all/forwarding", "1")
	v := "0"
	if brnf {
		v = "1"
	}
	for _, k := range []string{"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"} {
		sysctl(t, mid, k, v)
	}
	return tp
}

// openConn opens a Conn on ns, checking that ns is not the test's own
// namespace, so that a mistake cannot reach the host's ruleset.
func openConn(t *testing.T, ns string) *Conn {
	t.Helper()
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st, self unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if st.Ino == self.Ino && st.Dev == self.Dev {
		t.Fatalf("netns %s is the test's own namespace", ns)
	}
	c, err := OpenNetNS(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve listens on addr ("tcp" or "udp") in ns and answers every
// connection or datagram with "hello from NAME to SOURCE", where SOURCE is
// the peer's address as the server sees it.
func serve(t *testing.T, ns, network, addr, name string) {
	t.Helper()
	err := inNetNS(ns, func() error {
		if network == "udp" {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { pc.Close() })
			go func() {
				buf := make([]byte, 512)
				for {
					_, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					src := netip.MustParseAddrPort(from.String()).Addr().Unmap()
					pc.WriteTo([]byte("hello from "+name+" to "+src.String()+"\n"), from)
				}
			}()
			return nil
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				src := netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap()
				fmt.Fprintf(c, "hello from %s to %s\n", name, src)
				c.Close()
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatalf("listen on %s %s in %s: %v", network, addr, ns, err)
	}
}

// receive listens on UDP addr in ns and sends the source address of each
// datagram to the channel.
func receive(t *testing.T, ns, addr string) <-chan string {
	t.Helper()
	from := make(chan string, 16)
	err := inNetNS(ns, func() error {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 512)
			for {
				_, a, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				select {
				case from <- a.String():
				default:
				}
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatalf("listen on udp %s in %s: %v", addr, ns, err)
	}
	return from
}

// send sends one UDP datagram from ns to addr.
func send(t *testing.T, ns, addr string) {
	t.Helper()
	err := inNetNS(ns, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hi"))
		return err
	})
	if err != nil {
		t.Fatalf("send to udp %s from %s: %v", addr, ns, err)
	}
}

// brnfModes runs fn with br_netfilter's hooks off and, where the kernel
// has br_netfilter, on.
func brnfModes(t *testing.T, fn func(t *testing.T, brnf bool)) {
	t.Run("bridge-nf-off", func(t *testing.T) { fn(t, false) })
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		t.Logf("no br_netfilter in this kernel (or not loaded): only bridge-nf-off runs")
		return
	}
	t.Run("bridge-nf-on", func(t *testing.T) { fn(t, true) })
}

// ask connects from ns to addr and returns the server's line.
func ask(ns, network, addr string) (string, error) {
	var line string
	err := inNetNS(ns, func() error {
		c, err := net.DialTimeout(network, addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if network == "udp" {
			if _, err := c.Write([]byte("hi")); err != nil {
				return err
			}
		}
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// expectAnswer checks that asking addr from ns gets want.
func expectAnswer(t *testing.T, ns, network, addr, want string) {
	t.Helper()
	got, err := ask(ns, network, addr)
	if err != nil || got != want {
		t.Errorf("%s %s from %s: got %q, %v; want %q", network, addr, ns, got, err, want)
	}
}

// jsonRule is a rule of `nft -j list ruleset`.
type jsonRule struct {
	Family  string          `json:"family"`
	Table   string          `json:"table"`
	Chain   string          `json:"chain"`
	Handle  int             `json:"handle"`
	Comment string          `json:"comment"`
	Expr    json.RawMessage `json:"expr"`
}

// ruleset lists the tables and rules of ns with the nft tool: what an
// administrator would see.
func ruleset(t *testing.T, ns string) (tables []string, rules []jsonRule) {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset")
	var doc struct {
		Nftables []struct {
			Table *struct {
				Family string `json:"family"`
				Name   string `json:"name"`
			} `json:"table"`
			Rule *jsonRule `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j list ruleset: %v: %s", err, out)
	}
	for _, o := range doc.Nftables {
		if o.Table != nil {
			tables = append(tables, o.Table.Family+" "+o.Table.Name)
		}
		if o.Rule != nil {
			rules = append(rules, *o.Rule)
		}
	}
	return tables, rules
}

// requireNft fails the test when the nft tool is missing.
func requireNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("the test reads the ruleset with the nft tool (apt-get install nftables): %v", err)
	}
}

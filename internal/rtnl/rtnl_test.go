package rtnl

import (
	"strings"
	"testing"

	"github.com/nsbox/nsbox/internal/testenv"
	"golang.org/x/sys/unix"
)

// The privileged tests work in network namespaces of their own, made with
// `ip netns` and removed when the test ends; they never touch the
// caller's namespace.

func requireRoot(t *testing.T) { testenv.RequireRoot(t, "ip") }

var run = testenv.Run

// newNetNS makes a network namespace, removed when the test ends, and
// returns its name and an open fd of it.
func newNetNS(t *testing.T) (string, int) {
	t.Helper()
	name := testenv.NewNetNS(t, "nsbox-rtnl")
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return name, fd
}

// dialAt dials into ns and checks that the calling thread did not move.
func dialAt(t *testing.T, nsfd int) *Conn {
	t.Helper()
	var before, after unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &before); err != nil {
		t.Fatal(err)
	}
	c, err := DialAt(nsfd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := unix.Stat("/proc/thread-self/ns/net", &after); err != nil {
		t.Fatal(err)
	}
	if before.Ino != after.Ino {
		t.Fatal("DialAt moved the calling thread into another network namespace")
	}
	return c
}

// TestSetHairpin puts a veth on a bridge in hairpin mode and reads it back
// from sysfs (and from iproute2), inside the test's namespace.
func TestSetHairpin(t *testing.T) {
	requireRoot(t)
	ns, fd := newNetNS(t)
	run(t, "ip", "-n", ns, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", ns, "link", "add", "vb0", "type", "veth", "peer", "name", "vb1")
	run(t, "ip", "-n", ns, "link", "set", "vb0", "master", "br0")
	c := dialAt(t, fd)
	hairpin := func() string {
		return run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/vb0/brport/hairpin_mode")
	}
	if got := hairpin(); got != "0" {
		t.Fatalf("hairpin_mode of a new port = %s, want 0", got)
	}
	l, err := c.LinkByName("vb0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetHairpin(l.Index); err != nil {
		t.Fatalf("SetHairpin: %v", err)
	}
	if got := hairpin(); got != "1" {
		t.Errorf("hairpin_mode after SetHairpin = %s, want 1", got)
	}
	if out := run(t, "ip", "-n", ns, "-d", "link", "show", "dev", "vb0"); !strings.Contains(out, "hairpin on") {
		t.Errorf("ip -d link show vb0 does not say hairpin on:\n%s", out)
	}
	// A link that is no bridge port cannot be in hairpin mode.
	l1, err := c.LinkByName("vb1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetHairpin(l1.Index); err == nil {
		t.Errorf("SetHairpin of a link outside any bridge: no error")
	}
}

// TestSetRouteLocalnet sets route_localnet on a bridge and reads the
// sysctl back inside the test's namespace.
func TestSetRouteLocalnet(t *testing.T) {
	requireRoot(t)
	ns, fd := newNetNS(t)
	run(t, "ip", "-n", ns, "link", "add", "br0", "type", "bridge")
	c := dialAt(t, fd)
	sysctl := func(dev string) string {
		return run(t, "ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/conf/"+dev+"/route_localnet")
	}
	if got := sysctl("br0"); got != "0" {
		t.Fatalf("route_localnet of a new bridge = %s, want 0", got)
	}
	l, err := c.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "bridge" {
		t.Errorf("LinkByName(br0).Kind = %q, want bridge", l.Kind)
	}
	if err := c.SetRouteLocalnet(l.Index); err != nil {
		t.Fatalf("SetRouteLocalnet: %v", err)
	}
	if got := sysctl("br0"); got != "1" {
		t.Errorf("route_localnet after SetRouteLocalnet = %s, want 1", got)
	}
	if got := sysctl("lo"); got != "0" {
		t.Errorf("route_localnet of lo = %s: another link changed", got)
	}
	if _, err := c.LinkByName("nosuchlink"); err != unix.ENODEV {
		t.Errorf("LinkByName of a missing link: %v, want ENODEV", err)
	}
}

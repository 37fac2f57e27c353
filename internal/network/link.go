package network

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/rtnl"
)

// EnsureBridge makes network n's bridge, with the gateway addresses, up,
// if it is not there yet, and lets the host route for boxes (IPv4
// forwarding, as every container network needs). It returns whether it
// made the bridge.
func EnsureBridge(n *Network) (made bool, err error) {
	c, err := rtnl.Dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	if l, err := c.LinkByName(n.Bridge); err == nil {
		if l.Kind != "bridge" {
			return false, fmt.Errorf("network %s: %s is a %q interface, not a bridge", n.Name, n.Bridge, l.Kind)
		}
		return false, enableForwarding()
	}
	if err := checkFree(c, n); err != nil {
		return false, err
	}
	if err := c.AddBridge(n.Bridge, n.MTU); err != nil {
		return false, fmt.Errorf("network %s: create bridge %s: %w", n.Name, n.Bridge, err)
	}
	br, err := c.LinkByName(n.Bridge)
	if err != nil {
		return false, fmt.Errorf("network %s: bridge %s: %w", n.Name, n.Bridge, err)
	}
	defer func() {
		if err != nil {
			c.DelLink(br.Index)
		}
	}()
	addrs := []netip.Prefix{netip.PrefixFrom(n.Gateway, n.Subnet.Bits())}
	if n.Gateway6.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(n.Gateway6, n.Subnet6.Bits()))
	}
	for _, a := range addrs {
		if err := c.AddAddr(br.Index, a); err != nil {
			return false, fmt.Errorf("network %s: address %s on %s: %w", n.Name, a, n.Bridge, err)
		}
	}
	if err := c.SetUp(br.Index); err != nil {
		return false, fmt.Errorf("network %s: bring %s up: %w", n.Name, n.Bridge, err)
	}
	if err := enableForwarding(); err != nil {
		return false, err
	}
	return true, nil
}

// checkFree refuses a subnet that an interface of the host already uses.
func checkFree(c *rtnl.Conn, n *Network) error {
	addrs, err := c.Addrs()
	if err != nil {
		return fmt.Errorf("list the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Masked().Overlaps(n.Subnet) {
			return fmt.Errorf("network %s: subnet %s overlaps the host's address %s", n.Name, n.Subnet, a)
		}
	}
	return nil
}

func enableForwarding() error {
	const f = "/proc/sys/net/ipv4/ip_forward"
	if b, err := fileio.ReadFile(f); err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := fileio.Write(f, unix.O_WRONLY, 0, []byte("1")); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// RemoveBridge deletes network n's bridge (and so every veth still on it).
func RemoveBridge(n *Network) error {
	return delLink(n.Bridge)
}

func delLink(name string) error {
	c, err := rtnl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := c.LinkByName(name)
	if err == unix.ENODEV {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.DelLink(l.Index); err != nil {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

// HostVeth is the host-side name of box's veth: "nsb" and a hash of the
// box's key (its state directory and id), so that a leftover can be
// found from them alone.
func HostVeth(box string) string {
	h := fnv.New32a()
	h.Write([]byte(box))
	return "nsb" + strconv.FormatUint(uint64(h.Sum32()), 36)
}

// Attach connects the network namespace in file nsfd to network n with
// a veth pair: eth0 inside, with lease's address (and lease6's), the
// gateway as default route, and MTU; the host end on the bridge.
func Attach(n *Network, box string, nsfd int, lease Lease, lease6 netip.Addr) (err error) {
	c, err := rtnl.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	br, err := c.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("network %s: bridge %s: %w", n.Name, n.Bridge, err)
	}
	host := HostVeth(box)
	// The peer is made right in the box's namespace, as eth0.
	err = c.AddVeth(host, n.MTU, br.Index, "eth0", nsfd)
	if err == unix.EEXIST {
		// The veth of an earlier box of this id, whose network namespace
		// the kernel has not finished taking down.
		if old, lerr := c.LinkByName(host); lerr == nil {
			c.DelLink(old.Index)
		}
		err = c.AddVeth(host, n.MTU, br.Index, "eth0", nsfd)
	}
	if err != nil {
		return fmt.Errorf("network %s: veth %s: %w", n.Name, host, err)
	}
	veth, err := c.LinkByName(host)
	if err != nil {
		return fmt.Errorf("network %s: veth %s: %w", n.Name, host, err)
	}
	defer func() {
		if err != nil {
			c.DelLink(veth.Index)
		}
	}()
	// Hairpin: a box reaching its own published port is DNATed back out
	// of the port it came in by (with br_netfilter, bridged traffic is).
	if err := c.SetHairpin(veth.Index); err != nil {
		return fmt.Errorf("network %s: hairpin mode on %s: %w", n.Name, host, err)
	}
	if err := c.SetUp(veth.Index); err != nil {
		return fmt.Errorf("network %s: bring %s up: %w", n.Name, host, err)
	}
	in, err := rtnl.DialAt(nsfd)
	if err != nil {
		return fmt.Errorf("network %s: netlink in the box: %w", n.Name, err)
	}
	defer in.Close()
	eth0, err := in.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("network %s: eth0 in the box: %w", n.Name, err)
	}
	addrs := []netip.Prefix{netip.PrefixFrom(lease.Addr, n.Subnet.Bits())}
	gws := []netip.Addr{n.Gateway}
	if lease6.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(lease6, n.Subnet6.Bits()))
		gws = append(gws, n.Gateway6)
	}
	for _, a := range addrs {
		if err := in.AddAddr(eth0.Index, a); err != nil {
			return fmt.Errorf("network %s: address %s on eth0: %w", n.Name, a, err)
		}
	}
	if err := in.SetUp(eth0.Index); err != nil {
		return fmt.Errorf("network %s: bring eth0 up: %w", n.Name, err)
	}
	for _, gw := range gws {
		if err := in.AddDefaultRoute(eth0.Index, gw); err != nil {
			return fmt.Errorf("network %s: default route via %s: %w", n.Name, gw, err)
		}
	}
	return nil
}

package nsbox

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/network"
	"github.com/nsbox/nsbox/internal/nft"
)

// The nftables side of bridge networks (package nft): a network's NAT and
// forwarding rules, and the published ports of its boxes, tagged with the
// box's veth name (network.HostVeth), which is unique on the host and
// tells at once whether the box is still there.

func ensureNAT(n *network.Network) error {
	c, err := nft.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	subnets := []netip.Prefix{n.Subnet}
	if n.Subnet6.IsValid() {
		subnets = append(subnets, n.Subnet6)
	}
	return c.EnsureNetwork(nft.Network{Name: n.Name, Bridge: n.Bridge, Subnets: subnets})
}

func removeNAT(n *network.Network) error {
	c, err := nft.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	return c.RemoveNetwork(n.Name)
}

// publish publishes box's ports (box being its veth key) on network n, to
// its address addr; ports of boxes that are gone are reclaimed first.
// Publishing is serialised by a lock: the check for a port in use and the
// rules that take it must not interleave with another box's.
func publish(box string, n *network.Network, addr netip.Addr, ps []Port) error {
	if len(ps) == 0 {
		return nil
	}
	unlock, err := lockPorts()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := nft.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := reclaimPorts(c, leasesOf); err != nil {
		return err
	}
	var ports []nft.Port
	for _, p := range ps {
		if p.HostIP.IsValid() && p.HostIP.Is4() != addr.Is4() {
			return fmt.Errorf("--publish %s:%d: an IPv6 host address for an IPv4 box", p.HostIP, p.HostPort)
		}
		ports = append(ports, nft.Port{Network: n.Name, Box: network.HostVeth(box), HostIP: p.HostIP,
			HostPort: p.HostPort, Proto: p.Proto, BoxIP: addr, BoxPort: p.BoxPort})
	}
	return c.Publish(ports...)
}

// unpublish removes the published ports of box (its veth key).
func unpublish(box string) {
	c, err := nft.Open()
	if err != nil {
		return
	}
	defer c.Close()
	c.Unpublish(network.HostVeth(box))
}

// reclaimPorts removes the ports of boxes that ended without nsbox giving
// back what they held (a crash, a SIGKILL): boxes that no longer hold a
// live lease on the port's network (leases of the network, from leases).
// The lease tells at once and for every stage of a box's life: its veth
// goes with its network namespace, a while after its last process, and
// does not exist yet while it is created (its ports are published before
// the clone), when its lease already counts as alive.
func reclaimPorts(c *nft.Conn, leases func(network string) ([]network.Lease, error)) error {
	ports, err := c.Published()
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, p := range ports {
		if done[p.Box] {
			continue
		}
		done[p.Box] = true
		gone := false
		if ls, err := leases(p.Network); err == nil {
			gone = !slices.ContainsFunc(ls, func(l network.Lease) bool {
				return network.HostVeth(l.Root+"/"+l.Box) == p.Box && leaseAlive(l)
			})
		}
		if gone {
			if err := c.Unpublish(p.Box); err != nil {
				return err
			}
		}
	}
	return nil
}

// leasesOf lists the leases of the named network.
func leasesOf(name string) ([]network.Lease, error) {
	return (&network.Store{Dir: network.Dir}).Leases(name)
}

// lockPorts takes the host-wide lock of published ports.
func lockPorts() (func(), error) { return lockHostWide(".ports.lock") }

// lockHostWide takes the host-wide lock called name in the networks'
// directory; the function it returns lets it go.
func lockHostWide(name string) (func(), error) {
	if err := os.MkdirAll(network.Dir, 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(filepath.Join(network.Dir, name), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { unix.Close(fd) }, nil
}

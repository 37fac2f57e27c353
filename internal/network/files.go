package network

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nsbox/nsbox/internal/fileio"
)

// HostEntry is a line of a box's /etc/hosts.
type HostEntry struct {
	Addr  netip.Addr
	Names []string
}

// HostsFile is a box's /etc/hosts: loopback, the box itself (under its
// hostname and its box name), the boxes already on its network (under
// their names), then the entries asked for (--add-host).
func HostsFile(self netip.Addr, hostname, name string, others []Lease, extra []HostEntry) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	names := []string{hostname}
	if name != "" && name != hostname {
		names = append(names, name)
	}
	fmt.Fprintf(&b, "%s\t%s\n", self, strings.Join(names, " "))
	for _, l := range others {
		if l.Name != "" {
			fmt.Fprintf(&b, "%s\t%s\n", l.Addr, l.Name)
		}
	}
	for _, e := range extra {
		fmt.Fprintf(&b, "%s\t%s\n", e.Addr, strings.Join(e.Names, " "))
	}
	return []byte(b.String())
}

// ResolvConf is a box's /etc/resolv.conf: the host's, without the name
// servers on the host's loopback (127.0.0.53 of systemd-resolved, say),
// which a box on a bridge cannot reach; systemd-resolved's list of the
// servers behind it is used when the host has it.
func ResolvConf() []byte {
	src := "/etc/resolv.conf"
	if b, err := fileio.ReadFile(src); err == nil && strings.Contains(string(b), "nameserver 127.0.0.53") {
		src = "/run/systemd/resolve/resolv.conf"
	}
	b, err := fileio.ReadFile(src)
	if err != nil {
		return nil
	}
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() {
				continue
			}
		}
		out.WriteString(line + "\n")
	}
	return []byte(strings.TrimRight(out.String(), "\n") + "\n")
}

// Addr6 is box's IPv6 address on n: the subnet's address with the same
// host part as its IPv4 lease.
func Addr6(n *Network, v4 netip.Addr) netip.Addr {
	if !n.Subnet6.IsValid() {
		return netip.Addr{}
	}
	a, net4 := v4.As4(), n.Subnet.Addr().As4()
	host := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) -
		(uint32(net4[0])<<24 | uint32(net4[1])<<16 | uint32(net4[2])<<8 | uint32(net4[3]))
	b := n.Subnet6.Addr().As16()
	b[12], b[13], b[14], b[15] = b[12]|byte(host>>24), b[13]|byte(host>>16), b[14]|byte(host>>8), b[15]|byte(host)
	return netip.AddrFrom16(b)
}

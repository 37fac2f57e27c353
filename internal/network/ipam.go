package network

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Lease is an address held by a box on a network.
type Lease struct {
	Addr netip.Addr
	Box  string
	Root string // the state directory of the box
	Name string // the box's name for the hosts files of later boxes
}

// leases is the lease file of a network: one "ADDR BOX ROOT [NAME]" a line.
// It is read and written under an exclusive flock of the file, so that
// concurrent boxes get distinct addresses.
type leases struct {
	fd   int
	list []Lease
}

func (s *Store) lockLeases(name string) (*leases, error) {
	fd, err := unix.Open(s.path(name, ".leases"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("leases of network %s: %w", name, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("leases of network %s: %w", name, err)
	}
	l := &leases{fd: fd}
	var b []byte
	buf := make([]byte, 4096)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("leases of network %s: %w", name, err)
		}
		if n == 0 {
			break
		}
		b = append(b, buf[:n]...)
		off += int64(n)
	}
	l.list = parseLeases(string(b))
	return l, nil
}

func parseLeases(s string) []Lease {
	var out []Lease
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		l := Lease{Addr: a, Box: f[1], Root: f[2]}
		if len(f) > 3 {
			l.Name = f[3]
		}
		out = append(out, l)
	}
	return out
}

// save writes the leases back and unlocks the file.
func (l *leases) save() error {
	defer unix.Close(l.fd)
	var b strings.Builder
	for _, x := range l.list {
		fmt.Fprintf(&b, "%s %s %s %s\n", x.Addr, x.Box, x.Root, x.Name)
	}
	if err := unix.Ftruncate(l.fd, 0); err != nil {
		return err
	}
	_, err := unix.Pwrite(l.fd, []byte(b.String()), 0)
	return err
}

func (l *leases) close() { unix.Close(l.fd) }

// Allocate leases the lowest free address of network n (after the
// gateway) to box (of state directory root), named name; leases of boxes
// for which alive reports false are reclaimed first. It returns the lease
// and the live leases of the other boxes (for the box's hosts file).
func (s *Store) Allocate(n *Network, box, root, name string, alive func(Lease) bool) (Lease, []Lease, error) {
	l, err := s.lockLeases(n.Name)
	if err != nil {
		return Lease{}, nil, err
	}
	used := map[netip.Addr]bool{n.Gateway: true}
	var kept []Lease
	for _, x := range l.list {
		if x.Box == box && x.Root == root || !alive(x) {
			continue
		}
		if name != "" && x.Name == name {
			l.close()
			return Lease{}, nil, fmt.Errorf("name %s is taken on network %s by box %s", name, n.Name, x.Box)
		}
		kept = append(kept, x)
		used[x.Addr] = true
	}
	last := lastAddr(n.Subnet)
	for a := n.Gateway.Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if used[a] {
			continue
		}
		lease := Lease{Addr: a, Box: box, Root: root, Name: name}
		l.list = append(kept, lease)
		if err := l.save(); err != nil {
			return Lease{}, nil, fmt.Errorf("leases of network %s: %w", n.Name, err)
		}
		return lease, kept, nil
	}
	l.close()
	return Lease{}, nil, fmt.Errorf("network %s (%s) has no free address", n.Name, n.Subnet)
}

// Release gives back box's lease on network name, if it has one.
func (s *Store) Release(name, box, root string) error {
	l, err := s.lockLeases(name)
	if err != nil {
		return err
	}
	var kept []Lease
	for _, x := range l.list {
		if x.Box != box || x.Root != root {
			kept = append(kept, x)
		}
	}
	l.list = kept
	return l.save()
}

// Leases lists the leases of network name.
func (s *Store) Leases(name string) ([]Lease, error) {
	b, err := fileio.ReadFile(s.path(name, ".leases"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return parseLeases(string(b)), nil
}

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

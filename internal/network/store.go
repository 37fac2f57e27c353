// Package network connects boxes to bridge networks: a store of networks
// and their address leases (planning, no privileges), and the netlink
// operations that make bridges and veth pairs (apply). The NAT and port
// rules are package nft's.
package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/specjson"
)

// DefaultName is the network of `--net=bridge` without a name.
const DefaultName = "nsbox"

// DefaultSubnet is the default network's subnet, unless the host uses it.
var DefaultSubnet = netip.MustParsePrefix("10.77.0.0/24")

// Network is one bridge network.
type Network struct {
	Name    string       `json:"name"`
	Bridge  string       `json:"bridge"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Subnet6 and Gateway6: IPv6, when asked for.
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	MTU      int          `json:"mtu,omitempty"`
}

// Dir is where networks are kept: one place for the host, whatever the
// state directory of the boxes on them (bridges are the host's).
const Dir = "/run/nsbox/networks"

// Store keeps networks in DIR/NAME.json and their leases in
// DIR/NAME.leases.
type Store struct {
	Dir string
}

// ErrNotExist is returned for an unknown network.
var ErrNotExist = errors.New("no such network")

// CheckName checks a network name: letters, digits, '-', '_' and '.', not
// starting with '.', at most 64 bytes.
func CheckName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return fmt.Errorf("network name %q: want letters, digits, '-', '_' and '.', not first", name)
	}
	return nil
}

// Plan completes a network to create: the bridge name (nsbox0 for the
// default network, else "nsb-" and the name, within the 15 bytes of an
// interface name), the gateway (the subnet's first address), MTU 1500.
func Plan(n Network) (Network, error) {
	if err := CheckName(n.Name); err != nil {
		return n, err
	}
	if !n.Subnet.IsValid() {
		n.Subnet = DefaultSubnet
	}
	n.Subnet = n.Subnet.Masked()
	if !n.Subnet.Addr().Is4() || n.Subnet.Bits() > 30 || n.Subnet.Bits() < 8 {
		return n, fmt.Errorf("subnet %s: want an IPv4 subnet of /8 to /30", n.Subnet)
	}
	n.Gateway = n.Subnet.Addr().Next()
	if n.Subnet6.IsValid() {
		n.Subnet6 = n.Subnet6.Masked()
		if n.Subnet6.Addr().Is4() || n.Subnet6.Bits() > 120 {
			return n, fmt.Errorf("subnet %s: want an IPv6 subnet of at most /120", n.Subnet6)
		}
		n.Gateway6 = n.Subnet6.Addr().Next()
	}
	if n.Bridge == "" {
		n.Bridge = "nsb-" + n.Name
		if n.Name == DefaultName {
			n.Bridge = "nsbox0"
		}
	}
	if len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, "/ ") {
		return n, fmt.Errorf("bridge name %q: interface names have at most 15 bytes (give a shorter network name)", n.Bridge)
	}
	if n.MTU == 0 {
		n.MTU = 1500
	}
	if n.MTU < 576 || n.MTU > 65535 {
		return n, fmt.Errorf("mtu %d: want 576 to 65535", n.MTU)
	}
	return n, nil
}

func (s *Store) path(name, ext string) string { return filepath.Join(s.Dir, name+ext) }

// Get reads network name.
func (s *Store) Get(name string) (*Network, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	b, err := fileio.ReadFile(s.path(name, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, name)
	}
	if err != nil {
		return nil, err
	}
	var n Network
	if err := specjson.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	return &n, nil
}

// Add records network n; it fails if the name, bridge or subnet is taken.
func (s *Store) Add(n Network) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	all, err := s.List()
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name == n.Name {
			return fmt.Errorf("network %s exists", n.Name)
		}
	}
	for _, o := range all {
		switch {
		case o.Bridge == n.Bridge:
			return fmt.Errorf("bridge %s belongs to network %s", n.Bridge, o.Name)
		case o.Subnet.Overlaps(n.Subnet):
			return fmt.Errorf("subnet %s overlaps network %s's %s", n.Subnet, o.Name, o.Subnet)
		}
	}
	b, err := specjson.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return fileio.Write(s.path(n.Name, ".json"), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600, b)
}

// Remove deletes network name's record and leases.
func (s *Store) Remove(name string) error {
	if err := unix.Unlink(s.path(name, ".json")); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("%w: %s", ErrNotExist, name)
		}
		return err
	}
	unix.Unlink(s.path(name, ".leases"))
	return nil
}

// List returns every network, sorted by name.
func (s *Store) List() ([]Network, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Network
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || CheckName(name) != nil {
			continue
		}
		if n, err := s.Get(name); err == nil {
			out = append(out, *n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

package nsbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/network"
	"github.com/nsbox/nsbox/internal/state"
)

// NetworkOptions connects a box to a bridge network (`--net=bridge`), or
// gives it a user-mode network stack (`--net=pasta`, `--net=slirp4netns`),
// which needs no privileges.
type NetworkOptions struct {
	// Mode is "" for a bridge network, or "pasta" or "slirp4netns".
	Mode string
	// Name is the bridge network ("": the default one, made on first use).
	Name string
	// Publish are ports of the box published on the host.
	Publish []Port
	// AddHosts are extra lines of the box's /etc/hosts.
	AddHosts []network.HostEntry
}

// Port is a published port: HostPort (on HostIP, or every local address)
// forwards to the box's BoxPort.
type Port = network.Port

// Network is a bridge network.
type Network = network.Network

func (rt *Runtime) networks() *network.Store {
	return &network.Store{Dir: network.Dir}
}

// CreateNetwork records network n and makes its bridge (see
// network.Plan for the defaults). It needs root.
func (rt *Runtime) CreateNetwork(n Network) (*Network, error) {
	unlock, err := lockHostWide(networksLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return rt.createNetwork(n)
}

// networksLock is the host-wide lock under which networks are made, their
// bridges and rules included: boxes started at once on a new default
// network would otherwise race to make them.
const networksLock = ".networks.lock"

// createNetwork is CreateNetwork under the lock.
func (rt *Runtime) createNetwork(n Network) (*Network, error) {
	n, err := network.Plan(n)
	if err != nil {
		return nil, err
	}
	if err := rt.networks().Add(n); err != nil {
		return nil, err
	}
	if err := rt.ensureNetwork(&n); err != nil {
		rt.networks().Remove(n.Name)
		return nil, err
	}
	return &n, nil
}

// ensureNetwork makes the bridge and rules of network n, if not there.
func (rt *Runtime) ensureNetwork(n *Network) error {
	made, err := network.EnsureBridge(n)
	if err != nil {
		return err
	}
	if err := ensureNAT(n); err != nil {
		if made {
			network.RemoveBridge(n)
		}
		return err
	}
	return nil
}

// Networks lists the networks.
func (rt *Runtime) Networks() ([]Network, error) { return rt.networks().List() }

// InspectNetwork returns network name and its leases.
func (rt *Runtime) InspectNetwork(name string) (*Network, []network.Lease, error) {
	n, err := rt.networks().Get(name)
	if err != nil {
		return nil, nil, err
	}
	ls, err := rt.networks().Leases(name)
	var live []network.Lease
	for _, l := range ls {
		if leaseAlive(l) {
			live = append(live, l)
		}
	}
	return n, live, err
}

// RemoveNetwork deletes network name: its bridge, its rules, its record.
// A network with running boxes is not removed.
func (rt *Runtime) RemoveNetwork(name string) error {
	n, err := rt.networks().Get(name)
	if err != nil {
		return err
	}
	ls, err := rt.networks().Leases(name)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if leaseAlive(l) {
			return fmt.Errorf("network %s is in use by box %s", name, l.Box)
		}
	}
	if err := removeNAT(n); err != nil {
		return err
	}
	if err := network.RemoveBridge(n); err != nil {
		return err
	}
	return rt.networks().Remove(name)
}

// leaseAlive reports whether the box holding lease l exists and is not
// stopped (or is being created).
func leaseAlive(l network.Lease) bool {
	st, err := (&state.Store{Root: l.Root}).Load(l.Box)
	return err == nil && st.Status != specs.StateStopped || errors.Is(err, state.ErrCreating)
}

// boxNetwork is what a box on a bridge network holds, made in prepare and
// given back by release.
type boxNetwork struct {
	net   *Network
	lease network.Lease
	addr6 netip.Addr
	// mode: a user-mode network ("pasta", "slirp4netns") instead, to
	// publish these ports; userNet is it once started.
	mode    string
	publish []Port
	userNet *network.UserNet
}

// prepareNetwork gets box c an address on its network and writes its
// /etc/hosts, /etc/resolv.conf and /etc/hostname into its state
// directory, to be bound into the box; the veth is made after the clone
// (attachNetwork).
func (c *creation) prepareNetwork() error {
	o := c.o.Network
	if !c.ns.Is(specs.NetworkNamespace, namespaces.New) {
		return errors.New("a box's network needs a network namespace of the box's own")
	}
	if o.Mode != "" {
		return c.prepareUserNet()
	}
	if os.Geteuid() != 0 {
		return errors.New("--net=bridge needs root; without it, use --net=pasta or --net=slirp4netns")
	}
	name := o.Name
	if name == "" {
		name = network.DefaultName
	}
	rt := c.rt
	unlock, err := lockHostWide(networksLock)
	if err != nil {
		return err
	}
	n, err := rt.networks().Get(name)
	if errors.Is(err, network.ErrNotExist) && name == network.DefaultName {
		n, err = rt.createNetwork(Network{Name: name})
	}
	if err == nil {
		err = rt.ensureNetwork(n)
	}
	unlock()
	if err != nil {
		return err
	}
	lease, others, err := rt.networks().Allocate(n, c.id, rt.store.Root, boxName(c.id), leaseAlive)
	if err != nil {
		return err
	}
	c.net = &boxNetwork{net: n, lease: lease, addr6: network.Addr6(n, lease.Addr)}
	c.undo = append(c.undo, func() { rt.networks().Release(n.Name, c.id, rt.store.Root) })
	if err := c.savePending(func(st *state.State) { st.Network = n.Name }); err != nil {
		return err
	}
	if err := publish(rt.vethKey(c.id), n, lease.Addr, o.Publish); err != nil {
		return err
	}
	c.undo = append(c.undo, func() { unpublish(rt.vethKey(c.id)) })

	return c.bindNetworkFiles(lease.Addr, others, network.ResolvConf())
}

// prepareUserNet readies a box for pasta or slirp4netns, which are started
// for its network namespace after the clone (attachNetwork).
func (c *creation) prepareUserNet() error {
	o := c.o.Network
	if o.Mode != "pasta" && o.Mode != "slirp4netns" {
		return fmt.Errorf("unknown network mode %q", o.Mode)
	}
	c.net = &boxNetwork{mode: o.Mode, publish: o.Publish}
	resolv := network.ResolvConf()
	self := netip.MustParseAddr("127.0.1.1")
	if o.Mode == "slirp4netns" {
		resolv, self = []byte("nameserver 10.0.2.3\n"), netip.MustParseAddr("10.0.2.100")
	}
	return c.bindNetworkFiles(self, nil, resolv)
}

// bindNetworkFiles writes box c's /etc/hosts (self being its address),
// /etc/resolv.conf and /etc/hostname into its state directory, and binds
// them into the box.
func (c *creation) bindNetworkFiles(self netip.Addr, others []network.Lease, resolv []byte) error {
	s := c.s
	hostname := s.Hostname
	if hostname == "" {
		hostname = c.id
	}
	dir := c.rt.store.Dir(c.id)
	files := []struct {
		name string
		data []byte
	}{
		{"hosts", network.HostsFile(self, hostname, boxName(c.id), others, c.o.Network.AddHosts)},
		{"resolv.conf", resolv},
		{"hostname", []byte(hostname + "\n")},
	}
	rs := *s
	rs.Mounts = append([]specs.Mount(nil), s.Mounts...)
	c.undo = append(c.undo, func() { removeNetworkFiles(dir) })
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := fileio.WriteFile(p, f.data, 0o644); err != nil {
			return err
		}
		rs.Mounts = append(rs.Mounts, specs.Mount{Destination: "/etc/" + f.name, Type: "bind", Source: p, Options: []string{"rbind", "rw"}})
	}
	c.s = &rs
	return nil
}

// vethKey names box id's veth (network.HostVeth) uniquely on the host.
func (rt *Runtime) vethKey(id string) string { return rt.store.Root + "/" + id }

// boxName is the name other boxes know a box by: its id (given with
// --name, or generated).
func boxName(id string) string { return id }

// attachNetwork makes box c's veth pair into the network namespace of
// its first process pid.
func (c *creation) attachNetwork(pid int) error {
	if c.net.mode != "" {
		u, err := network.StartUserNet(c.net.mode, pid, c.net.publish, filepath.Join(c.rt.store.Dir(c.id), "slirp.sock"))
		c.net.userNet = u
		return err
	}
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace of the box: %w", err)
	}
	defer unix.Close(fd)
	return network.Attach(c.net.net, c.rt.vethKey(c.id), fd, c.net.lease, c.net.addr6)
}

// releaseNetwork gives back what box st held on its network.
func (rt *Runtime) releaseNetwork(st *state.State) {
	// Also for a record without a network: one whose creation died after
	// writing the files.
	removeNetworkFiles(rt.store.Dir(st.ID))
	if st.Network == "" {
		return
	}
	unpublish(rt.vethKey(st.ID))
	// The veth goes with the box's network namespace, in the kernel's own
	// time: deleting it here would wait 20 ms for the network stack's RCU
	// grace periods. A new box of the same id replaces a lingering one.
	rt.networks().Release(st.Network, st.ID, rt.store.Root)
}

// removeNetworkFiles removes the /etc files of a box from its state
// directory dir.
func removeNetworkFiles(dir string) {
	for _, f := range []string{"hosts", "resolv.conf", "hostname", "slirp.sock"} {
		unix.Unlink(filepath.Join(dir, f))
	}
}

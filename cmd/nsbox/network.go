package main

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/network"
	"github.com/nsbox/nsbox/internal/specjson"
)

// netFlags are the network flags of `nsbox run`.
type netFlags struct {
	mode     string
	publish  []string
	addHosts []string
}

func (f *netFlags) define(fs *flagSet) {
	fs.stringVar(&f.mode, "net", "", "MODE", "network: none (default: lo only), host, bridge[:NAME], ns:PATH, container:ID, pasta, slirp4netns")
	fs.listVar(&f.publish, "publish", "p", "[IP:]HOSTPORT:PORT[/tcp|udp]", "publish a port of the box on the host (with --net=bridge; repeatable)")
	fs.listVar(&f.addHosts, "add-host", "", "NAME:IP", "add a line to the box's /etc/hosts (with --net=bridge; repeatable)")
}

// apply sets up the network of box s (id) as the flags say.
func (f *netFlags) apply(g *global, s *specs.Spec, o *nsbox.Options) error {
	mode, arg, _ := strings.Cut(f.mode, ":")
	if mode != "" {
		own := false
		for _, n := range s.Linux.Namespaces {
			own = own || n.Type == specs.NetworkNamespace && n.Path == ""
		}
		if !own {
			return &usageError{"--net and --share net / --ns net=... both choose the network namespace: give one"}
		}
	}
	if (mode != "bridge" && len(f.addHosts) > 0) || (mode != "bridge" && mode != "pasta" && mode != "slirp4netns" && len(f.publish) > 0) {
		return &usageError{"--publish needs --net=bridge, pasta or slirp4netns, and --add-host --net=bridge"}
	}
	var publish []nsbox.Port
	for _, p := range f.publish {
		port, err := parsePublish(p)
		if err != nil {
			return err
		}
		publish = append(publish, port)
	}
	switch mode {
	case "", "none":
		return nil
	case "host":
		return nsbox.WithSharedNamespace(specs.NetworkNamespace)(s)
	case "ns":
		if arg == "" {
			return &usageError{"--net=ns:PATH needs a path (/run/netns/NAME, /proc/PID/ns/net)"}
		}
		if _, err := os.Stat(arg); err != nil {
			return fmt.Errorf("--net=ns:%s: %w", arg, err)
		}
		return nsbox.WithJoinedNamespace(specs.NetworkNamespace, arg)(s)
	case "container":
		rt, err := nsbox.New(g.root)
		if err != nil {
			return err
		}
		st, err := rt.State(arg)
		if err != nil {
			return fmt.Errorf("--net=container:%s: %w", arg, err)
		}
		if st.Status == specs.StateStopped || st.Status == specs.StateCreating {
			return fmt.Errorf("--net=container:%s: the box is %s", arg, st.Status)
		}
		return nsbox.WithJoinedNamespace(specs.NetworkNamespace, "/proc/"+strconv.Itoa(st.Pid)+"/ns/net")(s)
	case "bridge":
		no := &nsbox.NetworkOptions{Name: arg, Publish: publish}
		for _, h := range f.addHosts {
			name, ip, ok := strings.Cut(h, ":")
			a, err := netip.ParseAddr(ip)
			if !ok || err != nil || name == "" {
				return &usageError{fmt.Sprintf("--add-host %q: want NAME:IP", h)}
			}
			no.AddHosts = append(no.AddHosts, network.HostEntry{Addr: a, Names: []string{name}})
		}
		o.Network = no
		return nil
	case "pasta", "slirp4netns":
		o.Network = &nsbox.NetworkOptions{Mode: mode, Publish: publish}
		return nil
	}
	return &usageError{fmt.Sprintf("--net %q: want none, host, bridge[:NAME], ns:PATH, container:ID, pasta or slirp4netns", f.mode)}
}

// parsePublish reads [IP:]HOSTPORT:PORT[/tcp|udp] (an IPv6 address in
// brackets).
func parsePublish(s string) (nsbox.Port, error) {
	p := nsbox.Port{Proto: "tcp"}
	spec, proto, ok := strings.Cut(s, "/")
	if ok {
		if proto != "tcp" && proto != "udp" {
			return p, &usageError{fmt.Sprintf("--publish %q: protocol %q: want tcp or udp", s, proto)}
		}
		p.Proto = proto
	}
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return p, &usageError{fmt.Sprintf("--publish %q: want [IP:]HOSTPORT:PORT[/tcp|udp]", s)}
	}
	host, boxPort := spec[:i], spec[i+1:]
	hostPort := host
	if j := strings.LastIndexByte(host, ':'); j >= 0 {
		ip := strings.Trim(host[:j], "[]")
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return p, &usageError{fmt.Sprintf("--publish %q: %q is not an address", s, ip)}
		}
		p.HostIP, hostPort = a, host[j+1:]
	}
	for _, x := range []struct {
		v   string
		dst *uint16
	}{{hostPort, &p.HostPort}, {boxPort, &p.BoxPort}} {
		n, err := strconv.ParseUint(x.v, 10, 16)
		if err != nil || n == 0 {
			return p, &usageError{fmt.Sprintf("--publish %q: %q is not a port (1 to 65535)", s, x.v)}
		}
		*x.dst = uint16(n)
	}
	return p, nil
}

func cmdNetwork(g *global, args []string) int {
	usage := "create [--subnet CIDR] [--ipv6-subnet CIDR] [--mtu N] [--bridge IFNAME] NAME | ls | inspect NAME | rm NAME"
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Printf("Usage: nsbox network %s\n\nManage bridge networks for `nsbox run --net=bridge:NAME`.\n", usage)
		if len(args) == 0 {
			return exitError
		}
		return 0
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		var n nsbox.Network
		var subnet, subnet6 string
		fs := newFlagSet("network create", "[flags] NAME", "Create a bridge network and its bridge.")
		fs.stringVar(&subnet, "subnet", "", "CIDR", "IPv4 subnet (default: "+network.DefaultSubnet.String()+")")
		fs.stringVar(&subnet6, "ipv6-subnet", "", "CIDR", "IPv6 subnet too")
		fs.intVar(&n.MTU, "mtu", "", "N", "MTU of the bridge and veths (default 1500)")
		fs.stringVar(&n.Bridge, "bridge", "", "IFNAME", "bridge name (default nsb-NAME)")
		rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
		if !ok {
			return code
		}
		n.Name = pos[0]
		for _, x := range []struct {
			v   string
			dst *netip.Prefix
		}{{subnet, &n.Subnet}, {subnet6, &n.Subnet6}} {
			if x.v == "" {
				continue
			}
			p, err := netip.ParsePrefix(x.v)
			if err != nil {
				return fail(g, &usageError{fmt.Sprintf("subnet %q: want an address/length like 10.1.0.0/24", x.v)})
			}
			*x.dst = p
		}
		made, err := rt.CreateNetwork(n)
		if err != nil {
			return fail(g, err)
		}
		fmt.Println(made.Name)
		return 0
	case "ls", "list":
		fs := newFlagSet("network ls", "", "List the networks.")
		rt, _, code, ok := boxArgs(g, fs, args, 0, 0)
		if !ok {
			return code
		}
		ns, err := rt.Networks()
		if err != nil {
			return fail(g, err)
		}
		w := tabwriter.NewWriter(os.Stdout, 8, 1, 3, ' ', 0)
		fmt.Fprintln(w, "NAME\tBRIDGE\tSUBNET\tGATEWAY")
		for _, n := range ns {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n.Name, n.Bridge, n.Subnet, n.Gateway)
		}
		w.Flush()
		return 0
	case "inspect":
		fs := newFlagSet("network inspect", "NAME", "Print a network and the boxes on it as JSON.")
		rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
		if !ok {
			return code
		}
		n, leases, err := rt.InspectNetwork(pos[0])
		if err != nil {
			return fail(g, err)
		}
		type box struct {
			ID   string     `json:"id"`
			Addr netip.Addr `json:"addr"`
		}
		out := struct {
			*nsbox.Network
			Boxes []box `json:"boxes"`
		}{Network: n, Boxes: []box{}}
		for _, l := range leases {
			out.Boxes = append(out.Boxes, box{ID: l.Box, Addr: l.Addr})
		}
		b, _ := specjson.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
		return 0
	case "rm", "remove":
		fs := newFlagSet("network rm", "NAME", "Remove a network, its bridge and its rules.")
		rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
		if !ok {
			return code
		}
		if err := rt.RemoveNetwork(pos[0]); err != nil {
			return fail(g, err)
		}
		return 0
	}
	return fail(g, &usageError{fmt.Sprintf("nsbox network %s: want %s", sub, usage)})
}

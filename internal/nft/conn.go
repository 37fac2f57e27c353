package nft

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Conn is a netlink connection to nftables, bound to one network
// namespace. It is not safe for concurrent use.
type Conn struct {
	fd    int
	netns int // a dup of the namespace's fd; 0 for the caller's namespace
	seq   uint32
	buf   []byte
}

// Open connects to nftables in the caller's network namespace (the one of
// the calling thread).
func Open() (*Conn, error) { return open(0) }

// OpenNetNS connects to nftables in the network namespace that fd refers
// to (an open /proc/PID/ns/net or /run/netns/NAME); Conn keeps a dup of
// fd, so the caller may close its own. The netlink sockets are made in the
// namespace on a locked thread of their own that enters the namespace and
// comes back; the caller's threads do not move.
func OpenNetNS(fd int) (*Conn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("nftables: dup netns fd %d: %w", fd, err)
	}
	c, err := open(dup)
	if err != nil {
		unix.Close(dup)
	}
	return c, err
}

func open(netns int) (*Conn, error) {
	fd, err := socketIn(netns)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink socket: %w", err)
	}
	return &Conn{fd: fd, netns: netns}, nil
}

// Close closes the connection; c must not be used afterwards.
func (c *Conn) Close() error {
	err := unix.Close(c.fd)
	if c.netns != 0 {
		unix.Close(c.netns)
		c.netns = 0
	}
	return err
}

// EnsureNetwork makes table inet nsbox and its chains if they are
// missing, and sets network n's rules (replacing any it had, in the same
// transaction), so that calling it again changes nothing. For an IPv4
// subnet, it also sets net.ipv4.conf.BRIDGE.route_localnet=1 (see the
// package doc): the bridge must exist.
func (c *Conn) EnsureNetwork(n Network) error {
	if err := n.check(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, s := range n.Subnets {
		if s.Addr().Is4() {
			if err := setRouteLocalnet(c.netns, n.Bridge); err != nil {
				return fmt.Errorf("nftables: network %s: %w", n.Name, err)
			}
		}
	}
	err := c.transact(func(st *state) ([]message, error) {
		var msgs []message
		if len(st.chains) < len(chainSpecs) {
			msgs = append(msgs, addTable())
			for _, ch := range chainSpecs {
				if !st.chains[ch.name] {
					msgs = append(msgs, addChain(ch))
				}
			}
		}
		for _, r := range tableRules() {
			if !slices.ContainsFunc(st.rules, func(x loaded) bool { return x.chain == r.chain && x.tag == r.tag }) {
				msgs = append(msgs, addRule(r))
			}
		}
		want := networkRules(n)
		var have []loaded
		for _, x := range st.rules {
			if x.tag.net == n.Name && x.tag.box == "" {
				have = append(have, x)
			}
		}
		if !sameRules(have, want) {
			for _, x := range have {
				msgs = append(msgs, delRule(x))
			}
			for _, r := range want {
				msgs = append(msgs, addRule(r))
			}
		}
		return msgs, nil
	})
	if err != nil {
		return fmt.Errorf("nftables: add rules of network %s: %w", n.Name, err)
	}
	return nil
}

// RemoveNetwork deletes the rules of network name, its published ports
// included, and the table when no network is left. A network without
// rules is not an error.
func (c *Conn) RemoveNetwork(name string) error {
	err := c.transact(func(st *state) ([]message, error) {
		if len(st.chains) == 0 {
			return nil, nil
		}
		others := slices.ContainsFunc(st.rules, func(x loaded) bool { return x.tag.net != "" && x.tag.net != name })
		if !others {
			return []message{delTable()}, nil
		}
		return deleteRules(st, func(t tag) bool { return t.net == name }), nil
	})
	if err != nil {
		return fmt.Errorf("nftables: remove network %s: %w", name, err)
	}
	return nil
}

// Publish adds the DNAT rules of ports, all for the same box, in one
// transaction: all of them or none. It refuses with ErrPortInUse a port
// whose host address, port and protocol another rule already publishes
// (every address overlaps every single one), and with ErrNoNetwork a port
// of a network that EnsureNetwork has not set up. A port that the box
// already publishes exactly so is left as it is.
func (c *Conn) Publish(ports ...Port) error {
	if len(ports) == 0 {
		return nil
	}
	box := ports[0].Box
	for _, p := range ports {
		if err := p.check(); err != nil {
			return fmt.Errorf("nftables: publish: %w", err)
		}
		if p.Box != box {
			return fmt.Errorf("nftables: publish: ports of boxes %s and %s in one call", box, p.Box)
		}
	}
	err := c.transact(func(st *state) ([]message, error) {
		existing := st.ports()
		var msgs []message
		for _, p := range ports {
			p = p.normal()
			if !st.networks[p.Network] {
				return nil, fmt.Errorf("nftables: publish %s for box %s: network %s: %w", p, p.Box, p.Network, ErrNoNetwork)
			}
			if slices.Contains(existing, p) {
				continue
			}
			for _, q := range existing {
				if p.overlaps(q) {
					return nil, fmt.Errorf("nftables: publish %s for box %s: box %s publishes %s: %w", p, p.Box, q.Box, q, ErrPortInUse)
				}
			}
			existing = append(existing, p)
			msgs = append(msgs, addRule(portRule(p)))
		}
		return msgs, nil
	})
	if err != nil && !errors.Is(err, ErrNoNetwork) && !errors.Is(err, ErrPortInUse) {
		return fmt.Errorf("nftables: add rules of box %s: %w", box, err)
	}
	return err
}

// Unpublish deletes every rule of box, in one transaction. A box without
// rules is not an error.
func (c *Conn) Unpublish(box string) error {
	err := c.transact(func(st *state) ([]message, error) {
		return deleteRules(st, func(t tag) bool { return t.box == box }), nil
	})
	if err != nil {
		return fmt.Errorf("nftables: delete rules of box %s: %w", box, err)
	}
	return nil
}

// Published lists the published ports, read back from the rules. A port
// rule that it cannot read (one written by hand, or by another version)
// yields a Port with only Network and Box set, so that the caller can
// still reclaim the ports of a dead box.
func (c *Conn) Published() ([]Port, error) {
	st, err := c.load()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return st.ports(), nil
}

// state is what the table holds.
type state struct {
	gen      uint32          // the ruleset's generation when read
	chains   map[string]bool // the table's chains that exist
	rules    []loaded        // nsbox's rules in the table's chains
	networks map[string]bool
}

// loaded is a rule as read back from the kernel.
type loaded struct {
	chain  string
	handle uint64
	exprs  []expr
	tag    tag
}

func (s *state) ports() []Port {
	var ports []Port
	for _, x := range s.rules {
		if x.tag.box == "" {
			continue
		}
		p, _ := parsePort(x.exprs)
		p.Network, p.Box = x.tag.net, x.tag.box
		ports = append(ports, p)
	}
	return ports
}

// maxTries bounds the reads (and writes) that changes of the ruleset by
// others interrupt. Each retry means that another change went through.
const maxTries = 100

// transact reads the table, asks build for the changes to make and
// commits them in one batch that the kernel applies only if the ruleset
// has not changed since it was read; if it has, it reads and builds again.
// So two processes that change the table at once cannot both act on
// what they read before the other's change. An error of build is
// returned as it is.
func (c *Conn) transact(build func(*state) ([]message, error)) error {
	for try := 1; ; try++ {
		st, err := c.load()
		if err != nil {
			return err
		}
		msgs, err := build(st)
		if err != nil || len(msgs) == 0 {
			return err
		}
		err = c.commit(st.gen, msgs)
		if errors.Is(err, unix.ERESTART) && try < maxTries {
			continue
		}
		return err
	}
}

// load reads the generation of the ruleset and the table's rules.
func (c *Conn) load() (*state, error) {
	for try := 1; ; try++ {
		st, err := c.read()
		if errors.Is(err, errDumpIntr) && try < maxTries {
			continue
		}
		return st, err
	}
}

func (c *Conn) read() (*state, error) {
	st := &state{chains: map[string]bool{}, networks: map[string]bool{}}
	gen, err := c.request(message{typ: unix.NFT_MSG_GETGEN, family: unix.AF_UNSPEC})
	if err != nil {
		return nil, fmt.Errorf("read ruleset generation: %w", err)
	}
	if len(gen) == 0 || !gen[0].has(unix.NFTA_GEN_ID) {
		return nil, errors.New("read ruleset generation: no NFTA_GEN_ID")
	}
	st.gen = gen[0].u32(unix.NFTA_GEN_ID)

	chains, err := c.request(message{typ: unix.NFT_MSG_GETCHAIN, flags: unix.NLM_F_DUMP, family: unix.NFPROTO_INET})
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, a := range chains {
		if name := a.str(unix.NFTA_CHAIN_NAME); a.str(unix.NFTA_CHAIN_TABLE) == TableName && isChain(name) {
			st.chains[name] = true
		}
	}
	if len(st.chains) == 0 {
		return st, nil
	}

	var e encoder
	e.str(unix.NFTA_RULE_TABLE, TableName)
	rules, err := c.request(message{typ: unix.NFT_MSG_GETRULE, flags: unix.NLM_F_DUMP, family: unix.NFPROTO_INET, attrs: e.b})
	if err != nil {
		return nil, fmt.Errorf("list rules of table inet %s: %w", TableName, err)
	}
	for _, a := range rules {
		chain := a.str(unix.NFTA_RULE_CHAIN)
		if a.str(unix.NFTA_RULE_TABLE) != TableName || !isChain(chain) {
			continue
		}
		t := parseTag(a[unix.NFTA_RULE_USERDATA])
		if !t.ours {
			continue
		}
		h := a.u64(unix.NFTA_RULE_HANDLE)
		if h == 0 { // delRule needs it; checked here so that no batch fails halfway through building
			return nil, fmt.Errorf("a rule of chain %s without a handle", chain)
		}
		st.rules = append(st.rules, loaded{chain: chain, handle: h, exprs: decodeExprs(a[unix.NFTA_RULE_EXPRESSIONS]), tag: t})
		if t.net != "" && t.box == "" {
			st.networks[t.net] = true
		}
	}
	return st, nil
}

// sameRules reports whether the rules read from the kernel are the rules
// to add, in any order.
func sameRules(have []loaded, want []rule) bool {
	if len(have) != len(want) {
		return false
	}
	used := make([]bool, len(have))
next:
	for _, r := range want {
		for i, x := range have {
			if !used[i] && x.chain == r.chain && slices.Equal(x.exprs, r.exprs) {
				used[i] = true
				continue next
			}
		}
		return false
	}
	return true
}

// deleteRules is the deletion of the rules whose tag matches.
func deleteRules(st *state, match func(tag) bool) []message {
	var msgs []message
	for _, x := range st.rules {
		if match(x.tag) {
			msgs = append(msgs, delRule(x))
		}
	}
	return msgs
}

// The messages of a batch.

func addTable() message {
	var e encoder
	e.str(unix.NFTA_TABLE_NAME, TableName)
	return message{typ: unix.NFT_MSG_NEWTABLE, flags: unix.NLM_F_CREATE, family: unix.NFPROTO_INET, attrs: e.b,
		what: "add table inet " + TableName}
}

func delTable() message {
	var e encoder
	e.str(unix.NFTA_TABLE_NAME, TableName)
	return message{typ: unix.NFT_MSG_DELTABLE, family: unix.NFPROTO_INET, attrs: e.b,
		what: "delete table inet " + TableName}
}

func addChain(ch chainSpec) message {
	var e encoder
	e.str(unix.NFTA_CHAIN_TABLE, TableName)
	e.str(unix.NFTA_CHAIN_NAME, ch.name)
	if ch.typ != "" {
		hook := e.begin(unix.NFTA_CHAIN_HOOK)
		e.u32(unix.NFTA_HOOK_HOOKNUM, ch.hook)
		e.u32(unix.NFTA_HOOK_PRIORITY, uint32(ch.prio))
		e.end(hook)
		e.str(unix.NFTA_CHAIN_TYPE, ch.typ)
	}
	return message{typ: unix.NFT_MSG_NEWCHAIN, flags: unix.NLM_F_CREATE, family: unix.NFPROTO_INET, attrs: e.b,
		what: "add chain " + ch.name}
}

func addRule(r rule) message {
	var e encoder
	e.str(unix.NFTA_RULE_TABLE, TableName)
	e.str(unix.NFTA_RULE_CHAIN, r.chain)
	encodeExprs(&e, r.exprs)
	e.attr(unix.NFTA_RULE_USERDATA, userData(r.tag.comment()))
	return message{typ: unix.NFT_MSG_NEWRULE, flags: unix.NLM_F_CREATE | unix.NLM_F_APPEND, family: unix.NFPROTO_INET, attrs: e.b,
		what: "add rule \"" + r.tag.comment() + "\" to chain " + r.chain}
}

func delRule(x loaded) message {
	var e encoder
	e.str(unix.NFTA_RULE_TABLE, TableName)
	e.str(unix.NFTA_RULE_CHAIN, x.chain)
	e.u64(unix.NFTA_RULE_HANDLE, x.handle)
	return message{typ: unix.NFT_MSG_DELRULE, family: unix.NFPROTO_INET, attrs: e.b,
		what: "delete rule " + strconv.FormatUint(x.handle, 10) + " of chain " + x.chain}
}

// Package rtnl speaks just enough rtnetlink to wire a box to a bridge:
// links (bridge, veth into another namespace), addresses and routes. It
// is small on purpose: a general netlink library, with every link type
// there is, doubled the share of nsbox's memory that its binary takes.
package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
)

// Conn is a netlink socket of one network namespace.
type Conn struct {
	fd  int
	seq atomic.Uint32
}

// Dial opens a connection in the caller's network namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &Conn{fd: fd}, nil
}

// DialAt opens a connection in the network namespace of file nsfd (see
// namespaces.InNet).
func DialAt(nsfd int) (*Conn, error) {
	var c *Conn
	err := namespaces.InNet(nsfd, func() (err error) {
		c, err = Dial()
		return err
	})
	return c, err
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// msg builds one netlink message.
type msg struct {
	b []byte
}

func newMsg(typ, flags uint16, body any) *msg {
	m := &msg{b: make([]byte, unix.SizeofNlMsghdr)}
	binary.NativeEndian.PutUint16(m.b[4:], typ)
	binary.NativeEndian.PutUint16(m.b[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	m.b = append(m.b, bytesOf(body)...)
	return m
}

func bytesOf(v any) []byte {
	switch x := v.(type) {
	case *unix.IfInfomsg:
		return unsafe.Slice((*byte)(unsafe.Pointer(x)), unix.SizeofIfInfomsg)
	case *unix.IfAddrmsg:
		return unsafe.Slice((*byte)(unsafe.Pointer(x)), unix.SizeofIfAddrmsg)
	case *unix.RtMsg:
		return unsafe.Slice((*byte)(unsafe.Pointer(x)), unix.SizeofRtMsg)
	}
	panic("rtnl: unknown message body")
}

func align(n int) int { return (n + 3) &^ 3 }

// attr appends attribute typ with data.
//
//go:noinline
func (m *msg) attr(typ uint16, data []byte) {
	l := unix.SizeofRtAttr + len(data)
	h := make([]byte, unix.SizeofRtAttr)
	binary.NativeEndian.PutUint16(h[0:], uint16(l))
	binary.NativeEndian.PutUint16(h[2:], typ)
	m.b = append(m.b, h...)
	m.b = append(m.b, data...)
	m.b = append(m.b, make([]byte, align(l)-l)...)
}

func (m *msg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

func (m *msg) u32(typ uint16, v uint32) {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	m.attr(typ, b)
}

// nest appends attribute typ holding what fill appends.
func (m *msg) nest(typ uint16, fill func()) {
	start := len(m.b)
	m.attr(typ, nil)
	fill()
	binary.NativeEndian.PutUint16(m.b[start:], uint16(len(m.b)-start))
}

// do sends m and collects its replies until its acknowledgement (or, for
// a dump, its end).
func (c *Conn) do(m *msg) ([][]byte, error) {
	seq := c.seq.Add(1)
	binary.NativeEndian.PutUint32(m.b[0:], uint32(len(m.b)))
	binary.NativeEndian.PutUint32(m.b[8:], seq)
	if err := unix.Sendto(c.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var replies [][]byte
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		msgs, err := parseMessages(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, r := range msgs {
			if r.Header.Seq != seq {
				continue
			}
			switch r.Header.Type {
			case unix.NLMSG_ERROR:
				if len(r.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if e := int32(binary.NativeEndian.Uint32(r.Data)); e != 0 {
					return nil, unix.Errno(-e)
				}
				return replies, nil
			case unix.NLMSG_DONE:
				return replies, nil
			default:
				replies = append(replies, append([]byte(nil), r.Data...))
			}
		}
	}
}

type message struct {
	Header unix.NlMsghdr
	Data   []byte
}

// parseMessages splits a datagram into its netlink messages.
func parseMessages(b []byte) ([]message, error) {
	var out []message
	for len(b) >= unix.SizeofNlMsghdr {
		h := *(*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return nil, errors.New("malformed netlink message")
		}
		out = append(out, message{Header: h, Data: b[unix.SizeofNlMsghdr:l]})
		b = b[min(align(l), len(b)):]
	}
	return out, nil
}

// Link is an interface as LinkByName reports it.
type Link struct {
	Index int
	Kind  string // "bridge", "veth", ... ("" for none)
}

// LinkByName finds interface name; unix.ENODEV if there is none.
func (c *Conn) LinkByName(name string) (Link, error) {
	m := newMsg(unix.RTM_GETLINK, 0, &unix.IfInfomsg{Family: unix.AF_UNSPEC})
	m.str(unix.IFLA_IFNAME, name)
	replies, err := c.do(m)
	if err != nil {
		return Link{}, err
	}
	for _, r := range replies {
		if len(r) < unix.SizeofIfInfomsg {
			continue
		}
		info := (*unix.IfInfomsg)(unsafe.Pointer(&r[0]))
		l := Link{Index: int(info.Index)}
		attrs, _ := parseAttrs(r[unix.SizeofIfInfomsg:])
		if li, ok := attrs[unix.IFLA_LINKINFO]; ok {
			in, _ := parseAttrs(li)
			if k, ok := in[unix.IFLA_INFO_KIND]; ok {
				l.Kind = cstring(k)
			}
		}
		return l, nil
	}
	return Link{}, unix.ENODEV
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func parseAttrs(b []byte) (map[uint16][]byte, error) {
	out := map[uint16][]byte{}
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED
		if l < unix.SizeofRtAttr || l > len(b) {
			return out, errors.New("malformed netlink attribute")
		}
		out[typ] = b[unix.SizeofRtAttr:l]
		b = b[min(align(l), len(b)):]
	}
	return out, nil
}

// AddBridge creates bridge name with mtu.
func (c *Conn) AddBridge(name string, mtu int) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.IfInfomsg{Family: unix.AF_UNSPEC})
	m.str(unix.IFLA_IFNAME, name)
	m.u32(unix.IFLA_MTU, uint32(mtu))
	m.nest(unix.IFLA_LINKINFO, func() { m.str(unix.IFLA_INFO_KIND, "bridge") })
	_, err := c.do(m)
	return err
}

// AddVeth creates veth pair name (on bridge master, if not 0) and peer,
// the peer right in the network namespace of file peerNS.
func (c *Conn) AddVeth(name string, mtu, master int, peer string, peerNS int) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.IfInfomsg{Family: unix.AF_UNSPEC})
	m.str(unix.IFLA_IFNAME, name)
	m.u32(unix.IFLA_MTU, uint32(mtu))
	if master != 0 {
		m.u32(unix.IFLA_MASTER, uint32(master))
	}
	m.nest(unix.IFLA_LINKINFO, func() {
		m.str(unix.IFLA_INFO_KIND, "veth")
		m.nest(unix.IFLA_INFO_DATA, func() {
			m.nest(1 /* VETH_INFO_PEER */, func() {
				m.b = append(m.b, bytesOf(&unix.IfInfomsg{Family: unix.AF_UNSPEC})...)
				m.str(unix.IFLA_IFNAME, peer)
				m.u32(unix.IFLA_MTU, uint32(mtu))
				m.u32(unix.IFLA_NET_NS_FD, uint32(peerNS))
			})
		})
	})
	_, err := c.do(m)
	return err
}

// SetUp brings interface index up.
func (c *Conn) SetUp(index int) error {
	m := newMsg(unix.RTM_NEWLINK, 0, &unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index), Flags: unix.IFF_UP, Change: unix.IFF_UP})
	_, err := c.do(m)
	return err
}

// DelLink deletes interface index.
func (c *Conn) DelLink(index int) error {
	m := newMsg(unix.RTM_DELLINK, 0, &unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index)})
	_, err := c.do(m)
	return err
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// AddAddr gives interface index address p.
func (c *Conn) AddAddr(index int, p netip.Prefix) error {
	a := p.Addr()
	var flags uint8
	if a.Is6() {
		// Ours alone on the link (a box's, a bridge's): no duplicate
		// detection, which would keep it unusable for a second or two.
		flags = unix.IFA_F_NODAD
	}
	m := newMsg(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.IfAddrmsg{
		Family: family(a), Prefixlen: uint8(p.Bits()), Flags: flags, Index: uint32(index)})
	m.attr(unix.IFA_LOCAL, a.AsSlice())
	m.attr(unix.IFA_ADDRESS, a.AsSlice())
	if a.Is4() {
		m.attr(unix.IFA_BROADCAST, broadcast(p).AsSlice())
	}
	_, err := c.do(m)
	return err
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Addrs lists the IPv4 addresses of every interface.
func (c *Conn) Addrs() ([]netip.Prefix, error) {
	m := newMsg(unix.RTM_GETADDR, unix.NLM_F_DUMP, &unix.IfAddrmsg{Family: unix.AF_INET})
	replies, err := c.do(m)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, r := range replies {
		if len(r) < unix.SizeofIfAddrmsg {
			continue
		}
		info := (*unix.IfAddrmsg)(unsafe.Pointer(&r[0]))
		attrs, _ := parseAttrs(r[unix.SizeofIfAddrmsg:])
		if v, ok := attrs[unix.IFA_ADDRESS]; ok {
			if a, ok := netip.AddrFromSlice(v); ok {
				out = append(out, netip.PrefixFrom(a, int(info.Prefixlen)))
			}
		}
	}
	return out, nil
}

// AddDefaultRoute routes everything through gateway gw on interface index.
func (c *Conn) AddDefaultRoute(index int, gw netip.Addr) error {
	m := newMsg(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.RtMsg{
		Family: family(gw), Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
		Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST})
	m.attr(unix.RTA_GATEWAY, gw.AsSlice())
	m.u32(unix.RTA_OIF, uint32(index))
	_, err := c.do(m)
	return err
}

// ipv4DevconfRouteLocalnet is IPV4_DEVCONF_ROUTE_LOCALNET of linux/ip.h.
const ipv4DevconfRouteLocalnet = 26

// SetRouteLocalnet sets net.ipv4.conf.DEV.route_localnet=1 on interface
// index: the kernel then routes packets with a loopback address through
// it. Through rtnetlink rather than /proc/sys, which shows the namespace
// of the thread that opens it. Equivalent to: `ip link set DEV` with
// IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { ROUTE_LOCALNET = 1 } } },
// which iproute2 has no words for.
func (c *Conn) SetRouteLocalnet(index int) error {
	m := newMsg(unix.RTM_NEWLINK, 0, &unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index)})
	m.nest(unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, func() {
		m.nest(unix.AF_INET|unix.NLA_F_NESTED, func() {
			m.nest(unix.IFLA_INET_CONF|unix.NLA_F_NESTED, func() {
				m.u32(ipv4DevconfRouteLocalnet, 1)
			})
		})
	})
	_, err := c.do(m)
	return err
}

// SetHairpin puts bridge port index in hairpin mode (IFLA_BRPORT_MODE):
// the bridge may then send a frame back out of the port it came in by, as
// it must when a box reaches its own published port through the host and
// br_netfilter bridges the DNATed packet. Equivalent to: `bridge link set
// dev DEV hairpin on`.
func (c *Conn) SetHairpin(index int) error {
	m := newMsg(unix.RTM_SETLINK, 0, &unix.IfInfomsg{Family: unix.AF_BRIDGE, Index: int32(index)})
	m.nest(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, func() {
		m.attr(unix.IFLA_BRPORT_MODE, []byte{1})
	})
	_, err := c.do(m)
	return err
}

package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
)

// This file is the transport: a NETLINK_NETFILTER socket, the attribute
// encoding, requests (one message and its answers) and batches (a
// transaction). It knows nothing of nsbox's rules.
//
// A message is a netlink header, a struct nfgenmsg (family, version,
// res_id) and attributes. nf_tables wants its integers in network byte
// order; the attribute headers are in the host's.
//
// A batch is one datagram:
//
//	NFNL_MSG_BATCH_BEGIN { NFNL_BATCH_GENID }   seq s
//	NFT_MSG_...                                 seq s+1 ... s+n-1
//	NFT_MSG_... (NLM_F_ACK)                     seq s+n
//	NFNL_MSG_BATCH_END                          seq s+n+1
//
// The kernel applies all of its messages or none. It handles the datagram
// before sendmsg returns, so every answer is queued by then: an error for
// each message that failed and an ack for the last one (the sign that the
// kernel went through the batch; one ack per message could overflow the
// socket's buffer on a large batch), or one error for the batch itself,
// with the begin message's sequence number (ERESTART when the ruleset is
// no longer of generation NFNL_BATCH_GENID, or a failed commit).

const (
	nfgenmsgLen  = 4
	nfNftables   = unix.NFNL_SUBSYS_NFTABLES << 8 // message types of nf_tables
	nlattrHdrLen = unix.SizeofNlAttr
	recvBufLen   = 64 << 10 // kernel dumps fill at most 32 KiB per datagram
)

// errDumpIntr reports a dump that changes of the ruleset interrupted.
var errDumpIntr = errors.New("dump interrupted by a change of the ruleset")

// socketIn opens a NETLINK_NETFILTER socket in the network namespace of
// file netns (see namespaces.InNet), or in the calling thread's for 0.
func socketIn(netns int) (int, error) {
	if netns == 0 {
		return socketHere()
	}
	fd := -1
	err := namespaces.InNet(netns, func() (err error) {
		fd, err = socketHere()
		return err
	})
	return fd, err
}

func socketHere() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netlink bind: %w", err)
	}
	// Acks without a copy of the message they answer; best effort.
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	return fd, nil
}

// encoder appends netlink attributes.
type encoder struct{ b []byte }

func align4(n int) int { return (n + 3) &^ 3 }

// attr appends attribute typ holding data. The encoder's methods are not
// inlined: the rule builders call them at hundreds of places, and each
// copy would grow the binary, all of which a box's start maps.
//
//go:noinline
func (e *encoder) attr(typ uint16, data []byte) {
	e.b = binary.NativeEndian.AppendUint16(e.b, uint16(nlattrHdrLen+len(data)))
	e.b = binary.NativeEndian.AppendUint16(e.b, typ)
	e.b = append(e.b, data...)
	e.pad()
}

//go:noinline
func (e *encoder) pad() {
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
}

// str appends a NUL-terminated string.
//
//go:noinline
func (e *encoder) str(typ uint16, s string) {
	e.b = binary.NativeEndian.AppendUint16(e.b, uint16(nlattrHdrLen+len(s)+1))
	e.b = binary.NativeEndian.AppendUint16(e.b, typ)
	e.b = append(append(e.b, s...), 0)
	e.pad()
}

// u32 appends a 32-bit integer in network byte order.
//
//go:noinline
func (e *encoder) u32(typ uint16, v uint32) {
	e.b = binary.NativeEndian.AppendUint16(e.b, nlattrHdrLen+4)
	e.b = binary.NativeEndian.AppendUint16(e.b, typ)
	e.b = binary.BigEndian.AppendUint32(e.b, v)
}

// u64 appends a 64-bit integer in network byte order.
//
//go:noinline
func (e *encoder) u64(typ uint16, v uint64) {
	e.b = binary.NativeEndian.AppendUint16(e.b, nlattrHdrLen+8)
	e.b = binary.NativeEndian.AppendUint16(e.b, typ)
	e.b = binary.BigEndian.AppendUint64(e.b, v)
}

// begin starts nested attribute typ; end(begin(typ)) closes it.
//
//go:noinline
func (e *encoder) begin(typ uint16) int {
	start := len(e.b)
	e.attr(typ|unix.NLA_F_NESTED, nil)
	return start
}

//go:noinline
func (e *encoder) end(start int) {
	binary.NativeEndian.PutUint16(e.b[start:], uint16(len(e.b)-start))
}

// attrs is a decoded attribute list; a type seen twice keeps its last
// value (lists of equal types are read with elems).
type attrs map[uint16][]byte

// parseAttrs decodes b, ignoring a malformed tail.
func parseAttrs(b []byte) attrs {
	a := attrs{}
	for _, x := range elems(b) {
		a[x.typ] = x.data
	}
	return a
}

type attr struct {
	typ  uint16
	data []byte
}

// elems decodes b in order, ignoring a malformed tail.
func elems(b []byte) []attr {
	var out []attr
	for len(b) >= nlattrHdrLen {
		n := int(binary.NativeEndian.Uint16(b))
		if n < nlattrHdrLen || n > len(b) {
			break
		}
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		out = append(out, attr{typ, b[nlattrHdrLen:n]})
		b = b[min(align4(n), len(b)):]
	}
	return out
}

// u32 reads a 32-bit integer in network byte order (0 if missing).
func (a attrs) u32(typ uint16) uint32 {
	if b := a[typ]; len(b) == 4 {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (a attrs) u64(typ uint16) uint64 {
	if b := a[typ]; len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// str reads a string, without its NUL.
func (a attrs) str(typ uint16) string {
	b := a[typ]
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (a attrs) has(typ uint16) bool { _, ok := a[typ]; return ok }

// message is one nf_tables request, but for its sequence number.
type message struct {
	typ    uint16 // NFT_MSG_*
	flags  uint16 // beyond NLM_F_REQUEST
	family uint8  // NFPROTO_*
	attrs  []byte
	what   string // what it does, for errors: "add rule to chain ports"
}

// appendMsg appends a netlink message with a struct nfgenmsg.
func appendMsg(b []byte, typ, flags uint16, seq uint32, family uint8, resID uint16, attrs []byte) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+nfgenmsgLen+len(attrs)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags|unix.NLM_F_REQUEST)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	b = append(b, family, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	return append(b, attrs...)
}

// reply is one message received.
type reply struct {
	typ, flags uint16
	seq        uint32
	data       []byte // after the netlink header
}

// errno reads an NLMSG_ERROR (0 for an ack) or the int of an NLMSG_DONE.
func (r reply) errno() error {
	if len(r.data) < 4 {
		return errors.New("short netlink error message")
	}
	if e := int32(binary.NativeEndian.Uint32(r.data)); e < 0 {
		return unix.Errno(-e)
	}
	return nil
}

// receive reads one datagram; with dontwait, unix.EAGAIN when none is
// queued.
func (c *Conn) receive(dontwait bool) ([]reply, error) {
	if c.buf == nil {
		c.buf = make([]byte, recvBufLen)
	}
	flags := unix.MSG_TRUNC
	if dontwait {
		flags |= unix.MSG_DONTWAIT
	}
	var n int
	var err error
	for {
		n, _, err = unix.Recvfrom(c.fd, c.buf, flags)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if n > len(c.buf) {
		return nil, fmt.Errorf("netlink datagram of %d bytes: over %d", n, len(c.buf))
	}
	var out []reply
	for b := c.buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, errors.New("malformed netlink message")
		}
		out = append(out, reply{
			typ:   binary.NativeEndian.Uint16(b[4:]),
			flags: binary.NativeEndian.Uint16(b[6:]),
			seq:   binary.NativeEndian.Uint32(b[8:]),
			data:  append([]byte(nil), b[unix.NLMSG_HDRLEN:l]...),
		})
		b = b[min(align4(l), len(b)):]
	}
	return out, nil
}

func (c *Conn) send(b []byte) error {
	return unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// fit grows the socket's send buffer, if need be, for a datagram of n
// bytes: a batch is one datagram, and a large one (a range of published
// ports) is over the default buffer. Beyond net.core.wmem_max, this takes
// CAP_NET_ADMIN in the initial user namespace; sendmsg fails with
// EMSGSIZE if it cannot be done.
func (c *Conn) fit(n int) {
	if cur, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil && n+32 <= cur {
		return
	}
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) != nil {
		unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	}
}

// request sends m alone and returns the attributes of its answers; for a
// dump (NLM_F_DUMP in m.flags), of every message up to NLMSG_DONE, or
// errDumpIntr.
func (c *Conn) request(m message) ([]attrs, error) {
	c.seq++
	seq := c.seq
	dump := m.flags&unix.NLM_F_DUMP != 0
	flags := m.flags
	if !dump {
		flags |= unix.NLM_F_ACK
	}
	if err := c.send(appendMsg(nil, nfNftables|m.typ, flags, seq, m.family, 0, m.attrs)); err != nil {
		return nil, err
	}
	var out []attrs
	intr := false
	for {
		rs, err := c.receive(false)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.seq != seq {
				continue // a late answer to an earlier request
			}
			intr = intr || r.flags&unix.NLM_F_DUMP_INTR != 0
			switch r.typ {
			case unix.NLMSG_ERROR, unix.NLMSG_DONE:
				if err := r.errno(); err != nil {
					return nil, err
				}
				if intr {
					return nil, errDumpIntr
				}
				return out, nil
			default:
				if len(r.data) >= nfgenmsgLen {
					out = append(out, parseAttrs(r.data[nfgenmsgLen:]))
				}
			}
		}
	}
}

// commit sends msgs (at least one) as one batch, to be applied only if
// the ruleset is still of generation gen (0: whatever it is), and returns
// the first error: the batch's own (unix.ERESTART for another
// generation), or that of the first message that failed, with what it
// did.
func (c *Conn) commit(gen uint32, msgs []message) error {
	var ge encoder
	if gen != 0 {
		ge.u32(unix.NFNL_BATCH_GENID, gen)
	}
	c.seq++
	begin := c.seq
	b := appendMsg(nil, unix.NFNL_MSG_BATCH_BEGIN, 0, begin, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, ge.b)
	for i, m := range msgs {
		c.seq++
		flags := m.flags
		if i == len(msgs)-1 {
			flags |= unix.NLM_F_ACK
		}
		b = appendMsg(b, nfNftables|m.typ, flags, c.seq, m.family, 0, m.attrs)
	}
	c.seq++
	b = appendMsg(b, unix.NFNL_MSG_BATCH_END, 0, c.seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	c.fit(len(b))
	if err := c.send(b); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	// Every answer is queued by now: read them all.
	answers := map[uint32]error{}
	for {
		rs, err := c.receive(true)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			return fmt.Errorf("read answers to batch: %w", err)
		}
		for _, r := range rs {
			if r.typ == unix.NLMSG_ERROR && r.seq >= begin && r.seq <= c.seq {
				if old, seen := answers[r.seq]; !seen || old == nil { // an error stays
					answers[r.seq] = r.errno()
				}
			}
		}
	}
	if err := answers[begin]; err != nil {
		return err
	}
	if err := answers[c.seq]; err != nil {
		return fmt.Errorf("end of batch: %w", err)
	}
	for i, m := range msgs {
		if err := answers[begin+1+uint32(i)]; err != nil {
			return fmt.Errorf("%s: %w", m.what, err)
		}
	}
	if _, ok := answers[c.seq-1]; !ok {
		return errors.New("batch: no answer from the kernel")
	}
	return nil
}

package initproc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sync protocol between the parent and the child, over a SOCK_SEQPACKET
// socket pair. Every message from the child is one fixed-size Msg, possibly
// with one file descriptor attached (SCM_RIGHTS). The parent answers a Sync
// step with one byte (0 = go on), possibly with one file descriptor.
//
//	parent                              child (runs the Program)
//	  |  clone ───────────────────────────▶ |
//	  | ◀──────── MsgMaps                   |  (new user namespace: waits)
//	  |  write uid_map/gid_map, reply 0 ──▶ |
//	  | ◀──────── MsgPid(pid)               |  (after a fork into a pid namespace)
//	  |  tree 0..n-1, each a reply + fd ──▶ |  (detached mounts made by the parent,
//	  |                                     |   sent unasked once the maps are written)
//	  | ◀──────── MsgPty + master fd        |  (terminal)
//	  | ◀──────── MsgError(step, errno)     |  (and the child exits)
//	  | ◀──────── EOF                       |  execve succeeded: the socket is O_CLOEXEC
//
// The socket is close-on-exec in the child, so end of file after the last
// message means the command is running.

// MsgKind says what a message from the child means.
type MsgKind uint32

const (
	MsgError      MsgKind = iota + 1 // step Op failed with Errno
	MsgMaps                          // the child is in its new user namespace: write its id maps
	MsgPid                           // Val is the pid of the process that now runs the program
	MsgPty                           // the attached fd is the master of the box's terminal
	MsgReady                         // set-up is done; Val says what comes next
	MsgAlive                         // nothing: sending it fails if the parent is gone
	MsgHooks                         // set up, before pivot_root: run the create hooks, then reply
	MsgStartHooks                    // about to exec: run the startContainer hooks, then reply
	MsgSeccomp                       // the attached fd listens to the seccomp filter's notifications
	MsgVia                           // the trampoline runs next: from now on only its MsgError may come
)

// Msg is the fixed-size message the child sends.
type Msg struct {
	Kind  MsgKind
	Op    int32 // step index, for MsgError
	Errno int32
	Val   int32
}

// MsgSize is the size of a Msg on the wire.
const MsgSize = int(unsafe.Sizeof(Msg{}))

// recvArea is the memory for the child's recvmsg: a one-byte reply and room
// for one file descriptor.
type recvArea struct {
	hdr  unix.Msghdr
	iov  unix.Iovec
	data [8]byte
	ctl  [24]byte // CMSG_SPACE(sizeof(int)) on 64-bit
}

func newRecvArea() *recvArea {
	a := &recvArea{}
	a.iov.Base = &a.data[0]
	a.iov.SetLen(1)
	a.hdr.Iov = &a.iov
	a.hdr.SetIovlen(1)
	a.hdr.Control = &a.ctl[0]
	a.hdr.SetControllen(len(a.ctl))
	return a
}

// sendArea is the memory for the child's sendmsg of a Msg with one fd.
type sendArea struct {
	hdr unix.Msghdr
	iov unix.Iovec
	msg Msg
	ctl [24]byte
}

func newSendArea() *sendArea {
	a := &sendArea{}
	a.iov.Base = (*byte)(unsafe.Pointer(&a.msg))
	a.iov.SetLen(MsgSize)
	a.hdr.Iov = &a.iov
	a.hdr.SetIovlen(1)
	a.hdr.Control = &a.ctl[0] // set once: the child must not store pointers
	// The control header never changes: one SCM_RIGHTS int.
	h := (*unix.Cmsghdr)(unsafe.Pointer(&a.ctl[0]))
	h.Level = unix.SOL_SOCKET
	h.Type = unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(4))
	return a
}

package setup

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/state"
)

// Landlock as a second wall around the box's filesystem.
//
// With Config.Landlock set, the command (not the init, which keeps no
// file) is restricted by a Landlock ruleset that handles every filesystem
// right the running kernel knows and grants, beneath these paths of the
// box (opened after pivot_root, so they are the box's):
//
//	/                    read, execute (list directories, read and run files);
//	                     everything, when the root is writable (a --rootfs
//	                     without --read-only)
//	/dev                 devices: read, write, truncate, ioctl; no node made or removed
//	a writable mount     everything: tmpfs (/tmp, /run, /dev/shm, --tmpfs),
//	                     writable binds (--bind SRC:DST), mqueue, ...
//
// Everything else — /proc and /sys and whatever is beneath them, read-only
// mounts, and any path outside the box's tree — gets at most the root's
// read and execute. Landlock only grants, and a grant covers the whole
// hierarchy beneath its path, across mounts: a read-only mount beneath a
// writable one (or beneath a writable root) is guarded by its mount flag
// alone.
//
// What it adds to the mounts:
//
//   - A rule belongs to a directory's inode, not to a mount: a descriptor
//     the command inherits (a preserved fd, a standard stream that is a
//     file), or reopens through /proc/self/fd/N, leads to host paths whose
//     ancestors are not the box's writable mounts: writing or creating
//     there is refused (EACCES) even where the host's mount is writable;
//     with a --rootfs, even reading is.
//   - A Landlock-restricted process may not mount, unmount, remount or
//     pivot_root at all: a box with CAP_SYS_ADMIN cannot make a read-only
//     mount writable, and if a mount changes under it, the rules still hold.
//   - Writes to /proc (/proc/self/attr, oom_score_adj, a nested user
//     namespace's uid_map) and /sys are refused, whatever their mounts say.
//
// The cost: a process reopening a standard stream that is a host file
// (echo > /dev/stdout) is refused; on Landlock ABI 1 (Linux 5.13–5.18) a
// file cannot be moved or linked to another directory (EXDEV).
//
// The steps run in the process stage, while the process still has
// CAP_SYS_ADMIN in its user namespace (landlock_restrict_self needs it or
// no_new_privs), after the last write the set-up makes to /proc and before
// any seccomp filter is loaded.

// ErrNoLandlock means the running kernel has no Landlock.
var ErrNoLandlock = errors.New("this kernel has no Landlock (Linux ≥ 5.13 with CONFIG_SECURITY_LANDLOCK and lsm=landlock)")

// LandlockABI returns the Landlock ABI version of the running kernel, or
// ErrNoLandlock. It is the one function here that asks the kernel: the
// parent calls it when planning, on the kernel the box will run on.
func LandlockABI() (int, error) {
	v, _, errno := unix.RawSyscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch errno {
	case 0:
		return int(v), nil
	case unix.ENOSYS, unix.EOPNOTSUPP:
		return 0, ErrNoLandlock
	}
	return 0, fmt.Errorf("query the Landlock ABI version: %w", errno)
}

// Groups of Landlock filesystem rights.
const (
	llReadExec = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	llDevice   = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR |
		unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	// llFile are the rights that make sense on a file (a rule on a file
	// with any other is refused, EINVAL).
	llFile = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// landlockFSRights returns every filesystem right of Landlock ABI abi.
func landlockFSRights(abi int) uint64 {
	var r uint64
	if abi >= 1 {
		r = unix.LANDLOCK_ACCESS_FS_MAKE_SYM<<1 - 1 // EXECUTE .. MAKE_SYM
	}
	if abi >= 2 {
		r |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		r |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		r |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return r
}

// LandlockPolicy returns the ruleset of a box with filesystem plan p on a
// kernel of Landlock ABI abi (see the comment at the top of this file).
func LandlockPolicy(p *rootfs.Plan, abi int) *state.Landlock {
	handled := landlockFSRights(abi)
	var rules []state.LandlockRule
	all := state.LandlockRule{Access: handled, What: "all rights"}
	root := state.LandlockRule{Path: "/", Access: llReadExec, What: "read, execute"}
	if !p.RootRO && !p.RootRecursiveRO {
		root = state.LandlockRule{Path: "/", Access: all.Access, What: all.What}
	}
	rules = append(rules, root)

	readOnly := map[string]bool{}
	for _, m := range p.Mounts {
		if m.Kind == rootfs.ReadOnly {
			readOnly[m.Target] = true
		}
	}
	for _, r := range p.ReadOnlyPaths {
		readOnly[r] = true
	}
	// The last mount on a target is the one its path leads to.
	var order []string
	last := map[string]rootfs.Mount{}
	for _, m := range p.Mounts {
		if m.Kind != rootfs.New && m.Kind != rootfs.Bind {
			continue
		}
		if _, ok := last[m.Target]; !ok {
			order = append(order, m.Target)
		}
		last[m.Target] = m
	}
	for _, target := range order {
		m := last[target]
		if readOnly[target] || isReadOnly(m) || beneath(target, "/proc") || beneath(target, "/sys") {
			continue
		}
		r := state.LandlockRule{Path: target, Access: all.Access, What: all.What}
		if target == "/dev" || m.FSType == "devpts" {
			r.Access, r.What = llDevice, "devices"
		}
		if m.File {
			r.Access &= llFile
		}
		r.Access &= handled
		rules = append(rules, r)
	}
	return &state.Landlock{ABI: abi, Handled: handled, Rules: rules}
}

// isReadOnly: mount m is made read-only.
func isReadOnly(m rootfs.Mount) bool {
	if m.Kind == rootfs.Bind {
		return (m.AttrSet|m.RecSet)&unix.MOUNT_ATTR_RDONLY != 0
	}
	return m.Flags&unix.MS_RDONLY != 0 || m.AttrSet&unix.MOUNT_ATTR_RDONLY != 0
}

// beneath: p is dir or a path under it.
func beneath(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// emitLandlock appends the steps that restrict the process with Landlock
// ruleset l: create the ruleset, add a rule per path (the
// path opened O_PATH, its descriptor stored into the rule's structure),
// restrict the process, close the ruleset.
func emitLandlock(b *initproc.Builder, l *state.Landlock) {
	handled, rules, abi := l.Handled, l.Rules, l.ABI
	attr := &unix.LandlockRulesetAttr{Handled_access_fs: handled}
	// Only handled_access_fs: every ABI knows it, and the kernel takes
	// what follows as zero.
	size := unsafe.Offsetof(attr.Handled_access_net)
	rs := b.Call(fmt.Sprintf("create a Landlock ruleset (ABI %d, filesystem rights %#x)", abi, handled),
		unix.SYS_LANDLOCK_CREATE_RULESET, initproc.Ptr(b, attr), initproc.Imm(size), initproc.Imm(0)).Out()
	// Paths are the box's ("/" is its root by now), never through a magic link.
	how := initproc.Ptr(b, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS})
	for _, r := range rules {
		what := "allow " + r.What + " beneath " + r.Path + " (Landlock)"
		fd := b.Call("open "+r.Path+" for its Landlock rule", unix.SYS_OPENAT2, initproc.Imm(unix.AT_FDCWD), b.Str(path.Clean(r.Path)),
			how, initproc.Imm(unix.SizeofOpenHow)).Out()
		attr := &unix.LandlockPathBeneathAttr{Allowed_access: r.Access, Parent_fd: -1}
		b.Store(what, fd, &attr.Parent_fd)
		b.Call(what, unix.SYS_LANDLOCK_ADD_RULE, initproc.R(rs), initproc.Imm(unix.LANDLOCK_RULE_PATH_BENEATH), initproc.Ptr(b, attr), initproc.Imm(0))
		b.Close(fd)
	}
	b.Call("restrict the command with Landlock", unix.SYS_LANDLOCK_RESTRICT_SELF, initproc.R(rs), initproc.Imm(0))
	b.Close(rs)
}

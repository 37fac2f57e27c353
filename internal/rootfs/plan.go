// Package rootfs plans the filesystem view of a box — its root, the mounts of
// the spec, a minimal /dev — as plain data (Plan), and emits that plan as
// steps for the box's first process (Emit). Paths inside the box are always
// resolved beneath its root, never through symlinks that lead out of it.
package rootfs

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Context is what the plan depends on besides the spec.
type Context struct {
	// UserNS: the box runs in a user namespace that is not the host's. It
	// cannot create device nodes, and may only mount proc, sysfs and mqueue
	// for namespaces its user namespace owns.
	UserNS bool
	// OwnPID, OwnNet, OwnIPC: the box has new pid, network and IPC
	// namespaces (owned by its user namespace); HostNet: it shares the
	// host's network namespace.
	OwnPID, OwnNet, OwnIPC, HostNet bool
	// TTYGroup: group 5 (tty) exists inside the box, for devpts' gid=5.
	TTYGroup bool
	// Terminal: the box gets a terminal, so /dev/console is made.
	Terminal bool
	// JoinedPIDProc, JoinedNetSys: the box joins a pid (network)
	// namespace its user namespace does not own, and its first process,
	// while it still has the caller's privileges, makes a proc (sysfs) of
	// that namespace (Mount.Premade); the box's /proc (/sys) is that
	// mount. Otherwise such a box shows the host's.
	JoinedPIDProc, JoinedNetSys bool
	// HostMqueue: the host has /dev/mqueue, to show a box that shares the
	// host's IPC namespace from a user namespace (it cannot mount its own).
	HostMqueue bool
	// Cgroups describes the hierarchies a "cgroup" mount shows; nil when
	// the box has no cgroup of its own (the host's tree is then bound).
	Cgroups *CgroupView
}

// CgroupView is what /sys/fs/cgroup shows in a box.
type CgroupView struct {
	// NewNS: the box has its own cgroup namespace, so each hierarchy is
	// mounted afresh (and shows the box's cgroup as its root); otherwise
	// the box's cgroup directories are bound from the host.
	NewNS bool
	// Unified: the host is pure cgroup v2 (one hierarchy, mounted at
	// /sys/fs/cgroup itself).
	Unified     bool
	Hierarchies []CgroupHierarchy
}

// CgroupHierarchy is one hierarchy as a box sees it.
type CgroupHierarchy struct {
	Name        string   // directory under /sys/fs/cgroup ("memory", "unified")
	V2          bool     // cgroup2
	Controllers []string // v1: mount options ("memory", "name=systemd")
	HostDir     string   // the box's cgroup in this hierarchy, on the host
}

// Kind is how a mount is made.
type Kind int

const (
	New      Kind = iota // mount(2) of a filesystem
	Bind                 // a clone of a host tree, attached with move_mount
	Link                 // a symbolic link at Target pointing to Source
	ReadOnly             // make the mount at Target read-only (after what is mounted below it)
)

// Mount is one mount to make in the box.
type Mount struct {
	Kind   Kind
	Source string // the filesystem's source, or the host path to bind
	Target string // absolute, clean path inside the box
	FSType string
	Flags  uintptr // mount(2) flags, for New
	Data   string
	// For Bind:
	Recursive bool
	AttrSet   uint64 // mount_setattr on the top mount
	AttrClear uint64
	RecSet    uint64 // mount_setattr on the whole tree
	RecClear  uint64
	File      bool // the source is not a directory
	// Made by the parent (id-mapped): the child receives the detached tree.
	FromParent bool
	// Premade: the detached tree is the filesystem of this type ("proc"
	// or "sysfs") that the first process made for the namespace it joins
	// (Context.JoinedPIDProc, JoinedNetSys).
	Premade string
	IDMap   *IDMap
	// For both: propagation to set afterwards.
	Propagation   uintptr
	RecursiveProp bool
	TmpCopyUp     bool
	// Cgroups: one of the mounts that show the box its cgroups, which
	// need the box in its cgroup (and cgroup namespace) first, and whose
	// host directories may still be in the making while the box is planned.
	Cgroups bool
}

// IDMap is the id mapping of an id-mapped mount.
type IDMap struct {
	UIDs, GIDs []specs.LinuxIDMapping
	// BestEffort: where the filesystem cannot id-map (tmpfs before Linux
	// 6.3, ...), mount without it.
	BestEffort bool
}

// Device is a device node to provide in /dev.
type Device struct {
	Path         string // absolute path inside the box
	Type         uint32 // unix.S_IFCHR or unix.S_IFBLK
	Major, Minor int64
	Mode         uint32
	UID, GID     uint32
}

// Sysctl is one kernel parameter to set (net.ipv4.ip_forward = 1).
type Sysctl struct{ Key, Value string }

// Symlink is a symbolic link to create.
type Symlink struct{ Target, Path string }

// Plan is the whole filesystem set-up of a box.
type Plan struct {
	// Root is the host directory that becomes the box's root; "/" for the
	// host's own root.
	Root string
	// RootRecursiveRO makes the whole root tree read-only before anything is
	// mounted on it (the host root).
	RootRecursiveRO bool
	// RootRO makes the root mount read-only after everything is mounted
	// (OCI root.readonly).
	RootRO bool
	// RootFromParent: the parent prepares the root tree (id-mapped).
	RootFromParent bool
	RootIDMap      *IDMap
	// Propagation is applied to "/" of the box's mount namespace before
	// anything else (MS_PRIVATE or MS_SLAVE, recursively), and
	// RootPropagation to the box's root afterwards (0: leave).
	Propagation     uintptr
	RootPropagation uintptr
	Mounts          []Mount
	Devices         []Device
	Symlinks        []Symlink
	// DevFresh: /dev is a filesystem the box mounts itself (so nothing of
	// the image is there): its nodes and links are made through one
	// descriptor of it.
	DevFresh bool
	// Sysctls are written under the box's /proc/sys after its mounts.
	Sysctls []Sysctl
	// Masked paths get /dev/null (files) or an empty read-only tmpfs
	// (directories); ReadOnlyPaths are bound read-only onto themselves.
	// Both after the sysctls, and skipped where the path does not exist.
	Masked, ReadOnlyPaths []string
	Console               bool // bind the terminal onto /dev/console
	// HookSync: before pivot_root the child waits while the parent runs
	// the OCI create hooks (MsgHooks).
	HookSync bool
	// UserNS: device nodes are bind-mounted from the host instead of made.
	UserNS bool
	// NoPivot: enter the root by moving it onto "/" and chroot, for roots
	// pivot_root refuses (the initramfs). The old root stays beneath the
	// box's: a process with CAP_SYS_ADMIN there could unmount its way to
	// it, as with runc --no-pivot.
	NoPivot bool
}

// DefaultDevices are the devices the OCI runtime spec requires in every box.
var DefaultDevices = []Device{
	{Path: "/dev/null", Type: unix.S_IFCHR, Major: 1, Minor: 3, Mode: 0o666},
	{Path: "/dev/zero", Type: unix.S_IFCHR, Major: 1, Minor: 5, Mode: 0o666},
	{Path: "/dev/full", Type: unix.S_IFCHR, Major: 1, Minor: 7, Mode: 0o666},
	{Path: "/dev/random", Type: unix.S_IFCHR, Major: 1, Minor: 8, Mode: 0o666},
	{Path: "/dev/urandom", Type: unix.S_IFCHR, Major: 1, Minor: 9, Mode: 0o666},
	{Path: "/dev/tty", Type: unix.S_IFCHR, Major: 5, Minor: 0, Mode: 0o666},
}

// PlanFor builds the filesystem plan of spec s. It does not touch the
// filesystem; the caller has resolved s.Root.Path to an absolute host path.
func PlanFor(s *specs.Spec, ctx Context) (*Plan, error) {
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("root.path is required")
	}
	p := &Plan{Root: path.Clean(s.Root.Path), Propagation: unix.MS_PRIVATE, UserNS: ctx.UserNS}
	if p.Root == "/" {
		p.RootRecursiveRO = s.Root.Readonly
	} else {
		p.RootRO = s.Root.Readonly
	}
	if s.Linux != nil && s.Linux.RootfsPropagation != "" {
		prop, ok := propagation[strings.TrimPrefix(s.Linux.RootfsPropagation, "r")]
		if !ok {
			return nil, fmt.Errorf("linux.rootfsPropagation: unknown value %q", s.Linux.RootfsPropagation)
		}
		p.RootPropagation = prop
		if prop == unix.MS_SHARED || prop == unix.MS_SLAVE {
			// The box's mounts receive the host's (and a shared root
			// needs a propagating "/" above it): "/" and the root tree
			// become slaves of the host's mounts, as runc makes them.
			p.Propagation = unix.MS_SLAVE
		}
	}

	devMounted := false
	for i, m := range s.Mounts {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			ms, err := planCgroupMount(m, ctx)
			if err != nil {
				return nil, fmt.Errorf("mounts[%d] (%s): %w", i, m.Destination, err)
			}
			p.Mounts = append(p.Mounts, ms...)
			continue
		}
		mt, err := planMount(m, ctx)
		if err == errSkip {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mounts[%d] (%s): %w", i, m.Destination, err)
		}
		if mt.Target == "/dev" {
			devMounted = mt.Kind == New
		}
		if mt.Premade != "" && p.Premade(mt.Premade) {
			// One is made before the box's user namespace, and a
			// detached mount attaches once.
			return nil, fmt.Errorf("mounts[%d] (%s): a second %s of a joined namespace (the box can have one)", i, m.Destination, mt.Premade)
		}
		p.Mounts = append(p.Mounts, mt)
	}

	// The devices and links the spec requires in /dev, when /dev is ours.
	p.DevFresh = devMounted
	if devMounted {
		p.Devices = append(p.Devices, DefaultDevices...)
		p.Symlinks = append(p.Symlinks,
			Symlink{"/proc/self/fd", "/dev/fd"},
			Symlink{"/proc/self/fd/0", "/dev/stdin"},
			Symlink{"/proc/self/fd/1", "/dev/stdout"},
			Symlink{"/proc/self/fd/2", "/dev/stderr"},
		)
		if hasMount(p.Mounts, "/dev/pts", "devpts") {
			p.Symlinks = append(p.Symlinks, Symlink{"pts/ptmx", "/dev/ptmx"})
		}
		p.Console = ctx.Terminal
	}
	if s.Linux != nil {
		for _, list := range []struct {
			field string
			in    []string
			out   *[]string
		}{{"linux.maskedPaths", s.Linux.MaskedPaths, &p.Masked}, {"linux.readonlyPaths", s.Linux.ReadonlyPaths, &p.ReadOnlyPaths}} {
			for _, m := range list.in {
				if !path.IsAbs(m) {
					return nil, fmt.Errorf("%s: %q is not an absolute path", list.field, m)
				}
				*list.out = append(*list.out, path.Clean(m))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(s.Linux.Sysctl)) {
			p.Sysctls = append(p.Sysctls, Sysctl{Key: k, Value: s.Linux.Sysctl[k]})
		}
		for _, d := range s.Linux.Devices {
			dev, err := planDevice(d)
			if err != nil {
				return nil, err
			}
			p.Devices = replaceDevice(p.Devices, dev)
		}
	}
	return p, nil
}

func hasMount(ms []Mount, target, fstype string) bool {
	for _, m := range ms {
		if m.Target == target && m.FSType == fstype {
			return true
		}
	}
	return false
}

func replaceDevice(ds []Device, d Device) []Device {
	for i := range ds {
		if ds[i].Path == d.Path {
			ds[i] = d
			return ds
		}
	}
	return append(ds, d)
}

func planDevice(d specs.LinuxDevice) (Device, error) {
	dev := Device{Path: path.Clean(d.Path), Major: d.Major, Minor: d.Minor, Mode: 0o666}
	if !path.IsAbs(d.Path) || !strings.HasPrefix(dev.Path, "/dev/") {
		return dev, fmt.Errorf("linux.devices: path %q must be absolute and under /dev", d.Path)
	}
	switch d.Type {
	case "c", "u":
		dev.Type = unix.S_IFCHR
	case "b":
		dev.Type = unix.S_IFBLK
	case "p":
		dev.Type = unix.S_IFIFO
	default:
		return dev, fmt.Errorf("linux.devices: %s: unknown type %q", d.Path, d.Type)
	}
	if d.FileMode != nil {
		dev.Mode = uint32(*d.FileMode) & 0o7777
	}
	if d.UID != nil {
		dev.UID = *d.UID
	}
	if d.GID != nil {
		dev.GID = *d.GID
	}
	return dev, nil
}

// errSkip: the mount cannot be made in this context and is left out.
var errSkip = errors.New("skip")

func planMount(m specs.Mount, ctx Context) (Mount, error) {
	if !path.IsAbs(m.Destination) {
		return Mount{}, fmt.Errorf("destination must be an absolute path")
	}
	o, err := ParseOptions(m.Options)
	if err != nil {
		return Mount{}, err
	}
	mt := Mount{
		Target:        path.Clean(m.Destination),
		Source:        m.Source,
		FSType:        m.Type,
		Propagation:   o.Propagation,
		RecursiveProp: o.RecursiveProp,
		TmpCopyUp:     o.TmpCopyUp,
	}
	if mt.Target == "/" {
		return mt, fmt.Errorf("cannot mount over the root; use root.path")
	}
	bind := o.Bind || m.Type == "bind"
	switch {
	case bind:
	case m.Type == "proc" && ctx.JoinedPIDProc:
		// proc of a pid namespace the box does not own cannot be mounted
		// from its user namespace: the one made before it (Premade).
		bind, mt.Premade, mt.Source = true, "proc", "/proc"
	case m.Type == "proc" && ctx.UserNS && !ctx.OwnPID:
		// Nor can it for the host's pid namespace: show the host's.
		bind, o.Recursive, mt.Source = true, true, "/proc"
	case m.Type == "sysfs" && ctx.JoinedNetSys:
		// The sysfs of the network namespace it joins, made before its
		// user namespace (Premade).
		bind, mt.Premade, mt.Source = true, "sysfs", "/sys"
	case m.Type == "sysfs" && (ctx.UserNS && !ctx.OwnNet || ctx.HostNet):
		// sysfs shows a network namespace's devices: one the box does not
		// own cannot be mounted from its user namespace, and the host's is
		// already mounted (read-write: a read-only mount of the same
		// instance is refused). Bind the host's — read-only all the way
		// down: what is mounted beneath it (debugfs, tracefs, bpf,
		// securityfs, the host's cgroups) is the host's.
		bind, o.Recursive, mt.Source = true, true, "/sys"
		o.RecAttr |= unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	case m.Type == "mqueue" && ctx.UserNS && !ctx.OwnIPC && !ctx.HostMqueue:
		return Mount{}, errSkip
	case m.Type == "mqueue" && ctx.UserNS && !ctx.OwnIPC:
		bind, mt.Source = true, "/dev/mqueue"
	case m.Type == "devpts" && !ctx.TTYGroup:
		o.Data = dropOption(o.Data, "gid=")
	case m.Type == "":
		return mt, fmt.Errorf("mount type is required for a non-bind mount")
	}
	if bind {
		if m.Source == "" {
			return mt, fmt.Errorf("bind mount needs a source")
		}
		if !path.IsAbs(mt.Source) {
			return mt, fmt.Errorf("bind source %q must be an absolute path", mt.Source)
		}
		mt.Kind, mt.FSType = Bind, "bind"
		mt.Recursive = o.Recursive
		mt.AttrSet, mt.AttrClear = o.Attrs()
		mt.RecSet, mt.RecClear = o.RecAttr, o.RecClear
		if len(o.Data) > 0 {
			return mt, fmt.Errorf("bind mounts take no filesystem options, got %s", strings.Join(o.Data, ","))
		}
		if o.IDMap || len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			if len(m.UIDMappings) == 0 || len(m.GIDMappings) == 0 {
				return mt, fmt.Errorf("an id-mapped mount needs both uidMappings and gidMappings")
			}
			mt.IDMap = &IDMap{UIDs: m.UIDMappings, GIDs: m.GIDMappings}
			mt.FromParent = true
		}
		return mt, nil
	}
	if o.RecAttr != 0 || o.RecClear != 0 {
		// Recursive attributes on a fresh mount only concern the mount itself.
		mt.AttrSet, mt.AttrClear = o.RecAttr, o.RecClear
	}
	if o.IDMap {
		return mt, fmt.Errorf("idmap is only supported on bind mounts")
	}
	mt.Kind = New
	if mt.Source == "" {
		mt.Source = m.Type
	}
	mt.Flags = o.Flags
	mt.Data = strings.Join(o.Data, ",")
	return mt, nil
}

// planCgroupMount expands a "cgroup" mount into what shows the box its
// cgroups, as runc does: on pure v2 one cgroup2 mount (or a bind of the
// box's cgroup); on v1 and hybrid hosts a tmpfs with one mount (or bind) per
// hierarchy, read-only when asked.
func planCgroupMount(m specs.Mount, ctx Context) ([]Mount, error) {
	if !path.IsAbs(m.Destination) {
		return nil, fmt.Errorf("destination must be an absolute path")
	}
	o, err := ParseOptions(m.Options)
	if err != nil {
		return nil, err
	}
	dest := path.Clean(m.Destination)
	ro := o.Flags&unix.MS_RDONLY != 0
	flags := o.Flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	v := ctx.Cgroups
	if v == nil {
		// No cgroup of its own: the host's tree, read-only.
		return []Mount{{Kind: Bind, Source: "/sys/fs/cgroup", Target: dest, Recursive: true,
			AttrSet: unix.MOUNT_ATTR_RDONLY, RecSet: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}}, nil
	}
	one := func(target string, h CgroupHierarchy) Mount {
		// Without a cgroup namespace of its own the box's directories are
		// bound; so too in a user namespace for v1 hierarchies, which only
		// the host's root may mount.
		if !v.NewNS || ctx.UserNS && !h.V2 {
			b := Mount{Kind: Bind, Source: h.HostDir, Target: target, FSType: "bind", Cgroups: true,
				AttrSet: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
			if ro {
				b.AttrSet |= unix.MOUNT_ATTR_RDONLY
			}
			return b
		}
		if h.V2 {
			return Mount{Kind: New, Source: "cgroup2", Target: target, FSType: "cgroup2", Flags: flags, Cgroups: true}
		}
		return Mount{Kind: New, Source: "cgroup", Target: target, FSType: "cgroup", Flags: flags, Data: strings.Join(h.Controllers, ","), Cgroups: true}
	}
	if v.Unified && len(v.Hierarchies) == 1 {
		m := one(dest, v.Hierarchies[0])
		m.Cgroups = true
		return []Mount{m}, nil
	}
	out := []Mount{{Kind: New, Source: "tmpfs", Target: dest, FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Data: "mode=755", Cgroups: true}}
	for _, h := range v.Hierarchies {
		out = append(out, one(path.Join(dest, h.Name), h))
		// Co-mounted controllers ("cpu,cpuacct") get a link per name.
		if names := strings.Split(h.Name, ","); len(names) > 1 {
			for _, n := range names {
				out = append(out, Mount{Kind: Link, Source: h.Name, Target: path.Join(dest, n)})
			}
		}
	}
	if ro {
		out = append(out, Mount{Kind: ReadOnly, Target: dest})
	}
	return out, nil
}

func dropOption(data []string, prefix string) []string {
	out := data[:0:0]
	for _, d := range data {
		if !strings.HasPrefix(d, prefix) {
			out = append(out, d)
		}
	}
	return out
}

// Describe says in words what mount m does, for messages.
func (m Mount) Describe() string {
	switch {
	case m.Premade != "":
		return "mount the joined namespace's " + m.Premade + " on " + m.Target
	}
	switch m.Kind {
	case Bind:
		return fmt.Sprintf("bind %s on %s", m.Source, m.Target)
	case Link:
		return fmt.Sprintf("link %s to %s", m.Target, m.Source)
	case ReadOnly:
		return fmt.Sprintf("make %s read-only", m.Target)
	}
	return fmt.Sprintf("mount %s on %s", m.FSType, m.Target)
}

// Premade reports whether a mount of the plan is a filesystem of type fstype
// that the first process makes before its user namespace (Mount.Premade).
func (p *Plan) Premade(fstype string) bool {
	for _, m := range p.Mounts {
		if m.Premade == fstype {
			return true
		}
	}
	return false
}

package rootfs

import (
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
)

// ParentTrees collects the trees the parent must make for the child
// (id-mapped mounts need privileges the child lacks). The parent sends them
// all, in order, as soon as the child's id maps are written, without
// waiting to be asked (each request would cost a round trip, two wake-ups
// of a sleeping process); the child receives tree i where it mounts it.
type ParentTrees struct {
	Trees []Mount
}

func (pt *ParentTrees) add(m Mount) int {
	pt.Trees = append(pt.Trees, m)
	return len(pt.Trees) - 1
}

// Emitter appends the steps of a Plan to a program.
type Emitter struct {
	b      *initproc.Builder
	root   initproc.Reg
	parent *ParentTrees
	// Premade holds the detached filesystems of the Mounts with Premade,
	// by type.
	Premade map[string]initproc.Reg
}

// EmitRoot appends the first steps: the mount namespace made private, and
// the root tree cloned and attached over its own path (as runc binds a
// rootfs onto itself, so that until pivot_root the host's / stays / in the
// box's mount namespace: createContainer hooks find their paths, and the
// bundle's rootfs shows the box's tree). They run while the process still
// has the caller's ids, which may reach the rootfs where the box's root
// cannot. It returns the Emitter for the rest.
func (p *Plan) EmitRoot(b *initproc.Builder, parent *ParentTrees) *Emitter {
	e := &Emitter{b: b, parent: parent}
	b.Call("make the mount namespace "+propName(p.Propagation), unix.SYS_MOUNT,
		initproc.Imm(0), b.Str("/"), initproc.Imm(0), initproc.Imm(unix.MS_REC|p.Propagation), initproc.Imm(0))
	if p.RootFromParent {
		parent.add(Mount{Kind: Bind, Source: p.Root, Target: "/", Recursive: true, IDMap: p.RootIDMap})
		e.root = b.ReceiveFD("receive the root tree " + p.Root)
	} else {
		e.root = b.Call("clone the root tree "+p.Root, unix.SYS_OPEN_TREE, initproc.Imm(unix.AT_FDCWD), b.Str(p.Root),
			initproc.Imm(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)).Out()
	}
	// The tree takes the namespace's propagation (private, or a slave of
	// the host's mounts with rootfsPropagation slave or shared).
	attr := &unix.MountAttr{Propagation: uint64(p.Propagation)}
	what := "make the root tree " + propName(p.Propagation)
	if p.RootRecursiveRO {
		attr.Attr_set = unix.MOUNT_ATTR_RDONLY
		what = "make the root tree read-only"
	}
	e.setattr(what, e.root, unix.AT_RECURSIVE, attr)
	b.Call("attach the root tree", unix.SYS_MOVE_MOUNT, initproc.R(e.root), b.Str(""),
		initproc.Imm(unix.AT_FDCWD), b.Str(p.Root), initproc.Imm(unix.MOVE_MOUNT_F_EMPTY_PATH))
	return e
}

// EmitMounts appends the rest: the mounts of the plan, /dev, sysctls,
// masked and read-only paths, and pivot_root. Afterwards "/" is the box's
// root, the host's is detached, and the working directory is "/".
func (e *Emitter) EmitMounts(p *Plan) {
	b := e.b
	for _, m := range p.Mounts {
		e.mount(m)
	}
	e.devices(p)
	e.sysctls(p.Sysctls)
	for _, m := range p.Masked {
		e.mask(m)
	}
	for _, r := range p.ReadOnlyPaths {
		e.readOnly(r)
	}

	if p.HookSync {
		b.Sync("run the create hooks", initproc.MsgHooks, 0, false)
	}
	b.Call("enter the new root", unix.SYS_FCHDIR, initproc.R(e.root))
	if p.NoPivot {
		if p.Root != "/" { // otherwise it is already on top of "/"
			b.Call("move "+p.Root+" onto /", unix.SYS_MOUNT, b.Str("."), b.Str("/"), initproc.Imm(0), initproc.Imm(unix.MS_MOVE), initproc.Imm(0))
		}
		b.Call("chroot into "+p.Root, unix.SYS_CHROOT, b.Str("."))
		b.Call("change to /", unix.SYS_CHDIR, b.Str("/"))
	} else {
		b.Call("pivot_root into "+p.Root, unix.SYS_PIVOT_ROOT, b.Str("."), b.Str("."))
		b.Call("detach the old root", unix.SYS_UMOUNT2, b.Str("."), initproc.Imm(unix.MNT_DETACH))
	}
	b.Close(e.root)
	if p.RootRO {
		e.setattrPath("make the root read-only", "/", 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	}
	if p.RootPropagation != 0 {
		b.Call("make the root "+propName(p.RootPropagation), unix.SYS_MOUNT,
			initproc.Imm(0), b.Str("/"), initproc.Imm(0), initproc.Imm(unix.MS_REC|p.RootPropagation), initproc.Imm(0))
	}
}

func propName(p uintptr) string {
	switch p {
	case unix.MS_PRIVATE:
		return "private"
	case unix.MS_SLAVE:
		return "slave"
	case unix.MS_SHARED:
		return "shared"
	case unix.MS_UNBINDABLE:
		return "unbindable"
	}
	return "?"
}

func (e *Emitter) setattr(what string, fd initproc.Reg, flags uintptr, attr *unix.MountAttr) {
	e.b.Call(what, unix.SYS_MOUNT_SETATTR, initproc.R(fd), e.b.Str(""), initproc.Imm(unix.AT_EMPTY_PATH|flags),
		initproc.Ptr(e.b, attr), initproc.Imm(unsafe.Sizeof(*attr)))
}

func (e *Emitter) setattrPath(what, p string, flags uintptr, attr *unix.MountAttr) {
	e.b.Call(what, unix.SYS_MOUNT_SETATTR, initproc.Imm(unix.AT_FDCWD), e.b.Str(p), initproc.Imm(flags),
		initproc.Ptr(e.b, attr), initproc.Imm(unsafe.Sizeof(*attr)))
}

// resolveHow is how every path inside the box is opened: beneath its root,
// never through /proc magic links.
func resolveHow(b *initproc.Builder, flags uint64) initproc.Arg {
	return initproc.Ptr(b, &unix.OpenHow{
		Flags:   flags | unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// open resolves p (absolute, inside the box) to an O_PATH fd in a new
// register. With create, missing directories are made (and a missing final
// component is made as a directory, or as an empty file when file is set).
func (e *Emitter) open(p string, file, create bool) initproc.Reg {
	return e.openFor(p, file, create, "", false)
}

// openFor is open for a mount point: purpose names the mount in messages;
// with noFollow the last component must not be a symbolic link.
func (e *Emitter) openFor(p string, file, create bool, purpose string, noFollow bool) initproc.Reg {
	suffix := ""
	if purpose != "" {
		suffix = " (for " + purpose + ")"
	}
	b := e.b
	rel := strings.TrimPrefix(p, "/")
	var dirFlag uint64 = unix.O_DIRECTORY
	if file {
		dirFlag = 0
	}
	resolveWhat := "resolve " + p + " in the box"
	if noFollow {
		dirFlag |= unix.O_NOFOLLOW
		resolveWhat += " (it must be a directory, not a symbolic link)"
	}
	t := b.NewReg()
	first := b.Call(resolveWhat, unix.SYS_OPENAT2, initproc.R(e.root), b.Str(rel),
		resolveHow(b, dirFlag), initproc.Imm(unix.SizeofOpenHow)).OutTo(t)
	if !create {
		return t
	}
	first.Allow(unix.ENOENT)
	comps := strings.Split(rel, "/")
	dir := e.root
	for k, c := range comps[:len(comps)-1] {
		prefix := strings.Join(comps[:k+1], "/")
		b.Call("create directory /"+prefix+suffix, unix.SYS_MKDIRAT, initproc.R(dir), b.Str(c), initproc.Imm(0o755)).Allow(unix.EEXIST)
		next := b.Call("resolve /"+prefix+" in the box", unix.SYS_OPENAT2, initproc.R(e.root), b.Str(prefix),
			resolveHow(b, unix.O_DIRECTORY), initproc.Imm(unix.SizeofOpenHow)).Out()
		if dir != e.root {
			b.Close(dir)
		}
		dir = next
	}
	last := comps[len(comps)-1]
	if file {
		f := b.Call("create "+p+suffix, unix.SYS_OPENAT, initproc.R(dir), b.Str(last),
			initproc.Imm(unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC), initproc.Imm(0o644)).Out()
		b.Close(f)
	} else {
		b.Call("create directory "+p+suffix, unix.SYS_MKDIRAT, initproc.R(dir), b.Str(last), initproc.Imm(0o755)).Allow(unix.EEXIST)
	}
	if dir != e.root {
		b.Close(dir)
	}
	b.Call(resolveWhat, unix.SYS_OPENAT2, initproc.R(e.root), b.Str(rel),
		resolveHow(b, dirFlag), initproc.Imm(unix.SizeofOpenHow)).OutTo(t)
	b.PatchJump(first.Index(), b.Label())
	return t
}

func (e *Emitter) mount(m Mount) {
	b := e.b
	if m.Cgroups {
		b.Flush() // steps deferred until the box is in its cgroup
	}
	what := m.Describe()
	switch m.Kind {
	case Link:
		dir := e.open(path.Dir(m.Target), false, true)
		b.Call(what, unix.SYS_SYMLINKAT, b.Str(m.Source), initproc.R(dir), b.Str(path.Base(m.Target))).Allow(unix.EEXIST)
		b.Close(dir)
		return
	case ReadOnly:
		top := e.open(m.Target, false, false)
		e.setattr(what, top, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		b.Close(top)
		return
	}
	// proc and sysfs over a symbolic link could land anywhere in the box
	// (runc CVE-2019-19921): they need a real directory.
	strict := m.Kind == New && (m.FSType == "proc" || m.FSType == "sysfs")
	target := e.openFor(m.Target, m.File, true, what, strict)
	switch m.Kind {
	case New:
		b.Call(what, unix.SYS_FCHDIR, initproc.R(target))
		b.Call(what, unix.SYS_MOUNT, b.Str(m.Source), b.Str("."), b.Str(m.FSType), initproc.Imm(m.Flags), dataArg(b, m.Data))
		if m.Propagation != 0 || m.AttrSet != 0 || m.AttrClear != 0 {
			// Reopen the target: the fd still names the directory underneath.
			top := e.open(m.Target, false, false)
			e.setattr(what, top, 0, &unix.MountAttr{Attr_set: m.AttrSet, Attr_clr: m.AttrClear, Propagation: uint64(m.Propagation)})
			b.Close(top)
		}
	case Bind:
		var tree initproc.Reg
		if m.Premade != "" {
			if tree = e.Premade[m.Premade]; tree == 0 {
				panic("rootfs: no " + m.Premade + " was made for " + m.Target)
			}
		} else if m.FromParent {
			e.parent.add(m)
			tree = b.ReceiveFD("receive the tree of " + m.Source)
		} else {
			flags := uintptr(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
			if m.Recursive {
				flags |= unix.AT_RECURSIVE
			}
			tree = b.Call(what, unix.SYS_OPEN_TREE, initproc.Imm(unix.AT_FDCWD), b.Str(m.Source), initproc.Imm(flags)).Out()
		}
		if m.AttrSet != 0 || m.AttrClear != 0 || (m.Propagation != 0 && !m.RecursiveProp) {
			prop := uint64(0)
			if !m.RecursiveProp {
				prop = uint64(m.Propagation)
			}
			e.setattr(what, tree, 0, &unix.MountAttr{Attr_set: m.AttrSet, Attr_clr: m.AttrClear, Propagation: prop})
		}
		if m.RecSet != 0 || m.RecClear != 0 || (m.Propagation != 0 && m.RecursiveProp) {
			prop := uint64(0)
			if m.RecursiveProp {
				prop = uint64(m.Propagation)
			}
			e.setattr(what, tree, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: m.RecSet, Attr_clr: m.RecClear, Propagation: prop})
		}
		b.Call(what, unix.SYS_MOVE_MOUNT, initproc.R(tree), b.Str(""), initproc.R(target), b.Str(""),
			initproc.Imm(unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH))
		b.Close(tree)
	}
	b.Close(target)
}

func dataArg(b *initproc.Builder, data string) initproc.Arg {
	if data == "" {
		return initproc.Imm(0)
	}
	return b.Str(data)
}

// devices creates the device nodes and links of /dev: real nodes when the box
// may make them, otherwise bind mounts of the host's nodes (as bubblewrap
// does in a user namespace).
func (e *Emitter) devices(p *Plan) {
	b := e.b
	// A fresh /dev holds nothing of the image: what goes directly in it
	// is made through one descriptor of it, by name.
	var dev initproc.Reg
	if p.DevFresh {
		dev = e.open("/dev", false, false)
	}
	inDev := func(p string) (string, bool) {
		name, ok := strings.CutPrefix(p, "/dev/")
		return name, ok && dev != 0 && !strings.Contains(name, "/")
	}
	for _, d := range p.Devices {
		what := "create " + d.Path
		if p.UserNS {
			// The host's node, bound onto a file (the only kind a user
			// namespace may make): in a fresh /dev a new one by name, a
			// second entry for it let be; elsewhere resolved beneath the
			// root.
			var target initproc.Reg
			made := -1
			if name, ok := inDev(d.Path); ok {
				target = b.NewReg()
				made = b.Call(what, unix.SYS_OPENAT, initproc.R(dev), b.Str(name),
					initproc.Imm(unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC), initproc.Imm(0o644)).
					OutTo(target).OnErrno(unix.EEXIST, 0).Index()
			} else {
				target = e.open(d.Path, true, true)
			}
			tree := b.Call(what, unix.SYS_OPEN_TREE, initproc.Imm(unix.AT_FDCWD), b.Str(d.Path),
				initproc.Imm(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)).Out()
			b.Call(what, unix.SYS_MOVE_MOUNT, initproc.R(tree), b.Str(""), initproc.R(target), b.Str(""),
				initproc.Imm(unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH))
			b.Close(tree)
			b.Close(target)
			if made >= 0 {
				b.PatchErrJump(made, b.Label())
			}
			continue
		}
		dir, name := dev, ""
		if n, ok := inDev(d.Path); ok {
			name = n
		} else {
			dir, name = e.open(path.Dir(d.Path), false, true), path.Base(d.Path)
		}
		b.Call(what, unix.SYS_MKNODAT, initproc.R(dir), b.Str(name), initproc.Imm(d.Type|d.Mode),
			initproc.Imm(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))).Allow(unix.EEXIST)
		if d.UID != 0 || d.GID != 0 {
			b.Call("chown "+d.Path, unix.SYS_FCHOWNAT, initproc.R(dir), b.Str(name), initproc.Imm(d.UID), initproc.Imm(d.GID),
				initproc.Imm(unix.AT_SYMLINK_NOFOLLOW))
		}
		if dir != dev {
			b.Close(dir)
		}
	}
	for _, l := range p.Symlinks {
		if name, ok := inDev(l.Path); ok {
			b.Call("link "+l.Path+" to "+l.Target, unix.SYS_SYMLINKAT, b.Str(l.Target), initproc.R(dev), b.Str(name)).Allow(unix.EEXIST)
			continue
		}
		dir := e.open(path.Dir(l.Path), false, false)
		b.Call("link "+l.Path+" to "+l.Target, unix.SYS_SYMLINKAT, b.Str(l.Target), initproc.R(dir), b.Str(path.Base(l.Path))).Allow(unix.EEXIST)
		b.Close(dir)
	}
	if dev != 0 {
		b.Close(dev)
	}
	if p.Console {
		e.b.Close(e.open("/dev/console", true, true))
	}
}

// sysctls writes kernel parameters under the box's own /proc/sys: beneath
// the proc mount, never through a symbolic link, a magic link or another
// mount (so nothing mounted or linked in the box redirects the write).
func (e *Emitter) sysctls(list []Sysctl) {
	if len(list) == 0 {
		return
	}
	b := e.b
	proc := e.openFor("/proc", false, false, "", true)
	e.expectKernelFS("/proc", proc)
	how := initproc.Ptr(b, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	for _, sc := range list {
		what := "set sysctl " + sc.Key + "=" + sc.Value
		rel := "sys/" + strings.ReplaceAll(sc.Key, ".", "/")
		f := b.Call(what, unix.SYS_OPENAT2, initproc.R(proc), b.Str(rel), how, initproc.Imm(unix.SizeofOpenHow)).Out()
		b.Call(what, unix.SYS_WRITE, initproc.R(f), b.Bytes([]byte(sc.Value)), initproc.Imm(len(sc.Value)))
		b.Close(f)
	}
	b.Close(proc)
}

// mask hides p: a file behind the host's /dev/null (taken from the host, so
// the image cannot put something else in its place), a directory behind an
// empty read-only tmpfs. A path that does not exist needs no hiding.
func (e *Emitter) mask(p string) {
	b := e.b
	what := "mask " + p
	t := b.NewReg()
	missing := b.Call("resolve "+p+" in the box", unix.SYS_OPENAT2, initproc.R(e.root), b.Str(strings.TrimPrefix(p, "/")),
		resolveHow(b, 0), initproc.Imm(unix.SizeofOpenHow)).OutTo(t).OnErrno(unix.ENOENT, 0)
	e.expectKernelFS(p, t)
	d := b.NewReg()
	notDir := b.Call(what, unix.SYS_OPENAT, initproc.R(t), b.Str("."), initproc.Imm(unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)).
		OutTo(d).OnErrno(unix.ENOTDIR, 0)
	b.Call(what, unix.SYS_FCHDIR, initproc.R(d))
	b.Call(what, unix.SYS_MOUNT, b.Str("tmpfs"), b.Str("."), b.Str("tmpfs"),
		initproc.Imm(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC), b.Str("size=0,mode=0"))
	b.Call("close fd", unix.SYS_CLOSE, initproc.R(d))
	toClose := b.Jump(-1)
	b.PatchErrJump(notDir.Index(), b.Label())
	tree := b.Call(what, unix.SYS_OPEN_TREE, initproc.Imm(unix.AT_FDCWD), b.Str("/dev/null"),
		initproc.Imm(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)).Out()
	e.expectNull(tree)
	b.Call(what, unix.SYS_MOVE_MOUNT, initproc.R(tree), b.Str(""), initproc.R(t), b.Str(""),
		initproc.Imm(unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH))
	b.Close(tree)
	b.PatchJump(toClose, b.Label())
	b.Call("close fd", unix.SYS_CLOSE, initproc.R(t))
	b.PatchErrJump(missing.Index(), b.Label())
	b.FreeReg(d)
	b.FreeReg(t)
}

// expectNull fails the set-up unless fd is the null device (character
// device 1:3): what masks a file must be nothing else, whatever the
// filesystem it came from holds (CVE-2025-31133).
func (e *Emitter) expectNull(fd initproc.Reg) {
	b := e.b
	st := &unix.Stat_t{}
	b.Call("check what masks files", unix.SYS_FSTAT, initproc.R(fd), initproc.Ptr(b, st))
	const bad = "/dev/null is not the null device (character device 1:3): refusing to mask paths with it"
	b.Expect32(bad, &st.Mode, unix.S_IFMT, unix.S_IFCHR)
	b.Expect(bad, &st.Rdev, ^uint64(0), unix.Mkdev(1, 3))
}

// expectKernelFS fails the set-up unless fd, the box's path p, is on the
// filesystem the kernel serves there: procfs beneath /proc, sysfs beneath
// /sys; so that masking, making read-only or writing a sysctl cannot be
// turned onto another file by what the box's root put there
// (CVE-2025-52881).
func (e *Emitter) expectKernelFS(p string, fd initproc.Reg) {
	var magic uint64
	var name string
	switch {
	case p == "/proc" || strings.HasPrefix(p, "/proc/"):
		magic, name = unix.PROC_SUPER_MAGIC, "procfs"
	case p == "/sys" || strings.HasPrefix(p, "/sys/"):
		magic, name = unix.SYSFS_MAGIC, "sysfs"
	default:
		return
	}
	b := e.b
	fs := &unix.Statfs_t{}
	b.Call("check the filesystem of "+p, unix.SYS_FSTATFS, initproc.R(fd), initproc.Ptr(b, fs))
	b.Expect(p+" in the box is not on "+name+": refusing to mask it, make it read-only or write beneath it",
		(*uint64)(unsafe.Pointer(&fs.Type)), ^uint64(0), magic)
}

// readOnly binds p read-only onto itself, recursively, if it exists.
func (e *Emitter) readOnly(p string) {
	b := e.b
	what := "make " + p + " read-only"
	t := b.NewReg()
	missing := b.Call("resolve "+p+" in the box", unix.SYS_OPENAT2, initproc.R(e.root), b.Str(strings.TrimPrefix(p, "/")),
		resolveHow(b, 0), initproc.Imm(unix.SizeofOpenHow)).OutTo(t).OnErrno(unix.ENOENT, 0)
	e.expectKernelFS(p, t)
	tree := b.Call(what, unix.SYS_OPEN_TREE, initproc.R(t), b.Str(""),
		initproc.Imm(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)).Out()
	e.setattr(what, tree, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC})
	b.Call(what, unix.SYS_MOVE_MOUNT, initproc.R(tree), b.Str(""), initproc.R(t), b.Str(""),
		initproc.Imm(unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH))
	b.Close(tree)
	b.Call("close fd", unix.SYS_CLOSE, initproc.R(t))
	b.PatchErrJump(missing.Index(), b.Label())
	b.FreeReg(t)
}

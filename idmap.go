package nsbox

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/userns"
)

// idmapBinds id-maps every writable bind of a directory so that the box's
// root appears as, and writes as, the directory's owner on the host.
func idmapBinds(s *specs.Spec, ids idDecision) error {
	if os.Geteuid() != 0 || len(ids.uids) == 0 {
		return nil // rootless: the box's root already is the caller
	}
	rootUID, _ := userns.ToHost(ids.uids, 0)
	rootGID, _ := userns.ToHost(ids.gids, 0)
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Type != "bind" || len(m.UIDMappings) > 0 || hasOption(m.Options, "ro") {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(m.Source, &st); err != nil {
			return fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || (st.Uid == rootUID && st.Gid == rootGID) {
			continue
		}
		m.UIDMappings = []specs.LinuxIDMapping{{ContainerID: st.Uid, HostID: rootUID, Size: 1}}
		m.GIDMappings = []specs.LinuxIDMapping{{ContainerID: st.Gid, HostID: rootGID, Size: 1}}
	}
	return nil
}

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

// parentMakesTrees has the parent, which runs with the caller's privileges,
// clone the trees a box binds from the host: the box's root, an unrelated
// id in a user namespace, may not even reach a directory that root can. With
// idmapRoot the root tree is id-mapped to the box's ids, so that its root
// owns it (as podman --userns=auto does).
func parentMakesTrees(fs *rootfs.Plan, idmapRoot bool, ids idDecision) {
	fs.RootFromParent = true
	if idmapRoot && fs.Root != "/" {
		// A convenience, not something asked for: a root the filesystem
		// cannot id-map is used as it is (its files unowned in the box).
		fs.RootIDMap = &rootfs.IDMap{UIDs: ids.uids, GIDs: ids.gids, BestEffort: true}
	}
	for i := range fs.Mounts {
		if fs.Mounts[i].Kind == rootfs.Bind && fs.Mounts[i].Premade == "" {
			fs.Mounts[i].FromParent = true
		}
	}
}

// makeTree makes the detached clone of m.Source (id-mapped when m.IDMap is
// set) that the child of box process pid asked for.
func makeTree(m rootfs.Mount, pid int, ids idDecision) (int, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if m.Recursive {
		flags |= unix.AT_RECURSIVE
	}
	if m.IDMap == nil {
		tree, err := unix.OpenTree(unix.AT_FDCWD, m.Source, uint(flags))
		if err != nil {
			return -1, fmt.Errorf("%s: %w", m.Describe(), err)
		}
		return tree, nil
	}
	var nsfd int
	var err error
	if sameMaps(m.IDMap.UIDs, ids.uids) && sameMaps(m.IDMap.GIDs, ids.gids) {
		nsfd, err = unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	} else {
		nsfd, err = newUserNS(m.IDMap.UIDs, m.IDMap.GIDs)
	}
	if err != nil {
		return -1, fmt.Errorf("id-mapped mount of %s: user namespace: %w", m.Source, err)
	}
	defer unix.Close(nsfd)
	setFlags := unix.AT_EMPTY_PATH
	if m.Recursive {
		setFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, m.Source, uint(flags))
	if err != nil {
		return -1, fmt.Errorf("id-mapped mount of %s: %w", m.Source, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(nsfd)}
	if err := unix.MountSetattr(tree, "", uint(setFlags), attr); err != nil {
		if err == unix.EINVAL && m.IDMap.BestEffort {
			return tree, nil
		}
		unix.Close(tree)
		if err == unix.EINVAL {
			return -1, fmt.Errorf("id-mapped mount of %s: its filesystem (%s) cannot do id-mapped mounts (Linux ≥ 5.12 and filesystem support needed)", m.Source, fsType(m.Source))
		}
		return -1, fmt.Errorf("id-mapped mount of %s: %w", m.Source, err)
	}
	return tree, nil
}

func sameMaps(a, b []specs.LinuxIDMapping) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fsType(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "unknown"
	}
	names := map[int64]string{
		unix.EXT4_SUPER_MAGIC: "ext4", unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
		unix.TMPFS_MAGIC: "tmpfs", unix.NFS_SUPER_MAGIC: "nfs", unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
		unix.FUSE_SUPER_MAGIC: "fuse", unix.SYSFS_MAGIC: "sysfs", unix.PROC_SUPER_MAGIC: "proc",
	}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("type %#x", st.Type)
}

// newUserNS returns an fd of a new, empty user namespace with the given maps,
// made by a short-lived child that waits until the maps are written.
func newUserNS(uids, gids []specs.LinuxIDMapping) (int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fds[0])
	b := initproc.NewBuilder(fds[1])
	b.Sync("wait for id maps", initproc.MsgMaps, 0, false)
	b.Exit(0)
	pid, pidfd, err := initproc.Start(b.Program(), initproc.Clone{Flags: unix.CLONE_NEWUSER})
	unix.Close(fds[1])
	if err != nil {
		return -1, err
	}
	defer unix.Close(pidfd)
	defer unix.Wait4(pid, nil, 0, nil)
	var msg initproc.Msg
	buf := (*[unsafe.Sizeof(msg)]byte)(unsafe.Pointer(&msg))[:]
	if n, err := unix.Read(fds[0], buf); err != nil || n != len(buf) || msg.Kind != initproc.MsgMaps {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		return -1, fmt.Errorf("helper for the id map did not start")
	}
	err = userns.Write(pid, uids, gids, userns.Direct)
	var nsfd int
	if err == nil {
		nsfd, err = unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	unix.Write(fds[0], []byte{0})
	if err != nil {
		return -1, err
	}
	return nsfd, nil
}

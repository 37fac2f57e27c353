package setup

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/state"
)

func TestLandlockPolicy(t *testing.T) {
	const rx = llReadExec
	all := landlockFSRights(5)
	mounts := []rootfs.Mount{
		{Kind: rootfs.New, Target: "/proc", FSType: "proc"},
		{Kind: rootfs.New, Target: "/dev", FSType: "tmpfs"},
		{Kind: rootfs.New, Target: "/dev/pts", FSType: "devpts"},
		{Kind: rootfs.New, Target: "/sys", FSType: "sysfs", Flags: unix.MS_RDONLY},
		{Kind: rootfs.New, Target: "/tmp", FSType: "tmpfs"},
		{Kind: rootfs.Bind, Target: "/data", Source: "/srv/data"},
		{Kind: rootfs.Bind, Target: "/etc/hosts", Source: "/run/x/hosts", File: true},
		{Kind: rootfs.Bind, Target: "/ro", Source: "/srv/ro", RecSet: unix.MOUNT_ATTR_RDONLY},
		{Kind: rootfs.Bind, Target: "/later-ro", Source: "/srv/l"},
		{Kind: rootfs.ReadOnly, Target: "/later-ro"},
		{Kind: rootfs.New, Target: "/proc/sys/fs/binfmt_misc", FSType: "tmpfs"},
	}
	cases := []struct {
		name string
		plan rootfs.Plan
		abi  int
		want []state.LandlockRule
	}{
		{"read-only root", rootfs.Plan{RootRO: true, Mounts: mounts}, 5, []state.LandlockRule{
			{Path: "/", Access: rx, What: "read, execute"},
			{Path: "/dev", Access: llDevice, What: "devices"},
			{Path: "/dev/pts", Access: llDevice, What: "devices"},
			{Path: "/tmp", Access: all, What: "all rights"},
			{Path: "/data", Access: all, What: "all rights"},
			{Path: "/etc/hosts", Access: all & llFile, What: "all rights"},
		}},
		{"writable root", rootfs.Plan{Mounts: mounts[:1]}, 5, []state.LandlockRule{
			{Path: "/", Access: all, What: "all rights"},
		}},
		{"ABI 1: no truncate or ioctl rights", rootfs.Plan{RootRO: true, Mounts: mounts[1:2]}, 1, []state.LandlockRule{
			{Path: "/", Access: rx, What: "read, execute"},
			{Path: "/dev", Access: llDevice & landlockFSRights(1), What: "devices"},
		}},
	}
	for _, c := range cases {
		l := LandlockPolicy(&c.plan, c.abi)
		if l.ABI != c.abi || l.Handled != landlockFSRights(c.abi) || !reflect.DeepEqual(l.Rules, c.want) {
			t.Errorf("%s: %+v\nwant rules %+v", c.name, l, c.want)
		}
	}
	if landlockFSRights(1)&unix.LANDLOCK_ACCESS_FS_REFER != 0 || landlockFSRights(2)&unix.LANDLOCK_ACCESS_FS_REFER == 0 {
		t.Error("REFER is ABI 2")
	}
}

package rootfs

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
)

func TestParseOptions(t *testing.T) {
	cases := []struct {
		in   []string
		want Options
	}{
		{[]string{"nosuid", "nodev", "mode=755"}, Options{Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: []string{"mode=755"}}},
		{[]string{"ro", "rw"}, Options{Clear: unix.MS_RDONLY}},
		{[]string{"rbind", "ro"}, Options{Bind: true, Recursive: true, Flags: unix.MS_RDONLY}},
		{[]string{"bind", "rprivate"}, Options{Bind: true, Propagation: unix.MS_PRIVATE, RecursiveProp: true}},
		{[]string{"shared"}, Options{Propagation: unix.MS_SHARED}},
		{[]string{"rro", "rnosuid"}, Options{RecAttr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID}},
		{[]string{"rrelatime"}, Options{RecAttr: unix.MOUNT_ATTR_RELATIME, RecClear: unix.MOUNT_ATTR__ATIME}},
		{[]string{"idmap"}, Options{IDMap: true}},
		{[]string{"newinstance", "ptmxmode=0666"}, Options{Data: []string{"newinstance", "ptmxmode=0666"}}},
	}
	for _, c := range cases {
		got, err := ParseOptions(c.in)
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if got.Flags != c.want.Flags || got.Clear != c.want.Clear || got.Bind != c.want.Bind || got.Recursive != c.want.Recursive ||
			got.Propagation != c.want.Propagation || got.RecursiveProp != c.want.RecursiveProp || got.RecAttr != c.want.RecAttr ||
			got.RecClear != c.want.RecClear || got.IDMap != c.want.IDMap || strings.Join(got.Data, ",") != strings.Join(c.want.Data, ",") {
			t.Errorf("%v:\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
	if _, err := ParseOptions([]string{""}); err == nil {
		t.Error("empty option accepted")
	}
}

func TestAttrsOfBindOptions(t *testing.T) {
	o, _ := ParseOptions([]string{"ro", "nosuid", "noexec", "relatime"})
	set, clr := o.Attrs()
	if set != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_RELATIME || clr != unix.MOUNT_ATTR__ATIME {
		t.Errorf("set %#x clear %#x", set, clr)
	}
	o, _ = ParseOptions([]string{"rw"})
	if set, clr := o.Attrs(); set != 0 || clr != unix.MOUNT_ATTR_RDONLY {
		t.Errorf("rw: set %#x clear %#x", set, clr)
	}
}

func defaultSpec() *specs.Spec {
	return &specs.Spec{
		Root: &specs.Root{Path: "/srv/rootfs"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=755"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"newinstance", "gid=5"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue"},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"ro"}},
			{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "ro"}},
		},
	}
}

func TestPlanNewNamespaces(t *testing.T) {
	p, err := PlanFor(defaultSpec(), Context{UserNS: true, OwnPID: true, OwnNet: true, OwnIPC: true, TTYGroup: true})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]Kind{}
	for _, m := range p.Mounts {
		kinds[m.Target] = m.Kind
	}
	for target, want := range map[string]Kind{"/proc": New, "/sys": New, "/dev/mqueue": New, "/data": Bind} {
		if kinds[target] != want {
			t.Errorf("%s: kind %v, want %v", target, kinds[target], want)
		}
	}
	if len(p.Devices) != len(DefaultDevices) || !p.UserNS {
		t.Errorf("devices %d, userns %v", len(p.Devices), p.UserNS)
	}
	if p.Mounts[5].AttrSet != unix.MOUNT_ATTR_RDONLY || !p.Mounts[5].Recursive {
		t.Errorf("read-only rbind: %+v", p.Mounts[5])
	}
}

func TestPlanSharedNamespacesInAUserNamespace(t *testing.T) {
	// A user namespace cannot mount proc, sysfs or mqueue for namespaces it
	// does not own: bind the host's instead (or leave mqueue out).
	p, err := PlanFor(defaultSpec(), Context{UserNS: true, TTYGroup: false})
	if err != nil {
		t.Fatal(err)
	}
	byTarget := map[string]Mount{}
	for _, m := range p.Mounts {
		byTarget[m.Target] = m
	}
	if m := byTarget["/proc"]; m.Kind != Bind || m.Source != "/proc" || !m.Recursive {
		t.Errorf("/proc: %+v", m)
	}
	// The host's /sys, read-only down to what is mounted beneath it
	// (debugfs, tracefs, the host's cgroups); also for the host's root in
	// the host's network namespace.
	if m := byTarget["/sys"]; m.Kind != Bind || m.Source != "/sys" || m.AttrSet&unix.MOUNT_ATTR_RDONLY == 0 || m.RecSet&unix.MOUNT_ATTR_RDONLY == 0 {
		t.Errorf("/sys: %+v", m)
	}
	hp, err := PlanFor(defaultSpec(), Context{HostNet: true, OwnPID: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hp.Mounts {
		if m.Target == "/sys" && (m.Kind != Bind || m.RecSet&(unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC) != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC) {
			t.Errorf("/sys of the host's network namespace: %+v", m)
		}
	}
	if _, ok := byTarget["/dev/mqueue"]; ok {
		t.Errorf("/dev/mqueue planned without a host mqueue to bind")
	}
	if m := byTarget["/dev/pts"]; strings.Contains(m.Data, "gid=5") {
		t.Errorf("devpts keeps gid=5 although group 5 is not mapped: %q", m.Data)
	}
	if p.Premade("proc") || p.Premade("sysfs") {
		t.Errorf("a premade proc or sysfs for the host's namespaces")
	}

	// Joining other pid and network namespaces: the proc and sysfs made
	// for them, nothing of the host's.
	p, err = PlanFor(defaultSpec(), Context{UserNS: true, JoinedPIDProc: true, JoinedNetSys: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Mounts {
		want := map[string]string{"/proc": "proc", "/sys": "sysfs"}[m.Target]
		if want != "" && (m.Kind != Bind || m.Premade != want || m.FromParent || m.Recursive) {
			t.Errorf("%s of a joined namespace: %+v", m.Target, m)
		}
	}
	if !p.Premade("proc") || !p.Premade("sysfs") {
		t.Errorf("no premade proc and sysfs for joined namespaces")
	}
	// It is made once: a second proc mount is refused.
	s := defaultSpec()
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc2", Type: "proc", Source: "proc"})
	if _, err := PlanFor(s, Context{UserNS: true, JoinedPIDProc: true}); err == nil || !strings.Contains(err.Error(), "/proc2") {
		t.Errorf("two procs of a joined pid namespace: %v", err)
	}
}

func TestPlanHostRoot(t *testing.T) {
	s := defaultSpec()
	s.Root = &specs.Root{Path: "/", Readonly: true}
	p, _ := PlanFor(s, Context{})
	if !p.RootRecursiveRO || p.RootRO {
		t.Errorf("host root: recursive ro %v, ro %v", p.RootRecursiveRO, p.RootRO)
	}
	s.Root = &specs.Root{Path: "/srv/rootfs", Readonly: true}
	p, _ = PlanFor(s, Context{})
	if p.RootRecursiveRO || !p.RootRO {
		t.Errorf("rootfs: recursive ro %v, ro %v", p.RootRecursiveRO, p.RootRO)
	}
}

func TestPlanRejects(t *testing.T) {
	for _, m := range []specs.Mount{
		{Destination: "relative", Type: "tmpfs"},
		{Destination: "/", Type: "tmpfs"},
		{Destination: "/x", Type: "bind", Source: "relative"},
		{Destination: "/x", Type: "bind"},
		{Destination: "/x", Type: "bind", Source: "/y", Options: []string{"mode=755"}},
		{Destination: "/x", Type: "bind", Source: "/y", UIDMappings: []specs.LinuxIDMapping{{Size: 1}}},
		{Destination: "/x", Type: "tmpfs", Options: []string{"idmap"}},
		{Destination: "/x"},
	} {
		s := defaultSpec()
		s.Mounts = []specs.Mount{m}
		if _, err := PlanFor(s, Context{}); err == nil {
			t.Errorf("accepted %+v", m)
		}
	}
	s := defaultSpec()
	s.Linux = &specs.Linux{RootfsPropagation: "sideways"}
	if _, err := PlanFor(s, Context{}); err == nil {
		t.Error("accepted rootfsPropagation sideways")
	}
}

func TestEmitResolvesInsideTheRoot(t *testing.T) {
	p, err := PlanFor(defaultSpec(), Context{UserNS: true, OwnPID: true, OwnNet: true, OwnIPC: true, TTYGroup: true})
	if err != nil {
		t.Fatal(err)
	}
	b := initproc.NewBuilder(3)
	p.EmitRoot(b, &ParentTrees{}).EmitMounts(p)
	prog := b.Program().String()
	for _, want := range []string{"make the mount namespace private", "clone the root tree /srv/rootfs", "attach the root tree",
		"mount proc on /proc", "bind /srv/data on /data", "create /dev/null", "link /dev/ptmx to pts/ptmx",
		"pivot_root into /srv/rootfs", "detach the old root"} {
		if !strings.Contains(prog, want) {
			t.Errorf("program lacks %q:\n%s", want, prog)
		}
	}
	if strings.Index(prog, "pivot_root") < strings.Index(prog, "bind /srv/data") {
		t.Error("pivot before the mounts")
	}
	if err := b.Program().Validate(); err != nil {
		t.Error(err)
	}
}

func TestEmitNoPivot(t *testing.T) {
	for _, root := range []string{"/srv/rootfs", "/"} {
		s := defaultSpec()
		s.Root.Path = root
		p, err := PlanFor(s, Context{UserNS: true, OwnPID: true})
		if err != nil {
			t.Fatal(err)
		}
		p.NoPivot = true
		b := initproc.NewBuilder(3)
		p.EmitRoot(b, &ParentTrees{}).EmitMounts(p)
		prog := b.Program().String()
		if strings.Contains(prog, "pivot_root") || !strings.Contains(prog, "chroot into "+root) {
			t.Errorf("root %s: want chroot and no pivot_root:\n%s", root, prog)
		}
		// Moving "/" onto itself fails (ELOOP): the tree already covers it.
		if moved := strings.Contains(prog, "move "+root+" onto /"); moved != (root != "/") {
			t.Errorf("root %s: move step present = %v:\n%s", root, moved, prog)
		}
	}
}

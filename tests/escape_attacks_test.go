package tests

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The table of attacks and what each needs of the host (see escape_test.go).

func escapeAttacks() []attack {
	return []attack{
		{"core-pattern", scripted{
			places: everywhere, walls: []wall{defaults, withSysAdmin, withHostIDs},
			prepare: func(t *testing.T, p place, control bool) (boxSpec, []string) {
				b := boxSpec{cmd: script("core-pattern")}
				if control { // writes the current pattern back: harmless
					b.env = []string{"VALUE=" + readTrim("/proc/sys/kernel/core_pattern")}
				}
				return b, nil
			},
			control: &wall{name: "privileged", run: privileged},
		}.test},
		{"sysrq-trigger", needs("/proc/sysrq-trigger", "CONFIG_MAGIC_SYSRQ", scripted{
			places: everywhere, walls: []wall{defaults, withSysAdmin, withHostIDs},
			prepare: just(script("sysrq")), control: &wall{name: "privileged", run: privileged},
		}.test)},
		{"cve-2022-0492-release-agent", scripted{
			places: everywhere, walls: []wall{defaults, withSysAdmin, withHostIDs},
			prepare: func(t *testing.T, p place, control bool) (boxSpec, []string) {
				b := boxSpec{cmd: script("release-agent")}
				if control { // writes the current agent back: harmless
					b.env = []string{"CONTROL=1"}
				}
				return b, nil
			},
			control: &wall{name: "privileged", run: append([]string{"--share", "cgroup"}, privileged...)},
		}.test},
		{"mknod-host-disk", scripted{
			places: everywhere,
			walls: []wall{defaults, withHostIDs,
				{name: "cap-add MKNOD", oci: addCaps("CAP_MKNOD"), places: []place{ociRoot}}},
			prepare: func(t *testing.T, p place, control bool) (boxSpec, []string) {
				return boxSpec{cmd: script("mknod-disk"), env: []string{"DISKS=" + rootDevice(t) + " " + loopDisk(t)}}, nil
			},
			// The devices cgroup is the last wall: a box that allows every
			// device reads the loop device's first sector.
			control: &wall{name: "devices allowed", places: []place{ociRoot}, oci: func(s *specs.Spec) {
				addCaps("CAP_MKNOD")(s)
				s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
			}},
		}.test},
		{"mount-and-unshare", scripted{
			places: everywhere, walls: []wall{defaults}, prepare: just(script("mount")),
			control: &wall{name: "unconfined", run: []string{"--seccomp", "unconfined"}},
		}.test},
		// CAP_SYS_ADMIN in the box's own user namespace lets it undo the
		// read-only flag of mounts made in that namespace (as with runc;
		// nsbox warns): the control. --landlock forbids mounting at all.
		{"remount-host-root", scripted{
			places: []place{runRoot, runRootless, ociRootless}, walls: []wall{defaults, withSysAdminLandlock},
			prepare: prepareRemount, control: &withSysAdmin,
		}.test},
		{"host-secrets", scripted{
			places: runOnly,
			walls:  []wall{defaults, {name: "cap-add ALL", run: []string{"--cap-add", "ALL"}}},
			prepare: func(*testing.T, place, bool) (boxSpec, []string) {
				return boxSpec{cmd: script("host-secrets"), hostRoot: true}, nil
			},
			// The host's root in a box is the host's root.
			control: &wall{name: "userns=host", run: []string{"--userns=host"}},
		}.test},
		{"host-view", scripted{
			places: everywhere, walls: []wall{defaults}, prepare: prepareHostView,
			control: &wall{name: "share pid", run: []string{"--share", "pid"}},
		}.test},
		{"shocker-open-by-handle", scripted{
			places: everywhere,
			walls: []wall{defaults, withHostIDs, {name: "cap-add DAC_READ_SEARCH", run: []string{"--cap-add", "DAC_READ_SEARCH"},
				oci: both(addCaps("CAP_DAC_READ_SEARCH"), withoutSeccomp), places: []place{runRoot, runRootless, ociRootless}}},
			prepare: func(t *testing.T, p place, control bool) (boxSpec, []string) {
				h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/etc/shadow", 0)
				if err != nil {
					t.Fatalf("name_to_handle_at /etc/shadow: %v", err)
				}
				cmd := program("shocker", strconv.Itoa(int(h.Type())), hex.EncodeToString(h.Bytes()))
				return boxSpec{cmd: cmd, hostRoot: p.face == "run"}, nil
			},
			control: &wall{name: "privileged", run: privileged},
		}.test},
		{"kernel-keyring", scripted{
			places: everywhere, walls: []wall{defaults, withSysAdmin, withHostIDs},
			prepare: func(t *testing.T, p place, control bool) (boxSpec, []string) {
				return boxSpec{cmd: program("keyring", hostKey(t))}, nil
			},
			control: &wall{name: "privileged", run: privileged},
		}.test},
		{"cve-2019-5736-exe-overwrite", testExeOverwrite},
		{"cve-2016-9962-ptrace-runtime", testPtraceRuntime},
		{"cve-2024-21626-leaked-fd-and-cwd", testLeakedFDs},
		{"symlinks-in-the-image", testCraftedRoots},
		{"cve-2025-52565-dev-console", testConsole},
		{"cve-2024-45310-mount-target-race", testMountRace},
		{"cve-2025-52881-sysctl-redirect", testSysctlRedirect},
		{"cve-2017-5226-tiocsti", testTIOCSTI},
		{"setuid-and-file-caps-with-no-new-privs", scripted{
			places: []place{runRoot, runRootless, ociRoot}, walls: []wall{defaults}, prepare: prepareSetuid,
			// Without no_new_privs (and without capabilities given to user
			// 1000, which --privileged would add), the bit and the file's
			// capabilities take effect.
			control: &wall{name: "noNewPrivileges false", places: []place{ociRoot}, oci: func(s *specs.Spec) { s.Process.NoNewPrivileges = false }},
		}.test},
	}
}

// rootDevice returns MAJ:MIN of the device of the host's root filesystem,
// from the test's mountinfo.
func rootDevice(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "/" {
			return f[2]
		}
	}
	t.Fatal("no root filesystem in /proc/self/mountinfo")
	return ""
}

// loopDisk attaches a loop device to a file of the test (a disk of the
// host that its root may read, which this machine's own disk is not) and
// returns its MAJ:MIN; it is detached when the test ends.
func loopDisk(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(f, bytes.Repeat([]byte("nsbox-host-disk\n"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
}

// prepareRemount: host directories the box sees read-only (a read-only
// bind at /mnt; with the host's root, /var/tmp, the host's /tmp beneath
// the box's and the rootless user's home), which it tries to write.
func prepareRemount(t *testing.T, p place, _ bool) (boxSpec, []string) {
	victim, ro := victimDir(t), victimDir(t)
	targets := []string{"/mnt"}
	b := boxSpec{cmd: script("remount-root"), hostRoot: p.face == "run", flags: []string{"--bind", ro + ":/mnt:ro"}}
	watch := []string{victim, ro}
	if p.face == "oci" {
		b.root = craftedRoot(t, p)
		b.edits = append(b.edits, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: ro, Options: []string{"bind", "ro"}})
		})
	} else {
		targets = append(targets, victim, "/var/tmp")
		if u := users[p.as]; u != nil {
			targets = append(targets, u.home)
			watch = append(watch, u.home)
		}
	}
	// What got through is removed after the host's check.
	t.Cleanup(func() {
		for _, d := range append(targets, ro) {
			if !strings.HasPrefix(d, "/mnt") {
				os.Remove(filepath.Join(d, "nsbox-escape"))
			}
		}
	})
	b.env = []string{"TARGETS=" + strings.Join(targets, " ")}
	return b, watch
}

// prepareHostView starts a host process and mounts a host tmpfs, both
// named with a marker the box looks for.
func prepareHostView(t *testing.T, p place, _ bool) (boxSpec, []string) {
	mark := fmt.Sprintf("nsbox-escape-view-%d-%d", os.Getpid(), boxSeq.Add(1))
	proc := exec.Command("sh", "-c", "sleep 600; : "+mark)
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })
	dir, err := os.MkdirTemp("", mark+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH); os.Remove(dir) })
	half := len(mark) / 2
	return boxSpec{cmd: script("host-view"), env: []string{"MARKA=" + mark[:half], "MARKB=" + mark[half:], "MOUNTS=1"}}, nil
}

// hostKey adds a key with a secret to the user keyring of the host's root
// (the test's), which its uid may search and read, and returns its
// description; the key is revoked when the test ends.
func hostKey(t *testing.T) string {
	desc := fmt.Sprintf("nsbox-escape-%d-%d", os.Getpid(), boxSeq.Add(1))
	id, err := unix.AddKey("user", desc, []byte("nsbox-escape-secret"), unix.KEY_SPEC_USER_KEYRING)
	if err != nil {
		t.Fatalf("add_key: %v", err)
	}
	t.Cleanup(func() {
		unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
		unix.KeyctlInt(unix.KEYCTL_REVOKE, id, 0, 0, 0)
	})
	// Possessor and user: everything (view, read, write, search, link, setattr).
	if _, err := unix.KeyctlInt(unix.KEYCTL_SETPERM, id, 0x3f3f0000, 0, 0); err != nil {
		t.Fatalf("keyctl setperm: %v", err)
	}
	return desc
}

// prepareSetuid makes a root with two copies of the attack program that
// would raise the privileges of the box's user 1000: one set-user-ID and
// owned by the box's root, one with file capabilities (effective); the box
// runs both as user 1000.
func prepareSetuid(t *testing.T, p place, _ bool) (boxSpec, []string) {
	root := craftedRoot(t, p)
	uid, gid := p.owner()
	if uid < 0 {
		uid, gid = 0, 0
	}
	prog, err := os.ReadFile(filepath.Join(escapeKit(t), "attack"))
	if err != nil {
		t.Fatal(err)
	}
	suid, fcap := filepath.Join(root, "bin/suid-attack"), filepath.Join(root, "bin/fcap-attack")
	for _, f := range []string{suid, fcap} {
		if err := os.WriteFile(f, prog, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(f, uid, gid)
	}
	if err := unix.Chmod(suid, 0o4755); err != nil { // after chown, which clears the bit
		t.Fatal(err)
	}
	// struct vfs_ns_cap_data, revision 3: its root is the box's root on
	// the host (revision 2, as written by the host's root, would only
	// count where the host's root is mapped).
	caps := make([]byte, 24)
	// Permitted: CAP_KILL and CAP_NET_BIND_SERVICE, in every bounding set
	// here (a file whose effective capabilities exceed it does not run).
	putLE32(caps[0:], 0x03000000|1) // VFS_CAP_REVISION_3 | VFS_CAP_FLAGS_EFFECTIVE
	putLE32(caps[4:], 1<<5|1<<10)   // permitted, low word
	putLE32(caps[20:], uint32(uid)) // rootid
	if err := unix.Setxattr(fcap, "security.capability", caps, 0); err != nil {
		t.Fatalf("set file capabilities: %v", err)
	}
	cmd := []string{"/bin/sh", "-c", "/bin/suid-attack setuid set-user-ID-root; /bin/fcap-attack setuid file-capabilities"}
	return boxSpec{cmd: cmd, root: root, flags: []string{"--user", "1000:1000"},
		edits: []func(*specs.Spec){func(s *specs.Spec) { s.Process.User = specs.User{UID: 1000, GID: 1000} }}}, nil
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

package tests

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The escape suite: attacks on nsbox and on the host, run inside boxes of
// both faces (nsbox run, and OCI bundles), as root and rootless, each under
// the default configuration and under the weakest one that must still hold
// (a wall), with a control that removes the wall and must get through, so
// that a BLOCKED means something. Every attack also checks from outside
// that the host is unchanged. The attacks are in escape/ (see its README):
// shell scripts, and a static Go program, attack, for those that need
// system calls; both are bound read-only at /tmp/escape in every box.

//go:embed escape/*.sh
var escapeScripts embed.FS

const kitInBox = "/tmp/escape"

var (
	kitOnce sync.Once
	kitDir  string
	kitErr  error
)

// escapeKit returns the host directory bound at /tmp/escape in the boxes:
// the scripts, and the attack program built static (the test binary uses
// cgo: it could not run over the busybox root).
func escapeKit(t *testing.T) string {
	t.Helper()
	kitOnce.Do(func() {
		dir := filepath.Join(work, "escape")
		if kitErr = os.MkdirAll(dir, 0o755); kitErr != nil {
			return
		}
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "attack"), "./escape/attack")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			kitErr = fmt.Errorf("build the attack program: %v\n%s", err, out)
			return
		}
		kitErr = fs.WalkDir(escapeScripts, "escape", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := escapeScripts.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o755)
		})
		kitDir = dir
	})
	if kitErr != nil {
		t.Fatal(kitErr)
	}
	return kitDir
}

// script is the command that runs attack script name in a box.
func script(name string, args ...string) []string {
	return append([]string{"/bin/sh", kitInBox + "/" + name + ".sh"}, args...)
}

// program is the command that runs the attack program's attack name.
func program(name string, args ...string) []string {
	return append([]string{kitInBox + "/attack", name}, args...)
}

// place is where an attack runs: a face of nsbox and a user.
type place struct {
	face string // "run" or "oci"
	as   string // "" for root, or a test user
}

var (
	runRoot     = place{"run", ""}
	runRootless = place{"run", userFull}
	ociRoot     = place{"oci", ""}
	ociRootless = place{"oci", userFull}
	everywhere  = []place{runRoot, runRootless, ociRoot, ociRootless}
	runOnly     = []place{runRoot, runRootless}
)

func (p place) String() string {
	if p.as == "" {
		return p.face + "/root"
	}
	return p.face + "/rootless"
}

func (p place) opts() opts { return opts{as: p.as} }

// owner is the host uid and gid of the box's root at p, for the files an
// attack prepares for it (-1: root's, unchanged).
func (p place) owner() (int, int) {
	if u := users[p.as]; u != nil {
		return u.uid, u.gid
	}
	return -1, -1
}

// wall is a configuration that must stop an attack: flags of nsbox run and
// an edit of the OCI config. A wall with places applies there only (a
// capability given to a box without a user namespace of its own is the
// host's: no wall).
type wall struct {
	name   string
	run    []string
	oci    func(*specs.Spec)
	places []place
}

func (w wall) appliesTo(p place) bool {
	if len(w.places) == 0 {
		return true
	}
	for _, q := range w.places {
		if q == p {
			return true
		}
	}
	return false
}

// addCaps gives the OCI box's process capabilities (bounding, effective,
// permitted).
func addCaps(caps ...string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		c := s.Process.Capabilities
		c.Bounding = append(c.Bounding, caps...)
		c.Effective = append(c.Effective, caps...)
		c.Permitted = append(c.Permitted, caps...)
	}
}

// withoutSeccomp drops the OCI config's seccomp profile: `nsbox spec
// --seccomp` computes it for the template's capabilities, so it refuses
// what a capability added afterwards is for (as Docker's would not).
func withoutSeccomp(s *specs.Spec) { s.Linux.Seccomp = nil }

func both(edits ...func(*specs.Spec)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		for _, e := range edits {
			e(s)
		}
	}
}

var (
	defaults     = wall{name: "default"}
	withSysAdmin = wall{name: "cap-add SYS_ADMIN", run: []string{"--cap-add", "SYS_ADMIN"}, oci: both(addCaps("CAP_SYS_ADMIN"), withoutSeccomp),
		places: []place{runRoot, runRootless, ociRootless}}
	withHostIDs = wall{name: "userns=host", run: []string{"--userns=host"}, places: []place{runRoot}}
	// withSysAdminLandlock: CAP_SYS_ADMIN, with Landlock as the second wall.
	withSysAdminLandlock = wall{name: "cap-add SYS_ADMIN landlock", run: []string{"--cap-add", "SYS_ADMIN", "--landlock"},
		places: []place{runRoot, runRootless}}
	// privileged removes every wall but the namespaces, as the host's root
	// (with the capabilities of the caller's bounding set: this machine's
	// root lacks CAP_SYS_RESOURCE, see ENVIRONMENT.md).
	privileged = []string{"--privileged", "--userns=host"}
)

// boxSpec is what an attack needs of its box besides the wall.
type boxSpec struct {
	cmd      []string
	root     string // --rootfs / root.path; "" for the host's root (run) or the busybox root
	hostRoot bool   // run over the host's root (run only)
	env      []string
	flags    []string            // run
	edits    []func(*specs.Spec) // oci
	extra    []*os.File          // descriptors 3, ... of nsbox
}

// attackIn runs the attack b in a box at p behind wall w, in the
// foreground, and returns what nsbox did.
func attackIn(t *testing.T, p place, w wall, b boxSpec) result {
	t.Helper()
	kit := escapeKit(t)
	o := p.opts()
	o.extra = b.extra
	if p.face == "run" {
		args := []string{"run", "--bind", kit + ":" + kitInBox + ":ro"}
		if !b.hostRoot {
			args = append(args, "--rootfs", orDefault(b.root, rootfs))
		}
		for _, e := range b.env {
			args = append(args, "-e", e)
		}
		args = append(append(append(args, w.run...), b.flags...), "--")
		return nsbox(t, o, append(args, b.cmd...)...)
	}
	edits := b.edits
	if w.oci != nil {
		edits = append([]func(*specs.Spec){w.oci}, edits...)
	}
	dir := escapeBundle(t, p, orDefault(b.root, rootfs), b.cmd, b.env, edits...)
	return ociRun(t, o, boxID("escape"), dir)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// escapeBundle makes an OCI bundle for p from `nsbox spec --seccomp` (with
// --rootless for a rootless place): the template a client starts from,
// with the default seccomp profile, over root, running cmd with env, the
// kit at /tmp/escape on a tmpfs /tmp.
func escapeBundle(t *testing.T, p place, root string, cmd, env []string, edits ...func(*specs.Spec)) string {
	t.Helper()
	dir := hostDir(t, work, "escape-bundle-", p)
	args := []string{"spec", "--seccomp", "--bundle", dir}
	if p.as != "" {
		args = append(args, "--rootless")
	}
	ok(t, p.opts(), args...)
	s := readSpec(t, dir)
	s.Root = &specs.Root{Path: root, Readonly: true}
	s.Process.Terminal = false
	s.Process.Args = cmd
	s.Process.Env = append(append(s.Process.Env, marker), env...)
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		specs.Mount{Destination: kitInBox, Type: "bind", Source: escapeKit(t), Options: []string{"bind", "ro"}})
	for _, edit := range edits {
		edit(s)
	}
	writeSpec(t, dir, s)
	return dir
}

// hostDir makes a directory under parent for the box at p (owned by its
// user when rootless), removed when the test ends.
func hostDir(t *testing.T, parent, pattern string, p place) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if uid, gid := p.owner(); uid >= 0 {
		os.Chown(dir, uid, gid)
	}
	return dir
}

// victimDir makes a host directory outside every box that anyone may
// write (so that only the box's walls keep it unchanged), holding a file
// "marker"; removed when the test ends.
func victimDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nsbox-escape-victim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// craftedRoot copies the busybox root for an attack to change, owned by
// the box's root at p; removed when the test ends.
func craftedRoot(t *testing.T, p place) string {
	t.Helper()
	dir := hostDir(t, work, "escape-root-", p)
	if out, err := exec.Command("cp", "-a", rootfs+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy the root: %v: %s", err, out)
	}
	if uid, gid := p.owner(); uid >= 0 {
		if out, err := exec.Command("chown", "-hR", fmt.Sprintf("%d:%d", uid, gid), dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	return dir
}

// tagged returns the lines of out that start with tag.
func tagged(out, tag string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), tag+" ") {
			ls = append(ls, strings.TrimSpace(l))
		}
	}
	return ls
}

// mustHold fails the test unless the attack ran to its end, tried
// something and got nowhere.
func mustHold(t *testing.T, what string, r result) {
	t.Helper()
	out := r.stdout + r.stderr
	if esc := tagged(out, "ESCAPED"); len(esc) > 0 {
		t.Errorf("%s: the attack got through:\n  %s\n%s", what, strings.Join(esc, "\n  "), r)
		return
	}
	blocked := append(append(tagged(out, "BLOCKED"), tagged(out, "CONTROL")...), tagged(out, "INFO")...)
	switch {
	case !strings.Contains(r.stdout, "DONE"):
		t.Errorf("%s: the attack did not run to its end: %s", what, r)
	case len(tagged(out, "BLOCKED")) == 0:
		t.Errorf("%s: the attack reported no attempt: %s", what, r)
	default:
		t.Logf("%s:\n  %s", what, strings.Join(blocked, "\n  "))
	}
}

// mustHoldOrRefuse is mustHold, where nsbox may also refuse to start the
// box, with one line naming why.
func mustHoldOrRefuse(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != 0 && !strings.Contains(r.stdout, "DONE") && len(tagged(r.stdout, "ESCAPED")) == 0 {
		if msg := strings.TrimSpace(r.stderr); msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("%s: nsbox failed without one line of error: %s", what, r)
		}
		t.Logf("%s: refused: %s", what, strings.TrimSpace(r.stderr))
		return
	}
	mustHold(t, what, r)
}

// mustBreak is for the controls: with the wall removed, the attack must
// get through, or it could not tell a wall from its own failure.
func mustBreak(t *testing.T, what string, r result) {
	t.Helper()
	esc := tagged(r.stdout+r.stderr, "ESCAPED")
	if len(esc) == 0 {
		t.Errorf("control %s: the attack should get through without the wall: %s", what, r)
		return
	}
	t.Logf("control %s, as it must:\n  %s", what, strings.Join(esc, "\n  "))
}

// hostState is what the attacks must not change on the host, by name.
type hostState map[string]string

// hostUnchanged records the host's state now, and checks when the test
// ends (after its boxes are gone) that it is the same; dirs are more host
// directories to watch.
func hostUnchanged(t *testing.T, dirs ...string) {
	t.Helper()
	before := snapshotHost(dirs)
	t.Cleanup(func() {
		after := snapshotHost(dirs)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("the host changed: %s:\n%s", k, lineDiff(v, after[k]))
			}
		}
	})
}

// lineDiff shows the lines of b that are not in a (+) and the other way
// round (-).
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d []string
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			d = append(d, "  + "+l)
		}
	}
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			d = append(d, "  - "+l)
		}
	}
	return strings.Join(d, "\n")
}

func snapshotHost(dirs []string) hostState {
	s := hostState{
		"sha256 of the nsbox binary":    fileSum(bin),
		"core_pattern":                  readTrim("/proc/sys/kernel/core_pattern"),
		"sysrq lines in the kernel log": strconv.Itoa(sysrqLines()),
	}
	agents, _ := filepath.Glob("/sys/fs/cgroup/*/release_agent")
	for _, a := range agents {
		s[a] = readTrim(a)
	}
	for _, d := range append([]string{"/var/tmp", "/dev/shm"}, dirs...) {
		s["listing of "+d] = listing(d)
	}
	return s
}

func fileSum(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// listing describes a directory tree: names, modes, sizes and contents.
func listing(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p, err)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %v %d", p, info.Mode(), info.Size())
		if info.Mode().IsRegular() && info.Size() < 1<<20 {
			fmt.Fprintf(&b, " %s", fileSum(p))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

// sysrqLines counts the kernel log's lines of sysrq's help, which writing
// "h" to /proc/sysrq-trigger prints.
func sysrqLines() int {
	out, _ := exec.Command("dmesg").Output()
	return bytes.Count(out, []byte("sysrq: HELP"))
}

// keepHostKnobs restores, when the test ends, the host settings an attack
// that got through may have changed.
func keepHostKnobs(t *testing.T) {
	files := []string{"/proc/sys/kernel/core_pattern", "/proc/sys/dev/tty/legacy_tiocsti"}
	agents, _ := filepath.Glob("/sys/fs/cgroup/*/release_agent")
	files = append(files, agents...)
	saved := map[string][]byte{}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			saved[f] = b
		}
	}
	t.Cleanup(func() {
		for f, b := range saved {
			if now, _ := os.ReadFile(f); !bytes.Equal(now, b) {
				if len(bytes.TrimSpace(b)) == 0 {
					b = []byte("\n")
				}
				os.WriteFile(f, b, 0o644)
			}
		}
	})
}

// attack is one entry of the suite.
type attack struct {
	name string // the technique or CVE, as the subtest's name
	test func(t *testing.T)
}

// TestEscape runs every attack of the suite.
func TestEscape(t *testing.T) {
	requireRoot(t)
	keepHostKnobs(t)
	escapeKit(t)
	// The shared busybox root is only read: mount targets go to copies.
	shared := listing(rootfs)
	t.Cleanup(func() {
		if now := listing(rootfs); now != shared {
			t.Errorf("the attacks changed the shared root %s:\n%s", rootfs, lineDiff(shared, now))
		}
	})
	for _, a := range escapeAttacks() {
		t.Run(a.name, a.test)
	}
}

// scripted is an attack run once per place and wall, each of which must
// stop it, and once as root in a control box without the wall, which must
// not.
type scripted struct {
	places []place
	walls  []wall
	// prepare returns the box the attack needs at p (control: for the
	// control) and the host directories it must leave unchanged.
	prepare func(t *testing.T, p place, control bool) (boxSpec, []string)
	control *wall // runs at its first place (default: run as root)
}

func (a scripted) test(t *testing.T) {
	for _, p := range a.places {
		for _, w := range a.walls {
			if !w.appliesTo(p) {
				continue
			}
			name := strings.ReplaceAll(p.String(), "/", "-") + "-" + strings.ReplaceAll(w.name, " ", "-")
			t.Run(name, func(t *testing.T) {
				b, watch := a.prepare(t, p, false)
				hostUnchanged(t, watch...)
				mustHold(t, fmt.Sprintf("%s behind %q", p, w.name), attackIn(t, p, w, b))
			})
		}
	}
	if a.control == nil {
		return
	}
	p := runRoot
	if len(a.control.places) > 0 {
		p = a.control.places[0]
	}
	t.Run("control", func(t *testing.T) {
		b, _ := a.prepare(t, p, true)
		mustBreak(t, fmt.Sprintf("%s with %s", p, a.control.name), attackIn(t, p, *a.control, b))
	})
}

// needs skips test, loudly, on a kernel without the feature that makes
// path.
func needs(path, feature string, test func(*testing.T)) func(*testing.T) {
	return func(t *testing.T) {
		if _, err := os.Stat(path); err != nil {
			t.Skipf("SKIPPED: this kernel has no %s (%s): nothing to attack", path, feature)
		}
		test(t)
	}
}

// just is a prepare for an attack that needs nothing but its command.
func just(cmd []string) func(*testing.T, place, bool) (boxSpec, []string) {
	return func(*testing.T, place, bool) (boxSpec, []string) { return boxSpec{cmd: cmd}, nil }
}

package tests

import (
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

// Attacks that come with the image or the terminal: crafted roots, the console, mount races, sysctls, TIOCSTI.

// withoutDev drops the OCI config's tmpfs on /dev: the image's own /dev
// is the box's, and the devices and links nsbox would make in it are not.
func withoutDev(s *specs.Spec) {
	var keep []specs.Mount
	for _, m := range s.Mounts {
		if m.Destination != "/dev" {
			keep = append(keep, m)
		}
	}
	s.Mounts = keep
}

// symlink replaces path (in a crafted root) with a symbolic link to target.
func symlink(t *testing.T, target, path string) {
	t.Helper()
	os.RemoveAll(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// testCraftedRoots: images whose /dev, /dev/null, /dev/pts, /proc, /sys
// or mount targets are symbolic links to the host (absolute, or climbing
// with ..) or to the host's core_pattern: nsbox resolves every path inside
// the box's root, takes what masks files from the host, and wants real
// directories under proc and sysfs. The box may refuse to start, with one
// line of error; it may not create, mount or write anything outside its
// root (the victim directory, the host's core_pattern).
func testCraftedRoots(t *testing.T) {
	const corePattern = "/proc/sys/kernel/core_pattern"
	climb := strings.Repeat("../", 12)
	cases := []struct {
		name  string
		craft func(t *testing.T, root, victim string)
		flags []string              // run
		edits []func(*specs.Spec)   // oci
		mount func(p place) boxSpec // mounts onto the crafted targets
	}{
		{name: "cve-2025-31133-dev-null-to-core-pattern",
			craft: func(t *testing.T, root, _ string) { symlink(t, corePattern, root+"/dev/null") },
			edits: []func(*specs.Spec){withoutDev}},
		{name: "dev-null-to-a-host-file",
			craft: func(t *testing.T, root, victim string) { symlink(t, victim+"/marker", root+"/dev/null") },
			edits: []func(*specs.Spec){withoutDev}},
		{name: "dev-to-a-host-directory",
			craft: func(t *testing.T, root, victim string) { symlink(t, victim, root+"/dev") }},
		{name: "dev-climbing-to-a-host-directory",
			craft: func(t *testing.T, root, victim string) {
				symlink(t, climb+strings.TrimPrefix(victim, "/"), root+"/dev")
			}},
		{name: "cve-2025-52565-dev-pts-to-a-host-directory",
			craft: func(t *testing.T, root, victim string) {
				os.MkdirAll(root+"/dev", 0o755)
				symlink(t, victim, root+"/dev/pts")
				symlink(t, corePattern, root+"/dev/console")
			},
			edits: []func(*specs.Spec){withoutDev}},
		{name: "cve-2019-19921-proc-to-a-host-directory",
			craft: func(t *testing.T, root, victim string) { symlink(t, victim, root+"/proc") }},
		{name: "sys-to-a-host-directory",
			craft: func(t *testing.T, root, victim string) { symlink(t, victim, root+"/sys") }},
		{name: "cve-2021-30465-mount-targets-to-a-host-directory",
			craft: func(t *testing.T, root, victim string) {
				symlink(t, victim, root+"/mnt")
				symlink(t, climb+strings.TrimPrefix(victim, "/"), root+"/root")
			},
			mount: func(p place) boxSpec {
				src := hostDir(t, work, "escape-src-", p)
				os.WriteFile(src+"/file", []byte("src\n"), 0o644)
				return boxSpec{
					flags: []string{"--bind", src + ":/mnt/sub", "--bind", src + "/file:/root/file", "--tmpfs", "/mnt/tmp"},
					edits: []func(*specs.Spec){withBind(src, "/mnt/sub"), withBind(src+"/file", "/root/file"), func(s *specs.Spec) {
						s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/tmp", Type: "tmpfs", Source: "tmpfs"})
					}},
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range everywhere {
				t.Run(strings.ReplaceAll(p.String(), "/", "-"), func(t *testing.T) {
					victim := victimDir(t)
					hostUnchanged(t, victim)
					root := craftedRoot(t, p)
					c.craft(t, root, victim)
					b := boxSpec{cmd: script("dev"), root: root, edits: c.edits}
					if c.mount != nil {
						m := c.mount(p)
						b.flags, b.edits = append(b.flags, m.flags...), append(b.edits, m.edits...)
					}
					if p.face == "run" {
						b.flags = append(b.flags, "-e", "DEV=1") // /dev is always nsbox's tmpfs
					}
					mustHoldOrRefuse(t, p.String(), attackIn(t, p, defaults, b))
				})
			}
		})
	}
}

// testConsole: CVE-2025-52565 (runc bound /dev/pts/N onto /dev/console
// through paths an image could redirect): an image whose /dev/console and
// /dev/pts are links to the host's core_pattern and a host directory, run
// with a terminal (as root: a console socket and a pty the test owns).
// /dev/console must be the box's terminal.
func testConsole(t *testing.T) {
	craft := func(t *testing.T) (string, string) {
		victim := victimDir(t)
		hostUnchanged(t, victim)
		root := craftedRoot(t, runRoot)
		symlink(t, "/proc/sys/kernel/core_pattern", root+"/dev/console")
		symlink(t, victim, root+"/dev/pts")
		return root, victim
	}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		out = strings.ReplaceAll(out, "\r", "")
		mustHold(t, what, result{stdout: out})
		if !strings.Contains(out, "BLOCKED /dev/console: a terminal") {
			t.Errorf("%s: /dev/console is not the box's terminal:\n%s", what, out)
		}
	}
	t.Run("run-root", func(t *testing.T) {
		root, _ := craft(t)
		args := []string{"run", "--rootfs", root, "--bind", escapeKit(t) + ":" + kitInBox + ":ro", "-e", "DEV=1", "--"}
		term := startTerminal(t, append(args, script("dev")...)...)
		term.expect("DONE")
		term.wait()
		term.mu.Lock()
		defer term.mu.Unlock()
		check(t, "run/root with a terminal", term.out.String())
	})
	t.Run("oci-root", func(t *testing.T) {
		root, _ := craft(t)
		sock, got := consoleSocket(t)
		id := boxID("escape")
		dir := escapeBundle(t, ociRoot, root, script("dev"), []string{"DEV=1"}, func(s *specs.Spec) { s.Process.Terminal = true })
		ociCreate(t, opts{}, id, dir, "--console-socket", sock)
		console := readConsole(t, got)
		ok(t, opts{}, "start", id)
		console.expect(t, "DONE")
		console.mu.Lock()
		defer console.mu.Unlock()
		check(t, "oci/root with a terminal", console.buf.String())
	})
}

// testMountRace: CVE-2024-45310 (runc created files and directories on the
// host through a mount target another container swapped for a symbolic
// link while runc resolved it): one box swaps x, in a volume it shares
// with the next boxes, between a directory and a link to a host directory,
// while boxes are started with mounts beneath x. Nothing may appear in the
// host directory.
func testMountRace(t *testing.T) {
	for _, p := range runOnly {
		t.Run(strings.ReplaceAll(p.String(), "/", "-"), func(t *testing.T) {
			victim := victimDir(t)
			hostUnchanged(t, victim)
			vol, src := hostDir(t, work, "escape-vol-", p), hostDir(t, work, "escape-src-", p)
			os.Chmod(vol, 0o777)
			os.WriteFile(src+"/file", []byte("src\n"), 0o644)
			swap := fmt.Sprintf("while :; do rm -rf /tmp/vol/x; mkdir /tmp/vol/x; rm -rf /tmp/vol/x; ln -s %s /tmp/vol/x; done", victim)
			detached(t, p, defaults, boxSpec{cmd: []string{"/bin/sh", "-c", swap}, flags: []string{"--bind", vol + ":/tmp/vol"}})
			o := p.opts()
			outcomes := map[string]int{}
			for i := 0; i < 20; i++ {
				r := nsbox(t, o, "run", "--rootfs", rootfs, "--bind", vol+":/tmp/data", "--bind", src+":/tmp/data/x/sub",
					"--bind", src+"/file:/tmp/data/x/file", "--tmpfs", "/tmp/data/x/tmp", "--", "true")
				outcomes[strings.TrimSpace(r.stderr)]++
			}
			t.Logf("outcomes of the boxes started meanwhile: %v", outcomes)
		})
	}
}

// testSysctlRedirect: CVE-2025-52881 (runc's writes to /proc, such as
// sysctls, could be redirected by mounts to other procfs files): an OCI
// config binds the host's /proc/sys/kernel over the box's
// /proc/sys/net/unix, then asks for sysctl net.unix.core_pattern; and one
// that asks for the sysctl kernel.core_pattern, which no namespace
// confines (runc refuses it). The host's core_pattern must not change.
func testSysctlRedirect(t *testing.T) {
	cases := []struct {
		name string
		edit func(*specs.Spec)
	}{
		{"bind-over-proc-sys", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/sys/net/unix", Type: "bind", Source: "/proc/sys/kernel", Options: []string{"bind"}})
			s.Linux.Sysctl = map[string]string{"net.unix.core_pattern": "core.nsbox-escape"}
		}},
		{"host-wide-sysctl", func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"kernel.core_pattern": "core.nsbox-escape"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hostUnchanged(t)
			r := attackIn(t, ociRoot, defaults, boxSpec{cmd: script("core-pattern"), edits: []func(*specs.Spec){c.edit}})
			mustHoldOrRefuse(t, c.name, r)
		})
	}
}

// testTIOCSTI: bubblewrap's CVE-2017-5226 (see escape/attack/tiocsti.go):
// nsbox runs as from an interactive shell, its standard streams on a
// terminal that is its controlling terminal; the box pushes a command into
// that terminal's input. nsbox gives the box a terminal of its own (-t,
// the default on a terminal) or a session of its own without one
// (--tty=false, and the OCI face with terminal false), so the ioctl fails
// or types into the box's own terminal, and nothing reaches the caller's.
// dev.tty.legacy_tiocsti (Linux 6.2) is set to 1 for the test, so that the
// kernel's own refusal is not what stops it. The control shares the host's
// user namespace with CAP_SYS_ADMIN, for which the kernel lets TIOCSTI
// through on any terminal.
func testTIOCSTI(t *testing.T) {
	const knob = "/proc/sys/dev/tty/legacy_tiocsti"
	if b, err := os.ReadFile(knob); err == nil && strings.TrimSpace(string(b)) == "0" {
		// keepHostKnobs restores it.
		if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
			t.Fatalf("enable %s: %v", knob, err)
		}
	}
	const typed = "echo nsbox-escape\n"
	cases := []struct {
		name    string
		p       place
		args    []string // nsbox's, before the command
		own     bool     // the box has a terminal of its own
		control bool
	}{
		{"run-root-own-terminal", runRoot, []string{"run", "--rootfs", rootfs}, true, false},
		{"run-root-no-terminal", runRoot, []string{"run", "--tty=false", "--rootfs", rootfs}, false, false},
		{"run-rootless-own-terminal", runRootless, []string{"run", "--rootfs", rootfs}, true, false},
		{"run-rootless-no-terminal", runRootless, []string{"run", "--tty=false", "--rootfs", rootfs}, false, false},
		{"oci-root-no-terminal", ociRoot, nil, false, false},
		{"oci-rootless-no-terminal", ociRootless, nil, false, false},
		{"control", runRoot, append([]string{"run", "--tty=false", "--rootfs", rootfs}, privileged...), false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kit := escapeKit(t)
			cmd := program("tiocsti", typed)
			args := c.args
			if c.p.face == "oci" {
				id := boxID("escape")
				args = []string{"run", "--bundle", escapeBundle(t, c.p, rootfs, cmd, nil), id}
				removeAtEnd(t, c.p.opts(), id)
			} else {
				args = append(append(append([]string{}, args...), "--bind", kit+":"+kitInBox+":ro", "--"), cmd...)
			}
			out, queued := onTerminal(t, c.p, args...)
			what := c.name
			if c.control {
				what = "run/root " + strings.Join(c.args[3:], " ") // the flags after --rootfs DIR
			}
			switch {
			case c.control:
				mustBreak(t, what, result{stdout: out})
				if !strings.Contains(queued, "nsbox-escape") {
					t.Errorf("control: the terminal's input holds %q, want what the box typed", queued)
				}
			case c.own:
				// Typed into its own terminal, read by nobody: harmless.
				if !strings.Contains(out, "DONE") {
					t.Errorf("%s: the attack did not run to its end:\n%s", what, out)
				}
				t.Logf("%s (typing into the box's own terminal):\n%s", what, out)
			default:
				mustHold(t, what, result{stdout: out})
			}
			if !c.control && queued != "" {
				t.Errorf("%s: the box typed into the caller's terminal: %q", what, queued)
			}
		})
	}
}

// onTerminal runs nsbox with args as user p.as on a new pty, as from an
// interactive shell (the pty is nsbox's controlling terminal and its
// standard streams), and returns what it wrote and the input that waits on
// the pty once it has exited.
func onTerminal(t *testing.T, p place, args ...string) (out, queued string) {
	t.Helper()
	root := stateRoot
	cmd := exec.Command(bin)
	if u := users[p.as]; u != nil {
		// setpriv keeps the session and terminal startTerminalCmd gives it.
		root = filepath.Join(work, "state-"+p.as)
		ensureState(t, root, u)
		cmd = exec.Command("setpriv", "--reuid", strconv.Itoa(u.uid), "--regid", strconv.Itoa(u.gid), "--clear-groups", bin)
		cmd.Env = append(cmd.Env, "HOME="+u.home, "USER="+u.name, "XDG_RUNTIME_DIR=")
		cmd.Dir = "/"
	}
	cmd.Args = append(append(cmd.Args, "--root", root), args...)
	cmd.Env = append(append(os.Environ(), marker, "TERM=dumb"), cmd.Env...)
	term := startTerminalCmd(t, cmd)
	term.expect("DONE")
	term.wait()
	// What waits in the pty's input, as the caller's shell would read it.
	fd, _, e := unix.Syscall(unix.SYS_IOCTL, term.master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if e != 0 {
		t.Fatalf("open the terminal: %v", e)
	}
	defer unix.Close(int(fd))
	in := make([]byte, 4096)
	n, _ := unix.Read(int(fd), in)
	term.mu.Lock()
	defer term.mu.Unlock()
	return strings.ReplaceAll(term.out.String(), "\r", ""), string(in[:max(n, 0)])
}

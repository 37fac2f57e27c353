package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Attacks that race nsbox exec: the runtime binary, its processes, leaked descriptors.

// detached starts the box of attack b at p behind w in the background
// (run -d, or OCI create and start) and returns its id; it is removed when
// the test ends.
func detached(t *testing.T, p place, w wall, b boxSpec) string {
	t.Helper()
	kit := escapeKit(t)
	o := p.opts()
	o.files = true
	id := boxID("escape")
	if p.face == "run" {
		args := []string{"run", "-d", "--name", id, "--rootfs", orDefault(b.root, rootfs), "--bind", kit + ":" + kitInBox + ":ro"}
		for _, e := range b.env {
			args = append(args, "-e", e)
		}
		args = append(append(append(args, w.run...), b.flags...), "--")
		ok(t, o, append(args, b.cmd...)...)
		t.Cleanup(func() { nsbox(t, o, "delete", "--force", id) })
		return id
	}
	edits := b.edits
	if w.oci != nil {
		edits = append([]func(*specs.Spec){w.oci}, edits...)
	}
	ociCreate(t, o, id, escapeBundle(t, p, orDefault(b.root, rootfs), b.cmd, b.env, edits...))
	ok(t, o, "start", id)
	return id
}

// withShare binds host directory dir read-write at /tmp/share in the box.
func withShare(b boxSpec, dir string) boxSpec {
	b.flags = append(b.flags, "--bind", dir+":/tmp/share")
	b.edits = append(b.edits, withBind(dir, "/tmp/share"))
	return b
}

var withSysPtrace = wall{name: "cap-add SYS_PTRACE", run: []string{"--cap-add", "SYS_PTRACE"},
	oci: both(addCaps("CAP_SYS_PTRACE"), withoutSeccomp), places: []place{runRoot, runRootless, ociRootless}}

// execRace runs the attack program's watcher mode in a box at p behind w
// while the test starts processes in it with nsbox exec (cmds), and
// returns its report.
func execRace(t *testing.T, p place, w wall, mode string, args []string, cmds [][]string) result {
	t.Helper()
	share := hostDir(t, work, "escape-share-", p)
	os.Chmod(share, 0o777)
	key, err := fileKeyOf(bin)
	if err != nil {
		t.Fatal(err)
	}
	id := detached(t, p, w, withShare(boxSpec{cmd: program(mode, append([]string{"/tmp/share", key}, args...)...)}, share))
	waitFile(t, filepath.Join(share, "ready"))
	o := p.opts()
	o.env = []string{"NSBOX_ESCAPE_HOSTONLY=1"} // in nsbox's environment, not the box's
	for _, c := range cmds {
		if r := nsbox(t, o, append([]string{"exec", id}, c...)...); r.code != 0 && c[0] != "/tmp/evil" {
			t.Logf("exec %v: %s", c, r)
		}
	}
	if err := os.WriteFile(filepath.Join(share, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return result{stdout: waitFile(t, filepath.Join(share, "report"))}
}

func fileKeyOf(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// caught checks that a watcher caught processes of nsbox exec before they
// ran their command: otherwise its BLOCKED would prove nothing.
func caught(t *testing.T, what string, r result) {
	t.Helper()
	m := regexp.MustCompile(`caught=(\d+)`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] == "0" {
		t.Errorf("%s: the watcher never caught a process of nsbox exec before its command ran: it proves nothing\n%s", what, r.stdout)
	}
}

// runs repeats cmd n times.
func runs(n int, cmd ...string) [][]string {
	var cs [][]string
	for i := 0; i < n; i++ {
		cs = append(cs, cmd)
	}
	return cs
}

// raceWalls are the configurations the attacks on nsbox exec run behind:
// the default; the box's root sharing the host's ids (nsbox then runs
// commands through a sealed trampoline); CAP_SYS_PTRACE (which reaches
// processes of other ids, but not undumpable ones).
var raceWalls = []wall{defaults, withHostIDs, withSysPtrace}

// raceAttack runs watcher mode at every place behind raceWalls while the
// test runs cmds with nsbox exec; args gives the mode's arguments at p.
// Beyond holding, the watcher must have caught processes of nsbox exec
// before their command, and reported its CONTROL (the technique works on
// the box's own processes): control says what that is.
func raceAttack(t *testing.T, mode string, args func(place) []string, cmds [][]string, control string) {
	for _, p := range everywhere {
		for _, w := range raceWalls {
			if !w.appliesTo(p) {
				continue
			}
			t.Run(strings.ReplaceAll(p.String(), "/", "-")+"-"+strings.ReplaceAll(w.name, " ", "-"), func(t *testing.T) {
				hostUnchanged(t)
				what := fmt.Sprintf("%s behind %q", p, w.name)
				r := execRace(t, p, w, mode, args(p), cmds)
				mustHold(t, what, r)
				caught(t, what, r)
				if len(tagged(r.stdout, "CONTROL")) == 0 {
					t.Errorf("%s: control: %s never happened: the attack could not tell a wall from its own failure\n%s", what, control, r.stdout)
				}
			})
		}
	}
}

// testExeOverwrite: CVE-2019-5736 (see escape/attack/exe.go).
func testExeOverwrite(t *testing.T) {
	cmds := append(runs(12, "/bin/true"), runs(4, "/tmp/evil")...)
	cmds = append(cmds, runs(3, "/tmp/sleep", "0.3")...)
	raceAttack(t, "exe-overwrite", func(place) []string { return nil }, cmds,
		"reopening /tmp/sleep, the box's own, for writing after its process ended")
}

// testPtraceRuntime: CVE-2016-9962 (see escape/attack/ptrace.go): the
// box's init (run) and the processes of nsbox exec before their command.
func testPtraceRuntime(t *testing.T) {
	marker := filepath.Join(victimDir(t), "marker")
	args := func(p place) []string {
		if p.face == "run" {
			return []string{marker, "init"} // PID 1 is nsbox's init
		}
		return []string{marker}
	}
	raceAttack(t, "ptrace", args, runs(40, "/bin/true"), "attaching to a command of the box")
}

// testLeakedFDs: CVE-2024-21626 (see escape/attack/fds.go): the descriptors a
// box's process starts with, and a working directory on each descriptor
// nsbox may hold while it sets the process up (--workdir, process.cwd,
// exec --cwd), at every place. The control holds a descriptor of a host
// directory on purpose (--preserve-fds, allowed by design without
// --landlock) and walks out through it.
func testLeakedFDs(t *testing.T) {
	victim := victimDir(t)
	attack := program("fds", filepath.Join(victim, "marker"))
	for _, p := range everywhere {
		t.Run(strings.ReplaceAll(p.String(), "/", "-"), func(t *testing.T) {
			hostUnchanged(t, victim)
			mustHold(t, p.String()+": the first process", attackIn(t, p, defaults, boxSpec{cmd: attack}))
			id := detached(t, p, defaults, boxSpec{cmd: []string{"sleep", "600"}})
			o := p.opts()
			exec := append([]string{"exec", id}, attack...)
			mustHold(t, p.String()+": nsbox exec", nsbox(t, o, exec...))
			for fd := 3; fd <= 12; fd++ {
				cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
				b := boxSpec{cmd: attack, flags: []string{"--workdir", cwd},
					edits: []func(*specs.Spec){func(s *specs.Spec) { s.Process.Cwd = cwd }}}
				mustHoldOrRefuse(t, p.String()+": working directory "+cwd, attackIn(t, p, defaults, b))
				exec := append([]string{"exec", "--cwd", cwd, id}, attack...)
				mustHoldOrRefuse(t, p.String()+": nsbox exec --cwd "+cwd, nsbox(t, o, exec...))
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		dir, err := os.Open(victim)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		b := boxSpec{cmd: []string{"/bin/sh", "-c", "cd /proc/self/fd/3 && exec " + strings.Join(attack, " ")},
			flags: []string{"--preserve-fds", "1"}, extra: []*os.File{dir}}
		mustBreak(t, "a descriptor of a host directory given with --preserve-fds", attackIn(t, runRoot, defaults, b))
	})
}

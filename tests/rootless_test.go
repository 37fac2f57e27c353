package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRootlessFullRange(t *testing.T) {
	requireRoot(t) // to create the user; the box itself runs unprivileged
	u := users[userFull]
	o := opts{as: userFull}
	out := inBox(t, o, "id -u; cat /proc/self/uid_map /proc/self/gid_map; hostname; cat /sys/class/net/lo/operstate", "--hostname", "rl")
	want := fmt.Sprintf("0\n0 %d 1\n1 3000000 65536\n0 %d 1\n1 3000000 65536\nrl\nunknown\n", u.uid, u.gid)
	if got := normalize(out); got != want {
		t.Errorf("inside:\n%s\nwant:\n%s", got, want)
	}
	got := nsInside(t, o)
	for _, n := range nsNames {
		if got[n] == hostNS(t, n) {
			t.Errorf("rootless %s namespace is the host's", n)
		}
	}
	// A second user inside the box maps to a subordinate id.
	out = inBox(t, o, "id -u", "--user", "1000:1000")
	if strings.TrimSpace(out) != "1000" {
		t.Errorf("--user 1000 inside: %q", out)
	}
}

func TestRootlessSingleID(t *testing.T) {
	requireRoot(t)
	u := users[userSingle]
	o := opts{as: userSingle}
	out := inBox(t, o, "id -u; cat /proc/self/uid_map /proc/self/setgroups")
	want := fmt.Sprintf("0\n0 %d 1\ndeny\n", u.uid)
	if got := normalize(out); got != want {
		t.Errorf("inside:\n%s\nwant:\n%s", got, want)
	}
	r := nsbox(t, o, "run", "--rootfs", rootfs, "--user", "1000", "--", "/bin/true")
	if r.code != 125 || !strings.Contains(r.stderr, "does not exist in the box") {
		t.Errorf("a user beyond the single mapped id: %s", r)
	}
}

func TestRootlessHostRootAndBinds(t *testing.T) {
	requireRoot(t)
	u := users[userFull]
	dir := filepath.Join(work, "rootless-bind")
	os.Mkdir(dir, 0o700)
	os.Chown(dir, u.uid, u.gid)
	t.Cleanup(func() { os.RemoveAll(dir) })
	o := opts{as: userFull}
	r := nsbox(t, o, "run", "--bind", dir+":/mnt", "--", "/bin/sh", "-c", "echo x > /mnt/f; cat /etc/shadow")
	if r.code == 0 || !strings.Contains(r.stderr, "ermission denied") {
		t.Errorf("rootless box read /etc/shadow: %s", r)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "f"), &st); err != nil {
		t.Fatalf("file written through the bind: %v", err)
	}
	if int(st.Uid) != u.uid {
		t.Errorf("file written by the box's root belongs to %d, want the caller %d", st.Uid, u.uid)
	}
}

func TestRootlessBadMaps(t *testing.T) {
	requireRoot(t)
	o := opts{as: userFull}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--userns", "0:0:1"}, "neither yours"},
		{[]string{"--userns", "0:4000000:10"}, "subordinate ranges (3000000-3065535)"},
		{[]string{"--userns=host"}, "needs root"},
		{[]string{"--share", "user"}, "needs root"},
	} {
		args := append([]string{"run"}, c.args...)
		r := nsbox(t, o, append(args, "--", "/bin/true")...)
		if r.code != 125 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: want exit 125 with %q; got %s", c.args, c.want, r)
		}
	}
	out := inBox(t, o, "cat /proc/self/uid_map", "--userns", fmt.Sprintf("0:%d:1,1:3000000:100", users[userFull].uid))
	if !strings.Contains(normalize(out), "1 3000000 100") {
		t.Errorf("explicit rootless maps: %q", out)
	}
}

func normalize(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestRootlessExecAndPs: an unprivileged user's exec enters the box (its
// init, a copy of nsbox, is undumpable and out of the user's reach: exec
// goes through the init's command), for a box with and without init.
func TestRootlessExecAndPs(t *testing.T) {
	requireRoot(t)
	for _, who := range []string{userFull, userSingle} {
		o := opts{as: who, files: true}
		for _, flags := range [][]string{nil, {"--no-init"}} {
			name := fmt.Sprintf("rlexec-%s-%d", who, len(flags))
			args := append([]string{"run", "-d", "--name", name, "--rootfs", rootfs}, flags...)
			ok(t, o, append(args, "--", "sleep", "600")...)
			t.Cleanup(func() { nsbox(t, o, "delete", "--force", name) })
			// The box's sleep is a process of the pid namespace exec is in.
			out := ok(t, o, "exec", name, "/bin/sh", "-c", "id -u; readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; ps -o args | grep -c '^sleep 600'")
			f := strings.Fields(out)
			if len(f) != 4 || f[0] != "0" || f[1] == hostNS(t, "pid") || f[2] == hostNS(t, "mnt") || f[3] != "1" {
				t.Errorf("%s %v: exec saw %q; want root in the box's own pid and mount namespaces", who, flags, out)
			}
			if ps := ok(t, o, "ps", name); !strings.Contains(ps, "sleep 600") {
				t.Errorf("%s %v: ps: %q", who, flags, ps)
			}
		}
	}
}

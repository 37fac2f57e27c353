package main

import (
	"strings"
	"testing"
	"time"
)

func TestFlagSet(t *testing.T) {
	var f runFlags
	fs := runFlagSet(&f)
	pos, rest, dd, err := fs.parse([]string{"-dt=false", "--bind", "/a:/b", "--bind=/c:/d:ro", "-e", "A=1", "-eB=2", "--name", "x", "--", "sh", "-c", "--bind"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 0 || !dd || strings.Join(rest, " ") != "sh -c --bind" {
		t.Errorf("pos %v rest %v dd %v", pos, rest, dd)
	}
	if !f.detach || f.tty != "false" || len(f.binds) != 2 || strings.Join(f.env, ",") != "A=1,B=2" || f.name != "x" {
		t.Errorf("flags %+v", f)
	}
	for _, bad := range [][]string{{"--nope"}, {"-Q"}, {"--name"}, {"--detach=maybe"}, {"--preserve-fds", "x"}} {
		var f runFlags
		if _, _, _, err := runFlagSet(&f).parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	var g runFlags
	if _, _, _, err := runFlagSet(&g).parse([]string{"--help"}); err != errHelp {
		t.Errorf("--help: %v", err)
	}
	pos, _, dd, _ = runFlagSet(&g).parse([]string{"--bundle", "/b", "myid"})
	if dd || len(pos) != 1 || pos[0] != "myid" || g.oci.bundle != "/b" {
		t.Errorf("OCI form: %v %v %+v", pos, dd, g)
	}
}

func TestParseHelpers(t *testing.T) {
	if uid, gid, err := parseUser("1000:100"); err != nil || uid != 1000 || gid != 100 {
		t.Errorf("parseUser: %d %d %v", uid, gid, err)
	}
	if uid, gid, _ := parseUser("7"); uid != 7 || gid != 7 {
		t.Errorf("parseUser(7): %d %d", uid, gid)
	}
	if _, _, err := parseUser("bob"); err == nil {
		t.Error("parseUser(bob) accepted")
	}
	m, b, err := parseTimeOffsets("monotonic=86400,boottime=-1h")
	if err != nil || m != 86400*time.Second || b != -time.Hour {
		t.Errorf("parseTimeOffsets: %v %v %v", m, b, err)
	}
	for _, bad := range []string{"monotonic", "realtime=5", "boottime=x", "monotonic=99999999999999"} {
		if _, _, err := parseTimeOffsets(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if src, dst, ro, err := parseBind("/tmp:/x:ro"); err != nil || src != "/tmp" || dst != "/x" || !ro {
		t.Errorf("parseBind: %s %s %v %v", src, dst, ro, err)
	}
	for _, bad := range []string{"/tmp", "/tmp:/x:rx", "/tmp:x", ":/x"} {
		if _, _, _, err := parseBind(bad); err == nil {
			t.Errorf("parseBind(%s) accepted", bad)
		}
	}
	for in, want := range map[string]int{"TERM": 15, "SIGKILL": 9, "9": 9, "usr1": 10} {
		if s, err := parseSignal(in); err != nil || int(s) != want {
			t.Errorf("parseSignal(%s) = %d %v", in, s, err)
		}
	}
	for _, bad := range []string{"SIGNOPE", "0", "65"} {
		if _, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%s) accepted", bad)
		}
	}
}

func TestSpecFromFlags(t *testing.T) {
	f := runFlags{share: []string{"net,ipc"}, hostname: "h", env: []string{"X=1"}, user: "5:6", tmpfs: []string{"/scratch"}}
	s, err := specFromFlags(&f, []string{"true"}, "id1")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, ns := range s.Linux.Namespaces {
		types[string(ns.Type)] = true
	}
	if types["network"] || types["ipc"] || !types["pid"] || !types["user"] || !types["mount"] {
		t.Errorf("namespaces %v", types)
	}
	if s.Hostname != "h" || s.Process.User.UID != 5 || s.Process.User.GID != 6 || s.Root.Path != "/" || !s.Root.Readonly {
		t.Errorf("spec %+v %+v", s.Process.User, s.Root)
	}
	if last := s.Mounts[len(s.Mounts)-1]; last.Destination != "/scratch" || last.Type != "tmpfs" {
		t.Errorf("tmpfs: %+v", last)
	}
	// Conflicts the user must hear about.
	for _, bad := range []runFlags{
		{share: []string{"uts"}, hostname: "h"},
		{share: []string{"mnt"}, tmpfs: []string{"/x"}},
		{share: []string{"net"}, join: []string{"net=/proc/self/ns/net"}},
		{usernsMode: "host", join: []string{"user=/proc/self/ns/user"}},
		{readOnly: true},
	} {
		if _, err := specFromFlags(&bad, []string{"true"}, "id"); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

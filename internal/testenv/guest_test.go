package testenv

import (
	"cmp"
	"reflect"
	"strings"
	"testing"
)

func TestParseGuestConsole(t *testing.T) {
	console := strings.ReplaceAll(`SeaBIOS noise
NSBOX-GUEST-CONTROLLERS cpuset cpu io memory hugetlb pids rdma misc
NSBOX-GUEST-BEGIN one
=== RUN   TestA
--- PASS: TestA (0.01s)
=== RUN   TestB
=== RUN   TestB/sub
    b_test.go:10: got 1, want 2
--- FAIL: TestB (0.02s)
    --- FAIL: TestB/sub (0.01s)
=== RUN   TestC
    c_test.go:3: not here
--- SKIP: TestC (0.00s)
FAIL
NSBOX-GUEST-RESULT one 1
last kernel messages:
[    1.0] oops
NSBOX-GUEST-BEGIN two
=== RUN   TestD
panic: boom
`, "\n", "\r\n")
	rep := ParseGuestConsole(console)
	if rep.SetupFailed != "" || len(rep.Boot) != 2 || rep.Boot[0] != "SeaBIOS noise" {
		t.Errorf("set-up: %q, boot lines %q", rep.SetupFailed, rep.Boot)
	}
	if rep := ParseGuestConsole("boot\r\nNSBOX-GUEST-SETUP-FAILED: mount -t ext4 /dev/ram0 /tmp\r\n"); rep.SetupFailed != "mount -t ext4 /dev/ram0 /tmp" {
		t.Errorf("set-up failure: %q", rep.SetupFailed)
	}
	if want := []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}; !reflect.DeepEqual(rep.Controllers, want) {
		t.Errorf("controllers %q", rep.Controllers)
	}
	if rep.Done {
		t.Error("done without the marker")
	}
	one, two := rep.Runs["one"], rep.Runs["two"]
	if one == nil || two == nil {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	if !one.Finished || one.Code != 1 || !reflect.DeepEqual(one.Passed, []string{"TestA"}) ||
		!reflect.DeepEqual(one.Failed, []string{"TestB", "TestB/sub"}) || !reflect.DeepEqual(one.Skipped, []string{"TestC"}) {
		t.Errorf("one: %+v", one)
	}
	if got := one.Output["TestB/sub"]; !reflect.DeepEqual(got, []string{"    b_test.go:10: got 1, want 2"}) {
		t.Errorf("output of TestB/sub: %q", got)
	}
	if !reflect.DeepEqual(one.After, []string{"last kernel messages:", "[    1.0] oops"}) {
		t.Errorf("after one: %q", one.After)
	}
	if two.Finished || two.Code != -1 || !reflect.DeepEqual(two.Output["TestD"], []string{"panic: boom", ""}) {
		t.Errorf("two: %+v", two)
	}
}

func TestGuestInitScript(t *testing.T) {
	g := Guest{Runs: []GuestRun{{Name: "x", Args: []string{"-test.run", "^(TestA|TestB)$", "-test.v"}}}, Env: []string{"A=it's"}}
	s := g.InitScript()
	for _, want := range []string{
		"mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail 'mount -t cgroup2 cgroup2 /sys/fs/cgroup'\n",
		"export NSBOX_GUEST=1\n",
		"export NSBOX_BIN=/nsbox\n",
		`export 'A=it'\''s'` + "\n",
		"mount -t ext4 /dev/ram0 /tmp || fail 'mount -t ext4 /dev/ram0 /tmp'\n",
		"echo NSBOX-GUEST-BEGIN x\n/tests/x.test -test.run '^(TestA|TestB)$' -test.v </dev/null 2>&1\n",
		"echo NSBOX-GUEST-RESULT x $code\n",
		"poweroff -f\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	sorted := []string{
		"/boot/vmlinuz-5.10.0-30-amd64",
		"/boot/vmlinuz-6.1.0-9-amd64",
		"/boot/vmlinuz-6.1.0-10-amd64",
		"/boot/vmlinuz-6.1.0-56-amd64",
		"/boot/vmlinuz-6.10.0-1-amd64",
	}
	for i := range sorted {
		for j := range sorted {
			if got, want := compareVersions(sorted[i], sorted[j]), cmp.Compare(i, j); got != want {
				t.Errorf("compareVersions(%s, %s) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

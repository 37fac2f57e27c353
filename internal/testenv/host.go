package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// RequireRoot skips a test that needs root, or fails it when
// NSBOX_REQUIRE_ALL (as CI sets it) forbids skipping; and fails it when
// one of the programs tools is missing.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("NSBOX_REQUIRE_ALL") != "" {
			t.Fatal("this test needs root, and NSBOX_REQUIRE_ALL forbids skipping it")
		}
		t.Skip("needs root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the test needs %s (./test.sh installs it): %v", tool, err)
		}
	}
}

// Run runs a program and returns its output, trimmed; it fails t if the
// program does.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

var netnsCount atomic.Int32

// NewNetNS makes a network namespace with `ip netns add`, named prefix, the
// test process's pid and a count (so that tests running at once never
// share one), removed when the test ends; it returns the name.
func NewNetNS(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), netnsCount.Add(1))
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

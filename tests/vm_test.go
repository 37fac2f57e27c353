package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsbox/nsbox/internal/testenv"
)

// guestSuites are the tests the cgroup v2 guest runs: every test of
// internal/cgroups, and the integration tests of cgroups (TestCgroup*),
// limits, events and pause (cgroup.freeze on v2). They need no test users.
var guestSuites = []struct {
	name, pkg string
	prefixes  []string // of the tests to run; nil: all
}{
	{"cgroups", "../internal/cgroups", nil},
	{"tests", ".", []string{"TestCgroup", "TestOCIResources", "TestOCIEvents", "TestOCIExecPsPause"}},
}

// guestControllers must all be available at the guest's cgroup2 root.
var guestControllers = []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}

const (
	guestTimeout     = 8 * time.Minute // boot, every run, power off
	guestTestTimeout = "6m"            // each test binary's -test.timeout: a hang dumps its goroutines
)

// TestCgroupV2InGuest runs the cgroup suites on a pure cgroup v2 hierarchy:
// it boots Debian's stock kernel under qemu (TCG) from an initramfs of
// busybox, nsbox and the compiled test binaries, and reports every test
// the guest ran. The host is hybrid (v1), so this is where v2 is proved.
func TestCgroupV2InGuest(t *testing.T) {
	if inGuest {
		t.Skip("SKIPPED: already inside the guest")
	}
	requireRoot(t)
	needClient(t, "qemu-system-x86_64")
	kernel, modules, err := testenv.Kernel()
	if err != nil {
		if os.Getenv("NSBOX_REQUIRE_ALL") != "" {
			t.Fatalf("%v (test.sh installs it)", err)
		}
		t.Skipf("SKIPPED: %v", err)
	}
	dir := t.TempDir()

	// go test -c -o DIR writes <package>.test for each package.
	guest := testenv.Guest{Modules: modules, Nsbox: bin, Env: []string{"NSBOX_REQUIRE_ALL=1"}}
	build := []string{"test", "-c", "-o", dir + "/"}
	for _, s := range guestSuites {
		build = append(build, s.pkg)
		args := []string{"-test.v", "-test.timeout", guestTestTimeout}
		if s.prefixes != nil {
			args = append(args, "-test.run", "^("+strings.Join(s.prefixes, "|")+")",
				"-test.skip", "^"+t.Name()+"$")
		}
		guest.Runs = append(guest.Runs, testenv.GuestRun{Name: s.name, Binary: filepath.Join(dir, s.name+".test"), Args: args})
	}
	start := time.Now()
	cmd := exec.Command("go", build...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(build, " "), err, out)
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := guest.WriteInitramfs(initrd); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(initrd)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest: %s, initramfs of %d MiB, built in %v", kernel, st.Size()>>20, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	console, qerr := bootGuest(t, kernel, initrd)
	t.Logf("guest: qemu ran for %v", time.Since(start).Round(time.Second))
	rep := testenv.ParseGuestConsole(console)
	tail := func(lines []string) string {
		return strings.Join(lines[max(0, len(lines)-60):], "\n")
	}
	switch {
	case rep.SetupFailed != "":
		t.Fatalf("guest set-up failed: %s\nconsole:\n%s", rep.SetupFailed, strings.Join(rep.Boot, "\n"))
	case qerr != nil || !rep.Done:
		t.Errorf("the guest did not reach its end (%v); console tail:\n%s", qerr, tail(strings.Split(console, "\n")))
	}
	for _, c := range guestControllers {
		if rep.Controllers == nil {
			t.Errorf("the guest did not list its cgroup2 controllers")
			break
		}
		if !strings.Contains(" "+strings.Join(rep.Controllers, " ")+" ", " "+c+" ") {
			t.Errorf("cgroup2 root of the guest lacks controller %s: %q", c, rep.Controllers)
		}
	}
	for _, s := range guestSuites {
		r := rep.Runs[s.name]
		if r == nil {
			t.Errorf("guest %s: never started", s.name)
			continue
		}
		if len(r.Passed) > 0 {
			t.Logf("guest %s: PASS %s", s.name, strings.Join(r.Passed, " "))
		}
		for _, name := range r.Skipped {
			t.Logf("guest %s: SKIPPED %s:\n%s", s.name, name, strings.Join(r.Output[name], "\n"))
		}
		for _, name := range r.Failed {
			t.Errorf("guest %s: --- FAIL: %s\n%s", s.name, name, strings.Join(r.Output[name], "\n"))
		}
		switch {
		case !r.Finished:
			t.Errorf("guest %s: no result (the guest stopped in the middle); its output ends with:\n%s", s.name, tail(r.Lines))
		case r.Code != 0 && len(r.Failed) == 0:
			t.Errorf("guest %s: exit %d without a failed test; its output ends with:\n%s\n%s", s.name, r.Code, tail(r.Lines), strings.Join(r.After, "\n"))
		case r.Code != 0:
			t.Errorf("guest %s: exit %d\n%s", s.name, r.Code, strings.Join(r.After, "\n"))
		}
		// A selection that matches nothing must not pass unnoticed.
		ran := append(append(append([]string{}, r.Passed...), r.Failed...), r.Skipped...)
		if len(ran) == 0 {
			t.Errorf("guest %s: ran no test", s.name)
		}
		for _, p := range s.prefixes {
			if !slices.ContainsFunc(ran, func(name string) bool { return strings.HasPrefix(name, p) }) {
				t.Errorf("guest %s: no test named %s* ran", s.name, p)
			}
		}
	}
}

// bootGuest boots kernel with initrd under qemu (TCG: /dev/kvm does not
// work on these machines) and returns its serial console once it powers
// off. qemu is killed, by pid, after guestTimeout or if the test binary
// dies. The guest has no network card.
func bootGuest(t *testing.T, kernel, initrd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), guestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = 5 * time.Second
	// Pdeathsig is sent when the thread that started qemu exits: keep the
	// thread for as long as qemu runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil && stderr.Len() > 0 {
		t.Logf("qemu stderr:\n%s", stderr.String())
	}
	return out.String(), err
}

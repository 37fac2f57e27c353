package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryOutOfReach: a box whose root could write the nsbox binary
// (sharing the host's user namespace) must not be able to run it through
// /proc/self/exe at exec — the first step of CVE-2019-5736, after which a
// box process holds the binary through /proc/PID/exe and writes it once it
// exits. A box with its own id range cannot write the root-owned binary, so
// there nsbox skips the guard; there the same script does reach nsbox,
// which shows the test can tell the difference.
func TestBinaryOutOfReach(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	script := filepath.Join(dir, "evil")
	if err := os.WriteFile(script, []byte("#!/proc/self/exe --version\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(userns string) result {
		return nsbox(t, opts{}, "run", "--rootfs", rootfs, "--userns="+userns, "--bind", dir+":/x:ro", "--", "/x/evil")
	}
	if r := run("auto"); !strings.Contains(r.stdout, "nsbox version") {
		t.Fatalf("control: in a box with its own ids the script should reach nsbox (harmlessly):\n%v", r)
	}
	r := run("host")
	if strings.Contains(r.stdout, "nsbox version") || r.code == 0 {
		t.Fatalf("a box sharing the host's ids ran the nsbox binary:\n%v", r)
	}
	// Commands run as usual there, and see no trace of nsbox.
	out := inBox(t, opts{}, `readlink /proc/self/exe; readlink /proc/1/exe || echo hidden`, "--userns=host")
	if out != "/bin/busybox\nhidden\n" {
		t.Fatalf("exe links in the box: %q", out)
	}
}

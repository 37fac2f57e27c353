package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A private containerd: its own root, state and sockets in the run's
// directory, the way Kubernetes reaches a runtime (the runc shim with a
// BinaryName), minus the CRI plugin.
var (
	ctdOnce sync.Once
	ctdErr  error
	ctd     struct {
		dir, sock, image string
		cmd              *exec.Cmd
	}
)

func setupContainerd(t *testing.T) {
	t.Helper()
	requireRoot(t)
	needClient(t, "containerd", "ctr", "containerd-shim-runc-v2")
	p := setupPodman(t) // exports the image as a docker archive
	ctdOnce.Do(func() {
		ctd.dir = filepath.Join(work, "containerd")
		ctd.sock = filepath.Join(ctd.dir, "containerd.sock")
		ctd.image = p.image
		os.MkdirAll(ctd.dir, 0o700)
		conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(ctd.dir, "root"), filepath.Join(ctd.dir, "state"), ctd.sock, ctd.sock+".ttrpc")
		if ctdErr = os.WriteFile(filepath.Join(ctd.dir, "config.toml"), []byte(conf), 0o644); ctdErr != nil {
			return
		}
		log, _ := os.Create(filepath.Join(ctd.dir, "containerd.log"))
		ctd.cmd = exec.Command("containerd", "--config", filepath.Join(ctd.dir, "config.toml"))
		ctd.cmd.Stdout, ctd.cmd.Stderr = log, log
		// Without the marker: it serves the whole run, not one test
		// (stopContainerd ends it by pid).
		ctd.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if ctdErr = ctd.cmd.Start(); ctdErr != nil {
			return
		}
		for i := 0; i < 100; i++ {
			if exec.Command("ctr", "--address", ctd.sock, "version").Run() == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		archive := filepath.Join(ctd.dir, "image.tar")
		if out, err := p.cmd("save", "--format", "docker-archive", "-o", archive, p.image).CombinedOutput(); err != nil {
			ctdErr = fmt.Errorf("podman save: %v: %s", err, out)
			return
		}
		if out, err := exec.Command("ctr", "--address", ctd.sock, "images", "import", archive).CombinedOutput(); err != nil {
			ctdErr = fmt.Errorf("ctr images import: %v: %s", err, out)
		}
	})
	if ctdErr != nil {
		t.Fatal(ctdErr)
	}
}

// stopContainerd ends the containerd this run started, by its pid.
func stopContainerd() {
	if ctd.cmd == nil || ctd.cmd.Process == nil {
		return
	}
	ctd.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { ctd.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		ctd.cmd.Process.Kill()
		<-done
	}
	// Its state and root hold mounts of the image's layers no more.
	exec.Command("umount", "-R", filepath.Join(ctd.dir, "state")).Run()
}

func ctr(t *testing.T, args ...string) (string, int) {
	t.Helper()
	c := exec.Command("ctr", append([]string{"--address", ctd.sock}, args...)...)
	c.Env = append(os.Environ(), marker)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ctr %v: %v", args, err)
	}
	return out.String(), code
}

func ctrOK(t *testing.T, args ...string) string {
	t.Helper()
	out, code := ctr(t, args...)
	if code != 0 {
		t.Fatalf("ctr %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

func TestContainerd(t *testing.T) {
	setupContainerd(t)
	out, code := ctr(t, "run", "--rm", "--runc-binary", bin, ctd.image, "nsbox-t1", "sh", "-c", "echo hello-from-containerd; exit 5")
	if code != 5 || !strings.Contains(out, "hello-from-containerd") {
		t.Errorf("ctr run: exit %d: %q", code, out)
	}

	t.Cleanup(func() {
		ctr(t, "task", "kill", "-s", "KILL", "nsbox-t2")
		time.Sleep(200 * time.Millisecond)
		ctr(t, "task", "delete", "nsbox-t2")
		ctr(t, "container", "delete", "nsbox-t2")
	})
	ctrOK(t, "run", "-d", "--runc-binary", bin, ctd.image, "nsbox-t2", "sh", "-c", "while :; do sleep 0.1; done")
	if out := ctrOK(t, "task", "ls"); !strings.Contains(out, "nsbox-t2") || !strings.Contains(out, "RUNNING") {
		t.Errorf("task ls: %q", out)
	}
	if out := ctrOK(t, "task", "exec", "--exec-id", "e1", "nsbox-t2", "sh", "-c", "echo exec-ok"); out != "exec-ok\n" {
		t.Errorf("task exec: %q", out)
	}
	if _, code := ctr(t, "task", "exec", "--exec-id", "e2", "nsbox-t2", "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("task exec exit status %d, want 3", code)
	}
	if out := ctrOK(t, "task", "ps", "nsbox-t2"); len(strings.Split(strings.TrimSpace(out), "\n")) < 2 {
		t.Errorf("task ps: %q", out)
	}
	ctrOK(t, "task", "pause", "nsbox-t2")
	if out := ctrOK(t, "task", "ls"); !strings.Contains(out, "PAUSED") {
		t.Errorf("after pause: %q", out)
	}
	ctrOK(t, "task", "resume", "nsbox-t2")
	if out := ctrOK(t, "task", "ls"); !strings.Contains(out, "RUNNING") {
		t.Errorf("after resume: %q", out)
	}
	ctrOK(t, "task", "kill", "-s", "KILL", "nsbox-t2")
	for i := 0; i < 100; i++ {
		if out := ctrOK(t, "task", "ls"); strings.Contains(out, "STOPPED") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctrOK(t, "task", "delete", "nsbox-t2")
	ctrOK(t, "container", "delete", "nsbox-t2")
	if out := ctrOK(t, "task", "ls"); strings.Contains(out, "nsbox-t2") {
		t.Errorf("task left after delete: %q", out)
	}
}

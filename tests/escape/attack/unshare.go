package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// inNewNamespaces runs a command in new user, mount and cgroup namespaces,
// as root there (mapped to the caller): what `unshare -UrmC` does, which
// busybox's unshare cannot (no -C). It is a step of attacks, not one.
//
// Usage: attack unshare CMD [ARG...]
func inNewNamespaces(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: unshare CMD [ARG...]")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWCGROUP,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("unshare -UrmC: %w", err)
	}
	os.Exit(0) // no DONE: the command reports
	return nil
}

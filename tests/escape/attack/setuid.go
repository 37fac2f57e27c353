package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// setuid runs as a set-user-ID-root copy of this program, or one with file
// capabilities, started by an unprivileged user of the box: with
// no_new_privs, neither may raise the process's privileges.
//
// Usage: attack setuid LABEL
//
// LABEL names the copy in the report.
// ESCAPED: the effective uid is 0 or capabilities are effective or
// permitted.
func setuid(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: setuid LABEL")
	}
	attempt := func(what string, err error, format string, a ...any) { attempt(args[0]+": "+what, err, format, a...) }
	var err error
	if euid := unix.Geteuid(); euid != 0 {
		err = fmt.Errorf("euid %d", euid)
	}
	attempt("set-user-ID", err, "the effective uid is 0")
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		if k == "CapEff" || k == "CapPrm" {
			err = nil
			if strings.Trim(v, "0") == "" {
				err = fmt.Errorf("%s %s", k, v)
			}
			attempt(k, err, "%s %s", k, v)
		}
	}
	attempt("setuid(0)", unix.Setuid(0), "setuid(0) succeeded")
	return nil
}

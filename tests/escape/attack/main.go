// Command attack runs inside nsbox boxes for the escape suite
// (tests/escape_test.go): each subcommand is one attack on the runtime or
// the host that needs real system calls. It reports on standard output (or
// in a report file, for the attacks that watch a box while the suite
// drives nsbox), one line per observation:
//
//	BLOCKED what: why       an attempt failed, as the suite wants
//	ESCAPED what: detail    an attempt succeeded: a hole in the box
//	CONTROL what: detail    the attack's technique works where it may (a
//	                        file of the box's own), so a BLOCKED means something
//	INFO what: detail       an observation, neither
//	DONE                    the attack ran to its end
//
// It is built statically by the suite (the test binary is not: it could
// not run in a busybox root).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
)

var attacks = map[string]func(args []string) error{
	"exe-overwrite": exeOverwrite,
	"fds":           fds,
	"ptrace":        ptraceRuntime,
	"keyring":       keyring,
	"shocker":       shocker,
	"tiocsti":       tiocsti,
	"unshare":       inNewNamespaces,
	"setuid":        setuid,
}

// out is where observations go.
var out io.Writer = os.Stdout

func main() {
	if len(os.Args) < 2 || attacks[os.Args[1]] == nil {
		var names []string
		for n := range attacks {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: attack %s ARGS...\n", strings.Join(names, "|"))
		os.Exit(2)
	}
	if err := attacks[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
	fmt.Fprintln(out, "DONE")
}

func report(tag, what, format string, a ...any) {
	fmt.Fprintf(out, "%s %s: %s\n", tag, what, fmt.Sprintf(format, a...))
}

// attempt reports one attempt: BLOCKED with its error, or ESCAPED with
// what it achieved.
func attempt(what string, err error, achieved string, a ...any) {
	if err != nil {
		report("BLOCKED", what, "%s", errText(err))
		return
	}
	report("ESCAPED", what, achieved, a...)
}

// errText names an errno (EPERM) rather than only describing it.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf("%s (%v)", errnoName(errno), err)
	}
	return err.Error()
}

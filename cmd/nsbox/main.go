// Command nsbox runs processes in fresh Linux namespaces: `nsbox run -- CMD`
// for an isolated process in one command, and runc's command line for OCI
// bundles. It is a thin layer over package nsbox.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/specjson"
)

// Exit statuses of nsbox itself. The command's own status is passed through
// unchanged, so nsbox's errors use the values podman uses.
const (
	exitError      = 125 // nsbox failed: bad input or set-up
	exitCannotExec = 126 // the command exists but cannot be executed
	exitNotFound   = 127 // the command does not exist
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// global holds runc's global flags.
type global struct {
	root          string
	logPath       string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	log           io.Writer
	// signals delivers, once armed, the channel of forwarded signals.
	signals <-chan chan os.Signal
}

type verb struct {
	name  string
	about string
	run   func(g *global, args []string) int
}

var verbs []verb

func init() {
	verbs = []verb{
		{"run", "run a command in a new box, or an OCI bundle", cmdRun},
		{"create", "create an OCI box whose command waits for start", cmdCreate},
		{"start", "run the command of a created box", cmdStart},
		{"list", "list boxes", cmdList},
		{"state", "print the state of a box as JSON", cmdState},
		{"kill", "send a signal to a box", cmdKill},
		{"delete", "remove a stopped box (--force: any box)", cmdDelete},
		{"pause", "freeze every process of a box", cmdPause},
		{"resume", "thaw a paused box", cmdResume},
		{"ps", "list boxes with their namespaces (or, with an ID, the processes of a box)", cmdPs},
		{"exec", "run a process in a running box", cmdExec},
		{"update", "change the resource limits of a box", cmdUpdate},
		{"events", "print a box's statistics and OOM kills", cmdEvents},
		{"network", "create, list, inspect and remove bridge networks", cmdNetwork},
		{"netns", "named network namespaces, as ip netns: add, ls, exec, rm", cmdNetns},
		{"ns", "every namespace of the host: ls, tree, enter (as lsns, nsenter)", cmdNs},
		{"inspect", "print what nsbox knows of a box as JSON", cmdInspect},
		{"spec", "write a template config.json for an OCI bundle", cmdSpec},
		{"features", "print the runtime's features as JSON", cmdFeatures},
	}
}

func main() {
	growStack()
	os.Exit(mainArgs(os.Args[1:]))
}

func mainArgs(args []string) int {
	if len(args) > 0 && args[0] == monitorVerb {
		return cmdMonitor(args[1:])
	}
	g := &global{logFormat: "text", log: io.Discard}
	gfs := newFlagSet("", "[global flags] VERB [flags] [args]", "")
	gfs.stringVar(&g.root, "root", "", "DIR", "state directory (default /run/nsbox, or $XDG_RUNTIME_DIR/nsbox)")
	gfs.stringVar(&g.logPath, "log", "", "FILE", "also write errors to FILE")
	gfs.stringVar(&g.logFormat, "log-format", "", "text|json", "format of --log")
	gfs.boolVar(&g.debug, "debug", "", "print the child's set-up steps")
	gfs.boolVar(&g.systemdCgroup, "systemd-cgroup", "", "use systemd for cgroups (not supported yet)")
	gfs.stringVar(&g.rootless, "rootless", "", "true|false|auto", "rootless mode: boxes get no cgroup of their own (auto: when not root, or in a user namespace)")
	var showVersion bool
	gfs.boolVar(&showVersion, "version", "v", "print the version")

	// Global flags come before the verb.
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		d := gfs.byKey[strings.SplitN(args[i], "=", 2)[0]]
		if d == nil || args[i] == "--" {
			break
		}
		n := 1
		if d.arg != "" && !strings.Contains(args[i], "=") {
			n = 2
		}
		if i+n > len(args) {
			return fail(g, &usageError{"flag " + args[i] + " needs a value"})
		}
		if _, _, _, err := gfs.parse(args[i : i+n]); err != nil {
			return fail(g, err)
		}
		i += n
	}
	args = args[i:]
	if g.logPath != "" {
		f, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fail(g, fmt.Errorf("--log: %w", err))
		}
		defer f.Close()
		g.log = f
	}
	switch g.rootless {
	case "", "auto", "true", "false":
	default:
		return fail(g, &usageError{fmt.Sprintf("--rootless %q: want true, false or auto", g.rootless)})
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		return fail(g, &usageError{fmt.Sprintf("--log-format %q: want text or json", g.logFormat)})
	}
	if showVersion {
		fmt.Printf("nsbox version %s\nspec: %s\n", versionString(), specVersion())
		return 0
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Print(usage())
		if len(args) == 0 {
			return exitError
		}
		return 0
	}
	if strings.HasPrefix(args[0], "-") {
		return fail(g, &usageError{fmt.Sprintf("unknown global flag %s (see 'nsbox --help')", args[0])})
	}
	for _, v := range verbs {
		if v.name == args[0] {
			if g.systemdCgroup && v.name != "spec" && v.name != "features" {
				return fail(g, &usageError{"--systemd-cgroup: the systemd cgroup driver is not supported yet; " +
					"use cgroupfs (podman --cgroup-manager=cgroupfs, containerd SystemdCgroup = false)"})
			}
			return v.run(g, args[1:])
		}
	}
	return fail(g, &usageError{fmt.Sprintf("unknown command %q (see 'nsbox --help')", args[0])})
}

func usage() string {
	var b strings.Builder
	b.WriteString(`nsbox runs processes in fresh Linux namespaces.

Usage:
  nsbox run [flags] -- CMD [ARG...]   run CMD in a new box (host / read-only, rootless-capable)
  nsbox run [--bundle DIR] ID          run the OCI bundle DIR (default: .) as box ID
  nsbox [global flags] VERB ...

Verbs:
`)
	vs := append([]verb(nil), verbs...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].name < vs[j].name })
	for _, v := range vs {
		fmt.Fprintf(&b, "  %-8s %s\n", v.name, v.about)
	}
	b.WriteString(`
Global flags:
  --root DIR           state directory
  --log FILE           also write errors to FILE (--log-format text|json)
  --debug              print the child's set-up steps
  -v, --version        print the version

Run 'nsbox VERB --help' for the flags of a verb.
`)
	return b.String()
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// rootlessMode resolves --rootless: auto means when not root, or root of
// a user namespace other than the host's (as under rootless podman).
func (g *global) rootlessMode() bool {
	switch g.rootless {
	case "true":
		return true
	case "false":
		return false
	}
	if os.Geteuid() != 0 {
		return true
	}
	b, err := fileio.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295"
}

// writeJSON writes v to w as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := specjson.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func specVersion() string { return nsbox.SpecVersion }

// fail reports err on stderr (and in --log) and returns the exit status for
// it: 125 for nsbox's own errors.
func fail(g *global, err error) int {
	if errors.Is(err, errHelp) {
		return 0
	}
	logError(g, err)
	return exitError
}

func logError(g *global, err error) {
	fmt.Fprintln(os.Stderr, "nsbox: "+err.Error())
	if g == nil || g.log == nil || g.log == io.Discard {
		return
	}
	if g.logFormat == "json" {
		b, _ := specjson.Marshal(map[string]string{"level": "error", "msg": err.Error(), "time": time.Now().UTC().Format(time.RFC3339Nano)})
		fmt.Fprintln(g.log, string(b))
		return
	}
	fmt.Fprintf(g.log, "time=%q level=error msg=%q\n", time.Now().UTC().Format(time.RFC3339Nano), err.Error())
}

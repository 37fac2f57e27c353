package main

// `nsbox ns`: every namespace of the host and how they nest (ls, tree, as
// util-linux lsns, and more: namespaces that only a bind mount, an open
// descriptor or another namespace keeps alive, and the box that made each),
// and a way into any of them (enter, as nsenter).
//
// As lsns and nsenter, the verbs exit with status 1 for bad input: an
// unknown flag, type or column, no such process or box.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/nsinfo"
)

// exitNsError is the status of the ns verbs for bad input, as lsns and
// nsenter have it.
const exitNsError = 1

type nsVerb struct {
	name  string
	usage string
	short string // for the list of verbs
	about string // for the verb's help
	run   func(g *global, fs *flagSet, args []string) int
}

var nsVerbs []nsVerb

func init() {
	nsVerbs = []nsVerb{
		{"ls", "[--type TYPE] [--json] [-o COLUMNS] [--noheadings] [INODE]", "list the namespaces of the host, as lsns",
			"List every namespace of the host that nsbox may see, as lsns does, and also those\n" +
				"that only a bind mount (" + netnsRunDir + "/NAME), an open descriptor, a thread, the\n" +
				"children-to-be of a process (pid_for_children) or another namespace (as its\n" +
				"owner or parent) keeps alive; COMMAND then shows that holder in brackets.\n" +
				"USER is the uid that created the owning user namespace. Without root, the\n" +
				"namespaces of other users' processes cannot be read: a note on standard error\n" +
				"says how many processes were left out. Exit status 1 for bad input.", nsList},
		{"tree", "[--json | --dot]", "show how the namespaces nest",
			"Show the user namespaces nested by parent, each with the namespaces it owns,\n" +
				"then the pid namespaces nested by parent; each with its processes. --dot writes\n" +
				"the same as a Graphviz graph: nsbox ns tree --dot | dot -Tsvg > ns.svg", nsTree},
		{"enter", "(--target PID | BOX) [--all | --user --mount ...] [--root] [--wd] [--] [CMD [ARG...]]",
			"run a command in the namespaces of a process or box, as nsenter",
			"Run CMD (default: $SHELL, or /bin/sh) in the namespaces of process PID or of box\n" +
				"BOX, as nsenter does: as the caller, with its environment. Without a namespace\n" +
				"flag, or with --all, every namespace of the target that differs from nsbox's own\n" +
				"is entered. In an entered user namespace the command is root, unless\n" +
				"--preserve-credentials; in an entered pid namespace it is forked after the\n" +
				"setns, so it is a process of that namespace. --root and --wd run it in the\n" +
				"target's root and working directory.\n\n" +
				"Exit status: CMD's; 1 for bad input (unknown flag or type, no such process or\n" +
				"box, a namespace type the kernel lacks); 125 when nsbox fails to enter the\n" +
				"namespaces, 126 when CMD cannot be executed, 127 when it is not found.", nsEnter},
	}
}

func cmdNs(g *global, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Print(nsUsage())
		if len(args) == 0 {
			return exitNsError
		}
		return 0
	}
	for _, v := range nsVerbs {
		if v.name == args[0] || (v.name == "ls" && args[0] == "list") {
			return v.run(g, newFlagSet("ns "+v.name, v.usage, v.about), args[1:])
		}
	}
	return nsFail(g, &usageError{fmt.Sprintf("unknown command %q for 'nsbox ns' (see 'nsbox ns --help')", args[0])})
}

func nsUsage() string {
	var b strings.Builder
	b.WriteString("Usage: nsbox ns VERB [ARGS]\n\nThe namespaces of the host: list them, see how they nest, enter them.\n\nVerbs:\n")
	for _, v := range nsVerbs {
		fmt.Fprintf(&b, "  %-6s %s\n", v.name, v.short)
	}
	b.WriteString("\nRun 'nsbox ns VERB --help' for more.\n")
	return b.String()
}

// nsFail reports err and returns the status of bad input (0 for --help).
func nsFail(g *global, err error) int {
	if errors.Is(err, errHelp) {
		return 0
	}
	logError(g, err)
	return exitNsError
}

// nsArgs parses the flags of a verb that takes at most max arguments.
// When ok is false the verb is done and returns code.
func nsArgs(g *global, fs *flagSet, args []string, max int) (pos []string, code int, ok bool) {
	pos, rest, _, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return nil, 0, false
	}
	if err != nil {
		return nil, nsFail(g, err), false
	}
	if pos = append(pos, rest...); len(pos) > max {
		return nil, nsFail(g, fs.errorf("unexpected arguments %q", pos[max:])), false
	}
	return pos, 0, true
}

// parseTypes reads --type values ("net", "net,pid", "network"), which the
// kernel must have.
func parseTypes(values []string) (nsinfo.Types, error) {
	var set nsinfo.Types
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			t, err := nsinfo.ParseType(strings.TrimSpace(name))
			if err != nil {
				return 0, err
			}
			if !nsinfo.Supported().Has(t) {
				return 0, fmt.Errorf("this kernel has no %s namespaces", t)
			}
			set |= nsinfo.Of(t)
		}
	}
	return set, nil
}

// nsRow is a namespace with the box that made it.
type nsRow struct {
	*nsinfo.Namespace
	box string
}

// command is the COMMAND of a row: the command of its lowest pid, or what
// holds it in brackets.
func (r nsRow) command() string {
	if r.Pid != 0 {
		return r.Command
	}
	return "[" + r.Holder().String() + "]"
}

func (r nsRow) user() string {
	if r.UID < 0 {
		return ""
	}
	return userName(r.UID)
}

var nsColumns = []column[nsRow]{
	{"NS", "namespace inode", true, func(r nsRow) string { return numText(r.Inode) }, func(r nsRow) any { return r.Inode }},
	{"TYPE", "namespace type", false, func(r nsRow) string { return r.Type.String() }, func(r nsRow) any { return r.Type.String() }},
	{"NPROCS", "number of processes in it", true, func(r nsRow) string { return strconv.Itoa(r.Procs) }, func(r nsRow) any { return r.Procs }},
	{"PID", "lowest pid in it", true, func(r nsRow) string { return numText(r.Pid) }, func(r nsRow) any { return nonZero(r.Pid) }},
	{"USER", "user who created the owning user namespace", false, nsRow.user, func(r nsRow) any { return orNull(r.user()) }},
	{"UID", "uid of USER", true, func(r nsRow) string {
		if r.UID < 0 {
			return ""
		}
		return strconv.Itoa(r.UID)
	}, func(r nsRow) any {
		if r.UID < 0 {
			return nil
		}
		return r.UID
	}},
	{"OWNER", "inode of the owning user namespace", true, func(r nsRow) string { return numText(r.Owner) }, func(r nsRow) any { return nonZero(r.Owner) }},
	{"PARENT", "inode of the parent (pid and user namespaces)", true, func(r nsRow) string { return numText(r.Parent) }, func(r nsRow) any { return nonZero(r.Parent) }},
	{"NETNS", "names under " + netnsRunDir, false, func(r nsRow) string { return strings.Join(r.NetnsNames, ",") }, func(r nsRow) any {
		if len(r.NetnsNames) == 0 {
			return nil
		}
		return r.NetnsNames
	}},
	{"BOX", "the nsbox box that made it", false, func(r nsRow) string { return r.box }, func(r nsRow) any { return orNull(r.box) }},
	{"HOLDER", "what chiefly keeps it: process, thread, children, bind, fd, owner/parent of", false,
		func(r nsRow) string { return r.Holder().String() }, func(r nsRow) any { return r.Holder().String() }},
	{"HOLDERS", "everything that keeps it, but its processes", false, holdersText, func(r nsRow) any { return holderList(r) }},
	{"PATH", "a path that opens it (for nsenter, ip netns)", false, func(r nsRow) string { return r.Path() }, func(r nsRow) any { return orNull(r.Path()) }},
	{"COMMAND", "command line of PID, or [its holder]", false, nsRow.command, func(r nsRow) any { return r.command() }},
}

var nsDefaultColumns = []string{"NS", "TYPE", "NPROCS", "PID", "USER", "BOX", "COMMAND"}

// holderList lists the holders of a namespace other than processes.
func holderList(r nsRow) []string {
	out := []string{}
	for _, h := range r.Holders {
		if h.Kind != nsinfo.Process {
			out = append(out, h.String())
		}
	}
	return out
}

func holdersText(r nsRow) string { return strings.Join(holderList(r), ", ") }

func nsList(g *global, fs *flagSet, args []string) int {
	var types []string
	var output string
	var asJSON, noHeadings bool
	fs.listVar(&types, "type", "t", "TYPE", "only namespaces of TYPE: "+nsTypeNames()+" (repeatable)")
	fs.stringVar(&output, "output", "o", "COLUMNS", "the columns to show (see below)")
	fs.boolVar(&asJSON, "json", "J", "print JSON (every column, unless -o)")
	fs.boolVar(&noHeadings, "noheadings", "n", "no header line")
	fs.about += "\n" + columnHelp(nsColumns, nsDefaultColumns)
	pos, code, ok := nsArgs(g, fs, args, 1)
	if !ok {
		return code
	}
	var only uint64
	if len(pos) == 1 {
		n, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil {
			return nsFail(g, fs.errorf("%q is not a namespace inode", pos[0]))
		}
		only = n
	}
	set, err := parseTypes(types)
	if err != nil {
		return nsFail(g, err)
	}
	defaults := nsDefaultColumns
	if set == nsinfo.Of(nsinfo.Net) {
		defaults = []string{"NS", "TYPE", "NPROCS", "PID", "USER", "NETNS", "BOX", "COMMAND"}
	}
	cols := nsColumns
	if output != "" || !asJSON {
		if cols, err = selectColumns(nsColumns, output, defaults); err != nil {
			return nsFail(g, err)
		}
	}
	o := nsinfo.Options{Types: set}
	for _, c := range cols {
		switch c.name {
		case "USER", "UID", "OWNER", "PARENT":
			o.Owners = true
		case "COMMAND":
			o.Commands = true
		}
	}
	report, err := nsinfo.Scan(o)
	if err != nil {
		return nsFail(g, err)
	}
	var owners map[string]string
	if _, ok := columnNamed(cols, "BOX"); ok {
		owners = boxOwners(g)
	}
	var rows []nsRow
	for _, ns := range report.Namespaces {
		if (set == 0 || set.Has(ns.Type)) && (only == 0 || ns.Inode == only) {
			rows = append(rows, nsRow{ns, owners[ns.Link()]})
		}
	}
	unreadableNote(report)
	if asJSON {
		return exitOf(g, writeIndented(os.Stdout, map[string]any{"namespaces": jsonRows(cols, rows)}))
	}
	return exitOf(g, writeTable(os.Stdout, cols, rows, !noHeadings))
}

// nsTypeNames lists the type names for help texts.
func nsTypeNames() string {
	var names []string
	for t := nsinfo.Type(0); t < nsinfo.NumTypes; t++ {
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}

// boxOwners maps namespaces to the boxes that made them (none when the
// state directory cannot be read).
func boxOwners(g *global) map[string]string {
	rt, err := nsbox.New(g.root)
	if err != nil {
		return nil
	}
	owners, _ := rt.NamespaceOwners()
	return owners
}

// unreadableNote says, without root, how many processes could not be
// looked into. (Root may not read a few either, such as a VM's init:
// lsns leaves those out silently, and so does nsbox.)
func unreadableNote(r *nsinfo.Report) {
	if r.Unreadable == 0 || os.Geteuid() == 0 {
		return
	}
	what := "processes"
	if r.Unreadable == 1 {
		what = "process"
	}
	fmt.Fprintf(os.Stderr, "nsbox: %d %s not readable (run as root to see them)\n", r.Unreadable, what)
}

// exitOf reports a failed write of the output.
func exitOf(g *global, err error) int {
	if err != nil {
		return nsFail(g, err)
	}
	return 0
}

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox/internal/nsinfo"
)

// treePids is how many pids a line of the text tree shows.
const treePids = 8

func nsTree(g *global, fs *flagSet, args []string) int {
	var asJSON, dot bool
	fs.boolVar(&asJSON, "json", "J", "print JSON: {\"user\": [...], \"pid\": [...]}, nodes with children")
	fs.boolVar(&dot, "dot", "", "print a Graphviz graph")
	if _, code, ok := nsArgs(g, fs, args, 0); !ok {
		return code
	}
	if asJSON && dot {
		return nsFail(g, fs.errorf("--json and --dot: choose one"))
	}
	report, err := nsinfo.Scan(nsinfo.Options{Pids: true, Commands: true, Owners: true})
	if err != nil {
		return nsFail(g, err)
	}
	owners := boxOwners(g)
	users, pids := nsinfo.OwnershipTree(report.Namespaces), nsinfo.PIDTree(report.Namespaces)
	unreadableNote(report)
	switch {
	case asJSON:
		return exitOf(g, writeIndented(os.Stdout, jsonObject{{"user", treeJSON(users, owners)}, {"pid", treeJSON(pids, owners)}}))
	case dot:
		return exitOf(g, writeDot(os.Stdout, report.Namespaces, owners))
	}
	var b strings.Builder
	b.WriteString("User namespaces, each with the namespaces it owns:\n")
	writeTree(&b, users, owners)
	b.WriteString("\nPID namespaces:\n")
	writeTree(&b, pids, owners)
	_, err = io.WriteString(os.Stdout, b.String())
	return exitOf(g, err)
}

// nodeLabel describes a namespace on one line: "user:[4026531837] uid 0
// (root), box web, 74 processes: 2 3 4 … kthreadd".
func nodeLabel(ns *nsinfo.Namespace, box string, maxPids int) string {
	var b strings.Builder
	b.WriteString(ns.Link())
	if ns.Type == nsinfo.User && ns.UID >= 0 {
		fmt.Fprintf(&b, " uid %d (%s)", ns.UID, userName(ns.UID))
	}
	if box != "" {
		b.WriteString(", box " + box)
	}
	if len(ns.NetnsNames) > 0 {
		b.WriteString(", netns " + strings.Join(ns.NetnsNames, ","))
	}
	if ns.Procs == 0 {
		b.WriteString(", no process: " + ns.Holder().String())
		return b.String()
	}
	what := "processes"
	if ns.Procs == 1 {
		what = "process"
	}
	fmt.Fprintf(&b, ", %d %s:", ns.Procs, what)
	for i, pid := range ns.Pids {
		if i == maxPids {
			fmt.Fprintf(&b, " … (+%d)", len(ns.Pids)-maxPids)
			break
		}
		b.WriteString(" " + strconv.Itoa(pid))
	}
	if ns.Command != "" {
		b.WriteString(" [" + ns.Command + "]")
	}
	return b.String()
}

// writeTree draws a forest with lines, as lsns --tree does.
func writeTree(b *strings.Builder, roots []*nsinfo.Node, owners map[string]string) {
	nsinfo.Walk(roots, func(n *nsinfo.Node, depth int, last []bool) {
		for i := 1; i < depth; i++ {
			if last[i] {
				b.WriteString("   ")
			} else {
				b.WriteString("│  ")
			}
		}
		if depth > 0 {
			if last[depth] {
				b.WriteString("└─ ")
			} else {
				b.WriteString("├─ ")
			}
		}
		b.WriteString(nodeLabel(n.Namespace, owners[n.Link()], treePids) + "\n")
	})
}

// treeJSON is a forest as JSON objects, each with its children.
func treeJSON(nodes []*nsinfo.Node, owners map[string]string) []jsonObject {
	out := []jsonObject{}
	for _, n := range nodes {
		pids := n.Pids
		if pids == nil {
			pids = []int{}
		}
		o := jsonObject{
			{"ns", n.Inode}, {"type", n.Type.String()}, {"nprocs", n.Procs}, {"pids", pids},
			{"command", orNull(n.Command)}, {"uid", nil}, {"user", nil},
			{"box", orNull(owners[n.Link()])}, {"netns", n.NetnsNames}, {"holder", n.Holder().String()},
			{"children", treeJSON(n.Children, owners)},
		}
		if n.UID >= 0 {
			o[5].value, o[6].value = n.UID, userName(n.UID)
		}
		out = append(out, o)
	}
	return out
}

// writeDot writes the namespaces as a Graphviz graph: user namespaces
// point to their children and to what they own (dashed), pid namespaces
// to their children (bold).
func writeDot(w io.Writer, nss []*nsinfo.Namespace, owners map[string]string) error {
	var b strings.Builder
	b.WriteString("digraph namespaces {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n")
	known := map[uint64]bool{}
	for _, ns := range nss {
		known[ns.Inode] = true
	}
	for _, ns := range nss {
		label := strings.ReplaceAll(nodeLabel(ns, owners[ns.Link()], 4), ", ", "\n")
		style := ""
		switch ns.Type {
		case nsinfo.User:
			style = ", style=filled, fillcolor=\"#dde8f7\""
		case nsinfo.PID:
			style = ", style=filled, fillcolor=\"#f7eedd\""
		}
		fmt.Fprintf(&b, "  n%d [label=%s%s];\n", ns.Inode, dotQuote(label), style)
	}
	for _, ns := range nss {
		switch {
		case ns.Type == nsinfo.User && known[ns.Parent]:
			fmt.Fprintf(&b, "  n%d -> n%d;\n", ns.Parent, ns.Inode)
		case ns.Type != nsinfo.User && known[ns.Owner]:
			fmt.Fprintf(&b, "  n%d -> n%d [style=dashed, color=gray40];\n", ns.Owner, ns.Inode)
		}
		if ns.Type == nsinfo.PID && known[ns.Parent] {
			fmt.Fprintf(&b, "  n%d -> n%d [style=bold, color=darkorange3];\n", ns.Parent, ns.Inode)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote quotes s as a DOT string, its newlines as line breaks.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

package main

// `nsbox ps` without a box id lists the boxes with their namespaces,
// cgroup, addresses and limits; `nsbox inspect BOX` shows one in full.
// (`nsbox ps ID` is runc's: the processes of box ID, see cmdPs.)

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox"
)

// boxNsColumn is the column of the inode of a box's namespace of type t.
func boxNsColumn(t string) column[*nsbox.BoxInfo] {
	return column[*nsbox.BoxInfo]{strings.ToUpper(t) + "NS", "inode of its " + t + " namespace", true,
		func(b *nsbox.BoxInfo) string { return numText(b.Namespaces[t]) },
		func(b *nsbox.BoxInfo) any { return nonZero(b.Namespaces[t]) }}
}

var psColumns = func() []column[*nsbox.BoxInfo] {
	col := func(name, help string, f func(b *nsbox.BoxInfo) string) column[*nsbox.BoxInfo] {
		return column[*nsbox.BoxInfo]{name, help, false, f, func(b *nsbox.BoxInfo) any { return orNull(f(b)) }}
	}
	cols := []column[*nsbox.BoxInfo]{
		col("ID", "box id", func(b *nsbox.BoxInfo) string { return b.ID }),
		{"PID", "pid of its first process", true, func(b *nsbox.BoxInfo) string { return numText(b.Pid) }, func(b *nsbox.BoxInfo) any { return nonZero(b.Pid) }},
		col("STATUS", "created, running, paused or stopped", func(b *nsbox.BoxInfo) string { return b.Status }),
		col("CREATED", "when it was created", func(b *nsbox.BoxInfo) string { return b.Created.Format(time.RFC3339) }),
		col("OWNER", "user who created it", func(b *nsbox.BoxInfo) string { return userName(b.Owner) }),
		col("COMMAND", "its command", func(b *nsbox.BoxInfo) string { return strings.Join(b.Command, " ") }),
		col("ROOTFS", "its root directory", func(b *nsbox.BoxInfo) string { return b.Rootfs }),
		col("NEW", "the namespaces it made for itself", func(b *nsbox.BoxInfo) string { return strings.Join(b.NewNamespaces, ",") }),
		col("CGROUP", "its cgroup", func(b *nsbox.BoxInfo) string { return b.Cgroup }),
		col("NETWORK", "its network", func(b *nsbox.BoxInfo) string { return b.Network }),
		col("ADDRESSES", "IPv4 addresses of its interfaces (but loopback)", func(b *nsbox.BoxInfo) string { return strings.Join(b.Addresses, ",") }),
		col("LIMITS", "memory, cpu and pids limits", func(b *nsbox.BoxInfo) string { return limitsText(b.Resources) }),
	}
	for _, t := range []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"} {
		cols = append(cols, boxNsColumn(t))
	}
	return cols
}()

var psDefaultColumns = []string{"ID", "PID", "STATUS", "USERNS", "PIDNS", "NETNS", "CGROUP", "ADDRESSES", "LIMITS"}

// limitsText sums up a box's limits: "mem=256M cpu=0.5 pids=100".
func limitsText(r *specs.LinuxResources) string {
	if r == nil {
		return ""
	}
	var parts []string
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		parts = append(parts, "mem="+sizeText(*r.Memory.Limit))
	}
	if c := r.CPU; c != nil {
		if c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
			parts = append(parts, "cpu="+strconv.FormatFloat(float64(*c.Quota)/float64(*c.Period), 'g', 3, 64))
		}
		if c.Shares != nil && *c.Shares > 0 {
			parts = append(parts, "shares="+strconv.FormatUint(*c.Shares, 10))
		}
		if c.Cpus != "" {
			parts = append(parts, "cpus="+c.Cpus)
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
		parts = append(parts, "pids="+strconv.FormatInt(*r.Pids.Limit, 10))
	}
	return strings.Join(parts, " ")
}

// sizeText writes a byte count with the largest binary unit that divides
// it: 268435456 is "256M".
func sizeText(n int64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// psBoxes is `nsbox ps` without a box id.
func psBoxes(g *global, args []string) int {
	var format, output string
	var asJSON, noHeadings bool
	fs := newFlagSet("ps", "[--json] [-o COLUMNS] [--noheadings]\n       nsbox ps [--format table|json] ID [PS OPTIONS...]",
		"Without an id, list the boxes: their namespaces (inode by type), cgroup, network\n"+
			"addresses and limits. With one, list the processes of box ID, as runc ps does.\n"+
			columnHelp(psColumns, psDefaultColumns))
	fs.boolVar(&asJSON, "json", "", "print JSON: an array of boxes with every detail, as nsbox inspect")
	fs.stringVar(&format, "format", "f", "table|json", "output format")
	fs.stringVar(&output, "output", "o", "COLUMNS", "the columns to show")
	fs.boolVar(&noHeadings, "noheadings", "n", "no header line")
	rt, _, code, ok := boxArgs(g, fs, args, 0, 0)
	if !ok {
		return code
	}
	switch format {
	case "json":
		asJSON = true
	case "", "table":
	default:
		return fail(g, fs.errorf("--format %q: want table or json", format))
	}
	cols, err := selectColumns(psColumns, output, psDefaultColumns)
	if err != nil {
		return fail(g, fs.errorf("%v", err))
	}
	boxes, err := rt.InspectAll()
	if err != nil {
		return fail(g, err)
	}
	if asJSON {
		err = writeJSON(os.Stdout, boxes)
	} else {
		err = writeTable(os.Stdout, cols, boxes, !noHeadings)
	}
	if err != nil {
		return fail(g, err)
	}
	return 0
}

func cmdInspect(g *global, args []string) int {
	fs := newFlagSet("inspect", "BOX", "Print what nsbox knows of a box as JSON: its state, command, the namespaces its\n"+
		"processes are in (inode by type), those it made or joined, its cgroup, network,\n"+
		"addresses and limits.")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	info, err := rt.Inspect(pos[0])
	if err != nil {
		return fail(g, err)
	}
	if err := writeIndented(os.Stdout, info); err != nil {
		return fail(g, fmt.Errorf("write: %w", err))
	}
	return 0
}

// takesValue reports whether flag a of ps (before a box id) is followed by
// its value: --format of both forms, --output of the list of boxes.
func takesValue(a string) bool {
	switch a {
	case "--format", "-f", "--output", "-o":
		return true
	}
	return false
}

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/specjson"
)

// boxArgs parses the flags of a verb that takes between min and max
// arguments and opens the runtime. When ok is false the verb is done and
// returns code.
func boxArgs(g *global, fs *flagSet, args []string, min, max int) (rt *nsbox.Runtime, pos []string, code int, ok bool) {
	pos, rest, _, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return nil, nil, 0, false
	}
	if err != nil {
		return nil, nil, fail(g, err), false
	}
	pos = append(pos, rest...)
	if len(pos) < min || len(pos) > max {
		return nil, nil, fail(g, fs.errorf("want %s", fs.usage)), false
	}
	if rt, err = nsbox.New(g.root); err != nil {
		return nil, nil, fail(g, err), false
	}
	return rt, pos, 0, true
}

func cmdList(g *global, args []string) int {
	var format string
	var quiet bool
	fs := newFlagSet("list", "[--format table|json] [--quiet]", "List the boxes in the state directory.")
	fs.stringVar(&format, "format", "f", "table|json", "output format")
	fs.boolVar(&quiet, "quiet", "q", "print only the ids")
	rt, _, code, ok := boxArgs(g, fs, args, 0, 0)
	if !ok {
		return code
	}
	boxes, err := rt.List()
	if err != nil {
		return fail(g, err)
	}
	switch {
	case quiet:
		for _, b := range boxes {
			fmt.Println(b.ID)
		}
	case format == "json":
		type entry struct {
			Version     string            `json:"ociVersion"`
			ID          string            `json:"id"`
			Pid         int               `json:"pid"`
			Status      string            `json:"status"`
			Bundle      string            `json:"bundle"`
			Rootfs      string            `json:"rootfs"`
			Created     time.Time         `json:"created"`
			Owner       string            `json:"owner"`
			Annotations map[string]string `json:"annotations,omitempty"`
		}
		out := []entry{}
		for _, b := range boxes {
			e := entry{Version: b.Version, ID: b.ID, Pid: b.Pid, Status: string(b.Status), Bundle: b.Bundle,
				Created: b.Created, Owner: ownerName(b.Owner), Annotations: b.Annotations}
			if spec, err := b.Spec(); err == nil && spec.Root != nil {
				e.Rootfs = spec.Root.Path
			}
			if b.Status == "stopped" {
				e.Pid = 0
			}
			out = append(out, e)
		}
		writeJSON(os.Stdout, out)
	case format == "" || format == "table":
		w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
		fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
		for _, b := range boxes {
			pid := b.Pid
			if b.Status == "stopped" {
				pid = 0
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", b.ID, pid, b.Status, b.Bundle, b.Created.Format(time.RFC3339Nano), ownerName(b.Owner))
		}
		w.Flush()
	default:
		return fail(g, fs.errorf("--format %q: want table or json", format))
	}
	return 0
}

func ownerName(uid int) string {
	if name, ok := passwdNames()[uid]; ok {
		return name
	}
	return "#" + strconv.Itoa(uid)
}

func cmdState(g *global, args []string) int {
	fs := newFlagSet("state", "ID", "Print the OCI state of a box as JSON.")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	st, err := rt.State(pos[0])
	if err != nil {
		return fail(g, err)
	}
	out := st.State
	if out.Status == "stopped" {
		out.Pid = 0
	}
	b, _ := specjson.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return 0
}

func cmdKill(g *global, args []string) int {
	var all bool
	fs := newFlagSet("kill", "ID [SIGNAL]", "Send SIGNAL (default SIGTERM; a name or a number) to a box.")
	fs.boolVar(&all, "all", "a", "signal every process of the box")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 2)
	if !ok {
		return code
	}
	sig := unix.SIGTERM
	if len(pos) == 2 {
		s, err := parseSignal(pos[1])
		if err != nil {
			return fail(g, err)
		}
		sig = s
	}
	if err := rt.Kill(pos[0], sig, all); err != nil {
		return fail(g, err)
	}
	return 0
}

// parseSignal accepts "TERM", "SIGTERM", "sigterm" or "15".
func parseSignal(v string) (unix.Signal, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", v)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(v)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if s := unix.SignalNum(name); s != 0 {
		return s, nil
	}
	return 0, fmt.Errorf("invalid signal %q", v)
}

func cmdDelete(g *global, args []string) int {
	var force bool
	fs := newFlagSet("delete", "[--force] ID", "Remove a stopped box; with --force, kill it first if it runs.")
	fs.boolVar(&force, "force", "f", "kill the box if it runs")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := rt.Delete(pos[0], force); err != nil {
		if force && errors.Is(err, nsbox.ErrNotExist) {
			return 0 // as runc: delete --force of a missing container succeeds
		}
		return fail(g, err)
	}
	return 0
}

func cmdPause(g *global, args []string) int {
	fs := newFlagSet("pause", "ID", "Freeze every process of a box.")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := rt.Pause(pos[0]); err != nil {
		return fail(g, err)
	}
	return 0
}

func cmdResume(g *global, args []string) int {
	fs := newFlagSet("resume", "ID", "Thaw a paused box.")
	rt, pos, code, ok := boxArgs(g, fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := rt.Resume(pos[0]); err != nil {
		return fail(g, err)
	}
	return 0
}

// cmdPs lists a box's processes: as a JSON array of pids, or as ps(1) shows
// them (with the options after the id), keeping the header and the box's
// lines, as runc ps does.
func cmdPs(g *global, args []string) int {
	var format string
	fs := newFlagSet("ps", "[--format table|json] ID [PS OPTIONS...]", "List the processes of a box.")
	fs.stringVar(&format, "format", "f", "table|json", "output format")
	// Everything after the id is for ps(1), flags included.
	i := 0
	for i < len(args) && (strings.HasPrefix(args[i], "-") || (i > 0 && takesValue(args[i-1]))) {
		i++
	}
	if i >= len(args) {
		return psBoxes(g, args) // no id: the boxes themselves
	}
	rt, pos, code, ok := boxArgs(g, fs, args[:i+1], 1, 1)
	if !ok {
		return code
	}
	psArgs := args[i+1:]
	pids, err := rt.Pids(pos[0])
	if err != nil {
		return fail(g, err)
	}
	switch format {
	case "json":
		if pids == nil {
			pids = []int{}
		}
		writeJSON(os.Stdout, pids)
		return 0
	case "", "table":
	default:
		return fail(g, fs.errorf("--format %q: want table or json", format))
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fail(g, fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err))
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := -1
	for j, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = j
		}
	}
	if col < 0 {
		return fail(g, fmt.Errorf("ps %s: no PID column", strings.Join(psArgs, " ")))
	}
	in := map[string]bool{}
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	fmt.Println(lines[0])
	for _, line := range lines[1:] {
		if f := strings.Fields(line); len(f) > col && in[f[col]] {
			fmt.Println(line)
		}
	}
	return 0
}

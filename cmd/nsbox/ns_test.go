package main

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox/internal/nsinfo"
	"github.com/nsbox/nsbox/internal/specjson"
)

func TestSelectColumns(t *testing.T) {
	names := func(cols []column[nsRow]) string {
		var n []string
		for _, c := range cols {
			n = append(n, c.name)
		}
		return strings.Join(n, ",")
	}
	for _, c := range []struct{ list, want string }{
		{"", strings.Join(nsDefaultColumns, ",")},
		{"ns,Type", "NS,TYPE"},
		{"+owner,parent", strings.Join(nsDefaultColumns, ",") + ",OWNER,PARENT"},
		{"PATH", "PATH"},
	} {
		cols, err := selectColumns(nsColumns, c.list, nsDefaultColumns)
		if err != nil || names(cols) != c.want {
			t.Errorf("-o %q: %s %v, want %s", c.list, names(cols), err, c.want)
		}
	}
	if _, err := selectColumns(nsColumns, "NS,FOO", nsDefaultColumns); err == nil || err.Error() != "unknown column: FOO" {
		t.Errorf("unknown column: %v", err)
	}
	if _, err := selectColumns(psColumns, "", psDefaultColumns); err != nil {
		t.Errorf("ps defaults: %v", err)
	}
}

func TestNsTable(t *testing.T) {
	rows := []nsRow{
		{&nsinfo.Namespace{Type: nsinfo.Net, Inode: 4026531833, Procs: 80, Pid: 2, UID: 0, Command: "kthreadd",
			Holders: []nsinfo.Holder{{Kind: nsinfo.Process, Pid: 2}}}, ""},
		{&nsinfo.Namespace{Type: nsinfo.Net, Inode: 4026532290, UID: -1, NetnsNames: []string{"red"},
			Holders: []nsinfo.Holder{{Kind: nsinfo.Bind, Path: "/run/netns/red"}}}, "web"},
	}
	cols, _ := selectColumns(nsColumns, "NS,TYPE,NPROCS,PID,NETNS,BOX,COMMAND", nil)
	var b strings.Builder
	if err := writeTable(&b, cols, rows, true); err != nil {
		t.Fatal(err)
	}
	want := `        NS TYPE NPROCS PID NETNS BOX COMMAND
4026531833 net      80   2           kthreadd
4026532290 net       0     red   web [bind /run/netns/red]
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	out, err := specjson.Marshal(jsonRows(cols, rows))
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `[{"ns":4026531833,"type":"net","nprocs":80,"pid":2,"netns":null,"box":null,"command":"kthreadd"},` +
		`{"ns":4026532290,"type":"net","nprocs":0,"pid":null,"netns":["red"],"box":"web","command":"[bind /run/netns/red]"}]`
	if string(out) != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", out, wantJSON)
	}
}

func TestLimitsText(t *testing.T) {
	mem, quota, period, shares, pids := int64(256<<20), int64(50000), uint64(100000), uint64(512), int64(100)
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	if got := limitsText(r); got != "mem=256M cpu=0.5 shares=512 pids=100" {
		t.Errorf("limitsText: %q", got)
	}
	if got := limitsText(nil); got != "" {
		t.Errorf("no limits: %q", got)
	}
	for n, want := range map[int64]string{1 << 30: "1G", 1536 << 10: "1536K", 1000: "1000", 3 << 20: "3M"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEnterArgs(t *testing.T) {
	for _, c := range []struct {
		args   []string
		target int
		box    string
		cmd    []string
		bad    bool
	}{
		{args: []string{"-t", "42", "--", "ls", "-l"}, target: 42, cmd: []string{"ls", "-l"}},
		{args: []string{"--target=42", "-n", "ls", "-l"}, target: 42, cmd: []string{"ls", "-l"}},
		{args: []string{"-t", "42"}, target: 42},
		{args: []string{"web", "--", "sh", "-c", "id"}, box: "web", cmd: []string{"sh", "-c", "id"}},
		{args: []string{"web", "--net", "--", "id"}, box: "web", cmd: []string{"id"}},
		{args: []string{"-U", "web"}, box: "web"},
		{args: []string{"web", "--"}, box: "web"},
		{args: nil, bad: true},
		{args: []string{"--net"}, bad: true},
		{args: []string{"-t", "-3", "ls"}, bad: true},
		{args: []string{"--bogus", "web"}, bad: true},
	} {
		fs := newFlagSet("ns enter", "", "")
		var target int
		var net, user bool
		fs.intVar(&target, "target", "t", "PID", "")
		fs.boolVar(&net, "net", "n", "")
		fs.boolVar(&user, "user", "U", "")
		box, cmd, err := enterArgs(fs, c.args, &target)
		if (err != nil) != c.bad {
			t.Errorf("%q: error %v", c.args, err)
			continue
		}
		if !c.bad && (box != c.box || target != c.target || !reflect.DeepEqual(cmd, c.cmd)) {
			t.Errorf("%q: box %q target %d cmd %q, want %q %d %q", c.args, box, target, cmd, c.box, c.target, c.cmd)
		}
	}
}

func TestDotQuote(t *testing.T) {
	if got := dotQuote("net:[1]\nnetns \"a\\b\""); got != `"net:[1]\nnetns \"a\\b\""` {
		t.Errorf("dotQuote: %s", got)
	}
}

func TestAppendJSONLikeSpecjson(t *testing.T) {
	for _, v := range []any{nil, 0, -3, uint64(4026531840), "plain", `quote " and \ back`, "<&>", "tab\there", "é", "\x00",
		[]string{"a", "b"}, []int{1, 2}} {
		got, err := appendJSON(nil, v)
		want, werr := specjson.Marshal(v)
		if err != nil || werr != nil || string(got) != string(want) {
			t.Errorf("appendJSON(%#v) = %s %v, want %s", v, got, err, want)
		}
	}
}

package cgroups

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsbox/nsbox/internal/testenv"
)

func TestParseUint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"0\n", 0, false},
		{"9223372036854771712\n", 9223372036854771712, false},
		{"max\n", math.MaxUint64, false},
		{"-1\n", 0, true},
		{"", 0, true},
	} {
		got, err := parseUint(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseUint(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]uint64
		bad      bool
	}{
		{"cpu.stat v2", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
			map[string]uint64{"usage_usec": 1500, "user_usec": 1000, "system_usec": 500, "nr_periods": 0}, false},
		{"memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
			map[string]uint64{"low": 0, "high": 0, "max": 12, "oom": 2, "oom_kill": 1, "oom_group_kill": 0}, false},
		{"oom_control v1", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
			map[string]uint64{"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}, false},
		{"max value", "max max\n", map[string]uint64{"max": math.MaxUint64}, false},
		{"empty", "", map[string]uint64{}, false},
		{"three fields", "a 1 2\n", nil, true},
		{"not a number", "cache x\n", nil, true},
	} {
		got, err := parseKeyValues([]byte(tc.in))
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%s: got %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseUints(t *testing.T) {
	got, err := parseUints([]byte("100 0 2500 \n"))
	if err != nil || !reflect.DeepEqual(got, []uint64{100, 0, 2500}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseUints([]byte("1 x")); err == nil {
		t.Fatal("no error for a word")
	}
}

func TestParseBlkio(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []BlkioEntry
		bad      bool
	}{
		{"with ops", "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\n253:1 Read 1\nTotal 12289\n",
			[]BlkioEntry{{8, 0, "Read", 4096}, {8, 0, "Write", 8192}, {8, 0, "Sync", 0}, {8, 0, "Async", 12288},
				{8, 0, "Total", 12288}, {253, 1, "Read", 1}}, false},
		{"single values", "8:16 300\n", []BlkioEntry{{8, 16, "", 300}}, false},
		{"only total", "Total 0\n", nil, false},
		{"bad device", "8 Read 1\n", nil, true},
		{"bad value", "8:0 Read x\n", nil, true},
		{"too many fields", "8:0 Read 1 2\n", nil, true},
	} {
		got, err := parseBlkio([]byte(tc.in))
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%s: got %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseIOStat(t *testing.T) {
	in := "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0 cost.vrate=100.00\n" +
		"253:0 rbytes=5 wbytes=6 rios=7 wios=8 dbytes=9 dios=10\n"
	b, ios, err := parseIOStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	wantB := []BlkioEntry{{8, 0, "Read", 1024}, {8, 0, "Write", 2048}, {8, 0, "Discard", 0},
		{253, 0, "Read", 5}, {253, 0, "Write", 6}, {253, 0, "Discard", 9}}
	wantIOs := []BlkioEntry{{8, 0, "Read", 3}, {8, 0, "Write", 4}, {8, 0, "Discard", 0},
		{253, 0, "Read", 7}, {253, 0, "Write", 8}, {253, 0, "Discard", 10}}
	if !reflect.DeepEqual(b, wantB) || !reflect.DeepEqual(ios, wantIOs) {
		t.Fatalf("got\n%v\n%v\nwant\n%v\n%v", b, ios, wantB, wantIOs)
	}
	for _, bad := range []string{"8:0 rbytes=x\n", "sda rbytes=1\n"} {
		if _, _, err := parseIOStat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint16
		bad  bool
	}{
		{"0-3\n", []uint16{0, 1, 2, 3}, false},
		{"0,2,5-6\n", []uint16{0, 2, 5, 6}, false},
		{"7", []uint16{7}, false},
		{"\n", nil, false},
		{"3-1", nil, true},
		{"a", nil, true},
		{"0-", nil, true},
	} {
		got, err := ParseList([]byte(tc.in))
		if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// writeTree writes files (path relative to root → contents) below root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatsFakeTrees runs Stats over directories that look like each
// layout's cgroup files, so every reader runs without root or a kernel
// that has the controller.
func TestStatsFakeTrees(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name   string
		layout func(root string) *Layout
		files  map[string]string
		want   Stats
	}{{
		name: "v2",
		layout: func(root string) *Layout {
			return &Layout{Hierarchies: []Hierarchy{{Mount: root, Root: "/", V2: true,
				Controllers: []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids"}}}}
		},
		files: map[string]string{
			"box/cpu.stat":              "usage_usec 300\nuser_usec 200\nsystem_usec 100\nnr_periods 10\nnr_throttled 2\nthrottled_usec 7\n",
			"box/cpuset.cpus.effective": "0-1\n", "box/cpuset.mems.effective": "0\n",
			"box/memory.stat":    "anon 4096\nfile 8192\n",
			"box/memory.current": "12288\n", "box/memory.max": "max\n", "box/memory.peak": "20480\n",
			"box/memory.events":       "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
			"box/memory.swap.current": "4096\n", "box/memory.swap.max": "max\n",
			"box/pids.current": "5\n", "box/pids.max": "max\n",
			"box/io.stat":             "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
			"box/hugetlb.2MB.current": "2097152\n", "box/hugetlb.2MB.max": "max\n", "box/hugetlb.2MB.events": "max 4\n",
			"box/hugetlb.2MB.rsvd.current": "0\n",
			"box/hugetlb.1GB.current":      "0\n", "box/hugetlb.1GB.events": "max 0\n",
		},
		want: Stats{
			CPU:    CPUStats{Usage: CPUUsage{Total: 300000, Kernel: 100000, User: 200000}, Throttling: Throttling{10, 2, 7000}},
			CPUSet: CPUSetStats{CPUs: []uint16{0, 1}, Mems: []uint16{0}},
			Memory: MemoryStats{Cache: 8192, Raw: map[string]uint64{"anon": 4096, "file": 8192},
				Usage: MemoryEntry{Limit: math.MaxUint64, Usage: 12288, Max: 20480, Failcnt: 3},
				Swap:  MemoryEntry{Limit: math.MaxUint64, Usage: 16384}},
			Pids: PidsStats{Current: 5},
			Blkio: BlkioStats{IoServiceBytesRecursive: []BlkioEntry{{8, 0, "Read", 10}, {8, 0, "Write", 20}, {8, 0, "Discard", 0}},
				IoServicedRecursive: []BlkioEntry{{8, 0, "Read", 1}, {8, 0, "Write", 2}, {8, 0, "Discard", 0}}},
			Hugetlb: map[string]HugetlbStats{"2MB": {Usage: 2097152, Failcnt: 4}, "1GB": {}},
		},
	}, {
		name: "v1",
		layout: func(root string) *Layout {
			l := &Layout{}
			for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "hugetlb"} {
				l.Hierarchies = append(l.Hierarchies, Hierarchy{Mount: filepath.Join(root, c), Root: "/", Controllers: []string{c}})
			}
			return l
		},
		files: map[string]string{
			"cpu/box/cpu.stat":                      "nr_periods 4\nnr_throttled 1\nthrottled_time 900\nnr_bursts 0\n",
			"cpuacct/box/cpuacct.usage":             "3000\n",
			"cpuacct/box/cpuacct.usage_percpu":      "1000 2000 \n",
			"cpuacct/box/cpuacct.usage_percpu_user": "600 1200 \n",
			"cpuacct/box/cpuacct.usage_percpu_sys":  "400 800 \n",
			"cpuacct/box/cpuacct.stat":              "user 1\nsystem 2\n", // ticks; ignored when usage_user exists
			"cpuacct/box/cpuacct.usage_user":        "1800\n", "cpuacct/box/cpuacct.usage_sys": "1200\n",
			"cpuset/box/cpuset.cpus": "0-1\n", "cpuset/box/cpuset.effective_cpus": "1\n", "cpuset/box/cpuset.mems": "0\n",
			"cpuset/box/cpuset.sched_load_balance": "1\n", "cpuset/box/cpuset.sched_relax_domain_level": "-1\n",
			"memory/box/memory.stat":           "cache 100\nrss 200\ntotal_cache 300\ntotal_rss 400\n",
			"memory/box/memory.usage_in_bytes": "4096\n", "memory/box/memory.limit_in_bytes": "9223372036854771712\n",
			"memory/box/memory.max_usage_in_bytes": "8192\n", "memory/box/memory.failcnt": "6\n",
			"memory/box/memory.memsw.usage_in_bytes": "4096\n", "memory/box/memory.memsw.limit_in_bytes": "1073741824\n",
			"memory/box/memory.kmem.usage_in_bytes": "512\n", "memory/box/memory.kmem.tcp.max_usage_in_bytes": "64\n",
			"pids/box/pids.current": "2\n", "pids/box/pids.max": "100\n",
			"blkio/box/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
			"blkio/box/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\nTotal 1\n",
			"blkio/box/blkio.io_serviced_recursive":               "8:0 Read 99\nTotal 99\n", // cfq: the throttle lists win
			"blkio/box/blkio.io_queued_recursive":                 "8:0 Read 0\nTotal 0\n",
			"blkio/box/blkio.sectors_recursive":                   "8:0 8\n",
			"hugetlb/box/hugetlb.2MB.usage_in_bytes":              "2097152\n", "hugetlb/box/hugetlb.2MB.max_usage_in_bytes": "4194304\n",
			"hugetlb/box/hugetlb.2MB.failcnt": "1\n", "hugetlb/box/hugetlb.2MB.rsvd.usage_in_bytes": "0\n",
		},
		want: Stats{
			CPU: CPUStats{Usage: CPUUsage{Total: 3000, Percpu: []uint64{1000, 2000}, PercpuKernel: []uint64{400, 800},
				PercpuUser: []uint64{600, 1200}, Kernel: 1200, User: 1800}, Throttling: Throttling{4, 1, 900}},
			CPUSet: CPUSetStats{CPUs: []uint16{1}, Mems: []uint16{0}, SchedLoadBalance: 1, SchedRelaxDomainLevel: -1},
			Memory: MemoryStats{Cache: 300, Raw: map[string]uint64{"cache": 100, "rss": 200, "total_cache": 300, "total_rss": 400},
				Usage:     MemoryEntry{Limit: 9223372036854771712, Usage: 4096, Max: 8192, Failcnt: 6},
				Swap:      MemoryEntry{Limit: gib, Usage: 4096},
				Kernel:    MemoryEntry{Usage: 512},
				KernelTCP: MemoryEntry{Max: 64}},
			Pids: PidsStats{Current: 2, Limit: 100},
			Blkio: BlkioStats{IoServiceBytesRecursive: []BlkioEntry{{8, 0, "Read", 4096}, {8, 0, "Write", 0}},
				IoServicedRecursive: []BlkioEntry{{8, 0, "Read", 1}}, IoQueuedRecursive: []BlkioEntry{{8, 0, "Read", 0}},
				SectorsRecursive: []BlkioEntry{{8, 0, "", 8}}},
			Hugetlb: map[string]HugetlbStats{"2MB": {Usage: 2097152, Max: 4194304, Failcnt: 1}},
		},
	}, {
		// v1 controllers, and a cgroup2 tree with only hugetlb: as on the
		// build machines. The v2 tree's cpu.stat and memory files must not
		// be read for controllers that v1 has.
		name: "hybrid",
		layout: func(root string) *Layout {
			return &Layout{Hierarchies: []Hierarchy{
				{Mount: filepath.Join(root, "cpuacct"), Root: "/", Controllers: []string{"cpuacct"}},
				{Mount: filepath.Join(root, "memory"), Root: "/", Controllers: []string{"memory"}},
				{Mount: filepath.Join(root, "unified"), Root: "/", V2: true, Controllers: []string{"hugetlb"}},
			}}
		},
		files: map[string]string{
			"cpuacct/box/cpuacct.usage":        "5\n",
			"memory/box/memory.usage_in_bytes": "7\n",
			"unified/box/cpu.stat":             "usage_usec 1000\n",
			"unified/box/memory.current":       "1000\n",
			"unified/box/hugetlb.2MB.current":  "0\n",
		},
		want: Stats{CPU: CPUStats{Usage: CPUUsage{Total: 5}}, Memory: MemoryStats{Usage: MemoryEntry{Usage: 7}},
			Hugetlb: map[string]HugetlbStats{"2MB": {}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.files)
			m := &Manager{Layout: tc.layout(root), Path: "/box"}
			got, err := m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tc.want)
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestStatsErrors(t *testing.T) {
	root := t.TempDir()
	l := &Layout{Hierarchies: []Hierarchy{{Mount: root, Root: "/", V2: true, Controllers: []string{"memory"}}}}
	_, err := (&Manager{Layout: l, Path: "/gone"}).Stats()
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "/gone") {
		t.Errorf("missing cgroup: %v; want ErrNotExist naming /gone", err)
	}
	writeTree(t, root, map[string]string{"box/memory.current": "lots\n"})
	_, err = (&Manager{Layout: l, Path: "/box"}).Stats()
	if err == nil || !strings.Contains(err.Error(), "memory.current") {
		t.Errorf("malformed file: %v; want an error naming memory.current", err)
	}
}

func TestEventJSON(t *testing.T) {
	b, err := json.Marshal(Event{Type: "oom", ID: "box1"})
	if err != nil || string(b) != `{"type":"oom","id":"box1"}` {
		t.Errorf("oom event: %s, %v", b, err)
	}
}

// The helper process that tests place in a cgroup: started from the test
// binary with NSBOX_CGROUPS_TEST_HELPER set, it waits for a line on stdin
// (sent once it is in the cgroup), then does its work.
func TestStatsHelperProcess(t *testing.T) {
	mode := os.Getenv("NSBOX_CGROUPS_TEST_HELPER")
	if mode == "" {
		return
	}
	in := bufio.NewReader(os.Stdin)
	in.ReadString('\n')
	switch mode {
	case "load": // burn CPU, hold 32 MiB, say so, wait for stdin to close
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		}
		mem := touch(32 << 20)
		fmt.Println("ready")
		io.Copy(io.Discard, in)
		runtime.KeepAlive(mem)
	case "oom": // allocate far more than the box's limit
		var held [][]byte
		for i := 0; i < 64; i++ {
			held = append(held, touch(1<<20))
		}
		fmt.Println("survived")
		runtime.KeepAlive(held)
	}
	os.Exit(0)
}

// touch returns n bytes, every page of them written.
func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

func TestStatsReal(t *testing.T) {
	m := newTestBox(t, "stats")
	cmd, stdin, stdout := startInBox(t, m, "load")
	if line, err := stdout.ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
	if s.CPU.Usage.Total == 0 || s.CPU.Usage.User == 0 {
		t.Errorf("cpu usage %+v; want total and user time", s.CPU.Usage)
	}
	if s.Memory.Usage.Usage < 16<<20 || s.Memory.Usage.Limit == 0 {
		t.Errorf("memory usage %+v; want at least 16 MiB and a limit", s.Memory.Usage)
	}
	if s.Memory.Usage.Max != 0 && s.Memory.Usage.Max < s.Memory.Usage.Usage {
		t.Errorf("memory peak %d below usage %d", s.Memory.Usage.Max, s.Memory.Usage.Usage)
	}
	if s.Pids.Current < 1 {
		t.Errorf("pids %+v; want at least 1", s.Pids)
	}
	b, err := json.Marshal(Event{Type: "stats", ID: "test", Data: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", b)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"type", "id", "data.cpu.usage.total", "data.cpu.usage.kernel", "data.cpu.usage.user",
		"data.cpu.throttling", "data.cpuset", "data.memory.usage.limit", "data.memory.usage.usage",
		"data.memory.usage.failcnt", "data.memory.swap", "data.memory.kernel", "data.memory.kernelTCP",
		"data.memory.raw", "data.pids.current", "data.blkio", "data.hugetlb"} {
		v := any(doc)
		for _, k := range strings.Split(path, ".") {
			obj, _ := v.(map[string]any)
			v = obj[k]
		}
		if v == nil {
			t.Errorf("JSON has no %s", path)
		}
	}
}

func requireRootForCgroups(t *testing.T) { testenv.RequireRoot(t) }

// newTestBox makes cgroup /nsbox-test-<name>-<pid> in every hierarchy of
// the host and removes it when the test ends.
func newTestBox(t *testing.T, name string) *Manager {
	t.Helper()
	requireRootForCgroups(t)
	l, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Resolve(l, fmt.Sprintf("/nsbox-test-%s-%d", name, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	return m
}

// startInBox starts the helper process in mode, places it in m's cgroup
// (at clone time on pure v2, else by pid) and lets it go. The helper is
// killed when the test ends if it is still running.
func startInBox(t *testing.T, m *Manager, mode string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStatsHelperProcess$")
	cmd.Env = append(os.Environ(), "NSBOX_CGROUPS_TEST_HELPER="+mode)
	cmd.Stderr = os.Stderr
	fd, err := m.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	if fd >= 0 {
		defer syscall.Close(fd)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if fd < 0 {
		if err := m.Apply(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, bufio.NewReader(out)
}

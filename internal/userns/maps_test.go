package userns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseMaps(t *testing.T) {
	m, err := ParseMaps("0:100000:65536,65536:5000:1")
	if err != nil || len(m) != 2 || m[1] != (specs.LinuxIDMapping{ContainerID: 65536, HostID: 5000, Size: 1}) {
		t.Fatalf("%v %v", m, err)
	}
	for in, want := range map[string]string{
		"0:1":               "CONTAINER:HOST:SIZE",
		"0:x:1":             "not a number",
		"0:1:0":             "positive",
		"0:10:10,5:100:10":  "overlap inside",
		"0:10:10,100:15:10": "overlap on the host",
		"0:4294967290:10":   "largest id",
		"-1:0:1":            "not a number",
	} {
		if _, err := ParseMaps(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

func TestFormatAndInside(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}}
	if got := string(Format(m)); got != "0 1000 1\n1 100000 65536\n" {
		t.Errorf("Format: %q", got)
	}
	if got := Inside(m); got != "0, 1-65536" {
		t.Errorf("Inside: %q", got)
	}
	if h, ok := ToHost(m, 70); !ok || h != 100069 {
		t.Errorf("ToHost(70) = %d %v", h, ok)
	}
	if _, ok := ToHost(m, 70000); ok {
		t.Error("70000 mapped")
	}
	for host, want := range map[uint32]uint32{1000: 0, 100000: 1, 100069: 70, 165535: 65536} {
		if in, ok := FromHost(m, host); !ok || in != want {
			t.Errorf("FromHost(%d) = %d %v, want %d", host, in, ok, want)
		}
	}
	for _, host := range []uint32{0, 999, 1001, 165536} {
		if in, ok := FromHost(m, host); ok {
			t.Errorf("FromHost(%d) = %d: not mapped", host, in)
		}
	}
}

const subuid = `# comment
alice:100000:65536
1001:300000:10
bob:200000:65536
alice:500000:100
broken:line
`

func TestSubIDs(t *testing.T) {
	got := SubIDs([]byte(subuid), "alice", 1000)
	if len(got) != 2 || got[0] != (Range{100000, 65536}) || got[1] != (Range{500000, 100}) {
		t.Errorf("alice: %v", got)
	}
	if got := SubIDs([]byte(subuid), "carol", 1001); len(got) != 1 || got[0].Start != 300000 {
		t.Errorf("by uid: %v", got)
	}
	if got := AllSubIDs([]byte(subuid)); len(got) != 4 {
		t.Errorf("all: %v", got)
	}
}

func TestRootlessMapsAndChecks(t *testing.T) {
	c := Caller{UID: 1000, GID: 1000, SubUIDs: []Range{{100000, 65536}}, SubGIDs: []Range{{100000, 65536}}, HaveHelper: true}
	u, g, full := c.RootlessMaps()
	if !full || len(u) != 2 || u[1] != (specs.LinuxIDMapping{ContainerID: 1, HostID: 100000, Size: 65536}) || len(g) != 2 {
		t.Errorf("full: %v %v %v", u, g, full)
	}
	c.HaveHelper = false
	if u, _, full := c.RootlessMaps(); full || len(u) != 1 || u[0].HostID != 1000 {
		t.Errorf("without newuidmap: %v %v", u, full)
	}
	if err := c.CheckAllowed("uid", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}, 1000, c.SubUIDs); err != nil {
		t.Errorf("own id: %v", err)
	}
	if err := c.CheckAllowed("uid", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 10}}, 1000, c.SubUIDs); err == nil || !strings.Contains(err.Error(), "newuidmap") {
		t.Errorf("subordinate ids without the helper: %v", err)
	}
	c.HaveHelper = true
	if err := c.CheckAllowed("uid", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 99999, Size: 10}}, 1000, c.SubUIDs); err == nil || !strings.Contains(err.Error(), "100000-165535") {
		t.Errorf("outside the range: %v", err)
	}
}

func TestAllocator(t *testing.T) {
	dir := t.TempDir()
	alive := map[string]bool{"a": true, "b": true}
	a := &Allocator{Dir: dir, Pool: Range{1 << 20, 3 * AutoSize}, Exclude: []Range{{1<<20 + AutoSize, 10}},
		Alive: func(id string) bool { return alive[id] }}
	ra, err := a.Allocate("a")
	if err != nil || ra.Start != 1<<20 {
		t.Fatalf("first: %v %v", ra, err)
	}
	rb, err := a.Allocate("b")
	if err != nil || rb.Start != 1<<20+2*AutoSize {
		t.Fatalf("second skips the excluded range: %v %v", rb, err)
	}
	if _, err := a.Allocate("c"); err == nil {
		t.Fatal("allocated beyond the pool")
	}
	alive["a"] = false // a died without releasing: its range is taken back
	if rc, err := a.Allocate("c"); err != nil || rc.Start != ra.Start {
		t.Fatalf("reclaim: %v %v", rc, err)
	}
	Release(dir, rb.Start, "not-b") // only the holder releases
	if _, err := os.Stat(filepath.Join(dir, "1179648")); err != nil {
		t.Errorf("range released by a stranger: %v", err)
	}
	Release(dir, rb.Start, "b")
	if _, err := os.Stat(filepath.Join(dir, "1179648")); err == nil {
		t.Error("range of b not released")
	}
}

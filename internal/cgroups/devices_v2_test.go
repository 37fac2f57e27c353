package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func denyDev(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := allowDev(typ, major, minor, access)
	r.Allow = false
	return r
}

var (
	denyAllDevs  = specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	allowAllDevs = specs.LinuxDeviceCgroup{Allow: true, Type: "a"}
)

// describe is f as "deny: c 1:3 rwm, b 8:* r".
func describe(f *deviceFilter) string {
	var ex []string
	for _, e := range f.exceptions {
		ex = append(ex, e.String())
	}
	return verb(f.allow) + ": " + strings.Join(ex, ", ")
}

func TestPlanDeviceFilter(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, c := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  string // describe(filter), or part of the error
	}{
		{"no rules: deny", nil, "deny: "},
		{"deny all", []specs.LinuxDeviceCgroup{denyAllDevs}, "deny: "},
		{"allow all", []specs.LinuxDeviceCgroup{allowAllDevs}, "allow: "},
		{"one device", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 1, 3, "rwm")}, "deny: c 1:3 rwm"},
		{"order of exceptions kept", []specs.LinuxDeviceCgroup{allowDev("c", 1, 5, "r"), allowDev("b", 8, -1, "rw"), allowDev("c", 1, 3, "w")},
			"deny: c 1:5 r, b 8:* rw, c 1:3 w"},
		{"access of the same devices merged", []specs.LinuxDeviceCgroup{allowDev("c", 1, 3, "r"), allowDev("c", 1, 3, "wm")}, "deny: c 1:3 rwm"},
		{"empty access is rwm", []specs.LinuxDeviceCgroup{allowDev("c", 1, 3, "")}, "deny: c 1:3 rwm"},
		{"nil numbers are any", []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "m"}}, "deny: c *:* m"},
		{"later deny takes access back", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 1, 3, "rwm"), denyDev("c", 1, 3, "w")}, "deny: c 1:3 rm"},
		{"later deny takes all back", []specs.LinuxDeviceCgroup{allowDev("c", 1, 3, "rw"), denyDev("c", 1, 3, "rwm")}, "deny: "},
		{"wider deny takes back what it covers", []specs.LinuxDeviceCgroup{allowDev("c", 1, 3, "rwm"), allowDev("c", 1, 5, "r"), allowDev("c", 2, 3, "r"), denyDev("c", 1, -1, "r")},
			"deny: c 1:3 wm, c 2:3 r"},
		{"deny of other access leaves a wildcard alone", []specs.LinuxDeviceCgroup{allowDev("c", -1, -1, "m"), denyDev("c", 1, 3, "rw")}, "deny: c *:* m"},
		{"deny of the other type leaves it alone", []specs.LinuxDeviceCgroup{allowDev("c", 1, -1, "rwm"), denyDev("b", 1, 3, "rwm")}, "deny: c 1:* rwm"},
		{"type a resets", []specs.LinuxDeviceCgroup{allowDev("c", 1, 3, "rwm"), denyAllDevs, allowDev("c", 1, 5, "r")}, "deny: c 1:5 r"},
		{"type a ignores numbers and access", []specs.LinuxDeviceCgroup{allowAllDevs, denyDev("c", 1, 3, "r"), {Allow: false, Type: "a", Major: i64(1), Access: "m"}}, "deny: "},
		{"deny list", []specs.LinuxDeviceCgroup{allowAllDevs, denyDev("c", 10, -1, "w"), denyDev("b", -1, -1, "m")}, "allow: c 10:* w, b *:* m"},
		{"allow takes back a denial", []specs.LinuxDeviceCgroup{allowAllDevs, denyDev("c", 10, 200, "rwm"), allowDev("c", 10, 200, "rw")}, "allow: c 10:200 m"},
		{"numbers up to 2^32-1", []specs.LinuxDeviceCgroup{allowDev("c", math.MaxUint32, 0, "r")}, "deny: c 4294967295:0 r"},
		{"hole in an allowed wildcard", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 1, -1, "rwm"), denyDev("c", 1, 3, "r")},
			"linux.resources.devices[2] (deny c 1:3 r): cannot make a hole in the earlier rule allow c 1:* rwm"},
		{"hole across wildcards", []specs.LinuxDeviceCgroup{allowDev("c", -1, 3, "r"), denyDev("c", 1, -1, "rw")}, "hole in the earlier rule allow c *:3 r"},
		{"hole in a denied wildcard", []specs.LinuxDeviceCgroup{allowAllDevs, denyDev("b", -1, -1, "rwm"), allowDev("b", 8, 0, "r")}, "devices[2] (allow b 8:0 r): cannot make a hole"},
		{"bad type", []specs.LinuxDeviceCgroup{{Type: "p"}}, `linux.resources.devices[0]: type "p": want a, b or c`},
		{"bad access", []specs.LinuxDeviceCgroup{allowAllDevs, allowDev("c", 1, 3, "rx")}, `devices[1]: access "rx": want letters of rwm`},
		{"bad major", []specs.LinuxDeviceCgroup{allowDev("c", -2, 3, "r")}, "devices[0]: major -2: want 0 to 4294967295, or -1 for any"},
		{"bad minor", []specs.LinuxDeviceCgroup{allowDev("c", 1, 1<<32, "r")}, "minor 4294967296"},
	} {
		f, err := planDeviceFilter(c.rules)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = describe(f)
		}
		if (err != nil && !strings.Contains(got, c.want)) || (err == nil && got != c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestPlanDeviceFilterBoxRules(t *testing.T) {
	rules := DeviceRules([]specs.LinuxDeviceCgroup{denyAllDevs, allowDev("b", 8, 0, "r")}, []specs.LinuxDevice{{Type: "c", Major: 10, Minor: 229}})
	f, err := planDeviceFilter(rules)
	if err != nil {
		t.Fatal(err)
	}
	want := "deny: b 8:0 r, c *:* m, b *:* m, c 1:3 rwm, c 1:5 rwm, c 1:7 rwm, c 1:8 rwm, c 1:9 rwm, " +
		"c 5:0 rwm, c 5:1 rwm, c 5:2 rwm, c 136:* rwm, c 10:200 rwm, c 10:229 rwm"
	if got := describe(f); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// A deviceProbe is one access to a device and whether the filter allows it.
type deviceProbe struct {
	typ          byte // 'c' or 'b'
	major, minor int64
	access       string // "r", "w", "rw" (open) or "m" (mknod)
	allow        bool
}

func (p deviceProbe) String() string {
	return fmt.Sprintf("%c %d:%d %s", p.typ, p.major, p.minor, p.access)
}

func probe(typ byte, major, minor int64, access string, allow bool) deviceProbe {
	return deviceProbe{typ, major, minor, access, allow}
}

// deviceCases are rule lists and accesses they allow or deny, checked by
// running the compiled program both in a small interpreter
// (TestDeviceProgram) and in the kernel (TestDeviceFilterKernel). The
// kernel opens the devices probed, so besides c 1:3, 1:5 and 1:7 (null,
// zero, full) they are majors 120 to 127, reserved for local use and
// checked free in /proc/devices: opening them fails with ENXIO when the
// filter lets the access through, EPERM when it does not.
var deviceCases = []struct {
	name   string
	rules  []specs.LinuxDeviceCgroup
	probes []deviceProbe
}{
	{"nothing allowed", []specs.LinuxDeviceCgroup{denyAllDevs}, []deviceProbe{
		probe('c', 1, 3, "r", false), probe('c', 120, 0, "rw", false), probe('b', 120, 0, "r", false), probe('c', 120, 1, "m", false),
	}},
	{"everything allowed", []specs.LinuxDeviceCgroup{allowAllDevs}, []deviceProbe{
		probe('c', 1, 3, "rw", true), probe('c', 121, 5, "m", true), probe('b', 120, 1, "rw", true), probe('b', 120, 1, "m", true),
	}},
	{"one device", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 1, 3, "rwm")}, []deviceProbe{
		probe('c', 1, 3, "r", true), probe('c', 1, 3, "w", true), probe('c', 1, 3, "rw", true), probe('c', 1, 3, "m", true),
		probe('c', 1, 5, "r", false), probe('c', 1, 5, "m", false), probe('b', 1, 3, "r", false), probe('b', 1, 3, "m", false),
	}},
	{"access subsets", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 120, -1, "r"), allowDev("c", 120, 1, "w")}, []deviceProbe{
		probe('c', 120, 1, "r", true), probe('c', 120, 1, "w", true),
		probe('c', 120, 1, "rw", false), // as in v1: no one rule allows both
		probe('c', 120, 2, "r", true), probe('c', 120, 2, "w", false), probe('c', 120, 2, "m", false),
	}},
	{"merged access", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 121, 0, "r"), allowDev("c", 121, 0, "w")}, []deviceProbe{
		probe('c', 121, 0, "rw", true), probe('c', 121, 0, "m", false),
	}},
	{"last match wins", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 122, -1, "rwm"), denyDev("c", 122, -1, "w")}, []deviceProbe{
		probe('c', 122, 4, "r", true), probe('c', 122, 4, "w", false), probe('c', 122, 4, "rw", false), probe('c', 122, 4, "m", true),
	}},
	{"wider deny takes back narrower allows", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 123, 1, "rwm"), allowDev("c", 123, 2, "r"), denyDev("c", 123, -1, "rw")}, []deviceProbe{
		probe('c', 123, 1, "r", false), probe('c', 123, 1, "m", true), probe('c', 123, 2, "r", false),
	}},
	{"type a resets", []specs.LinuxDeviceCgroup{allowDev("c", 1, 3, "rwm"), denyAllDevs, allowDev("c", 1, 5, "r")}, []deviceProbe{
		probe('c', 1, 3, "r", false), probe('c', 1, 5, "r", true), probe('c', 1, 5, "w", false),
	}},
	{"deny list", []specs.LinuxDeviceCgroup{allowAllDevs, denyDev("c", 124, -1, "w"), denyDev("b", -1, -1, "m")}, []deviceProbe{
		probe('c', 124, 0, "r", true), probe('c', 124, 0, "w", false),
		probe('c', 124, 0, "rw", false), // a denial matches an access using any of its bits
		probe('c', 125, 0, "w", true), probe('c', 125, 0, "m", true), probe('b', 120, 0, "m", false), probe('b', 120, 0, "r", true),
	}},
	{"allow takes back a denial", []specs.LinuxDeviceCgroup{allowAllDevs, denyDev("c", 124, -1, "rwm"), allowDev("c", 124, -1, "r")}, []deviceProbe{
		probe('c', 124, 3, "r", true), probe('c', 124, 3, "w", false), probe('c', 124, 3, "m", false),
	}},
	{"any major", []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", -1, 7, "rw")}, []deviceProbe{
		probe('c', 1, 7, "r", true), probe('c', 126, 7, "rw", true), probe('c', 126, 8, "r", false), probe('b', 126, 7, "r", false),
	}},
	{"box defaults", DeviceRules([]specs.LinuxDeviceCgroup{denyAllDevs}, []specs.LinuxDevice{{Type: "c", Major: 126, Minor: 9}}), []deviceProbe{
		probe('c', 1, 3, "rw", true), probe('c', 1, 5, "r", true), probe('c', 127, 0, "m", true), probe('b', 127, 0, "m", true),
		probe('c', 127, 0, "r", false), probe('b', 127, 0, "r", false), probe('c', 126, 9, "rw", true),
	}},
}

func (p deviceProbe) ctx() (typ, access uint32) {
	typ = unix.BPF_DEVCG_DEV_CHAR
	if p.typ == 'b' {
		typ = unix.BPF_DEVCG_DEV_BLOCK
	}
	for _, c := range p.access {
		access |= map[rune]uint32{'r': unix.BPF_DEVCG_ACC_READ, 'w': unix.BPF_DEVCG_ACC_WRITE, 'm': unix.BPF_DEVCG_ACC_MKNOD}[c]
	}
	return typ, access
}

// runDeviceProgram interprets insns, as the kernel would for a device
// access: only the instructions deviceProgram emits are known.
func runDeviceProgram(t *testing.T, insns []bpfInsn, typ, access, major, minor uint32) uint64 {
	t.Helper()
	ctx := []uint32{access<<16 | typ, major, minor}
	var r [11]uint64
	for pc, steps := 0, 0; steps < 10000; steps++ {
		if pc < 0 || pc >= len(insns) {
			t.Fatalf("pc %d is outside the program (%d instructions)", pc, len(insns))
		}
		ins := insns[pc]
		src := uint64(int64(ins.imm)) // an immediate is sign-extended
		if ins.op&unix.BPF_X != 0 {
			src = r[ins.src]
		}
		switch cls, op := ins.op&0x07, ins.op&0xf0; {
		case ins.op == unix.BPF_LDX|unix.BPF_MEM|unix.BPF_W && ins.src == 1:
			r[ins.dst] = uint64(ctx[ins.off/4])
		case cls == unix.BPF_ALU: // 32 bits, the result zero-extended
			a, b := uint32(r[ins.dst]), uint32(src)
			switch op {
			case unix.BPF_MOV:
				a = b
			case unix.BPF_AND:
				a &= b
			case unix.BPF_RSH:
				a >>= b
			default:
				t.Fatalf("%d: unexpected %+v", pc, ins)
			}
			r[ins.dst] = uint64(a)
		case cls == unix.BPF_JMP:
			var jump bool
			switch op {
			case unix.BPF_EXIT:
				return r[0]
			case unix.BPF_JEQ:
				jump = r[ins.dst] == src
			case unix.BPF_JNE:
				jump = r[ins.dst] != src
			case unix.BPF_JSET:
				jump = r[ins.dst]&src != 0
			default:
				t.Fatalf("%d: unexpected %+v", pc, ins)
			}
			if jump {
				pc += int(ins.off)
			}
		default:
			t.Fatalf("%d: unexpected %+v", pc, ins)
		}
		pc++
	}
	t.Fatal("the program does not end")
	return 0
}

func TestDeviceProgram(t *testing.T) {
	for _, c := range deviceCases {
		f, err := planDeviceFilter(c.rules)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		insns := deviceProgram(f)
		checkDeviceProgramShape(t, c.name, insns, len(f.exceptions))
		for _, p := range c.probes {
			typ, access := p.ctx()
			got := runDeviceProgram(t, insns, typ, access, uint32(p.major), uint32(p.minor))
			if want := verdict(p.allow); got != uint64(want) {
				t.Errorf("%s: %s: program returns %d, want %d\n%v", c.name, p, got, want, insns)
			}
		}
	}
}

// checkDeviceProgramShape checks that insns loads the context, has one
// block per exception, each ending in an exit, and that every jump lands
// at the start of a later block (or at the default answer).
func checkDeviceProgramShape(t *testing.T, name string, insns []bpfInsn, exceptions int) {
	t.Helper()
	if n := len(encode(insns)); n != 8*len(insns) {
		t.Errorf("%s: %d bytes for %d instructions", name, n, len(insns))
	}
	isExit := func(i bpfInsn) bool { return i.op == unix.BPF_JMP|unix.BPF_EXIT }
	exits := 0
	for pc, ins := range insns {
		if cls := ins.op & 0x07; pc < 6 && cls != unix.BPF_LDX && cls != unix.BPF_ALU {
			t.Errorf("%s: %d: %+v, want the context loaded first", name, pc, ins)
		}
		if isExit(ins) {
			exits++
		}
		if !ins.isJump() {
			continue
		}
		to := pc + 1 + int(ins.off)
		if ins.off < 0 || to >= len(insns) || !isExit(insns[to-1]) {
			t.Errorf("%s: %d: %+v jumps to %d, not to the start of a block", name, pc, ins, to)
		}
	}
	if exits != exceptions+1 {
		t.Errorf("%s: %d exits, want one per exception and one for the default", name, exits)
	}
}

func TestDeviceProgramLargeNumbers(t *testing.T) {
	f, err := planDeviceFilter([]specs.LinuxDeviceCgroup{allowDev("c", math.MaxUint32, 1<<31, "rwm"), allowDev("c", 1<<31-1, -1, "r")})
	if err != nil {
		t.Fatal(err)
	}
	insns := deviceProgram(f)
	checkDeviceProgramShape(t, "large numbers", insns, 2)
	char := uint32(unix.BPF_DEVCG_DEV_CHAR)
	read := uint32(unix.BPF_DEVCG_ACC_READ)
	for _, c := range []struct {
		major, minor uint32
		want         uint64
	}{{math.MaxUint32, 1 << 31, 1}, {math.MaxUint32, 1<<31 - 1, 0}, {1<<31 - 1, 1 << 31, 1}, {1<<31 - 1, 0, 1}, {1 << 31, 1 << 31, 0}, {0, 0, 0}} {
		if got := runDeviceProgram(t, insns, char, read, c.major, c.minor); got != c.want {
			t.Errorf("c %d:%d r: %d, want %d", c.major, c.minor, got, c.want)
		}
	}
}

func TestAttachDeviceFilterErrors(t *testing.T) {
	err := attachDeviceFilter("/nonexistent/box", []specs.LinuxDeviceCgroup{denyAllDevs})
	want := "linux.resources.devices: attach device filter to cgroup /nonexistent/box: open: "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("got %v, want %q... keeping ENOENT", err, want)
	}
	err = attachDeviceFilter("/nonexistent/box", []specs.LinuxDeviceCgroup{allowDev("c", 1, -1, "rwm"), denyDev("c", 1, 3, "rwm")})
	if err == nil || !strings.Contains(err.Error(), "hole") {
		t.Errorf("got %v, want the rules refused before the cgroup is opened", err)
	}
}

// newDevicesBox makes a cgroup for device filter tests in the host's
// cgroup2 tree, removed when the test ends. On a pure v2 host its Manager
// has the host's layout; on a hybrid one, that tree alone, so that device
// rules become an eBPF program there too: the kernel runs the device
// programs of a process's cgroup2 cgroup on hybrid hosts as well (before
// the v1 rules), so these tests run on both.
func newDevicesBox(t *testing.T, name string) *Manager {
	t.Helper()
	requireRootForCgroups(t)
	l, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	v2 := l.V2()
	if v2 == nil {
		if os.Getenv("NSBOX_REQUIRE_ALL") != "" {
			t.Fatal("no cgroup2 tree is mounted, and NSBOX_REQUIRE_ALL forbids skipping a device filter test")
		}
		t.Skip("no cgroup2 tree is mounted: device filters are eBPF programs attached to cgroup2 directories")
	}
	m := &Manager{Layout: l, Path: fmt.Sprintf("/nsbox-test-%s-%d", name, os.Getpid())}
	if !l.Unified() {
		t.Logf("hybrid host: the test takes the cgroup2 tree at %s alone, where the kernel enforces device programs too (next to any v1 devices rules)", v2.Mount)
		m.Layout = &Layout{Hierarchies: []Hierarchy{*v2}}
	}
	dir := m.Dir(v2)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	return m
}

// deviceFiltersOf lists the device programs attached to cgroup dir, and
// how many of them are nsbox's.
func deviceFiltersOf(t *testing.T, dir string) (all, ours int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ids, err := attachedDevicePrograms(fd)
	if err != nil {
		t.Fatal(err)
	}
	progs, err := deviceFilters(fd)
	closeAll(progs)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids), len(progs)
}

// devicesHelper is a process in a box that opens and makes device nodes
// when asked (see TestDevicesHelperProcess).
type devicesHelper struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Reader
}

// startDevicesHelper starts the helper in the cgroup open at cgroupFD, at
// clone time (clone3 with CLONE_INTO_CGROUP).
func startDevicesHelper(t *testing.T, cgroupFD int) *devicesHelper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDevicesHelperProcess$")
	cmd.Env = append(os.Environ(), "NSBOX_DEVICES_TEST_HELPER=probe")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgroupFD}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the helper in the box's cgroup: %v", err)
	}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	})
	return &devicesHelper{t, in, bufio.NewReader(out)}
}

// do sends the helper one command and returns its answer: "ok" or an
// errno name.
func (h *devicesHelper) do(format string, args ...any) string {
	h.t.Helper()
	fmt.Fprintf(h.in, format+"\n", args...)
	line, err := h.out.ReadString('\n')
	if err != nil {
		h.t.Fatalf("helper: %v", err)
	}
	return strings.TrimSpace(line)
}

// try makes the access p names, from the helper: it opens a node of that
// device made in dir beforehand, or makes one. It reports whether the
// device cgroup let the access through.
func (h *devicesHelper) try(dir string, p deviceProbe) bool {
	h.t.Helper()
	kind := uint32(unix.S_IFCHR)
	if p.typ == 'b' {
		kind = unix.S_IFBLK
	}
	path := filepath.Join(dir, fmt.Sprintf("%c-%d-%d", p.typ, p.major, p.minor))
	var got string
	if p.access == "m" {
		got = h.do("mknod %s %d %d %d", path+"-m", kind, p.major, p.minor)
	} else {
		err := unix.Mknod(path, kind|0o600, int(unix.Mkdev(uint32(p.major), uint32(p.minor))))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			h.t.Fatal(err)
		}
		got = h.do("open %s %s", path, p.access)
	}
	return got != "EPERM"
}

// TestDevicesHelperProcess is the helper of the device tests, run in a box
// when NSBOX_DEVICES_TEST_HELPER is set: with "probe" it answers commands
// read from stdin ("open PATH r|w|rw", "mknod PATH MODE MAJOR MINOR") with
// "ok" or the errno name; with "unprivileged" it drops its capabilities,
// attaches a filter to NSBOX_DEVICES_TEST_DIR and prints the error.
func TestDevicesHelperProcess(t *testing.T) {
	switch os.Getenv("NSBOX_DEVICES_TEST_HELPER") {
	case "probe":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			var err error
			switch {
			case len(f) == 3 && f[0] == "open":
				flags := map[string]int{"r": unix.O_RDONLY, "w": unix.O_WRONLY, "rw": unix.O_RDWR}[f[2]]
				var fd int
				if fd, err = unix.Open(f[1], flags|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
					unix.Close(fd)
				}
			case len(f) == 5 && f[0] == "mknod":
				n := make([]uint64, 3)
				for i := range n {
					n[i], _ = strconv.ParseUint(f[i+2], 10, 32)
				}
				if err = unix.Mknod(f[1], uint32(n[0])|0o600, int(unix.Mkdev(uint32(n[1]), uint32(n[2])))); err == nil {
					unix.Unlink(f[1])
				}
			default:
				err = unix.EINVAL
			}
			if errno, ok := err.(unix.Errno); ok {
				fmt.Println(unix.ErrnoName(errno))
			} else if err != nil {
				fmt.Println(err)
			} else {
				fmt.Println("ok")
			}
		}
	case "unprivileged":
		// Capabilities belong to a thread: drop them on this one, which
		// makes every BPF call below.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var none [2]unix.CapUserData
		if err := unix.Capset(&hdr, &none[0]); err != nil {
			fmt.Println("capset:", err)
			os.Exit(1)
		}
		err := attachDeviceFilter(os.Getenv("NSBOX_DEVICES_TEST_DIR"), []specs.LinuxDeviceCgroup{denyAllDevs})
		fmt.Printf("EPERM=%v %v\n", errors.Is(err, unix.EPERM), err)
	default:
		return
	}
	os.Exit(0)
}

// checkProbeMajorsFree fails the test if a driver holds one of the majors
// the probes open (120 to 127): opening a real device can have effects.
func checkProbeMajorsFree(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/proc/devices")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if n, err := strconv.Atoi(f0(f)); err == nil && n >= 120 && n <= 127 {
			t.Fatalf("major %d is in use (%q in /proc/devices): the probes would open a real device", n, line)
		}
	}
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// TestDeviceFilterKernel attaches the program of each of deviceCases in
// turn to one cgroup, which holds one process all along, and has that
// process make the probed accesses.
func TestDeviceFilterKernel(t *testing.T) {
	m := newDevicesBox(t, "filter")
	checkProbeMajorsFree(t)
	dir := m.Dir(&m.Layout.Hierarchies[0])
	fd, err := m.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	h := startDevicesHelper(t, fd)
	nodes := t.TempDir()
	for _, c := range deviceCases {
		if err := attachDeviceFilter(dir, c.rules); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if all, ours := deviceFiltersOf(t, dir); all != 1 || ours != 1 {
			t.Errorf("%s: %d programs attached, %d of them nsbox's; want the one just attached", c.name, all, ours)
		}
		for _, p := range c.probes {
			if got := h.try(nodes, p); got != p.allow {
				t.Errorf("%s: %s: allowed %v, want %v", c.name, p, got, p.allow)
			}
		}
	}
	// Numbers beyond int32, compared through a register, pass the verifier.
	if err := attachDeviceFilter(dir, []specs.LinuxDeviceCgroup{allowDev("c", math.MaxUint32, math.MaxUint32, "r")}); err != nil {
		t.Errorf("large numbers: %v", err)
	}
}

// TestDevicesV2 applies device rules through Manager.Set, as nsbox does
// for a box on cgroup v2, to a cgroup holding a process, then updates them.
func TestDevicesV2(t *testing.T) {
	m := newDevicesBox(t, "devices")
	dir := m.Dir(&m.Layout.Hierarchies[0])
	onlyNull := []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 1, 3, "rwm")}
	before := openFDs(t)
	if err := m.Set(&Plan{Devices: onlyNull}); err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t) - before; n != 0 {
		t.Errorf("Set left %d file descriptors open; the filter must not depend on them", n)
	}
	fd, err := m.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	h := startDevicesHelper(t, fd)
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err != nil || len(strings.Fields(string(b))) != 1 {
		t.Fatalf("the box should hold the helper: cgroup.procs %q, %v", b, err)
	}
	nodes := t.TempDir()
	expect := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %s, want %s", what, got, want)
		}
	}
	expect("open /dev/zero", h.do("open /dev/zero r"), "EPERM")
	expect("open /dev/null", h.do("open /dev/null rw"), "ok")
	expect("mknod c 1:5", h.do("mknod %s/zero %d 1 5", nodes, unix.S_IFCHR), "EPERM")
	expect("mknod c 1:3", h.do("mknod %s/null %d 1 3", nodes, unix.S_IFCHR), "ok")

	if err := m.Set(&Plan{Devices: append(onlyNull, allowDev("c", 1, 5, "rwm"))}); err != nil {
		t.Fatal(err)
	}
	expect("open /dev/zero after the update", h.do("open /dev/zero r"), "ok")
	expect("mknod c 1:5 after the update", h.do("mknod %s/zero %d 1 5", nodes, unix.S_IFCHR), "ok")
	expect("open /dev/full after the update", h.do("open /dev/full r"), "EPERM")
	if all, ours := deviceFiltersOf(t, dir); all != 1 || ours != 1 {
		t.Errorf("%d programs attached, %d of them nsbox's; want the new one only", all, ours)
	}

	// Rules the filter cannot express are refused before anything changes.
	err = m.Set(&Plan{Devices: []specs.LinuxDeviceCgroup{denyAllDevs, allowDev("c", 1, -1, "rwm"), denyDev("c", 1, 5, "r")}})
	if err == nil || !strings.Contains(err.Error(), "linux.resources.devices[2]") {
		t.Errorf("a rule making a hole: %v, want an error naming it", err)
	}
	expect("open /dev/zero after a refused update", h.do("open /dev/zero r"), "ok")
	if all, ours := deviceFiltersOf(t, dir); all != 1 || ours != 1 {
		t.Errorf("after a refused update: %d programs attached, %d of them nsbox's", all, ours)
	}
}

// TestDeviceFilterUnprivileged checks that a process the kernel refuses
// BPF to gets an error saying so, with the errno.
func TestDeviceFilterUnprivileged(t *testing.T) {
	m := newDevicesBox(t, "unpriv")
	dir := m.Dir(&m.Layout.Hierarchies[0])
	cmd := exec.Command(os.Args[0], "-test.run=^TestDevicesHelperProcess$")
	cmd.Env = append(os.Environ(), "NSBOX_DEVICES_TEST_HELPER=unprivileged", "NSBOX_DEVICES_TEST_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := "EPERM=true linux.resources.devices: attach device filter to cgroup " + dir + ": load BPF program: "
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("got %q, want %q...", out, want)
	}
	if all, _ := deviceFiltersOf(t, dir); all != 0 {
		t.Errorf("%d programs attached, want none", all)
	}
}

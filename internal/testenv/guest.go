package testenv

import (
	"bufio"
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// GuestEnv is set (to "1") in the environment of every test binary the
// guest runs: the tests use the given nsbox binary (GuestBinEnv) instead of
// building one, and do not boot a guest of their own.
const (
	GuestEnv    = "NSBOX_GUEST"
	GuestBinEnv = "NSBOX_BIN"
)

// Guest describes a Linux guest, booted from an initramfs on a stock
// kernel, that runs test binaries on a pure cgroup v2 hierarchy and reports
// on its console:
//
//	NSBOX-GUEST-SETUP-FAILED: <command>  (and nothing else, if set-up fails)
//	NSBOX-GUEST-CONTROLLERS <cgroup.controllers of the root>
//	NSBOX-GUEST-BEGIN <name>
//	... the binary's -test.v output ...
//	NSBOX-GUEST-RESULT <name> <exit code>
//	NSBOX-GUEST-DONE
//
// then powers off.
type Guest struct {
	// Modules is the kernel's module directory, /lib/modules/<release>.
	// /tmp, where the tests make their root filesystems, is ext4 on a RAM
	// disk (brd), as on a host's disk: Linux 6.1 cannot id-map tmpfs (6.3
	// can), and nsbox id-maps a box's root filesystem.
	Modules string
	Nsbox   string     // host path of the static nsbox binary: /nsbox in the guest
	Runs    []GuestRun // run in order
	Env     []string   // exported to every run (GuestEnv and GuestBinEnv are added)
}

// GuestRun is one compiled test binary (go test -c, CGO_ENABLED=0) and its
// arguments.
type GuestRun struct {
	Name   string // shown in the markers; the binary is /tests/<Name>.test
	Binary string // host path
	Args   []string
}

// Console markers the guest prints.
const (
	markControllers = "NSBOX-GUEST-CONTROLLERS"
	markBegin       = "NSBOX-GUEST-BEGIN"
	markResult      = "NSBOX-GUEST-RESULT"
	markDone        = "NSBOX-GUEST-DONE"
	markSetupFailed = "NSBOX-GUEST-SETUP-FAILED"
)

// initScript is the guest's /init. pivot_root(2), which every box with a
// rootfs does, fails while the root is the initial ramfs (even in a new
// mount namespace), so it first moves the files onto a tmpfs and
// switch_root's into the second stage.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir /newroot
mount -t tmpfs -o mode=0755 root /newroot
for f in /*; do [ "$f" = /newroot ] || cp -a "$f" /newroot/; done
exec switch_root /newroot /guest.sh
`

// InitScript is the second stage of the guest's init: mounts, then the
// runs, then power off. A step of the set-up that fails is reported with
// the NSBOX-GUEST-SETUP-FAILED marker and ends the guest.
func (g Guest) InitScript() string {
	setup := []string{
		"mount -t proc proc /proc",
		"mount -t sysfs sysfs /sys",
		"mount -t devtmpfs devtmpfs /dev",
		"mkdir -p /dev/pts /dev/shm",
		"mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts",
		"mount -t tmpfs -o mode=1777 shm /dev/shm",
		"mount -t cgroup2 cgroup2 /sys/fs/cgroup",
		// Kernel messages (of the OOM kills the tests cause) would cut
		// into the tests' output on the console.
		"dmesg -n 1",
	}
	for _, m := range tmpModules {
		setup = append(setup, "insmod /modules/"+m+".ko")
	}
	setup = append(setup,
		fmt.Sprintf("insmod /modules/brd.ko rd_nr=1 rd_size=%d", tmpSizeMiB<<10),
		"mke2fs -F -m 0 /dev/ram0 >/dev/null",
		"mount -t ext4 /dev/ram0 /tmp",
		"chmod 1777 /tmp",
		"cd /tmp",
	)
	var b strings.Builder
	b.WriteString("#!/bin/busybox sh\nexport PATH=/bin HOME=/root TMPDIR=/tmp\n")
	fmt.Fprintf(&b, "fail() { echo \"%s: $1\"; dmesg | tail -n 20; poweroff -f; }\n", markSetupFailed)
	for _, step := range setup {
		fmt.Fprintf(&b, "%s || fail %s\n", step, shellQuote(step))
	}
	fmt.Fprintf(&b, "echo \"%s $(cat /sys/fs/cgroup/cgroup.controllers)\"\n", markControllers)
	env := append([]string{GuestEnv + "=1", GuestBinEnv + "=/nsbox"}, g.Env...)
	for _, e := range env {
		fmt.Fprintf(&b, "export %s\n", shellQuote(e))
	}
	for _, r := range g.Runs {
		args := []string{"/tests/" + r.Name + ".test"}
		args = append(args, r.Args...)
		for i := range args {
			args[i] = shellQuote(args[i])
		}
		fmt.Fprintf(&b, "echo %s %s\n", markBegin, r.Name)
		fmt.Fprintf(&b, "%s </dev/null 2>&1\n", strings.Join(args, " "))
		fmt.Fprintf(&b, "code=$?\necho\necho %s %s $code\n", markResult, r.Name)
		b.WriteString("[ $code = 0 ] || { echo \"last kernel messages:\"; dmesg | tail -n 40; }\n")
	}
	fmt.Fprintf(&b, "echo %s\npoweroff -f\n", markDone)
	return b.String()
}

// tmpModules are ext4 and what it needs (crc32c, which it asks for by
// name), in the order they are loaded; brd comes last. ext4 mounts the
// ext2 file system busybox's mke2fs makes.
var tmpModules = []string{"crc32c_generic", "crc16", "mbcache", "jbd2", "ext4"}

// tmpSizeMiB is the size of the RAM disk of /tmp; it takes memory as it is
// written.
const tmpSizeMiB = 384

// Initramfs lists the guest's files: /init, /guest.sh, /bin/busybox (the
// static one of Busybox), /dev/console, /modules/*.ko, /nsbox and
// /tests/<name>.test.
func (g Guest) Initramfs() ([]CpioEntry, error) {
	bb, err := Busybox()
	if err != nil {
		return nil, err
	}
	mods, err := moduleFiles(g.Modules, append(slices.Clone(tmpModules), "brd"))
	if err != nil {
		return nil, err
	}
	entries := []CpioEntry{
		{Path: "init", Mode: 0o755, Data: []byte(initScript)},
		{Path: "guest.sh", Mode: 0o755, Data: []byte(g.InitScript())},
		{Path: "bin/busybox", Mode: 0o755, Host: bb},
		{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Dev: [2]uint32{5, 1}},
		{Path: "nsbox", Mode: 0o755, Host: g.Nsbox},
	}
	for _, d := range []string{"proc", "sys", "tmp", "root", "etc", "run", "mnt"} {
		entries = append(entries, CpioEntry{Path: d, Mode: fs.ModeDir | 0o755})
	}
	entries = append(entries, CpioEntry{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		CpioEntry{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\n")})
	for _, m := range mods {
		entries = append(entries, CpioEntry{Path: "modules/" + filepath.Base(m), Mode: 0o644, Host: m})
	}
	for _, r := range g.Runs {
		entries = append(entries, CpioEntry{Path: "tests/" + r.Name + ".test", Mode: 0o755, Host: r.Binary})
	}
	return entries, nil
}

// WriteInitramfs writes the guest's initramfs, an uncompressed newc cpio
// archive, to path.
func (g Guest) WriteInitramfs(path string) error {
	entries, err := g.Initramfs()
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = WriteCpio(w, entries)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write initramfs %s: %w", path, err)
	}
	return nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// GuestReport is what the guest's console says.
type GuestReport struct {
	Controllers []string // of the root cgroup; nil without the marker
	SetupFailed string   // the set-up step that failed, if one did
	Boot        []string // the console's lines before the first run
	Runs        map[string]*GuestRunReport
	Done        bool // the guest reached the end of its script
}

// GuestRunReport is what one test binary did in the guest.
type GuestRunReport struct {
	Code     int      // exit code; -1 without a result marker
	Passed   []string // tests and subtests, in order
	Skipped  []string
	Failed   []string
	Output   map[string][]string // a test's own lines (its logs, panics)
	Lines    []string            // every line between the markers
	After    []string            // lines after the result marker: kernel messages on failure
	Finished bool
}

var (
	testStart  = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	testResult = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
)

// ParseGuestConsole reads the guest's console output: the markers and,
// between them, go test -v output.
func ParseGuestConsole(out string) GuestReport {
	rep := GuestReport{Runs: map[string]*GuestRunReport{}}
	var cur, last *GuestRunReport
	test := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if len(rep.Runs) == 0 && !strings.Contains(line, markBegin) {
			rep.Boot = append(rep.Boot, line)
		}
		if i := strings.Index(line, markSetupFailed+": "); i >= 0 {
			rep.SetupFailed = line[i+len(markSetupFailed)+2:]
			continue
		}
		if i := strings.Index(line, markControllers); i >= 0 {
			rep.Controllers = strings.Fields(line[i+len(markControllers):])
			continue
		}
		if i := strings.Index(line, markBegin+" "); i >= 0 {
			name := strings.TrimSpace(line[i+len(markBegin)+1:])
			cur = &GuestRunReport{Code: -1, Output: map[string][]string{}}
			rep.Runs[name] = cur
			test, last = "", nil
			continue
		}
		if i := strings.Index(line, markResult+" "); i >= 0 {
			f := strings.Fields(line[i+len(markResult)+1:])
			if len(f) == 2 && rep.Runs[f[0]] != nil {
				r := rep.Runs[f[0]]
				r.Finished = true
				if r.Code, _ = strconv.Atoi(f[1]); f[1] != strconv.Itoa(r.Code) {
					r.Code = -1
				}
				last = r
			}
			cur = nil
			continue
		}
		if strings.Contains(line, markDone) {
			rep.Done = true
			last = nil
			continue
		}
		if cur == nil {
			if last != nil {
				last.After = append(last.After, line)
			}
			continue
		}
		cur.Lines = append(cur.Lines, line)
		if m := testStart.FindStringSubmatch(line); m != nil {
			test = m[1]
			continue
		}
		if m := testResult.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "PASS":
				cur.Passed = append(cur.Passed, m[2])
			case "FAIL":
				cur.Failed = append(cur.Failed, m[2])
			case "SKIP":
				cur.Skipped = append(cur.Skipped, m[2])
			}
			test = m[2]
			continue
		}
		if line == "PASS" || line == "FAIL" { // the binary's summary
			continue
		}
		cur.Output[test] = append(cur.Output[test], line)
	}
	return rep
}

// Kernel returns the newest /boot/vmlinuz-* (Debian's linux-image-amd64)
// and its module directory, /lib/modules/<release>.
func Kernel() (kernel, modules string, err error) {
	paths, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(paths) == 0 {
		return "", "", fmt.Errorf("no kernel in /boot/vmlinuz-* (apt-get install linux-image-amd64)")
	}
	slices.SortFunc(paths, compareVersions)
	kernel = paths[len(paths)-1]
	return kernel, "/lib/modules/" + strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-"), nil
}

// compareVersions orders strings by their runs of digits as numbers and the
// rest as text: vmlinuz-6.1.0-9 < vmlinuz-6.1.0-10 < vmlinuz-6.10.0-1.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		na, ra := leadingRun(a)
		nb, rb := leadingRun(b)
		var c int
		if isDigit(na[0]) && isDigit(nb[0]) {
			ia, _ := strconv.ParseUint(na, 10, 64)
			ib, _ := strconv.ParseUint(nb, 10, 64)
			c = cmp.Compare(ia, ib)
		} else {
			c = strings.Compare(na, nb)
		}
		if c != 0 {
			return c
		}
		a, b = ra, rb
	}
	return cmp.Compare(len(a), len(b))
}

// leadingRun splits s after its leading run of digits or of non-digits.
func leadingRun(s string) (string, string) {
	i := 1
	for i < len(s) && isDigit(s[i]) == isDigit(s[0]) {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// moduleFiles finds the named modules in dir (/lib/modules/<release>)
// through its modules.dep, and checks that each one's dependencies are
// among the modules named before it.
func moduleFiles(dir string, names []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w (the kernel's linux-image package has them)", err)
	}
	deps := map[string][]string{} // module name → names of its dependencies
	paths := map[string]string{}
	modName := func(p string) string { return strings.TrimSuffix(filepath.Base(p), ".ko") }
	for _, line := range strings.Split(string(dep), "\n") {
		path, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n := modName(path)
		paths[n] = filepath.Join(dir, path)
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], modName(d))
		}
	}
	var files []string
	for i, n := range names {
		p, ok := paths[n]
		if !ok {
			return nil, fmt.Errorf("kernel module %s: not in %s/modules.dep (built in, or compressed?)", n, dir)
		}
		for _, d := range deps[n] {
			if !slices.Contains(names[:i], d) {
				return nil, fmt.Errorf("kernel module %s needs %s, not loaded before it", n, d)
			}
		}
		files = append(files, p)
	}
	return files, nil
}

// Command bench compares nsbox with other sandboxes and runtimes side by side:
// the same workload, the same machine, the same moment. Runs are interleaved
// (one of each tool per round, in rotating order) so that drift on a shared
// machine affects every tool alike, and the report gives ratios.
//
//	go run ./bench [-n 200] [-only run] [-nsbox PATH]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nsbox/nsbox/internal/testenv"
)

// tool is one command line to time.
type tool struct {
	name string
	argv []string
	env  []string
	// times of each run, and the peak resident set size (kB) over the
	// RSS runs
	times []time.Duration
	rss   int64
}

// suite is a set of tools measured together, and the ratios to report.
type suite struct {
	name   string
	about  string
	tools  []*tool
	ratios [][2]string // numerator, denominator tool names
	setup  func() error
	clean  func()
}

func main() {
	n := flag.Int("n", 200, "runs of each tool")
	warm := flag.Int("warmup", 10, "unmeasured runs of each tool first")
	only := flag.String("only", "", "run only the suites whose names contain this")
	nsboxPath := flag.String("nsbox", "", "nsbox binary (default: build ./cmd/nsbox)")
	var compare commandList
	flag.Var(&compare, "compare", "an ad-hoc command line to time (repeat; interleaved with the others; NSBOX and ROOTFS are replaced)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatalf("bench compares runtimes as root; run it as root")
	}
	// Under /run: nsbox keeps its state on tmpfs by default (/run/nsbox).
	work, err := os.MkdirTemp("/run", "nsbox-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(work)
	bin := *nsboxPath
	if bin == "" {
		bin = filepath.Join(work, "nsbox")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/nsbox")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := build.Run(); err != nil {
			fatalf("build nsbox: %v", err)
		}
	}
	rootfs, err := testenv.BusyboxRootfs(filepath.Join(work, "rootfs"))
	if err != nil {
		fatalf("rootfs: %v", err)
	}
	env := environment{work: work, nsbox: bin, rootfs: rootfs}
	all := suites(env)
	if len(compare) > 0 {
		adhoc := suite{name: "compare", about: "ad-hoc command lines"}
		for i, c := range compare {
			var argv []string
			for _, w := range strings.Fields(c) {
				switch w {
				case "NSBOX":
					argv = append(argv, bin, "--root", filepath.Join(work, "state"))
				case "ROOTFS":
					argv = append(argv, rootfs)
				default:
					argv = append(argv, w)
				}
			}
			c = strings.Join(argv, " ")
			adhoc.tools = append(adhoc.tools, &tool{name: fmt.Sprintf("#%d", i+1), argv: argv})
			if i > 0 {
				adhoc.ratios = append(adhoc.ratios, [2]string{fmt.Sprintf("#%d", i+1), "#1"})
			}
			fmt.Printf("#%d: %s\n", i+1, c)
		}
		all, *only = []suite{adhoc}, ""
	}
	failed := false
	for _, s := range all {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		if err := runSuite(s, *n, *warm); err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", s.name, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// commandList collects repeated -compare flags.
type commandList []string

func (c *commandList) String() string     { return strings.Join(*c, "; ") }
func (c *commandList) Set(v string) error { *c = append(*c, v); return nil }

type environment struct {
	work, nsbox, rootfs string
}

func suites(e environment) []suite {
	return []suite{
		{
			name:  "run",
			about: "/bin/true in a busybox rootfs, new mnt+pid+net+ipc+uts (+user, +cgroup) namespaces",
			tools: []*tool{
				{name: "nsbox", argv: []string{e.nsbox, "--root", filepath.Join(e.work, "state"), "run", "--rootfs", e.rootfs, "--read-only", "--", "/bin/true"}},
				{name: "bwrap", argv: []string{"bwrap", "--unshare-all", "--ro-bind", e.rootfs, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"}},
				{name: "unshare", argv: []string{"unshare", "-fpmuin", "--mount-proc", "/bin/true"}},
				{name: "true", argv: []string{"/bin/true"}},
			},
			ratios: [][2]string{{"nsbox", "bwrap"}, {"nsbox", "unshare"}},
		},
	}
}

func runSuite(s suite, n, warm int) error {
	for _, t := range s.tools {
		if _, err := exec.LookPath("/usr/bin/time"); err != nil {
			return fmt.Errorf("/usr/bin/time not found (apt-get install time)")
		}
		if _, err := exec.LookPath(t.argv[0]); err != nil {
			return fmt.Errorf("%s: %v (install it: the comparison must not be skipped)", t.name, err)
		}
	}
	if s.setup != nil {
		if err := s.setup(); err != nil {
			return err
		}
	}
	if s.clean != nil {
		defer s.clean()
	}
	for i := 0; i < warm+n; i++ {
		for j := range s.tools {
			t := s.tools[(i+j)%len(s.tools)]
			d, err := runOnce(t.argv, t.env)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			if i >= warm {
				t.times = append(t.times, d)
			}
		}
	}
	// Peak RSS, in separate runs under /usr/bin/time: the maxrss that wait4
	// reports for a child forked from this (Go, larger) process includes the
	// pages it had before its exec.
	for _, t := range s.tools {
		for i := 0; i < 10; i++ {
			rss, err := peakRSS(t)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			t.rss = max(t.rss, rss)
		}
	}
	report(s)
	return nil
}

// runOnce runs argv and returns its wall time.
func runOnce(argv, env []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, out.String())
	}
	return time.Since(start), nil
}

// peakRSS runs t under /usr/bin/time and returns its maximum resident set
// size in kB.
func peakRSS(t *tool) (int64, error) {
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "rss=%M"}, t.argv...)...)
	cmd.Env = append(os.Environ(), t.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	i := strings.LastIndex(string(out), "rss=")
	if i < 0 {
		return 0, fmt.Errorf("no rss in %q", out)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out[i+4:])), 10, 64)
}

func report(s suite) {
	fmt.Printf("\n== %s: %s (%d runs each, interleaved)\n", s.name, s.about, len(s.tools[0].times))
	fmt.Printf("%-10s %10s %10s %10s %10s %12s\n", "tool", "mean", "min", "median", "p90", "peak RSS")
	byName := map[string]*tool{}
	for _, t := range s.tools {
		byName[t.name] = t
		fmt.Printf("%-10s %10s %10s %10s %10s %9d kB\n", t.name, ms(mean(t.times)), ms(pct(t.times, 0)),
			ms(pct(t.times, 50)), ms(pct(t.times, 90)), t.rss)
	}
	for _, r := range s.ratios {
		a, b := byName[r[0]], byName[r[1]]
		fmt.Printf("ratio %s/%s: mean %.2fx, min %.2fx, median %.2fx\n", r[0], r[1],
			float64(mean(a.times))/float64(mean(b.times)),
			float64(pct(a.times, 0))/float64(pct(b.times, 0)),
			float64(pct(a.times, 50))/float64(pct(b.times, 50)))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(1)
}

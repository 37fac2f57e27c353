// Command bench compares nsbox with other sandboxes and runtimes side by side:
// the same workload, the same machine, the same moment. Runs are interleaved
// (one of each tool per round, in rotating order) so that drift on a shared
// machine affects every tool alike, and the report gives ratios.
//
// The suites: "run" (nsbox run against bwrap and unshare), the OCI
// suites "oci-run", "oci-lifecycle" and "oci-exec" (nsbox against runc and
// crun on one bundle, see oci.go), "net" (network.go) and "ns" (nsbox ns ls
// against lsns over 500 namespaces, see ns.go).
//
//	go run ./bench [-n 200] [-only run|oci|net|ns] [-nsbox PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsbox/nsbox/internal/testenv"
)

// tool is one command line to time. In argv and in the pre and post steps,
// the word idWord stands for a container id that is new each run.
type tool struct {
	name string
	argv []string
	env  []string
	// pre and post run, untimed, before and after each run of argv: to
	// bring a container to the state the timed command needs, and to
	// remove it afterwards.
	pre, post []step
	// retries is how many more times a failed run is tried, for a tool
	// that fails now and then for reasons of its own (lsns, when a process
	// ends while it reads /proc); only the run that succeeds is timed.
	retries int
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
	// setup runs before the first run; clean runs after the last, and also
	// when setup or a run failed, so it must undo only what was done.
	setup func() error
	clean func() error
	// summary, if set, prints more from the tools' times (by name).
	summary func(byName map[string]*tool)
	// maxRuns, if not 0, caps the runs of each tool (-n), for a suite
	// whose ratios settle sooner than its runs add up.
	maxRuns int
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
	reexecInMountNamespace()
	// Under /run, where nsbox keeps its state by default (/run/nsbox): a
	// tmpfs on most hosts, but not on every machine (ext4 on the build VMs).
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
			os.RemoveAll(work)
			fatalf("build nsbox: %v", err)
		}
	}
	rootfs, err := testenv.BusyboxRootfs(filepath.Join(work, "rootfs"))
	if err != nil {
		os.RemoveAll(work)
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
	// On SIGINT, SIGTERM or SIGPIPE (output to `head`), stop after the
	// current run, so that the suite's clean still removes what it made.
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	failed := false
	for _, s := range all {
		if ctx.Err() != nil {
			break
		}
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		if err := runSuite(ctx, s, *n, *warm); err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", s.name, err)
			failed = true
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: stopped by a signal")
		failed = true
	}
	if failed {
		os.RemoveAll(work)
		os.Exit(1)
	}
}

// stopSignals end the bench early, but only between runs.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE}

// mntnsEnv marks the copy of the bench that runs in its own mount namespace.
const mntnsEnv = "NSBOX_BENCH_MNTNS"

// ownMountNamespace is true in that copy, once checked.
var ownMountNamespace bool

// reexecInMountNamespace runs this program again in a new mount namespace
// (private: Go makes / rprivate in it) and exits with its status; in that
// copy it returns. The OCI suites change the cgroup mounts for crun
// (hideHybridCgroup2): there, the rest of the machine is not affected, and
// the change goes away with the bench even if the bench is killed.
func reexecInMountNamespace() {
	if os.Getenv(mntnsEnv) != "" {
		os.Unsetenv(mntnsEnv)
		self, err1 := os.Readlink("/proc/self/ns/mnt")
		parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
		ownMountNamespace = err1 == nil && err2 == nil && self != parent
		return
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), mntnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	// Stop signals go on to the copy, which stops after its current run
	// and cleans up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals...)
	if err := cmd.Start(); err != nil {
		fatalf("run in a new mount namespace: %v", err)
	}
	go func() {
		for sig := range sigs {
			cmd.Process.Signal(sig)
		}
	}()
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() > 0 {
			os.Exit(exit.ExitCode())
		}
		fatalf("%v", err)
	}
	os.Exit(0)
}

// commandList collects repeated -compare flags.
type commandList []string

func (c *commandList) String() string     { return strings.Join(*c, "; ") }
func (c *commandList) Set(v string) error { *c = append(*c, v); return nil }

type environment struct {
	work, nsbox, rootfs string
}

func suites(e environment) []suite {
	return append([]suite{
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
	}, append(ociSuites(e), nsSuite(e))...)
}

func runSuite(ctx context.Context, s suite, n, warm int) (err error) {
	for _, t := range s.tools {
		if _, err := exec.LookPath("/usr/bin/time"); err != nil {
			return fmt.Errorf("/usr/bin/time not found (apt-get install time)")
		}
		if _, err := exec.LookPath(t.argv[0]); err != nil {
			return fmt.Errorf("%s: %v (install it: the comparison must not be skipped)", t.name, err)
		}
	}
	if s.clean != nil {
		defer func() {
			if cerr := s.clean(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean: %w", cerr))
			}
		}()
	}
	if s.setup != nil {
		if err := s.setup(); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	if s.maxRuns > 0 {
		n = min(n, s.maxRuns)
	}
	for i := 0; i < warm+n; i++ {
		for j := range s.tools {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted")
			}
			t := s.tools[(i+j)%len(s.tools)]
			d, err := runOnce(t)
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
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			rss, err := peakRSS(t)
			if err != nil {
				return fmt.Errorf("%s: %v", t.name, err)
			}
			t.rss = max(t.rss, rss)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	report(s)
	return nil
}

// step is an untimed part of a run, given the run's container id.
type step func(id string) error

// command is the step that runs argv (with idWord replaced).
func command(argv ...string) step {
	return func(id string) error {
		_, err := runCommand(withID(argv, id), nil, nil)
		return err
	}
}

// runOnce runs t once and returns the wall time of its timed command.
func runOnce(t *tool) (time.Duration, error) {
	var d time.Duration
	err := t.once(func(argv []string) error {
		var err error
		for try := 0; try <= t.retries; try++ {
			if d, err = runCommand(argv, t.env, nil); err == nil {
				break
			}
		}
		return err
	})
	return d, err
}

// peakRSS runs t once, its timed command under /usr/bin/time, and returns
// that command's maximum resident set size in kB.
func peakRSS(t *tool) (int64, error) {
	var rss int64
	err := t.once(func(argv []string) error {
		var out []byte
		var err error
		for try := 0; try <= t.retries; try++ {
			if _, err = runCommand(append([]string{"/usr/bin/time", "-f", "rss=%M"}, argv...), t.env, &out); err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
		i := strings.LastIndex(string(out), "rss=")
		if i < 0 {
			return fmt.Errorf("no rss in %q", out)
		}
		rss, err = strconv.ParseInt(strings.TrimSpace(string(out[i+4:])), 10, 64)
		return err
	})
	return rss, err
}

// once runs t's pre steps, then its command through timed, then its post
// steps, all with a new container id.
func (t *tool) once(timed func(argv []string) error) error {
	id := newID()
	for _, s := range t.pre {
		if err := s(id); err != nil {
			return err
		}
	}
	if err := timed(withID(t.argv, id)); err != nil {
		return err
	}
	for _, s := range t.post {
		if err := s(id); err != nil {
			return err
		}
	}
	return nil
}

// idWord, in a tool's command lines, stands for a new container id.
const idWord = "{id}"

var ids int

// newID returns a container id that no other run of this process has
// used. The prefix (idPrefix) tells what this process made from what other
// people's tests make at the same time.
func newID() string {
	ids++
	return idPrefix() + strconv.Itoa(ids)
}

func idPrefix() string { return "nsbox-bench-" + strconv.Itoa(os.Getpid()) + "-" }

// withID returns argv with the word idWord replaced by id.
func withID(argv []string, id string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == idWord {
			a = id
		}
		out[i] = a
	}
	return out
}

// runCommand runs argv and returns its wall time; when out is not nil, it
// receives what the command printed. Output goes to a file, not a pipe:
// the process that `create` or `run --detach` leaves behind inherits it,
// and a pipe would keep the wait open until that process ends.
func runCommand(argv, env []string, out *[]byte) (time.Duration, error) {
	f, err := os.CreateTemp("", "nsbox-bench-out-")
	if err != nil {
		return 0, err
	}
	os.Remove(f.Name())
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	_, rerr := f.Seek(0, io.SeekStart)
	b, _ := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, b)
	}
	if out != nil {
		*out = b
	}
	return d, rerr
}

func report(s suite) {
	fmt.Printf("\n== %s: %s (%d runs each, interleaved)\n", s.name, s.about, len(s.tools[0].times))
	w := 10
	for _, t := range s.tools {
		w = max(w, len(t.name))
	}
	fmt.Printf("%-*s %10s %10s %10s %10s %12s\n", w, "tool", "mean", "min", "median", "p90", "peak RSS")
	byName := map[string]*tool{}
	for _, t := range s.tools {
		byName[t.name] = t
		fmt.Printf("%-*s %10s %10s %10s %10s %9d kB\n", w, t.name, ms(mean(t.times)), ms(pct(t.times, 0)),
			ms(pct(t.times, 50)), ms(pct(t.times, 90)), t.rss)
	}
	for _, r := range s.ratios {
		a, b := byName[r[0]], byName[r[1]]
		fmt.Printf("ratio %s/%s: mean %.2fx, min %.2fx, median %.2fx\n", r[0], r[1],
			float64(mean(a.times))/float64(mean(b.times)),
			float64(pct(a.times, 0))/float64(pct(b.times, 0)),
			float64(pct(a.times, 50))/float64(pct(b.times, 50)))
	}
	if s.summary != nil {
		s.summary(byName)
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

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsbox/nsbox/internal/testenv"
)

// The OCI suites run nsbox, runc and crun on one bundle: the config.json of
// `nsbox spec --seccomp` (nsbox's default seccomp profile, which each
// runtime compiles and loads) with process.args set and terminal false, and a busybox
// rootfs. Each runtime keeps its state in its own --root under the suite's
// work directory.
//
// Two things make crun 1.8 run at all, and both are kept as small as they
// can be: it reads config-crun.json (--config), the same config with only
// ociVersion lowered, since it refuses 1.3.0; and, because it refuses this
// machine's hybrid cgroup layout ("cgroups in hybrid mode not supported,
// drop all controllers from cgroupv2"), the suite unmounts the cgroup2 tree
// (/sys/fs/cgroup/unified, which has only hugetlb) in the bench's own mount
// namespace for its duration (hideHybridCgroup2) — for all three runtimes
// alike, so they all see the same v1 hierarchies and do the same cgroup work.

const (
	crunConfig  = "config-crun.json"
	crunVersion = "1.0.2"
	aboutOCI    = "busybox bundle from `nsbox spec --seccomp` (the default seccomp profile for all three), terminal false; crun reads a copy with ociVersion " +
		crunVersion + "; cgroup v1 only for all three (the hybrid cgroup2 tree unmounted in the bench's mount namespace)"
)

// ociRuntime is one OCI runtime under test.
type ociRuntime struct {
	name, bin string
	root      string // its --root state directory
	config    string // a config file to read instead of config.json
}

// cmd returns the command line of a verb of r.
func (r ociRuntime) cmd(args ...string) []string {
	return append([]string{r.bin, "--root", r.root}, args...)
}

// bundle returns the flags that point r at the bundle in dir.
func (r ociRuntime) bundle(dir string) []string {
	if r.config != "" {
		return []string{"--bundle", dir, "--config", filepath.Join(dir, r.config)}
	}
	return []string{"--bundle", dir}
}

// ociBench is what one OCI suite sets up, and the undo of each part.
type ociBench struct {
	dir      string // the suite's work directory
	nsbox    string
	runtimes []ociRuntime
	undo     []func() error
}

func newOCIBench(e environment, suite string) *ociBench {
	b := &ociBench{dir: filepath.Join(e.work, suite), nsbox: e.nsbox}
	for _, r := range []ociRuntime{{name: "nsbox", bin: e.nsbox}, {name: "runc", bin: "runc"}, {name: "crun", bin: "crun", config: crunConfig}} {
		r.root = filepath.Join(b.dir, "state", r.name)
		b.runtimes = append(b.runtimes, r)
	}
	return b
}

// bundleDir is where setup writes the suite's bundle.
func (b *ociBench) bundleDir() string { return filepath.Join(b.dir, "bundle") }

// setup makes the suite's work directory and a bundle running args, and
// makes the cgroup layout one that crun accepts. Each part pushes its undo
// for clean, which runs them last first.
func (b *ociBench) setup(args ...string) error { return b.setupWith(nil, args...) }

// setupWith is setup with linux.resources set to resources (if not nil).
func (b *ociBench) setupWith(resources map[string]any, args ...string) error {
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		return err
	}
	b.undo = append(b.undo, func() error { return os.RemoveAll(b.dir) })
	parents := nsboxParentCgroups() // with the cgroup2 tree still there
	b.undo = append(b.undo, func() error { return removeCgroupLeftovers(parents) })
	restore, err := hideHybridCgroup2()
	if err != nil {
		return err
	}
	b.undo = append(b.undo, restore, b.removeContainers)
	return writeBundle(b.nsbox, b.bundleDir(), args, resources)
}

// clean undoes what setup did, last first, and reports every failure.
func (b *ociBench) clean() error {
	var errs []error
	for i := len(b.undo) - 1; i >= 0; i-- {
		errs = append(errs, b.undo[i]())
	}
	b.undo = nil
	return errors.Join(errs...)
}

// removeContainers kills and deletes (--force) every container in the
// runtimes' state directories, then checks that none is left.
func (b *ociBench) removeContainers() error {
	var errs []error
	for _, r := range b.runtimes {
		ents, err := os.ReadDir(r.root)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			id := e.Name()
			if !e.IsDir() || strings.HasPrefix(id, ".") {
				continue
			}
			// Errors are expected (the container may have stopped, or
			// never been complete); what counts is that it is gone.
			runCommand(r.cmd("kill", id, "KILL"), nil, nil)
			_, err := runCommand(r.cmd("delete", "--force", id), nil, nil)
			if _, serr := os.Stat(filepath.Join(r.root, id)); serr == nil {
				errs = append(errs, fmt.Errorf("%s: container %s left after delete --force: %v", r.name, id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// writeBundle writes an OCI bundle in dir: config.json from `nsbox spec --seccomp`
// with process.args set to args and process.terminal false, a busybox
// rootfs, and crunConfig, the same config with only ociVersion lowered.
func writeBundle(nsbox, dir string, args []string, resources map[string]any) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if _, err := runCommand([]string{nsbox, "spec", "--seccomp", "--bundle", dir}, nil, nil); err != nil {
		return err
	}
	if _, err := testenv.BusyboxRootfs(filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	// A generic decode, so that nothing but the fields set here changes.
	var config map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&config); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	process, ok := config["process"].(map[string]any)
	if !ok {
		return fmt.Errorf("config.json: no process")
	}
	process["args"] = args
	process["terminal"] = false
	if resources != nil {
		linux, ok := config["linux"].(map[string]any)
		if !ok {
			return fmt.Errorf("config.json: no linux")
		}
		linux["resources"] = resources
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), config); err != nil {
		return err
	}
	config["ociVersion"] = crunVersion
	return writeJSON(filepath.Join(dir, crunConfig), config)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// waitStopped is the step that waits until r reports the container stopped
// (after `start`, the command true ends on its own).
func waitStopped(r ociRuntime) step {
	return func(id string) error {
		err := waitFor(10*time.Second, func() (bool, error) {
			var out []byte
			if _, err := runCommand(r.cmd("state", id), nil, &out); err != nil {
				return false, err
			}
			var st struct{ Status string }
			if err := json.Unmarshal(out, &st); err != nil {
				return false, fmt.Errorf("%s state %s: %w", r.name, id, err)
			}
			return st.Status == "stopped", nil
		})
		if err != nil {
			return fmt.Errorf("%s: container %s not stopped: %w", r.name, id, err)
		}
		return nil
	}
}

// ratiosOver returns the ratios of nsbox to runc and to crun for each of
// the names (tool name = runtime + name).
func ratiosOver(names ...string) [][2]string {
	var rs [][2]string
	for _, n := range names {
		for _, other := range []string{"crun", "runc"} {
			rs = append(rs, [2]string{"nsbox" + n, other + n})
		}
	}
	return rs
}

func ociSuites(e environment) []suite {
	return []suite{ociRunSuite(e), ociLimitsSuite(e), ociLifecycleSuite(e), ociExecSuite(e), networkSuite(e)}
}

// ociLimitsSuite times `run ID` of a container with memory, cpu and pids
// limits: the cost of creating, limiting and removing its cgroups.
func ociLimitsSuite(e environment) suite {
	b := newOCIBench(e, "oci-limits")
	limits := map[string]any{
		"memory": map[string]any{"limit": 256 << 20},
		"cpu":    map[string]any{"shares": 512, "quota": 50000, "period": 100000},
		"pids":   map[string]any{"limit": 100},
	}
	s := suite{
		name:   "oci-limits",
		about:  "`run ID` with memory (256 MiB), cpu (shares 512, quota 50%) and pids (100) limits, args true; " + aboutOCI,
		ratios: ratiosOver(""),
		setup:  func() error { return b.setupWith(limits, "true") },
		clean:  b.clean,
	}
	for _, r := range b.runtimes {
		s.tools = append(s.tools, &tool{name: r.name, argv: r.cmd(append(append([]string{"run"}, r.bundle(b.bundleDir())...), idWord)...)})
	}
	return s
}

// ociRunSuite times `run ID`: the whole life of a container running true.
func ociRunSuite(e environment) suite {
	b := newOCIBench(e, "oci-run")
	s := suite{
		name:   "oci-run",
		about:  "`run ID` (create, start, wait, delete), args true; " + aboutOCI,
		ratios: ratiosOver(""),
		setup:  func() error { return b.setup("true") },
		clean:  b.clean,
	}
	for _, r := range b.runtimes {
		s.tools = append(s.tools, &tool{name: r.name, argv: r.cmd(append(append([]string{"run"}, r.bundle(b.bundleDir())...), idWord)...)})
	}
	return s
}

// ociLifecycleSuite times create, start and delete apart: each is a tool
// of its own, with the other verbs as untimed steps around it.
func ociLifecycleSuite(e environment) suite {
	b := newOCIBench(e, "oci-lifecycle")
	s := suite{
		name:   "oci-lifecycle",
		about:  "create, start, delete timed apart (the other verbs untimed around them), args true; " + aboutOCI,
		ratios: ratiosOver(" create", " start", " delete"),
		setup:  func() error { return b.setup("true") },
		clean:  b.clean,
	}
	for _, r := range b.runtimes {
		create := r.cmd(append(append([]string{"create"}, r.bundle(b.bundleDir())...), idWord)...)
		start := r.cmd("start", idWord)
		del := r.cmd("delete", idWord)
		s.tools = append(s.tools,
			&tool{name: r.name + " create", argv: create,
				post: []step{command(r.cmd("delete", "--force", idWord)...)}},
			&tool{name: r.name + " start", argv: start,
				pre:  []step{command(create...)},
				post: []step{waitStopped(r), command(del...)}},
			&tool{name: r.name + " delete", argv: del,
				pre: []step{command(create...), command(start...), waitStopped(r)}},
		)
	}
	return s
}

// ociExecSuite times `exec ID true` into a container (one per runtime,
// running sleep) that setup starts with `run --detach`.
func ociExecSuite(e environment) suite {
	b := newOCIBench(e, "oci-exec")
	// One id per runtime: runc and crun name their cgroups after the id
	// alone (/sys/fs/cgroup/*/ID), so a shared id would share the cgroup.
	id := func(r ociRuntime) string { return idPrefix() + "exec-" + r.name }
	s := suite{
		name:   "oci-exec",
		about:  "`exec ID true` into a running container (args sleep, started by `run --detach`); " + aboutOCI,
		ratios: ratiosOver(""),
		setup: func() error {
			if err := b.setup("sleep", "1000000"); err != nil {
				return err
			}
			for _, r := range b.runtimes {
				argv := r.cmd(append(append([]string{"run", "--detach"}, r.bundle(b.bundleDir())...), id(r))...)
				if _, err := runCommand(argv, nil, nil); err != nil {
					return err
				}
			}
			return nil
		},
		clean: b.clean,
	}
	for _, r := range b.runtimes {
		s.tools = append(s.tools, &tool{name: r.name, argv: r.cmd("exec", id(r), "true")})
	}
	return s
}

package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Manager is one box's cgroup: a directory in each hierarchy it uses.
type Manager struct {
	Layout *Layout
	// Path is the box's cgroup, as an absolute path inside each hierarchy,
	// but for those in Paths (keyed by mount point), where it differs.
	Path  string
	Paths map[string]string
}

// Resolve turns an OCI cgroupsPath into the box's cgroup, as runc does: an
// absolute path is taken inside each hierarchy as it is; a relative one
// below the caller's own cgroup in each hierarchy (which may differ from
// one v1 controller to the next); "slice:prefix:name" is systemd's syntax,
// refused without systemd.
func Resolve(l *Layout, cgroupsPath string) (*Manager, error) {
	if strings.Count(cgroupsPath, ":") == 2 && !strings.HasPrefix(cgroupsPath, "/") {
		return nil, fmt.Errorf("cgroupsPath %q is for the systemd cgroup driver, which nsbox does not support yet", cgroupsPath)
	}
	if filepath.IsAbs(cgroupsPath) {
		p := filepath.Clean(cgroupsPath)
		if p == "/" {
			return nil, fmt.Errorf("cgroupsPath %q: the root cgroup cannot hold a box", cgroupsPath)
		}
		return &Manager{Layout: l, Path: p}, nil
	}
	rel := filepath.Clean("/" + cgroupsPath)
	if rel == "/" {
		return nil, fmt.Errorf("cgroupsPath %q: the root cgroup cannot hold a box", cgroupsPath)
	}
	m := &Manager{Layout: l, Path: rel}
	for _, h := range l.Hierarchies {
		if own := filepath.Join(h.Own, rel); own != rel {
			if m.Paths == nil {
				m.Paths = map[string]string{}
			}
			m.Paths[h.Mount] = own
		}
	}
	return m, nil
}

// Dir is the box's directory in hierarchy h.
func (m *Manager) Dir(h *Hierarchy) string {
	path := m.Path
	if p, ok := m.Paths[h.Mount]; ok {
		path = p
	}
	rel := path
	// A mount of a cgroup below the root (a bind, or a cgroup namespace)
	// shows that cgroup at its mount point.
	if h.Root != "/" && h.Root != "" {
		if r, err := filepath.Rel(h.Root, path); err == nil && !strings.HasPrefix(r, "..") {
			rel = "/" + r
		}
	}
	return filepath.Join(h.Mount, rel)
}

// Create makes the box's directory in every hierarchy. On v1, cpuset
// directories get their parent's cpus and mems, without which they cannot
// hold a process. On a pure v2 host every available controller is enabled
// down to the box; on a hybrid one only those plan p uses in the v2 tree,
// since a controller enabled there can no longer be mounted as v1.
func (m *Manager) Create(p *Plan) error {
	for i := range m.Layout.Hierarchies {
		h := &m.Layout.Hierarchies[i]
		dir := m.Dir(h)
		// Usually the parent exists: one mkdir(2), not MkdirAll's stats.
		if err := unix.Mkdir(dir, 0o755); err != nil && err != unix.EEXIST {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
		}
		if !h.V2 && h.Has("cpuset") {
			if err := fillCpuset(h.Mount, dir); err != nil {
				return err
			}
		}
		if h.V2 {
			var only []string
			if !m.Layout.Unified() {
				only = p.controllersIn(m.Layout, h)
				if len(only) == 0 {
					continue
				}
			}
			if err := enableControllers(h.Mount, dir, only); err != nil {
				return err
			}
		}
	}
	return nil
}

// enableControllers makes the controllers available in the v2 tree at
// mount (only those named in only, if any) reach dir: each ancestor
// enables them in cgroup.subtree_control.
func enableControllers(mount, dir string, only []string) error {
	rel, err := filepath.Rel(mount, filepath.Dir(dir))
	if err != nil {
		return err
	}
	cur := mount
	parts := []string{}
	if rel != "." {
		parts = strings.Split(rel, string(filepath.Separator))
	}
	for i := 0; ; i++ {
		have, err := fileio.ReadFile(filepath.Join(cur, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", cur, err)
		}
		on, err := fileio.ReadFile(filepath.Join(cur, "cgroup.subtree_control"))
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", cur, err)
		}
		var add []string
		enabled := strings.Fields(string(on))
		for _, c := range strings.Fields(string(have)) {
			if !slices.Contains(enabled, c) && (only == nil || slices.Contains(only, c)) {
				add = append(add, "+"+c)
			}
		}
		if len(add) > 0 {
			if err := fileio.Write(filepath.Join(cur, "cgroup.subtree_control"), unix.O_WRONLY, 0, []byte(strings.Join(add, " "))); err != nil {
				return fmt.Errorf("enable %s in cgroup %s: %w", strings.Join(add, " "), cur, err)
			}
		}
		if i == len(parts) {
			return nil
		}
		cur = filepath.Join(cur, parts[i])
	}
}

// fillCpuset copies cpuset.cpus and cpuset.mems down from the closest
// ancestor that has them, into every empty directory from top to dir.
func fillCpuset(mount, dir string) error {
	rel, err := filepath.Rel(mount, dir)
	if err != nil {
		return err
	}
	cur := mount
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := fileio.ReadFile(filepath.Join(cur, f))
			if err != nil {
				return fmt.Errorf("cgroup %s: %w", cur, err)
			}
			if strings.TrimSpace(string(b)) != "" {
				continue
			}
			pb, err := fileio.ReadFile(filepath.Join(parent, f))
			if err != nil {
				return fmt.Errorf("cgroup %s: %w", parent, err)
			}
			if err := fileio.Write(filepath.Join(cur, f), unix.O_WRONLY, 0, pb); err != nil {
				return fmt.Errorf("cgroup %s: %w", cur, err)
			}
		}
	}
	return nil
}

// controllersIn lists the controllers of p's settings served by h.
func (p *Plan) controllersIn(l *Layout, h *Hierarchy) []string {
	var out []string
	if p == nil {
		return nil
	}
	for _, s := range p.Settings {
		c := s.Controller
		if c == "unified" {
			c, _, _ = strings.Cut(s.File, ".")
		}
		if f := l.Find(c); f != nil && f.Mount == h.Mount && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Apply moves process pid into the box's cgroup in every hierarchy.
func (m *Manager) Apply(pid int) error {
	s := []byte(strconv.Itoa(pid))
	for i := range m.Layout.Hierarchies {
		dir := m.Dir(&m.Layout.Hierarchies[i])
		if err := fileio.Write(filepath.Join(dir, "cgroup.procs"), unix.O_WRONLY, 0, s); err != nil {
			return fmt.Errorf("move process %d into cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

// OpenV2 opens the box's cgroup2 directory, for clone3(CLONE_INTO_CGROUP),
// on a pure v2 host; -1 otherwise.
func (m *Manager) OpenV2() (int, error) {
	if !m.Layout.Unified() {
		return -1, nil
	}
	dir := m.Dir(&m.Layout.Hierarchies[0])
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	return fd, nil
}

// Pids lists the processes in the box's cgroup and its descendants.
func (m *Manager) Pids() ([]int, error) {
	h := m.procsHierarchy()
	if h == nil {
		return nil, errors.New("no cgroup hierarchy to list processes from")
	}
	var pids []int
	err := filepath.WalkDir(m.Dir(h), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := fileio.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// procsHierarchy is the hierarchy used to list and freeze processes: the
// freezer on v1, else the cgroup2 tree, else any.
func (m *Manager) procsHierarchy() *Hierarchy {
	if h := m.Layout.Find("freezer"); h != nil {
		return h
	}
	if v2 := m.Layout.V2(); v2 != nil {
		return v2
	}
	if len(m.Layout.Hierarchies) > 0 {
		return &m.Layout.Hierarchies[0]
	}
	return nil
}

// Freeze stops every process of the box (freezer.state on v1, cgroup.freeze
// on v2) and waits until the kernel says they are frozen.
func (m *Manager) Freeze() error { return m.setFrozen(true) }

// Thaw resumes the processes of a frozen box.
func (m *Manager) Thaw() error { return m.setFrozen(false) }

func (m *Manager) setFrozen(frozen bool) error {
	if h := m.Layout.Find("freezer"); h != nil && !h.V2 {
		want := "THAWED"
		if frozen {
			want = "FROZEN"
		}
		path := filepath.Join(m.Dir(h), "freezer.state")
		for i := 0; i < 1000; i++ {
			if err := fileio.Write(path, unix.O_WRONLY, 0, []byte(want)); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			b, err := fileio.ReadFile(path)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if strings.TrimSpace(string(b)) == want {
				return nil
			}
			time.Sleep(time.Millisecond) // FREEZING: tasks still on their way
		}
		return fmt.Errorf("%s never reached %s", path, want)
	}
	v2 := m.Layout.V2()
	if v2 == nil {
		return errors.New("no freezer: neither a v1 freezer hierarchy nor cgroup2")
	}
	dir := m.Dir(v2)
	val, want := "0", "frozen 0"
	if frozen {
		val, want = "1", "frozen 1"
	}
	if err := fileio.Write(filepath.Join(dir, "cgroup.freeze"), unix.O_WRONLY, 0, []byte(val)); err != nil {
		return fmt.Errorf("%s/cgroup.freeze: %w", dir, err)
	}
	for i := 0; i < 1000; i++ {
		b, err := fileio.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil {
			return err
		}
		if strings.Contains(string(b), want) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s never reported %q", dir, want)
}

// Frozen reports whether the box's cgroup is frozen.
func (m *Manager) Frozen() bool {
	if h := m.Layout.Find("freezer"); h != nil && !h.V2 {
		b, _ := fileio.ReadFile(filepath.Join(m.Dir(h), "freezer.state"))
		return strings.TrimSpace(string(b)) == "FROZEN"
	}
	if v2 := m.Layout.V2(); v2 != nil {
		b, _ := fileio.ReadFile(filepath.Join(m.Dir(v2), "cgroup.freeze"))
		return strings.TrimSpace(string(b)) == "1"
	}
	return false
}

// Signal sends sig to every process of the box. With SIGKILL on v2 it uses
// cgroup.kill (Linux 5.14), which leaves no window for new forks;
// otherwise the box is frozen while its processes are signalled.
func (m *Manager) Signal(sig syscall.Signal) error {
	if v2 := m.Layout.V2(); sig == unix.SIGKILL && v2 != nil && m.Layout.Unified() {
		err := fileio.Write(filepath.Join(m.Dir(v2), "cgroup.kill"), unix.O_WRONLY, 0, []byte("1"))
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	froze := false
	if sig == unix.SIGKILL && !m.Frozen() && m.Freeze() == nil {
		froze = true
	}
	pids, err := m.Pids()
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	if froze {
		m.Thaw()
	}
	return err
}

// Destroy removes the box's directories (and any it made below them),
// waiting briefly for exiting processes to leave.
func (m *Manager) Destroy() error {
	var firstErr error
	for i := range m.Layout.Hierarchies {
		dir := m.Dir(&m.Layout.Hierarchies[i])
		if err := removeTree(dir); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// removeTree removes cgroup directory dir, children first.
func removeTree(dir string) error {
	// Usually it has no children: try that first.
	if err := unix.Rmdir(dir); err == nil || err == unix.ENOENT {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || i == 200 {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(5 * time.Millisecond) // processes still exiting
	}
}

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// hideHybridCgroup2 makes the cgroup layout one that crun 1.8 accepts, the
// same for every runtime: on a hybrid host (v1 hierarchies on a tmpfs at
// /sys/fs/cgroup, and a cgroup2 tree at /sys/fs/cgroup/unified) whose
// cgroup2 tree has controllers, crun refuses to run ("cgroups in hybrid mode
// not supported, drop all controllers from cgroupv2"); it unmounts that
// tree. Equivalent to: umount /sys/fs/cgroup/unified
//
// It does so only in the bench's own mount namespace (see
// reexecInMountNamespace), and refuses to elsewhere: the host keeps its
// mounts, and no controller changes hierarchy. (Mounting hugetlb as v1
// instead would take the controller from the host's cgroup2 tree for
// everyone, fails with EBUSY once any cgroup there has it enabled, and
// leaves the v1 hierarchy in the kernel if it is unmounted while removed
// cgroups still wait for their processes to be reaped.)
//
// The returned func mounts the tree back with the same options and checks
// /proc/self/mountinfo.
func hideHybridCgroup2() (undo func() error, err error) {
	nothing := func() error { return nil }
	dir := filepath.Join(cgroupRoot, "unified")
	m, err := mountAt(dir)
	if err != nil || m == nil || m.fstype != "cgroup2" {
		return nothing, err
	}
	controllers, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(controllers))) == 0 {
		return nothing, nil // crun accepts a hybrid layout without v2 controllers
	}
	if !ownMountNamespace {
		return nil, fmt.Errorf("not unmounting %s in the host's mount namespace", dir)
	}
	if err := syscall.Unmount(dir, 0); err != nil {
		return nil, fmt.Errorf("unmount %s (crun refuses the hybrid layout with it): %w", dir, err)
	}
	return func() error {
		if err := syscall.Mount(m.source, dir, m.fstype, m.flags(), m.superOptions()); err != nil {
			return fmt.Errorf("mount %s back: %w", dir, err)
		}
		back, err := mountAt(dir)
		if err != nil {
			return err
		}
		if back == nil || back.options != m.options || back.fstype != m.fstype || back.source != m.source || back.super != m.super {
			return fmt.Errorf("%s mounted back as %+v, was %+v", dir, back, m)
		}
		return nil
	}, nil
}

// mountEntry is a line of /proc/self/mountinfo.
type mountEntry struct {
	options, fstype, source, super string
}

// mountAt returns the mount at path from /proc/self/mountinfo (the last
// one, if several are stacked), or nil.
func mountAt(path string) (*mountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var m *mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 || f[4] != path {
			continue
		}
		m = &mountEntry{options: f[5], fstype: f[sep+1], source: f[sep+2], super: f[sep+3]}
	}
	return m, nil
}

// flags returns the mount flags of m's per-mount options.
func (m *mountEntry) flags() uintptr {
	var flags uintptr
	for _, o := range strings.Split(m.options, ",") {
		flags |= map[string]uintptr{"ro": syscall.MS_RDONLY, "nosuid": syscall.MS_NOSUID, "nodev": syscall.MS_NODEV,
			"noexec": syscall.MS_NOEXEC, "noatime": syscall.MS_NOATIME, "nodiratime": syscall.MS_NODIRATIME}[o]
	}
	return flags
}

// superOptions returns m's superblock options without rw/ro, which are
// flags.
func (m *mountEntry) superOptions() string {
	var opts []string
	for _, o := range strings.Split(m.super, ",") {
		if o != "rw" && o != "ro" {
			opts = append(opts, o)
		}
	}
	return strings.Join(opts, ",")
}

// nsboxParentCgroups returns the parent cgroups that nsbox makes
// (/sys/fs/cgroup/*/nsbox) which exist now.
func nsboxParentCgroups() map[string]bool {
	ps, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "nsbox"))
	set := map[string]bool{}
	for _, p := range ps {
		set[p] = true
	}
	return set
}

// removeCgroupLeftovers removes, deepest first, the cgroups named after
// this process's container ids (which deleted containers should not have
// left: an error names them) and nsbox's parent cgroups that were not in
// before (made by the suite's first box: removed quietly).
func removeCgroupLeftovers(before map[string]bool) error {
	prefix := idPrefix()
	left, err := dirsUnder(cgroupRoot, func(p string) bool { return strings.HasPrefix(filepath.Base(p), prefix) })
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range deepestFirst(left) {
		errs = append(errs, rmdirCgroup(p))
	}
	if len(left) > 0 {
		show := left[:min(len(left), 5)]
		errs = append(errs, fmt.Errorf("%d cgroups left after delete (now removed): %s ...", len(left), strings.Join(show, " ")))
	}
	for p := range nsboxParentCgroups() {
		if !before[p] {
			// Not empty if someone else's box runs in it: then it is
			// not ours to remove.
			if err := syscall.Rmdir(p); err != nil && err != syscall.EBUSY && err != syscall.ENOTEMPTY {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// dirsUnder returns the directories below root (not root itself) for which
// keep returns true (all, if keep is nil). Directories that vanish during
// the walk (other people's cgroups) are skipped.
func dirsUnder(root string, keep func(string) bool) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil
		}
		if d.IsDir() && p != root && (keep == nil || keep(p)) {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs, err
}

func deepestFirst(paths []string) []string {
	s := append([]string(nil), paths...)
	sort.SliceStable(s, func(i, j int) bool { return strings.Count(s[i], "/") > strings.Count(s[j], "/") })
	return s
}

// rmdirCgroup removes the cgroup at p, retrying for a while on EBUSY: a
// cgroup v1 stays busy until its killed processes have exited.
func rmdirCgroup(p string) error {
	err := waitFor(5*time.Second, func() (bool, error) {
		err := syscall.Rmdir(p)
		if err == syscall.EBUSY {
			return false, nil
		}
		return true, err
	})
	if err != nil && err != syscall.ENOENT {
		return fmt.Errorf("rmdir %s: %w", p, err)
	}
	return nil
}

// waitFor polls done until it returns true, an error, or timeout passes.
func waitFor(timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not done after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

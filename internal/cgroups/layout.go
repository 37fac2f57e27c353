// Package cgroups places boxes in control groups and acts on them (freeze,
// kill, list, remove), on the three layouts found in the wild: pure cgroup v2,
// v1, and hybrid hosts (v1 controllers plus a cgroup2 tree, as on the build
// machines). The layout is read once from /proc/self/mountinfo.
package cgroups

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Hierarchy is one mounted cgroup hierarchy.
type Hierarchy struct {
	// Mount is where it is mounted (/sys/fs/cgroup/memory).
	Mount string
	// Root is the cgroup of that mount's root (from mountinfo; "/" unless
	// the mount is itself inside a cgroup namespace or a bind).
	Root string
	// V2 is a cgroup2 hierarchy.
	V2 bool
	// Controllers are the v1 controllers (and "name=systemd"-style names)
	// bound to it; for v2, those enabled at its root.
	Controllers []string
	// Own is the caller's cgroup in it (from /proc/self/cgroup).
	Own string
}

// Name is how /sys/fs/cgroup/<name> calls the hierarchy in a box.
func (h Hierarchy) Name() string { return filepath.Base(h.Mount) }

// Key identifies the hierarchy in /proc/PID/cgroup: its controllers joined
// with commas ("" for cgroup2).
func (h Hierarchy) Key() string {
	if h.V2 {
		return ""
	}
	return strings.Join(h.Controllers, ",")
}

// Has reports whether controller c is bound to h.
func (h Hierarchy) Has(c string) bool {
	for _, x := range h.Controllers {
		if x == c {
			return true
		}
	}
	return false
}

// Layout is the set of cgroup hierarchies of the host.
type Layout struct {
	Hierarchies []Hierarchy
}

// Unified reports whether the host is pure cgroup v2.
func (l *Layout) Unified() bool {
	return len(l.Hierarchies) == 1 && l.Hierarchies[0].V2
}

// V2 returns the cgroup2 hierarchy (pure or hybrid), or nil.
func (l *Layout) V2() *Hierarchy {
	for i := range l.Hierarchies {
		if l.Hierarchies[i].V2 {
			return &l.Hierarchies[i]
		}
	}
	return nil
}

// Find returns the hierarchy that controller c belongs to (v1 first, then
// cgroup2), or nil.
func (l *Layout) Find(c string) *Hierarchy {
	for i := range l.Hierarchies {
		if !l.Hierarchies[i].V2 && l.Hierarchies[i].Has(c) {
			return &l.Hierarchies[i]
		}
	}
	if v2 := l.V2(); v2 != nil && v2.Has(c) {
		return v2
	}
	return nil
}

// TmpfsRoot reports whether /sys/fs/cgroup is a tmpfs: the layout of a v1 or
// hybrid host (v1 hierarchies, and maybe a v2 one, mounted beneath it),
// known from one statfs instead of Detect's reading of the mount table.
func TmpfsRoot() bool {
	var fs unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type == unix.TMPFS_MAGIC
}

// Detect reads the host's layout.
func Detect() (*Layout, error) {
	mi, err := fileio.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	own, err := fileio.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	l, err := parseLayout(mi, own)
	if err != nil {
		return nil, err
	}
	if v2 := l.V2(); v2 != nil {
		if b, err := fileio.ReadFile(filepath.Join(v2.Mount, "cgroup.controllers")); err == nil {
			v2.Controllers = strings.Fields(string(b))
		}
	}
	return l, nil
}

// parseLayout builds a Layout from the contents of /proc/self/mountinfo and
// /proc/self/cgroup.
func parseLayout(mountinfo, self []byte) (*Layout, error) {
	l := &Layout{}
	seen := map[string]bool{}
	for line := range strings.Lines(string(mountinfo)) {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		if !strings.Contains(line, " - cgroup") {
			continue // most lines: not worth splitting
		}
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(f)+1 || len(f) < sep+3 {
			continue
		}
		fstype := f[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		h := Hierarchy{Root: unescape(f[3]), Mount: unescape(f[4]), V2: fstype == "cgroup2"}
		if !h.V2 {
			for _, o := range strings.Split(f[sep+3], ",") {
				if o == "rw" || o == "ro" || strings.HasPrefix(o, "release_agent=") || o == "clone_children" || o == "noprefix" || o == "xattr" {
					continue
				}
				h.Controllers = append(h.Controllers, o)
			}
			sort.Strings(h.Controllers)
		}
		key := fstype + h.Key()
		if seen[key] { // the same hierarchy mounted twice: keep the first
			continue
		}
		seen[key] = true
		l.Hierarchies = append(l.Hierarchies, h)
	}
	if len(l.Hierarchies) == 0 {
		return nil, fmt.Errorf("no cgroup filesystem is mounted")
	}
	// The caller's cgroup in each hierarchy: "N:controllers:/path".
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls := strings.Split(parts[1], ",")
		sort.Strings(ctrls)
		key := strings.Join(ctrls, ",")
		for i := range l.Hierarchies {
			h := &l.Hierarchies[i]
			if (h.V2 && parts[1] == "") || (!h.V2 && h.Key() == key) {
				h.Own = parts[2]
			}
		}
	}
	return l, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

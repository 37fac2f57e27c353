// Package userns decides and writes the id maps of a box's user namespace:
// the single id of an unprivileged caller, the caller's subordinate ranges
// from /etc/subuid and /etc/subgid (written with newuidmap/newgidmap), an
// unused range allocated for root's boxes, or maps given by the user.
package userns

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Range is a run of host ids: Start, Start+1, ..., Start+Count-1.
type Range struct {
	Start, Count uint32
}

// End is one past the last id of r.
func (r Range) End() uint64 { return uint64(r.Start) + uint64(r.Count) }

// Contains reports whether r holds all of [start, start+count).
func (r Range) Contains(start, count uint32) bool {
	return start >= r.Start && uint64(start)+uint64(count) <= r.End()
}

// Overlaps reports whether r and o share an id.
func (r Range) Overlaps(o Range) bool {
	return uint64(r.Start) < o.End() && uint64(o.Start) < r.End()
}

// ReadMapFile reads a process's /proc/PID/uid_map or gid_map.
func ReadMapFile(file string) ([]specs.LinuxIDMapping, error) {
	b, err := fileio.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			parts = append(parts, strings.Join(f, ":"))
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return ParseMaps(strings.Join(parts, ","))
}

// ParseMaps reads "C:H:S[,C:H:S...]": container id C maps to host id H, for S
// ids.
func ParseMaps(s string) ([]specs.LinuxIDMapping, error) {
	var maps []specs.LinuxIDMapping
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("id map %q: want CONTAINER:HOST:SIZE", part)
		}
		var n [3]uint32
		for i, x := range f {
			v, err := strconv.ParseUint(x, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map %q: %q is not a number", part, x)
			}
			n[i] = uint32(v)
		}
		if n[2] == 0 {
			return nil, fmt.Errorf("id map %q: size must be positive", part)
		}
		maps = append(maps, specs.LinuxIDMapping{ContainerID: n[0], HostID: n[1], Size: n[2]})
	}
	return maps, CheckMaps(maps)
}

// CheckMaps rejects maps the kernel would refuse: overlapping ranges on either
// side, ranges past the 32-bit id space, or more than 340 lines.
func CheckMaps(maps []specs.LinuxIDMapping) error {
	if len(maps) > 340 {
		return fmt.Errorf("%d id map lines: the kernel takes at most 340", len(maps))
	}
	for i, m := range maps {
		if m.Size == 0 {
			return fmt.Errorf("id map %s: size must be positive", fmtMap(m))
		}
		if uint64(m.ContainerID)+uint64(m.Size) > 1<<32-1 || uint64(m.HostID)+uint64(m.Size) > 1<<32-1 {
			return fmt.Errorf("id map %s: runs past the largest id", fmtMap(m))
		}
		for _, o := range maps[:i] {
			if (Range{m.ContainerID, m.Size}).Overlaps(Range{o.ContainerID, o.Size}) {
				return fmt.Errorf("id maps %s and %s overlap inside the box", fmtMap(o), fmtMap(m))
			}
			if (Range{m.HostID, m.Size}).Overlaps(Range{o.HostID, o.Size}) {
				return fmt.Errorf("id maps %s and %s overlap on the host", fmtMap(o), fmtMap(m))
			}
		}
	}
	return nil
}

func fmtMap(m specs.LinuxIDMapping) string {
	return fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
}

// Format renders maps as the kernel's uid_map/gid_map file expects.
func Format(maps []specs.LinuxIDMapping) []byte {
	var b bytes.Buffer
	for _, m := range maps {
		fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
	}
	return b.Bytes()
}

// ToHost translates container id id through maps; ok is false when unmapped.
func ToHost(maps []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// FromHost translates host id id through maps into the namespace; ok is
// false when unmapped.
func FromHost(maps []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.HostID && uint64(id) < uint64(m.HostID)+uint64(m.Size) {
			return m.ContainerID + (id - m.HostID), true
		}
	}
	return 0, false
}

// Inside lists the ids that maps make exist inside the namespace ("0-65535").
func Inside(maps []specs.LinuxIDMapping) string {
	var parts []string
	for _, m := range maps {
		if m.Size == 1 {
			parts = append(parts, strconv.FormatUint(uint64(m.ContainerID), 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", m.ContainerID, uint64(m.ContainerID)+uint64(m.Size)-1))
		}
	}
	return strings.Join(parts, ", ")
}

// SubIDs reads the ranges that /etc/subuid-style content grants to the user
// with the given name or uid.
func SubIDs(content []byte, name string, id uint32) []Range {
	var out []Range
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || (f[0] != name && f[0] != strconv.FormatUint(uint64(id), 10)) {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			continue
		}
		out = append(out, Range{uint32(start), uint32(count)})
	}
	return out
}

// AllSubIDs returns every range in /etc/subuid-style content, whoever it
// belongs to.
func AllSubIDs(content []byte) []Range {
	var out []Range
	for _, line := range strings.Split(string(content), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 == nil && err2 == nil && count > 0 {
			out = append(out, Range{uint32(start), uint32(count)})
		}
	}
	return out
}

// Caller describes who starts a box, for deciding its maps.
type Caller struct {
	UID, GID   uint32
	Name       string
	SubUIDs    []Range // from /etc/subuid
	SubGIDs    []Range // from /etc/subgid
	HaveHelper bool    // newuidmap and newgidmap are installed
}

// LookupCaller describes the current process's user.
func LookupCaller() Caller {
	c := Caller{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	c.Name = userName(c.UID)
	if b, err := fileio.ReadFile("/etc/subuid"); err == nil {
		c.SubUIDs = SubIDs(b, c.Name, c.UID)
	}
	if b, err := fileio.ReadFile("/etc/subgid"); err == nil {
		c.SubGIDs = SubIDs(b, c.Name, c.UID)
	}
	_, e1 := exec.LookPath("newuidmap")
	_, e2 := exec.LookPath("newgidmap")
	c.HaveHelper = e1 == nil && e2 == nil
	return c
}

func userName(uid uint32) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	want := strconv.FormatUint(uint64(uid), 10)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == want {
			return f[0]
		}
	}
	return ""
}

// RootlessMaps returns the maps an unprivileged caller gets by default: itself
// as root, followed by its first subordinate range when newuidmap and
// newgidmap can write it. full reports whether the ranges were used.
func (c Caller) RootlessMaps() (uids, gids []specs.LinuxIDMapping, full bool) {
	uids = []specs.LinuxIDMapping{{ContainerID: 0, HostID: c.UID, Size: 1}}
	gids = []specs.LinuxIDMapping{{ContainerID: 0, HostID: c.GID, Size: 1}}
	if !c.HaveHelper || len(c.SubUIDs) == 0 || len(c.SubGIDs) == 0 {
		return uids, gids, false
	}
	next := uint32(1)
	for _, r := range c.SubUIDs {
		uids = append(uids, specs.LinuxIDMapping{ContainerID: next, HostID: r.Start, Size: r.Count})
		next += r.Count
	}
	next = 1
	for _, r := range c.SubGIDs {
		gids = append(gids, specs.LinuxIDMapping{ContainerID: next, HostID: r.Start, Size: r.Count})
		next += r.Count
	}
	return uids, gids, true
}

// CheckAllowed verifies that an unprivileged caller may write maps: each
// host range must be the caller's own id or inside its subordinate ranges
// (what newuidmap enforces), and anything beyond the caller's own single id
// needs newuidmap/newgidmap.
func (c Caller) CheckAllowed(kind string, maps []specs.LinuxIDMapping, own uint32, sub []Range) error {
	needHelper := false
	for _, m := range maps {
		if m.HostID == own && m.Size == 1 {
			continue
		}
		needHelper = true
		ok := false
		for _, r := range sub {
			if r.Contains(m.HostID, m.Size) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("%s map %s: host ids %d-%d are neither yours (%d) nor in your subordinate ranges (%s)",
				kind, fmtMap(m), m.HostID, uint64(m.HostID)+uint64(m.Size)-1, own, fmtRanges(sub))
		}
	}
	if needHelper && !c.HaveHelper {
		return fmt.Errorf("%s map needs newuidmap and newgidmap (Debian package uidmap) to use subordinate ids", kind)
	}
	return nil
}

func fmtRanges(rs []Range) string {
	if len(rs) == 0 {
		return "none in /etc/subuid or /etc/subgid"
	}
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d-%d", r.Start, r.End()-1))
	}
	return strings.Join(parts, ", ")
}

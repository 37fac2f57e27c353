package nsinfo

import (
	"bytes"
	"strings"
)

// NsfsMount is an nsfs mount: a namespace bound at a path (ip netns add,
// unshare --net=FILE).
type NsfsMount struct {
	Type       Type
	Inode      uint64
	MountPoint string
}

// nsfsMarker is in every mountinfo line of an nsfs mount, and rarely in
// others: lines without it are not split into fields.
var nsfsMarker = []byte(" - nsfs ")

// NsfsMounts returns the nsfs mounts in the text of a mountinfo file
// (proc_pid_mountinfo(5)):
//
//	36 25 0:4 net:[4026532290] /run/netns/red rw - nsfs nsfs rw
//
// The root field names the namespace; the mount point has its spaces,
// tabs, newlines and backslashes escaped in octal.
func NsfsMounts(mountinfo []byte) []NsfsMount {
	var out []NsfsMount
	for len(mountinfo) > 0 {
		i := bytes.Index(mountinfo, nsfsMarker)
		if i < 0 {
			break
		}
		start := bytes.LastIndexByte(mountinfo[:i], '\n') + 1
		end := bytes.IndexByte(mountinfo[i:], '\n')
		if end < 0 {
			end = len(mountinfo)
		} else {
			end += i
		}
		if m, ok := ParseNsfsLine(mountinfo[start:end]); ok {
			out = append(out, m)
		}
		if end >= len(mountinfo) {
			break
		}
		mountinfo = mountinfo[end+1:]
	}
	return out
}

// ParseNsfsLine decodes one mountinfo line; ok is false unless it is an
// nsfs mount of a namespace.
func ParseNsfsLine(line []byte) (NsfsMount, bool) {
	// Fields: id parent major:minor root mountpoint options [optional...] - fstype source super
	sep := bytes.Index(line, []byte(" - "))
	if sep < 0 {
		return NsfsMount{}, false
	}
	if fstype, _, _ := bytes.Cut(line[sep+3:], []byte(" ")); string(fstype) != "nsfs" {
		return NsfsMount{}, false
	}
	f := bytes.Fields(line[:sep])
	if len(f) < 6 {
		return NsfsMount{}, false
	}
	t, ino, ok := ParseLink(f[3])
	if !ok {
		return NsfsMount{}, false
	}
	return NsfsMount{Type: t, Inode: ino, MountPoint: unescapeOctal(f[4])}, true
}

// unescapeOctal undoes the kernel's escapes of " \t\n\\" in mount points
// (\040 and so on).
func unescapeOctal(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && isOctal(b[i+1]) && isOctal(b[i+2]) && isOctal(b[i+3]) {
			sb.WriteByte((b[i+1]-'0')<<6 | (b[i+2]-'0')<<3 | (b[i+3] - '0'))
			i += 3
			continue
		}
		sb.WriteByte(b[i])
	}
	return sb.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

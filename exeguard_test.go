package nsbox

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExeWritableFrom(t *testing.T) {
	rootRange := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 30, Size: 65536}}
	user := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}}
	for _, c := range []struct {
		name       string
		exe        exeFile
		hostIDs    bool
		uids, gids []specs.LinuxIDMapping
		want       bool
	}{
		{"root's binary, box with its own range", exeFile{uid: 0, gid: 0, mode: 0o755}, false, rootRange, rootRange, false},
		{"root's binary, box sharing the host's ids", exeFile{uid: 0, gid: 0, mode: 0o755}, true, nil, nil, true},
		{"user's binary, rootless box of that user", exeFile{uid: 1000, gid: 1000, mode: 0o755}, false, user, user, true},
		{"root's binary, rootless box", exeFile{uid: 0, gid: 0, mode: 0o755}, false, user, user, false},
		{"group-writable, group mapped", exeFile{uid: 0, gid: 1000, mode: 0o775}, false, user, user, true},
		{"group mapped, not group-writable", exeFile{uid: 0, gid: 1000, mode: 0o755}, false, user, user, false},
		{"world-writable", exeFile{uid: 0, gid: 0, mode: 0o757}, false, rootRange, rootRange, true},
		{"read-only mount, host ids", exeFile{uid: 0, gid: 0, mode: 0o755, readOnly: true}, true, nil, nil, false},
		{"owner at the end of a range", exeFile{uid: 1<<30 + 65535, mode: 0o755}, false, rootRange, rootRange, true},
		{"owner just past a range", exeFile{uid: 1<<30 + 65536, mode: 0o755}, false, rootRange, rootRange, false},
	} {
		if got := c.exe.writableFrom(c.hostIDs, c.uids, c.gids); got != c.want {
			t.Errorf("%s: writable = %v, want %v", c.name, got, c.want)
		}
	}
}

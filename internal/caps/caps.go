// Package caps names Linux capabilities and computes the sets a box's process
// gets: the five OCI sets, checked against what the kernel knows.
package caps

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/nsbox/nsbox/internal/fileio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// names of capabilities by number, as in linux/capability.h.
var names = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Default is the capability set of a box's root unless asked otherwise: the
// set Docker and podman give containers.
var Default = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Template is the capability set of the config.json runc spec writes (and
// nsbox spec): fewer than Default.
var Template = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

// Parse returns the number of capability name ("CAP_SYS_ADMIN" or
// "sys_admin", any case).
func Parse(name string) (int, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range names {
		if c == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// Name returns the name of capability number c.
func Name(c int) string {
	if c >= 0 && c < len(names) {
		return names[c]
	}
	return "CAP_" + strconv.Itoa(c)
}

// All returns the names of every capability the kernel knows.
func All() []string {
	last := LastCap()
	var out []string
	for c := 0; c <= last && c < len(names); c++ {
		out = append(out, names[c])
	}
	return out
}

// Bounding returns the calling thread's bounding set: what any process it
// starts can ever hold, in any user namespace.
func Bounding() Set {
	var s Set
	for c := 0; c <= LastCap() && c < 64; c++ {
		if v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && v == 1 {
			s |= 1 << c
		}
	}
	return s
}

// LastCap is the highest capability number of the running kernel.
var LastCap = sync.OnceValue(func() int {
	b, err := fileio.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return len(names) - 1
})

// Set is a capability bit set.
type Set uint64

// SetOf parses a list of names. Names the running kernel does not know are
// an error, except those nsbox knows (newer than the kernel), which are
// dropped as runc does.
func SetOf(field string, list []string) (Set, error) {
	last := LastCap()
	var s Set
	for _, name := range list {
		c, err := Parse(name)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		if c <= last {
			s |= 1 << c
		}
	}
	return s, nil
}

// Sets are the five sets of a process.
type Sets struct {
	Bounding, Effective, Permitted, Inheritable, Ambient Set
}

// FromSpec reads the capability sets of an OCI process.
func FromSpec(c *specs.LinuxCapabilities) (Sets, error) {
	var s Sets
	if c == nil {
		return s, nil
	}
	var err error
	for _, f := range []struct {
		name string
		list []string
		dst  *Set
	}{
		{"bounding", c.Bounding, &s.Bounding},
		{"effective", c.Effective, &s.Effective},
		{"permitted", c.Permitted, &s.Permitted},
		{"inheritable", c.Inheritable, &s.Inheritable},
		{"ambient", c.Ambient, &s.Ambient},
	} {
		if *f.dst, err = SetOf("process.capabilities."+f.name, f.list); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Names lists the capabilities in s.
func (s Set) Names() []string {
	var out []string
	for c := 0; c < 64; c++ {
		if s&(1<<c) != 0 {
			out = append(out, Name(c))
		}
	}
	sort.Strings(out)
	return out
}

// Has reports whether capability c is in s.
func (s Set) Has(c int) bool { return s&(1<<c) != 0 }

// Header and data of capset(2), version 3.
type Header struct {
	Version uint32
	Pid     int32
}

// Data is one half of the capset data (capabilities 0-31, then 32-63).
type Data struct {
	Effective, Permitted, Inheritable uint32
}

// Capset returns the arguments of capset(2) for the sets.
func (s Sets) Capset() (*Header, *[2]Data) {
	h := &Header{Version: unix.LINUX_CAPABILITY_VERSION_3}
	d := &[2]Data{
		{uint32(s.Effective), uint32(s.Permitted), uint32(s.Inheritable)},
		{uint32(s.Effective >> 32), uint32(s.Permitted >> 32), uint32(s.Inheritable >> 32)},
	}
	return h, d
}

// Own returns the names of the capabilities the calling process has in its
// effective set (for processes that act for the runtime, like hooks).
func Own() []string {
	var hdr Header
	hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	var data [2]unix.CapUserData
	if err := unix.Capget((*unix.CapUserHeader)(unsafe.Pointer(&hdr)), &data[0]); err != nil {
		return nil
	}
	s := Set(data[0].Effective) | Set(data[1].Effective)<<32
	return s.Names()
}

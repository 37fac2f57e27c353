package nsbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/caps"
	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/specjson"
	"github.com/nsbox/nsbox/internal/userns"
)

// SpecOpt changes a spec. The options compose: NewSpec applies them in order.
type SpecOpt func(*specs.Spec) error

// NewSpec returns the spec of a box that runs args with nsbox's defaults:
// the host's "/" read-only as root, fresh /proc, a minimal /dev, tmpfs /tmp
// and /run, /sys read-only, and new mount, pid, network, IPC, UTS, cgroup
// and user namespaces. The environment is the caller's and the working
// directory the caller's (see WithClearEnv and WithWorkdir). It is
// confined as security.go says: default capabilities, no_new_privs,
// masked and read-only paths, and the built-in seccomp profile.
func NewSpec(args []string, opts ...SpecOpt) (*specs.Spec, error) {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "/"
	}
	defaultCaps := append([]string(nil), caps.Default...)
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: args,
			Env:  os.Environ(),
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Effective: defaultCaps,
				Permitted: defaultCaps,
			},
			NoNewPrivileges: true,
		},
		Root:   &specs.Root{Path: "/", Readonly: true},
		Mounts: DefaultMounts(),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
				{Type: specs.UserNamespace},
			},
			MaskedPaths:   slices.Clone(DefaultMaskedPaths),
			ReadonlyPaths: slices.Clone(DefaultReadonlyPaths),
		},
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	finishSecurity(s)
	return s, nil
}

// DefaultMounts are the mounts of a box made by NewSpec.
func DefaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755"}},
	}
}

// WithRootfs uses the host directory dir as the box's root (read-write, like
// runc), and "/" as the working directory.
func WithRootfs(dir string) SpecOpt {
	return func(s *specs.Spec) error {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("rootfs %s is not a directory", abs)
		}
		s.Root = &specs.Root{Path: abs}
		s.Process.Cwd = "/"
		return nil
	}
}

// WithReadonlyRoot makes the root read-only.
func WithReadonlyRoot(s *specs.Spec) error {
	s.Root.Readonly = true
	return nil
}

// WithBind bind-mounts host path src at dst in the box (recursively), read-only
// when ro is set.
func WithBind(src, dst string, ro bool) SpecOpt {
	return func(s *specs.Spec) error {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("bind source: %w", err)
		}
		if !filepath.IsAbs(dst) {
			return fmt.Errorf("bind destination %q must be an absolute path", dst)
		}
		opts := []string{"rbind"}
		if ro {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: filepath.Clean(dst), Type: "bind", Source: abs, Options: opts})
		return nil
	}
}

// WithTmpfs mounts an empty tmpfs at dst.
func WithTmpfs(dst string) SpecOpt {
	return func(s *specs.Spec) error {
		if !filepath.IsAbs(dst) {
			return fmt.Errorf("tmpfs destination %q must be an absolute path", dst)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: filepath.Clean(dst), Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=1777"}})
		return nil
	}
}

// WithWorkdir sets the working directory inside the box.
func WithWorkdir(dir string) SpecOpt {
	return func(s *specs.Spec) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("working directory %q must be an absolute path", dir)
		}
		s.Process.Cwd = filepath.Clean(dir)
		return nil
	}
}

// WithHostname sets the box's hostname.
func WithHostname(name string) SpecOpt {
	return func(s *specs.Spec) error {
		if len(name) > 64 {
			return fmt.Errorf("hostname %q is longer than 64 bytes", name)
		}
		s.Hostname = name
		return nil
	}
}

// WithDomainname sets the box's NIS domain name.
func WithDomainname(name string) SpecOpt {
	return func(s *specs.Spec) error {
		if len(name) > 64 {
			return fmt.Errorf("domain name %q is longer than 64 bytes", name)
		}
		s.Domainname = name
		return nil
	}
}

// WithUser runs the command as uid:gid inside the box.
func WithUser(uid, gid uint32) SpecOpt {
	return func(s *specs.Spec) error {
		s.Process.User.UID, s.Process.User.GID = uid, gid
		if uid != 0 {
			// An ordinary user keeps no capabilities (as with Docker).
			s.Process.Capabilities.Effective = nil
			s.Process.Capabilities.Permitted = nil
		}
		return nil
	}
}

// WithEnv sets environment variables ("KEY=VALUE"), replacing earlier values.
func WithEnv(kv ...string) SpecOpt {
	return func(s *specs.Spec) error {
		for _, e := range kv {
			k, _, ok := strings.Cut(e, "=")
			if !ok || k == "" {
				return fmt.Errorf("environment variable %q: want KEY=VALUE", e)
			}
			s.Process.Env = setEnv(s.Process.Env, k, e)
		}
		return nil
	}
}

func setEnv(env []string, key, kv string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

// WithClearEnv starts the box with an empty environment.
func WithClearEnv(s *specs.Spec) error {
	s.Process.Env = nil
	return nil
}

// WithSharedNamespace keeps the caller's namespace of type t.
func WithSharedNamespace(t specs.LinuxNamespaceType) SpecOpt {
	return func(s *specs.Spec) error {
		s.Linux.Namespaces = removeNS(s.Linux.Namespaces, t)
		if t == specs.UserNamespace {
			s.Linux.UIDMappings, s.Linux.GIDMappings = nil, nil
		}
		return nil
	}
}

// WithJoinedNamespace enters the existing namespace at path (such as
// /proc/PID/ns/net or /run/netns/NAME) instead of creating one.
func WithJoinedNamespace(t specs.LinuxNamespaceType, path string) SpecOpt {
	return func(s *specs.Spec) error {
		if path == "" {
			return fmt.Errorf("%s namespace: empty path", namespaces.ProcName(t))
		}
		s.Linux.Namespaces = append(removeNS(s.Linux.Namespaces, t), specs.LinuxNamespace{Type: t, Path: path})
		return nil
	}
}

// WithCallerCredentials runs the command as the caller itself, as a plain
// fork and exec would: the caller's effective uid and gid, supplementary
// groups, umask and five capability sets, and no no_new_privs. It is meant
// for boxes that share the caller's user namespace (`nsbox netns exec`);
// in a new user namespace the caller's ids mean nothing.
func WithCallerCredentials(s *specs.Spec) error {
	status, err := fileio.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read the caller's credentials: %w", err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	capSet := func(key string) ([]string, error) {
		n, err := strconv.ParseUint(fields[key], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("read the caller's capabilities: %s %q in /proc/self/status", key, fields[key])
		}
		var names []string
		for _, name := range caps.Set(n).Names() {
			if _, err := caps.Parse(name); err == nil { // one newer than nsbox cannot be named
				names = append(names, name)
			}
		}
		return names, nil
	}
	c := &specs.LinuxCapabilities{}
	for _, f := range []struct {
		key string
		dst *[]string
	}{{"CapBnd", &c.Bounding}, {"CapEff", &c.Effective}, {"CapPrm", &c.Permitted}, {"CapInh", &c.Inheritable}, {"CapAmb", &c.Ambient}} {
		if *f.dst, err = capSet(f.key); err != nil {
			return err
		}
	}
	umask, err := strconv.ParseUint(fields["Umask"], 8, 32)
	if err != nil {
		return fmt.Errorf("read the caller's umask: Umask %q in /proc/self/status", fields["Umask"])
	}
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("read the caller's supplementary groups: %w", err)
	}
	u := specs.User{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Umask: new(uint32)}
	*u.Umask = uint32(umask)
	for _, g := range groups {
		u.AdditionalGids = append(u.AdditionalGids, uint32(g))
	}
	s.Process.User = u
	s.Process.Capabilities = c
	s.Process.NoNewPrivileges = false
	// What the caller may do, it may do in the box too.
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	return WithSeccomp(nil)(s)
}

func removeNS(list []specs.LinuxNamespace, t specs.LinuxNamespaceType) []specs.LinuxNamespace {
	out := list[:0:0]
	for _, ns := range list {
		if ns.Type != t {
			out = append(out, ns)
		}
	}
	return out
}

// WithTimeOffsets creates a time namespace whose monotonic and boot-time
// clocks run ahead by the given offsets.
func WithTimeOffsets(monotonic, boottime time.Duration) SpecOpt {
	return func(s *specs.Spec) error {
		s.Linux.Namespaces = append(removeNS(s.Linux.Namespaces, specs.TimeNamespace), specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
			"monotonic": offset(monotonic),
			"boottime":  offset(boottime),
		}
		return nil
	}
}

func offset(d time.Duration) specs.LinuxTimeOffset {
	secs := int64(d / time.Second)
	ns := int64(d % time.Second)
	if ns < 0 {
		secs--
		ns += int64(time.Second)
	}
	return specs.LinuxTimeOffset{Secs: secs, Nanosecs: uint32(ns)}
}

// WithIDMaps gives the box's new user namespace explicit maps.
func WithIDMaps(uids, gids []specs.LinuxIDMapping) SpecOpt {
	return func(s *specs.Spec) error {
		if err := userns.CheckMaps(uids); err != nil {
			return err
		}
		if err := userns.CheckMaps(gids); err != nil {
			return err
		}
		s.Linux.UIDMappings, s.Linux.GIDMappings = uids, gids
		return nil
	}
}

// WithResources sets the box's resource limits (linux.resources): the box
// then gets a cgroup of its own.
func WithResources(r *specs.LinuxResources) SpecOpt {
	return func(s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.Resources = r
		return nil
	}
}

// WithTerminal gives the box a terminal.
func WithTerminal(s *specs.Spec) error {
	s.Process.Terminal = true
	return nil
}

// ParseSpec decodes an OCI config.json, rejecting what a runtime must not
// guess about: a major version other than 1, and unknown fields' types.
func ParseSpec(b []byte) (*specs.Spec, error) {
	var s specs.Spec
	if err := specjson.Unmarshal(b, &s); err != nil {
		var te *specjson.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("field %s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, err
	}
	major, _, _ := strings.Cut(s.Version, ".")
	if s.Version == "" {
		return nil, errors.New("ociVersion is missing")
	}
	if major != "1" {
		return nil, fmt.Errorf("ociVersion %q: this runtime implements %s", s.Version, specs.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, errors.New("root.path is required")
	}
	if s.Process == nil {
		return nil, errors.New("process is required")
	}
	return &s, nil
}

// ParseProcess decodes an OCI process JSON (as given to exec --process).
func ParseProcess(b []byte) (*specs.Process, error) {
	var p specs.Process
	if err := specjson.Unmarshal(b, &p); err != nil {
		var te *specjson.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("field %s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, err
	}
	if len(p.Args) == 0 {
		return nil, errors.New("args: no command")
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	return &p, nil
}

// TemplateSpec is the starting config.json of an OCI bundle, as runc spec
// writes it: sh on a terminal, root "rootfs" read-only, the runtime's
// default mounts, masked and read-only paths, and new pid, network, IPC,
// UTS, mount and cgroup namespaces; with rootless, a user namespace that
// maps the caller to root, and no network namespace setup that needs
// privileges.
func TemplateSpec(rootless bool) *specs.Spec {
	set := slices.Clone(caps.Template)
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal:        true,
			Args:            []string{"sh"},
			Env:             []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:             "/",
			Capabilities:    &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "nsbox",
		Mounts: append(DefaultMounts()[:6], specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}}),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace}},
			MaskedPaths:   slices.Clone(DefaultMaskedPaths),
			ReadonlyPaths: slices.Clone(DefaultReadonlyPaths),
		},
	}
	if !rootless {
		// No device but the usual ones (which every box gets), as runc's.
		s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	}
	if rootless {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getuid()), Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getgid()), Size: 1}}
		for i := range s.Mounts {
			if s.Mounts[i].Type == "devpts" {
				s.Mounts[i].Options = []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}
			}
		}
	}
	return s
}

package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Set writes plan p into the box's cgroup, in order. When the kernel
// refuses a value, the values written before it are put back (those that
// are one line: per-device lists are not).
func (m *Manager) Set(p *Plan) error {
	var undo []Setting
	restore := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			m.write(undo[i])
		}
	}
	write := func(s Setting) error {
		if old, ok := m.read(s); ok {
			undo = append(undo, old)
		}
		return m.write(s)
	}
	for i := 0; i < len(p.Settings); i++ {
		s := p.Settings[i]
		err := write(s)
		if err != nil && s.OrderFree && errors.Is(err, unix.EINVAL) && i+1 < len(p.Settings) {
			if err = write(p.Settings[i+1]); err == nil {
				err = write(s)
				i++
			}
		}
		if err != nil {
			restore()
			return err
		}
	}
	if err := m.setDevices(p.Devices); err != nil {
		restore()
		return err
	}
	return nil
}

// read returns the current value of s's file as a setting that restores
// it, if it is a single line.
func (m *Manager) read(s Setting) (Setting, bool) {
	h, err := m.hierarchyFor(s.Controller)
	if err != nil {
		return s, false
	}
	b, err := fileio.ReadFile(filepath.Join(m.Dir(h), s.File))
	if errors.Is(err, unix.ENOENT) && s.Else != nil {
		return m.read(*s.Else)
	}
	v := strings.TrimSpace(string(b))
	if err != nil || v == "" || strings.Contains(v, "\n") {
		return s, false
	}
	s.Value = v
	return s, true
}

// hierarchyFor is the hierarchy of controller ctrl ("unified": the cgroup2
// tree).
func (m *Manager) hierarchyFor(ctrl string) (*Hierarchy, error) {
	var h *Hierarchy
	if ctrl == "unified" {
		h = m.Layout.V2()
	} else {
		h = m.Layout.Find(ctrl)
	}
	if h == nil {
		return nil, fmt.Errorf("the host has no %s cgroup controller", ctrl)
	}
	return h, nil
}

func (m *Manager) write(s Setting) error {
	h, err := m.hierarchyFor(s.Controller)
	if err != nil {
		return fmt.Errorf("linux.resources.%s: %w", s.Field, err)
	}
	path := filepath.Join(m.Dir(h), s.File)
	err = fileio.Write(path, unix.O_WRONLY, 0, []byte(s.Value))
	if errors.Is(err, unix.ENOENT) && s.Else != nil {
		return m.write(*s.Else)
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w (this kernel has no %s)", err, s.File)
		}
		return fmt.Errorf("linux.resources.%s %q: %w", s.Field, s.Value, err)
	}
	return nil
}

// setDevices writes device rules to a v1 devices cgroup, one per line.
// Without a v1 devices hierarchy, an eBPF program attached to the box's
// cgroup2 directory enforces them (see attachDeviceFilter), replacing the
// one set before.
func (m *Manager) setDevices(rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 {
		return nil
	}
	h := m.Layout.Find("devices")
	if h == nil || h.V2 {
		v2 := m.Layout.V2()
		if v2 == nil {
			return nil // no devices cgroup of any kind: nothing to enforce with
		}
		return attachDeviceFilter(m.Dir(v2), rules)
	}
	dir := m.Dir(h)
	// Like the v2 filter (and runc), what the rules do not allow is denied:
	// a v1 cgroup starts from its parent's rules, often allow-all.
	if t := rules[0].Type; t != "a" && t != "" {
		rules = append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, rules...)
	}
	for _, r := range rules {
		file, line, err := DeviceRule(r)
		if err != nil {
			return err
		}
		if err := fileio.Write(filepath.Join(dir, file), unix.O_WRONLY, 0, []byte(line)); err != nil {
			return fmt.Errorf("linux.resources.devices %q: %w", line, err)
		}
	}
	return nil
}

// DeviceRule turns an OCI device rule into the file (devices.allow or
// devices.deny) and line of a v1 devices cgroup.
func DeviceRule(r specs.LinuxDeviceCgroup) (file, line string, err error) {
	file = "devices.deny"
	if r.Allow {
		file = "devices.allow"
	}
	typ := r.Type
	if typ == "" {
		typ = "a"
	}
	if typ != "a" && typ != "b" && typ != "c" {
		return "", "", fmt.Errorf("linux.resources.devices: type %q: want a, b or c", r.Type)
	}
	num := func(p *int64) string {
		if p == nil || *p == -1 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	access := r.Access
	if access == "" {
		access = "rwm"
	}
	for _, c := range access {
		if c != 'r' && c != 'w' && c != 'm' {
			return "", "", fmt.Errorf("linux.resources.devices: access %q: want letters of rwm", r.Access)
		}
	}
	if typ == "a" {
		return file, "a", nil
	}
	return file, typ + " " + num(r.Major) + ":" + num(r.Minor) + " " + access, nil
}

// DefaultDeviceRules are allowed in every box after its own rules, as
// runc does: creating any device node (it still needs CAP_MKNOD), and the
// devices every box has (the OCI defaults, terminals, tun).
var DefaultDeviceRules = []specs.LinuxDeviceCgroup{
	allowDev("c", -1, -1, "m"), allowDev("b", -1, -1, "m"),
	allowDev("c", 1, 3, "rwm"), allowDev("c", 1, 5, "rwm"), allowDev("c", 1, 7, "rwm"), // null zero full
	allowDev("c", 1, 8, "rwm"), allowDev("c", 1, 9, "rwm"), // random urandom
	allowDev("c", 5, 0, "rwm"), allowDev("c", 5, 1, "rwm"), allowDev("c", 5, 2, "rwm"), // tty console ptmx
	allowDev("c", 136, -1, "rwm"), // pts
	allowDev("c", 10, 200, "rwm"), // net/tun
}

func allowDev(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: access}
}

// DeviceRules is the full rule list of a box: its resources.devices, then
// the defaults, then each device of linux.devices.
func DeviceRules(user []specs.LinuxDeviceCgroup, devices []specs.LinuxDevice) []specs.LinuxDeviceCgroup {
	if len(user) == 0 {
		return nil // no rules: the box keeps its parent's
	}
	rules := append(append([]specs.LinuxDeviceCgroup(nil), user...), DefaultDeviceRules...)
	for _, d := range devices {
		switch d.Type {
		case "c", "u": // u: an unbuffered character device
			rules = append(rules, allowDev("c", d.Major, d.Minor, "rwm"))
		case "b":
			rules = append(rules, allowDev("b", d.Major, d.Minor, "rwm"))
		} // p: a FIFO, which no device rule governs
	}
	return rules
}

// HasLimits reports whether p sets anything.
func (p *Plan) HasLimits() bool { return len(p.Settings) > 0 || len(p.Devices) > 0 }

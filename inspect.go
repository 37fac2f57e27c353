package nsbox

import (
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/rtnl"
	"github.com/nsbox/nsbox/internal/state"
)

// BoxInfo is what `nsbox ps` and `nsbox inspect` show of a box.
type BoxInfo struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"` // 0 once stopped
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
	Owner   int       `json:"owner"` // uid of the user who created it
	Bundle  string    `json:"bundle,omitempty"`
	Rootfs  string    `json:"rootfs,omitempty"`
	Command []string  `json:"command,omitempty"`
	// Namespaces are the inodes of the namespaces the box's processes are
	// in, by type as /proc/PID/ns names them ("net", "mnt", ...), while it
	// runs: the same numbers as in "net:[4026532290]".
	Namespaces map[string]uint64 `json:"namespaces,omitempty"`
	// NewNamespaces lists the types of the namespaces the box made for
	// itself; JoinedNamespaces the paths of those it entered, by type. It
	// shares the others with the host.
	NewNamespaces    []string          `json:"newNamespaces,omitempty"`
	JoinedNamespaces map[string]string `json:"joinedNamespaces,omitempty"`
	// Cgroup is the box's cgroup ("": it has none of its own).
	Cgroup string `json:"cgroup,omitempty"`
	// Network is the bridge network it is on (or its user-mode network:
	// pasta, slirp4netns); Addresses are the IPv4 addresses of its
	// interfaces other than loopback, with their prefix length.
	Network   string   `json:"network,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	// Resources are the limits of its spec (linux.resources).
	Resources *specs.LinuxResources `json:"resources,omitempty"`
}

// Inspect describes box id.
func (rt *Runtime) Inspect(id string) (*BoxInfo, error) {
	st, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	return inspect(st)
}

// InspectAll describes every box in the state directory (removing, as
// List does, ephemeral boxes whose process is gone).
func (rt *Runtime) InspectAll() ([]*BoxInfo, error) {
	boxes, err := rt.List()
	if err != nil {
		return nil, err
	}
	out := []*BoxInfo{}
	for _, b := range boxes {
		info, err := inspect(b.st)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// NamespaceOwners maps each namespace that a running box made for itself,
// by the text of its link ("net:[4026532290]"), to the box's id.
func (rt *Runtime) NamespaceOwners() (map[string]string, error) {
	boxes, err := rt.List()
	if err != nil {
		return nil, err
	}
	owners := map[string]string{}
	for _, b := range boxes {
		made, _, err := boxNamespaces(b.st)
		if err != nil || b.Status == specs.StateStopped {
			continue
		}
		pid, err := nsTarget(b.st)
		if err != nil {
			continue
		}
		for _, t := range made {
			if ino, err := namespaces.Inode(strconv.Itoa(pid), t); err == nil {
				owners[namespaces.ProcName(t)+":["+strconv.FormatUint(ino, 10)+"]"] = b.ID
			}
		}
	}
	return owners, nil
}

// boxNamespaces reads from a box's spec the namespaces it made and those
// it joined (by path).
func boxNamespaces(st *state.State) (made []specs.LinuxNamespaceType, joined map[string]string, err error) {
	var part struct {
		Linux *struct {
			Namespaces []specs.LinuxNamespace `json:"namespaces"`
		} `json:"linux"`
	}
	if err := st.SpecPart(&part); err != nil {
		return nil, nil, err
	}
	if part.Linux == nil {
		return nil, nil, nil
	}
	for _, ns := range part.Linux.Namespaces {
		if ns.Path == "" {
			made = append(made, ns.Type)
			continue
		}
		if joined == nil {
			joined = map[string]string{}
		}
		joined[namespaces.ProcName(ns.Type)] = ns.Path
	}
	return made, joined, nil
}

// nsTarget returns the pid whose /proc/PID/ns the caller may read for a
// running box: its init's, or that of the init's command (see joinTarget).
func nsTarget(st *state.State) (int, error) {
	pidfd, err := openPid(st)
	if err != nil {
		return 0, err
	}
	defer unix.Close(pidfd)
	pid, tfd, err := joinTarget(st.Pid, pidfd)
	if err != nil {
		return 0, err
	}
	if tfd != pidfd {
		unix.Close(tfd)
	}
	return pid, nil
}

func inspect(st *state.State) (*BoxInfo, error) {
	b := &BoxInfo{ID: st.ID, Pid: st.Pid, Status: string(st.Status), Created: st.Created, Owner: st.Owner,
		Bundle: st.Bundle, Cgroup: st.CgroupPath, Network: st.Network}
	if b.Network == "" {
		b.Network = st.NetworkMode
	}
	spec, err := st.Spec()
	if err != nil {
		return nil, err
	}
	if spec.Root != nil {
		b.Rootfs = spec.Root.Path
	}
	if spec.Process != nil {
		b.Command = spec.Process.Args
	}
	if spec.Linux != nil {
		b.Resources = spec.Linux.Resources
	}
	made, joined, _ := boxNamespaces(st)
	for _, t := range made {
		b.NewNamespaces = append(b.NewNamespaces, namespaces.ProcName(t))
	}
	b.JoinedNamespaces = joined
	if st.Status == specs.StateStopped {
		b.Pid = 0
		return b, nil
	}
	pid, err := nsTarget(st)
	if err != nil {
		return b, nil // ended meanwhile
	}
	spid := strconv.Itoa(pid)
	b.Namespaces = map[string]uint64{}
	for _, t := range namespaces.All {
		if ino, err := namespaces.Inode(spid, t); err == nil {
			b.Namespaces[namespaces.ProcName(t)] = ino
		}
	}
	b.Addresses = addresses(pid)
	if len(b.Addresses) == 0 && st.Addr != "" {
		b.Addresses = []string{st.Addr} // its lease, when its namespace is out of reach
	}
	return b, nil
}

// addresses lists the IPv4 addresses, other than loopback, of the network
// namespace of process pid (nil when the caller may not enter it).
func addresses(pid int) []string {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	c, err := rtnl.DialAt(fd)
	if err != nil {
		return nil
	}
	defer c.Close()
	prefixes, err := c.Addrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range prefixes {
		if !p.Addr().IsLoopback() {
			out = append(out, p.String())
		}
	}
	return out
}

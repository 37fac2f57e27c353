package nsbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroups"
	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/process"
	"github.com/nsbox/nsbox/internal/setup"
	"github.com/nsbox/nsbox/internal/state"
)

// Process is a process started in a running box by Exec.
type Process struct {
	// Console is the master of its terminal, when it has one and no
	// console socket took it.
	Console *os.File
	proc    *process.Process
}

// Pid is the process's pid (on the host).
func (p *Process) Pid() int { return p.proc.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.proc.Signal(sig) }

// Wait waits for the process to end and returns its exit code (128+N for
// signal N).
func (p *Process) Wait() (int, error) { return p.proc.Wait() }

// sessionKeyring is the name of the session keyring of box id's processes
// ("" to keep the caller's), as runc names it.
func sessionKeyring(id string, keep bool) string {
	if keep {
		return ""
	}
	return "_ses." + id
}

// Exec starts process proc in running box id: it joins the box's
// namespaces and cgroup and runs with the identity, capabilities and
// limits proc gives (see BoxProcess for the box's own defaults).
func (rt *Runtime) Exec(id string, proc *specs.Process, o Options) (*Process, error) {
	st, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case specs.StateRunning, specs.StateCreated:
	default:
		return nil, fmt.Errorf("box %s is %s: exec needs a running box", id, st.Status)
	}
	if proc == nil || len(proc.Args) == 0 {
		return nil, fmt.Errorf("exec: no command")
	}
	// Hold the box's init by pidfd so that its pid cannot be recycled
	// while its namespaces are opened by pid.
	pidfd, err := openPid(st)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pidfd)
	// The box's seccomp filter applies to its every process.
	var filter *specs.LinuxSeccomp
	var part struct {
		Linux *struct {
			Seccomp *specs.LinuxSeccomp `json:"seccomp"`
		} `json:"linux"`
	}
	if err := st.SpecPart(&part); err != nil {
		return nil, err
	}
	if part.Linux != nil {
		filter = part.Linux.Seccomp
	}
	o.NoNewKeyring = o.NoNewKeyring || st.NoNewKeyring
	pid, tfd, err := joinTarget(st.Pid, pidfd)
	if err != nil {
		return nil, fmt.Errorf("box %s: %w", id, err)
	}
	if tfd != pidfd {
		defer unix.Close(tfd)
	}
	return spawnIn(id, pid, tfd, proc, "", cgroupOf(st), confinement{filter, st.Landlock}, o)
}

// confinement is what a process started in a box gets of the box's own
// confinement beyond its namespaces and capabilities.
type confinement struct {
	seccomp  *specs.LinuxSeccomp
	landlock *state.Landlock
}

// joinTarget picks the process whose namespaces a new process of a box
// joins: its first process (pid, held by pidfd) when the caller may reach
// it, else the command that process runs as the box's init. The init is
// a copy of nsbox that stays undumpable (so that the box cannot reach the
// nsbox binary through it), which puts it out of an unprivileged caller's
// reach; its command, executed inside the box, is not.
func joinTarget(pid, pidfd int) (int, int, error) {
	spid := strconv.Itoa(pid)
	if _, err := os.Readlink("/proc/" + spid + "/ns/user"); !errors.Is(err, os.ErrPermission) {
		return pid, pidfd, nil
	}
	b, err := fileio.ReadFile("/proc/" + spid + "/task/" + spid + "/children")
	if err != nil {
		return 0, -1, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, -1, fmt.Errorf("its init (process %d) runs no command", pid)
	}
	child, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, -1, err
	}
	cfd, err := unix.PidfdOpen(child, 0)
	if err != nil {
		return 0, -1, fmt.Errorf("the command of its init: %w", err)
	}
	// Held by pidfd, it must still be the init's child (not a recycled pid).
	if ppid, err := parentOf(child); err != nil || ppid != pid {
		unix.Close(cfd)
		return 0, -1, fmt.Errorf("the command of its init (process %d) has ended", child)
	}
	return child, cfd, nil
}

// parentOf reads the parent pid of pid from /proc/PID/stat.
func parentOf(pid int) (int, error) {
	b, err := fileio.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}

// spawnIn starts proc in box id, in the namespaces of process pid (held by
// pidfd), and in cgroup cg if not nil. path, if set, is the executable to run
// (proc.Args is then only its argv).
func spawnIn(id string, pid, pidfd int, proc *specs.Process, path string, cg *cgroups.Manager, conf confinement, o Options) (*Process, error) {
	filter := conf.seccomp
	// Join the target's namespaces that differ from the caller's (one may
	// not enter again those a box shares with the host, such as its time
	// namespace, from inside its own user namespace), all in one setns(2)
	// on its pidfd (Linux 5.8).
	s := &specs.Spec{Version: specs.Version, Process: proc, Root: &specs.Root{Path: "/"}, Linux: &specs.Linux{Seccomp: filter}}
	types, err := EnterTypes(pid, nil)
	if err != nil {
		return nil, err
	}
	spid := strconv.Itoa(pid)
	for _, t := range types {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: "/proc/" + spid + "/ns/" + namespaces.ProcName(t)})
	}
	if unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		return nil, fmt.Errorf("process %d ended while joining its namespaces", pid)
	}
	ns, err := namespaces.PlanFor(s)
	if err != nil {
		return nil, err
	}
	cgfd := -1
	if cg != nil {
		if cgfd, err = cg.OpenV2(); err != nil {
			return nil, err
		}
		if cgfd >= 0 {
			defer unix.Close(cgfd)
		}
	}
	uids, gids, err := idMapsOf(pid)
	if err != nil {
		return nil, err
	}
	p, err := launchJoining(setup.Config{
		Spec:            s,
		NS:              ns,
		JoinPidFD:       pidfd,
		SetgroupsDenied: setgroupsDenied(spid),
		PreserveFDs:     o.PreserveFDs,
		WinSize:         o.WinSize,
		Stdio:           [3]int{fdOf(o.Stdin), fdOf(o.Stdout), fdOf(o.Stderr)},
		SessionKeyring:  sessionKeyring(id, o.NoNewKeyring),
		Placement:       cg != nil && cgfd < 0,
		ExecPath:        path,
		Landlock:        conf.landlock,
	}, !ns.Is(specs.UserNamespace, namespaces.Join), uids, gids, o.Debug, "a process in the namespaces of "+spid,
		func(r *setup.Result) {
			if cgfd >= 0 {
				r.Clone.Flags |= unix.CLONE_INTO_CGROUP
				r.Clone.CgroupFD = cgfd
			}
		}, process.Hooks{
			Seccomp: func(child, fd int) error {
				return sendSeccompListener(filter, fd, specs.State{Version: specs.Version, ID: id, Status: specs.StateRunning, Pid: child})
			},
			Place: func(child int) error {
				if cg == nil || cgfd >= 0 {
					return nil
				}
				return cg.Apply(child)
			},
		})
	if err != nil {
		return nil, err
	}
	if p.Console != nil && o.ConsoleSocket != "" {
		err := sendConsole(o.ConsoleSocket, p.Console)
		p.Console.Close()
		p.Console = nil
		if err != nil {
			p.Signal(unix.SIGKILL)
			p.Wait()
			return nil, err
		}
	}
	return &Process{Console: p.Console, proc: p}, nil
}

// setgroupsDenied reports whether setgroups(2) is denied in the user
// namespace of process pid.
func setgroupsDenied(pid string) bool {
	b, err := fileio.ReadFile("/proc/" + pid + "/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// BoxProcess returns a copy of box id's own process, the defaults for a
// process started in it with Exec (as runc exec uses the container's).
func (rt *Runtime) BoxProcess(id string) (*specs.Process, error) {
	st, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	var part struct {
		Process *specs.Process `json:"process"`
	}
	if err := st.SpecPart(&part); err != nil {
		return nil, err
	}
	if part.Process == nil {
		return nil, fmt.Errorf("box %s has no process in its config", id)
	}
	p := *part.Process
	p.Terminal = false
	p.ConsoleSize = nil
	return &p, nil
}

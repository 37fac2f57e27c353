package nsbox

import (
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
	st, err := rt.store.Load(id)
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
	if err := st.SpecPart(&part); err == nil && part.Linux != nil {
		filter = part.Linux.Seccomp
	}
	o.NoNewKeyring = o.NoNewKeyring || st.NoNewKeyring
	p, err := spawnIn(id, st.Pid, pidfd, proc, "", cgroupOf(st), filter, o)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// spawnIn starts proc in box id, in the namespaces of process pid (held by
// pidfd), and in cgroup cg if not nil. path, if set, is the executable to run
// (proc.Args is then only its argv).
func spawnIn(id string, pid, pidfd int, proc *specs.Process, path string, cg *cgroups.Manager, filter *specs.LinuxSeccomp, o Options) (*Process, error) {
	// Join every namespace the target does not share with us.
	s := &specs.Spec{Version: specs.Version, Process: proc, Root: &specs.Root{Path: "/"}, Linux: &specs.Linux{Seccomp: filter}}
	joinFDs := map[namespaces.Type]int{}
	defer func() {
		for _, fd := range joinFDs {
			unix.Close(fd)
		}
	}()
	spid := strconv.Itoa(pid)
	for _, t := range namespaces.All {
		theirs, err := namespaces.Inode(spid, t)
		if err != nil {
			continue // a type this kernel lacks
		}
		if ours, err := namespaces.Inode("self", t); err == nil && ours == theirs {
			continue
		}
		nsPath := "/proc/" + spid + "/ns/" + namespaces.ProcName(t)
		fd, err := namespaces.OpenJoin(t, nsPath)
		if err != nil {
			return nil, err
		}
		joinFDs[t] = fd
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: nsPath})
	}
	if unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		return nil, fmt.Errorf("process %d ended while joining its namespaces", pid)
	}
	ns, err := namespaces.PlanFor(s)
	if err != nil {
		return nil, err
	}
	sync, err := process.NewSync()
	if err != nil {
		return nil, err
	}
	defer sync.Close()
	cgfd := -1
	if cg != nil {
		if cgfd, err = cg.OpenV2(); err != nil {
			return nil, err
		}
		if cgfd >= 0 {
			defer unix.Close(cgfd)
		}
	}
	uids, gids, own, err := idMapsOf(pid)
	if err != nil {
		return nil, err
	}
	r, tf, err := buildGuarded(setup.Config{
		Spec:            s,
		NS:              ns,
		JoinFDs:         joinFDs,
		SyncFD:          sync.Child,
		SetgroupsDenied: setgroupsDenied(spid),
		PreserveFDs:     o.PreserveFDs,
		WinSize:         o.WinSize,
		Stdio:           [3]int{fdOf(o.Stdin), fdOf(o.Stdout), fdOf(o.Stderr)},
		StartFD:         -1,
		SessionKeyring:  sessionKeyring(id, o.NoNewKeyring),
		Placement:       cg != nil && cgfd < 0,
		ExecPath:        path,
	}, own, uids, gids)
	if err != nil {
		return nil, err
	}
	if tf != nil {
		defer tf.Close()
	}
	if cgfd >= 0 {
		r.Clone.Flags |= unix.CLONE_INTO_CGROUP
		r.Clone.CgroupFD = cgfd
	}
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "nsbox: set-up steps of a process in the namespaces of %d:\n%s", pid, r.Program)
	}
	p, err := process.Launch(r, &sync, process.Hooks{

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
	st, err := rt.store.Load(id)
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

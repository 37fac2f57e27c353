package nsbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroups"
	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/state"
)

// SpecVersion is the OCI runtime spec version nsbox implements.
var SpecVersion = specs.Version

// ErrNotExist is returned for an unknown box id.
var ErrNotExist = state.ErrNotExist

// State is what the runtime knows about a box.
type State struct {
	specs.State
	Created   time.Time
	Owner     int
	Rootless  bool
	Ephemeral bool
	st        *state.State
}

// Spec returns the box's spec.
func (s *State) Spec() (*specs.Spec, error) { return s.st.Spec() }

func publicState(st *state.State) *State {
	return &State{State: st.State, Created: st.Created, Owner: st.Owner, Rootless: st.Rootless, Ephemeral: st.Ephemeral, st: st}
}

// State returns the state of box id: status creating, without a pid, while
// another command creates it (its hooks may ask: waiting for the creation
// to end would wait for them).
func (rt *Runtime) State(id string) (*State, error) {
	st, err := rt.store.Load(id)
	if errors.Is(err, state.ErrCreating) {
		st, err = &state.State{State: specs.State{Version: specs.Version, ID: id, Status: specs.StateCreating}}, nil
	}
	if err != nil {
		return nil, err
	}
	return publicState(st), nil
}

// List returns every box in the state directory. Ephemeral boxes whose
// process is gone (their owner was killed) are removed on the way.
func (rt *Runtime) List() ([]*State, error) {
	ids, err := rt.store.List()
	if err != nil {
		return nil, err
	}
	var out []*State
	for _, id := range ids {
		st, err := rt.store.Load(id)
		if err != nil {
			continue // being created, or removed meanwhile
		}
		if st.Ephemeral && st.Status == specs.StateStopped {
			rt.remove(st)
			continue
		}
		out = append(out, publicState(st))
	}
	return out, nil
}

// Kill sends sig to box id's first process, or with all to every process
// of the box.
func (rt *Runtime) Kill(id string, sig syscall.Signal, all bool) error {
	st, err := rt.load(id)
	if err != nil {
		return err
	}
	if st.Status == specs.StateStopped {
		return fmt.Errorf("box %s is not running", id)
	}
	if all {
		return rt.signalAll(st, sig)
	}
	pidfd, err := openPid(st)
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal box %s: %w", id, err)
	}
	return nil
}

// signalAll sends sig to every process of a box: through its cgroup when it
// has one, otherwise to its init and the init's descendants.
func (rt *Runtime) signalAll(st *state.State, sig syscall.Signal) error {
	if m := cgroupOf(st); m != nil {
		return m.Signal(sig)
	}
	pids, err := boxPids(st)
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	return err
}

// Pids lists the processes of box id, as host pids.
func (rt *Runtime) Pids(id string) ([]int, error) {
	st, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	if st.Status == specs.StateStopped {
		return nil, nil
	}
	return boxPids(st)
}

// boxPids lists a box's processes: its cgroup's, or the init's descendants
// (which, in a pid namespace of its own, are all of them).
func boxPids(st *state.State) ([]int, error) {
	if m := cgroupOf(st); m != nil {
		return m.Pids()
	}
	return descendants(st.Pid)
}

// descendants returns pid and every process below it, from /proc.
func descendants(root int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := fileio.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// Pause freezes every process of box id: with its cgroup's freezer, or, for
// a box without a cgroup, by stopping each of its processes (SIGSTOP, which
// their parents can notice; a cgroup freezes invisibly).
func (rt *Runtime) Pause(id string) error {
	return rt.setPaused(id, true)
}

// load loads box id's record, waiting for its creation to end if need be.
// (Not for a caller that holds the box's lock.)
func (rt *Runtime) load(id string) (*state.State, error) {
	st, err := rt.store.Load(id)
	if errors.Is(err, state.ErrCreating) {
		rt.store.WaitCreated(id)
		st, err = rt.store.Load(id)
	}
	return st, err
}

// loadLocked locks box id's record and loads it; unlock releases it.
func (rt *Runtime) loadLocked(id string) (*state.State, func(), error) {
	unlock, err := rt.store.Lock(id)
	if err != nil {
		return nil, nil, err
	}
	st, err := rt.store.LoadHeld(id)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return st, unlock, nil
}

// Resume thaws a paused box.
func (rt *Runtime) Resume(id string) error {
	return rt.setPaused(id, false)
}

func (rt *Runtime) setPaused(id string, pause bool) error {
	st, unlock, err := rt.loadLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	switch {
	case pause && st.Status != specs.StateRunning:
		return fmt.Errorf("box %s is %s: only a running box can be paused", id, st.Status)
	case !pause && st.Status != state.Paused:
		return fmt.Errorf("box %s is %s, not paused", id, st.Status)
	}
	if m := cgroupOf(st); m != nil {
		if pause {
			err = m.Freeze()
		} else {
			err = m.Thaw()
		}
	} else {
		err = stopAll(st, pause)
	}
	if err != nil {
		return fmt.Errorf("pause box %s: %w", id, err)
	}
	st.Status = specs.StateRunning
	if pause {
		st.Status = state.Paused
	}
	return rt.store.Save(st)
}

// stopAll sends SIGSTOP (or SIGCONT) to every process of a box without a
// cgroup, again until no new process shows up.
func stopAll(st *state.State, stop bool) error {
	sig := unix.SIGCONT
	if stop {
		sig = unix.SIGSTOP
	}
	done := map[int]bool{}
	for round := 0; round < 100; round++ {
		pids, err := boxPids(st)
		if err != nil {
			return err
		}
		fresh := false
		for _, pid := range pids {
			if !done[pid] {
				unix.Kill(pid, sig)
				done[pid], fresh = true, true
			}
		}
		if !fresh || !stop {
			return nil
		}
	}
	return errors.New("the box keeps forking faster than it can be stopped")
}

// openPid opens a pidfd for the box's first process, checking that the pid
// was not reused by another process.
func openPid(st *state.State) (int, error) {
	pidfd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return -1, fmt.Errorf("box %s: process %d: %w", st.ID, st.Pid, err)
	}
	if !state.Alive(st.Pid, st.InitStart) {
		unix.Close(pidfd)
		return -1, fmt.Errorf("box %s is not running", st.ID)
	}
	return pidfd, nil
}

// Delete removes box id, as OCI delete does: a stopped or created box at
// once (a created one is killed), a running or paused one only with force
// (it is killed first).
func (rt *Runtime) Delete(id string, force bool) error {
	st, unlock, err := rt.loadLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	switch st.Status {
	case specs.StateStopped:
	case specs.StateCreated:
		rt.killAndWait(st)
	default:
		if !force {
			return fmt.Errorf("box %s is %s: stop it first, or use --force", id, st.Status)
		}
		rt.killAndWait(st)
	}
	rt.remove(st)
	return nil
}

// killAndWait kills every process of a box and waits for its first one.
func (rt *Runtime) killAndWait(st *state.State) {
	pidfd, err := openPid(st)
	if err != nil {
		return
	}
	defer unix.Close(pidfd)
	rt.signalAll(st, unix.SIGKILL)
	if m := cgroupOf(st); m != nil && m.Frozen() {
		m.Thaw() // a frozen process dies only once thawed
	} else if st.Status == state.Paused {
		stopAll(st, false)
	}
	unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	waitGone(pidfd)
}

// cgroupOf returns the manager of a box's cgroup, or nil.
func cgroupOf(st *state.State) *cgroups.Manager {
	if st.CgroupPath == "" {
		return nil
	}
	layout, err := cgroups.Detect()
	if err != nil {
		return nil
	}
	return &cgroups.Manager{Layout: layout, Path: st.CgroupPath, Paths: st.CgroupPaths}
}

// waitGone waits until the process of pidfd has exited.
func waitGone(pidfd int) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, 10000)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

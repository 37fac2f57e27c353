package nsbox

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroups"
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

// State returns the state of box id.
func (rt *Runtime) State(id string) (*State, error) {
	st, err := rt.store.Load(id)
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

// Kill sends sig to box id's first process.
func (rt *Runtime) Kill(id string, sig syscall.Signal) error {
	st, err := rt.store.Load(id)
	if err != nil {
		return err
	}
	if st.Status == specs.StateStopped {
		return fmt.Errorf("box %s is not running", id)
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

// Delete removes box id. A running box is refused unless force is set, in
// which case it is killed first.
func (rt *Runtime) Delete(id string, force bool) error {
	unlock, err := rt.store.Lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := rt.store.Load(id)
	if err != nil {
		return err
	}
	if st.Status != specs.StateStopped {
		if !force {
			return fmt.Errorf("box %s is %s: stop it first, or use --force", id, st.Status)
		}
		pidfd, err := openPid(st)
		if err == nil {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			waitGone(pidfd)
			unix.Close(pidfd)
		}
	}
	rt.remove(st)
	return nil
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
	return &cgroups.Manager{Layout: layout, Path: st.CgroupPath}
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

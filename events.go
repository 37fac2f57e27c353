package nsbox

import (
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/cgroups"
)

// Stats is a box's resource usage, read from its cgroup; its JSON is that
// of `runc events --stats`.
type Stats = cgroups.Stats

// Event is one event of a box: Type "stats" (with Data) or "oom".
type Event = cgroups.Event

// Stats reads the resource usage of box id.
func (rt *Runtime) Stats(id string) (*Stats, error) {
	st, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	if st.Status == specs.StateStopped {
		return nil, fmt.Errorf("box %s is stopped", id)
	}
	m := cgroupOf(st)
	if m == nil {
		return nil, fmt.Errorf("box %s has no cgroup of its own to read statistics from", id)
	}
	return m.Stats()
}

// Events reports box id's statistics every interval and each OOM kill as
// it happens, to fn, until the box stops or stop is closed.
func (rt *Runtime) Events(id string, interval time.Duration, stop <-chan struct{}, fn func(Event)) error {
	st, err := rt.load(id)
	if err != nil {
		return err
	}
	m := cgroupOf(st)
	if m == nil {
		return fmt.Errorf("box %s has no cgroup of its own to report events of", id)
	}
	pidfd, err := openPid(st)
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	done := make(chan struct{})
	defer close(done)
	ended := make(chan struct{})
	go func() {
		waitGone(pidfd)
		close(ended)
	}()
	quit := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-ended:
		case <-done:
		}
		close(quit)
	}()
	ooms, err := m.WatchOOM(quit)
	if err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return nil
		case _, ok := <-ooms:
			if !ok {
				ooms = nil // the watch ended with the cgroup
				continue
			}
			fn(Event{Type: "oom", ID: id})
		case <-tick.C:
			s, err := m.Stats()
			if err != nil {
				select {
				case <-ended:
					return nil // gone meanwhile
				default:
				}
				return err
			}
			fn(Event{Type: "stats", ID: id, Data: s})
		}
	}
}

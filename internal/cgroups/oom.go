package cgroups

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// OOMKills returns how many of the box's processes the OOM killer has
// killed: the oom_kill count of memory.events on cgroup v2, or of
// memory.oom_control on v1 (Linux 4.13 and later; older kernels get an
// error wrapping errors.ErrUnsupported).
func (m *Manager) OOMKills() (uint64, error) {
	h, err := m.memoryHierarchy("count OOM kills")
	if err != nil {
		return 0, err
	}
	file := "memory.oom_control"
	if h.V2 {
		file = "memory.events"
	}
	kv, err := readKeyValues(m.Dir(h), file)
	if err != nil {
		return 0, err
	}
	n, ok := kv["oom_kill"]
	if !ok {
		return 0, fmt.Errorf("%s of cgroup %s has no oom_kill count: %w", file, m.Dir(h), errors.ErrUnsupported)
	}
	return n, nil
}

// WatchOOM reports the box's out-of-memory events: the returned channel
// receives a value each time the kernel handles an OOM in the box's cgroup
// (events that come while the previous one is still unread are merged).
// The channel is closed, and the watch's file descriptors released, once
// stop is closed (a nil stop never is) or the cgroup is removed. OOMs from
// before the call are not reported: compare OOMKills for those.
//
// On cgroup v2 it watches memory.events with inotify and reports a rise of
// its oom or oom_kill count; on v1 it registers an eventfd for
// memory.oom_control through cgroup.event_control.
func (m *Manager) WatchOOM(stop <-chan struct{}) (<-chan struct{}, error) {
	h, err := m.memoryHierarchy("watch OOM events")
	if err != nil {
		return nil, err
	}
	var w *oomWatch
	if h.V2 {
		w, err = watchMemoryEvents(m.Dir(h))
	} else {
		w, err = watchOOMControl(m.Dir(h))
	}
	if err != nil {
		return nil, err
	}
	out := make(chan struct{}, 1)
	go w.run(stop, out)
	return out, nil
}

func (m *Manager) memoryHierarchy(doing string) (*Hierarchy, error) {
	h := m.Layout.Find("memory")
	if h == nil {
		return nil, fmt.Errorf("%s of box cgroup %s: no memory controller: %w", doing, m.Path, errors.ErrUnsupported)
	}
	return h, nil
}

func readKeyValues(dir, file string) (map[string]uint64, error) {
	b, err := fileio.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, fmt.Errorf("read %s of cgroup %s: %w", file, dir, err)
	}
	kv, err := parseKeyValues(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s of cgroup %s: %w", file, dir, err)
	}
	return kv, nil
}

// oomWatch is one pollable file descriptor that wakes up on OOM events
// (an inotify instance or an eventfd), and how to read its wake-ups.
type oomWatch struct {
	f *os.File
	// hold are other descriptors kept open as long as the watch.
	hold []int
	// handle interprets one read of f: whether an OOM happened, and
	// whether the cgroup is gone.
	handle func(buf []byte) (oom, gone bool)
}

func newOOMWatch(fd int, name string, hold []int) (*oomWatch, error) {
	w := &oomWatch{f: os.NewFile(uintptr(fd), name), hold: hold}
	// A descriptor the runtime's poller has taken can be woken up by a
	// deadline, which is how stop interrupts a blocked read.
	if err := w.f.SetReadDeadline(time.Time{}); err != nil {
		w.close()
		return nil, fmt.Errorf("poll %s: %w", name, err)
	}
	return w, nil
}

func (w *oomWatch) close() {
	w.f.Close()
	for _, fd := range w.hold {
		unix.Close(fd)
	}
}

// run forwards events to out until stop is closed, the cgroup goes away
// or the descriptor fails; then it releases the descriptors and closes out.
func (w *oomWatch) run(stop <-chan struct{}, out chan<- struct{}) {
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
			w.f.SetReadDeadline(time.Unix(1, 0)) // wakes the read below
		case <-done:
		}
	}()
	defer close(out)
	defer close(done)
	defer w.close()
	buf := make([]byte, 4096)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		oom, gone := w.handle(buf[:n])
		if oom {
			select {
			case out <- struct{}{}:
			default: // one is already waiting
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		if gone {
			return
		}
	}
}

// watchMemoryEvents watches cgroup v2 directory dir: its memory.events for
// changes, and its parent for the directory's removal (the cgroup's own
// files never report that).
func watchMemoryEvents(dir string) (*oomWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch OOM events of cgroup %s: inotify_init1: %w", dir, err)
	}
	events := filepath.Join(dir, "memory.events")
	evWd, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", events, err)
	}
	parentWd, err := unix.InotifyAddWatch(fd, filepath.Dir(dir), unix.IN_DELETE|unix.IN_ONLYDIR)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", filepath.Dir(dir), err)
	}
	// The counts to compare with, read once the watch is in place so that
	// no change falls in between.
	last, err := readKeyValues(dir, "memory.events")
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	w, err := newOOMWatch(fd, "inotify:"+events, nil)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(dir)
	w.handle = func(buf []byte) (oom, gone bool) {
		changed := false
		for _, ev := range parseInotify(buf) {
			switch {
			case ev.wd == parentWd && ev.name == base && ev.mask&unix.IN_DELETE != 0:
				return false, true
			case ev.wd == evWd && ev.mask&unix.IN_IGNORED != 0:
				return false, true
			case ev.wd == evWd || ev.mask&unix.IN_Q_OVERFLOW != 0:
				changed = true
			}
		}
		if !changed {
			return false, false
		}
		now, err := readKeyValues(dir, "memory.events")
		if err != nil {
			return false, errors.Is(err, os.ErrNotExist)
		}
		oom = now["oom"] > last["oom"] || now["oom_kill"] > last["oom_kill"]
		last = now
		return oom, false
	}
	return w, nil
}

// inotifyEvent is one decoded struct inotify_event.
type inotifyEvent struct {
	wd   int
	mask uint32
	name string
}

// parseInotify decodes the events of one read from an inotify descriptor.
func parseInotify(buf []byte) []inotifyEvent {
	var out []inotifyEvent
	for len(buf) >= unix.SizeofInotifyEvent {
		var raw unix.InotifyEvent
		if _, err := binary.Decode(buf, binary.NativeEndian, &raw); err != nil {
			break
		}
		end := unix.SizeofInotifyEvent + int(raw.Len)
		if end > len(buf) {
			break
		}
		name := buf[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, inotifyEvent{wd: int(raw.Wd), mask: raw.Mask, name: string(name)})
		buf = buf[end:]
	}
	return out
}

// watchOOMControl registers an eventfd for the OOM notifications of cgroup
// v1 memory directory dir: "<eventfd> <fd of memory.oom_control>" written
// to cgroup.event_control. The kernel also signals the eventfd when the
// cgroup is removed, which the handler tells apart by looking for the
// directory.
func watchOOMControl(dir string) (*oomWatch, error) {
	ctl := filepath.Join(dir, "memory.oom_control")
	cfd, err := unix.Open(ctl, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("watch OOM events: open %s: %w", ctl, err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(cfd)
		return nil, fmt.Errorf("watch OOM events of cgroup %s: eventfd: %w", dir, err)
	}
	reg := []byte(strconv.Itoa(efd) + " " + strconv.Itoa(cfd))
	if err := fileio.Write(filepath.Join(dir, "cgroup.event_control"), unix.O_WRONLY, 0, reg); err != nil {
		unix.Close(cfd)
		unix.Close(efd)
		return nil, fmt.Errorf("watch OOM events: register eventfd: %w", err)
	}
	w, err := newOOMWatch(efd, "eventfd:"+ctl, []int{cfd})
	if err != nil {
		return nil, err
	}
	w.handle = func([]byte) (oom, gone bool) {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.event_control")); errors.Is(err, os.ErrNotExist) {
			return false, true
		}
		return true, false
	}
	return w, nil
}

package userns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// AutoSize is the number of ids a box with an allocated range gets: the full
// 16-bit id space that images expect.
const AutoSize = 65536

// DefaultPool is where ranges for root's boxes come from when /etc/subuid has
// no "nsbox" entry: 16383 ranges from 2^30 up, below 2^31 where some tools
// start to misbehave.
var DefaultPool = Range{Start: 1 << 30, Count: 1<<30 - AutoSize}

// PoolUser is the /etc/subuid and /etc/subgid entry that, when present, sets
// the pool of ranges for root's boxes (like podman's "containers").
const PoolUser = "nsbox"

// Allocator hands out ranges of AutoSize host ids, each to one box, recorded
// as one file per range in Dir (named after the first id, holding the box
// id). Ranges listed in /etc/subuid or /etc/subgid for anyone else are never
// handed out.
type Allocator struct {
	Dir     string
	Pool    Range
	Exclude []Range
	// Alive reports whether a box still exists; ranges of boxes that do not
	// are taken back.
	Alive func(boxID string) bool
}

// NewAllocator reads the pool and the ranges to avoid from /etc/subuid and
// /etc/subgid.
func NewAllocator(dir string, alive func(string) bool) *Allocator {
	a := &Allocator{Dir: dir, Pool: DefaultPool, Alive: alive}
	var pools [][]Range
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := fileio.ReadFile(f)
		if err != nil {
			continue
		}
		own := SubIDs(b, PoolUser, ^uint32(0))
		pools = append(pools, own)
		for _, r := range AllSubIDs(b) {
			if !containsRange(own, r) {
				a.Exclude = append(a.Exclude, r)
			}
		}
	}
	if len(pools) == 2 && len(pools[0]) > 0 && len(pools[1]) > 0 && pools[0][0] == pools[1][0] {
		a.Pool = pools[0][0]
	}
	return a
}

func containsRange(rs []Range, r Range) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// Allocate reserves a free range for boxID.
func (a *Allocator) Allocate(boxID string) (Range, error) {
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return Range{}, fmt.Errorf("id range store: %w", err)
	}
	// Plain system calls, not os.File: the first regular file os opens
	// sets up the runtime's poller, a dozen calls on the path that starts
	// a box.
	lockPath := filepath.Join(a.Dir, ".lock")
	lock, err := unix.Open(lockPath, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return Range{}, fmt.Errorf("id range store: %w", &fs.PathError{Op: "open", Path: lockPath, Err: err})
	}
	defer unix.Close(lock)
	if err := unix.Flock(lock, unix.LOCK_EX); err != nil {
		return Range{}, fmt.Errorf("lock id range store: %w", err)
	}
	for start := uint64(a.Pool.Start); start+AutoSize <= a.Pool.End(); start += AutoSize {
		r := Range{Start: uint32(start), Count: AutoSize}
		if a.excluded(r) {
			continue
		}
		path := filepath.Join(a.Dir, strconv.FormatUint(start, 10))
		reserve := func() error {
			return fileio.Write(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600, []byte(boxID))
		}
		err := reserve()
		if errors.Is(err, fs.ErrExist) {
			holder, _ := fileio.ReadFile(path)
			if a.Alive != nil && !a.Alive(strings.TrimSpace(string(holder))) {
				os.Remove(path)
				err = reserve()
			}
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			os.Remove(path) // created, but not written
			return Range{}, fmt.Errorf("reserve ids %d-%d: %w", r.Start, r.End()-1, err)
		}
		return r, nil
	}
	return Range{}, fmt.Errorf("no free range of %d ids left in %d-%d", AutoSize, a.Pool.Start, a.Pool.End()-1)
}

func (a *Allocator) excluded(r Range) bool {
	for _, x := range a.Exclude {
		if r.Overlaps(x) {
			return true
		}
	}
	return false
}

// Release gives back the range starting at start, recorded in dir, if boxID
// holds it.
func Release(dir string, start uint32, boxID string) {
	path := filepath.Join(dir, strconv.FormatUint(uint64(start), 10))
	if holder, err := fileio.ReadFile(path); err == nil && string(holder) == boxID {
		os.Remove(path)
	}
}

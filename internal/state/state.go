// Package state records boxes in a state directory (ROOT/ID/state.json), the
// one store that `nsbox run`, the OCI commands and the namespace tools share.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
	"github.com/nsbox/nsbox/internal/specjson"
)

// ErrNotExist is returned for an unknown box id.
var ErrNotExist = errors.New("no such box")

// ErrExist is returned when creating a box whose id is taken.
var ErrExist = errors.New("box id already in use")

// DefaultRoot is /run/nsbox for root; for other users $XDG_RUNTIME_DIR/nsbox,
// or nsbox-UID in the temporary directory when XDG_RUNTIME_DIR is unset.
func DefaultRoot() string {
	if os.Geteuid() == 0 {
		return "/run/nsbox"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "nsbox")
	}
	return filepath.Join(os.TempDir(), "nsbox-"+strconv.Itoa(os.Geteuid()))
}

// State is what the store keeps about a box: the OCI state plus what nsbox
// needs to find and clean up after it.
type State struct {
	specs.State
	Created time.Time `json:"created"`
	// InitStart is the start time of Pid (in clock ticks since boot), so a
	// reused pid is not mistaken for the box.
	InitStart uint64 `json:"initStart,omitempty"`
	Owner     int    `json:"owner"`
	Rootless  bool   `json:"rootless,omitempty"`
	// Ephemeral boxes (started by `nsbox run`) are removed when they end.
	Ephemeral bool `json:"ephemeral,omitempty"`
	// IDRange is the first host id of a range allocated for the box's user
	// namespace (0: none).
	IDRange uint32 `json:"idRange,omitempty"`
	// Network and Addr: the bridge network the box is on, and its address;
	// or NetworkMode, its user-mode network (pasta, slirp4netns).
	Network     string `json:"network,omitempty"`
	Addr        string `json:"addr,omitempty"`
	NetworkMode string `json:"networkMode,omitempty"`
	// NoNewKeyring: the box's processes keep the caller's session keyring.
	NoNewKeyring bool `json:"noNewKeyring,omitempty"`
	// CgroupPath is the box's cgroup, inside every hierarchy ("": none)
	// but those in CgroupPaths (by mount point), where it differs.
	CgroupPath  string            `json:"cgroupPath,omitempty"`
	CgroupPaths map[string]string `json:"cgroupPaths,omitempty"`
	// Landlock is the Landlock ruleset of the box's command (nsbox run
	// --landlock), which the processes Exec starts in the box get too.
	Landlock *Landlock `json:"landlock,omitempty"`
	// Config is the box's spec as JSON (decoded only when needed: see Spec).
	Config specjson.RawMessage `json:"config,omitempty"`
}

// Landlock is a Landlock ruleset: the filesystem rights it handles, on a
// kernel of Landlock ABI ABI, and the paths (in the box) beneath which it
// grants some of them.
type Landlock struct {
	ABI     int            `json:"abi"`
	Handled uint64         `json:"handled"`
	Rules   []LandlockRule `json:"rules"`
}

// LandlockRule grants Access beneath Path.
type LandlockRule struct {
	Path   string `json:"path"`
	Access uint64 `json:"access"`
	What   string `json:"what,omitempty"` // the rights in words
}

// SetSpec records spec as the box's config.
func (st *State) SetSpec(spec *specs.Spec) error {
	b, err := specjson.Marshal(spec)
	st.Config = b
	return err
}

// Spec decodes the box's spec.
func (st *State) Spec() (*specs.Spec, error) {
	if len(st.Config) == 0 {
		return nil, fmt.Errorf("box %s has no recorded config", st.ID)
	}
	var s specs.Spec
	if err := specjson.Unmarshal(st.Config, &s); err != nil {
		return nil, fmt.Errorf("config of box %s: %w", st.ID, err)
	}
	return &s, nil
}

// SpecPart decodes the parts of the box's spec that v, a pointer to a
// struct with some of specs.Spec's fields, has; the rest is only scanned.
func (st *State) SpecPart(v any) error {
	if len(st.Config) == 0 {
		return fmt.Errorf("box %s has no recorded config", st.ID)
	}
	if err := specjson.Unmarshal(st.Config, v); err != nil {
		return fmt.Errorf("config of box %s: %w", st.ID, err)
	}
	return nil
}

// Store is a state directory.
type Store struct {
	Root string
}

// Open opens (creating it if needed) the state directory root.
func Open(root string) (*Store, error) {
	root, err := filepath.Abs(root) // recorded in leases, used from any cwd
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &Store{Root: root}, nil
}

// CheckID rejects ids that cannot name a state directory.
func CheckID(id string) error {
	if id == "" {
		return errors.New("empty box id")
	}
	bad := len(id) > 1024 || id == "." || id == ".."
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_+.-", c)) {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("invalid box id %q: use letters, digits and _+.-", id)
	}
	return nil
}

// Paused is the status of a frozen box: not a state of the OCI spec, but
// what runc reports (and podman and containerd expect).
const Paused specs.ContainerState = "paused"

// ExecFifo is the name, in a box's directory, of the FIFO on which a created
// box waits for start.
const ExecFifo = "exec.fifo"

// Dir is the state directory of box id.
func (s *Store) Dir(id string) string { return filepath.Join(s.Root, id) }

// Create reserves id; it fails with ErrExist if the id is taken.
// The record is locked until unlock is called, so that commands on the box
// wait for its creation to end (see WaitCreated); fd holds the lock, and a
// process forked meanwhile must close it (a flock belongs to the open
// file, which the fork shares). The directory appears under its id already
// locked (made under a name no id has, then renamed), so a record without
// a state and without the lock is one whose creation died (Load).
func (s *Store) Create(id string) (unlock func(), fd int, err error) {
	if err := CheckID(id); err != nil {
		return nil, -1, err
	}
	tmp := filepath.Join(s.Root, ".creating~"+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return nil, -1, err
		}
		// Left by a creation that died between mkdir and rename, or
		// being made by a concurrent one: the lock tells which.
		if fd, err := openLocked(tmp, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return nil, -1, fmt.Errorf("%w: %s", ErrExist, id)
		} else {
			unix.Close(fd)
		}
	}
	fd, err = openLocked(tmp, unix.LOCK_EX)
	if err != nil {
		unix.Rmdir(tmp)
		return nil, -1, fmt.Errorf("lock box %s: %w", id, err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, s.Dir(id), unix.RENAME_NOREPLACE); err != nil {
		unix.Rmdir(tmp)
		unix.Close(fd)
		// EEXIST: the id is taken; ENOENT: a concurrent creation of the
		// same id renamed the directory both of us locked in turn.
		if err == unix.EEXIST || err == unix.ENOENT {
			return nil, -1, fmt.Errorf("%w: %s", ErrExist, id)
		}
		return nil, -1, fmt.Errorf("create the record of box %s: %w", id, err)
	}
	return func() { unix.Close(fd) }, fd, nil
}

// openLocked opens directory dir and flocks it with how (0: not at all).
func openLocked(dir string, how int) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if how == 0 {
		return fd, nil // not locked
	}
	if err := unix.Flock(fd, how); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Pending is the name of the file in which a creation records what it has
// taken before the box has a state: read back as the state of a creation
// that died (Load), so that deleting it gives those back.
const Pending = "pending.json"

// SavePending records st as what the creation of box st.ID holds so far.
func (s *Store) SavePending(st *State) error {
	b, err := specjson.Marshal(st)
	if err != nil {
		return err
	}
	return fileio.WriteFile(filepath.Join(s.Dir(st.ID), Pending), b, 0o600)
}

// ErrCreating is returned by Load for a box whose creation has not ended.
var ErrCreating = errors.New("being created")

// WaitCreated waits until no command holds box id's lock: the creation
// of a box that Load found being created has then ended (or failed).
func (s *Store) WaitCreated(id string) {
	fd, err := unix.Open(s.Dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Flock(fd, unix.LOCK_SH)
	unix.Close(fd)
}

// Save writes st atomically. Each version of the record is a new file,
// state.N.json, and state.json a symbolic link to the current one, swapped
// by rename: renaming a regular file over another would make ext4 allocate
// its blocks at once (auto_da_alloc), and freeing them again costs a
// millisecond at delete on a disk with discard, as /run is on some hosts.
func (s *Store) Save(st *State) error {
	b, err := specjson.Marshal(st)
	if err != nil {
		return err
	}
	dir := s.Dir(st.ID)
	link := filepath.Join(dir, "state.json")
	old, _ := os.Readlink(link)
	gen := 1
	if n, ok := generation(old); ok {
		gen = n + 1
	}
	for {
		name := "state." + strconv.Itoa(gen) + ".json"
		err = fileio.Write(filepath.Join(dir, name), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600, b)
		if errors.Is(err, os.ErrExist) { // a concurrent save took it
			gen++
			continue
		}
		if err != nil {
			return fmt.Errorf("save state of %s: %w", st.ID, err)
		}
		tmp := filepath.Join(dir, ".state.link")
		unix.Unlink(tmp)
		if err := unix.Symlink(name, tmp); err != nil {
			return fmt.Errorf("save state of %s: %w", st.ID, err)
		}
		if err := unix.Rename(tmp, link); err != nil {
			return fmt.Errorf("save state of %s: %w", st.ID, err)
		}
		break
	}
	if old != "" {
		unix.Unlink(filepath.Join(dir, old))
	}
	return nil
}

// generation is N of a record file name state.N.json.
func generation(name string) (int, bool) {
	n, ok := strings.CutPrefix(name, "state.")
	if !ok {
		return 0, false
	}
	n, ok = strings.CutSuffix(n, ".json")
	if !ok {
		return 0, false
	}
	g, err := strconv.Atoi(n)
	return g, err == nil && g > 0
}

// Load reads the state of box id and refreshes its status from the kernel.
func (s *Store) Load(id string) (*State, error) { return s.load(id, false) }

// LoadHeld is Load for a caller that holds the box's lock (Lock): a record
// without a state is then not one being created, but one whose creation
// died.
func (s *Store) LoadHeld(id string) (*State, error) { return s.load(id, true) }

func (s *Store) load(id string, held bool) (*State, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	b, err := fileio.ReadFile(filepath.Join(s.Dir(id), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return s.unfinished(id, held)
	}
	if err != nil {
		return nil, err
	}
	return parse(id, b)
}

// parse reads a state record b of box id and refreshes its status.
func parse(id string, b []byte) (*State, error) {
	st := &State{}
	if err := specjson.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state of %s: %w", id, err)
	}
	st.Refresh()
	return st, nil
}

// unfinished is Load for a record without a state: a box being created
// (ErrCreating: its creator holds the lock), or one whose creation died
// (killed before it ended): that one is stopped, and ephemeral so that
// listing the boxes removes it, with what its pending record names. held:
// the caller holds the lock (flock locks belong to an open file, so asking
// again from another would find the caller's own).
func (s *Store) unfinished(id string, held bool) (*State, error) {
	how := unix.LOCK_SH | unix.LOCK_NB
	if held {
		how = 0
	}
	fd, err := openLocked(s.Dir(id), how)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%w: %s", ErrNotExist, id)
	case err == unix.EWOULDBLOCK:
		return nil, fmt.Errorf("box %s is %w", id, ErrCreating)
	case err != nil:
		return nil, fmt.Errorf("state of %s: %w", id, err)
	}
	defer unix.Close(fd)
	if b, err := fileio.ReadFile(filepath.Join(s.Dir(id), "state.json")); err == nil {
		return parse(id, b) // saved just before the lock was let go
	}
	st := &State{}
	if b, err := fileio.ReadFile(filepath.Join(s.Dir(id), Pending)); err == nil {
		if err := specjson.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("pending state of %s: %w", id, err)
		}
	}
	st.Version, st.ID, st.Status, st.Pid, st.Ephemeral = specs.Version, id, specs.StateStopped, 0, true
	return st, nil
}

// Remove deletes the record of box id.
func (s *Store) Remove(id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	// The record is the link and its files (more than one if a save was
	// cut short); anything else is not ours to delete, and leaves the
	// directory in place.
	dir := s.Dir(id)
	names := []string{"state.json", ".state.link", ExecFifo, Pending}
	cur, _ := os.Readlink(filepath.Join(dir, "state.json"))
	if gen, ok := generation(cur); ok {
		// The current file, and those a save cut short leaves: the one
		// before (not yet unlinked) or after (not yet linked).
		for _, g := range []int{gen, gen - 1, gen + 1} {
			names = append(names, "state."+strconv.Itoa(g)+".json")
		}
	} else {
		names = append(names, "state.1.json")
	}
	for _, name := range names {
		if err := unix.Unlink(filepath.Join(dir, name)); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove box %s: %w", id, err)
		}
	}
	if err := unix.Rmdir(dir); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove box %s: %w", id, err)
	}
	return nil
}

// List returns the ids in the store, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && CheckID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Lock takes an exclusive lock on box id's record, held until unlock is
// called, so that concurrent commands on one box are serialised.
func (s *Store) Lock(id string) (unlock func(), err error) {
	fd, err := s.lock(id)
	if err != nil {
		return nil, err
	}
	return func() { unix.Close(fd) }, nil
}

func (s *Store) lock(id string) (int, error) {
	fd, err := unix.Open(s.Dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("%w: %s", ErrNotExist, id)
		}
		return -1, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("lock box %s: %w", id, err)
	}
	return fd, nil
}

// Refresh sets Status to stopped when the box's init process is gone.
func (st *State) Refresh() {
	if st.Pid > 0 && !Alive(st.Pid, st.InitStart) {
		st.Status = specs.StateStopped
	}
}

// Alive reports whether pid runs and, when start is not zero, started at
// start (so it is not a recycled pid).
func Alive(pid int, start uint64) bool {
	got, err := StartTime(pid)
	if err != nil {
		return false
	}
	return start == 0 || got == start
}

// StartTime reads the start time of pid from /proc/PID/stat (field 22).
func StartTime(pid int) (uint64, error) {
	b, err := fileio.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: skip past
	// the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

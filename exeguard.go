package nsbox

import (
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/initproc"
	"github.com/nsbox/nsbox/internal/process"
	"github.com/nsbox/nsbox/internal/setup"
	"github.com/nsbox/nsbox/internal/userns"
)

// exeFile is what matters about the running nsbox binary to decide whether
// a box could write it.
type exeFile struct {
	uid, gid uint32
	mode     uint32
	readOnly bool // on a read-only mount
}

// selfExe describes /proc/self/exe.
func selfExe() (exeFile, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return exeFile{}, err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/proc/self/exe", &fs); err != nil {
		return exeFile{}, err
	}
	return exeFile{uid: st.Uid, gid: st.Gid, mode: st.Mode, readOnly: fs.Flags&unix.ST_RDONLY != 0}, nil
}

// writableFrom reports whether processes in a user namespace with these id
// maps could come to write the file: its owner is mapped (and may chmod
// it), its group is mapped and may write, or anyone may. hostIDs means the
// box shares the caller's user namespace, where its root may write anything.
func (e exeFile) writableFrom(hostIDs bool, uids, gids []specs.LinuxIDMapping) bool {
	switch {
	case e.readOnly:
		return false
	case hostIDs, e.mode&0o002 != 0, mapsHostID(uids, e.uid):
		return true
	}
	return e.mode&0o020 != 0 && mapsHostID(gids, e.gid)
}

func mapsHostID(maps []specs.LinuxIDMapping, id uint32) bool {
	for _, m := range maps {
		if id >= m.HostID && id-m.HostID < m.Size {
			return true
		}
	}
	return false
}

// trampolineFor returns the memfd through which a box's command must be
// executed (see initproc.Trampoline), or nil when the box cannot write the
// nsbox binary anyway — the common rootful case of a box with its own range
// of ids — so that it costs nothing there.
func trampolineFor(hostIDs bool, uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	e, err := selfExe()
	if err == nil && !e.writableFrom(hostIDs, uids, gids) {
		return nil, nil
	}
	// When the binary cannot be examined, guard it.
	return initproc.NewTrampolineFile()
}

// idMapsOf reads the id maps of process pid's user namespace (which, unlike
// its /proc/PID/ns files, anyone may read).
func idMapsOf(pid int) (uids, gids []specs.LinuxIDMapping, err error) {
	p := "/proc/" + strconv.Itoa(pid)
	if uids, err = userns.ReadMapFile(p + "/uid_map"); err != nil {
		return nil, nil, err
	}
	gids, err = userns.ReadMapFile(p + "/gid_map")
	return uids, gids, err
}

// buildGuarded builds cfg's program, with an exec trampoline when the box
// (whose user namespace is the caller's, or has these maps) could write
// the nsbox binary. The returned file, if not nil, is the caller's to close
// once the child has started.
func buildGuarded(cfg setup.Config, hostIDs bool, uids, gids []specs.LinuxIDMapping) (*setup.Result, *os.File, error) {
	tf, err := trampolineFor(hostIDs, uids, gids)
	if err != nil {
		return nil, nil, err
	}
	if tf != nil {
		cfg.TrampolineFD = int(tf.Fd())
	}
	r, err := setup.Build(cfg)
	if err == nil && tf != nil {
		err = r.Trampoline.Write(tf)
	}
	if err != nil {
		if tf != nil {
			tf.Close()
		}
		return nil, nil, err
	}
	return r, tf, nil
}

// launchJoining builds and starts a process that joins the namespaces of
// another (nsbox exec, ns enter): its sync socket, its program
// (buildGuarded), its steps to debug, and the launch. adjust, if not nil,
// changes the program's clone before it is made.
func launchJoining(cfg setup.Config, hostIDs bool, uids, gids []specs.LinuxIDMapping, debug io.Writer, about string,
	adjust func(*setup.Result), hooks process.Hooks) (*process.Process, error) {
	sync, err := process.NewSync()
	if err != nil {
		return nil, err
	}
	defer sync.Close()
	cfg.SyncFD, cfg.StartFD = sync.Child, -1
	cfg.CloseFDs = append(cfg.CloseFDs, sync.Parent)
	r, tf, err := buildGuarded(cfg, hostIDs, uids, gids)
	if err != nil {
		return nil, err
	}
	if tf != nil {
		defer tf.Close()
	}
	if adjust != nil {
		adjust(r)
	}
	if debug != nil {
		fmt.Fprintf(debug, "nsbox: set-up steps of %s:\n%s", about, r.Program)
	}
	return process.Launch(r, &sync, hooks)
}

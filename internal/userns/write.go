package userns

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// How says how the maps of a new user namespace get written.
type How int

const (
	Direct     How = iota // the parent writes them: it is root, or maps only its own ids
	DenyDirect            // as Direct, after writing "deny" to setgroups (unprivileged, own ids only)
	Helper                // newuidmap and newgidmap write them (subordinate ids)
)

// Write installs uid and gid maps for the user namespace of process pid.
func Write(pid int, uids, gids []specs.LinuxIDMapping, how How) error {
	proc := "/proc/" + strconv.Itoa(pid) + "/"
	switch how {
	case Helper:
		errc := make(chan error, 1)
		go func() { errc <- runHelper("newgidmap", pid, gids) }()
		err := runHelper("newuidmap", pid, uids)
		if gerr := <-errc; err == nil {
			err = gerr
		}
		return err
	case DenyDirect:
		if err := fileio.Write(proc+"setgroups", unix.O_WRONLY, 0, []byte("deny")); err != nil {
			return fmt.Errorf("write setgroups: %w", err)
		}
	}
	if err := writeMap(proc+"uid_map", uids); err != nil {
		return err
	}
	return writeMap(proc+"gid_map", gids)
}

func writeMap(path string, maps []specs.LinuxIDMapping) error {
	if err := fileio.Write(path, unix.O_WRONLY, 0, Format(maps)); err != nil {
		return fmt.Errorf("write %s %q: %w", path[strings.LastIndexByte(path, '/')+1:], strings.TrimSpace(string(Format(maps))), err)
	}
	return nil
}

func runHelper(name string, pid int, maps []specs.LinuxIDMapping) error {
	args := []string{strconv.Itoa(pid)}
	for _, m := range maps {
		args = append(args, strconv.FormatUint(uint64(m.ContainerID), 10),
			strconv.FormatUint(uint64(m.HostID), 10), strconv.FormatUint(uint64(m.Size), 10))
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

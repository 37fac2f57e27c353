package nsbox

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/specjson"
)

// sendSeccompListener hands fd, the listener of a seccomp filter that
// notifies (SCMP_ACT_NOTIFY), to the seccomp agent at p.ListenerPath as
// runtime-spec's seccomp-agent protocol says: one message on a unix
// stream socket, the ContainerProcessState as JSON with the descriptor
// (SCM_RIGHTS) named in its fds, "seccompFd".
func sendSeccompListener(p *specs.LinuxSeccomp, fd int, st specs.State) error {
	msg, err := specjson.Marshal(specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      st.Pid,
		Metadata: p.ListenerMetadata,
		State:    st,
	})
	if err != nil {
		return err
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("seccomp agent: %w", err)
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: p.ListenerPath}); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: %w", p.ListenerPath, err)
	}
	if err := unix.Sendmsg(sock, msg, unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("send the seccomp listener to %s: %w", p.ListenerPath, err)
	}
	return nil
}

package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/fileio"
)

// Port is a published port: HostPort (on HostIP, or every local address)
// forwards to the box's BoxPort.
type Port struct {
	HostIP   netip.Addr
	HostPort uint16
	BoxPort  uint16
	Proto    string // "tcp" or "udp"
}

// UserNet is a user-mode network stack serving a box without privileges:
// pasta (Debian passt) or slirp4netns, started for the box's network
// namespace.
type UserNet struct {
	exit *os.File // slirp4netns runs until this closes
	// cmd (pasta) runs until killed; done is closed when it has ended.
	cmd  *exec.Cmd
	done chan struct{}
}

// Close stops the network stack.
func (u *UserNet) Close() {
	if u == nil {
		return
	}
	if u.exit != nil {
		u.exit.Close()
	}
	if u.cmd != nil && !u.ended() {
		u.cmd.Process.Signal(unix.SIGTERM)
		<-u.done
	}
}

// StartUserNet gives the network namespace of process pid (whose user
// namespace owns it) a network through mode, "pasta" or "slirp4netns",
// with ports published on the host; it returns once the box's interface
// is configured. The stack ends with the box (pasta) or with Close
// (slirp4netns; also when the calling process dies, which holds its exit
// descriptor). apiSocket is where slirp4netns listens for port requests.
func StartUserNet(mode string, pid int, ports []Port, apiSocket string) (*UserNet, error) {
	switch mode {
	case "pasta":
		return startPasta(pid, ports)
	case "slirp4netns":
		return startSlirp(pid, ports, apiSocket)
	}
	return nil, fmt.Errorf("unknown user-mode network %q", mode)
}

func lookTool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("--net=%s needs %s, which is not installed (Debian package %s)", name, name, pkg)
	}
	return p, nil
}

// startPasta runs pasta on the namespaces of pid: it joins them, sets up
// the box's interface from the host's addresses and routes, and forwards
// the ports. It runs in the foreground, as this process's child, until
// Close (pasta of this Debian release does not notice the box ending), or
// until this process dies (its parent-death signal).
func startPasta(pid int, ports []Port) (*UserNet, error) {
	bin, err := lookTool("pasta", "passt")
	if err != nil {
		return nil, err
	}
	args := []string{"--config-net", "--quiet", "--foreground"}
	for _, p := range ports {
		flag := "-t"
		if p.Proto == "udp" {
			flag = "-u"
		}
		spec := fmt.Sprintf("%d:%d", p.HostPort, p.BoxPort)
		if p.HostIP.IsValid() {
			spec = p.HostIP.String() + "/" + spec
		}
		args = append(args, flag, spec)
	}
	if len(ports) == 0 {
		args = append(args, "-t", "none", "-u", "none")
	}
	args = append(args, "-T", "none", "-U", "none", strconv.Itoa(pid))
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	u, err := startChild(cmd)
	if err != nil {
		return nil, fmt.Errorf("pasta: %w", err)
	}
	// It configures the interface on its own time: wait for the default
	// route it adds last (seen in /proc/PID/net/route).
	route := "/proc/" + strconv.Itoa(pid) + "/net/route"
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := fileio.ReadFile(route)
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("pasta: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 1 && f[1] == "00000000" {
				return u, nil
			}
		}
		if u.ended() {
			return nil, fmt.Errorf("pasta: %s", strings.TrimSpace(stderr.String()))
		}
	}
	u.Close()
	return nil, errors.New("pasta did not configure the box's network within 5 s")
}

// startChild starts cmd so that it gets SIGTERM when this process dies:
// the parent-death signal follows the thread that started the child, so
// that thread stays locked, waiting for the child, for as long as it runs.
func startChild(cmd *exec.Cmd) (*UserNet, error) {
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Pdeathsig: unix.SIGTERM}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return &UserNet{cmd: cmd, done: done}, nil
}

func (u *UserNet) ended() bool {
	select {
	case <-u.done:
		return true
	default:
		return false
	}
}

// startSlirp runs slirp4netns on the namespaces of pid (tap0, 10.0.2.100,
// host loopback not reachable) and publishes the ports through its API
// socket.
func startSlirp(pid int, ports []Port, apiSocket string) (*UserNet, error) {
	bin, err := lookTool("slirp4netns", "slirp4netns")
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	spid := strconv.Itoa(pid)
	cmd := exec.Command(bin, "--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd=3", "--exit-fd=4",
		"--api-socket="+apiSocket, "--userns-path=/proc/"+spid+"/ns/user", spid, "tap0")
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, fmt.Errorf("slirp4netns: %w", err)
	}
	go cmd.Wait() // reaped when it ends
	u := &UserNet{exit: exitW}
	// It writes "1" once the interface is up, or closes the pipe dying.
	b := make([]byte, 1)
	readyR.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := readyR.Read(b); n != 1 {
		u.Close()
		return nil, fmt.Errorf("slirp4netns did not set up the box's network: %s", strings.TrimSpace(stderr.String()))
	}
	for _, p := range ports {
		if err := slirpForward(apiSocket, p); err != nil {
			u.Close()
			return nil, err
		}
	}
	return u, nil
}

// slirpForward asks slirp4netns for a port forward through its API
// socket (one JSON request, one JSON reply).
func slirpForward(sock string, p Port) error {
	host := "0.0.0.0"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	req := fmt.Sprintf(`{"execute":"add_hostfwd","arguments":{"proto":%q,"host_addr":%q,"host_port":%d,"guest_port":%d}}`,
		p.Proto, host, p.HostPort, p.BoxPort)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		return fmt.Errorf("slirp4netns API socket: %w", err)
	}
	if _, err := unix.Write(fd, []byte(req)); err != nil {
		return fmt.Errorf("slirp4netns API socket: %w", err)
	}
	unix.Shutdown(fd, unix.SHUT_WR)
	var reply []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break
		}
		reply = append(reply, buf[:n]...)
	}
	if strings.Contains(string(reply), `"error"`) || len(reply) == 0 {
		return fmt.Errorf("publish %d/%s through slirp4netns: %s", p.HostPort, p.Proto, errors.New(strings.TrimSpace(string(reply))))
	}
	return nil
}

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// probes are the system calls TestHelperSyscalls makes inside a box: each
// what an attacker would want, with arguments that do no harm if allowed.
var probes = []struct {
	name string
	call func() error
}{
	{"keyctl", func() error { return rawErr(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, ^uintptr(2)+0, 0) }}, // KEY_SPEC_SESSION_KEYRING (-3)
	{"add_key", func() error {
		_, err := unix.AddKey("user", "nsbox-test", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	}},
	{"request_key", func() error {
		_, err := unix.RequestKey("user", "nsbox-test-none", "", unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	}},
	{"bpf", func() error { return rawErr(unix.SYS_BPF, unix.BPF_MAP_CREATE, 0, 0) }},
	{"perf_event_open", func() error { return rawErr(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0)) }},
	{"userfaultfd", func() error { return rawErr(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0) }},
	{"unshare-user", func() error { return unix.Unshare(unix.CLONE_NEWUSER) }},
	{"mount", func() error { return unix.Mount("none", "/tmp", "tmpfs", 0, "") }},
	{"kexec_load", func() error { return rawErr(unix.SYS_KEXEC_LOAD, 0, 0, 0) }},
	{"init_module", func() error { return rawErr(unix.SYS_INIT_MODULE, 0, 0, 0) }},
	{"clock_settime", func() error {
		ts := unix.Timespec{Sec: 1}
		return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
	}},
	{"open_by_handle_at", func() error { return rawErr(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0) }},
	{"personality-addr-no-randomize", func() error { return rawErr(unix.SYS_PERSONALITY, 0x0040000, 0, 0) }},
	{"personality-query", func() error { return rawErr(unix.SYS_PERSONALITY, 0xffffffff, 0, 0) }},
}

func rawErr(trap, a1, a2, a3 uintptr) error {
	_, _, e := unix.Syscall(trap, a1, a2, a3)
	if e != 0 {
		return e
	}
	return nil
}

// TestHelperSyscalls runs inside a box: it makes each probe and prints
// "NAME ok" or "NAME ERRNO-NAME".
func TestHelperSyscalls(t *testing.T) {
	if os.Getenv("NSBOX_HELPER") != "syscalls" {
		return // not a test: the program TestSeccomp* run in a box
	}
	for _, p := range probes {
		res := "ok"
		if err := p.call(); err != nil {
			res = unix.ErrnoName(err.(syscall.Errno))
		}
		fmt.Println(p.name, res)
	}
	os.Exit(0)
}

// probeBox runs the probes in a box made with flags, as user o.as, and
// returns what each gave.
func probeBox(t *testing.T, o opts, flags ...string) map[string]string {
	t.Helper()
	self := filepath.Join(work, "probe-helper")
	if _, err := os.Stat(self); err != nil {
		if out, err := exec.Command("cp", os.Args[0], self).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		os.Chmod(self, 0o755)
	}
	o.env = append(o.env, "NSBOX_HELPER=syscalls")
	args := append([]string{"run"}, flags...)
	args = append(args, "--bind", self+":/tmp/helper:ro", "--", "/tmp/helper", "-test.run=^TestHelperSyscalls$")
	out := ok(t, o, args...)
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	if len(got) != len(probes) {
		t.Fatalf("probes printed %q", out)
	}
	return got
}

// TestSeccompDefaultProfile: `nsbox run` confines a box by default (root
// and rootless): the calls of Docker's blocked list fail with EPERM;
// unconfined, the harmless ones that need no capability go through; with
// CAP_SYS_ADMIN, the profile lets mount and unshare through too.
func TestSeccompDefaultProfile(t *testing.T) {
	requireRoot(t)
	blocked := []string{"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "unshare-user",
		"mount", "kexec_load", "init_module", "clock_settime", "open_by_handle_at", "personality-addr-no-randomize"}
	for _, o := range []opts{{}, {as: userFull}} {
		who := "root"
		if o.as != "" {
			who = o.as
		}
		got := probeBox(t, o)
		for _, name := range blocked {
			if got[name] != "EPERM" {
				t.Errorf("%s, default profile: %s gave %s, want EPERM", who, name, got[name])
			}
		}
		if got["personality-query"] != "ok" {
			t.Errorf("%s, default profile: personality(0xffffffff) gave %s, want ok", who, got["personality-query"])
		}
		// Unconfined: what needs no capability goes through.
		// (unshare of a user namespace fails with EINVAL in a process with
		// threads, as the helper is: after the filter let it through.)
		got = probeBox(t, o, "--seccomp", "unconfined")
		for _, name := range []string{"keyctl", "add_key", "unshare-user", "personality-addr-no-randomize"} {
			if got[name] != "ok" && !(name == "unshare-user" && got[name] == "EINVAL") {
				t.Errorf("%s, unconfined: %s gave %s, want ok", who, name, got[name])
			}
		}
		// With CAP_SYS_ADMIN in the box's user namespace: mount and
		// unshare are the capability's to allow.
		got = probeBox(t, o, "--cap-add", "sys_admin")
		for _, name := range []string{"unshare-user", "mount"} {
			if got[name] != "ok" && !(name == "unshare-user" && got[name] == "EINVAL") {
				t.Errorf("%s, --cap-add sys_admin: %s gave %s, want ok", who, name, got[name])
			}
		}
		if got["keyctl"] != "EPERM" {
			t.Errorf("%s, --cap-add sys_admin: keyctl gave %s, want EPERM (never allowed)", who, got["keyctl"])
		}
	}
}

// TestSecurityDefaults: what a box runs with by default, and what
// --privileged, --cap-add/--cap-drop and --ulimit change, seen from inside.
func TestSecurityDefaults(t *testing.T) {
	requireRoot(t)
	status := func(out, key string) string {
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == key {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	const script = "cat /proc/self/status; echo KEYS $(wc -c < /proc/keys); grep -c ' /proc/keys ' /proc/self/mountinfo; " +
		"echo 1 2>&1 > /proc/sys/net/ipv4/ip_forward; ulimit -n; ulimit -Hn"
	// The default set, as Docker's: chown, dac_override, fowner, fsetid,
	// kill, setgid, setuid, setpcap, net_bind_service, net_raw,
	// sys_chroot, mknod, audit_write, setfcap.
	const defaultCaps = "00000000a80425fb"
	for _, o := range []opts{{}, {as: userFull}} {
		out := inBox(t, o, script)
		if status(out, "Seccomp") != "2" || status(out, "NoNewPrivs") != "1" || status(out, "CapEff") != defaultCaps ||
			status(out, "CapBnd") != defaultCaps || status(out, "CapInh") != "0000000000000000" || status(out, "CapAmb") != "0000000000000000" {
			t.Errorf("%q default: seccomp %s nnp %s caps eff %s bnd %s inh %s amb %s", o.as, status(out, "Seccomp"), status(out, "NoNewPrivs"),
				status(out, "CapEff"), status(out, "CapBnd"), status(out, "CapInh"), status(out, "CapAmb"))
		}
		if !strings.Contains(out, "KEYS 0\n1\n") {
			t.Errorf("%q default: /proc/keys not masked:\n%s", o.as, out)
		}
		if !strings.Contains(out, "Read-only file system") {
			t.Errorf("%q default: /proc/sys not read-only:\n%s", o.as, out)
		}

		// --privileged: all of it off (the box's root may then set its own
		// network namespace's settings through /proc/sys, and sees its keys).
		out = inBox(t, o, script+"; echo FORWARD $(cat /proc/sys/net/ipv4/ip_forward)", "--privileged")
		if status(out, "Seccomp") != "0" || status(out, "NoNewPrivs") != "0" || strings.Count(status(out, "CapEff"), "f") < 10 {
			t.Errorf("%q --privileged: seccomp %s nnp %s caps %s", o.as, status(out, "Seccomp"), status(out, "NoNewPrivs"), status(out, "CapEff"))
		}
		if strings.Contains(out, "KEYS 0\n") || !strings.Contains(out, "\n0\n") || !strings.HasSuffix(strings.TrimSpace(out), "FORWARD 1") {
			t.Errorf("%q --privileged: masked or read-only paths left:\n%s", o.as, out)
		}

		if o.as == "" {
			// Sharing the host's ids, --privileged gives what the caller's
			// bounding set holds: all of it, and nothing outside it (this
			// machine's root lacks CAP_SYS_RESOURCE, which capset would
			// refuse).
			self, err := os.ReadFile("/proc/self/status")
			if err != nil {
				t.Fatal(err)
			}
			out = inBox(t, o, "cat /proc/self/status", "--privileged", "--userns=host")
			if want := status(string(self), "CapBnd"); status(out, "CapEff") != want || status(out, "CapBnd") != want {
				t.Errorf("--privileged --userns=host: eff %s bnd %s, want the caller's bounding set %s", status(out, "CapEff"), status(out, "CapBnd"), want)
			}
		}

		out = inBox(t, o, script, "--cap-drop", "ALL", "--cap-add", "CAP_KILL,net_raw", "--ulimit", "nofile=100:200")
		if status(out, "CapEff") != "0000000000002020" || status(out, "CapBnd") != "0000000000002020" {
			t.Errorf("%q --cap-drop ALL --cap-add KILL,NET_RAW: eff %s bnd %s", o.as, status(out, "CapEff"), status(out, "CapBnd"))
		}
		if !strings.HasSuffix(strings.TrimSpace(out), "100\n200") {
			t.Errorf("%q --ulimit nofile=100:200: %q", o.as, out[max(0, len(out)-20):])
		}
	}
}

// TestSecurityBadInput: a malformed profile, an unknown action or
// architecture, an unknown capability or limit: one line naming it, exit
// 125, and nothing started or left.
func TestSecurityBadInput(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		flags []string
		words []string
	}{
		{[]string{"--seccomp", write("broken.json", `{"defaultAction": "SCMP_ACT_ALLOW",`)}, []string{"broken.json"}},
		{[]string{"--seccomp", write("action.json", `{"defaultAction": "SCMP_ACT_PERHAPS"}`)}, []string{"SCMP_ACT_PERHAPS"}},
		{[]string{"--seccomp", write("arch.json", `{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}`)}, []string{"SCMP_ARCH_PDP11"}},
		{[]string{"--seccomp", write("rule.json", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_SOMETIMES"}]}`)}, []string{"SCMP_ACT_SOMETIMES"}},
		{[]string{"--seccomp", write("notify.json", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`)}, []string{"listenerPath"}},
		{[]string{"--seccomp", filepath.Join(dir, "missing.json")}, []string{"missing.json"}},
		{[]string{"--cap-add", "CAP_FLY"}, []string{"CAP_FLY"}},
		{[]string{"--cap-drop", "sys_nothing"}, []string{"sys_nothing"}},
		{[]string{"--ulimit", "nofiles=10"}, []string{"nofiles"}},
		{[]string{"--ulimit", "nofile=20:10"}, []string{"nofile=20:10"}},
	}
	for _, c := range cases {
		args := append([]string{"run", "--rootfs", rootfs}, c.flags...)
		args = append(args, "--", "sh", "-c", "echo started")
		r := nsbox(t, opts{}, args...)
		wantError(t, strings.Join(c.flags, " "), r, c.words...)
		if r.code != 125 || strings.Contains(r.stdout, "started") {
			t.Errorf("%v: exit %d, stdout %q; want 125 and nothing started", c.flags, r.code, r.stdout)
		}
	}
}

// TestSeccompPodmanProfile: the profile podman ships works as a --seccomp
// file (Docker's format: archMap, includes and excludes by capability).
func TestSeccompPodmanProfile(t *testing.T) {
	requireRoot(t)
	const profile = "/usr/share/containers/seccomp.json"
	if _, err := os.Stat(profile); err != nil {
		t.Fatalf("%s: %v (installed with podman by the test command)", profile, err)
	}
	// podman's rules, decided for the box's capabilities: keyctl is
	// allowed, what the list does not name fails with ENOSYS, and the
	// calls of a missing capability with EPERM.
	want := map[string]string{"keyctl": "ok", "add_key": "ENOSYS", "bpf": "EPERM", "perf_event_open": "EPERM", "kexec_load": "EPERM",
		"init_module": "EPERM", "open_by_handle_at": "EPERM", "userfaultfd": "EPERM", "personality-query": "ok"}
	got := probeBox(t, opts{}, "--seccomp", profile)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("podman's profile: %s gave %s, want %s", name, got[name], w)
		}
	}
	// With CAP_SYS_ADMIN, podman's profile lets bpf through (to fail on
	// its empty arguments).
	got = probeBox(t, opts{}, "--cap-add", "SYS_ADMIN", "--seccomp", profile)
	if got["bpf"] == "EPERM" || got["bpf"] == "ENOSYS" {
		t.Errorf("podman's profile with CAP_SYS_ADMIN: bpf gave %s", got["bpf"])
	}
}

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// seccomp_notif_resp of linux/seccomp.h.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// agent is a seccomp agent as runtime-spec describes one: it takes the
// state and the listener from the runtime, then answers every
// notification with errno EOWNERDEAD.
type agent struct {
	path  string
	state chan specs.ContainerProcessState
	calls chan int32
	ln    int
}

func startAgent(t *testing.T) *agent {
	t.Helper()
	a := &agent{path: filepath.Join(t.TempDir(), "agent.sock"), state: make(chan specs.ContainerProcessState, 4), calls: make(chan int32, 64)}
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.ln = ln
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: a.path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 4); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Shutdown(ln, unix.SHUT_RDWR); unix.Close(ln) })
	go func() {
		for {
			conn, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			buf, oob := make([]byte, 64<<10), make([]byte, unix.CmsgSpace(4*4))
			n, oobn, _, _, err := unix.Recvmsg(conn, buf, oob, 0)
			unix.Close(conn)
			if err != nil {
				continue
			}
			var st specs.ContainerProcessState
			json.Unmarshal(buf[:n], &st)
			a.state <- st
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				fds, _ := unix.ParseUnixRights(&m)
				for _, fd := range fds {
					go a.serve(fd)
				}
			}
		}
	}()
	return a
}

// serve answers the notifications of listener fd until no process uses
// its filter any more.
func (a *agent) serve(fd int) {
	defer unix.Close(fd)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 10000); err != nil && err != unix.EINTR {
			return
		}
		if pfd[0].Revents&unix.POLLHUP != 0 || pfd[0].Revents == 0 {
			return
		}
		var n seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
			if e == unix.EINTR || e == unix.ENOENT {
				continue
			}
			return
		}
		select {
		case a.calls <- n.Nr:
		default:
		}
		resp := seccompNotifResp{ID: n.ID, Error: -int32(unix.EOWNERDEAD)}
		unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
	}
}

// TestSeccompNotify: SCMP_ACT_NOTIFY hands the listener to the agent at
// listenerPath with the container process state (runtime-spec's
// seccomp-agent protocol); the agent's answers are what the box's calls
// return. Both faces, and nsbox exec.
func TestSeccompNotify(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	a := startAgent(t)
	profile := specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     a.path,
		ListenerMetadata: "meta-42",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	b, _ := json.Marshal(profile)
	file := filepath.Join(t.TempDir(), "notify.json")
	os.WriteFile(file, b, 0o644)

	checkState := func(face, id string) {
		t.Helper()
		select {
		case st := <-a.state:
			if st.Version == "" || len(st.Fds) != 1 || st.Fds[0] != "seccompFd" || st.Pid <= 0 || st.Metadata != "meta-42" ||
				(id != "" && st.State.ID != id) || st.State.Pid != st.Pid {
				t.Errorf("%s: the agent got %+v", face, st)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the agent got nothing", face)
		}
	}
	name := fmt.Sprintf("notify-%d", os.Getpid())
	out := inBox(t, opts{}, "mkdir /tmp/x 2>&1; echo rc=$?; test -d /tmp/x && echo made; true", "--name", name, "--seccomp", file)
	checkState("run", name)
	if !strings.Contains(out, "rc=1") || strings.Contains(out, "made") || !strings.Contains(strings.ToLower(out), "owner died") {
		t.Errorf("run: mkdir under the agent: %q; want it to fail with the agent's EOWNERDEAD", out)
	}

	// The OCI face: the agent gets the listener at create, before start.
	id := fmt.Sprintf("notify-oci-%d", os.Getpid())
	bundle := newBundle(t, []string{"sh", "-c", "mkdir /tmp/y 2>&1; echo rc=$?; sleep 600"}, func(s *specs.Spec) {
		p := profile
		s.Linux.Seccomp = &p
		s.Process.Terminal = false
	})
	r := ociCreate(t, opts{files: true}, id, bundle)
	if r.code != 0 {
		t.Fatalf("create: %s", r)
	}
	t.Cleanup(func() { nsbox(t, opts{}, "delete", "--force", id) })
	checkState("create", id)
	if st := ok(t, opts{}, "state", id); !strings.Contains(st, `"created"`) {
		t.Errorf("state after create: %s", st)
	}
	// exec into it: the exec'd process is under the same filter, and its
	// listener goes to the agent too.
	ok(t, opts{}, "start", id)
	r = nsbox(t, opts{}, "exec", id, "sh", "-c", "mkdir /tmp/z 2>&1; echo rc=$?")
	checkState("exec", id)
	if !strings.Contains(r.stdout, "rc=1") || !strings.Contains(strings.ToLower(r.stdout), "owner died") {
		t.Errorf("exec: mkdir under the agent: %s", r)
	}
	var saw []string
	for len(a.calls) > 0 {
		saw = append(saw, strconv.Itoa(int(<-a.calls)))
	}
	if len(saw) < 3 {
		t.Errorf("the agent answered %d calls (%v), want one per mkdir (3)", len(saw), saw)
	}
}

// TestLandlock: --landlock is a second wall behind the mounts: a
// descriptor of a host directory the box holds (a leaked fd) cannot be
// written through, and the box cannot mount even with CAP_SYS_ADMIN;
// without it, both go through. Root and rootless.
func TestLandlock(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	host := t.TempDir()
	os.Chmod(host, 0o777)
	const script = "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; echo x > /proc/self/fd/3/leak 2>/dev/null && echo LEAKED; " +
		"echo y > /tmp/own && echo OWN; cat /etc/hostname >/dev/null && echo READ"
	for _, o := range []opts{{}, {as: userFull}} {
		for _, landlock := range []bool{false, true} {
			dir, err := os.Open(host)
			if err != nil {
				t.Fatal(err)
			}
			o.extra = []*os.File{dir}
			flags := []string{"--cap-add", "SYS_ADMIN", "--preserve-fds", "1"}
			if landlock {
				flags = append(flags, "--landlock")
			}
			out := inBox(t, o, script, flags...)
			dir.Close()
			_, statErr := os.Stat(filepath.Join(host, "leak"))
			os.Remove(filepath.Join(host, "leak"))
			escaped := strings.Contains(out, "MOUNTED") || strings.Contains(out, "LEAKED") || statErr == nil
			if landlock == escaped || !strings.Contains(out, "OWN") || !strings.Contains(out, "READ") {
				t.Errorf("%q landlock=%v: %q (host file made: %v)", o.as, landlock, out, statErr == nil)
			}
		}
	}
	wantError(t, "--landlock with the host's mount namespace", nsbox(t, opts{}, "run", "--landlock", "--share", "mnt", "--", "true"), "landlock", "mount namespace")

	// A process nsbox exec starts in the box gets its ruleset too.
	for _, landlock := range []bool{false, true} {
		name := fmt.Sprintf("landlock-exec-%d-%v", os.Getpid(), landlock)
		args := []string{"run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "--rootfs", rootfs}
		if landlock {
			args = append(args, "--landlock")
		}
		ok(t, opts{files: true}, append(args, "--", "sleep", "600")...)
		t.Cleanup(func() { nsbox(t, opts{}, "delete", "--force", name) })
		out := ok(t, opts{}, "exec", name, "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; echo y > /tmp/own && echo OWN")
		if strings.Contains(out, "MOUNTED") == landlock || !strings.Contains(out, "OWN") {
			t.Errorf("exec into a box with landlock=%v: %q", landlock, out)
		}
	}
}

// TestMaskedPathsAreVerified: masked files are the null device, and a
// read-only path that is not on procfs (a tmpfs an OCI config mounts at
// /proc/sys) stops the box, rather than being trusted; nothing is left.
func TestMaskedPathsAreVerified(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	if out := inBox(t, opts{}, "stat -c %F:%t:%T /proc/keys"); strings.TrimSpace(out) != "character special file:1:3" {
		t.Errorf("/proc/keys in a box: %q, want the null device", out)
	}
	id := fmt.Sprintf("verify-%d", os.Getpid())
	bundle := newBundle(t, []string{"true"}, func(s *specs.Spec) {
		s.Process.Terminal = false
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/sys", Type: "tmpfs", Source: "tmpfs"})
		s.Linux.ReadonlyPaths = []string{"/proc/sys"}
	})
	r := ociRun(t, opts{}, id, bundle)
	wantError(t, "a read-only path on tmpfs", r, "/proc/sys", "procfs")
}

// TestOCIRefusalNamesTheStep: a root the box refuses (its /proc a
// symbolic link) is reported with the child's reason, every time — not
// as the broken pipe the parent may meet first when it answers a child
// that already gave up.
func TestOCIRefusalNamesTheStep(t *testing.T) {
	requireRoot(t)
	watchLeftovers(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", rootfs, root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	os.RemoveAll(filepath.Join(root, "proc"))
	if err := os.Symlink("/etc", filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	bundle := newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Root.Path = root })
	for i := 0; i < 10; i++ {
		r := ociRun(t, opts{}, fmt.Sprintf("refused-%d-%d", os.Getpid(), i), bundle)
		wantError(t, "a root whose /proc is a symbolic link", r, "/proc", "symbolic link")
	}
}

// TestInitHidesNsboxCommandLine: the box's init is a copy of nsbox; its
// command line (host paths, -e values) is not the box's to read.
func TestInitHidesNsboxCommandLine(t *testing.T) {
	requireRoot(t)
	for _, o := range []opts{{}, {as: userFull}} {
		out := inBox(t, o, "tr '\\0' ' ' < /proc/1/cmdline", "-e", "NSBOX_TEST_SECRET=hush")
		if strings.Contains(out, rootfs) || strings.Contains(out, "hush") || strings.TrimSpace(out) != "nsbox-init" {
			t.Errorf("%q: /proc/1/cmdline in the box: %q", o.as, out)
		}
	}
}

// TestHostSysReadOnlyAllTheWayDown: a box that shares the host's network
// namespace gets the host's /sys bound — read-only down to every mount
// beneath it (tracefs, debugfs, bpf, the host's cgroups), even as the
// host's root.
func TestHostSysReadOnlyAllTheWayDown(t *testing.T) {
	requireRoot(t)
	for _, flags := range [][]string{{"--net=host", "--userns=host"}, {"--net=host"}} {
		out := inBox(t, opts{}, "grep -E '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ /sys(/| )' /proc/self/mountinfo", flags...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 {
			t.Fatalf("%v: want /sys and mounts beneath it, got:\n%s", flags, out)
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) < 6 || !strings.HasPrefix(f[5], "ro,") || !strings.Contains(f[5], "nosuid") {
				t.Errorf("%v: a writable mount under /sys: %s", flags, l)
			}
		}
	}
}

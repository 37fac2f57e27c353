package seccomp

import (
	"os"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseFile(t *testing.T) {
	docker := `{
		"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
		"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
			{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
		"syscalls": [
			{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
			{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
			{"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT", "CAP_SYS_ADMIN"]}},
			{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
			{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "arm64"]}},
			{"names": ["ustat"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
			{"names": ["pidfd_getfd"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.6"}},
			{"names": ["futex_waitv"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
			{"name": "getpid", "action": "SCMP_ACT_ALLOW", "comment": "an old spelling"}
		]}`
	cases := []struct {
		bounding []string
		want     []string
	}{
		{[]string{"CAP_SYS_CHROOT"}, []string{"read", "write", "clone", "arch_prctl", "pidfd_getfd", "getpid"}},
		{[]string{"CAP_SYS_ADMIN"}, []string{"read", "write", "mount", "arch_prctl", "pidfd_getfd", "getpid"}},
		{[]string{"CAP_SYS_ADMIN", "CAP_SYS_CHROOT"}, []string{"read", "write", "mount", "chroot", "arch_prctl", "pidfd_getfd", "getpid"}},
	}
	for _, c := range cases {
		p, err := ParseFile([]byte(docker), Target{Bounding: c.bounding, Kernel: "6.1.0-18-amd64"})
		if err != nil {
			t.Fatalf("%v: %v", c.bounding, err)
		}
		var got []string
		for _, r := range p.Syscalls {
			got = append(got, r.Names...)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%v: rules for %v, want %v", c.bounding, got, c.want)
		}
		native, _ := nativeArch()
		if native == "SCMP_ARCH_X86_64" && !slices.Equal(p.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
			t.Errorf("architectures %v", p.Architectures)
		}
		if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
			t.Errorf("default %s %v", p.DefaultAction, p.DefaultErrnoRet)
		}
	}

	// An OCI object as it is.
	p, err := ParseFile([]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
		"syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}`), Target{})
	if err != nil || len(p.Syscalls) != 1 || p.Syscalls[0].ErrnoRet == nil || *p.Syscalls[0].ErrnoRet != 38 {
		t.Fatalf("OCI profile: %+v, %v", p, err)
	}

	// Bad input names what is wrong.
	for _, c := range []struct{ profile, want string }{
		{`{"defaultAction": "SCMP_ACT_MAYBE"}`, "SCMP_ACT_MAYBE"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}`, "SCMP_ARCH_VAX"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}`, "SCMP_ACT_NOPE"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "includes": {"minKernel": "six"}}]}`, "minKernel"},
		{`{"defaultAction": 7}`, "defaultAction"},
		{`{"defaultAction": "SCMP_ACT_ALLOW",`, ""},
	} {
		_, err := ParseFile([]byte(c.profile), Target{Kernel: "6.1"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.profile, err, c.want)
		}
	}
}

// TestParsePodmanProfile: the profile podman ships compiles, and gives a
// box with the default capabilities what it allows such a container.
func TestParsePodmanProfile(t *testing.T) {
	const path = "/usr/share/containers/seccomp.json"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("%s: %v (podman's profile; installed by the test command)", path, err)
	}
	p, err := ParseFile(data, Target{Bounding: []string{"CAP_CHOWN", "CAP_KILL"}, Kernel: "6.1"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Prog) == 0 {
		t.Fatal("empty program")
	}
}

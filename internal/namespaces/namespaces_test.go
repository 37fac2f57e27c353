package namespaces

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Type{"net": specs.NetworkNamespace, "network": specs.NetworkNamespace,
		"mnt": specs.MountNamespace, "mount": specs.MountNamespace, "user": specs.UserNamespace, "time": specs.TimeNamespace} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := Parse("bogus"); err == nil {
		t.Error("bogus accepted")
	}
}

func TestPlanFor(t *testing.T) {
	s := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/netns/x"}, {Type: specs.UserNamespace, Path: "/proc/1/ns/user"},
	}}}
	p, err := PlanFor(s)
	if err != nil {
		t.Fatal(err)
	}
	if p.NewFlags() != unix.CLONE_NEWPID || !p.Is(specs.IPCNamespace, Share) || !p.OwnsUserNS() {
		t.Errorf("plan %+v", p)
	}
	if j := p.Joins(); len(j) != 2 || j[0] != specs.UserNamespace || j[1] != specs.NetworkNamespace {
		t.Errorf("join order %v: user first", j)
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	if _, err := PlanFor(s); err == nil {
		t.Error("duplicate accepted")
	}
}

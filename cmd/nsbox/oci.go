package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/nsbox/nsbox"
	"github.com/nsbox/nsbox/internal/caps"
	"github.com/nsbox/nsbox/internal/lsm"
	"github.com/nsbox/nsbox/internal/namespaces"
	"github.com/nsbox/nsbox/internal/rootfs"
	"github.com/nsbox/nsbox/internal/seccomp"
	"github.com/nsbox/nsbox/internal/specjson"
)

// cmdFeatures prints what this runtime supports, as runtime-spec's
// features.md describes.
func cmdFeatures(g *global, args []string) int {
	fs := newFlagSet("features", "", "Print the runtime's features as JSON (runtime-spec features.md).")
	if _, _, code, ok := boxArgsNoRuntime(g, fs, args, 0, 0); !ok {
		return code
	}
	yes, no := true, false
	aa, se := lsm.AppArmor(), lsm.SELinux()
	actions, operators, archs, flags := seccomp.Supported()
	var nss []string
	for _, t := range namespaces.All {
		nss = append(nss, string(t))
	}
	f := features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  rootfs.OptionNames(),
		Linux: &features.Linux{
			Namespaces:   nss,
			Capabilities: caps.All(),
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no, Rdma: &yes},
			Seccomp: &features.Seccomp{Enabled: &yes, Actions: actions, Operators: operators, Archs: archs,
				KnownFlags: flags, SupportedFlags: flags},
			Apparmor: &features.Apparmor{Enabled: &aa},
			Selinux:  &features.Selinux{Enabled: &se},
			IntelRdt: &features.IntelRdt{Enabled: &no},
			MemoryPolicy: &features.MemoryPolicy{
				Modes: []string{"MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"},
				Flags: []string{"MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"},
			},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &yes}},
			NetDevices:      &features.NetDevices{Enabled: &no},
		},
		Annotations: map[string]string{"io.github.nsbox.version": versionString()},
	}
	b, _ := specjson.MarshalIndent(f, "", "    ")
	fmt.Println(string(b))
	return 0
}

// cmdSpec writes a starting config.json, as runc spec does.
func cmdSpec(g *global, args []string) int {
	var bundle string
	var rootless, withSeccomp bool
	fs := newFlagSet("spec", "[--bundle DIR] [--rootless] [--seccomp]", "Write a template config.json for an OCI bundle.")
	fs.stringVar(&bundle, "bundle", "b", "DIR", "bundle directory (default: the current directory)")
	fs.boolVar(&rootless, "rootless", "", "for a box started without root")
	fs.boolVar(&withSeccomp, "seccomp", "", "include nsbox's default seccomp profile (what `nsbox run` applies) for the template's capabilities")
	if _, _, code, ok := boxArgsNoRuntime(g, fs, args, 0, 0); !ok {
		return code
	}
	if bundle == "" {
		bundle = "."
	}
	path := filepath.Join(bundle, "config.json")
	if _, err := os.Stat(path); err == nil {
		return fail(g, fmt.Errorf("%s exists: remove it first", path))
	}
	s := nsbox.TemplateSpec(rootless)
	if withSeccomp {
		s.Linux.Seccomp = seccomp.Default(s.Process.Capabilities.Bounding)
	}
	b, err := specjson.MarshalIndent(s, "", "\t")
	if err != nil {
		return fail(g, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o666); err != nil {
		return fail(g, err)
	}
	return 0
}

// boxArgsNoRuntime parses a verb's flags and arguments when it needs no
// state directory.
func boxArgsNoRuntime(g *global, fs *flagSet, args []string, min, max int) ([]string, []string, int, bool) {
	pos, rest, _, err := fs.parse(args)
	if errors.Is(err, errHelp) {
		fmt.Print(fs.help())
		return nil, nil, 0, false
	}
	if err != nil {
		return nil, nil, fail(g, err), false
	}
	if len(pos) < min || len(pos) > max {
		return nil, nil, fail(g, fs.errorf("want %s", fs.usage)), false
	}
	return pos, rest, 0, true
}

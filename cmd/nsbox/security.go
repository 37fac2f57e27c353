package main

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsbox/nsbox"
)

// securityFlags are the flags of `nsbox run` that loosen or tighten what
// confines a box beyond its namespaces.
type securityFlags struct {
	seccomp         string
	capAdd, capDrop []string
	ulimits         []string
	privileged      bool
	landlock        bool
}

func (f *securityFlags) define(fs *flagSet) {
	fs.stringVar(&f.seccomp, "seccomp", "", "FILE|unconfined|default",
		"seccomp profile: an OCI or Docker/podman JSON profile, none, or the built-in one (default: Docker's in effect)")
	fs.listVar(&f.capAdd, "cap-add", "", "CAP", "add a capability (SYS_ADMIN, CAP_NET_ADMIN, ALL; repeatable)")
	fs.listVar(&f.capDrop, "cap-drop", "", "CAP", "drop a capability (or ALL; repeatable)")
	fs.boolVar(&f.privileged, "privileged", "", "turn off the confinement beyond namespaces: every capability, no seccomp filter, no masked or read-only /proc and /sys paths, setuid programs work (no no_new_privs)")
	fs.listVar(&f.ulimits, "ulimit", "", "TYPE=SOFT[:HARD]", "resource limit, as Docker's (nofile=1024:2048, nproc, core, ...; repeatable)")
	fs.boolVar(&f.landlock, "landlock", "", "also restrict file access to the box's own mounts with Landlock (Linux >= 5.13)")
}

// options are the spec options of the flags: privileged first, then the
// capabilities, then the profile, whose rules depend on them.
func (f *securityFlags) options() ([]nsbox.SpecOpt, error) {
	var opts []nsbox.SpecOpt
	if f.privileged {
		opts = append(opts, nsbox.WithPrivileged)
	}
	// As Docker: --cap-drop ALL --cap-add X leaves X; --cap-add ALL
	// --cap-drop X leaves all but X.
	add, drop := splitLists(f.capAdd), splitLists(f.capDrop)
	addFirst := slices.ContainsFunc(add, func(c string) bool { return strings.EqualFold(c, "ALL") })
	if addFirst && len(add) > 0 {
		opts = append(opts, nsbox.WithCapAdd(add...))
	}
	if len(drop) > 0 {
		opts = append(opts, nsbox.WithCapDrop(drop...))
	}
	if !addFirst && len(add) > 0 {
		opts = append(opts, nsbox.WithCapAdd(add...))
	}
	if f.seccomp != "" {
		opts = append(opts, nsbox.WithSeccompFile(f.seccomp))
	}
	for _, u := range f.ulimits {
		r, err := nsbox.ParseRlimit(u)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nsbox.WithRlimit(r))
	}
	return opts, nil
}

// splitLists reads repeated flags whose values may also be lists
// (--cap-add A,B --cap-add C).
func splitLists(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

// mayRemount reports whether the box of spec s, made with these flags, may
// remount what it sees: it holds CAP_SYS_ADMIN in its own mount namespace's
// user namespace, and Landlock does not forbid mounting.
func (f *securityFlags) mayRemount(s *specs.Spec) bool {
	return !f.landlock && s.Process.Capabilities != nil && slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
}

// hasReadOnlyBind: one of the --bind values is read-only.
func hasReadOnlyBind(binds []string) bool {
	return slices.ContainsFunc(binds, func(b string) bool { return strings.HasSuffix(b, ":ro") })
}

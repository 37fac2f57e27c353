// Package nsbox runs processes in fresh Linux namespaces — mount, pid,
// network, IPC, UTS, cgroup, user and time — from a plain Go program, with no
// cgo and no helper binary.
//
// A box is described by an OCI runtime spec (github.com/opencontainers/runtime-spec):
// build one with NewSpec and SpecOpt functions, or load a bundle's
// config.json. A Runtime starts boxes from specs and records them in a state
// directory that the nsbox command shares:
//
//	rt, _ := nsbox.New("")                        // /run/nsbox, or $XDG_RUNTIME_DIR/nsbox
//	spec, _ := nsbox.NewSpec([]string{"sh", "-c", "hostname"}, nsbox.WithHostname("demo"))
//	box, _ := rt.Run(nsbox.NewID(), spec, nsbox.Options{Init: true, AutoIDs: true, Ephemeral: true})
//	code, _ := box.Wait()
//
// NewSpec's default is the host's "/" read-only as the root, a fresh /proc, a
// minimal /dev, tmpfs /tmp and /run, /sys read-only, and new namespaces of
// every type but time. Run by root, the box's root is an unused range of ids
// (AutoIDs); run by anyone else, it is the caller.
//
// Start returns once the command runs. Errors name what failed inside the
// box ("mount proc on /proc: operation not permitted") and leave nothing
// behind.
//
// Starting a box forks the calling process. The child runs prepared system
// calls only, so this is safe in a multi-threaded Go program; see
// docs/design.md.
package nsbox

//go:build linux && (amd64 || arm64)

package initproc

// rawVfork is clone(CLONE_VM|CLONE_VFORK...) that survives the child using
// the caller's stack (vfork_$GOARCH.s).
//
//go:noescape
func rawVfork(flags uintptr, ptid *int32) (pid uintptr, errno uintptr)

// shareMemoryOnFork: the command is forked with CLONE_VM|CLONE_VFORK.
const shareMemoryOnFork = true

//go:build !amd64 && !arm64

package initproc

const trampolineMachine = 0

// trampolineCode is empty: there is no trampoline for this architecture.
var trampolineCode []byte

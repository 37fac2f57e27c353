//go:build !amd64 && !arm64

package initproc

import "debug/elf"

const trampolineMachine = elf.EM_NONE

// trampolineCode is empty: there is no trampoline for this architecture.
var trampolineCode []byte

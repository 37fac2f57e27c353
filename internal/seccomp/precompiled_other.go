//go:build !amd64

package seccomp

// precompiledProgs: none for this architecture (gen_precompiled.go runs on
// amd64); the default profile is compiled at each start.
var precompiledProgs []sockFilters

//go:build amd64 || arm64

package main

// growStack grows the calling goroutine's stack to hold 64 KiB more, in one
// step and without touching the new room (stack_$GOARCH.s).
func growStack()

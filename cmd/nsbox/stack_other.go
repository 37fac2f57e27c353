//go:build !amd64 && !arm64

package main

// growStack: only on amd64 and arm64 (stack_$GOARCH.s); elsewhere the stack
// grows as it is used.
func growStack() {}

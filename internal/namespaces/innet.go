package namespaces

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNet runs f in the network namespace of file nsfd, on a thread of its
// own: what f makes there (a socket) belongs to that namespace. The thread
// goes back to its namespace afterwards; one that cannot stays locked and
// ends with its goroutine. The caller's thread does not move.
func InNet(nsfd int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter the network namespace: %w", err)
			return
		}
		err = f()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

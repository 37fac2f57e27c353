package tests

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func clockGettime(ts *syscall.Timespec) {
	var t unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &t)
	ts.Sec, ts.Nsec = t.Sec, t.Nsec
}

func unixSignalName(s syscall.Signal) string { return unix.SignalName(s) }

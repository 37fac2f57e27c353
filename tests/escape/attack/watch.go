package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return "errno " + strconv.Itoa(int(e))
}

// watchBox calls first (if not nil), then probe, in a goroutine of its
// own, for every process that appears in the box (its pid namespace) until
// the file dir/stop exists (the suite runs `nsbox exec` meanwhile), then
// summary once every probe has returned. It writes dir/ready when it
// watches, and the observations to dir/report, complete once the file is
// there.
func watchBox(dir string, first func(), probe func(pid int), summary func()) error {
	tmp := filepath.Join(dir, "report.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	out = f
	if first != nil {
		first()
	}
	seen := map[int]bool{os.Getpid(): true}
	for _, pid := range pids() {
		seen[pid] = true // there before the attack
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte("ready\n"), 0o644); err != nil {
		return err
	}
	var wg sync.WaitGroup
	start := func(pid int) {
		seen[pid] = true
		wg.Add(1)
		go func() { defer wg.Done(); probe(pid) }()
	}
	// A new pid namespace hands out pids in order: the next process is
	// almost always the one after the last seen, which is watched for
	// between full scans of /proc, as an attacker would.
	last := 0
	for pid := range seen {
		last = max(last, pid)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		for next := last + 1; next <= last+3; next++ {
			if !seen[next] && unix.Access("/proc/"+strconv.Itoa(next), unix.F_OK) == nil && !ownThread(next) {
				start(next)
				last = next
			}
		}
		runtime.Gosched() // two cores: leave the probes and nsbox room
		if i%64 != 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			break
		}
		for _, pid := range pids() {
			if !seen[pid] {
				start(pid)
				last = max(last, pid)
			}
		}
	}
	wg.Wait()
	summary()
	fmt.Fprintln(f, "DONE")
	out = os.Stdout
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "report"))
}

// ownThread reports whether tid is a thread of this program (/proc/TID
// works for threads too, though /proc does not list them).
func ownThread(tid int) bool {
	return unix.Access("/proc/self/task/"+strconv.Itoa(tid), unix.F_OK) == nil
}

// pids lists the processes of the pid namespace of /proc.
func pids() []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var ps []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			ps = append(ps, pid)
		}
	}
	return ps
}

// fileKey identifies a file as device:inode.
func fileKey(fd int) string {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func pathKey(p string) string {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// gone reports whether process pid has ended (or is a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
		}
	}
	return false
}

// tally counts observations by kind, for a report of a few lines.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) add(kind string) {
	t.mu.Lock()
	if t.n == nil {
		t.n = map[string]int{}
	}
	t.n[kind]++
	t.mu.Unlock()
}

func (t *tally) get(kind string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[kind]
}

package initproc

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTrampolineImageIsAStaticELF(t *testing.T) {
	if len(trampolineCode) == 0 {
		t.Skip("no trampoline on this architecture")
	}
	tr := &Trampoline{SyncFD: 9, Op: 42, Filter: []unix.SockFilter{{Code: 6, K: 0x7fff0000}}, Flags: 1}
	img, err := tr.Image()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != elf.ET_EXEC || f.Machine != elf.Machine(trampolineMachine) || len(f.Progs) != 1 {
		t.Fatalf("type %v machine %v, %d segments", f.Type, f.Machine, len(f.Progs))
	}
	p := f.Progs[0]
	if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Filesz != uint64(len(img)) || f.Entry != p.Vaddr+120 {
		t.Fatalf("segment %+v, entry %#x", p.ProgHeader, f.Entry)
	}
	// The data block: what the code reads, where it reads it.
	d := img[120+len(trampolineCode):]
	le := func(b []byte) uint64 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	if le(d[tdSyncFD:tdSyncFD+4]) != 9 || le(d[tdOp:tdOp+4]) != 42 || le(d[tdHasFilter:tdHasFilter+4]) != 1 ||
		le(d[tdFlags:tdFlags+8]) != 1 || le(d[tdFprog:tdFprog+2]) != 1 {
		t.Fatalf("data block % x", d[:tdFilter])
	}
	if ptr := le(d[tdFprog+8 : tdFprog+16]); ptr != p.Vaddr+uint64(120+len(trampolineCode)+tdFilter) {
		t.Fatalf("filter pointer %#x", ptr)
	}
	if le(d[tdFilter+4:tdFilter+8]) != 0x7fff0000 {
		t.Fatalf("filter % x", d[tdFilter:])
	}
}

// runVia runs argv through a trampoline, with filter, and returns the
// messages and status.
func runVia(t *testing.T, paths, argv []string, filter []unix.SockFilter) ([]Msg, unix.WaitStatus, int) {
	t.Helper()
	tf, err := NewTrampolineFile()
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	var op int
	msgs, st := runProgram(t, 0, func(b *Builder) {
		tr := &Trampoline{SyncFD: b.p.syncFD, Filter: filter}
		if len(filter) > 0 {
			b.Call("no new privileges", unix.SYS_PRCTL, Imm(unix.PR_SET_NO_NEW_PRIVS), Imm(1))
		}
		b.Call("keep the sync socket", unix.SYS_FCNTL, Imm(b.p.syncFD), Imm(unix.F_SETFD), Imm(0))
		op = b.ExecVia("exec", int(tf.Fd()), paths, argv, []string{"A=1"})
		tr.Op = op
		if err := tr.Write(tf); err != nil {
			t.Fatal(err)
		}
	})
	return msgs, st, op
}

func TestTrampolineRunsTheCommand(t *testing.T) {
	if len(trampolineCode) == 0 {
		t.Skip("no trampoline on this architecture")
	}
	out := filepath.Join(t.TempDir(), "out")
	// The command gets its own argv (the trampoline's, less the path in
	// front) and environment.
	msgs, st, _ := runVia(t, []string{"/nonexistent/sh", "/bin/sh"},
		[]string{"sh", "-c", `echo "$0 $1 $A" > ` + out + `; exit 3`, "zero", "one"}, nil)
	if len(msgs) != 0 || st.ExitStatus() != 3 {
		t.Fatalf("msgs %+v, status %v; want none and 3", msgs, st)
	}
	if b, _ := os.ReadFile(out); string(b) != "zero one 1\n" {
		t.Fatalf("command wrote %q", b)
	}
}

func TestTrampolineReportsExecErrors(t *testing.T) {
	if len(trampolineCode) == 0 {
		t.Skip("no trampoline on this architecture")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	msgs, st, op := runVia(t, []string{bad}, []string{"bad"}, nil)
	if len(msgs) != 1 || msgs[0].Kind != MsgError || int(msgs[0].Op) != op || unix.Errno(msgs[0].Errno) != unix.ENOEXEC {
		t.Fatalf("msgs %+v; want MsgError of step %d with ENOEXEC", msgs, op)
	}
	if st.ExitStatus() != ExitChildFailed {
		t.Fatalf("status %v", st)
	}
}

func TestTrampolineLoadsTheFilterLast(t *testing.T) {
	if len(trampolineCode) == 0 {
		t.Skip("no trampoline on this architecture")
	}
	// A filter that fails execve with EPERM (1) and allows the rest: the
	// trampoline's own calls go through, the command's exec does not.
	nr := uint32(unix.SYS_EXECVE)
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	msgs, _, op := runVia(t, []string{"/bin/true"}, []string{"true"}, filter)
	if len(msgs) != 1 || int(msgs[0].Op) != op || unix.Errno(msgs[0].Errno) != unix.EPERM {
		t.Fatalf("msgs %+v; want MsgError of step %d with EPERM from the filter", msgs, op)
	}
}

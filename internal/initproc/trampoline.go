package initproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A trampoline is a tiny static executable, made per box, that runs the
// command for a child whose own executable is the nsbox binary.
//
// Without it the command starts from a process whose /proc/self/exe is
// nsbox: a command "#!/proc/self/exe" (or an ELF whose interpreter has that
// name) runs the nsbox binary inside the box, where the box's processes can
// open it through /proc/PID/exe and, once it exits, write it — the host's
// runtime replaced from a container (CVE-2019-5736). With it, the child
// executes the trampoline from a sealed memfd, so /proc/self/exe is that
// memfd, which nobody can write, and the trampoline executes the command.
// It is the size of a few hundred bytes, not a copy of nsbox.
//
// The trampoline, with its sync socket, exec step and filter built in:
//  1. makes itself undumpable, so that no process of the box reaches its
//     memory or descriptors through /proc before the command runs;
//  2. marks the sync socket close-on-exec: the parent sees end of file once
//     the command runs, exactly as without a trampoline;
//  3. loads the seccomp filter, when the filter is the last step;
//  4. executes argv[0] with arguments argv[1:] and its environment;
//     and on a failure reports MsgError(op, errno) on the sync socket and exits
//     with ExitChildFailed.
type Trampoline struct {
	SyncFD int
	// Op is the index of the exec step (ExecVia), for errors.
	Op int
	// Filter, if not empty, is loaded with seccomp(2) and these flags.
	Filter []unix.SockFilter
	Flags  uintptr
}

// The ELF constants the image needs (elf(5)); debug/elf would bring in
// DWARF and compression readers, a tenth of the binary, for a few numbers.
const (
	elfClass64        = 2
	elfData2LSB       = 1
	elfVersion        = 1
	elfTypeExec       = 2
	elfPTLoad         = 1
	elfPFX            = 1
	elfPFR            = 4
	elfMachineX86_64  = 62
	elfMachineAArch64 = 183
)

// trampolineBase is where the trampoline is loaded.
const trampolineBase = 0x400000

// Offsets in the data block after the code, as the code reads them.
const (
	tdSyncFD    = 0
	tdOp        = 8
	tdHasFilter = 12
	tdFlags     = 16
	tdFprog     = 24 // struct sock_fprog: length, then a pointer
	tdFilter    = 40
)

// ErrNoTrampoline: there is no trampoline for this architecture.
var ErrNoTrampoline = errors.New("no exec trampoline for this architecture")

// Image returns the trampoline as an ELF executable.
func (t *Trampoline) Image() ([]byte, error) {
	if len(trampolineCode) == 0 {
		return nil, ErrNoTrampoline
	}
	const ehsize, phsize = 64, 56
	code := ehsize + phsize
	data := code + len(trampolineCode)
	size := data + tdFilter + len(t.Filter)*int(unsafe.Sizeof(unix.SockFilter{}))
	img := make([]byte, size)
	le := binary.LittleEndian
	// ELF header.
	copy(img, []byte{0x7f, 'E', 'L', 'F', elfClass64, elfData2LSB, elfVersion})
	le.PutUint16(img[16:], elfTypeExec)
	le.PutUint16(img[18:], trampolineMachine)
	le.PutUint32(img[20:], elfVersion)
	le.PutUint64(img[24:], trampolineBase+uint64(code)) // entry
	le.PutUint64(img[32:], ehsize)                      // program headers
	le.PutUint16(img[52:], ehsize)
	le.PutUint16(img[54:], phsize)
	le.PutUint16(img[56:], 1)
	// One read-only, executable segment: the whole file.
	ph := img[ehsize:]
	le.PutUint32(ph[0:], elfPTLoad)
	le.PutUint32(ph[4:], elfPFR|elfPFX)
	le.PutUint64(ph[16:], trampolineBase)
	le.PutUint64(ph[24:], trampolineBase)
	le.PutUint64(ph[32:], uint64(size))
	le.PutUint64(ph[40:], uint64(size))
	le.PutUint64(ph[48:], 0x10000)
	copy(img[code:], trampolineCode)
	d := img[data:]
	le.PutUint32(d[tdSyncFD:], uint32(t.SyncFD))
	le.PutUint32(d[tdOp:], uint32(t.Op))
	if len(t.Filter) > 0 {
		le.PutUint32(d[tdHasFilter:], 1)
		le.PutUint64(d[tdFlags:], uint64(t.Flags))
		le.PutUint16(d[tdFprog:], uint16(len(t.Filter)))
		le.PutUint64(d[tdFprog+8:], trampolineBase+uint64(data+tdFilter))
		for i, f := range t.Filter {
			in := d[tdFilter+8*i:]
			le.PutUint16(in[0:], f.Code)
			in[2], in[3] = f.Jt, f.Jf
			le.PutUint32(in[4:], f.K)
		}
	}
	return img, nil
}

// NewTrampolineFile makes the empty memfd a trampoline goes into: its
// descriptor number must be known to build the program (ExecVia) before
// the trampoline itself can be (it names the exec step).
func NewTrampolineFile() (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("nsbox-exec", flags|unix.MFD_EXEC)
	if err == unix.EINVAL { // before Linux 6.3
		fd, err = unix.MemfdCreate("nsbox-exec", flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd for the exec trampoline: %w", err)
	}
	// Executable, not readable: a process that executes a file it may not
	// read is undumpable from the start (and stays so), so no process of
	// the box can ptrace the trampoline before it runs its first
	// instruction. (The child drops CAP_DAC_OVERRIDE and
	// CAP_DAC_READ_SEARCH from its effective set to execute it.)
	if err := unix.Fchmod(fd, 0o111); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memfd for the exec trampoline: %w", err)
	}
	return os.NewFile(uintptr(fd), "nsbox-exec"), nil
}

// Write puts the trampoline into f (from NewTrampolineFile) and seals it
// against any change.
func (t *Trampoline) Write(f *os.File) error {
	img, err := t.Image()
	if err != nil {
		return err
	}
	if _, err := f.Write(img); err != nil {
		return fmt.Errorf("write the exec trampoline: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals|unix.F_SEAL_EXEC)
	if err == unix.EINVAL { // F_SEAL_EXEC is Linux 6.3
		_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals)
	}
	if err != nil {
		return fmt.Errorf("seal the exec trampoline: %w", err)
	}
	return nil
}

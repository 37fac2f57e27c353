package cgroups

// The bpf(2) calls of device filters. Each attribute struct is the part of
// union bpf_attr that its command reads; its pointers are unsafe.Pointer
// so that the garbage collector sees them (nsbox builds for 64-bit only,
// where they fill an __aligned_u64).

import (
	"bytes"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// loadDeviceProgram loads insns as a BPF_PROG_TYPE_CGROUP_DEVICE program
// named name and returns its file descriptor. When the verifier refuses
// the program, the error ends with the last lines of its log.
func loadDeviceProgram(insns []bpfInsn, name string) (int, error) {
	code := encode(insns)
	license := []byte("Apache-2.0\x00") // no helper is called: any license does
	attr := struct {
		progType, insnCnt  uint32
		insns, license     unsafe.Pointer
		logLevel, logSize  uint32
		logBuf             unsafe.Pointer
		kernVersion, flags uint32
		name               [unix.BPF_OBJ_NAME_LEN]byte
		ifindex            uint32
		expectedAttachType uint32
	}{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(insns)),
		insns:    unsafe.Pointer(&code[0]),
		license:  unsafe.Pointer(&license[0]),
	}
	copy(attr.name[:len(attr.name)-1], name)
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		return fd, nil
	}
	if err != unix.EINVAL && err != unix.EACCES {
		return -1, err
	}
	// Load again for the verifier's reasons.
	log := make([]byte, 64<<10)
	attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), unsafe.Pointer(&log[0])
	if fd, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err2 == nil {
		return fd, nil
	}
	text := strings.TrimSpace(string(log[:max(bytes.IndexByte(log, 0), 0)]))
	if text == "" {
		return -1, err
	}
	lines := strings.Split(text, "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:] // the reason, then counts
	}
	return -1, fmt.Errorf("%w (verifier: %s)", err, strings.Join(lines, "; "))
}

// bpfProgAttach attaches (cmd BPF_PROG_ATTACH) or detaches
// (BPF_PROG_DETACH) program prog to or from the cgroup open at target, as
// a device filter.
func bpfProgAttach(cmd uintptr, target, prog int, flags uint32) error {
	attr := struct {
		target, prog, attachType, flags, replace uint32
	}{uint32(target), uint32(prog), unix.BPF_CGROUP_DEVICE, flags, 0}
	_, err := bpf(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// attachedDevicePrograms lists the ids of the device programs attached to
// the cgroup open at fd (BPF_PROG_QUERY without BPF_F_QUERY_EFFECTIVE:
// those attached there, not those inherited).
func attachedDevicePrograms(fd int) ([]uint32, error) {
	ids := make([]uint32, 64) // BPF_CGROUP_MAX_PROGS
	for {
		attr := struct {
			target, attachType, queryFlags, attachFlags uint32
			ids                                         unsafe.Pointer
			count, _                                    uint32
		}{target: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE, ids: unsafe.Pointer(&ids[0]), count: uint32(len(ids))}
		_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		if err == unix.ENOSPC && int(attr.count) > len(ids) { // attached since the last look
			ids = make([]uint32, attr.count)
			continue
		}
		if err != nil {
			return nil, err
		}
		return ids[:attr.count], nil
	}
}

// bpfProgByID opens the program with id (BPF_PROG_GET_FD_BY_ID).
func bpfProgByID(id uint32) (int, error) {
	attr := struct{ id, nextID, openFlags uint32 }{id: id}
	return bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// bpfProgName is the name the program open at fd was loaded with
// (BPF_OBJ_GET_INFO_BY_FD; struct bpf_prog_info has it at byte 64).
func bpfProgName(fd int) (string, error) {
	var info [64 + unix.BPF_OBJ_NAME_LEN]byte
	attr := struct {
		fd, infoLen uint32
		info        unsafe.Pointer
	}{uint32(fd), uint32(len(info)), unsafe.Pointer(&info[0])}
	if _, err := bpf(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return "", err
	}
	name := info[64:]
	if n := bytes.IndexByte(name, 0); n >= 0 {
		name = name[:n]
	}
	return string(name), nil
}

package nsinfo

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// eachEntry calls f with the name of each entry of directory fd, read
// with buf.
func eachEntry(fd int, buf []byte, f func(name []byte)) error {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		Dirents(buf[:n], f)
		if len(buf)-n >= maxDirent {
			// The next entry would have fit: there is none (this saves a
			// getdents call per directory, most of which are small).
			return nil
		}
	}
}

// maxDirent is the size of the largest linux_dirent64 record: a name of
// 255 bytes and its NUL after 19 bytes of header, aligned to 8.
const maxDirent = (19 + 256 + 7) &^ 7

// Dirents calls f with the name of each linux_dirent64 record in b, as
// getdents64(2) fills it.
func Dirents(b []byte, f func(name []byte)) {
	for len(b) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			return
		}
		name := b[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
			f(name)
		}
		b = b[reclen:]
	}
}

// atoi parses a positive decimal number (a pid, a descriptor).
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

package testenv

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// CpioEntry is one file of an initramfs: a directory, a regular file (from
// Data, or copied from the host file Host), a symlink (to Data) or a device
// node.
type CpioEntry struct {
	Path string      // inside the archive, relative: "bin/busybox"
	Mode fs.FileMode // type and permission bits: fs.ModeDir|0o755, 0o644, ...
	Data []byte      // content of a regular file, or a symlink's target
	Host string      // or: copy a regular file's content from this host file
	Dev  [2]uint32   // major and minor of a device node
}

// WriteCpio writes entries as a newc ("070701") cpio archive, the format the
// kernel unpacks as an initramfs, uncompressed. Missing parent directories
// are added (0755) before their first child.
func WriteCpio(w io.Writer, entries []CpioEntry) error {
	cw := cpioWriter{w: w, dirs: map[string]bool{".": true, "": true}}
	for _, e := range entries {
		name := strings.Trim(path.Clean("/"+e.Path), "/")
		if name == "" {
			return fmt.Errorf("cpio entry %q: no name", e.Path)
		}
		if err := cw.parents(path.Dir(name)); err != nil {
			return err
		}
		if err := cw.entry(name, e); err != nil {
			return fmt.Errorf("cpio entry %s: %w", name, err)
		}
		if e.Mode.IsDir() {
			cw.dirs[name] = true
		}
	}
	return cw.header("TRAILER!!!", 0, 0, [2]uint32{})
}

type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
}

func (cw *cpioWriter) parents(dir string) error {
	if cw.dirs[dir] {
		return nil
	}
	if err := cw.parents(path.Dir(dir)); err != nil {
		return err
	}
	cw.dirs[dir] = true
	return cw.header(dir, 0o040755, 0, [2]uint32{})
}

func (cw *cpioWriter) entry(name string, e CpioEntry) error {
	perm := uint32(e.Mode.Perm())
	if e.Mode&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if e.Mode&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if e.Mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case e.Mode.IsDir():
		return cw.header(name, 0o040000|perm, 0, [2]uint32{})
	case e.Mode&fs.ModeSymlink != 0:
		if err := cw.header(name, 0o120000|perm, len(e.Data), [2]uint32{}); err != nil {
			return err
		}
		return cw.data(e.Data)
	case e.Mode&fs.ModeCharDevice != 0:
		return cw.header(name, 0o020000|perm, 0, e.Dev)
	case e.Mode&fs.ModeDevice != 0:
		return cw.header(name, 0o060000|perm, 0, e.Dev)
	case e.Mode.IsRegular() && e.Host == "":
		if err := cw.header(name, 0o100000|perm, len(e.Data), [2]uint32{}); err != nil {
			return err
		}
		return cw.data(e.Data)
	case e.Mode.IsRegular():
		f, err := os.Open(e.Host)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", e.Host)
		}
		if err := cw.header(name, 0o100000|perm, int(st.Size()), [2]uint32{}); err != nil {
			return err
		}
		if n, err := io.Copy(cw.w, f); err != nil {
			return err
		} else if n != st.Size() {
			return fmt.Errorf("%s changed size while archived", e.Host)
		}
		return cw.pad(int(st.Size()))
	}
	return fmt.Errorf("unsupported mode %v", e.Mode)
}

// header writes a newc header and the name, padded to four bytes. Every
// field is eight hex digits; the name's size counts its terminating NUL.
func (cw *cpioWriter) header(name string, mode uint32, size int, dev [2]uint32) error {
	ino := uint32(0)
	nlink := 1
	if name != "TRAILER!!!" {
		cw.ino++
		ino = cw.ino
		if mode&0o170000 == 0o040000 {
			nlink = 2
		}
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, dev[0], dev[1], len(name)+1, 0)
	if _, err := io.WriteString(cw.w, h+name+"\x00"); err != nil {
		return err
	}
	return cw.pad(len(h) + len(name) + 1)
}

func (cw *cpioWriter) data(b []byte) error {
	if _, err := cw.w.Write(b); err != nil {
		return err
	}
	return cw.pad(len(b))
}

func (cw *cpioWriter) pad(n int) error {
	_, err := cw.w.Write(make([]byte, (4-n%4)%4))
	return err
}

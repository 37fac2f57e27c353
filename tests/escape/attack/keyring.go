package main

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// keyring reads the kernel keyring, which is not namespaced: keys of the
// host's root (its user keyring) reached from a box. The suite adds a key
// described DESC with a secret payload to root's user keyring first.
//
// Usage: attack keyring DESC
//
// ESCAPED: the key was found or read, or /proc/keys lists it.
func keyring(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: keyring DESC")
	}
	desc := args[0]
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0)
	attempt("keyctl search", err, "found the host's key %q in the user keyring (id %d)", desc, id)
	if err == nil {
		buf := make([]byte, 256)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		attempt("keyctl read", err, "read %d bytes of the host's key", n)
	}
	id, err = unix.RequestKey("user", desc, "", 0)
	attempt("request_key", err, "request_key found the host's key (id %d)", id)
	keys, err := os.ReadFile("/proc/keys")
	if err == nil && !bytes.Contains(keys, []byte(desc)) {
		err = fmt.Errorf("%d bytes, without the key", len(keys))
	}
	attempt("/proc/keys", err, "/proc/keys lists the host's key")
	return nil
}

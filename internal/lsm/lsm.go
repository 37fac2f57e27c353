// Package lsm says which Linux security modules are enabled, for the OCI
// fields that need them (process.apparmorProfile, process.selinuxLabel,
// linux.mountLabel).
package lsm

import (
	"strings"

	"github.com/nsbox/nsbox/internal/fileio"
)

// AppArmor reports whether AppArmor is enabled.
func AppArmor() bool {
	b, err := fileio.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// SELinux reports whether SELinux is enabled (selinuxfs mounted).
func SELinux() bool {
	_, err := fileio.ReadFile("/sys/fs/selinux/enforce")
	return err == nil
}

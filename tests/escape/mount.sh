# Mount, or make a user namespace in which the box's root has CAP_SYS_ADMIN
# and mount there: the first step of most kernel escapes (CVE-2022-0185
# needed unshare -U, then fsconfig).
# Fails: with the default profile and capabilities, every call is refused
# (seccomp and capabilities: EPERM).
. "${0%/*}/lib.sh"
try "mount a tmpfs" mount -t tmpfs none /mnt
try "bind / onto /mnt" mount --bind / /mnt
try "unshare -U" unshare -U true
try "unshare -m" unshare -m true
try "unshare -Urm, then mount" unshare -Urm mount -t tmpfs none /mnt
echo DONE

# Overwrite /proc/sys/kernel/core_pattern, which is not namespaced: a
# pattern "|PROGRAM" makes the host's kernel run PROGRAM as root at the
# next crash (the classic escape from a container with a writable /proc/sys).
# Tried directly, after remounting /proc/sys read-write or unmounting it
# (needs CAP_SYS_ADMIN in the box's own user namespace), and through a
# procfs of the box's own.
# Fails: every write is refused: read-only path (EROFS), the box's root is
# not the host's (EACCES), or no capability/seccomp (EPERM).
# Env: VALUE, the pattern (a harmless one; the control writes back the
# current pattern).
. "${0%/*}/lib.sh"
v=${VALUE:-core.nsbox-escape}
f=/proc/sys/kernel/core_pattern
try "write $f" write $f "$v"
step "remount /proc/sys read-write" mount -o remount,rw,bind /proc/sys
try "write $f after a remount" write $f "$v"
step "unmount /proc/sys" umount -l /proc/sys
try "write $f after an unmount" write $f "$v"
mkdir -p /tmp/proc
step "mount a procfs at /tmp/proc" mount -t proc proc /tmp/proc
try "write /tmp/proc/sys/kernel/core_pattern" write /tmp/proc/sys/kernel/core_pattern "$v"
echo DONE

# Write /proc/sysrq-trigger: the host's kernel runs the command (crash,
# reboot, kill all, ...). "h" only prints the help to the kernel log, which
# the suite counts. Tried directly, after remounting or unmounting it, and
# through a procfs of the box's own.
# Fails: every write is refused (EROFS, EACCES, EPERM).
. "${0%/*}/lib.sh"
f=/proc/sysrq-trigger
try "write $f" write $f h
step "remount $f read-write" mount -o remount,rw,bind $f
step "unmount $f" umount -l $f
try "write $f after a remount or an unmount" write $f h
mkdir -p /tmp/proc
step "mount a procfs at /tmp/proc" mount -t proc proc /tmp/proc
try "write /tmp/proc/sysrq-trigger" write /tmp/proc/sysrq-trigger h
echo DONE

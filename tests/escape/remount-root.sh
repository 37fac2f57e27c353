# A box that sees the host's root read-only (nsbox run without --rootfs)
# or a read-only bind of a host directory (at /mnt), given CAP_SYS_ADMIN in its own
# user namespace (--cap-add SYS_ADMIN), remounts them read-write, and
# unmounts its /tmp to reach the host's, then writes the host's files.
# Fails: the host's files stay read-only (EROFS), or the box's ids own
# nothing there (EACCES).
# Env: TARGETS, host directories to write into (the suite watches them).
. "${0%/*}/lib.sh"
step "remount / read-write" mount -o remount,rw,bind /
step "remount /mnt read-write" mount -o remount,rw,bind /mnt
step "unmount /tmp" umount -l /tmp
for d in $TARGETS; do
	try "write a file in $d" sh -c "echo escaped > $d/nsbox-escape"
done
echo DONE

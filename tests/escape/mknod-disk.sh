# Make a device node for a disk of the host and read its first sector:
# raw access to every file of the host. DISKS lists MAJ:MIN pairs: the
# host's root filesystem, and a loop device the suite attaches to a file
# (the machine's own disk may be closed even to the host's root).
# Fails: mknod is refused (user namespace, no CAP_MKNOD) or the node does
# not open (the devices cgroup, a nodev mount).
# Env: DISKS.
. "${0%/*}/lib.sh"
for disk in $DISKS; do
	maj=${disk%:*} min=${disk#*:}
	for d in /dev /tmp; do
		step "mknod $d/disk-$maj-$min b $maj $min" mknod $d/disk-$maj-$min b "$maj" "$min"
		try "read the host's disk $disk through $d/disk-$maj-$min" dd if=$d/disk-$maj-$min of=/dev/null bs=512 count=1
	done
done
echo DONE

# CVE-2022-0492: mount a cgroup v1 hierarchy — in the box, or after
# unshare of new user, mount and cgroup namespaces — and write its
# release_agent, a program the host's kernel runs as root when a cgroup
# empties. Also the box's own /sys/fs/cgroup.
# Fails: no writable release_agent: the mount is refused (capability,
# seccomp, user namespace), the hierarchy shows no release_agent (the box's
# cgroup namespace), or the write is refused (the kernel's check for
# CAP_SYS_ADMIN in the host's user namespace).
# Env: CONTROL=1 writes back the current agent (the control).
. "${0%/*}/lib.sh"
agent() { # $1: where the attempt runs
	for c in memory pids freezer; do
		d=/tmp/cg-$c
		mkdir -p $d
		step "mount cgroup v1 $c ($1)" mount -t cgroup -o $c cgroup $d
		v=/nsbox-escape-agent
		[ -n "$CONTROL" ] && v=$(cat $d/release_agent 2>/dev/null)
		try "write the release_agent of $c ($1)" write $d/release_agent "$v"
		umount $d 2>/dev/null
	done
}
if [ "$1" = inner ]; then
	agent "in new user, mount and cgroup namespaces"
	exit 0
fi
agent "in the box"
for f in /sys/fs/cgroup/*/release_agent; do
	[ -e "$f" ] && try "write $f" write $f /nsbox-escape-agent
done
step "unshare -UrmC" "${0%/*}/attack" unshare true
"${0%/*}/attack" unshare sh "$0" inner
echo DONE

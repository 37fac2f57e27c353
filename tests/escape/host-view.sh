# See the host from a box: its processes (the suite runs one whose command
# line holds the marker) and its mounts (the suite mounts a tmpfs on a path
# holding the marker).
# Fails: the box's /proc shows its own pid namespace only, and its
# mountinfo its own mount namespace over its own root.
# Env: MARKA and MARKB, the marker in two halves (the box's own init shows
# the environment nsbox was given on its command line); MOUNTS=1 to look
# for the mount too.
. "${0%/*}/lib.sh"
m=$MARKA$MARKB
try "find the host's process" grep -l "$m" /proc/[0-9]*/cmdline
[ -n "$MOUNTS" ] && try "find the host's mount" grep "$m" /proc/self/mountinfo
echo "INFO processes: $(ls -d /proc/[0-9]* | wc -l)"
echo DONE

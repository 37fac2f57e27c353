# Run in a box whose image holds symbolic links in /dev or in place of
# mount targets (CVE-2025-31133: runc masked paths with the image's
# /dev/null, and a link there made it bind the host's core_pattern
# read-write instead; CVE-2025-52565: the same with /dev/console): what
# masks files must be the null device, and writing to it reaches nothing
# (the suite watches the host's core_pattern and the links' targets).
# Fails: every masked file (and /dev/null and /dev/console where /dev is
# nsbox's own) is the null device, or a terminal for the console.
# Env: DEV=1 when /dev is nsbox's own tmpfs.
. "${0%/*}/lib.sh"
files="/proc/kcore /proc/keys /proc/timer_list /proc/interrupts /proc/sched_debug /proc/latency_stats"
[ -n "$DEV" ] && files="$files /dev/null /dev/console"
for f in $files; do
	[ -e $f ] || continue
	kind=$(stat -L -c '%F %t:%T' $f)
	case $kind in
	"character special file 1:3") echo "BLOCKED $f: the null device" ;;
	"character special file 88:"* | "character special file 5:1") echo "BLOCKED $f: a terminal ($kind)" ;;
	*) echo "ESCAPED $f: $kind, not the null device" ;;
	esac
	case $f in
	/dev/console) ;;
	*) echo core.nsbox-escape 2>/dev/null >$f ;;
	esac
done
echo DONE

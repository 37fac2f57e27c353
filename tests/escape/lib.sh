# Sourced by every attack script: how an attempt is reported (see
# attack/main.go for the protocol the suite reads).

# try WHAT CMD [ARG...]: run CMD; ESCAPED if it succeeds (with the start of
# its output), BLOCKED with its error otherwise.
try() {
	what=$1
	shift
	if res=$("$@" 2>&1); then
		echo "ESCAPED $what: $(echo "${res:-succeeded}" | head -c 120 | tr '\n' ' ')"
	else
		echo "BLOCKED $what: $(echo "${res:-exit status $?}" | head -c 200 | tr '\n' ' ')"
	fi
}

# step WHAT CMD [ARG...]: run a preparatory step, which may succeed
# without harm (in the box's own namespaces); INFO either way.
step() {
	what=$1
	shift
	if res=$("$@" 2>&1); then
		echo "INFO $what: done"
	else
		echo "INFO $what: failed: $(echo "$res" | head -c 160 | tr '\n' ' ')"
	fi
}

# write FILE VALUE: write VALUE into FILE, which must exist (a plain
# directory where a mount failed must not count as the file written).
write() {
	[ -e "$1" ] || {
		echo "$1: no such file"
		return 1
	}
	echo "$2" >"$1"
}

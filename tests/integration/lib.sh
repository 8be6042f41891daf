# tests/integration/lib.sh - helpers for the integration tests (sourced)
#
# A test script:
#     . "$(dirname "$0")/lib.sh"
#     it_begin "what this test shows"
#     it_need_binaries milter agent        # exit 77 when not built
#     it_start_stack                       # fresh stack, stopped on exit
#     ... check "description" command ...  # records ok / not ok, goes on
#     it_end                               # exit 0 if every check passed
#
# Exit status: 0 pass, 1 fail, 77 skip. On failure the tails of the logs
# are printed and the stack directory is kept (its path is printed);
# WEIR_IT_KEEP=1 keeps it on success too.
#
# Environment: WEIR_BUILD (build tree, default the repository root),
# WEIR_IT_TIMEOUT (seconds for each wait, default 60).

set -u
set -o pipefail

IT_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IT_HOME/../.." && pwd)
STACK=$REPO/tests/stack
export WEIR_BUILD=$(realpath -m "${WEIR_BUILD:-$REPO}")
WEIR_MILTER=$WEIR_BUILD/milter/weir-milter
WEIR_AGENT=$WEIR_BUILD/delivery-agent/weir-agent
WEIRCTL=$WEIR_BUILD/policy/weirctl
PY=/usr/bin/python3
IT_TIMEOUT=${WEIR_IT_TIMEOUT:-60}
IT_NAME=$(basename "$0" .sh)
IT_FAILS=0
IT_CHECKS=0
IT_DIR=
IT_SEQ=0
D=

it_say() { echo "[$IT_NAME] $*"; }

it_begin() {
	it_say "== $*"
	if [ "$(id -u)" != 0 ]; then
		it_skip "must run as root (private Postfix, daemons that drop to user weir)"
	fi
}

it_skip() {
	it_say "SKIP: $*"
	IT_SKIPPING=1
	exit 77
}

# it_need_binaries [milter] [agent] [weirctl]: skip when not built
it_need_binaries() {
	local b f
	for b in "$@"; do
		case $b in
		milter) f=$WEIR_MILTER ;;
		agent) f=$WEIR_AGENT ;;
		weirctl) f=$WEIRCTL ;;
		*) f=$b ;;
		esac
		[ -x "$f" ] || it_skip "$f is not built"
	done
}

# it_logs: the tails of every log of the stack
it_logs() {
	local f
	[ -n "$D" ] && [ -d "$D/log" ] || return 0
	for f in "$D"/log/postfix.log "$D"/log/weir-milter.log "$D"/log/weir-agent.log "$D"/log/sink*.log; do
		[ -e "$f" ] || continue
		echo "----- last 25 lines of $f -----"
		tail -n 25 -- "$f"
	done
	if [ -f "$D/postfix/main.cf" ]; then
		echo "----- postqueue -p -----"
		postqueue -c "$D/postfix" -p 2>&1 | head -20
	fi
	echo "----- sink spool -----"
	ls -l "$D"/sink 2>&1 | tail -n +2
}

it_cleanup() {
	local rc=$?
	trap - EXIT
	if [ -n "$D" ] && [ -d "$D" ]; then
		"$STACK/stop" "$D" >/dev/null 2>&1 || true
		# Sanitized daemons (WEIR_BUILD=build-asan) report memory errors
		# and leaks in their logs, leaks only at exit: after the stop.
		if grep -lE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
			"$D"/log/weir-*.log >/dev/null 2>&1; then
			echo "FAIL: sanitizer report in a daemon log:"
			grep -hE -A30 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
				"$D"/log/weir-*.log | head -60
			[ "$rc" = 0 ] && rc=1
		fi
		if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ]; then
			rm -rf -- "$D"
		elif [ "$rc" != 77 ]; then
			it_say "stack directory kept: $D"
		else
			rm -rf -- "$D"
		fi
	fi
	exit "$rc"
}
trap it_cleanup EXIT

# it_abort MSG: fail now, with the logs
it_abort() {
	it_say "FAIL: $*"
	it_logs
	exit 1
}

# it_start_stack [VAR=VALUE...]: start a stack in a fresh directory and
# source its stack.env (ports, PIDs, paths). VAR=VALUE are passed to the
# start script (WEIR_STACK_SKIP=milter, WEIR_SINK_SLOW=8, ...).
it_start_stack() {
	D=$(mktemp -d /tmp/weir-it.XXXXXX) || it_abort "mktemp failed"
	chmod 755 "$D"
	it_say "starting the stack in $D $*"
	if ! env "$@" "$STACK/start" "$D" >"$D/start.out" 2>&1; then
		cat "$D/start.out"
		it_abort "the stack did not start"
	fi
	# shellcheck disable=SC1091
	. "$D/stack.env"
	it_say "$(tail -n 1 "$D/start.out")"
}

# check DESC CMD...: run CMD, record and print the result, go on
check() {
	local desc=$1
	shift
	IT_CHECKS=$((IT_CHECKS + 1))
	if "$@"; then
		it_say "ok - $desc"
		return 0
	fi
	IT_FAILS=$((IT_FAILS + 1))
	it_say "NOT OK - $desc"
	return 1
}

# it_end: print the summary and exit 0 / 1
it_end() {
	if [ "$IT_FAILS" -ne 0 ]; then
		it_say "FAIL: $IT_FAILS of $IT_CHECKS checks failed"
		it_logs
		exit 1
	fi
	it_say "PASS: $IT_CHECKS checks"
	exit 0
}

# token: a unique string for a message body
token() {
	IT_SEQ=$((IT_SEQ + 1))
	echo "tok-$IT_NAME-$$-$IT_SEQ-$RANDOM$RANDOM"
}

# body_for TOKEN: the body send_mail sends (a dot line tests dot-stuffing)
body_for() {
	printf 'body line 1 %s\nline 2: a line with a leading dot follows\n.dot-line %s\n..two dots\n\tlast line %s' "$1" "$1" "$1"
}

# sink_body_ok FILE TOKEN: the body stored in FILE is exactly what
# send_mail sent (lines compared with CRLF endings, trailing empty lines
# ignored)
sink_body_ok() {
	$PY - "$1" "$2" "$(body_for "$2")" <<'PYEOF'
import sys
raw = open(sys.argv[1], "rb").read()
want = sys.argv[3].encode().split(b"\n")
head, sep, body = raw.partition(b"\r\n\r\n")
if not sep:
    print("  no header/body separator (CRLF CRLF) in %s" % sys.argv[1]); sys.exit(1)
got = body.split(b"\r\n")
while got and got[-1] == b"":
    got.pop()
if got != want:
    print("  body differs in %s:\n  want %r\n  got  %r" % (sys.argv[1], want, got)); sys.exit(1)
PYEOF
}

# send_mail FROM TO[,TO...] TOKEN [swaks args...]: send through Postfix.
# Sets QID to the Postfix queue id. Returns swaks' status. The transcript
# goes to $D/log/swaks-N.log.
QID=
send_mail() {
	local from=$1 to=$2 tok=$3 log
	shift 3
	log=$D/log/swaks-$IT_SEQ-$RANDOM.log
	swaks --server "127.0.0.1:$SMTP_PORT" --helo client.weir.test \
		--from "$from" --to "$to" \
		--header "Subject: weir test $tok" --body "$(body_for "$tok")" "$@" >"$log" 2>&1
	local rc=$?
	QID=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' "$log" | tail -n 1)
	if [ "$rc" != 0 ]; then
		it_say "swaks exited $rc; transcript $log:"
		tail -n 15 "$log"
	fi
	return "$rc"
}

# sink_count [SPOOL]: number of stored messages
sink_count() {
	find "${1:-$SINK_DIR}" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l
}

# sink_files_with STRING [SPOOL]: stored messages containing STRING,
# except bounces (null sender): a DSN quotes the original message
sink_files_with() {
	grep -lF -- "$1" "${2:-$SINK_DIR}"/*.eml 2>/dev/null | xargs -r grep -L '^X-Sink-Mail-From: <>'
}

# wait_for SECS CMD...: poll CMD every 0.25 s until it succeeds
wait_for() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.25
	done
	return 0
}

_sink_has() { [ "$(sink_files_with "$1" "$3" | wc -l)" -ge "$2" ]; }
# wait_sink TOKEN [N [SECS [SPOOL]]]: wait until N stored messages contain TOKEN
wait_sink() {
	wait_for "${3:-$IT_TIMEOUT}" _sink_has "$1" "${2:-1}" "${4:-$SINK_DIR}"
}

# wait_log FILE ERE [SECS]: wait until a line of FILE matches ERE
wait_log() {
	wait_for "${3:-$IT_TIMEOUT}" grep -qE -- "$2" "$1"
}

# log_has FILE ERE: a line of FILE matches ERE
log_has() {
	grep -qE -- "$2" "$1" 2>/dev/null
}

# pf_status QID RCPT: Postfix's last delivery line for QID and RCPT
pf_status() {
	grep -F "$1: to=<$2>" "$POSTFIX_LOG" 2>/dev/null | tail -n 1
}

# queue_empty: Postfix's queue holds nothing (both views must agree)
queue_empty() {
	postqueue -c "$POSTFIX_CONFIG_DIR" -p 2>/dev/null | grep -q "Mail queue is empty" &&
		[ -z "$(find "$POSTFIX_QUEUE_DIR"/{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null)" ]
}

# in_queue QID: QID is still in Postfix's queue
in_queue() {
	postqueue -c "$POSTFIX_CONFIG_DIR" -p 2>/dev/null | grep -q "^$1[*! ]"
}

# in_deferred QID: QID sits in the deferred queue
in_deferred() {
	[ -n "$(find "$POSTFIX_QUEUE_DIR/deferred" -type f -name "$1" 2>/dev/null)" ]
}

# wait_queue_empty [SECS]
wait_queue_empty() {
	wait_for "${1:-$IT_TIMEOUT}" queue_empty
}

# sink_header FILE NAME: the values of the sink's envelope header NAME
sink_header() {
	sed -n "s/^$2: //p" "$1" | tr -d '\r'
}

# pid_alive PID (not a zombie)
pid_alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)
	[ "$st" != Z ]
}

# free_port: one free loopback port
free_port() {
	$PY "$STACK/stackutil.py" freeports 1
}

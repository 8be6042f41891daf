#!/bin/bash
# agent-throughput.sh - delivery throughput through weir-agent against
# Postfix's own smtp client (issue 7, Speed), in one run:
#
#   bench/agent-throughput.sh [MESSAGES [SESSIONS [SIZE]]]
#       defaults: 10000 messages of 4096 bytes, 10 parallel sessions
#
# Two test stacks (tests/stack/start, weir-milter left out of both: this is
# about delivery), each relaying to its own smtp-sink (Postfix's C sink,
# nothing stored):
#   base   Postfix -> smtp-sink: relayhost = [127.0.0.1]:PORT, Postfix's
#          own smtp client (WEIR_STACK_SKIP=agent)
#   weir   Postfix -> weir-agent (LMTP, unix socket) -> smtp-sink (the
#          agent's default route; log_level info)
# Measures, for each stack:
#   1. end to end: smtp-source injects MESSAGES over SESSIONS sessions
#      (-d: each session carries many messages); from the first byte to
#      Postfix's queue empty with MESSAGES "status=sent" lines;
#   2. delivery alone: the same MESSAGES injected while the transport is
#      held (defer_transports), then released (postqueue -f): until the
#      queue is empty again;
# and 3. weir-agent alone: smtp-source over LMTP straight into weir-agent
# (it answers 250 only after smtp-sink did), against Postfix alone
# (smtp-source into the base stack's Postfix, until its queue is empty).
# Prints messages/second for each and the ratios weir/base (goal of issue
# 7: >= 0.9 for 1.). Bounded: each measurement gives up after
# WEIR_BENCH_TIMEOUT seconds (default 600) and the run prints "timeout".
# Needs root and a build (as the tests); loopback only.
set -u
set -o pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-10000}
S=${2:-10}
SIZE=${3:-4096}
LIMIT=${WEIR_BENCH_TIMEOUT:-600}
STACK=$top/tests/stack
PY=/usr/bin/python3

[ "$(id -u)" = 0 ] || { echo "agent-throughput: run as root" >&2; exit 1; }
for t in smtp-source smtp-sink postfix bc; do
	command -v "$t" >/dev/null || { echo "agent-throughput: $t not installed" >&2; exit 1; }
done

base=$(mktemp -d /tmp/weir-bench-tp-base.XXXXXX)
weir=$(mktemp -d /tmp/weir-bench-tp-weir.XXXXXX)
chmod 755 "$base" "$weir"
SINK_PIDS=()
cleanup() {
	local p
	for p in "${SINK_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	"$STACK/stop" "$base" >/dev/null 2>&1
	"$STACK/stop" "$weir" >/dev/null 2>&1
	if [ "${WEIR_BENCH_KEEP:-0}" = 1 ]; then
		echo "kept: $base $weir"
	else
		rm -rf "$base" "$weir"
	fi
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { echo "scale=1; $1 / ($3 - $2)" | bc; }

# start_sink PORT: an smtp-sink on 127.0.0.1:PORT (stopped at exit)
start_sink() {
	(exec smtp-sink -u nobody -4 "127.0.0.1:$1" 256 </dev/null >/dev/null 2>&1) &
	SINK_PIDS+=($!)
	$PY "$STACK/stackutil.py" waitbanner "$1" 10 >/dev/null
}

# --- the two stacks -------------------------------------------------------------
echo "starting the stacks ..."
WEIR_STACK_SKIP=agent,milter "$STACK/start" "$base" >"$base.start.out" 2>&1 ||
	{ cat "$base.start.out"; exit 1; }
rm -f "$base.start.out"
printf '%s\n' '  routes = ( { name = "bench"; hosts = ( { host = "127.0.0.1"; port = @SPARE_PORT@; tls = "none"; } ); } );' \
	>"$weir.agent.conf"
WEIR_STACK_SKIP=milter WEIR_STACK_AGENT_EXTRA="$weir.agent.conf" "$STACK/start" "$weir" >"$weir.start.out" 2>&1 ||
	{ cat "$weir.start.out"; exit 1; }
rm -f "$weir.start.out" "$weir.agent.conf"
BASE_SMTP=$(. "$base/stack.env" && echo "$SMTP_PORT")
BASE_SINK=$(. "$base/stack.env" && echo "$SPARE_PORT")
WEIR_SMTP=$(. "$weir/stack.env" && echo "$SMTP_PORT")
WEIR_SINK=$(. "$weir/stack.env" && echo "$SPARE_PORT")
WEIR_LMTP=$(. "$weir/stack.env" && echo "$LMTP_PORT")
start_sink "$BASE_SINK" || { echo "smtp-sink on $BASE_SINK did not start" >&2; exit 1; }
start_sink "$WEIR_SINK" || { echo "smtp-sink on $WEIR_SINK did not start" >&2; exit 1; }

# base: Postfix's smtp client to the smtp-sink through relayhost
postconf -c "$base/postfix" -e "relayhost = [127.0.0.1]:$BASE_SINK" \
	'default_transport = smtp' 'relay_transport = smtp' 'smtp_tls_security_level = none'
postfix -c "$base/postfix" reload >/dev/null 2>&1
# weir: the agent at log level info (the stack's is debug: a line per command)
sed -i 's/^log_level = "debug";/log_level = "info";/' "$weir/weir.conf"
"$STACK/agent-stop" "$weir" && "$STACK/agent-start" "$weir" >/dev/null ||
	{ echo "weir-agent did not restart" >&2; exit 1; }
sleep 1

# sent DIR: Postfix's "status=sent" lines so far
sent() { grep -c 'status=sent' "$1/log/postfix.log" 2>/dev/null; }
qempty() { [ -z "$(find "$1/postfix-queue"/{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null | head -n 1)" ]; }
# wait_done DIR WANT: until DIR's queue is empty and WANT lines say sent
wait_done() {
	local end=$((SECONDS + LIMIT))
	while [ $SECONDS -lt $end ]; do
		if [ "$(sent "$1")" -ge "$2" ] && qempty "$1"; then
			return 0
		fi
		sleep 0.1
	done
	echo "timeout after ${LIMIT}s: $(sent "$1") of $2 sent" >&2
	return 1
}
inject() { # PORT [smtp-source options]: N messages, S sessions
	local port=$1
	shift
	timeout "$LIMIT" smtp-source -d -s "$S" -m "$N" -l "$SIZE" -f bench@client.weir.test \
		-t rcpt@bench.weir.test "$@" "127.0.0.1:$port"
}

# end_to_end DIR PORT -> messages/s
end_to_end() {
	local d=$1 port=$2 before t0 t1
	before=$(sent "$d")
	t0=$(now)
	inject "$port" || return 1
	wait_done "$d" $((before + N)) || return 1
	t1=$(now)
	rate "$N" "$t0" "$t1"
}
# delivery_only DIR PORT TRANSPORT -> messages/s
delivery_only() {
	local d=$1 port=$2 tr=$3 before t0 t1 end
	before=$(sent "$d")
	postconf -c "$d/postfix" -e "defer_transports = $tr" && postfix -c "$d/postfix" reload >/dev/null 2>&1
	sleep 1
	inject "$port" || return 1
	end=$((SECONDS + LIMIT))
	while [ "$(find "$d/postfix-queue"/{incoming,active,deferred} -type f 2>/dev/null | wc -l)" -lt "$N" ]; do
		[ $SECONDS -lt $end ] || { echo "timeout: not all queued" >&2; return 1; }
		sleep 0.1
	done
	postconf -c "$d/postfix" -e 'defer_transports =' && postfix -c "$d/postfix" reload >/dev/null 2>&1
	sleep 1
	t0=$(now)
	postqueue -c "$d/postfix" -f
	wait_done "$d" $((before + N)) || return 1
	t1=$(now)
	rate "$N" "$t0" "$t1"
}

echo "$N messages of $SIZE bytes, $S sessions; smtp-sink as the smart host"
echo
echo "1. end to end (smtp-source -> Postfix -> ... -> smtp-sink, until the queue is empty)"
b1=$(end_to_end "$base" "$BASE_SMTP") || { echo "   base: timeout"; b1=; }
w1=$(end_to_end "$weir" "$WEIR_SMTP") || { echo "   weir: timeout"; w1=; }
[ -n "$b1" ] && printf '   Postfix smtp client (relayhost):   %8s msg/s\n' "$b1"
[ -n "$w1" ] && printf '   Postfix -> weir-agent (LMTP):       %8s msg/s\n' "$w1"
[ -n "$b1" ] && [ -n "$w1" ] && r1=$(echo "scale=3; $w1 / $b1" | bc) &&
	printf '   ratio weir/base: %s (goal >= 0.9)\n' "$r1"
echo
echo "2. delivery alone (queued while held, then released)"
b2=$(delivery_only "$base" "$BASE_SMTP" smtp) || { echo "   base: timeout"; b2=; }
w2=$(delivery_only "$weir" "$WEIR_SMTP" lmtp) || { echo "   weir: timeout"; w2=; }
[ -n "$b2" ] && printf '   Postfix smtp client (relayhost):   %8s msg/s\n' "$b2"
[ -n "$w2" ] && printf '   Postfix -> weir-agent (LMTP):       %8s msg/s\n' "$w2"
[ -n "$b2" ] && [ -n "$w2" ] && printf '   ratio weir/base: %s\n' "$(echo "scale=3; $w2 / $b2" | bc)"
echo
echo "3. weir-agent alone against Postfix alone (smtp-source straight in)"
before=$(sent "$base")
t0=$(now)
if inject "$BASE_SMTP" && wait_done "$base" $((before + N)); then
	b3=$(rate "$N" "$t0" "$(now)")
	printf '   Postfix alone (smtpd, queue, smtp): %8s msg/s\n' "$b3"
else
	echo "   Postfix alone: timeout"
	b3=
fi
t0=$(now)
if inject "$WEIR_LMTP" -L; then
	w3=$(rate "$N" "$t0" "$(now)")
	printf '   weir-agent alone (LMTP in, relayed): %7s msg/s\n' "$w3"
else
	echo "   weir-agent alone: smtp-source failed or timed out"
	w3=
fi
[ -n "$b3" ] && [ -n "$w3" ] && printf '   ratio weir-agent/Postfix: %s\n' "$(echo "scale=3; $w3 / $b3" | bc)"
echo
bounced=$(cat "$base/log/postfix.log" "$weir/log/postfix.log" | grep -E 'status=(bounced|deferred)' | grep -vc 'deferred transport')
echo "deferred or bounced deliveries in both Postfix logs: $bounced"
[ -n "${r1:-}" ] || exit 1

#!/bin/bash
# agent-overhead.sh - delivery through weir-agent against Postfix's own
# smtp client, to the same sink.
#
#   bench/agent-overhead.sh [MESSAGES] [ROUNDS]
#
# Two stacks: the baseline relays straight to the sink with Postfix's
# smtp client (WEIR_STACK_SKIP=agent); the other hands every message to
# weir-agent over LMTP, which relays it to the sink. Each round injects
# MESSAGES messages into each (alternating order) and times until the
# sink holds them all and Postfix's queue is empty. Prints the median
# ratio weir-agent/baseline. Bounded: MESSAGES * ROUNDS * 2 messages and
# 300 s per run.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200}
rounds=${2:-3}
base=$(mktemp -d /tmp/weir-bench-base.XXXXXX)
weir=$(mktemp -d /tmp/weir-bench-agent.XXXXXX)
trap '"$top/tests/stack/stop" "$base" >/dev/null 2>&1; "$top/tests/stack/stop" "$weir" >/dev/null 2>&1; rm -rf "$base" "$weir"' EXIT
WEIR_STACK_SKIP=agent "$top/tests/stack/start" "$base" >/dev/null
"$top/tests/stack/start" "$weir" >/dev/null

run() { # run DIR -> seconds until n more messages reached the sink
	local d=$1 t0 t1 before want
	(. "$d/stack.env"
	 before=$(find "$SINK_DIR" -type f | wc -l)
	 want=$((before + n))
	 t0=$(date +%s.%N)
	 smtp-source -s 4 -m "$n" -f bench@weir.test -t rcpt@example.weir.test "127.0.0.1:$SMTP_PORT"
	 for _ in $(seq 3000); do
		[ "$(find "$SINK_DIR" -type f | wc -l)" -ge "$want" ] && break
		sleep 0.1
	 done
	 t1=$(date +%s.%N)
	 [ "$(find "$SINK_DIR" -type f | wc -l)" -ge "$want" ] || { echo "timeout" >&2; exit 1; }
	 echo "$t1 - $t0" | bc)
}
ratios=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then tb=$(run "$base"); tw=$(run "$weir")
	else tw=$(run "$weir"); tb=$(run "$base"); fi
	ratio=$(echo "scale=3; $tw / $tb" | bc)
	ratios+=("$ratio")
	printf 'round %d: %d messages  Postfix smtp %.2fs  via weir-agent %.2fs  ratio %.3f\n' \
		"$r" "$n" "$tb" "$tw" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
echo "median ratio (via weir-agent / Postfix smtp client): $median"

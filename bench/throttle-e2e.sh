#!/bin/bash
# throttle-e2e.sh - the throttle's accuracy end to end (issue 8): the
# small variant of bench/throttle-accuracy through a real weir-agent.
#
#   bench/throttle-e2e.sh [SECONDS [CONNS]]
#       defaults: 20 seconds, 3 LMTP connections per group
#
# A test stack without weir-milter (tests/stack/start), whose weir-agent
# has one route to tests/agent/throttle-sink.py (which notes when each
# message's RCPT arrives) and five throttle groups, e1..e5 for the domains
# e1.test..e5.test at 2, 5, 10, 15 and 20 messages/s (burst 1, wait 3 s).
# tests/agent/throttle-inject.py feeds weir-agent straight over LMTP:
# CONNS connections per group, each sending one message after another (a
# 451 is followed by RSET and 50 ms of pause), so every group is offered
# more than its rate for SECONDS. Prints per group the configured and the
# observed rate at the sink over the run minus its first second, the error
# |observed - configured| / configured, then the worst and the mean error
# (tests/agent/throttle-check.py accuracy), and the agent's deferrals.
# Needs root and a build (as the tests); loopback only. About SECONDS + 10 s.
set -u
set -o pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-20}
CONNS=${2:-3}
STACK=$top/tests/stack
PY=/usr/bin/python3
AGENT_T=$top/tests/agent

[ "$(id -u)" = 0 ] || { echo "throttle-e2e: run as root" >&2; exit 1; }
grep -aq throttled "$top/delivery-agent/weir-agent" 2>/dev/null ||
	{ echo "throttle-e2e: this weir-agent has no throttle (issue 8)" >&2; exit 1; }

D=$(mktemp -d /tmp/weir-bench-throttle.XXXXXX)
chmod 755 "$D"
cleanup() {
	"$STACK/stop" "$D" >/dev/null 2>&1
	if [ "${WEIR_BENCH_KEEP:-0}" = 1 ]; then echo "kept: $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

RATES="2 5 10 15 20"
{
	echo 'throttle = {'
	echo '  wait = "3s";'
	echo '  max_waiting = 20;'
	echo "  state_file = \"$D/run/throttle-state\";"
	echo '  rules = ();'
	echo '  groups = ('
	i=0 sep=
	for r in $RATES; do
		i=$((i + 1))
		printf '%s    { name = "e%d"; domains = ("e%d.test"); rate = "%d/s"; burst = 1; }' "$sep" "$i" "$i" "$r"
		sep=$',\n'
	done
	printf '\n  );\n};\n'
} >"$D/throttle.conf"
printf '%s\n' '  routes = ( { name = "tsink"; hosts = ( { host = "127.0.0.1"; port = @SPARE_PORT@; tls = "none"; } ); } );' \
	>"$D/agent.conf"
chmod 644 "$D/throttle.conf" "$D/agent.conf"
echo "starting the stack ..."
WEIR_STACK_SKIP=milter WEIR_STACK_AGENT_EXTRA="$D/agent.conf" WEIR_STACK_CONF_EXTRA="$D/throttle.conf" \
	"$STACK/start" "$D" >"$D/start.out" 2>&1 || { cat "$D/start.out"; exit 1; }
# shellcheck disable=SC1091
. "$D/stack.env"
# the agent at log level info (the stack's is debug: a line per command)
sed -i 's/^log_level = "debug";/log_level = "info";/' "$WEIR_CONF"
"$STACK/agent-stop" "$D" && "$STACK/agent-start" "$D" >/dev/null ||
	{ echo "weir-agent did not restart" >&2; exit 1; }
. "$STACK/common.sh"
(exec "$PY" "$AGENT_T/throttle-sink.py" --port "$SPARE_PORT" --events "$D/events" \
	--pidfile "$D/run/tsink.pid" </dev/null >>"$D/log/tsink.log" 2>&1) &
stack_record_pid "$D" tsink $!
$PY "$STACK/stackutil.py" waitbanner "$SPARE_PORT" 10 >/dev/null || { echo "the sink did not start" >&2; exit 1; }

to=() groups=() i=0
for r in $RATES; do
	i=$((i + 1))
	to+=(--to "e$i.test")
	groups+=(--group "e$i.test=$r")
done
echo "feeding weir-agent over LMTP: ${SECS} s, $CONNS connections per group, groups at $RATES /s"
t0=$($PY "$AGENT_T/throttle-check.py" now)
timeout $((SECS + 60)) $PY "$AGENT_T/throttle-inject.py" lmtp --port "$LMTP_PORT" --out "$D/lmtp" \
	"${to[@]}" --conns "$CONNS" --seconds "$SECS" --prefix e2e
t1=$($PY -c "import sys; print(float(sys.argv[1]) + $SECS)" "$t0")
$PY "$AGENT_T/throttle-check.py" accuracy "$D/events" "${groups[@]}" \
	--since "$($PY -c "import sys; print(float(sys.argv[1]) + 1)" "$t0")" --until "$t1"
echo "weir-agent deferrals by reason: $(grep -E ' status=deferred reason=' "$AGENT_LOG" |
	sed -n 's/.* throttle=\([^ ]*\) .*reason=\([a-z]*\).*/\1:\2/p' | sort | uniq -c | tr -s ' \n' ' ')"

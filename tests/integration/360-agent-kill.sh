#!/bin/bash
# 360-agent-kill: kill -9 of weir-agent in the middle of a batch, twice.
# 600 distinct messages wait in Postfix's queue while weir-agent is down;
# it starts, Postfix flushes, and weir-agent is killed with SIGKILL when a
# third and again when two thirds of the batch are at the sink; each time
# it is started again (stale socket and pid file left behind) and Postfix
# retries. In the end every message is at the sink, Postfix's queue is
# empty, nothing bounced, and there are at most as many duplicates as
# kills: the host has max_connections = 1, so at most one upstream
# transaction is in flight when the agent dies (with more sessions, each
# one in its data phase can leave a copy at the sink that weir never
# confirmed: SMTP's own duplicate window, RFC 1047).
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "kill -9 of weir-agent in the middle of a batch: nothing lost, duplicates at most one per kill"
it_need_binaries milter agent
agent_need routes "agent.routes in weir-agent"

N=${WEIR_IT_KILL_N:-600}
POOL_1='
  max_connections = 1;
  routes = (
    { name = "relay"; hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );'
POOL_20='
  routes = (
    { name = "relay"; hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );'
agent_start_stack "$POOL_1"

queued() { [ "$(find "$POSTFIX_QUEUE_DIR"/{incoming,active,deferred} -type f 2>/dev/null | wc -l)" -ge "$N" ]; }
start_agent() {
	AGENT_PID=$("$STACK/agent-start" "$D") || return 1
	postqueue -c "$POSTFIX_CONFIG_DIR" -f
}
# kill_at COUNT: when COUNT more messages (than BASE) are at the sink,
# kill -9 weir-agent
kill_at() {
	local want=$(($1 + BASE)) n
	# poll the spool every 10 ms and kill at once (a shell loop lags)
	n=$("$PY" - "$SINK_DIR" "$want" "$AGENT_PID" <<'PYEOF'
import os, signal, sys, time
spool, want, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
end = time.time() + 60
while time.time() < end:
    n = sum(1 for f in os.listdir(spool) if f.endswith(".eml"))
    if n >= want:
        os.kill(pid, signal.SIGKILL)
        print(n)
        sys.exit(0)
    time.sleep(0.01)
print(n)
sys.exit(1)
PYEOF
	) || {
		echo "    only $n at the sink after 60 s"
		return 1
	}
	n=$((n - BASE))
	KILLS=$((KILLS + 1))
	it_say "kill -9 of weir-agent (pid $AGENT_PID) with $n of $N at the sink"
	wait_for 5 bash -c "! kill -0 $AGENT_PID 2>/dev/null"
	[ "$n" -lt "$N" ] || { echo "    the batch was already complete: not in the middle"; return 1; }
}
drain() {
	local end=$((SECONDS + 90))
	while [ $SECONDS -lt $end ]; do
		queue_empty && return 0
		postqueue -c "$POSTFIX_CONFIG_DIR" -f
		sleep 3
	done
	return 1
}
# batch WHAT PREFIX PER_KILL: N messages queued while weir-agent is down,
# two kills in the middle, then everything at the sink with at most
# PER_KILL extra copies per kill
batch() {
	local what=$1 pfx=$2 per=$3 count missing extra sent0
	KILLS=0
	BASE=$(sink_count)
	sent0=$(grep -c 'to=<rcpt@kill.weir.test>.*status=sent' "$POSTFIX_LOG")
	check "$what: weir-agent stopped: the batch waits in Postfix's queue" "$STACK/agent-stop" "$D"
	check "$what: $N messages injected into Postfix" \
		$AGENT_INJECT --port "$SMTP_PORT" --count "$N" --prefix "$pfx" --sessions 10 --size 4096 \
		--from kill@client.weir.test --to rcpt@kill.weir.test --tokens "$D/tokens-$pfx"
	check "$what: all $N in Postfix's queue" wait_for 30 queued
	check "$what: nothing new at the sink yet" test "$(sink_count)" = "$BASE"
	check "$what: weir-agent started, Postfix flushed" start_agent
	check "$what: kill -9 in the middle of the batch (at $((N / 3)))" kill_at $((N / 3))
	check "$what: weir-agent starts again after the kill (stale socket, pid file)" start_agent
	check "$what: kill -9 again (at $((2 * N / 3)))" kill_at $((2 * N / 3))
	check "$what: weir-agent starts again" start_agent
	check "$what: Postfix's queue drains (flushing every 3 s, 90 s at most)" drain
	count=$($AGENT_COUNT "$D/tokens-$pfx" "$SINK_DIR")
	printf '%s\n' "$count" | sed "s/^/[$IT_NAME]   /"
	missing=$(printf '%s\n' "$count" | head -n 1 | sed -n 's/.* missing=\([0-9]*\) .*/\1/p')
	extra=$(printf '%s\n' "$count" | head -n 1 | sed -n 's/.* extra_copies=\([0-9]*\) .*/\1/p')
	check "$what: every one of the $N messages is at the sink" test "${missing:-x}" = 0
	check "$what: duplicates: ${extra:-?} extra copies for $KILLS kills (at most $per per kill)" \
		test "${extra:-9999}" -le $((KILLS * per))
	check "$what: Postfix bounced nothing" bash -c "! grep -q 'status=bounced' '$POSTFIX_LOG'"
	check "$what: Postfix: $N more status=sent" \
		bash -c "[ \$(grep -c 'to=<rcpt@kill.weir.test>.*status=sent' '$POSTFIX_LOG') = $((sent0 + N)) ]"
}

batch "one upstream session" "k1x$$" 1
check "weir-agent logged its starts" bash -c "[ \$(grep -c 'started' '$AGENT_LOG') -ge 3 ]"
check "the default pool (max_connections 20) configured" bash -c "printf '%s\n' \"\$1\" >'$D/agent-extra.conf' && '$STACK/agent-config' '$D' '$D/agent-extra.conf'" _ "$POOL_20"
batch "default pool" "k20x$$" 20
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

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
agent_start_stack '
  max_connections = 1;
  routes = (
    { name = "relay"; hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );'

check "weir-agent stopped: the batch waits in Postfix's queue" "$STACK/agent-stop" "$D"
check "$N messages injected into Postfix" \
	$AGENT_INJECT --port "$SMTP_PORT" --count "$N" --prefix "k$$" --sessions 10 --size 4096 \
	--from kill@client.weir.test --to rcpt@kill.weir.test --tokens "$D/tokens"
queued() { [ "$(find "$POSTFIX_QUEUE_DIR"/{incoming,active,deferred} -type f 2>/dev/null | wc -l)" -ge "$N" ]; }
check "all $N in Postfix's queue" wait_for 30 queued
check "nothing at the sink yet" test "$(sink_count)" = 0

start_agent() {
	AGENT_PID=$("$STACK/agent-start" "$D") || return 1
	postqueue -c "$POSTFIX_CONFIG_DIR" -f
}
KILLS=0
# kill_at COUNT: when COUNT messages are at the sink, kill -9 weir-agent
kill_at() {
	local want=$1 n
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
	KILLS=$((KILLS + 1))
	it_say "kill -9 of weir-agent (pid $AGENT_PID) with $n of $N at the sink"
	wait_for 5 bash -c "! kill -0 $AGENT_PID 2>/dev/null"
	[ "$n" -lt "$N" ] || { echo "    the batch was already complete: not in the middle"; return 1; }
}
check "weir-agent started, Postfix flushed" start_agent
check "kill -9 in the middle of the batch (at $((N / 3)))" kill_at $((N / 3))
check "weir-agent starts again after the kill (stale socket, pid file)" start_agent
check "kill -9 again (at $((2 * N / 3)))" kill_at $((2 * N / 3))
check "weir-agent starts again" start_agent
drain() {
	local end=$((SECONDS + 90))
	while [ $SECONDS -lt $end ]; do
		queue_empty && return 0
		postqueue -c "$POSTFIX_CONFIG_DIR" -f
		sleep 3
	done
	return 1
}
check "Postfix's queue drains (flushing every 3 s, 90 s at most)" drain
count=$($AGENT_COUNT "$D/tokens" "$SINK_DIR")
printf '%s\n' "$count" | sed "s/^/[$IT_NAME]   /"
missing=$(printf '%s\n' "$count" | head -n 1 | sed -n 's/.* missing=\([0-9]*\) .*/\1/p')
extra=$(printf '%s\n' "$count" | head -n 1 | sed -n 's/.* extra_copies=\([0-9]*\) .*/\1/p')
check "every one of the $N messages is at the sink" test "${missing:-x}" = 0
check "duplicates: ${extra:-?} extra copies for $KILLS kills (at most one per kill)" test "${extra:-99}" -le "$KILLS"
check "Postfix bounced nothing" bash -c "! grep -q 'status=bounced' '$POSTFIX_LOG'"
check "Postfix: $N status=sent" bash -c "[ \$(grep -c 'to=<rcpt@kill.weir.test>.*status=sent' '$POSTFIX_LOG') = $N ]"
check "weir-agent logged its starts" bash -c "[ \$(grep -c 'started' '$AGENT_LOG') -ge 3 ]"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

#!/bin/bash
# 340-agent-weights: a route with two smart hosts of equal priority and
# weights 3:1; 1 000 distinct messages through the real stack (Postfix ->
# weir-agent over LMTP -> the sinks), injected over 10 SMTP sessions.
# Smooth weighted round robin: 750:250 within 2 % (±20) counted at the
# sinks; every message exactly once, Postfix's queue empty, one weir-agent
# line per message with the host it went to. Then the weight-3 host is
# stopped: the weight-1 host takes everything. Bounded: 90 s for the 1 000.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent weights 3:1 over 1 000 messages"
it_need_binaries milter agent
agent_need routes "agent.routes in weir-agent"
agent_need health "host health and balancing in weir-agent"

N=${WEIR_IT_WEIGHTS_N:-1000}
agent_start_stack '
  host_backoff = "30s";
  routes = (
    { name = "balanced";
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; weight = 3; },
                { host = "sink2.weir.test"; port = @SINK2_PORT@; tls = "none"; weight = 1; } ); }
  );' WEIR_STACK_SINKS=2 WEIR_STACK_SINK_ARGS=--no-fsync WEIR_STACK_SINK2_ARGS=--no-fsync

agent_mark
t0=$SECONDS
check "$N messages injected into Postfix over 10 sessions" \
	$AGENT_INJECT --port "$SMTP_PORT" --count "$N" --prefix "w$$" --sessions 10 --size 2048 \
	--from weights@client.weir.test --to rcpt@weights.weir.test --tokens "$D/tokens"
both() { [ $(($(sink_count "$SINK_DIR") + $(sink_count "$SINK2_DIR"))) -ge "$N" ]; }
check "all $N at the sinks within 90 s" wait_for 90 both
dt=$((SECONDS - t0))
check "Postfix's queue is empty" wait_queue_empty 30
c1=$(sink_count "$SINK_DIR") c2=$(sink_count "$SINK2_DIR")
it_say "sink (weight 3): $c1  sink2 (weight 1): $c2  in ${dt}s"
lo1=$((N * 3 / 4 - N / 50)) hi1=$((N * 3 / 4 + N / 50))
lo2=$((N / 4 - N / 50)) hi2=$((N / 4 + N / 50))
check "weight 3: $c1 in [$lo1, $hi1]" test "$c1" -ge "$lo1" -a "$c1" -le "$hi1"
check "weight 1: $c2 in [$lo2, $hi2]" test "$c2" -ge "$lo2" -a "$c2" -le "$hi2"
count=$($AGENT_COUNT "$D/tokens" "$SINK_DIR" "$SINK2_DIR")
it_say "$(printf '%s\n' "$count" | head -n 1)"
check "every message exactly once" bash -c "printf '%s\n' '$count' | head -n 1 | grep -q 'missing=0 duplicated=0 '"
check "Postfix: $N status=sent, none deferred or bounced" \
	bash -c "[ \$(grep -c 'to=<rcpt@weights.weir.test>.*status=sent' '$POSTFIX_LOG') = $N ] &&
		! grep -qE 'to=<rcpt@weights.weir.test>.*status=(deferred|bounced)' '$POSTFIX_LOG'"
a1=$(agent_lines 'to=<rcpt@weights\.weir\.test>' 'status=sent' "relay=sink\.weir\.test" | wc -l)
a2=$(agent_lines 'to=<rcpt@weights\.weir\.test>' 'status=sent' "relay=sink2\.weir\.test" | wc -l)
check "weir-agent: one line per message, naming the host ($a1 + $a2)" test "$a1" = "$c1" -a "$a2" = "$c2"

# --- the weight-3 host stopped: the other takes all ----------------------------------
check "sink (weight 3) stopped" "$STACK/sink-stop" "$D"
before2=$(sink_count "$SINK2_DIR")
check "20 more messages injected" \
	$AGENT_INJECT --port "$SMTP_PORT" --count 20 --prefix "w2$$" --sessions 2 \
	--from weights@client.weir.test --to rcpt2@weights.weir.test --tokens "$D/tokens2"
check "all 20 at sink2" wait_for 30 bash -c "[ \$(find '$SINK2_DIR' -name '*.eml' | wc -l) -ge $((before2 + 20)) ]"
check "Postfix: none of them deferred" bash -c "! grep -q 'to=<rcpt2@weights.weir.test>.*status=deferred' '$POSTFIX_LOG'"
check "Postfix's queue is empty" wait_queue_empty 30
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

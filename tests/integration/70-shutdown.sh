#!/bin/bash
# 70-shutdown: SIGTERM to weir-agent while a transaction is in flight (the
# sink answers RCPT for a slow... recipient after WEIR_SINK_SLOW seconds):
# the message is never lost (it reaches the sink, or stays in Postfix's
# queue and arrives after the agent is back), the agent exits, its pid
# file is gone. Started without the milter: this is about the agent.
. "$(dirname "$0")/lib.sh"
it_begin "SIGTERM to weir-agent in the middle of a transaction"
it_need_binaries agent
SLOW=8
it_start_stack WEIR_STACK_SKIP=milter WEIR_SINK_SLOW=$SLOW

check "agent pid file names the agent" test "$(cat "$AGENT_PID_FILE" 2>/dev/null)" = "$AGENT_PID"
tok=$(token)
rcpt=slow-one@example.weir.test
check "Postfix accepts a message for <$rcpt>" send_mail a@client.weir.test "$rcpt" "$tok"
check "the agent is waiting on the sink's RCPT reply" \
	wait_log "$SINK_LOG" "rcpt=<$rcpt> sleeping" 30
t0=$SECONDS
kill -TERM "$AGENT_PID"
it_say "SIGTERM sent to weir-agent $AGENT_PID"
check "the agent exits (within shutdown_timeout 20s + margin)" wait_for 40 bash -c "! kill -0 $AGENT_PID 2>/dev/null"
it_say "the agent took $((SECONDS - t0))s to exit"
wait "$AGENT_PID" 2>/dev/null
check "its pid file is gone" wait_for 5 test ! -e "$AGENT_PID_FILE"
check "its unix socket is gone or refuses" bash -c "! $PY '$STACK/stackutil.py' waitunix '$AGENT_LMTP_SOCKET' 1 2>/dev/null"
check "the shutdown is logged" log_has "$AGENT_LOG" "shut|stop|exit"

# where is the message? at the sink, or still in Postfix's queue
sleep 2
at_sink=$(sink_files_with "$tok" | wc -l)
queued=0
in_queue "$QID" && queued=1
it_say "after the shutdown: copies at the sink=$at_sink, in Postfix's queue=$queued"
it_say "postfix: $(pf_status "$QID" "$rcpt")"
check "the message is not lost (at the sink or in Postfix's queue)" test $((at_sink + queued)) -ge 1
check "Postfix never bounced it" bash -c "! grep -F '$QID: to=<$rcpt>' '$POSTFIX_LOG' | grep -q status=bounced"
if [ "$at_sink" -ge 1 ]; then
	check "Postfix logged status=sent (the transaction finished)" wait_log "$POSTFIX_LOG" "$QID: to=<$rcpt>,.* status=sent" 10
fi

# start the agent again (as the stack does) and let Postfix retry
(exec "$WEIR_AGENT" -f -c "$WEIR_CONF" </dev/null >>"$AGENT_LOG" 2>&1) &
NEW=$!
echo "$NEW" >"$D/run/stack-weir-agent.pid"
check "the agent starts again" wait_for 20 $PY "$STACK/stackutil.py" waitunix "$AGENT_LMTP_SOCKET" 0.5
postqueue -c "$POSTFIX_CONFIG_DIR" -f
check "the queue empties" wait_queue_empty $((SLOW * 4 + 30))
n=$(sink_files_with "$tok" | wc -l)
check "the message is at the sink (copies: $n; 2 would mean a duplicate after the 250)" test "$n" -ge 1
[ "$n" -gt 1 ] && it_say "note: $n copies: the agent relayed it but Postfix did not get the 250 (duplicate)"
it_end

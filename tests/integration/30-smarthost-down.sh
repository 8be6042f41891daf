#!/bin/bash
# 30-smarthost-down: with the sink stopped the message stays deferred in
# Postfix's queue (4xx from weir-agent), nothing is lost; after the sink
# is back on the same port and the queue is flushed it arrives once.
. "$(dirname "$0")/lib.sh"
it_begin "smart host down, then back"
it_need_binaries milter agent
it_start_stack

check "sink stopped" "$STACK/sink-stop" "$D"
check "sink port $SINK_PORT refuses connections" \
	bash -c "! $PY '$STACK/stackutil.py' waittcp $SINK_PORT 1 2>/dev/null"
tok=$(token)
rcpt=down@example.weir.test
check "Postfix accepts the message" send_mail alice@client.weir.test "$rcpt" "$tok"
it_say "queue id ${QID:-none}"
check "Postfix: status=deferred with a 4.x.x from weir-agent (lmtp)" \
	wait_log "$POSTFIX_LOG" "postfix/lmtp\[[0-9]+\]: $QID: to=<$rcpt>,.* dsn=4\.[0-9.]+, status=deferred" 40
it_say "postfix: $(pf_status "$QID" "$rcpt")"
check "the reply came from weir-agent (said: 4xx), not a Postfix connect failure" \
	bash -c "grep -F '$QID: to=<$rcpt>' '$POSTFIX_LOG' | grep -q 'said: 4[0-9][0-9]'"
check "the message is in the deferred queue" wait_for 10 in_deferred "$QID"
check "nothing reached the spool" test "$(sink_count)" = 0
check "never bounced" bash -c "! grep -F '$QID: to=<$rcpt>' '$POSTFIX_LOG' | grep -q status=bounced"

check "sink restarted on port $SINK_PORT" "$STACK/sink-restart" "$D"
check "postqueue -f" postqueue -c "$POSTFIX_CONFIG_DIR" -f
check "the message arrives after the flush" wait_sink "$tok" 1 60
check "exactly one copy" test "$(sink_files_with "$tok" | wc -l)" = 1
f=$(sink_files_with "$tok" | head -n 1)
[ -n "$f" ] && check "body intact" sink_body_ok "$f" "$tok"
check "Postfix: status=sent" wait_log "$POSTFIX_LOG" "$QID: to=<$rcpt>,.* status=sent" 30
check "the queue empties" wait_queue_empty 30
it_end

#!/bin/bash
# 30-smarthost-down: with the sink stopped the message stays deferred in
# Postfix's queue (4xx from weir-agent), nothing is lost; after the sink
# is back on the same port and the queue is flushed it arrives once.
# MTA-neutral: 610-sendmail-smarthost-down.sh runs it against Sendmail.
. "$(dirname "$0")/lib.sh"
it_begin "smart host down, then back"
it_need_binaries milter agent
it_start_stack

check "sink stopped" "$STACK/sink-stop" "$D"
check "sink port $SINK_PORT refuses connections" \
	bash -c "! $PY '$STACK/stackutil.py' waittcp $SINK_PORT 1 2>/dev/null"
tok=$(token)
rcpt=down@example.weir.test
MTA=$(mta_name)
check "$MTA accepts the message" send_mail alice@client.weir.test "$rcpt" "$tok"
it_say "queue id ${QID:-none}"
check "$MTA: deferred with a 4.x.x that weir-agent said (LMTP), not a connect failure" \
	mta_deferred_by_agent "$QID" "$rcpt" 40
it_say "$MTA: $(grep -F "$QID: to=<$rcpt>" "$MTA_LOG" | tail -n 1)"
check "the message waits in the queue (deferred)" wait_for 10 in_deferred "$QID"
check "nothing reached the spool" test "$(sink_count)" = 0
check "never bounced (no 5xx in the $MTA log)" bash -c "! grep -F '$QID: to=<$rcpt>' '$MTA_LOG' | grep -qE 'status=bounced| dsn=5\.'"

check "sink restarted on port $SINK_PORT" "$STACK/sink-restart" "$D"
check "the queue is run now (postqueue -f, sendmail -q)" mta_flush
check "the message arrives after the flush" wait_sink "$tok" 1 60
check "exactly one copy" test "$(sink_files_with "$tok" | wc -l)" = 1
f=$(sink_files_with "$tok" | head -n 1)
[ -n "$f" ] && check "body intact" sink_body_ok "$f" "$tok"
check "$MTA: sent" mta_sent "$QID" "$rcpt" 30
check "the queue empties" wait_queue_empty 30
it_end

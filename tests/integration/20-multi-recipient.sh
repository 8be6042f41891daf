#!/bin/bash
# 20-multi-recipient: one message, 3 recipients: good, reject-..., defer-...
# The good one reaches the sink and is status=sent; the reject one is
# bounced with the sink's "User unknown" text quoted in Postfix's log; the
# defer one stays deferred in Postfix's queue.
. "$(dirname "$0")/lib.sh"
it_begin "per-recipient outcomes through LMTP"
it_need_binaries milter agent
it_start_stack

tok=$(token)
from=alice@client.weir.test
good=good@example.weir.test rej=reject-nobody@example.weir.test def=defer-later@example.weir.test
check "Postfix accepts the message for 3 recipients" send_mail "$from" "$good,$rej,$def" "$tok"
it_say "queue id ${QID:-none}"

check "the good recipient's copy reaches the sink" wait_sink "$tok" 1
f=$(sink_files_with "$tok" | head -n 1)
if [ -n "$f" ]; then
	check "the sink's copy is for <$good> only" test "$(sink_header "$f" X-Sink-Rcpt-To)" = "<$good>"
	check "body intact" sink_body_ok "$f" "$tok"
fi
check "only one copy of the message at the sink" test "$(sink_files_with "$tok" | wc -l)" = 1
check "Postfix: <$good> status=sent via lmtp" \
	wait_log "$POSTFIX_LOG" "postfix/lmtp\[[0-9]+\]: $QID: to=<$good>,.* status=sent" 30
check "Postfix: <$rej> status=bounced quoting the sink's 550 5.1.1 ... User unknown" \
	wait_log "$POSTFIX_LOG" "$QID: to=<$rej>,.* dsn=5\.1\.1, status=bounced .*User unknown" 30
check "Postfix: <$def> status=deferred with a 4xx" \
	wait_log "$POSTFIX_LOG" "$QID: to=<$def>,.* dsn=4\.[0-9.]+, status=deferred" 30
it_say "postfix: $(pf_status "$QID" "$rej")"
it_say "postfix: $(pf_status "$QID" "$def")"
check "the message stays in Postfix's deferred queue (for <$def>)" wait_for 10 in_deferred "$QID"
check "the queued message lists <$def> only" \
	bash -c "postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -qF '$def' && ! postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -qF -e '$good' -e '$rej'"
check "the bounce (DSN) for <$rej> reaches the sender <$from> at the sink" \
	wait_for 30 bash -c "grep -l '^X-Sink-Rcpt-To: <$from>' '$SINK_DIR'/*.eml | xargs -r grep -l '$rej' | grep -q ."
check "Postfix never sent <$rej> or <$def> as delivered" \
	bash -c "! grep -E '$QID: to=<($rej|$def)>,.* status=sent' '$POSTFIX_LOG'"
it_end

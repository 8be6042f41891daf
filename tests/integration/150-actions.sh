#!/bin/bash
# 150-actions: the per-rule actions of the issue 3 spec: "tempfail" (451
# 4.7.1, the client gets a 4xx), "hold" (250 to the client, the message
# sits in Postfix's hold queue, nothing reaches the sink), "log" (accepted,
# logged as "would reject"), and policy.dry_run = true (everything accepted,
# decision lines with dry_run=yes).
. "$(dirname "$0")/lib.sh"
it_begin "policy actions: tempfail, hold, log, dry_run"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"

CONF_BASE='
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test");
senders = {
  map = ( { login = "alice"; addresses = ("alice@local.weir.test"); } );
};'
it_start_policy_stack "$CONF_BASE
policy = {
  relay = \"tempfail\";
  envelope_sender = \"tempfail\";
  header_from = \"hold\";
  spoofing = \"log\";
};"
A=alice@$LOCAL_DOMAIN B=bob@$LOCAL_DOMAIN

# --- tempfail ----------------------------------------------------------------
log_mark
smtp tf-relay --from "x@$OTHER_DOMAIN" --to "bob@$OTHER_DOMAIN" --quit-after RCPT
check "relay=tempfail: outside -> other: 451 4.7.1 <bob@$OTHER_DOMAIN>: relay access denied..." \
	reply_is RCPT "451 4.7.1 <bob@$OTHER_DOMAIN>: relay access denied: authenticate with SMTP AUTH or send from a trusted network"
check "relay=tempfail: one decision line rule=relay action=tempfail" decision_is relay tempfail outside -
log_mark
smtp tf-env -u alice --from "$B" --to "rcpt@$OTHER_DOMAIN" --quit-after RCPT
check "envelope_sender=tempfail: alice as bob: 451 4.7.1 alice may not send as <$B>" \
	reply_is MAIL "451 4.7.1 alice may not send as <$B>: use one of your own addresses"
check "envelope_sender=tempfail: one decision line action=tempfail" decision_is envelope_sender tempfail authenticated alice
check "Postfix logged the milter's 4xx for the sender" \
	grep -qE "milter-reject: MAIL from .*451 4\.7\.1 alice may not send as <$B>" "$POSTFIX_LOG"

# --- hold ---------------------------------------------------------------------
tok=$(token)
log_mark
f=$D/msg-hold.eml
raw_msg "From: Bob <$B>" "$tok" >"$f"
smtp hold -u alice --from "$A" --to "rcpt@$OTHER_DOMAIN" --data "$f"
check "header_from=hold: alice with From bob: the client gets 250 at end of data" reply_matches DATA '^250 '
check "hold: a queue id" test -n "$QID"
check "hold: one decision line rule=header_from action=hold" decision_is header_from hold authenticated alice
check "hold: per-message line decision=hold" msg_decision hold "queue_id=$QID"
check "hold: postqueue -p shows $QID with '!' (on hold)" \
	wait_for 10 bash -c "postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -q '^$QID!'"
check "hold: the queue file is in the hold directory" \
	wait_for 10 bash -c "find '$POSTFIX_QUEUE_DIR/hold' -type f -name '$QID' | grep -q ."
# Postfix logs the hold but not the milter's reason text: the reason is
# checked in the milter's decision line
check "hold: Postfix logged the milter's hold for $QID" \
	grep -qE "$QID: milter-hold: END-OF-MESSAGE from .*milter triggers HOLD action" "$POSTFIX_LOG"
check "hold: the decision line holds the rule's reason" \
	decision_is header_from hold authenticated alice "may not send as <$B> \\(header From\\)"
it_say "  postfix: $(grep -E "$QID: (milter-)?hold" "$POSTFIX_LOG" | tail -n 1)"
check "hold: nothing reaches the sink" sink_none_with "$tok" 8

# --- log ----------------------------------------------------------------------
tok=$(token)
log_mark
check "spoofing=log: outside MAIL FROM:<$A> is accepted" \
	smtp log-spoof --from "$A" --to "$B" --header "From: <x@$OTHER_DOMAIN>" --header "Subject: $tok" --body "$tok"
check "spoofing=log: delivered to the sink" wait_sink "$tok" 1 30
check "spoofing=log: one decision line rule=spoofing action=log saying 'would reject'" \
	decision_is spoofing log outside - "would reject"

# --- dry_run -----------------------------------------------------------------
# The spec: dry_run = "every rule acts as log", log = 'log "would <action>"',
# dry-run lines add dry_run=yes. Whether action= then says log or the rule's
# own action is not fixed: both are accepted; "would reject" is required.
it_restart_policy_stack "$CONF_BASE
policy = {
  dry_run = true;
  relay = \"reject\"; envelope_sender = \"reject\"; header_from = \"reject\";
  spoofing = \"reject\"; null_sender = \"reject\";
};"
tok=$(token)
log_mark
check "dry_run: outside -> <bob@$OTHER_DOMAIN> is accepted" \
	smtp dry-relay --from "x@$OTHER_DOMAIN" --to "bob@$OTHER_DOMAIN" --header "Subject: $tok" --body "$tok"
check "dry_run: relayed to the sink" wait_sink "$tok" 1 30
check "dry_run: relay decision line with dry_run=yes and 'would reject'" \
	decision_is relay "(log|reject)" outside - 'dry_run=yes' 'would reject'
tok=$(token)
log_mark
f=$D/msg-dry.eml
raw_msg "From: <$B>" "$tok" "From: <$A>" >"$f"
check "dry_run: alice as <$B> with two From headers is accepted" \
	smtp dry-env -u alice --from "$B" --to "rcpt@$OTHER_DOMAIN" --data "$f"
check "dry_run: alice's message reaches the sink" wait_sink "$tok" 1 30
check "dry_run: envelope_sender line dry_run=yes, would reject, names <$B>" \
	decision_is envelope_sender "(log|reject)" authenticated alice 'dry_run=yes' 'would reject' "may not send as <$B>"
check "dry_run: header_from line dry_run=yes, would reject, 2 From headers" \
	decision_is header_from "(log|reject)" authenticated alice 'dry_run=yes' 'would reject' 'message has 2 From headers'
check "dry_run: per-message line decision=accept" msg_decision accept 'login=alice'
tok=$(token)
log_mark
check "dry_run: outside MAIL FROM:<$A> to <$B> is accepted" \
	smtp dry-spoof --from "$A" --to "$B" --header "Subject: $tok" --body "$tok"
check "dry_run: spoofed message reaches the sink" wait_sink "$tok" 1 30
check "dry_run: spoofing line dry_run=yes, would reject" \
	bash -c "[ \$(tail -n +$((LOG_MARK + 1)) '$MILTER_LOG' | grep -E ' rule=spoofing ' | grep -E 'dry_run=yes' | grep -c 'would reject') -ge 1 ]"
it_end

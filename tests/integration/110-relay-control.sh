#!/bin/bash
# 110-relay-control: weir-milter's relay rule (issue 3 spec, rule 1), with
# Postfix itself open (WEIR_STACK_POSTFIX_OPEN=1) so that the milter is the
# one deciding. Outside client = 127.0.0.2, trusted = 127.0.0.1, real SMTP
# AUTH (Cyrus sasldb) for the authenticated case.
#
# What Postfix 3.7 passes to the milter as the RCPT argument (the milter's
# own rcpts= log line, trusted client, checked by hand): exactly what the
# client typed, e.g. <user%evil.example@local.weir.test>,
# <"bob@evil"@local.weir.test> (quotes kept), <@hop.weir.test:bob@evil.example>
# (source route kept), <evil.example!bob@local.weir.test>, <bob@[127.0.0.9]>,
# <BOB@LOCAL.WEIR.TEST.> (case and trailing dot kept). Postfix itself
# refuses <bob@local..weir.test> (501 5.1.3 Bad recipient address syntax)
# before the milter sees it. Downstream, Postfix strips the source route
# (delivers to <bob@evil.example>) and the trailing dot.
. "$(dirname "$0")/lib.sh"
it_begin "relay control: outside clients may only send to local domains"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
it_start_policy_stack '
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test");
senders = {
  map = ( { login = "alice"; addresses = ("alice@local.weir.test"); } );
};
policy = { relay = "reject"; };
'

RELAY_TEXT="relay access denied: authenticate with SMTP AUTH or send from a trusted network"
ROUTE_TEXT="address routing (%, !, source route, quoted @, IP literal) is not accepted"
from=sender@$OTHER_DOMAIN

# --- outside client to non-local domains: refused at RCPT -------------------
for rcpt in "bob@$OTHER_DOMAIN" "bob@OTHER.WEIR.TEST." "bob@sub.$LOCAL_DOMAIN" \
	"bob@$LOCAL_DOMAIN.evil.example" "bob@evil-$LOCAL_DOMAIN" "bob@x$LOCAL_DOMAIN"; do
	log_mark
	smtp "relay-$rcpt" --from "$from" --to "$rcpt" --quit-after RCPT
	check "outside -> <$rcpt>: 550 5.7.1 relay access denied at RCPT" \
		reply_is RCPT "550 5.7.1 <$rcpt>: $RELAY_TEXT"
	check "outside -> <$rcpt>: one decision line rule=relay action=reject" \
		decision_is relay reject outside - "reply=\"550 5\\.7\\.1 <$(ere_quote "$rcpt")>: relay access denied"
done

# --- outside client to the local domain: accepted and delivered -------------
tok=$(token)
log_mark
check "outside -> <bob@$LOCAL_DOMAIN>: accepted (250 queued)" \
	smtp local-ok --from "$from" --to "bob@$LOCAL_DOMAIN" --header "Subject: $tok" --body "$tok"
check "outside -> <bob@$LOCAL_DOMAIN>: reaches the sink" wait_sink "$tok" 1 30
check "outside -> local: no reject decision" bash -c "! grep -q 'action=reject' <<<\"\$(tail -n +$((LOG_MARK + 1)) '$MILTER_LOG')\""

# --- trailing dot and mixed case are normalized: still local ---------------
tok=$(token)
log_mark
check "outside -> <BOB@LOCAL.WEIR.TEST.>: accepted as local" \
	smtp local-case --from "$from" --to "BOB@LOCAL.WEIR.TEST." --header "Subject: $tok" --body "$tok"
check "outside -> <BOB@LOCAL.WEIR.TEST.>: reaches the sink" wait_sink "$tok" 1 30
check "outside -> <BOB@LOCAL.WEIR.TEST.>: no relay decision" no_decision relay

# --- address tricks aimed at the local domain: refused by the milter --------
for rcpt in "user%evil.example@$LOCAL_DOMAIN" '"bob@evil.example"@'"$LOCAL_DOMAIN" \
	"@hop.weir.test:bob@evil.example" "@$LOCAL_DOMAIN:bob@$LOCAL_DOMAIN" \
	"evil.example!bob@$LOCAL_DOMAIN" "bob@[127.0.0.9]" "bob@[127.0.0.1]"; do
	log_mark
	smtp "trick-$RANDOM" --from "$from" --to "$rcpt" --quit-after RCPT
	check "outside -> <$rcpt>: 550 5.7.1 address routing ... is not accepted" \
		reply_is RCPT "550 5.7.1 <$rcpt>: $ROUTE_TEXT"
	check "outside -> <$rcpt>: one decision line rule=relay action=reject" \
		decision_is relay reject outside - "address routing"
done
# an empty label: Postfix refuses it itself before the milter sees it
log_mark
smtp trick-empty-label --from "$from" --to "bob@local..weir.test" --quit-after RCPT
check "outside -> <bob@local..weir.test>: refused (Postfix: 501 5.1.3, or the milter: 550 5.7.1)" \
	reply_matches RCPT "^(501 5\\.1\\.3 |550 5\\.7\\.1 <bob@local\\.\\.weir\\.test>: address routing)"
it_say "  (empty label: $(sw_reply RCPT))"

# a full message with a trick recipient next to a good one: only the good
# one gets through, nothing is relayed to the trick's real destination
tok=$(token)
log_mark
smtp trick-mixed --from "$from" --to "good@$LOCAL_DOMAIN,user%evil.example@$LOCAL_DOMAIN" \
	--header "Subject: $tok" --body "$tok"
check "mixed message: queued for the good recipient" test -n "$QID"
check "mixed message: the good copy reaches the sink" wait_sink "$tok" 1 30
check "mixed message: the sink got it for <good@$LOCAL_DOMAIN> only" \
	bash -c "f=\$(grep -lF '$tok' '$SINK_DIR'/*.eml); [ \"\$(grep -h '^X-Sink-Rcpt-To:' \$f | tr -d '\r')\" = 'X-Sink-Rcpt-To: <good@$LOCAL_DOMAIN>' ]"
check "mixed message: one relay reject decision" decision_is relay reject outside - "user%evil"

# --- trusted client to a non-local domain: accepted ------------------------
tok=$(token)
log_mark
check "trusted (127.0.0.1) -> <bob@$OTHER_DOMAIN>: accepted" \
	smtp trusted -i "$TRUSTED_IP" --from "$from" --to "bob@$OTHER_DOMAIN" --header "Subject: $tok" --body "$tok"
check "trusted -> other: reaches the sink" wait_sink "$tok" 1 30
check "trusted -> other: no relay decision" no_decision relay
check "trusted -> other: per-message line identity=trusted decision=accept" msg_decision accept 'identity=trusted'

# --- authenticated outside client to a non-local domain: accepted ------------
tok=$(token)
log_mark
check "AUTH alice from 127.0.0.2 -> <bob@$OTHER_DOMAIN>: accepted" \
	smtp auth -u alice --from "alice@$LOCAL_DOMAIN" --to "bob@$OTHER_DOMAIN" --header "Subject: $tok" --body "$tok"
check "AUTH alice: authentication succeeded (235)" auth_ok
check "AUTH alice -> other: reaches the sink" wait_sink "$tok" 1 30
check "AUTH alice -> other: no relay decision" no_decision relay
check "AUTH alice: per-message line auth=alice identity=authenticated login=alice" \
	msg_decision accept 'auth=alice( |$)' 'identity=authenticated' 'login=alice( |$)'

# --- a wrong password is not an identity --------------------------------------
log_mark
smtp badpass -a PLAIN -au alice -ap wrong --from "$from" --to "bob@$OTHER_DOMAIN" --quit-after RCPT
check "a wrong password: Postfix answers 535" grep -qE '^ *<\*\* +535 ' "$SW"
it_end

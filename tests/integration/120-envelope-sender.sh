#!/bin/bash
# 120-envelope-sender: rule 2 of the issue 3 spec. An authenticated client
# (real SMTP AUTH through Postfix + Cyrus sasldb) may use as MAIL FROM only
# the addresses senders.map allows its login: exact (case-insensitive),
# plus addressing (plus_separator "+"), domain form "@dom", subdomain form
# "@.dom", glob "*-noreply@dom". The null sender <> from an authenticated
# client is refused unless null_sender_allowed includes "authenticated".
. "$(dirname "$0")/lib.sh"
it_begin "envelope sender: an authenticated login may only use its own addresses"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"

CONF_BASE='
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test", ".sales.local.weir.test", "corp.weir.test");
senders = {
  map = (
    { login = "alice"; addresses = ("alice@local.weir.test", "@sales.local.weir.test", "@.corp.weir.test"); },
    { login = "app"; addresses = ("*-noreply@local.weir.test", "app?@local.weir.test"); }
  );
  plus_separator = "+";
};'
it_start_policy_stack "$CONF_BASE
policy = { envelope_sender = \"reject\"; null_sender = \"reject\"; null_sender_allowed = (\"trusted\", \"outside\"); };"

to=rcpt@$OTHER_DOMAIN
# allowed LOGIN ADDR: MAIL FROM accepted, message delivered, no envelope_sender reject
allowed() {
	local login=$1 addr=$2 tok
	tok=$(token)
	log_mark
	smtp "ok-$login-$RANDOM" -u "$login" --from "$addr" --to "$to" --header "Subject: $tok" --body "$tok"
	check "$login: authenticated (235)" auth_ok
	check "$login as <$addr>: MAIL FROM accepted (250)" reply_matches MAIL '^250 '
	check "$login as <$addr>: message queued and reaches the sink" wait_sink "$tok" 1 30
	check "$login as <$addr>: no envelope_sender decision" no_decision envelope_sender
}
# refused LOGIN ADDR: 550 5.7.1 LOGIN may not send as <ADDR> at MAIL
refused() {
	local login=$1 addr=$2
	log_mark
	smtp "no-$login-$RANDOM" -u "$login" --from "$addr" --to "$to" --quit-after RCPT
	check "$login: authenticated (235)" auth_ok
	check "$login as <$addr>: 550 5.7.1 $login may not send as <$addr> at MAIL" \
		reply_is MAIL "550 5.7.1 $login may not send as <$addr>: use one of your own addresses"
	check "$login as <$addr>: one decision line rule=envelope_sender action=reject" \
		decision_is envelope_sender reject authenticated "$login" "may not send as <$(ere_quote "$addr")>"
}

allowed alice "alice@$LOCAL_DOMAIN"
allowed alice "ALICE@LOCAL.WEIR.TEST"
allowed alice "alice+tag@$LOCAL_DOMAIN"
allowed alice "anyone@sales.$LOCAL_DOMAIN"
allowed alice "x@corp.weir.test"
allowed alice "x@eu.corp.weir.test"
refused alice "bob@$LOCAL_DOMAIN"
refused alice "alice@$OTHER_DOMAIN"
refused alice "alice@sub.$LOCAL_DOMAIN"
refused alice "anyone@eu.sales.$LOCAL_DOMAIN"
refused alice "alicex@$LOCAL_DOMAIN"
refused alice "bob+alice@$LOCAL_DOMAIN"
refused alice "x@evilcorp.weir.test"
allowed app "billing-noreply@$LOCAL_DOMAIN"
allowed app "app1@$LOCAL_DOMAIN"
refused app "billing@$LOCAL_DOMAIN"
refused app "billing-noreply@$OTHER_DOMAIN"
refused app "app12@$LOCAL_DOMAIN"
refused app "alice@$LOCAL_DOMAIN"
# bob has no entry in senders at all: nothing is allowed
refused bob "bob@$LOCAL_DOMAIN"



log_mark
smtp null-auth -u alice --from "<>" --to "$to" --quit-after RCPT
check "alice with MAIL FROM:<>: 550 5.7.1 alice may not use the null sender <>" \
	reply_is MAIL "550 5.7.1 alice may not use the null sender <>"
check "alice with <>: one decision line rule=null_sender action=reject" \
	decision_is null_sender reject authenticated alice
tok=$(token)
log_mark
check "trusted client with MAIL FROM:<>: accepted (trusted is in null_sender_allowed)" \
	smtp null-trusted -i "$TRUSTED_IP" --from "<>" --to "$to" --header "Subject: $tok" --body "$tok"
check "trusted <>: reaches the sink" wait_sink_null "$tok"
check "trusted <>: no null_sender decision" no_decision null_sender

# --- null_sender_allowed with "authenticated": alice may use <> --------------
it_restart_policy_stack "$CONF_BASE
policy = { null_sender_allowed = (\"authenticated\"); };"
tok=$(token)
log_mark
check "null_sender_allowed=(authenticated): alice with MAIL FROM:<> accepted" \
	smtp null-auth2 -u alice --from "<>" --to "$to" --header "From: <alice@$LOCAL_DOMAIN>" --header "Subject: $tok" --body "$tok"
check "alice <>: reaches the sink" wait_sink_null "$tok"
check "alice <>: no null_sender decision" no_decision null_sender
log_mark
smtp null-outside2 --from "<>" --to "bob@$LOCAL_DOMAIN" --quit-after RCPT
check "null_sender_allowed=(authenticated): an outside client with <> is refused (550 5.7.1 ... may not use the null sender <>)" \
	reply_matches MAIL '^550 5\.7\.1 .* may not use the null sender <>'
check "outside <>: one decision line rule=null_sender action=reject identity=outside" \
	decision_is null_sender reject outside -
it_end

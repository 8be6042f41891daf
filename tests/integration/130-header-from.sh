#!/bin/bash
# 130-header-from: rule 3 of the issue 3 spec, checked at end of message.
# An authenticated client (alice, real SMTP AUTH) needs exactly one From
# header with exactly one mailbox whose address alice may use, and no
# display name holding another address (also RFC 2047 encoded); a Sender
# header is checked the same way. A trusted client with
# trusted_header_from = "local" needs a From in a local domain.
# Messages are crafted whole (swaks --data) so the headers are exact.
. "$(dirname "$0")/lib.sh"
it_begin "header From (and Sender) of authenticated and trusted clients"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"

CONF_BASE='
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test");
senders = {
  map = (
    { login = "alice"; addresses = ("alice@local.weir.test", "@sales.local.weir.test"); }
  );
  plus_separator = "+";
};'
it_start_policy_stack "$CONF_BASE
policy = { header_from = \"reject\"; trusted_header_from = \"any\"; };"

A=alice@$LOCAL_DOMAIN B=bob@$LOCAL_DOMAIN
to=rcpt@$OTHER_DOMAIN
N=0
# send_raw IP LOGIN TOKEN HEADERLINES...: MAIL FROM alice (or the trusted
# client's x@other), the message built by raw_msg; LOGIN "-" = no AUTH
send_raw() {
	local ip=$1 login=$2 tok=$3 f
	shift 3
	N=$((N + 1))
	f=$D/msg-$N.eml
	raw_msg "" "$tok" "$@" >"$f"
	if [ "$login" = - ]; then
		smtp "hdr-$N" -i "$ip" --from "x@$OTHER_DOMAIN" --to "$to" --data "$f"
	else
		smtp "hdr-$N" -i "$ip" -u "$login" --from "$A" --to "$to" --data "$f"
	fi
}
# good DESC HEADERLINES...: alice's message is accepted and delivered
good() {
	local desc=$1 tok
	shift
	tok=$(token)
	log_mark
	send_raw "$OUTSIDE_IP" alice "$tok" "$@"
	check "$desc: accepted at end of data (250)" reply_matches DATA '^250 '
	check "$desc: reaches the sink" wait_sink "$tok" 1 30
	check "$desc: no header_from decision" no_decision header_from
}
# bad DESC REPLY HEADERLINES...: alice's message is refused at end of data
# with REPLY (a fixed prefix), one decision line, nothing delivered
bad() {
	local desc=$1 want=$2 tok
	shift 2
	tok=$(token)
	log_mark
	send_raw "$OUTSIDE_IP" alice "$tok" "$@"
	check "$desc: AUTH ok and MAIL FROM accepted" bash -c "grep -qE '^ *<- +235 ' '$SW' && grep -qE '^ *<- +250 2\.1\.0' '$SW'"
	check "$desc: $want" reply_is DATA "$want"
	check "$desc: one decision line rule=header_from action=reject" \
		decision_is header_from reject authenticated alice
	check "$desc: not delivered" sink_none_with "$tok" 1
}

good "From: alice" "From: Alice Example <$A>"
good "From: bare address" "From: $A"
good "From: ALICE@LOCAL.WEIR.TEST (case)" "From: <ALICE@LOCAL.WEIR.TEST>"
good "From: alice+news (plus addressing)" "From: <alice+news@$LOCAL_DOMAIN>"
good "From: domain form (@sales)" "From: Sales <orders@sales.$LOCAL_DOMAIN>"
good "From: display name = the same address" "From: \"$A\" <$A>"
good "From: alice with a comment" "From: $A (Alice Example)"
good "From alice + Sender alice" "From: <$A>" "Sender: <alice+list@$LOCAL_DOMAIN>"

bad "From: bob" "550 5.7.1 alice may not send as <$B> (header From)" "From: Bob <$B>"
bad "From: other domain" "550 5.7.1 alice may not send as <alice@$OTHER_DOMAIN> (header From)" "From: <alice@$OTHER_DOMAIN>"
bad "two From headers" "550 5.7.1 message has 2 From headers; exactly one is required" "From: <$A>" "From: <$A>"
bad "two From headers, second is bob" "550 5.7.1 message has 2 From headers; exactly one is required" "From: <$A>" "From: <$B>"
bad "From with two mailboxes" "550 5.7.1 From header holds 2 mailboxes; exactly one is required" "From: <$A>, <$B>"
bad "From with a group of two" "550 5.7.1 From header holds 2 mailboxes; exactly one is required" "From: team: <$A>, <$B>;"
bad "no From header" "550 5.7.1 message has no From header; exactly one is required"
bad "From unparseable (no closing >)" "550 5.7.1 From header cannot be parsed: " "From: Alice <$A"
bad "From empty" "550 5.7.1 From header cannot be parsed: " "From: "
# the display name hides another address: the spec's reply names <addr>;
# accept either the mailbox's or the hidden address there
DN="550 5.7.1 From header display name holds an address other than <"
bad "display name holds bob (quoted)" "$DN" "From: \"$B\" <$A>"
bad "display name holds bob (RFC 2047 B)" "$DN" "From: =?UTF-8?B?$(printf %s "$B" | base64 -w0)?= <$A>"
bad "display name holds bob (RFC 2047 Q)" "$DN" "From: =?UTF-8?Q?bob=40local.weir.test?= <$A>"
bad "display name holds bob among words (RFC 2047 Q)" "$DN" "From: =?ISO-8859-1?Q?Bob_=3Cbob=40local=2Eweir=2Etest=3E?= <$A>"
bad "Sender: bob" "550 5.7.1 alice may not send as <$B> (header Sender)" "From: <$A>" "Sender: <$B>"
bad "two Sender headers" "550 5.7.1 message has 2 Sender headers; exactly one is required" "From: <$A>" "Sender: <$A>" "Sender: <$A>"
bad "Sender with two mailboxes" "550 5.7.1 Sender header holds 2 mailboxes; exactly one is required" "From: <$A>" "Sender: <$A>, <$B>"

# trusted client, trusted_header_from = "any": any From passes
tok=$(token)
log_mark
send_raw "$TRUSTED_IP" - "$tok" "From: <someone@$OTHER_DOMAIN>"
check "trusted, trusted_header_from=any, From outside local domains: accepted" reply_matches DATA '^250 '
check "trusted, any: reaches the sink" wait_sink "$tok" 1 30
check "trusted, any: no header_from decision" no_decision header_from

# --- trusted_header_from = "local" ------------------------------------------
it_restart_policy_stack "$CONF_BASE
policy = { header_from = \"reject\"; trusted_header_from = \"local\"; };"
tok=$(token)
log_mark
send_raw "$TRUSTED_IP" - "$tok" "From: <someone@$OTHER_DOMAIN>"
check "trusted, trusted_header_from=local, From in another domain: 550 5.7.1 header From <someone@$OTHER_DOMAIN> is not in a local domain" \
	reply_is DATA "550 5.7.1 header From <someone@$OTHER_DOMAIN> is not in a local domain"
check "trusted, local: one decision line rule=header_from action=reject identity=trusted" \
	decision_is header_from reject trusted -
check "trusted, local, refused: not delivered" sink_none_with "$tok" 1
for from in "<anyone@$LOCAL_DOMAIN>" "<ANYONE@LOCAL.WEIR.TEST.>"; do
	tok=$(token)
	log_mark
	send_raw "$TRUSTED_IP" - "$tok" "From: $from"
	check "trusted, local, From $from: accepted" reply_matches DATA '^250 '
	check "trusted, local, From $from: reaches the sink" wait_sink "$tok" 1 30
	check "trusted, local, From $from: no header_from decision" no_decision header_from
done
tok=$(token)
log_mark
send_raw "$TRUSTED_IP" - "$tok" "From: <$A>" "From: <$A>"
check "trusted, local, two From headers: 550 5.7.1 message has 2 From headers" \
	reply_is DATA "550 5.7.1 message has 2 From headers; exactly one is required"
it_end

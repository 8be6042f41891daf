#!/bin/bash
# 140-spoofing: rule 4 of the issue 3 spec. An outside client (no AUTH,
# not in trusted_networks) may not use an address in a local domain, neither
# as MAIL FROM (refused at MAIL) nor as header From (refused at end of
# message). The same addresses are fine once authenticated or trusted.
. "$(dirname "$0")/lib.sh"
it_begin "spoofing: outside clients may not use local addresses"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
it_start_policy_stack '
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test", ".corp.weir.test");
senders = {
  map = ( { login = "alice"; addresses = ("alice@local.weir.test"); } );
};
policy = { spoofing = "reject"; };
'
A=alice@$LOCAL_DOMAIN
rcpt=bob@$LOCAL_DOMAIN    # local: the relay rule lets outside clients send here
TXT="is a local address: authenticate with SMTP AUTH to send as it"

for from in "$A" "ALICE@LOCAL.WEIR.TEST" "alice@LOCAL.weir.test." "x@corp.weir.test" "x@eu.corp.weir.test"; do
	log_mark
	smtp "env-$RANDOM" --from "$from" --to "$rcpt" --quit-after RCPT
	check "outside, MAIL FROM:<$from>: 550 5.7.1 <$from> $TXT" \
		reply_is MAIL "550 5.7.1 <$from> $TXT"
	check "outside, MAIL FROM:<$from>: one decision line rule=spoofing action=reject identity=outside" \
		decision_is spoofing reject outside - "reply=\"550 5\\.7\\.1 <$(ere_quote "$from")> is a local address"
done

# an outside envelope sender is fine, and so is an outside header From
tok=$(token)
log_mark
f=$D/msg-out.eml
raw_msg "From: <x@$OTHER_DOMAIN>" "$tok" >"$f"
check "outside, MAIL FROM and From in another domain: accepted" \
	smtp ok-outside --from "x@$OTHER_DOMAIN" --to "$rcpt" --data "$f"
check "outside, other domain: reaches the sink" wait_sink "$tok" 1 30
check "outside, other domain: no spoofing decision" no_decision spoofing

# header From in a local domain with an outside envelope sender: refused at end of message
for hf in "<$A>" "Alice <ALICE@LOCAL.WEIR.TEST>" "<x@eu.corp.weir.test>"; do
	tok=$(token)
	log_mark
	f=$D/msg-$RANDOM.eml
	raw_msg "From: $hf" "$tok" >"$f"
	addr=$(printf '%s' "$hf" | sed 's/.*<\(.*\)>.*/\1/')
	smtp "hdr-$RANDOM" --from "x@$OTHER_DOMAIN" --to "$rcpt" --data "$f"
	check "outside, header From: $hf: MAIL FROM and RCPT accepted" \
		bash -c "grep -qE '^ *<- +250 2\.1\.0' '$SW' && grep -qE '^ *<- +250 2\.1\.5' '$SW'"
	# the spec does not say whether <addr> keeps the header's letter case
	check "outside, header From: $hf: 550 5.7.1 <$addr> $TXT at end of data" \
		reply_is_ci DATA "550 5.7.1 <$addr> $TXT"
	check "outside, header From: $hf: one decision line rule=spoofing action=reject" \
		decision_is spoofing reject outside - "is a local address"
	check "outside, header From: $hf: not delivered" sink_none_with "$tok" 1
done

# the same local address, authenticated or trusted: no spoofing
tok=$(token)
log_mark
f=$D/msg-auth.eml
raw_msg "From: <$A>" "$tok" >"$f"
check "alice (AUTH) as <$A>, From <$A>: accepted" smtp auth -u alice --from "$A" --to "$rcpt" --data "$f"
check "alice: reaches the sink" wait_sink "$tok" 1 30
check "alice: no spoofing decision" no_decision spoofing
tok=$(token)
log_mark
f=$D/msg-trusted.eml
raw_msg "From: <$A>" "$tok" >"$f"
check "trusted client as <$A>, From <$A>: accepted" smtp trusted -i "$TRUSTED_IP" --from "$A" --to "$rcpt" --data "$f"
check "trusted: reaches the sink" wait_sink "$tok" 1 30
check "trusted: no spoofing decision" no_decision spoofing
it_end

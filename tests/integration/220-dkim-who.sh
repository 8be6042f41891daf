#!/bin/bash
# 220-dkim-who: who is signed (issue 4 spec, "Who is signed", "Alignment").
# Signed: an authenticated client (alice) whose header From passed rule 3;
# a trusted client (127.0.0.1) whose From domain is in dkim.sign or when
# dkim.fallback_domain applies. Never signed: a From alice may not use
# (even with policy.header_from = "log", so the message goes through), a
# From header that is missing or holds two mailboxes, outside clients
# (127.0.0.2, WEIR_STACK_POSTFIX_OPEN), a From domain with no key and no
# fallback. Each unsigned message has "dkim=unsigned dkim_reason=..." in
# the milter log. Alignment: log (dkim_alignment=fail), warn, tempfail
# (451 4.7.1 for outgoing mail only).
. "$(dirname "$0")/lib.sh"
it_begin "DKIM: which messages are signed, fallback domain, alignment"
it_need_binaries milter agent
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
dkim_need_tools

dkim_keydir
it_say "keys made with: $(dkim_keygen_how)"
dkim_make_key local.weir.test rsa1 rsa || it_abort "cannot make a key"
dkim_make_key partner.weir.test p1 rsa || it_abort "cannot make a key"
K=$IT_KEYDIR
PARTNER=partner.weir.test NOKEY=nokey.weir.test UNLISTED=unlisted.weir.test

conf() { # FALLBACK ALIGNMENT
	cat <<CONF
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test");
senders = {
  map = (
    { login = "alice"; addresses = ("alice@local.weir.test", "@sub.local.weir.test", "@nokey.weir.test"); }
  );
};
policy = { header_from = "log"; trusted_header_from = "any"; };
dkim = {
  authserv_id = "relay.weir.test";
  sign = (
    { domain = "local.weir.test"; subdomains = true;
      keys = ( { selector = "rsa1"; algorithm = "rsa-sha256"; key = "$K/local.weir.test.rsa1.pem"; } ); },
    { domain = "partner.weir.test";
      keys = ( { selector = "p1"; algorithm = "rsa-sha256"; key = "$K/partner.weir.test.p1.pem"; } ); }
  );
  fallback_domain = "$1";
  alignment = "$2";
};
CONF
}

N=0
# send IP LOGIN MAILFROM RCPT TOKEN HEADERLINES...: a message built by
# raw_msg (HEADERLINES hold the From header(s)); LOGIN "-" = no AUTH
send() {
	local ip=$1 login=$2 mf=$3 rcpt=$4 tok=$5 f
	shift 5
	N=$((N + 1))
	f=$D/msg-$N.eml
	raw_msg "" "$tok" "$@" >"$f"
	if [ "$login" = - ]; then
		smtp "who-$N" -i "$ip" --from "$mf" --to "$rcpt" --data "$f"
	else
		smtp "who-$N" -i "$ip" -u "$login" --from "$mf" --to "$rcpt" --data "$f"
	fi
}

reason_logged() { # the message line says dkim=unsigned with a reason
	dkim_log_has 'dkim=unsigned dkim_reason="[^"]+"' || return 1
	it_say "     milter said: $(log_since | grep -oE 'dkim=unsigned dkim_reason="[^"]+"' | tail -n 1)"
}

# unsigned DESC IP LOGIN MAILFROM RCPT HEADERLINES...: accepted, delivered,
# no DKIM-Signature, dkim=unsigned with a reason in the log
unsigned() {
	local desc=$1 tok f
	shift
	tok=$(token)
	log_mark
	send "$1" "$2" "$3" "$4" "$tok" "${@:5}"
	check "$desc: accepted (250)" reply_matches DATA '^250 '
	check "$desc: reaches the sink" wait_sink "$tok" 1 30
	f=$(sink_file "$tok")
	check "$desc: no DKIM-Signature in the stored copy" dkim_no_sig "${f:-/nonexistent}"
	check "$desc: milter logs dkim=unsigned dkim_reason=\"...\"" reason_logged
	check "$desc: milter does not log dkim=signed" dkim_log_lacks 'dkim=signed'
}

# signed DESC D S IP LOGIN MAILFROM RCPT HEADERLINES...: accepted, one
# signature d=D s=S that both verifiers accept, dkim=signed d=D s=S logged
signed() {
	local desc=$1 d=$2 s=$3 tok f
	shift 3
	tok=$(token)
	log_mark
	send "$1" "$2" "$3" "$4" "$tok" "${@:5}"
	check "$desc: accepted (250)" reply_matches DATA '^250 '
	check "$desc: reaches the sink" wait_sink "$tok" 1 30
	f=$(sink_file "$tok")
	f=${f:-/nonexistent}
	check "$desc: signed d=$d s=$s" dkim_sigs_are "$f" "d=$d s=$s a=rsa-sha256 c=relaxed/relaxed"
	check "$desc: dkimpy verifies it" verify_py "$f"
	check "$desc: Mail::DKIM verifies it" verify_pl "$f"
	check "$desc: milter logs dkim=signed d=$d s=$s (spec format)" dkim_log_has "dkim=signed d=$(ere_quote "$d") s=$s( |$)"
}

A=alice@$LOCAL_DOMAIN
TO=rcpt@$OTHER_DOMAIN
LTO=rcpt@$LOCAL_DOMAIN

# --- stack 1: no fallback, alignment = log ----------------------------------
it_start_policy_stack "$(conf "" log)" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"

signed "alice, From alice@local (control)" "$LOCAL_DOMAIN" rsa1 \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: Alice <$A>"
check "alice, From alice@local: aligned, no dkim_alignment=fail" dkim_log_lacks 'dkim_alignment=fail'

signed "alice, From x@sub.local (subdomains = true)" "$LOCAL_DOMAIN" rsa1 \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: <x@sub.$LOCAL_DOMAIN>"
check "alice, From x@sub.local: aligned (relaxed), no dkim_alignment=fail" dkim_log_lacks 'dkim_alignment=fail'

unsigned "alice, From bob@local (not hers; header_from = log)" \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: Bob <bob@$LOCAL_DOMAIN>"
check "alice, From bob@local: the header_from rule logged (action=log)" \
	decision_is header_from log authenticated alice

unsigned "alice, two From headers (header_from = log)" \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: <$A>" "From: <$A>"
unsigned "alice, From with two mailboxes (header_from = log)" \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: <$A>, <alice+two@$LOCAL_DOMAIN>"
unsigned "alice, no From header (header_from = log)" \
	"$OUTSIDE_IP" alice "$A" "$TO"

unsigned "alice, From alice@nokey (no key, no fallback)" \
	"$OUTSIDE_IP" alice "alice@$NOKEY" "$TO" "From: <alice@$NOKEY>"
check "alice, From alice@nokey: dkim_alignment=fail in the message line" \
	dkim_log_has ' decision=[a-z]+ .*dkim_alignment=fail|dkim_alignment=fail.* decision=[a-z]+'

unsigned "outside client, From x@partner (a signing domain), to a local domain" \
	"$OUTSIDE_IP" - "x@$PARTNER" "$LTO" "From: <x@$PARTNER>"

signed "trusted client, From x@partner (in the signing table)" "$PARTNER" p1 \
	"$TRUSTED_IP" - "x@$PARTNER" "$TO" "From: <x@$PARTNER>"
signed "trusted client, From x@local (in the signing table)" "$LOCAL_DOMAIN" rsa1 \
	"$TRUSTED_IP" - "x@$PARTNER" "$TO" "From: <x@$LOCAL_DOMAIN>"
unsigned "trusted client, From x@unlisted (no key, no fallback)" \
	"$TRUSTED_IP" - "x@$UNLISTED" "$TO" "From: <x@$UNLISTED>"

# trusted + From with two mailboxes: never signed (refusing it is fine too)
tok=$(token)
log_mark
send "$TRUSTED_IP" - "x@$PARTNER" "$TO" "$tok" "From: <x@$PARTNER>, <y@$PARTNER>"
if reply_matches DATA '^250 ' >/dev/null; then
	check "trusted, From with two mailboxes: reaches the sink" wait_sink "$tok" 1 30
	f=$(sink_file "$tok")
	check "trusted, From with two mailboxes: not signed" dkim_no_sig "${f:-/nonexistent}"
	check "trusted, From with two mailboxes: dkim=unsigned with a reason" reason_logged
else
	check "trusted, From with two mailboxes: refused (5xx), so not signed" reply_matches DATA '^5'
fi

# --- stack 2: fallback_domain = local.weir.test, alignment = warn ----------
it_restart_policy_stack "$(conf "$LOCAL_DOMAIN" warn)" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"
signed "fallback: alice, From alice@nokey signed with the fallback domain" "$LOCAL_DOMAIN" rsa1 \
	"$OUTSIDE_IP" alice "alice@$NOKEY" "$TO" "From: <alice@$NOKEY>"
check "fallback: d=local does not align with nokey: dkim_alignment=fail" dkim_log_has 'dkim_alignment=fail'
check "alignment = warn: a warning line" dkim_log_has '[Ww]arn.*(align|dkim)|(align|dkim).*[Ww]arn'
signed "fallback: trusted client, From x@unlisted signed with the fallback domain" "$LOCAL_DOMAIN" rsa1 \
	"$TRUSTED_IP" - "x@$UNLISTED" "$TO" "From: <x@$UNLISTED>"
signed "fallback: own key still wins: trusted, From x@partner" "$PARTNER" p1 \
	"$TRUSTED_IP" - "x@$PARTNER" "$TO" "From: <x@$PARTNER>"
unsigned "fallback: outside client, From x@unlisted, still not signed" \
	"$OUTSIDE_IP" - "x@$UNLISTED" "$LTO" "From: <x@$UNLISTED>"
unsigned "fallback: alice, From bob@local (not hers) still not signed" \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: <bob@$LOCAL_DOMAIN>"

# --- stack 3: alignment = tempfail ------------------------------------------
it_restart_policy_stack "$(conf "" tempfail)" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"
TF='^451 4\.7\.1 DKIM signature does not align with From domain <?nokey\.weir\.test>?: add a key for it'
tok=$(token)
log_mark
send "$OUTSIDE_IP" alice "alice@$NOKEY" "$TO" "$tok" "From: <alice@$NOKEY>"
check "tempfail: alice, From alice@nokey (unaligned): 451 4.7.1 DKIM signature does not align with From domain nokey.weir.test: add a key for it" \
	reply_matches DATA "$TF"
check "tempfail: the unaligned message is not delivered" sink_none_with "$tok" 2
tok=$(token)
log_mark
send "$TRUSTED_IP" - "x@$UNLISTED" "$TO" "$tok" "From: <x@$UNLISTED>"
check "tempfail: trusted, From x@unlisted (unaligned): 451 4.7.1" \
	reply_matches DATA '^451 4\.7\.1 DKIM signature does not align with From domain <?unlisted\.weir\.test>?: add a key for it'
signed "tempfail: alice, From alice@local (aligned) is accepted and signed" "$LOCAL_DOMAIN" rsa1 \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: <$A>"
signed "tempfail: alice, From x@sub.local (aligned, relaxed) is accepted" "$LOCAL_DOMAIN" rsa1 \
	"$OUTSIDE_IP" alice "$A" "$TO" "From: <x@sub.$LOCAL_DOMAIN>"
unsigned "tempfail: outside mail (not outgoing) is not held to alignment" \
	"$OUTSIDE_IP" - "x@$UNLISTED" "$LTO" "From: <x@$UNLISTED>"
it_end

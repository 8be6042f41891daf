#!/bin/bash
# 230-dkim-verify: weir-milter verifies the DKIM signatures of mail from
# outside clients (issue 4 spec, "Verification"). Messages are signed with
# dkimpy (tests/dkim/sign.py) under outside.weir.test, whose keys the
# stack's DNS publishes, and sent from 127.0.0.2 (an outside client; open
# Postfix) to a local domain. The stored copy must have exactly one
# Authentication-Results header with weir's authserv-id
# (relay.weir.test) and the right dkim= result per signature: pass (RSA,
# Ed25519, both), fail (body changed after signing), none (no signature),
# permerror (no key in DNS), temperror (the key's zone is delegated to a
# name server that does not exist). An Authentication-Results header with
# weir's authserv-id sent by the client is removed; one with another
# authserv-id stays. Outgoing (trusted) mail is neither given weir's
# header nor stripped of one.
. "$(dirname "$0")/lib.sh"
it_begin "DKIM verification of outside mail, Authentication-Results"
it_need_binaries milter agent
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
dkim_need_tools

OUT=outside.weir.test
dkim_keydir
it_say "keys made with: $(dkim_keygen_how)"
dkim_make_key local.weir.test rsa1 rsa || it_abort "cannot make a key"
dkim_make_key $OUT o1 rsa || it_abort "cannot make a key"
dkim_make_key $OUT oed ed25519 || it_abort "cannot make a key"
DKIM_PUBLISH=0 dkim_make_key $OUT gone rsa || it_abort "cannot make a key"
DKIM_PUBLISH=0 dkim_make_key dead.weir.test d1 rsa || it_abort "cannot make a key"
# dead.weir.test is delegated to a name server that does not exist: a key
# lookup under it cannot get an answer (temperror, not permerror)
printf 'dead.weir.test. IN NS ns.nowhere.invalid.\n' >>"$IT_KEYDIR/zone.extra"
K=$IT_KEYDIR
# the sign.py processes read the keys as root; make them readable for the
# tests too (they stay 0600 owned by weir, root reads them anyway)

it_start_policy_stack "
trusted_networks = (\"127.0.0.1/32\", \"::1/128\");
local_domains = (\"local.weir.test\");
dkim = {
  authserv_id = \"relay.weir.test\";
  sign = (
    { domain = \"local.weir.test\";
      keys = ( { selector = \"rsa1\"; algorithm = \"rsa-sha256\"; key = \"$K/local.weir.test.rsa1.pem\"; } ); }
  );
  verify = true;
  max_signatures = 5;
};" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"

AUTHSERV=relay.weir.test
OURS='^relay\.weir\.test( [0-9]+)? *;'
N=0

# mk TOKEN HEADERLINES...: an unsigned message from x@outside.weir.test
mk() {
	local tok=$1 h
	shift
	printf 'From: Xavier <x@%s>\r\n' "$OUT"
	for h in "$@"; do printf '%s\r\n' "$h"; done
	printf 'To: <rcpt@%s>\r\n' "$LOCAL_DOMAIN"
	printf 'Subject: weir inbound test %s\r\n' "$tok"
	printf 'Date: %s\r\n' "$(date -R)"
	printf 'Message-ID: <%s@%s>\r\n' "$tok" "$OUT"
	printf 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n'
	printf '\r\nbody %s\r\nsecond line\r\n' "$tok"
}

# sign IN OUT DOMAIN SELECTOR [ALG]: sign IN with dkimpy into OUT
sign() {
	local alg=${5:-rsa-sha256}
	$PY "$DKIM_HOME/sign.py" --key "$K/$3.$4.pem" --domain "$3" --selector "$4" \
		--algorithm "$alg" "$1" "$2"
}

# deliver NAME FILE [IP]: send FILE (made with the token in $tok) from IP
# (default outside) to rcpt@local; sets F to the stored copy
# (/nonexistent if none). Checks 250 and delivery.
deliver() {
	local name=$1 file=$2 ip=${3:-$OUTSIDE_IP}
	log_mark
	smtp "$name" -i "$ip" --from "x@$OUT" --to "rcpt@$LOCAL_DOMAIN" --data "$file"
	check "$name: accepted (250)" reply_matches DATA '^250 '
	check "$name: reaches the sink" wait_sink "$tok" 1 30
	F=$(sink_file "$tok")
	F=${F:-/nonexistent}
}

# ours FILE: weir's Authentication-Results headers of FILE
ours() {
	ar_headers "$1" | grep -E "$OURS"
}

# one_ar_matches FILE ERE...: exactly one A-R with weir's authserv-id, and
# it matches every ERE
one_ar_matches() {
	local f=$1 got n e
	shift
	got=$(ours "$f")
	n=$(printf '%s\n' "$got" | grep -c .)
	if [ "$n" != 1 ]; then
		echo "    want exactly 1 Authentication-Results: $AUTHSERV; ... in $f, found $n:"
		ar_headers "$f" | sed 's/^/      /'
		return 1
	fi
	for e in "$@"; do
		printf '%s\n' "$got" | grep -qE -- "$e" && continue
		echo "    weir's Authentication-Results does not match /$e/: $got"
		return 1
	done
}

# count_results FILE RESULT: how many dkim=RESULT weir's header holds
count_results() {
	ours "$1" | grep -oE "dkim=$2( |;|$)" | wc -l
}

# --- pass: RSA ----------------------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/signed-$N.eml" $OUT o1
deliver "rsa-pass" "$D/signed-$N.eml"
check "rsa: one A-R $AUTHSERV with dkim=pass header.d=$OUT header.s=o1 header.a=rsa-sha256 header.b=" \
	one_ar_matches "$F" 'dkim=pass header\.d=outside\.weir\.test' 'header\.s=o1( |;|$)' \
	'header\.a=rsa-sha256' 'header\.b=[A-Za-z0-9+/]{8}'
check "rsa: exactly one dkim= result" [ "$(ours "$F" | grep -oE 'dkim=' | wc -l)" = 1 ]
check "rsa: the stored copy still verifies (dkimpy)" verify_py "$F"
check "rsa: milter logs dkim_verify=pass d=$OUT s=o1" dkim_log_has "dkim_verify=pass d=outside\.weir\.test s=o1( |$)"
check "rsa: outside mail is not signed by weir" bash -c "[ \"\$(grep -ci '^DKIM-Signature:' '$F')\" = 1 ]"

# --- pass: Ed25519 ------------------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/signed-$N.eml" $OUT oed ed25519-sha256
deliver "ed25519-pass" "$D/signed-$N.eml"
check "ed25519: one A-R $AUTHSERV with dkim=pass header.d=$OUT header.s=oed header.a=ed25519-sha256" \
	one_ar_matches "$F" 'dkim=pass header\.d=outside\.weir\.test' 'header\.s=oed( |;|$)' 'header\.a=ed25519-sha256'

# --- pass: RSA + Ed25519 --------------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/s1-$N.eml" $OUT o1 &&
	sign "$D/s1-$N.eml" "$D/signed-$N.eml" $OUT oed ed25519-sha256
deliver "dual-pass" "$D/signed-$N.eml"
check "dual: one A-R $AUTHSERV" one_ar_matches "$F" 'dkim=pass'
check "dual: two dkim=pass results in it" [ "$(count_results "$F" pass)" = 2 ]
check "dual: milter logs dkim_verify=pass for s=o1 and s=oed" \
	bash -c "grep -qE 'dkim_verify=pass d=outside\.weir\.test s=o1( |$)' <<<\"\$1\" && grep -qE 'dkim_verify=pass d=outside\.weir\.test s=oed( |$)' <<<\"\$1\"" _ "$(log_since)"

# --- fail: body changed after signing --------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/s1-$N.eml" $OUT o1 &&
	sed 's/^second line/Second line/' "$D/s1-$N.eml" >"$D/signed-$N.eml"
deliver "rsa-tampered" "$D/signed-$N.eml"
check "tampered: one A-R $AUTHSERV with dkim=fail header.d=$OUT" \
	one_ar_matches "$F" 'dkim=fail( |;).*header\.d=outside\.weir\.test|dkim=fail header\.d=outside\.weir\.test'
check "tampered: no dkim=pass" [ "$(count_results "$F" pass)" = 0 ]
check "tampered: milter logs dkim_verify=fail" dkim_log_has 'dkim_verify=fail d=outside\.weir\.test'

# --- fail: a signed header changed -------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/s1-$N.eml" $OUT oed ed25519-sha256 &&
	sed 's/^Subject: weir inbound test/Subject: weir INBOUND test/' "$D/s1-$N.eml" >"$D/signed-$N.eml"
deliver "ed25519-subject-changed" "$D/signed-$N.eml"
check "ed25519, Subject changed: one A-R $AUTHSERV with dkim=fail" one_ar_matches "$F" 'dkim=fail'

# --- none ----------------------------------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/signed-$N.eml"
deliver "unsigned" "$D/signed-$N.eml"
check "unsigned: one A-R $AUTHSERV with dkim=none" one_ar_matches "$F" 'dkim=none'

# --- forged A-R headers ------------------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" "Authentication-Results: $AUTHSERV; dkim=pass header.d=$OUT header.s=forged" \
	"Authentication-Results: mx.elsewhere.example; spf=pass smtp.mailfrom=x@$OUT" >"$D/signed-$N.eml"
deliver "forged-ar" "$D/signed-$N.eml"
check "forged A-R: the client's '$AUTHSERV; dkim=pass' header is gone" \
	bash -c "! grep -q 'header.s=forged' '$F'"
check "forged A-R: exactly one A-R $AUTHSERV, weir's own, dkim=none" one_ar_matches "$F" 'dkim=none'
check "forged A-R: the A-R of mx.elsewhere.example stays" \
	bash -c "grep -q '^Authentication-Results: mx.elsewhere.example; spf=pass' '$F'"

tok=$(token); N=$((N + 1))
mk "$tok" "Authentication-Results: RELAY.Weir.TEST; dkim=pass header.d=$OUT header.s=forgedcase" >"$D/signed-$N.eml"
deliver "forged-ar-case" "$D/signed-$N.eml"
check "forged A-R with authserv-id in other letter case (RFC 8601: case-insensitive) is gone" \
	bash -c "! grep -q 'header.s=forgedcase' '$F'"

tok=$(token); N=$((N + 1))
mk "$tok" "Authentication-Results: $AUTHSERV 1; dkim=pass header.d=$OUT header.s=forgedver" >"$D/in-$N.eml" &&
	sign "$D/in-$N.eml" "$D/signed-$N.eml" $OUT o1
deliver "forged-ar-version" "$D/signed-$N.eml"
check "forged A-R '$AUTHSERV 1;' (with a version) is gone" bash -c "! grep -q 'header.s=forgedver' '$F'"
check "forged A-R before a signature: weir's A-R says dkim=pass (the A-R was not signed)" \
	one_ar_matches "$F" 'dkim=pass header\.d=outside\.weir\.test'

# --- permerror: no key in DNS ------------------------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/signed-$N.eml" $OUT gone
check "DNS: gone._domainkey.$OUT has no TXT record" bash -c "[ -z \"\$(dig +short -p $DNS_PORT @127.0.0.1 TXT gone._domainkey.$OUT)\" ]"
deliver "key-missing" "$D/signed-$N.eml"
check "key missing from DNS: one A-R $AUTHSERV with dkim=permerror" one_ar_matches "$F" 'dkim=permerror'

# --- temperror: the key's zone does not answer -------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" >"$D/in-$N.eml" && sign "$D/in-$N.eml" "$D/signed-$N.eml" dead.weir.test d1
deliver "dns-dead" "$D/signed-$N.eml"
check "key's zone delegated nowhere: one A-R $AUTHSERV with dkim=temperror" one_ar_matches "$F" 'dkim=temperror'

# --- outgoing mail: no verification, no stripping --------------------------------------------
tok=$(token); N=$((N + 1))
mk "$tok" "Authentication-Results: mx.elsewhere.example; dkim=pass header.d=$OUT" >"$D/in-$N.eml" &&
	sign "$D/in-$N.eml" "$D/signed-$N.eml" $OUT o1
deliver "trusted-signed" "$D/signed-$N.eml" "$TRUSTED_IP"
no_ours() {
	[ -z "$(ours "$1")" ] && return 0
	echo "    unexpected: $(ours "$1")"
	return 1
}
check "outgoing (trusted) mail: weir adds no Authentication-Results of its own" no_ours "$F"
check "outgoing (trusted) mail: the other A-R stays" bash -c "grep -q '^Authentication-Results: mx.elsewhere.example' '$F'"
it_end

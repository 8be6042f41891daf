#!/bin/bash
# 250-spf-inbound: weir-milter checks SPF of mail from outside clients
# (issue 5 spec, "Inbound behaviour"), through the real stack: swaks ->
# Postfix (open, also on [::1]) -> weir-milter -> weir-agent -> sink, SPF
# records served by the stack's nsd. Clients connect from 127.0.0.2..9 and
# ::1 (outside: trusted_networks is 127.0.0.1/32 only) and send to
# rcpt@local.weir.test (a local domain, so the relay rule lets them).
#
# Each case checks, by the spec and not by weir's code:
#   - the SMTP replies: fail -> 550 5.7.23 at MAIL FROM (with the exp= text
#     when the domain has one), naming the domain and the client address;
#     softfail/neutral/none/pass/permerror (default "tag") -> 250, delivered;
#     spf.permerror = "reject" -> 550 5.7.24; spf.softfail = "reject" ->
#     550 5.7.23; spf.neutral = "tempfail" -> 451 4.7.1
#   - the headers the sink got: one Received-SPF per identity checked (RFC
#     7208 9.1 syntax: values that are not dot-atoms quoted; client-ip,
#     envelope-from, helo, receiver=relay.weir.test, identity) and exactly
#     one Authentication-Results with weir's authserv-id (dkim.authserv_id,
#     default the hostname relay.weir.test) holding spf=RESULT
#     smtp.mailfrom=ADDR-or-DOMAIN (null sender: smtp.helo=HELO)
#   - the milter log: the per-message line with spf=RESULT
#     spf_identity=mailfrom|helo spf_domain=DOMAIN; a refused MAIL gives
#     the decision line rule=spf action=reject reply="550 5.7.23 ..." and
#     the message line decision=reject reason="sender refused"
# Records cover pass, fail (with and without exp=), softfail, neutral, none,
# permerror (syntax error; 11 DNS-querying terms in one record; 11 counted
# across an include, RFC 7208 4.6.4; 3 void lookups), include, redirect,
# exists with %{i} and %{l}, macros %{ir} and %{d}, IPv6 (ip6:::1 pass, a
# record without ::1 fail), HELO checks for MAIL FROM:<> and spf.helo =
# "all". Not checked (no headers, no rule=spf line, log spf=skipped where
# the spec says so): trusted clients (127.0.0.1), authenticated clients,
# spf.allow_networks, spf.allow_helo. A forged Authentication-Results with
# weir's authserv-id is removed. spf.fail = "hold" puts the message in
# Postfix's hold queue; policy.dry_run = true logs "would reject" and
# delivers. Four stacks (one per configuration).
. "$(dirname "$0")/lib.sh"
it_begin "SPF of inbound mail: replies, Received-SPF, Authentication-Results, log"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
command -v dig >/dev/null || it_skip "dig not installed (dnsutils)"
IT_T0=$SECONDS
HDRS="$PY $REPO/tests/spf/stack-headers.py"
AUTHSERV=relay.weir.test
S=spf.weir.test

# --- the SPF records (weir.test zone) -------------------------------------------
ZONE_FILE=$(mktemp /tmp/weir-it-spfzone.XXXXXX) || it_abort "mktemp failed"
chmod 644 "$ZONE_FILE"
it_spf_cleanup() {
	local rc=$?
	rm -f -- "$ZONE_FILE"
	(exit "$rc")
	it_cleanup
}
trap it_spf_cleanup EXIT
{
	cat <<'EOF'
; 250-spf-inbound
pass.spf          IN TXT "v=spf1 ip4:127.0.0.2 -all"
fail.spf          IN TXT "v=spf1 ip4:192.0.2.1 -all"
failexp.spf       IN TXT "v=spf1 ip4:192.0.2.1 -all exp=why.failexp.spf.weir.test"
why.failexp.spf   IN TXT "Sorry, %{i} is not a mail server of %{d}"
soft.spf          IN TXT "v=spf1 ip4:192.0.2.1 ~all"
neutral.spf       IN TXT "v=spf1 ip4:192.0.2.1 ?all"
none.spf          IN A   192.0.2.1
none.spf          IN TXT "site-verification=not-an-spf-record"
perm-syntax.spf   IN TXT "v=spf1 ip4:192.0.2.1 frobnicate -all"
; 11 terms that query DNS (a, mx, include) before the ip4 that would match
perm-lookups.spf  IN TXT "v=spf1 a:h1.spf.weir.test a:h2.spf.weir.test a:h3.spf.weir.test a:h4.spf.weir.test a:h5.spf.weir.test a:h6.spf.weir.test a:h7.spf.weir.test a:h8.spf.weir.test mx:mxh.spf.weir.test include:inc-miss.spf.weir.test a:h9.spf.weir.test ip4:127.0.0.2 -all"
; 1 + 1 + 8 (inside the include) + 1 = 11 (RFC 7208 4.6.4 counts across includes)
perm-inclimit.spf IN TXT "v=spf1 a:h1.spf.weir.test include:inc8.spf.weir.test a:h2.spf.weir.test ip4:127.0.0.2 -all"
inc8.spf          IN TXT "v=spf1 a:h1.spf.weir.test a:h2.spf.weir.test a:h3.spf.weir.test a:h4.spf.weir.test a:h5.spf.weir.test a:h6.spf.weir.test a:h7.spf.weir.test a:h8.spf.weir.test"
inc-miss.spf      IN TXT "v=spf1 ip4:192.0.2.50 ?all"
; three names that do not exist: the third void lookup is a permerror
perm-void.spf     IN TXT "v=spf1 a:nx1.spf.weir.test a:nx2.spf.weir.test a:nx3.spf.weir.test ip4:127.0.0.2 -all"
mxh.spf           IN MX  10 h10.spf.weir.test.
inc.spf           IN TXT "v=spf1 include:incd.spf.weir.test -all"
incd.spf          IN TXT "v=spf1 ip4:127.0.0.3 -all"
redir.spf         IN TXT "v=spf1 ip4:192.0.2.1 redirect=redird.spf.weir.test"
redird.spf        IN TXT "v=spf1 ip4:127.0.0.4 -all"
ex.spf            IN TXT "v=spf1 exists:%{i}._ip.ex.spf.weir.test -all"
127.0.0.5._ip.ex.spf IN A 127.0.0.2
exl.spf           IN TXT "v=spf1 exists:%{l}._u.exl.spf.weir.test -all"
alice._u.exl.spf  IN A   127.0.0.2
mac.spf           IN TXT "v=spf1 exists:%{ir}._c.%{d} -all"
6.0.0.127._c.mac.spf IN A 127.0.0.2
v6.spf            IN TXT "v=spf1 ip6:::1 -all"
v6no.spf          IN TXT "v=spf1 ip4:127.0.0.0/8 ip6:2001:db8::/32 -all"
helo-pass.spf     IN TXT "v=spf1 ip4:127.0.0.2 -all"
helo-pass.spf     IN A   127.0.0.2
helo-fail.spf     IN TXT "v=spf1 ip4:192.0.2.1 -all"
helo-fail.spf     IN A   192.0.2.1
EOF
	for i in 1 2 3 4 5 6 7 8 9 10; do
		printf 'h%s.spf IN A 192.0.2.%s\n' "$i" "$((100 + i))"
	done
} >"$ZONE_FILE"

CONF_BASE="
trusted_networks = (\"127.0.0.1/32\");
local_domains = (\"local.weir.test\");
senders = {
  map = ( { login = \"alice\"; addresses = (\"alice@fail.spf.weir.test\"); } );
};"
# spf_stack SPF_GROUP_SETTINGS [MORE_CONF]: (re)start the stack with them
spf_stack() {
	local conf="$CONF_BASE
spf = {
  preflight = \"off\";
$1
};
${2:-}"
	if [ -z "$D" ]; then
		it_start_policy_stack "$conf" WEIR_STACK_IPV6=1 WEIR_STACK_ZONE_EXTRA="$ZONE_FILE"
	else
		it_restart_policy_stack "$conf" WEIR_STACK_IPV6=1 WEIR_STACK_ZONE_EXTRA="$ZONE_FILE"
	fi
}

# --- helpers ----------------------------------------------------------------------
# mkmsg TOKEN FROM_ADDR [HEADER...]: a message (CRLF) from FROM_ADDR
mkmsg() {
	local tok=$1 from=$2 h
	shift 2
	printf 'From: <%s>\r\n' "$from"
	for h in "$@"; do printf '%s\r\n' "$h"; done
	printf 'To: <rcpt@%s>\r\n' "$LOCAL_DOMAIN"
	printf 'Subject: weir spf test %s\r\n' "$tok"
	printf 'Message-ID: <%s@client.weir.test>\r\n' "$tok"
	printf 'Date: %s\r\n' "$(date -R)"
	printf '\r\nbody %s\r\n' "$tok"
}

# send NAME IP HELO SENDER [-t RCPT] [-u LOGIN] [HEADER...]: one SMTP
# session from IP (an IPv6 address connects to [::1]) with HELO, MAIL
# FROM:<SENDER> (may be empty), RCPT TO:<RCPT> (default rcpt@local) and a
# message holding a fresh token (in $tok). Marks the milter log first.
# Sets SW, QID, tok, CLIENT, HELO, SENDER.
send() {
	local name=$1 ip=$2 helo=$3 sender=$4 rcpt=rcpt@$LOCAL_DOMAIN f
	local -a srv auth=()
	shift 4
	if [ "${1:-}" = -t ]; then rcpt=$2; shift 2; fi
	if [ "${1:-}" = -u ]; then
		auth=(-a PLAIN -au "$2" -ap "$(sasl_pass "$2")")
		shift 2
	fi
	CLIENT=$ip HELO=$helo SENDER=$sender
	tok=$(token)
	f=$D/msg-$name.eml
	mkmsg "$tok" "${sender:-postmaster@$helo}" "$@" >"$f"
	case $ip in
	*:*) srv=(--server "[$ip]:$SMTP_PORT") ;;
	*) srv=(--server "127.0.0.1:$SMTP_PORT" --local-interface "$ip") ;;
	esac
	SW=$D/log/smtp-$name.log
	log_mark
	swaks "${srv[@]}" --helo "$helo" "${auth[@]}" --from "${sender:-<>}" --to "$rcpt" \
		--data "$f" --timeout 40 >"$SW" 2>&1
	QID=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' "$SW" | tail -n 1)
}

# soon CMD...: CMD succeeds within 5 s (log lines may come a moment after
# the reply); the last try prints its diagnostics
soon() {
	wait_for 5 "$@" && return 0
	"$@"
}

# stored TOKEN: the stored message holding TOKEN (the null sender too)
stored() {
	grep -lF -- "$1" "$SINK_DIR"/*.eml 2>/dev/null | head -n 1
}
_stored_yes() { [ -n "$(stored "$1")" ]; }
wait_stored() { wait_for 30 _stored_yes "$1"; }

# ere STRING: STRING as an ERE matching it literally
ere() { ere_quote "$1"; }

# msg_line_has ERE...: some per-message line (decision=) since the mark
# matches every ERE
msg_line_has() {
	local l e
	l=$(log_since | grep -E ' decision=')
	for e in "$@"; do
		l=$(printf '%s\n' "$l" | grep -E -- "$e")
	done
	[ -n "$l" ] && return 0
	echo "    no per-message line since the mark matches: $*"
	log_since | grep -E ' decision=' | sed 's/^/      /' | tail -n 4
	return 1
}

# log_lacks ERE: no milter line since the mark matches ERE
log_lacks() {
	if log_since | grep -qE -- "$1"; then
		echo "    unexpected milter log line(s) matching /$1/:"
		log_since | grep -E -- "$1" | sed 's/^/      /' | tail -n 4
		return 1
	fi
}

# spf_dom: the domain of the identity (sender's domain, else HELO)
spf_dom() {
	if [ -n "$SENDER" ]; then echo "${SENDER##*@}"; else echo "$HELO"; fi
}

# ar_spf_ere RESULT IDENTITY: the A-R entry weir must write (Python RE);
# an optional comment after the result (RFC 5322: quoted pairs like "\)"
# and nested comments allowed)
AR_COMMENT='( \((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\))?'
ar_spf_ere() {
	local r=$1 d
	d=$(ere "$(spf_dom)")
	if [ "$2" = helo ]; then
		echo ";\\s*spf=$r$AR_COMMENT smtp\\.helo=\"?$(ere "$HELO")\"?( |;|\$)"
	else
		echo ";\\s*spf=$r$AR_COMMENT smtp\\.mailfrom=\"?($(ere "${SENDER%@*}")@)?$d\"?( |;|\$)"
	fi
}

# accepted NAME RESULT [IDENTITY]: the last send was accepted and delivered,
# with Received-SPF and Authentication-Results for RESULT of IDENTITY
# (default mailfrom; helo for the null sender) and the log line. Sets F.
accepted() {
	local name=$1 r=$2 id=${3:-mailfrom} dom
	dom=$(spf_dom)
	[ -z "$SENDER" ] && [ $# -lt 3 ] && id=helo
	check "$name: MAIL FROM accepted (250)" reply_matches MAIL '^250 '
	check "$name: message accepted (250 at end of data)" reply_matches DATA '^250 '
	check "$name: delivered to the sink" wait_stored "$tok"
	F=$(stored "$tok")
	F=${F:-/nonexistent}
	local -a kv=(result="$r" client-ip="$CLIENT" helo="$HELO" receiver=relay.weir.test)
	[ "$id" = mailfrom ] && kv+=(envelope-from="$SENDER")
	check "$name: Received-SPF: $r ... identity=$id client-ip=$CLIENT helo=$HELO" \
		$HDRS received-spf-is "$F" "$id" "${kv[@]}"
	check "$name: one Authentication-Results: $AUTHSERV with spf=$r smtp.$id=" \
		$HDRS ar-is "$F" "$AUTHSERV" "$(ar_spf_ere "$r" "$id")"
	check "$name: log: per-message line spf=$r spf_identity=$id spf_domain=$dom" \
		soon msg_line_has ' decision=accept( |$)' " spf=$r( |$)" " spf_identity=$id( |$)" \
		" spf_domain=$(ere "$dom")( |$)"
}

# refused NAME CODE ENH RESULT [TEXT]: the last send was refused at MAIL
# FROM with "CODE ENH ..." naming the domain (or TEXT's domain) and the
# client address, and TEXT if given; nothing was queued; the log has the
# rule=spf decision line with that reply, and the message line
refused() {
	local name=$1 code=$2 enh=$3 r=$4 text=${5:-} dom action=reject
	dom=${REFUSED_DOMAIN:-$(spf_dom)}
	[ "${code:0:1}" = 4 ] && action=tempfail
	check "$name: MAIL FROM: $code $enh" reply_matches MAIL "^$code $(ere "$enh") "
	check "$name: the reply names $dom and $CLIENT" \
		bash -c 'r=$1; case $r in *"$2"*) ;; *) echo "    no $2 in: $r"; exit 1 ;; esac
			case $r in *"$3"*) ;; *) echo "    no $3 in: $r"; exit 1 ;; esac' _ \
		"$(sw_reply MAIL)" "$dom" "$CLIENT"
	[ -n "$text" ] && check "$name: the reply holds '$text'" \
		bash -c 'case $1 in *"$2"*) ;; *) echo "    got: $1"; exit 1 ;; esac' _ "$(sw_reply MAIL)" "$text"
	check "$name: nothing queued" test -z "$QID"
	check "$name: log: decision line rule=spf action=$action reply=\"$code $enh ...\"" \
		soon decision_is spf "$action" outside - "reply=\"$code $(ere "$enh") "
	if [ "$action" = reject ]; then
		check "$name: log: message line decision=reject reason=\"sender refused\" spf=$r" \
			soon msg_line_has ' decision=reject( |$)' 'reason="sender refused"' " spf=$r( |$)"
	else
		check "$name: log: spf=$r" soon log_has_since " spf=$r( |$)"
	fi
}

# no_spf_headers NAME: the stored message F has no Received-SPF and no A-R
# with spf= from weir
no_spf_headers() {
	local n
	n=$($HDRS received-spf-count "$F")
	[ "$n" = 0 ] || { echo "    $n Received-SPF header(s) in $F"; return 1; }
	if [ "$($HDRS ar-count "$F" "$AUTHSERV")" != 0 ] && $HDRS ar-is "$F" "$AUTHSERV" 'spf=' >/dev/null; then
		echo "    weir's Authentication-Results carries spf=: $($HDRS ar-is "$F" "$AUTHSERV" 'x^' | tail -n 1)"
		return 1
	fi
}

# ==================================================================================
# Stack 1: the defaults (fail reject, the rest tag, helo null_sender),
# spf.allow_networks = ("127.0.0.9"), spf.allow_helo = ("fwd.weir.test")
spf_stack '  allow_networks = ("127.0.0.9");
  allow_helo = ("fwd.weir.test");'
check "the stack's DNS serves the SPF records (pass.spf.weir.test)" \
	bash -c "dig +short -p $DNS_PORT @127.0.0.1 TXT pass.$S | grep -q 'v=spf1'"

send pass 127.0.0.2 client.weir.test "x@pass.$S"
accepted pass pass

send fail 127.0.0.2 client.weir.test "x@fail.$S"
refused fail 550 5.7.23 fail
check "fail: Postfix logged the milter's reject at MAIL" \
	grep -qE "milter-reject: MAIL from .*550 5\.7\.23 " "$POSTFIX_LOG"

send fail-exp 127.0.0.2 client.weir.test "x@failexp.$S"
refused fail-exp 550 5.7.23 fail "Sorry, 127.0.0.2 is not a mail server of failexp.$S"

send softfail 127.0.0.2 client.weir.test "x@soft.$S"
accepted softfail softfail

send neutral 127.0.0.2 client.weir.test "x@neutral.$S"
accepted neutral neutral

send none 127.0.0.2 client.weir.test "x@none.$S"
accepted none none

send perm-syntax 127.0.0.2 client.weir.test "x@perm-syntax.$S"
accepted "permerror (syntax error)" permerror

send perm-lookups 127.0.0.2 client.weir.test "x@perm-lookups.$S"
accepted "permerror (11 DNS-querying terms in one record)" permerror

send perm-inclimit 127.0.0.2 client.weir.test "x@perm-inclimit.$S"
accepted "permerror (11 DNS-querying terms counted across an include, RFC 7208 4.6.4)" permerror

send perm-void 127.0.0.2 client.weir.test "x@perm-void.$S"
accepted "permerror (3 void lookups)" permerror

send include-pass 127.0.0.3 client.weir.test "x@inc.$S"
accepted "include (client listed in the included record)" pass
send include-fail 127.0.0.2 client.weir.test "x@inc.$S"
refused "include (client not listed)" 550 5.7.23 fail

send redirect-pass 127.0.0.4 client.weir.test "x@redir.$S"
accepted "redirect (client listed in the target)" pass
send redirect-fail 127.0.0.2 client.weir.test "x@redir.$S"
refused "redirect (target's -all)" 550 5.7.23 fail

send exists-i-pass 127.0.0.5 client.weir.test "x@ex.$S"
accepted "exists:%{i} (name exists for 127.0.0.5)" pass
send exists-i-fail 127.0.0.2 client.weir.test "x@ex.$S"
refused "exists:%{i} (no name for 127.0.0.2)" 550 5.7.23 fail

send exists-l-pass 127.0.0.2 client.weir.test "alice@exl.$S"
accepted "exists:%{l} (alice)" pass
send exists-l-fail 127.0.0.2 client.weir.test "mallory@exl.$S"
refused "exists:%{l} (mallory)" 550 5.7.23 fail

send macro-pass 127.0.0.6 client.weir.test "x@mac.$S"
accepted "exists:%{ir}._c.%{d} (127.0.0.6)" pass
send macro-fail 127.0.0.2 client.weir.test "x@mac.$S"
refused "exists:%{ir}._c.%{d} (127.0.0.2)" 550 5.7.23 fail

if perl -MIO::Socket::INET6 -e 1 2>/dev/null; then
	send ipv6-pass ::1 client.weir.test "x@v6.$S"
	check "ipv6: Postfix saw the client as ::1" grep -qE 'connect from [^ ]*\[::1\]' "$POSTFIX_LOG"
	accepted "ipv6 (ip6:::1)" pass
	send ipv6-fail ::1 client.weir.test "x@v6no.$S"
	refused "ipv6 (::1 not listed)" 550 5.7.23 fail
else
	check "swaks can connect over IPv6 (install libio-socket-inet6-perl)" false
fi

# the null sender: the HELO identity (postmaster@HELO)
send helo-pass 127.0.0.2 "helo-pass.$S" ""
accepted "MAIL FROM:<>, HELO helo-pass" pass helo
send helo-fail 127.0.0.2 "helo-fail.$S" ""
refused "MAIL FROM:<>, HELO helo-fail" 550 5.7.23 fail
# spf.helo = null_sender (default): a failing HELO is not checked for a
# non-null sender
send helo-notchecked 127.0.0.2 "helo-fail.$S" "x@pass.$S"
accepted "spf.helo=null_sender: HELO helo-fail with MAIL FROM x@pass" pass
check "spf.helo=null_sender: only one Received-SPF (mailfrom)" \
	test "$($HDRS received-spf-count "$F")" = 1
check "spf.helo=null_sender: no spf_helo= in the log" log_lacks ' spf_helo='

# forged Authentication-Results with weir's authserv-id
send forged-ar 127.0.0.2 client.weir.test "x@soft.$S" \
	"Authentication-Results: $AUTHSERV; spf=pass smtp.mailfrom=forged-marker@soft.$S" \
	"Authentication-Results: mx.elsewhere.example; spf=pass smtp.mailfrom=x@soft.$S"
accepted "forged A-R" softfail
check "forged A-R: the client's '$AUTHSERV; spf=pass' header is gone" \
	bash -c "! grep -q 'forged-marker' '$F'"
check "forged A-R: the A-R of mx.elsewhere.example stays" \
	grep -q '^Authentication-Results: mx.elsewhere.example; spf=pass' "$F"

# not checked: trusted, authenticated, allow_networks, allow_helo
send trusted 127.0.0.1 client.weir.test "x@fail.$S" -t "bob@$OTHER_DOMAIN"
check "trusted 127.0.0.1 as x@fail: accepted (250 at end of data)" reply_matches DATA '^250 '
check "trusted: relayed to the sink" wait_stored "$tok"
F=$(stored "$tok"); F=${F:-/nonexistent}
check "trusted: no Received-SPF, no spf= in weir's A-R" no_spf_headers
check "trusted: log: no rule=spf decision" no_decision spf
check "trusted: log: no spf=fail" log_lacks ' spf=fail( |$)'
check "trusted: log: per-message line identity=trusted decision=accept" \
	soon msg_line_has ' decision=accept( |$)' ' identity=trusted( |$)'

send authenticated 127.0.0.2 client.weir.test "alice@fail.$S" -t "bob@$OTHER_DOMAIN" -u alice
check "alice (AUTH) from 127.0.0.2 as alice@fail: AUTH ok" auth_ok
check "alice (AUTH): accepted (250 at end of data)" reply_matches DATA '^250 '
check "alice (AUTH): relayed to the sink" wait_stored "$tok"
F=$(stored "$tok"); F=${F:-/nonexistent}
check "alice (AUTH): no Received-SPF, no spf= in weir's A-R" no_spf_headers
check "alice (AUTH): log: no rule=spf decision, no spf=fail" \
	bash -c "! grep -qE ' rule=spf | spf=fail( |\$)' <<<\"\$1\"" _ "$(log_since)"

send allow-networks 127.0.0.9 client.weir.test "x@fail.$S"
check "allow_networks 127.0.0.9 as x@fail: accepted" reply_matches DATA '^250 '
check "allow_networks: delivered" wait_stored "$tok"
F=$(stored "$tok"); F=${F:-/nonexistent}
check "allow_networks: log: spf=skipped spf_reason=allow_networks" \
	soon msg_line_has ' spf=skipped( |$)' ' spf_reason=allow_networks( |$)'
check "allow_networks: no Received-SPF, no spf= in weir's A-R" no_spf_headers

send allow-helo 127.0.0.2 fwd.weir.test "x@fail.$S"
check "allow_helo fwd.weir.test as x@fail: accepted" reply_matches DATA '^250 '
check "allow_helo: delivered" wait_stored "$tok"
F=$(stored "$tok"); F=${F:-/nonexistent}
check "allow_helo: log: spf=skipped spf_reason=allow_helo" \
	soon msg_line_has ' spf=skipped( |$)' ' spf_reason=allow_helo( |$)'
check "allow_helo: no Received-SPF" no_spf_headers

# ==================================================================================
# Stack 2: permerror reject, softfail reject, neutral tempfail, helo all
spf_stack '  permerror = "reject";
  softfail = "reject";
  neutral = "tempfail";
  helo = "all";'

send r-perm-syntax 127.0.0.2 client.weir.test "x@perm-syntax.$S"
refused "permerror=reject (syntax error)" 550 5.7.24 permerror
send r-perm-void 127.0.0.2 client.weir.test "x@perm-void.$S"
refused "permerror=reject (3 void lookups)" 550 5.7.24 permerror
send r-softfail 127.0.0.2 client.weir.test "x@soft.$S"
refused "softfail=reject" 550 5.7.23 softfail
send r-neutral 127.0.0.2 client.weir.test "x@neutral.$S"
refused "neutral=tempfail" 451 4.7.1 neutral

# spf.helo = all: HELO fails, MAIL FROM passes -> the stricter (fail: reject)
send all-helo-fail 127.0.0.2 "helo-fail.$S" "x@pass.$S"
REFUSED_DOMAIN=helo-fail.$S refused "spf.helo=all: HELO helo-fail, MAIL FROM x@pass" 550 5.7.23 pass
check "spf.helo=all: log: spf_helo=fail" soon log_has_since ' spf_helo=fail( |$)'
# both pass: two Received-SPF headers
send all-helo-pass 127.0.0.2 "helo-pass.$S" "x@pass.$S"
accepted "spf.helo=all: HELO helo-pass, MAIL FROM x@pass" pass
check "spf.helo=all: Received-SPF: pass ... identity=helo as well" \
	$HDRS received-spf-is "$F" helo result=pass client-ip=127.0.0.2 "helo=helo-pass.$S" receiver=relay.weir.test
check "spf.helo=all: two Received-SPF headers" test "$($HDRS received-spf-count "$F")" = 2
check "spf.helo=all: log: spf=pass spf_helo=pass" \
	soon msg_line_has ' decision=accept( |$)' ' spf=pass( |$)' ' spf_helo=pass( |$)'

# ==================================================================================
# Stack 3: spf.fail = "hold"
spf_stack '  fail = "hold";'
send hold 127.0.0.2 client.weir.test "x@fail.$S"
check "fail=hold: MAIL FROM accepted (250)" reply_matches MAIL '^250 '
check "fail=hold: the client gets 250 at end of data" reply_matches DATA '^250 '
check "fail=hold: a queue id" test -n "$QID"
# in_hold QID: postqueue -j lists QID in the hold queue
in_hold() {
	postqueue -c "$POSTFIX_CONFIG_DIR" -j 2>/dev/null | $PY -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("queue_id") == sys.argv[1] and m.get("queue_name") == "hold":
        sys.exit(0)
sys.exit(1)' "$1"
}
check "fail=hold: postqueue -j shows $QID in the hold queue" wait_for 10 in_hold "$QID"
check "fail=hold: Postfix logged the milter's hold" \
	grep -qE "$QID: milter-hold: " "$POSTFIX_LOG"
check "fail=hold: log: decision line rule=spf action=hold" soon decision_is spf hold outside -
check "fail=hold: log: per-message line decision=hold spf=fail" \
	soon msg_line_has ' decision=hold( |$)' " spf=fail( |$)" " queue_id=$QID( |$)"
check "fail=hold: nothing reaches the sink" sink_none_with "$tok" 2

# ==================================================================================
# Stack 4: policy.dry_run = true
spf_stack '' 'policy = { dry_run = true; };'
send dry-fail 127.0.0.2 client.weir.test "x@fail.$S"
check "dry_run: fail is accepted at MAIL FROM" reply_matches MAIL '^250 '
check "dry_run: delivered" wait_stored "$tok"
F=$(stored "$tok"); F=${F:-/nonexistent}
check "dry_run: log: decision line rule=spf dry_run=yes 'would reject: 550 5.7.23'" \
	soon decision_is spf '(log|reject)' outside - 'dry_run=yes' 'reply="would reject: 550 5\.7\.23 '
check "dry_run: Received-SPF: fail" \
	$HDRS received-spf-is "$F" mailfrom result=fail client-ip=127.0.0.2 "envelope-from=x@fail.$S"
check "dry_run: one A-R $AUTHSERV with spf=fail" $HDRS ar-is "$F" "$AUTHSERV" "$(ar_spf_ere fail mailfrom)"
check "dry_run: log: per-message line decision=accept spf=fail" \
	soon msg_line_has ' decision=accept( |$)' ' spf=fail( |$)'

it_say "run time: $((SECONDS - IT_T0)) s"
it_end

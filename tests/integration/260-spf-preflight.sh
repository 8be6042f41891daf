#!/bin/bash
# 260-spf-preflight: the outbound SPF preflight (issue 5 spec, "Outbound
# preflight") through the real stack: swaks -> Postfix (SASL, open) ->
# weir-milter -> weir-agent -> sink. alice (real SMTP AUTH) sends as
# addresses of five sender domains whose SPF records nsd serves; the
# stack's smart host is sink.weir.test, which resolves to 127.0.0.1, so
# with spf.egress empty the one egress address is 127.0.0.1:
#   pass.pf.weir.test   ip4:127.0.0.1 -all          pass
#   fail.pf.weir.test   ip4:192.0.2.99 -all         fail
#   soft.pf.weir.test   ip4:192.0.2.99 ~all         softfail
#   perm.pf.weir.test   a syntax error              permerror
#   none.pf.weir.test   no SPF record               none
# Checked, by the spec:
#   - spf.preflight = "log" (the default): every message is relayed (the
#     sink gets it); the per-message milter line says spf_preflight=RESULT;
#     the store (spf.preflight_db, inside the stack directory; weir-milter
#     makes its directory as root for the user weir) counts each non-pass
#     finding exactly: `weirctl spf report` as a table and with
#     --prometheus. `weirctl spf preflight` exits 1 for fail and permerror,
#     0 otherwise, and writes nothing; `weirctl spf check` prints the
#     result and the Received-SPF line and exits 0. A trusted client
#     (127.0.0.1, no login) is checked too.
#   - spf.preflight = "tempfail": fail gets 451 4.7.23 at MAIL FROM and
#     permerror 451 4.7.24, neither is relayed; pass, softfail and none
#     are relayed.
#   - spf.egress = ("192.0.2.1"): the passing domain now fails (451 4.7.23
#     with tempfail) and the finding names 192.0.2.1.
# Three stacks (one per configuration).
. "$(dirname "$0")/lib.sh"
it_begin "outbound SPF preflight: log, tempfail, explicit egress; weirctl spf"
it_need_binaries milter agent weirctl
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"

P=pf.weir.test
TO=rcpt@$OTHER_DOMAIN
ZONE_FILE=$(mktemp /tmp/weir-it-pfzone.XXXXXX) || it_abort "mktemp failed"
chmod 644 "$ZONE_FILE"
it_pf_cleanup() {
	local rc=$?
	rm -f -- "$ZONE_FILE"
	(exit "$rc")
	it_cleanup
}
trap it_pf_cleanup EXIT
cat >"$ZONE_FILE" <<'EOF'
; 260-spf-preflight: sender domains of outgoing mail
pass.pf  IN TXT "v=spf1 ip4:127.0.0.1 -all"
fail.pf  IN TXT "v=spf1 ip4:192.0.2.99 -all"
soft.pf  IN TXT "v=spf1 ip4:192.0.2.99 ~all"
perm.pf  IN TXT "v=spf1 ip4:127.0.0.1 frobnicate -all"
none.pf  IN A   192.0.2.99
none.pf  IN TXT "site-verification=not-an-spf-record"
EOF

# conf_for PREFLIGHT [EGRESS]: the weir.conf settings; @D@ is the stack
# directory (the store lives in it)
conf_for() {
	cat <<CONF
trusted_networks = ("127.0.0.1/32");
local_domains = ("$LOCAL_DOMAIN");
senders = {
  map = ( { login = "alice"; addresses = ("@.$P"); } );
};
spf = {
  preflight = "$1";
  preflight_db = "@D@/spf/preflight.db";
  egress = (${2:-});
};
CONF
}

# pf_stack CONF_TEXT: a stack (SASL, open Postfix, the zone above) whose
# weir.conf gets CONF_TEXT with @D@ replaced by the stack directory:
# it_start_stack picks the directory itself, too late for the setting
pf_stack() {
	local old=$D
	[ -n "$old" ] && "$STACK/stop" "$old" >/dev/null 2>&1
	D=$(mktemp -d /tmp/weir-it.XXXXXX) || it_abort "mktemp failed"
	chmod 755 "$D"
	printf '%s\n' "$1" | sed "s|@D@|$D|g" >"$D/conf-extra.conf"
	chmod 644 "$D/conf-extra.conf"
	it_say "starting the stack in $D"
	if ! env WEIR_STACK_SASL=1 WEIR_STACK_POSTFIX_OPEN=1 WEIR_STACK_CONF_EXTRA="$D/conf-extra.conf" \
		WEIR_STACK_ZONE_EXTRA="$ZONE_FILE" "$STACK/start" "$D" >"$D/start.out" 2>&1; then
		cat "$D/start.out"
		it_abort "the stack did not start"
	fi
	# shellcheck disable=SC1091
	. "$D/stack.env"
	DB=$D/spf/preflight.db
	if [ -n "$old" ]; then
		if [ "$IT_FAILS" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ]; then
			rm -rf -- "$old"
		else
			it_say "previous stack directory kept: $old"
		fi
	fi
}

soon() {
	wait_for 5 "$@" && return 0
	"$@"
}

# msg_line_has ERE...: a per-message milter line since the mark matches all
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

# relayed SENDER RESULT [IP]: alice sends as SENDER (from IP, default the
# outside address; 127.0.0.1 is trusted and sends without a login): 250 at
# MAIL, the sink gets it, the message line says spf_preflight=RESULT
relayed() {
	local from=$1 res=$2 ip=${3:-$OUTSIDE_IP} tok
	local -a who=(-u alice)
	[ "$ip" = "$TRUSTED_IP" ] && who=()
	tok=$(token)
	log_mark
	smtp "relay-$RANDOM" -i "$ip" "${who[@]}" --from "$from" --to "$TO" \
		--header "Subject: $tok" --body "$tok"
	[ "$ip" = "$TRUSTED_IP" ] || check "<$from>: alice authenticated (235)" auth_ok
	check "<$from>: MAIL FROM accepted (250)" reply_matches MAIL '^250 '
	check "<$from>: relayed (the sink got it)" wait_sink "$tok" 1 30
	check "<$from>: the message line says spf_preflight=$res" \
		soon msg_line_has "from=<$(ere_quote "$from")>" " spf_preflight=$res( |$)"
}

# refused SENDER CODE RESULT: alice as SENDER gets CODE (e.g. "451
# 4.7.23") at MAIL FROM naming the domain; nothing reaches the sink
refused() {
	local from=$1 code=$2 res=$3 tok
	tok=$(token)
	log_mark
	smtp "refused-$RANDOM" -u alice --from "$from" --to "$TO" \
		--header "Subject: $tok" --body "$tok"
	check "<$from>: alice authenticated (235)" auth_ok
	check "<$from>: $code at MAIL FROM" reply_is MAIL "$code "
	check "<$from>: the reply names the domain ${from#*@}" \
		reply_matches MAIL "$(ere_quote "${from#*@}")"
	check "<$from>: decision line rule=spf_preflight action=tempfail" \
		soon decision_is spf_preflight tempfail authenticated alice
	check "<$from>: the milter logged spf_preflight=$res" \
		soon log_has_since " spf_preflight=$res( |$)"
	check "<$from>: not relayed" sink_none_with "$tok" 2
}

# report_count DOMAIN RESULT EGRESS: the count weirctl spf report shows
# (0 when there is no such row)
report_count() {
	"$WEIRCTL" spf report -c "$D/weir.conf" 2>&1 |
		awk -v d="$1" -v r="$2" -v e="$3" '$1 == d && $2 == r && $3 == e { n = $4 } END { print n + 0 }'
}

# count_is DOMAIN RESULT EGRESS N
count_is() {
	local got
	got=$(report_count "$1" "$2" "$3")
	[ "$got" = "$4" ] && return 0
	echo "    weirctl spf report: $1 $2 $3: want count $4, got $got; the report:"
	"$WEIRCTL" spf report -c "$D/weir.conf" 2>&1 | sed 's/^/      /'
	return 1
}

# out_has ERE CMD...: CMD's output (stdout and stderr) matches ERE
out_has() {
	local ere=$1 out
	shift
	out=$("$@" 2>&1)
	printf '%s\n' "$out" | grep -qE -- "$ere" && return 0
	echo "    output of $* does not match /$ere/:"
	printf '%s\n' "$out" | sed 's/^/      /' | head -20
	return 1
}

# exit_is N CMD...: CMD exits N
exit_is() {
	local want=$1 rc
	shift
	"$@" >/dev/null 2>&1
	rc=$?
	[ "$rc" = "$want" ] && return 0
	echo "    $* exited $rc, want $want"
	return 1
}

# loopback_evaluated: SPF is evaluated for the egress address 127.0.0.1 like
# for any other (libspf2 1.2.10 alone answers pass for every loopback
# client, "localhost is always allowed"; RFC 7208 has no such rule, and
# this stack's only egress address is 127.0.0.1)
loopback_evaluated() {
	local out
	out=$("$WEIRCTL" spf check -c "$D/weir.conf" 127.0.0.1 "x@fail.$P" relay.weir.test 2>&1)
	printf '%s\n' "$out" | grep -qx 'result: fail' && return 0
	echo "    weirctl spf check 127.0.0.1 x@fail.$P: want result fail, got:"
	printf '%s\n' "$out" | sed 's/^/      /' | head -4
	printf '%s\n' "$out" | grep -q localhost &&
		echo "    (libspf2's loopback free ride: policy/spf.c must evaluate loopback clients too)"
	return 1
}

# ===== 1. spf.preflight = "log" ===========================================
pf_stack "$(conf_for log)"
check "SPF is evaluated for 127.0.0.1 (no localhost exception)" loopback_evaluated

check "weirctl spf report before any finding: the store does not exist yet (exit 1)" \
	exit_is 1 "$WEIRCTL" spf report -c "$D/weir.conf"
check "weir-milter made the store's directory, 0750, owned by weir" \
	test "$(stat -c '%a %U' "$D/spf" 2>/dev/null)" = "750 weir"

relayed "alice@pass.$P" pass
relayed "alice@pass.$P" pass
relayed "alice@fail.$P" fail
relayed "bob@fail.$P" fail
relayed "alice@soft.$P" softfail
relayed "alice@perm.$P" permerror
relayed "alice@none.$P" none
relayed "app@fail.$P" fail "$TRUSTED_IP"

check "the non-pass lines name the egress address 127.0.0.1" \
	log_has "$MILTER_LOG" "spf_preflight=fail spf_preflight_ip=127\.0\.0\.1( |$)"
check "report: fail.$P fail 127.0.0.1 counted 3 times" count_is "fail.$P" fail 127.0.0.1 3
check "report: soft.$P softfail 127.0.0.1 counted once" count_is "soft.$P" softfail 127.0.0.1 1
check "report: perm.$P permerror 127.0.0.1 counted once" count_is "perm.$P" permerror 127.0.0.1 1
check "report: none.$P none 127.0.0.1 counted once" count_is "none.$P" none 127.0.0.1 1
check "report: no row for pass.$P" count_is "pass.$P" pass 127.0.0.1 0
check "report: four rows" \
	test "$("$WEIRCTL" spf report -c "$D/weir.conf" | grep -c "\.$P ")" = 4
check "report: header, ISO 8601 UTC times, the reason" \
	out_has "^soft\.pf\.weir\.test +softfail +127\.0\.0\.1 +1 +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z +[0-9-]{10}T[0-9:]{8}Z +soft\.pf\.weir\.test does not designate 127\.0\.0\.1" \
	"$WEIRCTL" spf report -c "$D/weir.conf"
check "report: the first line is the header" \
	out_has "^DOMAIN +RESULT +EGRESS +COUNT +FIRST SEEN +LAST SEEN +LAST REASON" \
	"$WEIRCTL" spf report -c "$D/weir.conf"
check "report --prometheus: the fail counter is 3" \
	out_has "^weir_spf_preflight_findings_total\{domain=\"fail\.pf\.weir\.test\",result=\"fail\",egress=\"127\.0\.0\.1\"\} 3$" \
	"$WEIRCTL" spf report -c "$D/weir.conf" --prometheus
check "report --prometheus: HELP and TYPE lines" \
	out_has "^# TYPE weir_spf_preflight_findings_total counter$" \
	"$WEIRCTL" spf report --prometheus -c "$D/weir.conf"
check "the store stays owned by weir (weirctl read it as root)" \
	test "$(stat -c %U "$DB" "$DB-wal" "$DB-shm" 2>/dev/null | sort -u)" = weir

check "weirctl spf preflight fail.$P: 127.0.0.1 fail, exit 1" \
	out_has "127\.0\.0\.1 +fail " "$WEIRCTL" spf preflight -c "$D/weir.conf" "fail.$P"
check "weirctl spf preflight fail.$P exits 1" \
	exit_is 1 "$WEIRCTL" spf preflight -c "$D/weir.conf" "fail.$P"
check "weirctl spf preflight perm.$P exits 1" \
	exit_is 1 "$WEIRCTL" spf preflight -c "$D/weir.conf" "someone@perm.$P"
check "weirctl spf preflight pass.$P: 127.0.0.1 pass, exit 0" \
	out_has "127\.0\.0\.1 +pass " "$WEIRCTL" spf preflight -c "$D/weir.conf" "pass.$P"
check "weirctl spf preflight pass.$P exits 0" \
	exit_is 0 "$WEIRCTL" spf preflight -c "$D/weir.conf" "pass.$P"
check "weirctl spf preflight soft.$P exits 0 (softfail is not refused)" \
	exit_is 0 "$WEIRCTL" spf preflight -c "$D/weir.conf" "soft.$P"
check "weirctl spf preflight wrote nothing: fail.$P still 3" count_is "fail.$P" fail 127.0.0.1 3
check "weirctl spf check 192.0.2.99 x@fail.$P: pass" \
	out_has "^result: pass$" "$WEIRCTL" spf check -c "$D/weir.conf" 192.0.2.99 "x@fail.$P" h.example
check "weirctl spf check 127.0.0.1 x@fail.$P: fail and a Received-SPF line" \
	out_has "^Received-SPF: fail \(relay\.weir\.test: " "$WEIRCTL" spf check -c "$D/weir.conf" 127.0.0.1 "x@fail.$P"
check "weirctl spf check exits 0 for a fail" \
	exit_is 0 "$WEIRCTL" spf check -c "$D/weir.conf" 127.0.0.1 "x@fail.$P"
check "weirctl spf check with a bad address: usage error (exit 2)" \
	exit_is 2 "$WEIRCTL" spf check -c "$D/weir.conf" not-an-ip "x@fail.$P"

# ===== 2. spf.preflight = "tempfail" ======================================
pf_stack "$(conf_for tempfail)"
refused "alice@fail.$P" "451 4.7.23" fail
refused "alice@perm.$P" "451 4.7.24" permerror
relayed "alice@pass.$P" pass
relayed "alice@soft.$P" softfail
relayed "alice@none.$P" none
check "tempfail stack: fail.$P counted once" count_is "fail.$P" fail 127.0.0.1 1
check "tempfail stack: perm.$P counted once" count_is "perm.$P" permerror 127.0.0.1 1
check "tempfail stack: soft.$P counted once" count_is "soft.$P" softfail 127.0.0.1 1

# ===== 3. spf.egress = ("192.0.2.1") ======================================
pf_stack "$(conf_for tempfail '"192.0.2.1"')"
refused "alice@pass.$P" "451 4.7.23" fail
check "explicit egress: pass.$P fail 192.0.2.1 counted" count_is "pass.$P" fail 192.0.2.1 1
check "explicit egress: nothing counted for 127.0.0.1" \
	test "$("$WEIRCTL" spf report -c "$D/weir.conf" | grep -c ' 127\.0\.0\.1 ')" = 0
check "weirctl spf preflight pass.$P: 192.0.2.1 fail, exit 1" \
	exit_is 1 "$WEIRCTL" spf preflight -c "$D/weir.conf" "pass.$P"

it_end

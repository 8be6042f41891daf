#!/bin/bash
# 251-spf-temperror: SPF when DNS does not answer (issue 5 spec: "temperror
# + tempfail: 451 4.4.3", "Never a hang or crash: DNS outage -> temperror
# within spf.timeout"), through the real stack, clients from 127.0.0.2
# (outside; trusted_networks is 127.0.0.1/32).
#
# (a) The sender's zone is delegated to a name server that does not exist
#     (dead.weir.test. IN NS ns.nowhere.invalid.: nsd gives a referral
#     nobody can follow): MAIL FROM x@dead.weir.test, MAIL FROM a domain
#     whose record includes dead.weir.test, and MAIL FROM:<> with HELO
#     mail.dead.weir.test each get 451 4.4.3 naming the domain and the
#     client address; nothing is accepted (no queue id, Postfix's queue
#     empty, nothing at the sink: the client keeps the message and
#     retries); the log has rule=spf action=tempfail reply="451 4.4.3 ..."
#     and spf=temperror.
# (b) weir's resolver is a UDP/TCP port where a script reads every query
#     and never answers (tests/spf/stack-silent-dns.py, WEIR_STACK_RESOLVER),
#     spf.timeout = 3s, resolver_timeout = 2s: MAIL FROM gets 451 4.4.3
#     within spf.timeout + resolver_timeout + 5 s (measured), also for two
#     sessions at once; the script saw weir's queries; weir-milter is still
#     alive and the next connection (a trusted client, which needs no DNS)
#     is served and its mail delivered.
. "$(dirname "$0")/lib.sh"
it_begin "SPF temperror: dead delegation, silent resolver"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
command -v dig >/dev/null || it_skip "dig not installed (dnsutils)"
IT_T0=$SECONDS
S=spf.weir.test

ZONE_FILE=$(mktemp /tmp/weir-it-spfzone.XXXXXX) || it_abort "mktemp failed"
chmod 644 "$ZONE_FILE"
SILENT_PID=
SILENT_LOG=
it_spf_cleanup() {
	local rc=$?
	rm -f -- "$ZONE_FILE" ${SILENT_LOG:+"$SILENT_LOG"}
	if [ -n "$SILENT_PID" ] && pid_alive "$SILENT_PID"; then
		kill "$SILENT_PID" 2>/dev/null
		wait "$SILENT_PID" 2>/dev/null
	fi
	(exit "$rc")
	it_cleanup
}
trap it_spf_cleanup EXIT
cat >"$ZONE_FILE" <<'EOF'
; 251-spf-temperror
dead.weir.test.   IN NS  ns.nowhere.invalid.
incdead.spf       IN TXT "v=spf1 include:dead.weir.test -all"
pass.spf          IN TXT "v=spf1 ip4:127.0.0.2 -all"
EOF

CONF_BASE="
trusted_networks = (\"127.0.0.1/32\");
local_domains = (\"local.weir.test\");"

# send NAME IP HELO SENDER [swaks args...]: one session from IP to
# rcpt@local; sets SW, QID, tok, ELAPSED (seconds, 0.1 s)
send() {
	local name=$1 ip=$2 helo=$3 sender=$4 t0 t1
	shift 4
	tok=$(token)
	SW=$D/log/smtp-$name.log
	t0=$(date +%s%N)
	swaks --server "127.0.0.1:$SMTP_PORT" --local-interface "$ip" --helo "$helo" \
		--from "${sender:-<>}" --to "rcpt@$LOCAL_DOMAIN" --header "Subject: $tok" --body "body $tok" \
		--timeout 60 "$@" >"$SW" 2>&1
	t1=$(date +%s%N)
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	QID=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' "$SW" | tail -n 1)
}

soon() {
	wait_for 5 "$@" && return 0
	"$@"
}

# lt A B: the number A is below B
lt() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }' && return 0
	echo "    $1 is not below $2"
	return 1
}

# names REPLY WORD...: REPLY holds every WORD
names() {
	local r=$1 w
	shift
	for w in "$@"; do
		case $r in
		*"$w"*) ;;
		*) echo "    no '$w' in: $r"; return 1 ;;
		esac
	done
}

# tempfailed NAME DOMAIN IP [MAX_SECS]: the last session got 451 4.4.3 at
# MAIL FROM naming DOMAIN and IP, nothing was queued or delivered, and the
# log has the decision line and spf=temperror
tempfailed() {
	local name=$1 dom=$2 ip=$3 max=${4:-}
	check "$name: MAIL FROM: 451 4.4.3 (after ${ELAPSED}s)" reply_matches MAIL '^451 4\.4\.3 '
	check "$name: the reply names $dom and $ip" names "$(sw_reply MAIL)" "$dom" "$ip"
	[ -n "$max" ] && check "$name: the reply came within ${max}s (took ${ELAPSED}s)" lt "$ELAPSED" "$max"
	check "$name: nothing queued (no queue id)" test -z "$QID"
	check "$name: log: decision line rule=spf action=tempfail reply=\"451 4.4.3 ...\"" \
		soon decision_is spf tempfail outside - 'reply="451 4\.4\.3 '
	check "$name: log: spf=temperror" soon log_has_since ' spf=temperror( |$)'
}

# ==================================================================================
# (a) a delegation to a name server that does not exist
it_start_policy_stack "$CONF_BASE
spf = { preflight = \"off\"; };" WEIR_STACK_ZONE_EXTRA="$ZONE_FILE"
check "DNS: nsd answers dead.weir.test with a referral (NS ns.nowhere.invalid), no TXT" \
	bash -c "dig +norecurse -p $DNS_PORT @127.0.0.1 TXT dead.weir.test | grep -qE 'NS[[:space:]]+ns\.nowhere\.invalid'"

log_mark
send dead-mailfrom 127.0.0.2 client.weir.test "x@dead.weir.test"
tempfailed "MAIL FROM x@dead.weir.test" dead.weir.test 127.0.0.2 30
tok_a1=$tok

log_mark
send dead-include 127.0.0.2 client.weir.test "x@incdead.$S"
tempfailed "MAIL FROM x@incdead (include:dead.weir.test)" "incdead.$S" 127.0.0.2 30
tok_a2=$tok

log_mark
send dead-helo 127.0.0.2 mail.dead.weir.test ""
tempfailed "MAIL FROM:<>, HELO mail.dead.weir.test" mail.dead.weir.test 127.0.0.2 30
tok_a3=$tok

check "(a): Postfix logged the milter's 451 4.4.3 at MAIL" \
	grep -qE "milter-reject: MAIL from .*451 4\.4\.3 " "$POSTFIX_LOG"
check "(a): Postfix's queue is empty (nothing accepted)" wait_queue_empty 10
check "(a): nothing reached the sink" \
	bash -c "! grep -lF -e '$tok_a1' -e '$tok_a2' -e '$tok_a3' '$SINK_DIR'/*.eml 2>/dev/null | grep -q ."
check "(a): weir-milter is alive" pid_alive "$MILTER_PID"

# ==================================================================================
# (b) a resolver that never answers
SPF_TIMEOUT=3 RESOLVER_TIMEOUT=2
BOUND=$((SPF_TIMEOUT + RESOLVER_TIMEOUT + 5))
SILENT_PORT=$(free_port) || it_abort "no free port"
SILENT_LOG=$(mktemp /tmp/weir-it-silent.XXXXXX) || it_abort "mktemp failed"
(exec "$PY" "$REPO/tests/spf/stack-silent-dns.py" "$SILENT_PORT" 150 >"$SILENT_LOG" 2>&1) &
SILENT_PID=$!
wait_for 10 grep -q '^ready' "$SILENT_LOG" || it_abort "stack-silent-dns.py did not start: $(cat "$SILENT_LOG")"
it_say "silent DNS server on 127.0.0.1@$SILENT_PORT (pid $SILENT_PID)"
it_restart_policy_stack "$CONF_BASE
resolver_timeout = \"${RESOLVER_TIMEOUT}s\";
spf = { preflight = \"off\"; timeout = \"${SPF_TIMEOUT}s\"; };" \
	WEIR_STACK_RESOLVER="127.0.0.1@$SILENT_PORT" WEIR_STACK_SMARTHOST_HOST='[127.0.0.1]'
check "(b): weir.conf's resolver is the silent server" grep -qF "resolver = \"127.0.0.1@$SILENT_PORT\";" "$WEIR_CONF"

log_mark
send silent-1 127.0.0.2 client.weir.test "x@pass.$S" --quit-after MAIL
tempfailed "silent resolver" "pass.$S" 127.0.0.2 "$BOUND"
check "(b): the silent server got weir's queries" grep -q '^query' "$SILENT_LOG"

# two sessions at once: both answered within the bound
log_mark
pids=
for n in 2a 2b; do
	(
		send "silent-$n" "127.0.0.$([ $n = 2a ] && echo 2 || echo 3)" client.weir.test "x@$n.$S" --quit-after MAIL
		echo "$ELAPSED" >"$D/log/silent-$n.elapsed"
	) &
	pids="$pids $!"
done
# shellcheck disable=SC2086
wait $pids # not a bare wait: the silent server is a child too
for n in 2a 2b; do
	check "two at once ($n): MAIL FROM: 451 4.4.3" reply_matches MAIL '^451 4\.4\.3 ' "$D/log/smtp-silent-$n.log"
	check "two at once ($n): within ${BOUND}s ($(cat "$D/log/silent-$n.elapsed" 2>/dev/null)s)" \
		lt "$(cat "$D/log/silent-$n.elapsed" 2>/dev/null || echo 999)" "$BOUND"
done
check "two at once: two decision lines rule=spf action=tempfail" \
	soon test "$(decision_count ' rule=spf( |$)' ' action=tempfail( |$)' 'reply="451 4\.4\.3 ')" = 2

check "(b): weir-milter is still alive" pid_alive "$MILTER_PID"
log_mark
send next-trusted 127.0.0.1 client.weir.test "x@$OTHER_DOMAIN"
check "(b): the next connection (trusted, no DNS) is served: 250 at end of data (${ELAPSED}s)" \
	reply_matches DATA '^250 '
check "(b): and its mail is delivered" wait_sink "$tok" 1 30
check "(b): weir-milter logged it (per-message line decision=accept)" \
	soon msg_decision accept 'identity=trusted'

it_say "run time: $((SECONDS - IT_T0)) s"
it_end

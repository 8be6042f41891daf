#!/bin/bash
# 270-rate: rate limits and quotas on one gateway (issue 6, memory backend)
# through the real stack: swaks -> Postfix (real SMTP AUTH, open) ->
# weir-milter -> weir-agent -> sink. Checked against the issue 6 spec, not
# against the code:
#   - a login over its burst: 451 4.7.0 "rate limit NAME exceeded for
#     VALUE: try again in N seconds" at MAIL (count = messages) or at RCPT
#     (count = recipients), N as the GCRA gives it; the decision line
#     rule=rate action=tempfail limit=NAME key=VALUE retry_after=N
#     reply="..."; the message line rate=ok / rate=NAME:ACTION
#   - recipients counted one by one in multi-recipient messages; the sink
#     gets exactly the accepted recipients
#   - login+rcpt_domain counted once per recipient domain and message
#   - action reject (550 5.7.1), hold (Postfix's hold queue, released
#     afterwards: nothing lost), log (delivered, logged)
#   - overrides: a login with more, a network unlimited
#   - a daily quota survives a clean restart and a crash (SIGKILL after the
#     flush interval) of weir-milter: 451 4.7.0 "daily quota of N reached
#     for VALUE: resets at <next 00:00 UTC>"
#   - a reload (SIGUSR1) changes a limit and keeps the counters
#   - weirctl rate show lists a key with its state after the flush
#     interval; weirctl rate reset clears it, mail flows after the next flush
# One stack; each scenario has its own login and a limit only that login is
# subject to (the other logins are "unlimited" overrides of it).
. "$(dirname "$0")/lib.sh"
it_begin "rate limits and quotas on one gateway (memory backend)"
it_need_binaries milter agent weirctl
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
command -v sqlite3 >/dev/null || true
IT_T0=$SECONDS
. "$REPO/tests/rate/rate-lib.sh"

RATE_LOGINS="alice bob carol dave erin fred small big gina quinn rita sam multi multi2"
users=
for l in $RATE_LOGINS; do users="$users $l:$l-secret"; done

# rate.state_db: a directory weir (weir-milter's user) may write; made
# before the stack exists, so not under $D
T=$(mktemp -d /tmp/weir-it-rate.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
chown weir "$T" || it_abort "chown weir $T failed"
rate_cleanup() {
	local rc=$?
	if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ] || [ "$rc" = 77 ]; then
		rm -rf -- "$T"
	else
		it_say "state directory kept: $T"
	fi
	(exit "$rc")
	it_cleanup
}
trap rate_cleanup EXIT
FLUSH=1

senders=
for l in $RATE_LOGINS; do senders="$senders${senders:+, }{ login = \"$l\"; addresses = (\"$l@$LOCAL_DOMAIN\"); }"; done
CONF="
trusted_networks = (\"127.0.0.1/32\");
local_domains = (\"$LOCAL_DOMAIN\");
senders = { map = ( $senders ); };
rate = {
  backend = \"memory\";
  state_db = \"$T/rate.db\";
  flush_interval = \"${FLUSH}s\";
  limits = (
    { name = \"msgs\"; key = \"login\"; count = \"messages\"; rate = \"3/1h\"; burst = 3;
      $(rate_scope alice) },
    { name = \"rcpts\"; key = \"login\"; count = \"recipients\"; rate = \"5/1h\"; burst = 5;
      $(rate_scope bob) },
    { name = \"ldom\"; key = \"login+rcpt_domain\"; count = \"messages\"; rate = \"2/1h\"; burst = 2;
      $(rate_scope carol) },
    { name = \"rej\"; key = \"login\"; rate = \"1/1h\"; burst = 1; action = \"reject\";
      $(rate_scope dave) },
    { name = \"held\"; key = \"login\"; rate = \"1/1h\"; burst = 1; action = \"hold\";
      $(rate_scope erin) },
    { name = \"logged\"; key = \"login\"; rate = \"1/1h\"; burst = 1; action = \"log\";
      $(rate_scope fred) },
    { name = \"ovr\"; key = \"login\"; rate = \"2/1h\"; burst = 2;
      $(rate_scope "small big" '{ login = "big"; rate = "5/1h"; burst = 5; }') },
    { name = \"net\"; key = \"login\"; rate = \"1/1h\"; burst = 1;
      $(rate_scope gina '{ network = "127.0.0.2/32"; unlimited = true; }') },
    { name = \"quota\"; key = \"login\"; quota = \"4/1d\";
      $(rate_scope quinn) },
    { name = \"reload\"; key = \"login\"; rate = \"4/1h\";
      burst = 4; # reload-burst
      $(rate_scope rita) },
    { name = \"rst\"; key = \"login\"; rate = \"2/1h\"; burst = 2;
      $(rate_scope sam) },
    { name = \"m-hold\"; key = \"login\"; rate = \"1/1h\"; burst = 1; action = \"hold\";
      $(rate_scope multi) },
    { name = \"m-temp\"; key = \"login\"; rate = \"2/1h\"; burst = 2;
      $(rate_scope multi) },
    { name = \"m-rej\"; key = \"login\"; rate = \"1/1h\"; burst = 1; action = \"reject\";
      $(rate_scope multi2) },
    { name = \"m-cnt\"; key = \"login\"; rate = \"3/1h\"; burst = 3;
      $(rate_scope multi2) },
    { name = \"cli\"; key = \"client\"; ipv4_prefix = 24; rate = \"2/1h\"; burst = 2;
      identities = (\"outside\"); },
    { name = \"snd\"; key = \"sender\"; rate = \"1/1h\"; burst = 1;
      identities = (\"trusted\"); }
  );
};"
it_start_policy_stack "$CONF" WEIR_STACK_SASL_USERS="$users"
it_say "stack up after $((SECONDS - IT_T0))s"

# msg NAME IP LOGIN RCPTS [swaks args]: a message (unique token in TOK)
# from LOGIN@local.weir.test (or $MSG_FROM); transcript in $SW
TOK=
msg() {
	local name=$1 ip=$2 login=$3 to=$4
	shift 4
	TOK=$(token)
	rate_send "$name-$IT_SEQ-$RANDOM" "$ip" "$login" "${MSG_FROM:-$login@$LOCAL_DOMAIN}" "$to" \
		--header "Subject: weir rate $TOK" --body "rate test $TOK" "$@"
}
# accepted: MAIL, every RCPT and the end of data got 250
accepted() {
	local bad=0 r
	reply_matches MAIL '^250 ' || bad=1
	while read -r r; do
		case $r in 250*) ;; *) echo "    a RCPT got '$r' ($SW)"; bad=1 ;; esac
	done < <(rcpt_replies)
	[ -n "$(rcpt_replies)" ] || { echo "    no RCPT reply in $SW"; bad=1; }
	reply_matches DATA '^250 ' || bad=1
	return "$bad"
}
# replies_are GLOB...: the replies to the RCPTs of $SW are, in order, one
# per GLOB (bash patterns)
replies_are() {
	local -a got
	local i
	mapfile -t got < <(rcpt_replies)
	if [ "${#got[@]}" = $# ]; then
		i=0
		for p in "$@"; do
			# shellcheck disable=SC2053
			[[ "${got[$i]}" == $p ]] || break
			i=$((i + 1))
		done
		[ "$i" = $# ] && return 0
	fi
	echo "    RCPT replies in $SW:"
	printf '      %s\n' "${got[@]}"
	echo "    want:"
	printf '      %s\n' "$@"
	return 1
}
# is_like GOT GLOB [HINT]: GOT matches the bash pattern GLOB
is_like() {
	# shellcheck disable=SC2053
	[[ "$1" == $2 ]] && return 0
	echo "    got:  '$1'"
	echo "    want: '$2'${3:+ ($3)}"
	return 1
}
# retry_secs CMD: N of "try again in N seconds" in the reply to CMD
retry_secs() {
	sw_reply "$1" | sed -n 's/.*try again in \([0-9][0-9]*\) seconds.*/\1/p'
}
# between N LO HI
between() {
	[ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] && return 0
	echo "    want a number in [$2, $3], got '$1'"
	return 1
}
# msg_line ERE...: a per-message line (decision=) since log_mark matches
# every ERE
msg_line() {
	local l e
	l=$(log_since | grep -E ' decision=[a-z]+')
	for e in "$@"; do l=$(printf '%s\n' "$l" | grep -E -- "$e"); done
	[ -n "$l" ] && return 0
	echo "    no message line matching $* since the mark; message lines:"
	log_since | grep -E ' decision=' | sed 's/^/      /' | tail -n 4
	return 1
}
# rate_decision ACTION LOGIN LIMIT KEY [ERE...]: exactly one decision line
# rule=rate action=ACTION since log_mark with limit=LIMIT key=KEY
rate_decision() {
	local action=$1 login=$2 limit=$3 key=$4
	shift 4
	decision_is rate "$action" authenticated "$login" " limit=$(ere_quote "$limit")( |$)" \
		" key=$(ere_quote "$key")( |$)" ' retry_after=[0-9]+( |$)' "$@"
}
# the rate decision line's retry_after
log_retry_after() {
	log_since | grep -E ' rule=rate ' | tail -n 1 | sed -n 's/.* retry_after=\([0-9]*\).*/\1/p'
}
# sink_gets TOKEN RCPT...: the sink got TOKEN for exactly RCPT... (sorted)
sink_gets() {
	local tok=$1 want got
	shift
	wait_sink "$tok" 1 30 || { echo "    $tok never reached the sink"; return 1; }
	sleep 1 # a second delivery for the same message would show up now
	want=$(printf '<%s>\n' "$@" | sort)
	got=$(sink_rcpts "$tok")
	[ "$want" = "$got" ] && return 0
	echo "    sink recipients for $tok: want $(echo $want), got $(echo $got)"
	return 1
}
R=rcpt@$OTHER_DOMAIN
T1=127.0.0.1

# --- 1. a login over its burst, messages: 451 4.7.0 at MAIL -----------------------
log_mark
for i in 1 2 3; do
	msg msgs $T1 alice "$R"
	check "msgs: alice's message $i of burst 3 accepted" accepted
done
three_ok() { [ "$(log_since | grep -E ' login=alice .* decision=accept' | grep -cE ' rate=ok( |$)')" = 3 ]; }
check "msgs: the 3 message lines say rate=ok" wait_for 5 three_ok
log_mark
msg msgs $T1 alice "$R" --quit-after RCPT
check "msgs: alice's 4th message: 451 4.7.0 at MAIL with the retry hint" \
	reply_matches MAIL '^451 4\.7\.0 rate limit msgs exceeded for alice: try again in [0-9]+ seconds'
n=$(retry_secs MAIL)
# 3/1h: T = 1200 s, capacity 3600 s; after 3 charges the 4th may go in 1200 s
check "msgs: the retry hint is the GCRA's (1200 s, less the seconds elapsed)" between "$n" 1140 1200
check "msgs: decision line rule=rate action=tempfail limit=msgs key=alice retry_after=$n" \
	rate_decision tempfail alice msgs alice " retry_after=$n( |$)" \
	"reply=\"451 4\\.7\\.0 rate limit msgs exceeded for alice: try again in $n seconds\""
check "msgs: the message line says rate=msgs:tempfail" msg_line ' rate=msgs:tempfail( |$)'
msg msgs $T1 alice "$R" --quit-after RCPT
check "msgs: alice's 5th message: 451 4.7.0 at MAIL as well" reply_matches MAIL '^451 4\.7\.0 rate limit msgs'

# --- 2. recipients counted one by one ------------------------------------------------
msg rcpts $T1 bob "r1@$OTHER_DOMAIN,r2@$OTHER_DOMAIN,r3@$OTHER_DOMAIN"
tokA=$TOK
check "rcpts: bob's 3-recipient message accepted (burst 5)" accepted
check "rcpts: the sink gets all 3 recipients" sink_gets "$tokA" "r1@$OTHER_DOMAIN" "r2@$OTHER_DOMAIN" "r3@$OTHER_DOMAIN"
log_mark
msg rcpts $T1 bob "r4@$OTHER_DOMAIN,r5@$OTHER_DOMAIN,r6@$OTHER_DOMAIN"
tokB=$TOK
check "rcpts: second message: MAIL accepted (recipients are counted at RCPT)" reply_matches MAIL '^250 '
check "rcpts: second message: 1st and 2nd RCPT 250, 3rd 451 4.7.0 with the retry hint" \
	replies_are '250 *' '250 *' '451 4.7.0 rate limit rcpts exceeded for bob: try again in [0-9]* seconds'
n=$(rcpt_replies | sed -n '3s/.*try again in \([0-9]*\) seconds.*/\1/p')
# 5/1h: T = 720 s
check "rcpts: the retry hint is the GCRA's (720 s, less the seconds elapsed)" between "$n" 690 720
check "rcpts: the message itself is accepted for the 2 recipients" reply_matches DATA '^250 '
check "rcpts: the sink gets exactly r4 and r5" sink_gets "$tokB" "r4@$OTHER_DOMAIN" "r5@$OTHER_DOMAIN"
check "rcpts: decision line limit=rcpts key=bob retry_after=$n" \
	rate_decision tempfail bob rcpts bob " retry_after=$n( |$)" 'reply="451 4\.7\.0 rate limit rcpts exceeded for bob'
check "rcpts: the message line says rate=rcpts:tempfail and nrcpt=2" msg_line ' rate=rcpts:tempfail( |$)' ' nrcpt=2( |$)'
msg rcpts $T1 bob "r7@$OTHER_DOMAIN" --quit-after RCPT
check "rcpts: third message: MAIL 250" reply_matches MAIL '^250 '
check "rcpts: third message: its RCPT 451 4.7.0" replies_are '451 4.7.0 rate limit rcpts exceeded for bob: try again in *'

# --- 3. login+rcpt_domain: once per recipient domain and message -----------------------
D1=one.weir.test D2=two.weir.test D3=three.weir.test
msg ldom $T1 carol "a@$D1,b@$D1,c@$D2"
check "ldom: carol to 2 recipients at $D1 and 1 at $D2 accepted" accepted
msg ldom $T1 carol "d@$D1"
check "ldom: a second message to $D1 accepted (the first counted $D1 once, burst 2)" accepted
log_mark
msg ldom $T1 carol "e@$D1,f@$D2"
tok=$TOK
check "ldom: third message: RCPT at $D1 451 4.7.0 (key carol|$D1), at $D2 250" \
	replies_are "451 4.7.0 rate limit ldom exceeded for carol|$D1: try again in * seconds" '250 *'
check "ldom: decision line limit=ldom key=carol|$D1" rate_decision tempfail carol ldom "carol|$D1"
check "ldom: the sink gets f@$D2 only" sink_gets "$tok" "f@$D2"
msg ldom $T1 carol "g@$D2,h@$D3" --quit-after RCPT
check "ldom: fourth message: $D2 now 451 4.7.0, $D3 250" \
	replies_are "451 4.7.0 rate limit ldom exceeded for carol|$D2: try again in * seconds" '250 *'

# --- 4. action reject: 550 5.7.1 -------------------------------------------------------
msg rej $T1 dave "$R"
check "rej: dave's first message accepted" accepted
log_mark
msg rej $T1 dave "$R" --quit-after RCPT
check "rej: dave's second message: 550 5.7.1 at MAIL with the same text" \
	reply_matches MAIL '^550 5\.7\.1 rate limit rej exceeded for dave: try again in [0-9]+ seconds'
check "rej: decision line action=reject limit=rej key=dave" rate_decision reject dave rej dave 'reply="550 5\.7\.1 '
check "rej: the message line says rate=rej:reject" msg_line ' rate=rej:reject( |$)'

# --- 5. action hold: the message goes to Postfix's hold queue -------------------------------
# held_qid QID: postqueue -j lists QID in the hold queue
held_qid() {
	postqueue -c "$POSTFIX_CONFIG_DIR" -j 2>/dev/null |
		$PY -c 'import json,sys
q = sys.argv[1]
sys.exit(0 if any(json.loads(l).get("queue_id") == q and json.loads(l).get("queue_name") == "hold" for l in sys.stdin if l.strip()) else 1)' "$1"
}
msg held $T1 erin "$R"
tok1=$TOK
check "hold: erin's first message accepted" accepted
check "hold: and delivered" wait_sink "$tok1" 1 30
log_mark
msg held $T1 erin "$R"
tokh=$TOK qidh=$QID
check "hold: erin's second message (over the burst) is accepted by SMTP (250 at MAIL, RCPT, end of data)" accepted
check "hold: postqueue -j shows it ($qidh) in the hold queue" wait_for 10 held_qid "$qidh"
check "hold: postqueue -p marks it held (!)" bash -c "postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -qE '^$qidh!'"
check "hold: decision line action=hold limit=held key=erin" \
	test "$(decision_count ' rule=rate( |$)' ' action=hold( |$)' ' limit=held( |$)' ' key=erin( |$)' ' login=erin( |$)')" = 1
check "hold: the message line says rate=held:hold" msg_line ' rate=held:hold( |$)'
check "hold: Postfix logged the milter's hold for $qidh" wait_log "$POSTFIX_LOG" "$qidh: .*(hold|HOLD)" 10
check "hold: not delivered while held" sink_none_with "$tokh" 3
postsuper -c "$POSTFIX_CONFIG_DIR" -H "$qidh" >/dev/null 2>&1
postqueue -c "$POSTFIX_CONFIG_DIR" -i "$qidh" >/dev/null 2>&1
check "hold: released by the administrator (postsuper -H), it is delivered: nothing lost" wait_sink "$tokh" 1 30

# --- 6. action log: delivered and logged -----------------------------------------------
msg logged $T1 fred "$R"
check "log: fred's first message accepted" accepted
log_mark
msg logged $T1 fred "$R"
tok=$TOK
check "log: fred's second message (over the burst) accepted" accepted
check "log: and delivered" wait_sink "$tok" 1 30
check "log: decision line action=log limit=logged key=fred" \
	test "$(decision_count ' rule=rate( |$)' ' action=log( |$)' ' limit=logged( |$)' ' key=fred( |$)' ' login=fred( |$)')" = 1
check "log: the message line says rate=logged:log" msg_line ' rate=logged:log( |$)'

# --- 7. overrides: a login with more, a network unlimited --------------------------------------
# count_ok LOGIN IP N: N sessions; echo how many were accepted before the
# first refusal, and the refusal's MAIL reply
burst_of() {
	local login=$1 ip=$2 n=$3 i ok=0
	for ((i = 0; i < n; i++)); do
		msg "burst-$login" "$ip" "$login" "$R" --quit-after RCPT
		case $(sw_reply MAIL) in
		250*) ok=$((ok + 1)) ;;
		*) break ;;
		esac
	done
	echo "$ok|$(sw_reply MAIL)"
}
got=$(burst_of small $T1 4)
check "ovr: small (limit burst 2) gets 2, then 451 4.7.0" \
	is_like "$got" "2|451 4.7.0 rate limit ovr exceeded for small: *"
log_mark
got=$(burst_of big $T1 7)
check "ovr: big (override burst 5) gets 5, then 451 4.7.0" \
	is_like "$got" "5|451 4.7.0 rate limit ovr exceeded for big: *"
n=$(printf '%s' "$got" | sed -n 's/.*try again in \([0-9]*\) seconds.*/\1/p')
check "ovr: big's retry hint is the override's rate (5/1h: 720 s)" between "$n" 690 720
check "ovr: decision line limit=ovr key=big" rate_decision tempfail big ovr big

msg net $T1 gina "$R"
check "net: gina from 127.0.0.1: first message accepted (burst 1)" accepted
msg net $T1 gina "$R" --quit-after RCPT
check "net: gina from 127.0.0.1: second message 451 4.7.0" reply_matches MAIL '^451 4\.7\.0 rate limit net exceeded for gina: '
ok=0
for i in 1 2 3; do
	msg net 127.0.0.2 gina "$R"
	accepted >/dev/null && ok=$((ok + 1))
	tok=$TOK
done
check "net: gina from 127.0.0.2 (network override, unlimited): 3 of 3 accepted" test "$ok" = 3
check "net: the last of them is delivered" wait_sink "$tok" 1 30
msg net $T1 gina "$R" --quit-after RCPT
check "net: gina from 127.0.0.1 again: still 451 4.7.0" reply_matches MAIL '^451 4\.7\.0 rate limit net exceeded for gina: '

# --- 8. a daily quota survives restarts (clean and crash) ----------------------------------
now=$(date -u +%s)
left=$((86400 - now % 86400))
if [ "$left" -lt 90 ]; then
	it_say "quota: $left s to 00:00 UTC, waiting for the new day"
	sleep $((left + 2))
fi
for i in 1 2; do
	msg quota $T1 quinn "$R"
	check "quota: quinn's message $i of 4/1d accepted" accepted
done
pid0=$MILTER_PID
check "quota: weir-milter restarted (SIGTERM, then started again)" milter_restart term
check "quota: a new weir-milter process" test "$MILTER_PID" != "$pid0"
msg quota $T1 quinn "$R"
check "quota: after the restart quinn's 3rd message accepted" accepted
sleep $((FLUSH * 2 + 1))
check "quota: weir-milter crashed (SIGKILL after the flush interval) and started again" milter_restart kill
msg quota $T1 quinn "$R"
check "quota: after the crash quinn's 4th message accepted" accepted
log_mark
msg quota $T1 quinn "$R" --quit-after RCPT
tomorrow=$(date -u -d "@$(( ($(date -u +%s) / 86400 + 1) * 86400 ))" +%FT%TZ)
check "quota: quinn's 5th message: 451 4.7.0 daily quota of 4 reached, resets at $tomorrow (the counts of both lives of weir-milter kept)" \
	reply_matches MAIL "^451 4\\.7\\.0 .*daily quota of 4 reached for quinn.*: resets at $tomorrow"
check "quota: the reply's text is the spec's (\"daily quota of 4 reached for quinn: resets at $tomorrow\")" \
	reply_matches MAIL "^451 4\\.7\\.0 .*daily quota of 4 reached for quinn: resets at $tomorrow\$"
n=$(log_retry_after)
want=$(( ($(date -u +%s) / 86400 + 1) * 86400 - $(date -u +%s) ))
check "quota: decision line limit=quota key=quinn, retry_after = seconds to 00:00 UTC ($want)" \
	rate_decision tempfail quinn quota quinn
check "quota: retry_after $n is the time to the reset" between "$n" $((want - 5)) $((want + 5))
check "quota: weir-milter restarted once more (SIGTERM)" milter_restart term
msg quota $T1 quinn "$R" --quit-after RCPT
check "quota: after that restart still 451 4.7.0 quota reached" reply_matches MAIL "^451 4\\.7\\.0 .*daily quota of 4 reached for quinn"

# --- 9. a reload changes a limit, counters kept ------------------------------------------
for i in 1 2 3; do
	msg reload $T1 rita "$R"
	check "reload: rita's message $i of burst 4 accepted" accepted
done
sed -i 's/burst = 4; # reload-burst/burst = 6; # reload-burst/' "$WEIR_CONF"
check "reload: weir.conf changed (burst 4 -> 6)" grep -q 'burst = 6; # reload-burst' "$WEIR_CONF"
pid0=$MILTER_PID
check "reload: weir-milter reloads on SIGUSR1" milter_reload
# 4/1h, burst 6: 3 used (counters kept) leaves 3; reset counters would
# leave 6, the old limit 1
got=$(burst_of rita $T1 7)
check "reload: rita now gets exactly 3 more (burst 6 less the 3 counted before the reload), then 451 4.7.0" \
	is_like "$got" "3|451 4.7.0 rate limit reload exceeded for rita: *" "6 would mean the counters were reset, 1 that the limit did not change"
check "reload: the same weir-milter process" pid_alive "$pid0"

# --- 10. weirctl rate show / reset -----------------------------------------------
for i in 1 2; do
	msg rst $T1 sam "$R"
	check "reset: sam's message $i of burst 2 accepted" accepted
done
msg rst $T1 sam "$R" --quit-after RCPT
check "reset: sam's 3rd message 451 4.7.0" reply_matches MAIL '^451 4\.7\.0 rate limit rst exceeded for sam: '
show_has() {
	"$WEIRCTL" -c "$WEIR_CONF" rate show "$@" 2>&1 | grep -E '^rst:sam ' | grep -qE 'remaining=0( |$)'
}
check "reset: weirctl rate show (after the flush interval) lists rst:sam with remaining 0" wait_for $((FLUSH * 3 + 2)) show_has
out=$("$WEIRCTL" -c "$WEIR_CONF" rate show 2>&1)
it_say "weirctl rate show: $(printf '%s\n' "$out" | grep -E '^(#|rst:sam|quota:quinn)' | tr '\n' '|')"
check "reset: weirctl rate show rst:sam prints its state" show_has rst:sam
check "reset: weirctl rate show lists quota:quinn with its reset time $tomorrow" \
	bash -c 'printf "%s\n" "$1" | grep -E "^quota:quinn " | grep -qF "$2"' _ "$out" "$tomorrow"
check "reset: weirctl rate reset rst:sam" "$WEIRCTL" -c "$WEIR_CONF" rate reset rst:sam
sam_ok() {
	msg rst $T1 sam "$R"
	accepted >/dev/null
}
check "reset: after the next flush sam's mail flows again" wait_for $((FLUSH * 3 + 3)) sam_ok
msg rst $T1 sam "$R"
check "reset: sam has the whole burst back (the 2nd after the reset accepted)" accepted
msg rst $T1 sam "$R" --quit-after RCPT
check "reset: and the 3rd is refused again" reply_matches MAIL '^451 4\.7\.0 rate limit rst exceeded for sam: '

# --- 11. several limits: the strictest action wins; all or nothing -----------------
# multi: m-hold (hold, burst 1) and m-temp (tempfail, burst 2)
msg multi $T1 multi "$R"
check "multi: first message accepted by both limits" accepted
log_mark
msg multi $T1 multi "$R"
qidm=$QID
check "multi: second message: only m-hold denies: accepted by SMTP" accepted
check "multi: and held ($qidm), the charge forced" wait_for 10 held_qid "$qidm"
log_mark
msg multi $T1 multi "$R" --quit-after RCPT
check "multi: third message: m-hold (hold) and m-temp (tempfail, charged by the forced hold) deny: tempfail wins, 451 4.7.0 m-temp" \
	reply_matches MAIL '^451 4\.7\.0 rate limit m-temp exceeded for multi: '
check "multi: its decision line says action=tempfail limit=m-temp" rate_decision tempfail multi m-temp multi
postsuper -c "$POSTFIX_CONFIG_DIR" -H "$qidm" >/dev/null 2>&1
# multi2: m-rej (reject, burst 1) and m-cnt (tempfail, burst 3)
msg multi2 $T1 multi2 "$R"
check "multi2: first message accepted by both limits" accepted
msg multi2 $T1 multi2 "$R" --quit-after RCPT
check "multi2: second message: m-rej denies: 550 5.7.1" reply_matches MAIL '^550 5\.7\.1 rate limit m-rej exceeded for multi2: '
cnt_two() { "$WEIRCTL" -c "$WEIR_CONF" rate show m-cnt:multi2 2>&1 | grep -E '^m-cnt:multi2 ' | grep -qE 'rate_remaining=2( |$)'; }
check "multi2: the refused message charged nothing: weirctl rate show m-cnt:multi2 says rate_remaining=2 (after the flush)" \
	wait_for $((FLUSH * 3 + 2)) cnt_two
"$WEIRCTL" -c "$WEIR_CONF" rate show m-cnt:multi2 2>&1 | sed 's/^/    /'

# --- 12. a client key with prefix aggregation, outside clients only -------------------
# cli: key client, ipv4_prefix 24, identities outside, burst 2: 127.0.0.3,
# .4 and .5 are one key 127.0.0.0/24 (the SPF of example.weir.test passes
# 127.0.0.0/8)
for ip in 127.0.0.3 127.0.0.4; do
	MSG_FROM=x@example.weir.test msg cli $ip "" "rcpt@$LOCAL_DOMAIN"
	check "cli: outside client $ip accepted" accepted
done
log_mark
MSG_FROM=x@example.weir.test msg cli 127.0.0.5 "" "rcpt@$LOCAL_DOMAIN" --quit-after RCPT
check "cli: outside client 127.0.0.5 (same /24): 451 4.7.0 for 127.0.0.0/24" \
	reply_matches MAIL '^451 4\.7\.0 rate limit cli exceeded for 127\.0\.0\.0/24: try again in [0-9]+ seconds'
check "cli: decision line limit=cli key=127.0.0.0/24" \
	test "$(decision_count ' rule=rate( |$)' ' action=tempfail( |$)' ' limit=cli( |$)' ' key=127\.0\.0\.0/24( |$)')" = 1

# --- 13. a sender key (lowercased), trusted clients only; the null sender -----------
# snd: key sender, identities trusted, burst 1; 127.0.0.1 without AUTH
MSG_FROM=NoReply@Local.Weir.Test msg snd $T1 "" "$R"
check "snd: trusted client, sender <NoReply@Local.Weir.Test>: accepted" accepted
log_mark
MSG_FROM=noreply@local.weir.test msg snd $T1 "" "$R" --quit-after RCPT
check "snd: the same sender in lower case: 451 4.7.0 for noreply@local.weir.test (one key)" \
	reply_matches MAIL '^451 4\.7\.0 rate limit snd exceeded for noreply@local\.weir\.test: try again in [0-9]+ seconds'
check "snd: decision line limit=snd key=noreply@local.weir.test" \
	test "$(decision_count ' rule=rate( |$)' ' action=tempfail( |$)' ' limit=snd( |$)' ' key=noreply@local\.weir\.test( |$)')" = 1
for i in 1 2; do
	MSG_FROM='<>' msg snd $T1 "" "$R"
	check "snd: null sender $i: the sender limit does not apply, accepted" accepted
done

check "weir-milter is running" pid_alive "$MILTER_PID"
check "no crash or sanitizer report in the milter log" \
	bash -c "! grep -qE 'AddressSanitizer|runtime error|fatal|assert' '$MILTER_LOG'"
it_say "run time $((SECONDS - IT_T0))s"
it_end

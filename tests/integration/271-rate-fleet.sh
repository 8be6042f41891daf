#!/bin/bash
# 271-rate-fleet: two gateways share rate limits through one Redis (issue 6,
# rate.backend = "redis"). One redis-server started here on a free loopback
# port, two complete stacks (each its own Postfix, weir-milter, weir-agent,
# sink) with the same limit. Checked against the issue 6 spec:
#   - 40 messages of one login sent concurrently through both gateways
#     against a limit of 20/1h with burst 20: together they accept 20 (+-1),
#     each refusal 451 4.7.0 with the retry hint; both gateways refuse some;
#     the sinks got exactly the accepted messages; the state is a Redis hash
#     <prefix>NAME:VALUE that expires (PEXPIRE); weirctl rate show reads it
#   - Redis stopped mid-test, fail_mode "open": mail flows (even for the
#     exhausted login), each weir-milter logs the outage once at warning,
#     no crash
#   - fail_mode "closed" (a reload, SIGUSR1): 451 4.3.0
#   - Redis started again on the same port (with the data saved before the
#     stop): limits enforced again without restarting weir-milter (the
#     exhausted login gets 451 4.7.0 at the first message after Redis
#     answers again, another login is counted in Redis)
#   - a hung Redis (SIGSTOP): the redis_timeout_ms bounds the session
#     (451 4.3.0 with fail_mode closed), and it is used again after SIGCONT
. "$(dirname "$0")/lib.sh"
it_begin "two gateways share rate limits through Redis; Redis outage and return"
it_need_binaries milter agent weirctl
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
command -v redis-server >/dev/null || it_skip "redis-server not installed"
command -v redis-cli >/dev/null || it_skip "redis-cli not installed (redis-tools)"
IT_T0=$SECONDS
. "$REPO/tests/rate/rate-lib.sh"

T=$(mktemp -d /tmp/weir-it-fleet.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
mkdir "$T/redis" || it_abort "mkdir failed"
DA="" DB="" bstart=""
fleet_cleanup() {
	local rc=$?
	# the second stack may still be starting (the first one failed)
	[ -n "${bstart:-}" ] && wait "$bstart" 2>/dev/null
	if [ -n "$DB" ] && [ -d "$DB" ]; then
		"$STACK/stop" "$DB" >/dev/null 2>&1
		if grep -lE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$DB"/log/weir-*.log >/dev/null 2>&1; then
			echo "FAIL: sanitizer report in a daemon log of the second stack:"
			grep -hE -A30 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$DB"/log/weir-*.log | head -60
			[ "$rc" = 0 ] && rc=1
		fi
		if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ] || [ "$rc" = 77 ]; then
			rm -rf -- "$DB"
		else
			it_say "second stack directory kept: $DB"
		fi
	fi
	redis_stop
	if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ] || [ "$rc" = 77 ]; then
		rm -rf -- "$T"
	else
		it_say "redis/work directory kept: $T"
	fi
	D=$DA
	(exit "$rc")
	it_cleanup
}
trap fleet_cleanup EXIT

RP=$(free_port) || it_abort "no free port"
check "redis-server started on 127.0.0.1:$RP" redis_start "$RP" "$T/redis" || it_abort "no Redis"

LIMIT=20
CONF="
trusted_networks = (\"127.0.0.1/32\");
local_domains = (\"$LOCAL_DOMAIN\");
senders = { map = ( { login = \"alice\"; addresses = (\"alice@$LOCAL_DOMAIN\"); },
                    { login = \"bob\"; addresses = (\"bob@$LOCAL_DOMAIN\"); } ); };
rate = {
  backend = \"redis\";
  redis = \"127.0.0.1:$RP\";
  redis_prefix = \"weir:rate:\";
  redis_timeout_ms = 500;
  fail_mode = \"open\";
  limits = (
    { name = \"fleet\"; key = \"login\"; count = \"messages\"; rate = \"$LIMIT/1h\"; burst = $LIMIT; }
  );
};"
printf '%s\n' "$CONF" >"$T/conf-extra.conf"
chmod 644 "$T/conf-extra.conf"

# the second stack starts in the background while the first one starts
DB=$(mktemp -d /tmp/weir-it.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$DB"
(env WEIR_STACK_SASL=1 WEIR_STACK_POSTFIX_OPEN=1 WEIR_STACK_CONF_EXTRA="$T/conf-extra.conf" \
	"$STACK/start" "$DB" >"$T/start-b.out" 2>&1) &
bstart=$!
it_start_policy_stack "$CONF"
DA=$D
wait "$bstart" || { cat "$T/start-b.out"; it_abort "the second stack did not start"; }
it_say "second $(tail -n 1 "$T/start-b.out")"
it_say "both stacks up after $((SECONDS - IT_T0))s"

# on A|B: make stack A or B the current one (D, ports, logs, PIDs)
on() {
	case $1 in
	A) D=$DA ;;
	B) D=$DB ;;
	esac
	# shellcheck disable=SC1091
	. "$D/stack.env"
}
declare -A PID0 MARK
for s in A B; do
	on $s
	PID0[$s]=$MILTER_PID
done
# mark_all / since S: per-stack milter log marks
mark_all() {
	local s
	for s in A B; do
		on $s
		MARK[$s]=$(wc -l <"$MILTER_LOG")
	done
}
since() {
	on "$1"
	tail -n +"$((MARK[$1] + 1))" "$MILTER_LOG"
}
R=rcpt@$OTHER_DOMAIN

# one STACK LOGIN NAME [swaks args]: one message through STACK from
# 127.0.0.1; prints "MAILCODE DATACODE TOKEN"
one() {
	local s=$1 login=$2 name=$3 tok
	shift 3
	on "$s"
	IT_SEQ=$((IT_SEQ + 1))
	tok=tok-fleet-$s-$BASHPID-$IT_SEQ-$RANDOM$RANDOM
	smtp "$name-$s-$BASHPID-$IT_SEQ" -i 127.0.0.1 -u "$login" --from "$login@$LOCAL_DOMAIN" --to "$R" \
		--timeout 15 --header "Subject: weir fleet $tok" --body "fleet $tok" "$@"
	echo "$(sw_reply MAIL | cut -c1-3) $(sw_reply DATA | cut -c1-3) $tok $SW"
}

is_250() { case $1 in "250 250 "*) return 0 ;; esac; echo "    got: $1"; return 1; }

# --- 1. 40 messages of alice through both gateways at once --------------------------
# four workers, two per gateway, ten messages each, all at the same time
mark_all
t0=$SECONDS
workers=()
for s in A B; do
	for w in 1 2; do
		(
			for ((i = 0; i < 10; i++)); do
				one "$s" alice "load-$w" >>"$T/load-$s-$w.out"
			done
		) &
		workers+=($!)
	done
done
wait "${workers[@]}"
it_say "40 sessions in $((SECONDS - t0))s"
cat "$T"/load-*.out >"$T/load.all"
acc_a=$(cat "$T"/load-A-*.out | grep -c '^250 250 ')
acc_b=$(cat "$T"/load-B-*.out | grep -c '^250 250 ')
ref_a=$(cat "$T"/load-A-*.out | grep -c '^451 ')
ref_b=$(cat "$T"/load-B-*.out | grep -c '^451 ')
acc=$((acc_a + acc_b))
it_say "accepted: A $acc_a, B $acc_b (total $acc); refused with 451: A $ref_a, B $ref_b"
check "all 40 sessions answered (250 or 451 at MAIL)" test "$(grep -cE '^(250 250|451 ) ' "$T/load.all")" = 40
check "together the two gateways accepted $LIMIT +- 1 (got $acc)" test "$acc" -ge $((LIMIT - 1)) -a "$acc" -le $((LIMIT + 1))
check "both gateways accepted some (A $acc_a, B $acc_b)" test "$acc_a" -gt 0 -a "$acc_b" -gt 0
check "both gateways refused some: they share the counter (A $ref_a, B $ref_b)" test "$ref_a" -gt 0 -a "$ref_b" -gt 0
refusals_ok() {
	local bad=0 l f
	while read -r l; do
		f=${l##* }
		reply_matches MAIL '^451 4\.7\.0 rate limit fleet exceeded for alice: try again in [0-9]+ seconds' "$f" || bad=1
	done < <(grep '^451 ' "$T/load.all")
	return "$bad"
}
check "every refusal is 451 4.7.0 rate limit fleet exceeded for alice with the retry hint" refusals_ok
dl_a=$(since A | grep -E ' rule=rate ' | grep -E ' action=tempfail ' | grep -cE ' limit=fleet key=alice retry_after=[0-9]+ ')
dl_b=$(since B | grep -E ' rule=rate ' | grep -E ' action=tempfail ' | grep -cE ' limit=fleet key=alice retry_after=[0-9]+ ')
check "one decision line per refusal on each gateway (A $dl_a/$ref_a, B $dl_b/$ref_b)" test "$dl_a" = "$ref_a" -a "$dl_b" = "$ref_b"
stored_all() {
	local n=0 tok
	for tok in $(awk '$1 == 250 && $2 == 250 { print $3 }' "$T/load.all"); do
		[ -n "$(sink_files_with "$tok" "$DA/sink")$(sink_files_with "$tok" "$DB/sink")" ] && n=$((n + 1))
	done
	[ "$n" = "$acc" ]
}
check "the sinks got every accepted message ($acc)" wait_for 30 stored_all
sleep 1
stored=0
for tok in $(awk '{ print $3 }' "$T/load.all"); do
	n=$( (sink_files_with "$tok" "$DA/sink"; sink_files_with "$tok" "$DB/sink") | wc -l)
	stored=$((stored + n))
done
check "and nothing else: $stored stored messages for the 40 sessions" test "$stored" = "$acc"
check "Redis holds the state as a hash weir:rate:fleet:alice" \
	test "$(redis_cli type weir:rate:fleet:alice 2>&1)" = hash
ttl=$(redis_cli pttl weir:rate:fleet:alice 2>&1)
check "that key expires (PEXPIRE; pttl $ttl ms)" test "${ttl:-0}" -gt 0 2>/dev/null
on A
show=$("$WEIRCTL" -c "$WEIR_CONF" rate show fleet:alice 2>&1)
it_say "weirctl rate show fleet:alice: $(printf '%s' "$show" | tr '\n' '|')"
check "weirctl rate show (redis backend) says fleet:alice has rate_remaining=0" \
	bash -c 'printf "%s\n" "$1" | grep -E "^fleet:alice " | grep -qE "rate_remaining=0( |$)"' _ "$show"

# --- 2. Redis stops: fail_mode open ----------------------------------------------------
check "Redis saved its data (SAVE) before the stop" test "$(redis_cli save 2>&1)" = OK
redis_stop
check "Redis stopped" bash -c "! redis-cli -h 127.0.0.1 -p $RP ping >/dev/null 2>&1"
mark_all
ok=0 total=0
for s in A B A B A B; do
	r=$(one $s alice open)
	total=$((total + 1))
	case $r in "250 250 "*) ok=$((ok + 1)) ;; *) it_say "fail open: $s answered: $r" ;; esac
done
check "fail_mode open: all $total messages of the exhausted login accepted ($ok)" test "$ok" = "$total"
for s in A B; do
	n=$(since $s | grep -cE 'warning: .*rule=rate backend=redis .*no decision from Redis|warning: .*redis.*(unreachable|down|refused)')
	check "gateway $s: the outage logged once at warning (found $n)" test "$n" = 1
	since $s | grep -E 'warning: .*redis' | head -n 2 | sed 's/^/    /'
	on $s
	check "gateway $s: weir-milter still the same process" pid_alive "${PID0[$s]}"
done

# --- 3. fail_mode closed (reload) -----------------------------------------------------
for s in A B; do
	on $s
	sed -i 's/^  fail_mode = "open";/  fail_mode = "closed";/' "$WEIR_CONF"
	check "gateway $s: weir.conf now says fail_mode = \"closed\"" grep -q '^  fail_mode = "closed";' "$WEIR_CONF"
	check "gateway $s: weir-milter reloads (SIGUSR1)" milter_reload
done
mark_all
for s in A B; do
	one $s bob closed --quit-after RCPT >/dev/null
	check "gateway $s: fail_mode closed: bob's MAIL gets 451 4.3.0" reply_matches MAIL '^451 4\.3\.0 '
	check "gateway $s: a decision line rule=rate with 451 4.3.0" \
		bash -c 'tail -n +$(($2 + 1)) "$1" | grep -E " rule=rate " | grep -qE "reply=\"451 4\.3\.0 "' _ "$MILTER_LOG" "${MARK[$s]}"
	check "gateway $s: weir-milter still the same process" pid_alive "${PID0[$s]}"
done

# --- 4. Redis returns on the same port: enforced again, no restart -------------------
check "redis-server started again on 127.0.0.1:$RP (loads the saved data)" redis_start "$RP" "$T/redis"
check "the saved state is back" test "$(redis_cli type weir:rate:fleet:alice 2>&1)" = hash
# a weir-milter thread tries Redis again at most once a second: after that
# second the next decision must use Redis again (spec: "when Redis is back,
# the next decision uses it")
sleep 1.2
for s in A B; do
	one "$s" alice back --quit-after RCPT >/dev/null
	check "gateway $s: the first message after Redis returned: alice refused again with 451 4.7.0 (enforced from Redis, no restart)" \
		reply_matches MAIL '^451 4\.7\.0 rate limit fleet exceeded for alice: try again in [0-9]+ seconds'
done
for s in A B; do
	r=$(one $s bob back)
	check "gateway $s: bob's message accepted ($r)" is_250 "$r"
	on $s
	check "gateway $s: weir-milter still the same process (no restart)" pid_alive "${PID0[$s]}"
done
on A
show=$("$WEIRCTL" -c "$WEIR_CONF" rate show fleet:bob 2>&1)
check "bob's two messages were counted in Redis: rate_remaining=$((LIMIT - 2)) ($(printf '%s' "$show" | grep '^fleet:bob'))" \
	bash -c 'printf "%s\n" "$1" | grep -E "^fleet:bob " | grep -qE "rate_remaining=$2( |$)"' _ "$show" $((LIMIT - 2))

# --- 5. a hung Redis (SIGSTOP): redis_timeout_ms bounds the wait ------------------------
kill -STOP "$REDIS_PID"
for s in A B; do
	t1=$(date +%s%N)
	one "$s" bob hung --quit-after RCPT >/dev/null
	ms=$((($(date +%s%N) - t1) / 1000000))
	check "gateway $s: Redis hung, fail_mode closed: 451 4.3.0 (session took $ms ms)" reply_matches MAIL '^451 4\.3\.0 '
	check "gateway $s: the hung Redis cost at most a few timeouts of 500 ms ($ms ms < 4000)" test "$ms" -lt 4000
done
kill -CONT "$REDIS_PID"
wait_for 5 redis_up
sleep 1.2
for s in A B; do
	r=$(one $s bob cont)
	check "gateway $s: Redis answers again (SIGCONT): bob's message accepted" is_250 "$r"
	on $s
	check "gateway $s: weir-milter still the same process" pid_alive "${PID0[$s]}"
done

for s in A B; do
	it_say "gateway $s said: $(since $s | grep -E 'backend=redis' | cut -d' ' -f2- | tr '\n' '|')"
	check "gateway $s: no crash or sanitizer report in the milter log" \
		bash -c "! grep -qE 'AddressSanitizer|runtime error|Assertion' '$D/log/weir-milter.log'"
done
D=$DA
. "$D/stack.env"
it_say "run time $((SECONDS - IT_T0))s"
it_end

#!/bin/bash
# 400-throttle-rate: weir-agent shapes mail per destination (issue 8):
# rate, sessions, and a hot destination does not hold up a cold one.
# Postfix -> weir-agent (LMTP) -> tests/agent/throttle-sink.py, which notes
# when each message arrives and how many transactions hold each domain.
# One stack, three destinations at once:
#   rate.test  group rate5: rate 5/s, burst 1, sessions 2 (the sink holds
#              each of its transactions 0.35 s after the data, so two
#              sessions nearly suffice for 5/s: both limits are at work);
#              40 messages. At the sink: at most 5/s (+1 for the burst) in
#              every 2-second window, mean rate <= 5/s, never more than
#              2 transactions at once; all 40 delivered (Postfix retries
#              the 451s: postqueue -f every second, 40 s at most)
#   hot.test   group hot: 1/s; 20 messages trickle (<= 3 per 2 s)
#   cold.test  no limiter; 10 messages injected one every 0.5 s while the
#              others wait: each at the sink within 2 s of being queued
#   other.test no limiter; 10 messages mixed with rate.test's: all there,
#              none deferred
# Every deferral is a 451 4.7.0 "<rcpt>: throttled: group:NAME ..." (the
# rate form "at 1/s, retry" seen for hot.test) with a weir-agent line
# "throttle=group:NAME status=deferred reason=..."; nothing lost (each
# message at the sink or in Postfix's queue), nothing bounced, no
# duplicates; weirctl throttle show and the state file list both groups.
# About 20 s.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
. "$REPO/tests/agent/throttle-lib.sh"
it_begin "weir-agent throttling: rate and sessions per group; a hot domain does not delay a cold one"
it_need_binaries agent weirctl
throttle_need
IT_T0=$SECONDS

agent_prepare
throttle_start_stack "throttle = {
  wait = \"3s\";
  max_waiting = 8;
  state_file = \"$D/run/throttle-state\";
  groups = (
    { name = \"rate5\"; domains = (\"rate.test\"); rate = \"5/s\"; burst = 1; sessions = 2; },
    { name = \"hot\"; domains = (\".hot.test\"); rate = \"1/s\"; burst = 1; }
  );
  rules = ();
};"
# Postfix would open its LMTP connections to the agent 5 at first and
# only slowly more: start at 20 so that the connections the agent holds
# waiting (max_waiting per group) never starve the cold domain.
postconf -c "$POSTFIX_CONFIG_DIR" -e 'initial_destination_concurrency = 20' ||
	it_abort "postconf failed"
postfix -c "$POSTFIX_CONFIG_DIR" reload >/dev/null 2>&1 || it_abort "postfix reload failed"
check "throttle-sink on port $SPARE_PORT" tsink_start --delay rate.test:0.35 || it_abort "no sink"
sleep 0.5
agent_mark

# --- the load ---------------------------------------------------------------
check "20 messages for hot.test queued" \
	$TINJECT smtp --port "$SMTP_PORT" --out "$D/inj-hot" --to hot.test:20 --sessions 2 --prefix "h$$"
T_HOT=$(mono)
check "40 messages for rate.test and 10 for other.test queued" \
	$TINJECT smtp --port "$SMTP_PORT" --out "$D/inj-rate" --to rate.test:40 --to other.test:10 \
	--sessions 4 --prefix "r$$"
(sleep 1 && exec $TINJECT smtp --port "$SMTP_PORT" --out "$D/inj-cold" --to cold.test:10 \
	--interval 0.5 --prefix "c$$") &
cold=$!
check "all 40 of rate.test at the sink (postqueue -f every second, 40 s at most)" \
	flush_until 40 sink_has rate.test 40
check "the cold.test messages were all queued" wait "$cold"
check "all 10 of cold.test at the sink" wait_for 10 sink_has cold.test 10
check "all 10 of other.test at the sink" wait_for 10 sink_has other.test 10
T_END=$(mono)
it_say "load done after $((SECONDS - IT_T0))s"

# --- rate.test: 5/s, sessions 2 ------------------------------------------------------
out=$($TCHECK window "$EVENTS" --dom rate.test --window 2 --max 11 --max-rate 5.25)
rc=$?
it_say "rate.test: $out"
check "rate.test: at most 11 (5/s x 2 s + burst 1) in every 2 s window, mean <= 5/s" test "$rc" = 0
out=$($TCHECK conc "$EVENTS" --dom rate.test --max 2)
rc=$?
it_say "rate.test: $out"
check "rate.test: never more than 2 transactions at once at the sink (sessions = 2)" test "$rc" = 0
out=$($TCHECK tokens "$EVENTS" "$D/inj-rate" --dom rate.test)
check "rate.test: every message exactly once ($(head -n 1 <<<"$out"))" \
	grep -q '^injected=40 at_sink=40 duplicated=0 missing=0$' <<<"$out"
n=$(pf_deferrals rate.test | wc -l)
it_say "rate.test: Postfix deferred $n times"
check "rate.test: every deferral is 451 4.7.0 <rcpt>: throttled: group:rate5 ..., retry" \
	deferrals_match rate.test 'said: 451 4\.7\.0 <r[0-9]+-rate-[0-9]+@rate\.test>: throttled: group:rate5 [^(]*, retry'
na=$(agent_lines ' throttle=group:rate5 ' ' status=deferred ' ' reason=(rate|sessions|waiting) ' ' rcpt=<[^>]*@rate\.test>' | wc -l)
it_say "rate.test: weir-agent deferral lines: $na ($(agent_lines ' throttle=group:rate5 ' ' status=deferred ' |
	sed -n 's/.* reason=\([a-z]*\).*/\1/p' | sort | uniq -c | tr -s ' \n' ' '))"
check "rate.test: one weir-agent line throttle=group:rate5 status=deferred reason=... per deferral ($na, Postfix $n)" \
	test "$na" = "$n"

# --- hot.test: 1/s; cold.test: not held up --------------------------------------------
out=$($TCHECK window "$EVENTS" --dom hot.test --window 2 --max 3 --max-rate 1.05)
rc=$?
it_say "hot.test: $out"
check "hot.test: at most 3 (1/s x 2 s + burst 1) in every 2 s window, mean <= 1/s" test "$rc" = 0
nh=$(sink_msgs hot.test)
el=$($PY -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1])))" "$T_HOT" "$T_END")
check "hot.test trickles: $nh of 20 at the sink after ${el}s (between 3 and $((el + 2)))" \
	test "$nh" -ge 3 -a "$nh" -le $((el + 2))
check "hot.test: a deferral says 451 4.7.0 <rcpt>: throttled: group:hot at 1/s, retry" \
	bash -c "grep -qE 'said: 451 4\\.7\\.0 <h[0-9]+-hot-[0-9]+@hot\\.test>: throttled: group:hot at 1/s, retry' '$POSTFIX_LOG'"
check "hot.test: weir-agent logged throttle=group:hot status=deferred reason=rate rcpt=<...>" \
	agent_log_has ' throttle=group:hot ' ' status=deferred ' ' reason=rate ' ' rcpt=<h[0-9]+-hot-[0-9]+@hot\.test>'
out=$($TCHECK latency "$EVENTS" "$D/inj-cold" --dom cold.test --max 2)
rc=$?
it_say "cold.test: $(tail -n 1 <<<"$out")"
[ "$rc" = 0 ] || printf '%s\n' "$out" | sed 's/^/    /'
check "cold.test: every message at the sink within 2 s of being queued, while hot.test waits" test "$rc" = 0
check "other.test: no deferral" test -z "$(pf_deferrals other.test)"
check "cold.test: no deferral" test -z "$(pf_deferrals cold.test)"

# --- nothing lost -------------------------------------------------------------------
cat "$D"/inj-hot "$D"/inj-rate "$D"/inj-cold >"$D/inj-all"
check "nothing lost: each of the 80 messages at the sink or in Postfix's queue; no bounce, no duplicate" \
	nothing_lost "$D/inj-all"

# --- visibility ----------------------------------------------------------------------
check "weirctl throttle show prints the header" \
	show_has '^LIMITER +RATE +OBSERVED +SESSIONS +WAITING +DEFERRED +STATE +UNTIL +WHY'
check "weirctl throttle show: group:rate5 at 5/s, normal" show_has '^group:rate5 ' ' 5/s ' 'normal'
check "weirctl throttle show: group:hot at 1/s" show_has '^group:hot ' ' 1/s '
sed 's/^/    show: /' "$D/log/throttle-show.out"
check "the state file has the spec's line for group:rate5" \
	grep -qE '^group:rate5 rate=5/s observed=[0-9.]+/s sessions=[0-9]+/2 waiting=[0-9]+ deferred=[1-9][0-9]* state=normal' \
	"$D/run/throttle-state"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_say "run time $((SECONDS - IT_T0))s"
agent_end

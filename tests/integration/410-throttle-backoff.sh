#!/bin/bash
# 410-throttle-backoff: adaptive back-off (issue 8). A rule "t421" (code
# 421, text "try again later", threshold 2 within 30 s, suspend 5 s) on
# group slowg (slow.test); tests/agent/throttle-sink.py answers the first
# two RCPTs for slow.test "421 4.7.0 try again later" (and closes, as 421
# means), everything else 250. Through Postfix -> weir-agent -> the sink:
#   - one 421 does not suspend (threshold 2)
#   - the second does: weir-agent logs "throttle=group:slowg
#     state=suspended until=ISO rule=t421 reply="421 4.7.0 try again later""
#   - during the suspension RCPTs for slow.test get "451 4.7.0 <rcpt>:
#     throttled: group:slowg suspended until ISO after "421 4.7.0 try again
#     later", retry" at once, the sink never sees them (its RCPT count for
#     slow.test does not grow until the 5 s are over), weir-agent logs
#     "throttle=group:slowg status=deferred reason=suspended", weirctl
#     throttle show and the state file say suspended with the rule and the
#     reply; another domain flows meanwhile
#   - after the 5 s: "state=normal after=duration", and (postqueue -f) all
#     four messages reach the sink, Postfix's queue is empty
# About 15 s.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
. "$REPO/tests/agent/throttle-lib.sh"
it_begin "weir-agent throttling: a rule suspends a destination after its 421s, then it recovers"
it_need_binaries agent weirctl
throttle_need
IT_T0=$SECONDS
DUR=5

agent_prepare
throttle_start_stack "throttle = {
  wait = \"3s\";
  state_file = \"$D/run/throttle-state\";
  groups = ( { name = \"slowg\"; domains = (\"slow.test\"); rate = \"50/s\"; burst = 5; } );
  rules = ( { name = \"t421\"; code = \"421\"; text = \"try again later\"; threshold = 2;
              window = \"30s\"; action = \"suspend\"; duration = \"${DUR}s\"; } );
};"
check "throttle-sink on port $SPARE_PORT (421 to the first two RCPTs for slow.test)" \
	tsink_start --reply 'slow.test:2:421 4.7.0 try again later' || it_abort "no sink"
agent_mark

# send NAME [DOMAIN]: one message through Postfix; sets QID and RCPT
send() {
	local dom=${2:-slow.test}
	: >"$D/inj-$1"
	$TINJECT smtp --port "$SMTP_PORT" --out "$D/inj-$1" --to "$dom:1" --prefix "$1$$" || return 1
	cat "$D/inj-$1" >>"$D/inj-all"
	QID=$(sed -n 's/.*"qid": "\([^"]*\)".*/\1/p' "$D/inj-$1")
	RCPT=$(sed -n 's/.*"rcpt": "\([^"]*\)".*/\1/p' "$D/inj-$1")
	[ -n "$QID" ]
}
n421() { $TCHECK count "$EVENTS" --ev rcpt --dom slow.test --code 421; }
SUSPENDED=' throttle=group:slowg state=suspended until=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z rule=t421 reply="421 4\.7\.0 try again later"'

# --- the first 421: counted, not yet suspended -------------------------------------
check "m1 queued" send m1
check "m1: Postfix deferred it after the sink's 421" pf_has "$QID" "$RCPT" 'status=deferred .*said: 4[0-9][0-9] '
check "the sink gave exactly one 421 so far ($(n421))" test "$(n421)" = 1
check "one 421 does not suspend slowg (threshold 2)" agent_log_lacks ' throttle=group:slowg state=suspended'

# --- the second 421: suspended -------------------------------------------------
check "m2 queued" send m2
check "weir-agent logs the suspension with the rule and the reply" agent_log_has "$SUSPENDED"
agent_lines "$SUSPENDED" | tail -n 1 | sed 's/^/    /'
check "the sink gave two 421s ($(n421))" test "$(n421)" = 2
# the suspension began when the sink's second 421 reached the agent
T_SUSP=$($PY -c '
import json, sys
t = [e["t"] for e in map(json.loads, open(sys.argv[1])) if e.get("ev") == "rcpt" and e.get("code") == 421]
print(t[1] if len(t) > 1 else 0)' "$EVENTS")
N_RCPT=$($TCHECK count "$EVENTS" --ev rcpt --dom slow.test)

# --- during the suspension -------------------------------------------------------
check "m3 queued" send m3
Q3=$QID R3=$RCPT
check "m4 queued" send m4
Q4=$QID R4=$RCPT
check "m5 (ok.test, another destination) queued" send m5 ok.test
SUSP_REPLY='said: 451 4\.7\.0 <%s>: throttled: group:slowg suspended until [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z after "421 4\.7\.0 try again later", retry'
# shellcheck disable=SC2059
check "m3: 451 4.7.0 <rcpt>: throttled: group:slowg suspended until ISO after \"421 ...\", retry" \
	pf_has "$Q3" "$R3" "status=deferred .*$(printf "$SUSP_REPLY" "$(ere_quote "$R3")")"
# shellcheck disable=SC2059
check "m4: the same" pf_has "$Q4" "$R4" "status=deferred .*$(printf "$SUSP_REPLY" "$(ere_quote "$R4")")"
check "weir-agent logged throttle=group:slowg status=deferred reason=suspended for m3" \
	agent_log_has ' throttle=group:slowg ' ' status=deferred ' ' reason=suspended ' " rcpt=<$(ere_quote "$R3")>"
check "ok.test flows meanwhile" wait_for 5 sink_has ok.test 1
check "weirctl throttle show: group:slowg suspended" show_has '^group:slowg ' ' suspended '
sed 's/^/    show: /' "$D/log/throttle-show.out"
check "the state file: group:slowg ... state=suspended until=ISO rule=t421 reply=\"421 4.7.0 try again later\"" \
	grep -qE '^group:slowg .* state=suspended until=[0-9T:-]+Z .*rule=t421 reply="421 4\.7\.0 try again later"' \
	"$D/run/throttle-state"
el=$($PY -c 'import sys, time; print("%.1f" % (time.monotonic() - float(sys.argv[1])))' "$T_SUSP")
it_say "checks during the suspension done ${el}s after it began"
check "...within the ${DUR}s of the suspension" $PY -c "import sys; sys.exit(float('$el') >= $DUR)"

# --- recovery ----------------------------------------------------------------------
$PY -c 'import sys, time; time.sleep(max(0, float(sys.argv[1]) + float(sys.argv[2]) + 0.3 - time.monotonic()))' \
	"$T_SUSP" "$DUR"
check "after ${DUR}s (postqueue -f): all four slow.test messages at the sink (15 s at most)" \
	flush_until 15 sink_has slow.test 4
n=$($TCHECK count "$EVENTS" --ev rcpt --dom slow.test --until "$($PY -c "print($T_SUSP + $DUR - 0.3)")")
check "the sink saw no RCPT for slow.test during the suspension ($n RCPTs until its end, $N_RCPT when it began)" \
	test "$n" = "$N_RCPT"
check "weir-agent logs throttle=group:slowg state=normal after=duration" \
	agent_log_has ' throttle=group:slowg state=normal after=duration'
check "Postfix's queue is empty" wait_for 10 queue_empty
check "nothing lost, nothing bounced, no duplicate" nothing_lost "$D/inj-all"
check "weirctl throttle show: group:slowg normal again" show_has '^group:slowg ' ' normal '
check "weir-agent still running" pid_alive "$AGENT_PID"
it_say "run time $((SECONDS - IT_T0))s"
agent_end

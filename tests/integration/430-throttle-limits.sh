#!/bin/bash
# 430-throttle-limits: the throttle's other limits and replies (issue 8),
# driven straight over LMTP (tests/agent/throttle-lmtp.py: one transaction,
# each reply with its time) so that every reply is seen as weir-agent
# gives it. throttle.wait 2 s, max_waiting 1; group sess1 (sess.test):
# sessions 1; throttle.domains = { sessions = 1; recipients = 2; } (each
# other domain its own limiter "domain:D"). The sink holds the reply after
# DATA 3 s for sess.test and *.slowd.test, so their transactions last.
#   - sessions: T1 holds sess1's only session; T2's RCPT waits the 2 s,
#     then "451 4.7.0 <rcpt>: throttled: group:sess1 at 1 session, retry"
#     and a line reason=sessions
#   - max_waiting: T3, while T2 waits, gets 451 4.7.0 at once (reason=waiting)
#   - release: after T1's DATA, T6's RCPT goes at once; T6 ends with RSET
#     (no DATA), which releases too: T7 goes at once
#   - per domain: a.slowd.test and b.slowd.test each have their own session
#     (both at once, while both transactions last)
#   - recipients: the third RCPT of dom-r.test in one transaction gets "452
#     4.5.3 <rcpt>: too many recipients for domain:dom-r.test in one
#     transaction", the first two are delivered
#   - the state file shows every session released within 3 s of the
#     last transaction (written at most once a second, but not left stale)
#   - a rule with action slow (group slw, 4/s; the sink answers the first
#     RCPT "451 4.7.0 rate limit exceeded"): "state=slow factor=0.5 ...",
#     the next messages go at 2/s, after 3 delivered "state=normal
#     after=successes" and 4/s again
#   - weirctl throttle show lists the domain limiters by their key
# About 10 s.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
. "$REPO/tests/agent/throttle-lib.sh"
it_begin "weir-agent throttling: sessions, max_waiting, per-domain limiters, recipients per transaction"
it_need_binaries agent weirctl
throttle_need
IT_T0=$SECONDS
TLMTP="$PY $AGENT_T/throttle-lmtp.py"

agent_prepare
throttle_start_stack "throttle = {
  wait = \"2s\";
  max_waiting = 1;
  state_file = \"$D/run/throttle-state\";
  domains = { sessions = 1; recipients = 2; };
  groups = ( { name = \"sess1\"; domains = (\"sess.test\"); sessions = 1; },
             { name = \"slw\"; domains = (\"slw.test\"); rate = \"4/s\"; burst = 1; } );
  rules = ( { name = \"slowdown\"; code = \"4\"; text = \"rate limit\"; threshold = 1; window = \"60s\";
              action = \"slow\"; factor = 0.5; duration = \"30s\"; recover = 3; } );
};"
check "throttle-sink on port $SPARE_PORT" tsink_start --delay sess.test:3 --delay .slowd.test:3 \
	--reply 'slw.test:1:451 4.7.0 rate limit exceeded' ||
	it_abort "no sink"
agent_mark

# txn NAME ARGS...: one LMTP transaction, its JSON in $D/NAME.json
txn() {
	local n=$1
	shift
	$TLMTP --port "$LMTP_PORT" --from "$n@client.weir.test" "$@" >"$D/$n.json" 2>"$D/$n.err"
}
# got NAME EXPR: EXPR of the JSON o of transaction NAME (Python)
got() {
	$PY -c 'import json, sys; o = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$D/$1.json" "$2" 2>/dev/null
}
# rcpt_is NAME I ERE [MAX_SECONDS [MIN_SECONDS]]: RCPT I's reply of NAME
# matches ERE and came within MAX (and not before MIN) seconds
rcpt_is() {
	local r t
	r=$(got "$1" "o['rcpts'][$2][2]")
	t=$(got "$1" "o['rcpts'][$2][3]")
	if ! grep -qE -- "$3" <<<"$r"; then
		echo "    $1: RCPT $2 answered '$r' after ${t}s, want /$3/"
		return 1
	fi
	if [ -n "${4:-}" ] && ! $PY -c "import sys; sys.exit(not (${5:-0} <= $t <= $4))"; then
		echo "    $1: RCPT $2 answered after ${t}s, want between ${5:-0} and $4"
		return 1
	fi
	it_say "$1: RCPT $2 -> $r (${t}s)"
}

# --- sessions, max_waiting, per domain ---------------------------------------------
txn t1 --rcpt t1@sess.test &
p1=$!
txn t4 --rcpt t4@a.slowd.test &
p4=$!
txn t5 --rcpt t5@b.slowd.test &
p5=$!
sleep 0.4
txn t2 --rcpt t2@sess.test &
p2=$!
sleep 0.4
txn t3 --rcpt t3@sess.test
check "max_waiting 1: while T2 waits for sess1, T3's RCPT gets 451 4.7.0 at once" \
	rcpt_is t3 0 '^451 4\.7\.0 <t3@sess\.test>: throttled: group:sess1 ' 0.5
check "T2 (sessions) done" wait "$p2"
check "sessions 1: T2's RCPT waited the 2 s, then 451 4.7.0 <rcpt>: throttled: group:sess1 at 1 session, retry" \
	rcpt_is t2 0 '^451 4\.7\.0 <t2@sess\.test>: throttled: group:sess1 at 1 sessions?, retry$' 3 1.8
check "T1 done" wait "$p1"
check "T1 (holding the session) accepted at once and delivered" \
	test "$(got t1 "o['rcpts'][0][1]") $(got t1 "o['data'][0][0]")" = "250 250"
txn t6 --rcpt t6@sess.test --no-data
check "T6 right after T1: its RCPT 250 at once (T1's session was released after DATA)" \
	rcpt_is t6 0 '^250 ' 0.5
txn t7 --rcpt t7@sess.test --no-data
check "T6 ended with RSET, which released the session: T7's RCPT 250 at once" rcpt_is t7 0 '^250 ' 0.5
check "T4, T5 done" wait "$p4" "$p5"
check "a.slowd.test has its own session (domain:a.slowd.test): T4's RCPT at once" rcpt_is t4 0 '^250 ' 0.5
check "b.slowd.test too, while T4's transaction lasts (domain:b.slowd.test)" rcpt_is t5 0 '^250 ' 0.5
check "weir-agent: throttle=group:sess1 status=deferred reason=sessions rcpt=<t2@sess.test>" \
	agent_log_has ' throttle=group:sess1 ' ' status=deferred ' ' reason=sessions ' ' rcpt=<t2@sess\.test>'
check "weir-agent: throttle=group:sess1 status=deferred reason=waiting rcpt=<t3@sess.test>" \
	agent_log_has ' throttle=group:sess1 ' ' status=deferred ' ' reason=waiting ' ' rcpt=<t3@sess\.test>'

# --- recipients -----------------------------------------------------------------------
txn t8 --rcpt r1@dom-r.test --rcpt r2@dom-r.test --rcpt r3@dom-r.test
check "recipients 2: RCPT 1 of dom-r.test 250" rcpt_is t8 0 '^250 '
check "RCPT 2 250" rcpt_is t8 1 '^250 '
check "RCPT 3: 452 4.5.3 <r3@dom-r.test>: too many recipients for domain:dom-r.test in one transaction" \
	rcpt_is t8 2 '^452 4\.5\.3 <r3@dom-r\.test>: too many recipients for domain:dom-r\.test in one transaction'
check "...and the message went to the other two (LMTP: two 250s after DATA)" \
	test "$(got t8 "' '.join(str(d[0]) for d in o['data'])")" = "250 250"
sink_rcpts_t8() {
	$PY -c '
import json, sys
for e in map(json.loads, open(sys.argv[1])):
    if e.get("ev") == "msg" and e.get("token") == "r1":
        print(" ".join(e["rcpts"]))' "$EVENTS"
}
check "the sink got it for r1 and r2 ($(sink_rcpts_t8))" test "$(sink_rcpts_t8)" = "r1@dom-r.test r2@dom-r.test"

# --- a "slow" rule: half the rate until 3 successes --------------------------------------
txn s0 --rcpt s0@slw.test
check "slw.test: the sink's first reply 451 4.7.0 rate limit exceeded reaches the MTA as a 4xx" \
	rcpt_is s0 0 '^4[0-9][0-9] '
SLOW=' throttle=group:slw state=slow factor=0\.5 until=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z rule=slowdown reply="451 4\.7\.0 rate limit exceeded"'
check "weir-agent logs throttle=group:slw state=slow factor=0.5 until=ISO rule=slowdown reply=\"451 ...\"" \
	agent_log_has "$SLOW"
check "the state file says state=slow factor=0.5 for group:slw (rate= the configured 4/s or the 2/s in force)" \
	wait_for 3 grep -qE '^group:slw rate=[24]/s .* state=slow .*factor=0\.5' "$D/run/throttle-state" ||
	sed 's/^/    state file: /' "$D/run/throttle-state"
SLW=()
for i in 1 2 3 4 5; do
	txn "s$i" --rcpt "s$i@slw.test"
	SLW+=("$(got "s$i" "o['t0'] + o['rcpts'][0][3]")")
done
gaps=$($PY -c 'import sys; t = [float(x) for x in sys.argv[1:]]; print(" ".join("%.2f" % (b - a) for a, b in zip(t, t[1:])))' "${SLW[@]}")
it_say "slw.test: 5 messages one after another, RCPT accepted at intervals of $gaps s (4/s: 0.25, slow: 0.5)"
read -r g12 g23 _ g45 <<<"$gaps"
check "slow: 2/s between the 1st and 2nd and the 2nd and 3rd ($g12 $g23 >= 0.45)" \
	$PY -c "import sys; sys.exit(not ($g12 >= 0.45 and $g23 >= 0.45))"
check "weir-agent logs throttle=group:slw state=normal after=successes (recover = 3)" \
	agent_log_has ' throttle=group:slw state=normal after=successes'
check "back to 4/s between the 4th and the 5th ($g45 in 0.2..0.35)" \
	$PY -c "import sys; sys.exit(not (0.2 <= $g45 <= 0.35))"
check "all five at the sink" wait_for 3 sink_has slw.test 5

# --- visibility ------------------------------------------------------------------------
# at most once a second, but a change is not left unwritten when the
# agent goes idle: within 3 s the file shows every session released
idle_state() {
	grep -qE '^group:sess1 .* sessions=0/1 ' "$D/run/throttle-state" &&
		grep -qE '^domain:dom-r\.test .* sessions=0/1 ' "$D/run/throttle-state" &&
		! grep -qE ' sessions=[1-9]' "$D/run/throttle-state"
}
check "the state file catches up when the agent is idle: every session 0 within 3 s" wait_for 3 idle_state ||
	sed 's/^/    state file: /' "$D/run/throttle-state"
check "weirctl throttle show: domain:a.slowd.test" show_has '^domain:a\.slowd\.test '
check "weirctl throttle show: group:sess1 with its deferrals" show_has '^group:sess1 ' ' [1-9][0-9]* +normal'
sed 's/^/    show: /' "$D/log/throttle-show.out"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_say "run time $((SECONDS - IT_T0))s"
agent_end

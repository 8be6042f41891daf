#!/bin/bash
# 420-throttle-fleet: two weir-agent instances share a destination's rate
# through Redis (issue 8, throttle.backend = "redis", fleet_size = 2).
# A throwaway redis-server on a free loopback port; the stack's weir-agent
# (A) and a second one started here with its own weir.conf (B: other
# listeners, pid and state files), both relaying to one
# tests/agent/throttle-sink.py; group fleet (fleet.test) at 10/s, burst 1,
# wait 1 s. Each agent is fed straight over LMTP by 4 connections sending
# one message after another (tests/agent/throttle-inject.py lmtp), so each
# alone offers far more than 10/s:
#   1. Redis up, 6 s: the sink sees at most 10/s combined (<= 21 + 1 in
#      every 2 s window, mean <= 10.5/s) and close to it (mean >= 8/s), both
#      agents deliver; Redis holds weir:t420:throttle:group:fleet during
#      the load, with an expiry
#   2. Redis stopped, 5 s: each agent goes on alone at its local share
#      10/2 = 5/s (<= 11 + 1 in every 2 s window, mean between 3 and
#      5.25/s), combined <= 2 x 11 (+1) in every 2 s window; each logs
#      once "throttle: redis unreachable (...): each instance uses its
#      local share 1/2 of every rate"
#   3. Redis back (empty): both log that it is back, the reservations are
#      in Redis again (the key reappears)
# About 20 s.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
. "$REPO/tests/agent/throttle-lib.sh"
it_begin "weir-agent throttling shared by two instances through Redis; Redis down: local share"
it_need_binaries agent weirctl
command -v redis-server >/dev/null || it_skip "redis-server not installed"
command -v redis-cli >/dev/null || it_skip "redis-cli not installed (redis-tools)"
throttle_need
grep -aq 'local share' "$WEIR_AGENT" || it_skip "not built yet: throttle.backend redis in weir-agent"
IT_T0=$SECONDS
. "$REPO/tests/rate/rate-lib.sh"

# shellcheck disable=SC2034 # rate-lib.sh's
REDIS_PID=
fleet_cleanup() {
	local rc=$?
	redis_stop
	(exit "$rc")
	it_cleanup
}
trap fleet_cleanup EXIT

agent_prepare
mkdir -p "$D/redis" || it_abort "mkdir failed"
RP=$(free_port) || it_abort "no free port"
check "redis-server on 127.0.0.1:$RP" redis_start "$RP" "$D/redis" || it_abort "no Redis"
throttle_start_stack "rate = { redis = \"127.0.0.1:$RP\"; redis_prefix = \"weir:t420:\"; redis_timeout_ms = 200; };
throttle = {
  wait = \"1s\";
  max_waiting = 4;
  backend = \"redis\";
  fleet_size = 2;
  state_file = \"$D/run/throttle-state\";
  groups = ( { name = \"fleet\"; domains = (\"fleet.test\"); rate = \"10/s\"; burst = 1; } );
  rules = ();
};"
check "throttle-sink on port $SPARE_PORT" tsink_start || it_abort "no sink"

# --- agent B: the same configuration, its own listeners and files ----------------
read -r PB PB2 < <($PY "$STACK/stackutil.py" freeports 2)
LOG_B=$D/log/weir-agent-b.log
sed -e "s|^  lmtp_listen = .*|  lmtp_listen = (\"inet:$PB@127.0.0.1\");|" \
	-e "s|^  smtp_listen = .*|  smtp_listen = (\"inet:$PB2@127.0.0.1\");|" \
	-e "s|\"$D/run/weir-agent.pid\"|\"$D/run/weir-agent-b.pid\"|" \
	-e "s|\"$D/run/agent-state\"|\"$D/run/agent-b-state\"|" \
	-e "s|\"$D/run/throttle-state\"|\"$D/run/throttle-state-b\"|" \
	"$WEIR_CONF" >"$D/weir-b.conf"
chmod 644 "$D/weir-b.conf"
start_b() {
	(exec "$WEIR_AGENT" -f -c "$D/weir-b.conf" </dev/null >>"$LOG_B" 2>&1) &
	B_PID=$!
	stack_record_pid "$D" weir-agent-b "$B_PID"
	wait_for 10 $PY "$STACK/stackutil.py" waitbanner "$PB" 0.5 && return 0
	tail -n 5 "$LOG_B" | sed 's/^/    /'
	return 1
}
check "second weir-agent (B) started, LMTP on 127.0.0.1:$PB" start_b || it_abort "agent B did not start"

# feed SECS TAG: both agents fed over LMTP for SECS seconds at once;
# senders fa@ (agent A) and fb@ (agent B)
feed() {
	local a b
	$TINJECT lmtp --port "$LMTP_PORT" --out "$D/lmtp-$2-a" --to fleet.test --conns 4 \
		--seconds "$1" --from fa@client.weir.test --prefix "fa$2" >"$D/lmtp-$2-a.out" 2>&1 &
	a=$!
	$TINJECT lmtp --port "$PB" --out "$D/lmtp-$2-b" --to fleet.test --conns 4 \
		--seconds "$1" --from fb@client.weir.test --prefix "fb$2" >"$D/lmtp-$2-b.out" 2>&1 &
	b=$!
	wait "$a" && wait "$b"
	it_say "fed $1 s: A $(cat "$D/lmtp-$2-a.out"), B $(cat "$D/lmtp-$2-b.out")"
}
# win TAG ARGS...: throttle-check window for fleet.test, printed
win() {
	local out rc tag=$1
	shift
	out=$($TCHECK window "$EVENTS" --dom fleet.test "$@")
	rc=$?
	it_say "$tag: $out"
	return "$rc"
}
mark_b() { B_MARK=$(wc -l <"$LOG_B"); }
b_lines() { tail -n +"$((B_MARK + 1))" "$LOG_B" | grep -E -- "$1"; }

# --- 1. Redis up: 10/s combined ------------------------------------------------------
T1=$(mono)
feed 6 p1 &
fed=$!
# the key lives while reservations are ahead of now (it expires when
# idle): look at it in the middle of the load
sleep 3
keys=$(redis_cli --scan --pattern 'weir:t420:*' 2>&1 | tr '\n' ' ')
exists=$(redis_cli exists weir:t420:throttle:group:fleet 2>&1)
ttl=$(redis_cli pttl weir:t420:throttle:group:fleet 2>&1)
wait "$fed"
sleep 1.2 # the last waiting RCPTs (wait 1 s) go through
T2b=$(mono)
check "phase 1: at most 22 (10/s x 2 s + burst 1, +1) in every 2 s window for both agents together, mean <= 10.5/s, >= 8/s" \
	win "both, Redis up" --since "$T1" --until "$T2b" --window 2 --max 22 --max-rate 10.5 --min-rate 8
na=$($TCHECK count "$EVENTS" --dom fleet.test --from fa@client.weir.test --since "$T1" --until "$T2b")
nb=$($TCHECK count "$EVENTS" --dom fleet.test --from fb@client.weir.test --since "$T1" --until "$T2b")
check "phase 1: both agents delivered (A $na, B $nb; each at least 10)" test "$na" -ge 10 -a "$nb" -ge 10
it_say "Redis keys during the load: $keys"
check "Redis holds weir:t420:throttle:group:fleet during the load" test "$exists" = 1
check "...and it expires when idle (pttl $ttl ms)" test "${ttl:-0}" -gt 0 2>/dev/null

# --- 2. Redis down: each its local share 5/s ----------------------------------------
agent_mark
mark_b
redis_stop
check "Redis stopped" bash -c "! redis-cli -h 127.0.0.1 -p $RP ping >/dev/null 2>&1"
T3=$(mono)
feed 5 p2
sleep 1.2
T4b=$(mono)
check "phase 2: agent A alone at its share: <= 12 (5/s x 2 s + 1, +1) in every 2 s window, mean 3..5.25/s" \
	win "A, Redis down" --from fa@client.weir.test --since "$T3" --until "$T4b" --window 2 --max 12 --max-rate 5.25 --min-rate 3
check "phase 2: agent B alike" \
	win "B, Redis down" --from fb@client.weir.test --since "$T3" --until "$T4b" --window 2 --max 12 --max-rate 5.25 --min-rate 3
check "phase 2: together still <= 23 (2 x 11, +1) in every 2 s window" \
	win "both, Redis down" --since "$T3" --until "$T4b" --window 2 --max 23
LOCAL='throttle: redis unreachable \(.*\): each instance uses its local share 1/2 of every rate'
n=$(agent_lines "$LOCAL" | wc -l)
check "agent A logged once: throttle: redis unreachable (...): each instance uses its local share 1/2 of every rate (found $n)" \
	test "$n" = 1
agent_lines "$LOCAL" | head -n 2 | sed 's/^/    /'
n=$(b_lines "$LOCAL" | wc -l)
check "agent B logged it once too (found $n)" test "$n" = 1
check "both agents still running" pid_alive "$AGENT_PID"
check "...B too" pid_alive "$B_PID"

# --- 3. Redis back ------------------------------------------------------------------
agent_mark
mark_b
check "redis-server started again on 127.0.0.1:$RP (empty)" redis_start "$RP" "$D/redis"
feed 2 p3 &
fed=$!
back() { [ "$(redis_cli exists weir:t420:throttle:group:fleet)" = 1 ]; }
check "the reservations are made in Redis again (the key is back)" wait_for 2 back
wait "$fed"
check "agent A logged that Redis is back (a later throttle: redis line, not unreachable)" \
	bash -c "[ -n \"\$1\" ] && ! grep -q unreachable <<<\"\$1\"" _ "$(agent_lines 'throttle: redis' | tail -n 1)"
agent_lines 'throttle: redis' | sed 's/^/    A: /'
check "agent B too" \
	bash -c "[ -n \"\$1\" ] && ! grep -q unreachable <<<\"\$1\"" _ "$(b_lines 'throttle: redis' | tail -n 1)"
b_lines 'throttle: redis' | sed 's/^/    B: /'
it_say "run time $((SECONDS - IT_T0))s"
agent_end

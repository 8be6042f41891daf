# shellcheck shell=bash
# tests/agent/throttle-lib.sh - helpers for the throttling tests
# (tests/integration/4NN-throttle-*.sh, issue 8). Sourced after
# tests/integration/lib.sh and tests/agent/agent-lib.sh:
#
#     throttle_need                      # exit 77 until weir-agent throttles
#     throttle_start_stack "THROTTLE GROUP TEXT" [VAR=VALUE...]
#         a stack without weir-milter (the throttle is weir-agent's), whose
#         agent has one route to the throttle sink (127.0.0.1:SPARE_PORT),
#         with the text (a top-level "throttle = { ... };" and whatever
#         else weir.conf needs, e.g. rate.redis) appended to weir.conf
#     tsink_start [ARGS...]              tests/agent/throttle-sink.py on
#         SPARE_PORT, events in $EVENTS; recorded as a stack process
#     flush_until SECS CMD...            postqueue -f every second until CMD
#
# The sink and the injector: tests/agent/throttle-sink.py,
# tests/agent/throttle-inject.py, tests/agent/throttle-check.py (their
# headers say what they do). Every time is time.monotonic() seconds
# (mono prints it).

# shellcheck source=../stack/common.sh
. "$STACK/common.sh" # stack_record_pid, stack_stop_pid
TSINK_PY=$AGENT_T/throttle-sink.py
# shellcheck disable=SC2034 # used by the tests
TINJECT="$PY $AGENT_T/throttle-inject.py"
TCHECK="$PY $AGENT_T/throttle-check.py"
EVENTS=

# throttle_need: skip (77) until weir-agent and weirctl have the throttle
throttle_need() {
	grep -aq 'throttled' "$WEIR_AGENT" ||
		it_skip "not built yet: per-destination throttling in weir-agent (issue 8)"
	grep -qE '^ +throttle( |$)' <<<"$("$WEIRCTL" 2>&1)" ||
		it_skip "not built yet: weirctl throttle show (issue 8)"
}

# mono: time.monotonic() now (the sink's clock)
mono() {
	$TCHECK now
}

# throttle_start_stack CONF_TEXT [VAR=VALUE...]: start the stack in $D
# (see above); CONF_TEXT goes to $D/throttle.conf (WEIR_STACK_CONF_EXTRA)
throttle_start_stack() {
	local conf=$1
	shift
	agent_prepare
	printf '%s\n' "$conf" >"$D/throttle.conf"
	chmod 644 "$D/throttle.conf"
	agent_start_stack '
  routes = ( { name = "tsink"; hosts = ( { host = "127.0.0.1"; port = @SPARE_PORT@; tls = "none"; } ); } );' \
		WEIR_STACK_SKIP=milter WEIR_STACK_CONF_EXTRA="$D/throttle.conf" "$@"
	EVENTS=$D/log/tsink.events
}

# tsink_start [ARGS...]: the throttle sink on 127.0.0.1:SPARE_PORT (the
# route's host), events appended to $EVENTS, log $D/log/tsink.log;
# stopped with the stack (a recorded PID)
tsink_start() {
	local pid
	(exec "$PY" "$TSINK_PY" --port "$SPARE_PORT" --events "$EVENTS" \
		--pidfile "$D/run/tsink.pid" "$@" </dev/null >>"$D/log/tsink.log" 2>&1) &
	pid=$!
	stack_record_pid "$D" tsink "$pid"
	$PY "$STACK/stackutil.py" waitbanner "$SPARE_PORT" 10 >/dev/null 2>&1 || {
		echo "    throttle-sink did not start:"
		tail -n 5 "$D/log/tsink.log" | sed 's/^/      /'
		return 1
	}
}

# tsink_stop: stop the throttle sink (its PID)
tsink_stop() {
	stack_stop_pid "$D" tsink 10
}

# flush_until SECS CMD...: ask Postfix to retry its deferred mail
# (postqueue -f) every second until CMD succeeds; 1 after SECS
flush_until() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $end ] && return 1
		postqueue -c "$POSTFIX_CONFIG_DIR" -f >/dev/null 2>&1
		sleep 1
	done
	return 0
}

# sink_msgs DOM [ARGS...]: messages of DOM at the sink so far
sink_msgs() {
	local dom=$1
	shift
	$TCHECK count "$EVENTS" --dom "$dom" "$@"
}

# sink_has DOM N: at least N messages of DOM at the sink
sink_has() {
	[ "$(sink_msgs "$1")" -ge "$2" ]
}

# show: weirctl throttle show -c weir.conf, kept in $D/log/throttle-show.out
show() {
	"$WEIRCTL" -c "$WEIR_CONF" throttle show >"$D/log/throttle-show.out" 2>&1
}

# show_has ERE...: (waits up to 3 s until) a line of weirctl throttle show
# matches every ERE; prints the table when none does
show_line() {
	local l
	show || return 1
	l=$(cat "$D/log/throttle-show.out")
	for e in "$@"; do
		l=$(printf '%s\n' "$l" | grep -E -- "$e")
	done
	[ -n "$l" ]
}
show_has() {
	wait_for 3 show_line "$@" && return 0
	echo "    no line of weirctl throttle show matches: $*; it printed:"
	sed 's/^/      /' "$D/log/throttle-show.out"
	return 1
}

# nothing_lost INJECTED: every message throttle-inject.py queued is at the
# sink or still in Postfix's queue (by queue id), and Postfix bounced none.
# Looked at up to 3 times, 0.5 s apart: postqueue -p (showq) reads the
# queue directories one after another and can miss a file that the queue
# manager moves meanwhile (deferred -> active); a lost message stays lost.
nothing_lost() {
	local i
	for i in 1 2; do
		_nothing_lost "$1" >/dev/null && { _nothing_lost "$1" | head -n 1; return 0; }
		sleep 0.5
	done
	_nothing_lost "$1"
}
_nothing_lost() {
	local out bad=0 tok qid q
	# the queue first: a message leaving it afterwards was recorded by
	# the sink before (the sink notes it before its 250, Postfix removes
	# it after the agent's)
	q=$(postqueue -c "$POSTFIX_CONFIG_DIR" -p 2>/dev/null)
	out=$($TCHECK tokens "$EVENTS" "$1")
	printf '%s\n' "$out" | head -n 1 | sed 's/^/    /'
	while read -r _ tok qid; do
		if ! grep -q "^${qid}[*! ]" <<<"$q"; then
			echo "    $tok (queue id $qid) is neither at the sink nor in Postfix's queue"
			bad=1
		fi
	done < <(printf '%s\n' "$out" | grep '^missing ')
	if printf '%s\n' "$out" | grep -q '^dup '; then
		printf '%s\n' "$out" | grep '^dup ' | head -n 5 | sed 's/^/    duplicate: /'
		bad=1
	fi
	if grep -q 'status=bounced' "$POSTFIX_LOG"; then
		echo "    Postfix bounced mail:"
		grep 'status=bounced' "$POSTFIX_LOG" | head -n 3 | sed 's/^/      /'
		bad=1
	fi
	return "$bad"
}

# pf_deferrals DOM: Postfix's "status=deferred" lines for recipients of DOM
pf_deferrals() {
	grep -E "to=<[^>]*@$(ere_quote "$1")>.* status=deferred " "$POSTFIX_LOG"
}

# deferrals_match DOM ERE: every Postfix deferral of DOM quotes an agent
# reply matching ERE (and there is at least one); prints the first that
# does not
deferrals_match() {
	local l n
	n=$(pf_deferrals "$1" | wc -l)
	[ "$n" -gt 0 ] || { echo "    no deferral for $1 in Postfix's log"; return 1; }
	l=$(pf_deferrals "$1" | grep -vE -- "$2" | head -n 2)
	[ -z "$l" ] && return 0
	echo "    $n deferrals of $1; these do not match /$2/:"
	printf '%s\n' "$l" | sed 's/^/      /'
	return 1
}

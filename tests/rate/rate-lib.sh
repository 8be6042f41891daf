# shellcheck shell=bash
# tests/rate/rate-lib.sh - helpers for the rate limit integration tests
# (tests/integration/270-rate.sh, 271-rate-fleet.sh; issue 6). Sourced
# after tests/integration/lib.sh.
#
#   rate_scope "LOGIN..." [OVERRIDE...]  overrides list for a limit that
#                                    only those of RATE_LOGINS are subject to
#   rate_send NAME IP LOGIN FROM RCPTS [swaks args]   one SMTP session
#   rcpt_replies [LOG]               the replies to every RCPT, in order
#   mail_reply [LOG]                 the reply to MAIL FROM
#   sink_rcpts TOKEN [SPOOL]         the recipients the sink got for TOKEN
#   milter_restart term|kill         restart weir-milter of $D alone, same
#                                    configuration, same log
#   milter_reload                    SIGUSR1 (weir-milter's reload signal)
#   redis_start PORT DIR / redis_stop  a throwaway redis-server, by PID

# shellcheck source=../stack/common.sh
. "$STACK/common.sh"

# RATE_LOGINS: every SASL login of the stack (set by the test)
RATE_LOGINS=${RATE_LOGINS:-}

# rate_scope "LOGIN..." [OVERRIDE...]: the text of an overrides list: the
# given overrides first (first match wins), then { login = X; unlimited =
# true; } for every login of RATE_LOGINS not among LOGIN..., so that one
# stack can hold a limit per scenario without the scenarios charging each
# other's limits.
rate_scope() {
	local who=" $1 " o l sep=""
	shift
	printf 'overrides = ('
	for o in "$@"; do
		printf '%s\n        %s' "$sep" "$o"
		sep=,
	done
	for l in $RATE_LOGINS; do
		[[ "$who" == *" $l "* ]] && continue
		printf '%s\n        { login = "%s"; unlimited = true; }' "$sep" "$l"
		sep=,
	done
	printf '\n      );'
}

# rate_send NAME IP LOGIN FROM RCPTS [swaks args...]: one session through
# Postfix from IP, AUTH as LOGIN ("" = none), MAIL FROM FROM, RCPT TO each
# of RCPTS (comma separated). Transcript in $SW. Returns swaks' status.
rate_send() {
	local name=$1 ip=$2 login=$3 from=$4 to=$5
	shift 5
	if [ -n "$login" ]; then
		smtp "$name" -i "$ip" -u "$login" --from "$from" --to "$to" "$@"
	else
		smtp "$name" -i "$ip" --from "$from" --to "$to" "$@"
	fi
}

# rcpt_replies [LOG]: the reply line to every RCPT TO of a swaks
# transcript, one per line, in order
rcpt_replies() {
	awk '
		/^ *(->|~>|\*\*) / { last = $2; next }
		/^ *(<-|<~|<\*\*) / {
			if (last != "RCPT") next
			line = $0; sub(/^ *(<-|<~|<\*\*) +/, "", line)
			print line; last = ""
		}' "${1:-$SW}"
}

# mail_reply [LOG]: the reply to MAIL FROM
mail_reply() {
	sw_reply MAIL "${1:-$SW}"
}

# data_reply [LOG]: the reply after the message's final dot
data_reply() {
	sw_reply DATA "${1:-$SW}"
}

# sink_rcpts TOKEN [SPOOL]: the envelope recipients of every stored
# message holding TOKEN, sorted, one per line
sink_rcpts() {
	local f
	for f in $(sink_files_with "$1" "${2:-$SINK_DIR}"); do
		sink_header "$f" X-Sink-Rcpt-To
	done | sort
}

# milter_restart term|kill: stop weir-milter of the stack in $D (SIGTERM:
# a clean stop; SIGKILL: a crash) and start it again exactly as
# tests/stack/start does (same binary, configuration and log), record the
# new PID (stack-weir-milter.pid, stack.env, MILTER_PID), wait until its
# socket answers. Returns 1 when it does not come back.
milter_restart() {
	local how=$1 pid i
	pid=$(stack_recorded_pid "$D" weir-milter)
	if [ "$how" = kill ]; then
		if stack_owned "$pid" "$D"; then
			kill -KILL "$pid" 2>/dev/null
			# our own child when an earlier milter_restart started it:
			# reap it quietly (no "Killed" from the shell)
			wait "$pid" 2>/dev/null
			for ((i = 0; i < 100; i++)); do
				stack_alive "$pid" || break
				sleep 0.1
			done
		fi
		rm -f "$D/run/stack-weir-milter.pid"
	else
		stack_stop_pid "$D" weir-milter 20
	fi
	if stack_alive "$pid"; then
		echo "    weir-milter $pid did not stop"
		return 1
	fi
	# shellcheck disable=SC2086
	(exec ${WEIR_STACK_MILTER_WRAPPER:-} "$WEIR_MILTER" -f -c "$D/weir.conf" </dev/null >>"$MILTER_LOG" 2>&1) &
	pid=$!
	stack_record_pid "$D" weir-milter "$pid"
	stack_env_set "$D" MILTER_PID "$pid"
	MILTER_PID=$pid
	for ((i = 0; i < 80; i++)); do
		if ! stack_alive "$pid"; then
			echo "    weir-milter exited during its restart:"
			tail -n 5 "$MILTER_LOG" | sed 's/^/      /'
			return 1
		fi
		if [ "$MILTER_TRANSPORT" = inet ]; then
			$STACKUTIL waittcp "$MILTER_PORT" 0.5 2>/dev/null && return 0
		else
			$STACKUTIL waitunix "$D/run/milter.sock" 0.5 2>/dev/null && return 0
		fi
		sleep 0.25
	done
	echo "    weir-milter (pid $pid) does not answer after its restart"
	return 1
}

# milter_reload: weir-milter's reload signal (SIGUSR1, weir-milter(8);
# SIGHUP belongs to libmilter and stops it); waits until it logs that the
# configuration was loaded (fails when it refuses it or says nothing in 5 s)
milter_reload() {
	local n
	n=$(wc -l <"$MILTER_LOG")
	kill -USR1 "$MILTER_PID" || return 1
	if ! wait_for 5 bash -c "tail -n +$((n + 1)) '$MILTER_LOG' | grep -qE 'reload: configuration .* loaded'"; then
		echo "    weir-milter did not log the reload; it said:"
		tail -n +$((n + 1)) "$MILTER_LOG" | tail -n 5 | sed 's/^/      /'
		return 1
	fi
}

# --- Redis (271) ------------------------------------------------------------
REDIS_PID=
REDIS_PORT=
REDIS_DIR=

# redis_start PORT DIR: a throwaway redis-server on 127.0.0.1:PORT (no
# automatic saves; it loads DIR/dump.rdb if there is one), by PID; waits
# until it answers PING
redis_start() {
	REDIS_PORT=$1 REDIS_DIR=$2
	(exec redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
		--dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" </dev/null >/dev/null 2>&1) &
	REDIS_PID=$!
	wait_for 10 redis_up || {
		echo "    redis-server on port $REDIS_PORT does not answer:"
		tail -n 5 "$REDIS_DIR/redis.log" 2>/dev/null | sed 's/^/      /'
		return 1
	}
}

redis_up() {
	[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

# redis_stop: stop the redis-server redis_start started (its PID only)
redis_stop() {
	local i
	[ -n "$REDIS_PID" ] || return 0
	kill -CONT "$REDIS_PID" 2>/dev/null # a test may have stopped it (SIGSTOP)
	kill -TERM "$REDIS_PID" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$REDIS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$REDIS_PID" 2>/dev/null && kill -KILL "$REDIS_PID" 2>/dev/null
	wait "$REDIS_PID" 2>/dev/null
	REDIS_PID=
	return 0
}

redis_cli() {
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

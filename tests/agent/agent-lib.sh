# shellcheck shell=bash
# tests/agent/agent-lib.sh - helpers for the weir-agent integration tests
# (tests/integration/3NN-agent-*.sh, issue 7). Sourced after
# tests/integration/lib.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     . "$REPO/tests/agent/agent-lib.sh"
#     it_begin "..."
#     it_need_binaries milter agent
#     agent_need tls "STARTTLS/implicit TLS to smart hosts"   # exit 77 until built
#     agent_prepare                       # makes $D (files may go there first)
#     agent_creds "relay relayuser s3cret" # $D/credentials, 0600, owner weir
#     agent_start_stack "$(cat <<'EOF'
#       routes = ( ... port = @SINK_PORT@; ... );   # inside agent = { }
#     EOF
#     )" WEIR_STACK_SINK_TLS=starttls ...
#
# The configuration text goes inside weir.conf's agent group; @NAME@ is
# replaced with the stack's values (see tests/stack/start,
# WEIR_STACK_AGENT_EXTRA). Tests read the stack's stack.env afterwards.

AGENT_T=$REPO/tests/agent
AGENT_INJECT="$PY $AGENT_T/inject.py"
AGENT_COUNT="$PY $AGENT_T/count.py"

# agent_need FEATURE WHAT: skip (exit 77, "not built yet: WHAT") unless the
# built weir-agent / weirctl has FEATURE. Features are recognized by texts
# the spec (/work/spec/issue7-spec.md) puts in replies, so that a feature
# counts as built once its code is linked in:
#   routes     agent.routes used by the agent ("recipients for another destination")
#   tls        TLS to smart hosts ("TLS with smart host")
#   auth       AUTH to smart hosts ("451 4.7.8")
#   health     host health and its state file ("every host is down" or "agent-state")
#   mx         direct MX delivery ("null MX")
#   routeshow  weirctl route show
agent_need() {
	local feature=$1 what=$2 ok=1
	case $feature in
	routes) grep -aq "recipients for another destination" "$WEIR_AGENT" || ok=0 ;;
	tls) grep -aq "TLS with smart host" "$WEIR_AGENT" || ok=0 ;;
	auth) grep -aq "451 4.7.8" "$WEIR_AGENT" || ok=0 ;;
	health) grep -aqE "every host is down|weirctl route show" "$WEIR_AGENT" || ok=0 ;;
	mx) grep -aq "null MX" "$WEIR_AGENT" || ok=0 ;;
	routeshow) # (weirctl without a command prints its usage and exits 1)
		grep -qE '^ +route( |$)' <<<"$("$WEIRCTL" 2>&1)" || ok=0 ;;
	*) it_abort "agent_need: unknown feature $feature" ;;
	esac
	[ "$ok" = 1 ] || it_skip "not built yet: $what"
}

# agent_prepare: make the stack directory $D now (it_start_stack makes it
# itself), so that files the configuration names can be written first
agent_prepare() {
	[ -n "$D" ] && return 0
	D=$(mktemp -d /tmp/weir-it.XXXXXX) || it_abort "mktemp failed"
	chmod 755 "$D"
}

# agent_creds LINE...: $D/credentials with these "NAME USER SECRET" lines,
# mode 0600, owned by weir (the agent's user)
agent_creds() {
	agent_prepare
	printf '# test credentials\n' >"$D/credentials"
	printf '%s\n' "$@" >>"$D/credentials"
	chown weir: "$D/credentials" && chmod 600 "$D/credentials" || it_abort "cannot chmod $D/credentials"
}

# agent_start_stack CONF_TEXT [VAR=VALUE...]: start the stack in $D with
# CONF_TEXT inside the agent group (WEIR_STACK_AGENT_EXTRA) and VAR=VALUE
# for tests/stack/start; source stack.env
agent_start_stack() {
	local conf=$1
	shift
	agent_prepare
	printf '%s\n' "$conf" >"$D/agent-extra.conf"
	chmod 644 "$D/agent-extra.conf"
	it_say "starting the stack in $D $*"
	if ! env "$@" WEIR_STACK_AGENT_EXTRA="$D/agent-extra.conf" "$STACK/start" "$D" >"$D/start.out" 2>&1; then
		cat "$D/start.out"
		it_abort "the stack did not start"
	fi
	# shellcheck disable=SC1091
	. "$D/stack.env"
	it_say "$(tail -n 1 "$D/start.out")"
}

# agent_reconfigure CONF_TEXT: replace the agent settings of the running
# stack (tests/stack/agent-config) and reload weir-agent (SIGHUP); waits
# for its "reloaded" log line
agent_reconfigure() {
	local n
	printf '%s\n' "$1" >"$D/agent-extra.conf"
	"$STACK/agent-config" "$D" "$D/agent-extra.conf" || return 1
	n=$(grep -c 'reloaded' "$AGENT_LOG" 2>/dev/null)
	kill -HUP "$AGENT_PID" || return 1
	wait_for 15 bash -c "[ \$(grep -c 'reloaded' '$AGENT_LOG') -gt $n ]" || {
		echo "    weir-agent did not log a reload; its log:"
		tail -n 5 "$AGENT_LOG" | sed 's/^/      /'
		return 1
	}
}

# agent_restart: stop weir-agent (SIGTERM) and start it again (the
# configuration in $D/weir.conf as it is now); AGENT_PID updated
agent_restart() {
	"$STACK/agent-stop" "$D" && AGENT_PID=$("$STACK/agent-start" "$D")
}

# --- weir-agent's log ---------------------------------------------------
# agent_lines ERE...: the agent log lines (since agent_mark) matching
# every ERE
AGENT_MARK=0
agent_mark() {
	AGENT_MARK=$(wc -l <"$AGENT_LOG" 2>/dev/null || echo 0)
}
agent_lines() {
	local l
	l=$(tail -n +"$((AGENT_MARK + 1))" -- "$AGENT_LOG" 2>/dev/null)
	for e in "$@"; do
		l=$(printf '%s\n' "$l" | grep -E -- "$e")
	done
	[ -n "$l" ] && printf '%s\n' "$l"
}

# agent_rcpt RCPT STATUS [ERE...]: (waits up to 20 s for) the agent's
# delivery line for RCPT with status=STATUS (sent, deferred, bounced)
# matching every ERE. For deferred/bounced, a transaction line since
# agent_mark (nrcpt=, no to=: the answer came at MAIL, before any RCPT)
# with that status counts too. Prints the recent lines for RCPT when none.
agent_rcpt() {
	local rcpt=$1 st=$2 q
	shift 2
	q=$(ere_quote "$rcpt")
	if wait_for 20 agent_lines " to=<$q>" " status=$st( |$)" "$@"; then
		return 0
	fi
	if [ "$st" != sent ] && agent_lines " nrcpt=[0-9]+ " " status=$st( |$)" "$@" >/dev/null; then
		echo "    (no line to=<$rcpt>; the transaction line since the mark says status=$st:"
		agent_lines " nrcpt=[0-9]+ " " status=$st( |$)" "$@" | tail -n 1 | sed 's/^/      /'
		echo "    )"
		return 0
	fi
	echo "    no weir-agent line to=<$rcpt> status=$st $* ; its lines for <$rcpt>:"
	agent_lines "<$q>" | tail -n 4 | sed 's/^/      /'
	[ -n "$(agent_lines "<$q>")" ] || tail -n 6 "$AGENT_LOG" | sed 's/^/      (log tail) /'
	return 1
}

# agent_log_has ERE...: some agent line since agent_mark matches every ERE
# (waits up to 15 s); prints the last lines when none does
agent_log_has() {
	wait_for 15 agent_lines "$@" && return 0
	echo "    no weir-agent line since the mark matches: $*; last lines:"
	tail -n 6 "$AGENT_LOG" | sed 's/^/      /'
	return 1
}

# agent_log_lacks ERE: no agent line since agent_mark matches ERE
agent_log_lacks() {
	local l
	l=$(agent_lines "$1")
	[ -z "$l" ] && return 0
	echo "    unexpected weir-agent line(s) matching /$1/:"
	printf '%s\n' "$l" | head -n 4 | sed 's/^/      /'
	return 1
}

# --- Postfix --------------------------------------------------------------
# pf_has QID RCPT ERE...: (waits up to PF_WAIT s, default 30, for) a
# Postfix delivery line for QID and RCPT matching every ERE; prints the
# lines for QID when none does
_pf_line() {
	local qid=$1 rcpt=$2 l
	shift 2
	l=$(grep -F "$qid: to=<$rcpt>" "$POSTFIX_LOG" 2>/dev/null)
	for e in "$@"; do
		l=$(printf '%s\n' "$l" | grep -E -- "$e")
	done
	[ -n "$l" ]
}
pf_has() {
	local qid=$1 rcpt=$2
	shift 2
	wait_for "${PF_WAIT:-30}" _pf_line "$qid" "$rcpt" "$@" && return 0
	echo "    no Postfix line $qid: to=<$rcpt> matching: $*; lines for $qid:"
	grep -F "$qid:" "$POSTFIX_LOG" | tail -n 4 | sed 's/^/      /'
	return 1
}

# pf_deferred QID RCPT ERE: Postfix deferred RCPT of QID after weir-agent
# said 4xx, the line matches ERE, and QID is still queued
pf_deferred() {
	pf_has "$1" "$2" 'status=deferred .*said: 4[0-9][0-9] ' "$3" &&
		{ in_queue "$1" || { echo "    $1 is not in Postfix's queue (postqueue -p)"; return 1; }; }
}

# pf_sent QID RCPT [SECS]: Postfix says status=sent for RCPT of QID
pf_sent() {
	PF_WAIT=${3:-30} pf_has "$1" "$2" "status=sent"
}

# pf_bounced QID RCPT ERE: Postfix bounced RCPT of QID after weir-agent's
# 5xx; the line matches ERE
pf_bounced() {
	pf_has "$1" "$2" 'status=bounced .*said: 5[0-9][0-9] ' "$3"
}

# flush: ask Postfix to retry its deferred mail now
flush() {
	postqueue -c "$POSTFIX_CONFIG_DIR" -f
}

# --- sinks ----------------------------------------------------------------
# copies TOKEN SPOOL: number of stored messages (not bounces) with TOKEN
copies() {
	sink_files_with "$1" "$2" | grep -c .
}

# one_copy TOKEN SPOOL [SECS]: (wait until) exactly one copy of TOKEN in
# SPOOL, and none in the other spools of the stack
one_copy() {
	local tok=$1 spool=$2 secs=${3:-40} s n
	wait_sink "$tok" 1 "$secs" "$spool" || {
		echo "    $tok not in $spool after ${secs}s"
		return 1
	}
	sleep 0.3
	n=$(copies "$tok" "$spool")
	[ "$n" = 1 ] || { echo "    $n copies of $tok in $spool"; return 1; }
	for s in "$D"/sink "$D"/sink2 "$D"/sink3 "$D"/smtps "$D"/mxa "$D"/mxb; do
		[ -d "$s" ] && [ "$s" != "${spool%/}" ] || continue
		n=$(copies "$tok" "$s")
		[ "$n" = 0 ] || { echo "    $n copies of $tok in $s too"; return 1; }
	done
}

# copy_here TOKEN SPOOL RCPTS [SECS]: (wait until) exactly one copy of
# TOKEN in SPOOL, for the envelope recipients RCPTS ("<a> <b>")
copy_here() {
	local tok=$1 spool=$2 want=$3 secs=${4:-30} n got
	wait_sink "$tok" 1 "$secs" "$spool" || {
		echo "    $tok not in $spool after ${secs}s"
		return 1
	}
	n=$(copies "$tok" "$spool")
	[ "$n" = 1 ] || { echo "    $n copies of $tok in $spool"; return 1; }
	got=$(rcpts_of "$tok" "$spool")
	[ "$got" = "$want" ] || { echo "    $tok in $spool for $got, want $want"; return 1; }
}

# no_copy TOKEN [SECS]: no spool of the stack holds TOKEN (after SECS,
# default 2, for a delivery that should not come)
no_copy() {
	local s
	sleep "${2:-2}"
	for s in "$D"/sink "$D"/sink2 "$D"/sink3 "$D"/smtps "$D"/mxa "$D"/mxb; do
		[ -d "$s" ] || continue
		if [ -n "$(sink_files_with "$1" "$s")" ]; then
			echo "    $1 was stored in $s: $(sink_files_with "$1" "$s" | head -n 2 | tr '\n' ' ')"
			return 1
		fi
	done
}

# session_of FILE: the sink's X-Sink-Session line of a stored message
session_of() {
	sed -n 's/^X-Sink-Session: //p' "$1" | tr -d '\r' | head -n 1
}

# stored_with TOKEN SPOOL ERE: the copy of TOKEN in SPOOL has an
# X-Sink-Session line matching ERE (tls=..., auth=LOGIN:MECH)
stored_with() {
	local f s
	f=$(sink_files_with "$1" "$2" | head -n 1)
	[ -n "$f" ] || { echo "    $1 not in $2"; return 1; }
	s=$(session_of "$f")
	printf '%s\n' "$s" | grep -qE -- "$3" && return 0
	echo "    $f: X-Sink-Session: $s (want /$3/)"
	return 1
}

# rcpts_of TOKEN SPOOL: the X-Sink-Rcpt-To addresses of TOKEN's copy
rcpts_of() {
	local f
	f=$(sink_files_with "$1" "$2" | head -n 1)
	[ -n "$f" ] && sink_header "$f" X-Sink-Rcpt-To | tr '\n' ' ' | sed 's/ $//'
}

# sink_saw SINKLOG ERE: the sink's log (transcript) has a line matching ERE
sink_saw() {
	grep -qE -- "$2" "$1" 2>/dev/null
}

# route_show: weirctl route show for the stack, printed indented, and
# kept in $D/log/route-show.out
route_show() {
	"$WEIRCTL" -c "$WEIR_CONF" route show >"$D/log/route-show.out" 2>&1
	local rc=$?
	sed 's/^/      route show: /' "$D/log/route-show.out"
	return "$rc"
}

# route_show_has ERE...: (waits up to 15 s until) one line of weirctl
# route show matches every ERE
route_show_line() {
	local l
	l=$("$WEIRCTL" -c "$WEIR_CONF" route show 2>&1)
	for e in "$@"; do
		l=$(printf '%s\n' "$l" | grep -E -- "$e")
	done
	[ -n "$l" ]
}
route_show_has() {
	wait_for 15 route_show_line "$@" && return 0
	echo "    no line of weirctl route show matches: $*"
	route_show
	return 1
}

# agent_have FEATURE: like agent_need, but only says whether it is built
agent_have() {
	(agent_need "$1" x >/dev/null 2>&1) # it_skip exits the subshell with 77
}

# agent_partial WHAT: part of this test could not run (WHAT not built
# yet); agent_end then exits 77 with "not built yet: WHAT" instead of 0
AGENT_PARTIAL=
agent_partial() {
	it_say "not built yet: $1 (those checks are left out)"
	AGENT_PARTIAL="${AGENT_PARTIAL:+$AGENT_PARTIAL; }$1"
}

# agent_end: it_end, except that a test that passed with parts left out
# (agent_partial) is a skip
agent_end() {
	if [ "$IT_FAILS" = 0 ] && [ -n "$AGENT_PARTIAL" ]; then
		it_say "the $IT_CHECKS checks that ran passed"
		it_skip "not built yet: $AGENT_PARTIAL"
	fi
	it_end
}

# quiet CMD...: run CMD with its standard output thrown away
quiet() {
	"$@" >/dev/null
}

# no_copy_in TOKEN SPOOL [SECS]: SPOOL holds no copy of TOKEN (after SECS,
# default 1)
no_copy_in() {
	sleep "${3:-1}"
	[ -z "$(sink_files_with "$1" "$2")" ] && return 0
	echo "    $1 was stored in $2: $(sink_files_with "$1" "$2" | head -n 2 | tr '\n' ' ')"
	return 1
}

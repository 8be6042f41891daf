#!/bin/bash
# 80-privdrop: after start, weir-milter and weir-agent run as user weir
# (real, effective, saved uid and gid), their pid files exist and hold
# their PIDs, and the agent's unix socket has the configured mode.
. "$(dirname "$0")/lib.sh"
it_begin "privilege drop and pid files"
it_need_binaries milter agent
it_start_stack

WUID=$(id -u weir) WGID=$(id -g weir)
for n in milter agent; do
	if [ $n = milter ]; then pid=$MILTER_PID pf=$MILTER_PID_FILE; else pid=$AGENT_PID pf=$AGENT_PID_FILE; fi
	check "weir-$n (pid $pid) runs" pid_alive "$pid"
	check "weir-$n: ps says user weir (got '$(ps -o user= -p "$pid" | tr -d ' ')')" \
		test "$(ps -o user= -p "$pid" | tr -d ' ')" = weir
	uids=$(awk '/^Uid:/{print $2,$3,$4,$5}' "/proc/$pid/status" 2>/dev/null)
	gids=$(awk '/^Gid:/{print $2,$3,$4,$5}' "/proc/$pid/status" 2>/dev/null)
	check "weir-$n: real/effective/saved/fs uid all $WUID (got $uids)" test "$uids" = "$WUID $WUID $WUID $WUID"
	check "weir-$n: real/effective/saved/fs gid all $WGID (got $gids)" test "$gids" = "$WGID $WGID $WGID $WGID"
	groups=$(awk '/^Groups:/{$1=""; print}' "/proc/$pid/status" | tr -s ' ' | sed 's/^ //;s/ $//')
	check "weir-$n: no supplementary group 0 (groups: '$groups')" bash -c "! echo ' $groups ' | grep -q ' 0 '"
	check "weir-$n: every thread runs as weir" \
		bash -c "! awk '/^Uid:/{print \$2,\$3,\$4}' /proc/$pid/task/*/status | grep -v '^$WUID $WUID $WUID\$' | grep -q ."
	check "weir-$n: pid file $pf exists" test -s "$pf"
	check "weir-$n: pid file holds $pid (got '$(cat "$pf" 2>/dev/null)')" test "$(tr -d ' \n' <"$pf" 2>/dev/null)" = "$pid"
done
check "agent socket $AGENT_LMTP_SOCKET is a socket" test -S "$AGENT_LMTP_SOCKET"
check "agent socket mode is 0666 (socket_mode; got $(stat -c %a "$AGENT_LMTP_SOCKET" 2>/dev/null))" \
	test "$(stat -c %a "$AGENT_LMTP_SOCKET" 2>/dev/null)" = 666
check "user postfix can connect to the agent socket" \
	runuser -u postfix -- $PY "$STACK/stackutil.py" waitunix "$AGENT_LMTP_SOCKET" 2
it_end

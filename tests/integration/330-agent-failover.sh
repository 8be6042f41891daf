#!/bin/bash
# 330-agent-failover: a route with two smart hosts by priority (sink first,
# sink2 second), through the real stack:
#   both up: everything goes to the first;
#   the first stopped: the mail goes to the second at once (Postfix hears
#   250, nothing waits in the queue), weir-agent logs the host down and
#   `weirctl route show` shows it down with its last error;
#   the first back: after agent.host_backoff it gets the mail again and
#   route show has it up;
#   the first greets 421: the second takes the mail;
#   both down: 4xx and queued; the first back while both are still marked
#   down: the one that recovers first is tried anyway, the mail goes out
#   without waiting for the back-off.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent failover between two smart hosts, host health, weirctl route show"
it_need_binaries milter agent weirctl
agent_need routes "agent.routes in weir-agent"
agent_need health "host health and failover in weir-agent"

agent_start_stack '
  host_backoff = "8s";
  session_idle = "1s";
  routes = (
    { name = "prio"; rcpt_domains = ("prio.weir.test");
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; priority = 0; },
                { host = "sink2.weir.test"; port = @SINK2_PORT@; tls = "none"; priority = 1; } ); },
    { name = "default"; hosts = ( { host = "sink3.weir.test"; port = @SINK3_PORT@; tls = "none"; } ); }
  );' WEIR_STACK_SINKS=3

SHOW=1
agent_have routeshow || { SHOW=0; agent_partial "weirctl route show"; }
FROM=failover@client.weir.test

# send_to WHAT RCPT SPOOL: one message, delivered at once to SPOOL (Postfix
# sent without any deferral, weir-agent's line names the host)
send_to() {
	local what=$1 r=$2 spool=$3 host=$4 t
	t=$(token)
	check "$what: Postfix accepts" send_mail "$FROM" "$r" "$t"
	check "$what: Postfix status=sent" pf_sent "$QID" "$r"
	check "$what: never deferred" bash -c "! grep -F '$QID: to=<$r>' '$POSTFIX_LOG' | grep -q status=deferred"
	check "$what: one copy at $(basename "$spool")" one_copy "$t" "$spool"
	check "$what: weir-agent: status=sent via $host" agent_rcpt "$r" sent "relay=$(ere_quote "$host")"
}

# --- both up ----------------------------------------------------------------------
agent_mark
for i in 1 2 3; do
	send_to "both up ($i)" "u$i@prio.weir.test" "$SINK_DIR" sink.weir.test
done
if [ "$SHOW" = 1 ]; then
	check "route show: route prio, sink.weir.test up" route_show_has 'sink\.weir\.test' '(^|[^a-z])up([^a-z]|$)'
	check "route show: sink2.weir.test up" route_show_has 'sink2\.weir\.test' '(^|[^a-z])up([^a-z]|$)'
fi

# --- the first host stopped -------------------------------------------------------
check "sink stopped" "$STACK/sink-stop" "$D"
agent_mark
send_to "first down (1)" "d1@prio.weir.test" "$SINK2_DIR" sink2.weir.test
# within the back-off (8 s) of that failure:
check "weir-agent logged sink.weir.test down, with the reason" \
	agent_log_has "host=sink\.weir\.test:$SINK_PORT" 'state=down' '(refused|connect)'
if [ "$SHOW" = 1 ]; then
	check "route show: sink.weir.test down" route_show_has "sink\.weir\.test" '(^|[^a-z])down([^a-z]|$)'
	check "route show: its last error" route_show_has '(refused|connect)'
	route_show
fi
for i in 2 3 4 5; do
	send_to "first down ($i)" "d$i@prio.weir.test" "$SINK2_DIR" sink2.weir.test
done
if [ "$SHOW" = 1 ]; then
	check "route show: sink2.weir.test up, 5 messages sent" \
		route_show_has 'sink2\.weir\.test' '(^|[^a-z])up([^a-z]|$)'
	check "route show: sink2.weir.test's count: messages sent=5" route_show_has 'messages sent=5( |,|$)'
fi

# --- the first host back -----------------------------------------------------------
check "sink restarted on its port" quiet "$STACK/sink-restart" "$D"
sleep 8.5 # host_backoff
agent_mark
back_at_first() {
	local t r=back$RANDOM@prio.weir.test
	t=$(token)
	send_mail "$FROM" "$r" "$t" >/dev/null || return 1
	wait_for 20 bash -c "grep -lF '$t' '$SINK_DIR'/*.eml '$SINK2_DIR'/*.eml 2>/dev/null | grep -q ." || return 1
	[ -n "$(sink_files_with "$t" "$SINK_DIR")" ]
}
check "after the back-off the first host gets the mail again" wait_for 30 back_at_first
check "weir-agent logged sink.weir.test up again" agent_log_has "host=sink\.weir\.test:$SINK_PORT" 'state=up'
if [ "$SHOW" = 1 ]; then
	check "route show: sink.weir.test up again" route_show_has 'sink\.weir\.test' '(^|[^a-z])up([^a-z]|$)'
fi

# --- the first greets 421 -------------------------------------------------------
check "sink greets 421 from now on" "$STACK/sink-fault" "$D" sink greet421
sleep 2 # session_idle: no pooled session to the first host is left
agent_mark
send_to "first greets 421" g1@prio.weir.test "$SINK2_DIR" sink2.weir.test
check "weir-agent logged sink.weir.test down after its 421" \
	agent_log_has "host=sink\.weir\.test:$SINK_PORT" 'state=down' '421'
check "sink greets normally again" "$STACK/sink-fault" "$D" sink none

# --- both down, then the first back while both are still marked down ---------------
sleep 8.5
check "sink and sink2 stopped" bash -c "'$STACK/sink-stop' '$D' && '$STACK/sink-stop' '$D' sink2"
agent_mark
t=$(token) r=both@prio.weir.test
check "both down: Postfix accepts" send_mail "$FROM" "$r" "$t"
Q=$QID
check "both down: Postfix deferred it with weir-agent's 4xx" pf_deferred "$Q" "$r" '4\.[0-9]'
check "both down: weir-agent: status=deferred" agent_rcpt "$r" deferred
check "both down: weir-agent logged both hosts down" \
	bash -c "grep -q 'host=sink\.weir\.test:$SINK_PORT.*state=down' '$AGENT_LOG' && grep -q 'host=sink2\.weir\.test:$SINK2_PORT.*state=down' '$AGENT_LOG'"
check "sink restarted (both still within their back-off)" quiet "$STACK/sink-restart" "$D"
agent_mark
check "postqueue -f at once" flush
check "both marked down: the first is tried anyway, the message goes out" one_copy "$t" "$SINK_DIR" 15
check "both marked down: Postfix status=sent" pf_sent "$Q" "$r"
check "weir-agent said so (every host down: trying one)" agent_log_has '(every|all) host.* down'
check "sink2 restarted" quiet "$STACK/sink-restart" "$D" sink2
check "Postfix's queue is empty" wait_queue_empty 30
check "nothing went to the default route's host" test "$(sink_count "$SINK3_DIR")" = 0
check "weir-agent still running" pid_alive "$AGENT_PID"
agent_end

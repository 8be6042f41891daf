#!/bin/bash
# 60-reload: SIGUSR1 to weir-milter and SIGHUP to weir-agent with a broken
# weir.conf: both log the error (FILE:LINE) and keep running with the old
# configuration (mail still flows to the first sink). Then a good, changed
# weir.conf (agent.smarthost moved to a second sink, log_level info) is
# taken: mail now goes to the second sink.
. "$(dirname "$0")/lib.sh"
it_begin "reload with a broken, then a good configuration"
it_need_binaries milter agent
it_start_stack

# new_log_lines FILE MARK: lines of FILE after line MARK
new_log_lines() { tail -n +"$(($2 + 1))" "$1"; }
nlines() { wc -l <"$1"; }
new_has() { new_log_lines "$1" "$2" | grep -qE -- "$3"; }

tok=$(token)
check "before: a message flows to the first sink" send_mail a@client.weir.test r1@example.weir.test "$tok"
check "before: it arrives" wait_sink "$tok"

cp "$WEIR_CONF" "$D/weir.conf.orig"
# break it: an unknown setting on a known line, and a bad value
{
	sed -n '1,3p' "$D/weir.conf.orig"
	echo 'no_such_setting_for_reload = 1;'   # line 4
	echo 'log_level = "shouting";'           # line 5
	sed -n '4,$p' "$D/weir.conf.orig" | grep -v '^log_level'
} >"$D/weir.conf.broken"
cat "$D/weir.conf.broken" >"$WEIR_CONF"
mm=$(nlines "$MILTER_LOG") am=$(nlines "$AGENT_LOG")
kill -USR1 "$MILTER_PID"
kill -HUP "$AGENT_PID"
check "weir-milter logs the error at $WEIR_CONF:4:" wait_for 10 new_has "$MILTER_LOG" "$mm" "$WEIR_CONF:4:"
check "weir-milter logs the error at $WEIR_CONF:5:" wait_for 5 new_has "$MILTER_LOG" "$mm" "$WEIR_CONF:5:"
check "weir-agent logs the error at $WEIR_CONF:4:" wait_for 10 new_has "$AGENT_LOG" "$am" "$WEIR_CONF:4:"
check "weir-agent logs the error at $WEIR_CONF:5:" wait_for 5 new_has "$AGENT_LOG" "$am" "$WEIR_CONF:5:"
it_say "milter said: $(new_log_lines "$MILTER_LOG" "$mm" | grep -iE 'reload|keep' | head -n 2 | tr '\n' '|')"
it_say "agent said: $(new_log_lines "$AGENT_LOG" "$am" | grep -iE 'reload|keep' | head -n 2 | tr '\n' '|')"
sleep 1
check "weir-milter still running" pid_alive "$MILTER_PID"
check "weir-agent still running" pid_alive "$AGENT_PID"
tok=$(token)
check "after the broken reload: a message is accepted" send_mail a@client.weir.test r2@example.weir.test "$tok"
check "after the broken reload: it still reaches the first sink (old config)" wait_sink "$tok"

# a second sink and a good, changed configuration
P2=$("$STACK/sink-start" "$D" sink2)
check "second sink started on port ${P2:-?}" test -n "$P2"
sed -e "/^ *smarthost = /s/:$SINK_PORT\"/:$P2\"/" -e 's/^log_level = "debug";/log_level = "info";/' \
	"$D/weir.conf.orig" >"$D/weir.conf.new"
check "the new configuration names the second sink" grep -q ":$P2\"" "$D/weir.conf.new"
check "weirctl agrees the new configuration is good" "$WEIRCTL" -c "$D/weir.conf.new" check
cat "$D/weir.conf.new" >"$WEIR_CONF"
mm=$(nlines "$MILTER_LOG") am=$(nlines "$AGENT_LOG")
kill -USR1 "$MILTER_PID"
kill -HUP "$AGENT_PID"
check "weir-milter logs a successful reload" wait_for 10 new_has "$MILTER_LOG" "$mm" "reload.*(loaded|ok)|loaded"
check "weir-agent logs a successful reload" wait_for 10 new_has "$AGENT_LOG" "$am" "reloaded|reload.*(loaded|ok)"
check "no error in the milter log since" bash -c "! tail -n +$((mm + 1)) '$MILTER_LOG' | grep -qiE 'error|refused|fail'"
check "no error in the agent log since" bash -c "! tail -n +$((am + 1)) '$AGENT_LOG' | grep -qiE 'error|refused|fail'"
sleep 1
tok=$(token)
check "after the good reload: a message is accepted" send_mail a@client.weir.test r3@example.weir.test "$tok"
check "after the good reload: it reaches the second sink" wait_sink "$tok" 1 "$IT_TIMEOUT" "$D/sink2"
check "and not the first sink" test -z "$(sink_files_with "$tok")"
check "weir-milter still running" pid_alive "$MILTER_PID"
check "weir-agent still running" pid_alive "$AGENT_PID"
check "Postfix queue is empty" wait_queue_empty 30
it_end

#!/bin/bash
# agent.sh - weir-agent under valgrind inside the real stack: mail through
# Postfix (sent, bounced and deferred recipients), LMTP and SMTP sessions
# straight to it (garbage, over-long lines, a client gone in DATA), a
# reload, then SIGTERM. Fails on any memory error and on any definitely or
# indirectly lost block.
. "$(dirname "$0")/../integration/lib.sh"
it_begin "weir-agent under valgrind"
command -v valgrind >/dev/null || it_skip "valgrind not installed"
it_need_binaries agent
vglog=$(mktemp /tmp/weir-vg-agent.XXXXXX)
trap 'rc=$?; rm -f "$vglog"; (exit $rc); it_cleanup' EXIT
it_start_stack WEIR_STACK_TIMEOUT=60 WEIR_STACK_METRICS=1 \
	"WEIR_STACK_AGENT_WRAPPER=valgrind --suppressions=$IT_HOME/../valgrind/weir.supp --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --log-file=$vglog"

client() { # SCENARIO PORT MODE
	$PY "$IT_HOME/agent_client.py" "$1" "$2" "$SINK_DIR" "$(token)" "$3" 2>&1 | sed "s/^/[$IT_NAME]   /"
}
t1=$(token)
check "Postfix -> agent: one sent, one bounced, one deferred recipient" \
	send_mail sender@client.weir.test "a@example.weir.test,reject-b@example.weir.test,defer-c@example.weir.test" "$t1"
check "the sent recipient reached the sink" wait_sink "$t1" 1 60
check "LMTP per-recipient replies" client lmtp-rcpts "$LMTP_PORT" lmtp
check "SMTP relay" client smtp-basic "$AGENT_SMTP_PORT" smtp
check "garbage" client garbage "$LMTP_PORT" lmtp
check "over-long lines" client longline "$AGENT_SMTP_PORT" smtp
check "client gone in DATA" client drop-in-data "$LMTP_PORT" lmtp
check "next connection served" client after-drop "$LMTP_PORT" lmtp
# the HTTP thread (agent.http_listen): metrics, the summary (report and
# snapshot), files, errors, while the event loop works
http() { curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://127.0.0.1:$AGENT_HTTP_PORT$1"; }
check "HTTP /metrics" [ "$(http /metrics)" = 200 ]
check "HTTP /api/summary" [ "$(http '/api/summary?since=1h')" = 200 ]
check "HTTP /api/summary?since=7d" [ "$(http '/api/summary?since=7d')" = 200 ]
check "HTTP /api/summary?since=x: 400" [ "$(http '/api/summary?since=x')" = 400 ]
check "HTTP / without dashboard files: 404" [ "$(http /)" = 404 ]
check "HTTP /assets/..%2Fx: 404" [ "$(http '/assets/..%2Fx')" = 404 ]
kill -HUP "$AGENT_PID"
sleep 2
check "HTTP /metrics after the reload" [ "$(http /metrics)" = 200 ]
check "reload logged" log_has "$AGENT_LOG" "reload"
kill -TERM "$AGENT_PID"
for _ in $(seq 300); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
check "weir-agent exited after SIGTERM" bash -c "! kill -0 $AGENT_PID 2>/dev/null"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|Invalid|uninitialised" "$vglog" | sed "s/^/[$IT_NAME]   /"
check "valgrind: no errors" grep -q "ERROR SUMMARY: 0 errors" "$vglog"
if [ "$IT_FAILS" != 0 ]; then cat "$vglog"; fi
it_end

#!/bin/bash
# 40-agent-direct: LMTP and ESMTP straight to weir-agent's TCP listeners:
# per-recipient LMTP replies, SMTP mode, garbage commands (5xx, session
# goes on), a 5000-byte line (500 5.5.2, session goes on), a client that
# vanishes in DATA (nothing relayed) and the agent serving the next one.
# Started without the milter: this test is about the agent alone.
. "$(dirname "$0")/lib.sh"
it_begin "weir-agent LMTP/SMTP server side, spoken to directly"
it_need_binaries agent
it_start_stack WEIR_STACK_SKIP=milter

client() { # SCENARIO PORT: run the python client, indenting its output
	local mode=lmtp
	[ "$2" = "$AGENT_SMTP_PORT" ] && mode=smtp
	$PY "$IT_HOME/agent_client.py" "$1" "$2" "$SINK_DIR" "$(token)" "$mode" 2>&1 | sed "s/^/[$IT_NAME]   /"
}
check "LMTP: per-recipient replies (good 2xx, reject- 5xx, defer- 4xx), sink copy" client lmtp-rcpts "$LMTP_PORT"
check "SMTP: relay one message, 5xx for a rejected recipient" client smtp-basic "$AGENT_SMTP_PORT"
check "LMTP: garbage and out-of-order commands get 5xx, the session goes on" client garbage "$LMTP_PORT"
check "SMTP: garbage and out-of-order commands get 5xx, the session goes on" client garbage "$AGENT_SMTP_PORT"
check "LMTP: 5000-byte lines get 500 5.5.2, the session goes on" client longline "$LMTP_PORT"
check "SMTP: 5000-byte lines get 500 5.5.2, the session goes on" client longline "$AGENT_SMTP_PORT"
check "LMTP: client gone in the middle of DATA, nothing relayed" client drop-in-data "$LMTP_PORT"
check "SMTP: client gone in the middle of DATA, nothing relayed" client drop-in-data "$AGENT_SMTP_PORT"
check "LMTP: the agent still serves the next connection" client after-drop "$LMTP_PORT"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

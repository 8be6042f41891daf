#!/bin/bash
# 10-relay-basic: 3 messages through Postfix -> weir-milter -> weir-agent
# (LMTP) -> sink. Each arrives once with the right envelope and an intact
# body; Postfix's queue empties; Postfix logs status=sent via lmtp;
# weir-milter logs a key=value line with the queue id and from=; weir-agent
# logs the relay. MTA-neutral: 600-sendmail-relay.sh runs it against
# Sendmail (WEIR_STACK_MTA=sendmail, contrib/sendmail/weir.mc).
. "$(dirname "$0")/lib.sh"
it_begin "relay 3 messages through the whole stack"
it_need_binaries milter agent
it_start_stack

declare -a TOKS QIDS FROMS RCPTS
for i in 1 2 3; do
	TOKS[$i]=$(token)
	FROMS[$i]="sender$i@client.weir.test"
	RCPTS[$i]="user$i@example.weir.test"
	check "message $i accepted by $(mta_name) (SMTP 250 with a queue id)" \
		send_mail "${FROMS[$i]}" "${RCPTS[$i]}" "${TOKS[$i]}"
	QIDS[$i]=$QID
	it_say "message $i: queue id ${QIDS[$i]:-none}, token ${TOKS[$i]}"
done

for i in 1 2 3; do
	tok=${TOKS[$i]} qid=${QIDS[$i]}
	check "message $i reaches the sink" wait_sink "$tok" 1
	files=$(sink_files_with "$tok")
	check "message $i stored exactly once" test "$(echo "$files" | grep -c .)" = 1
	f=$(echo "$files" | head -n 1)
	if [ -n "$f" ]; then
		check "message $i: sink MAIL FROM is <${FROMS[$i]}>" \
			test "$(sink_header "$f" X-Sink-Mail-From)" = "<${FROMS[$i]}>"
		check "message $i: sink RCPT TO is exactly <${RCPTS[$i]}>" \
			test "$(sink_header "$f" X-Sink-Rcpt-To)" = "<${RCPTS[$i]}>"
		check "message $i: body intact (dot lines, tab, token)" sink_body_ok "$f" "$tok"
		check "message $i: $(mta_name)'s Received header with its queue id kept" \
			grep -q "id $qid" "$f"
	fi
	check "$(mta_name) log: $qid to=<${RCPTS[$i]}> sent to weir-agent over LMTP" \
		mta_sent_to_agent "$qid" "${RCPTS[$i]}" 30
	check "weir-milter log: a key=value line with queue id $qid and from=" \
		wait_log "$MILTER_LOG" "$qid.*from=|from=.*$qid" 10
	check "weir-agent log: a line about the relay of <${RCPTS[$i]}>" \
		log_has "$AGENT_LOG" "${RCPTS[$i]}"
done
check "weir-agent log names the smart host (sink.weir.test or port $SINK_PORT)" \
	log_has "$AGENT_LOG" "sink\.weir\.test|[:=]$SINK_PORT([^0-9]|$)"
check "$(mta_name)'s queue is empty" wait_queue_empty 30
check "the sink holds exactly 3 messages" test "$(sink_count)" = 3
check "weir-milter still running" pid_alive "$MILTER_PID"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

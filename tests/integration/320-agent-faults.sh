#!/bin/bash
# 320-agent-faults: what Postfix hears from weir-agent when the smart host
# misbehaves, and that nothing is lost (the sink's faults: tests/stack/sink.py;
# "...once" faults hit the first attempt only, so Postfix's retry goes
# through):
#   421 at the greeting                 -> 4xx, queued; delivered after
#   450 / 550 per RCPT (LMTP, 3 rcpts)  -> per recipient: sent, 4xx, 5xx
#                                          with the smart host's text quoted
#   reset in the middle of the data     -> 4xx, nothing stored; once after
#   reset after the final dot           -> 4xx, nothing stored; once after
#   no answer to the final dot          -> 4xx after data_timeout; once after
#   no answer to RCPT                   -> 4xx after command_timeout
#   no greeting at all                  -> 4xx; delivered after
#   554 / 451 after the data            -> bounced with the text / deferred
# Every case: Postfix's delivery line and queue, the sink's spool, and
# weir-agent's line for the recipient. At the end Postfix's queue is
# empty and every message that was not refused for good is at the sink
# exactly once.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent: smart host faults -> the right answer to Postfix, nothing lost"
it_need_binaries milter agent
agent_need routes "agent.routes in weir-agent"

agent_start_stack '
  command_timeout = "4s";
  data_timeout = "4s";
  host_backoff = "2s";
  session_idle = "1s";
  routes = (
    { name = "relay"; hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );'

FROM=faults@client.weir.test
declare -a EXPECT=() # tokens that must end at the sink exactly once

# deferred_then_once WHAT RCPT ERE [PREP] [UNDO]: send to RCPT; Postfix
# defers it with weir-agent's 4xx matching ERE, nothing stored; after
# UNDO and a flush it is stored once
deferred_then_once() {
	local what=$1 r=$2 ere=$3 prep=${4:-} undo=${5:-} t q
	[ -n "$prep" ] && check "$what: $prep" $prep
	agent_mark
	t=$(token)
	check "$what: Postfix accepts" send_mail "$FROM" "$r" "$t"
	q=$QID
	check "$what: Postfix deferred it (weir-agent said 4xx $ere)" pf_deferred "$q" "$r" "$ere"
	check "$what: weir-agent: status=deferred" agent_rcpt "$r" deferred
	check "$what: nothing stored" no_copy "$t" 1
	[ -n "$undo" ] && check "$what: $undo" $undo
	check "$what: postqueue -f" flush
	check "$what: then stored exactly once" one_copy "$t" "$SINK_DIR"
	check "$what: Postfix status=sent" pf_sent "$q" "$r"
	check "$what: weir-agent: status=sent" agent_rcpt "$r" sent
	EXPECT+=("$t")
}

# --- 421 at the greeting ---------------------------------------------------------
# (connection-level faults hit new connections only: the first case, and
# after session_idle for the "no greeting" case below)
deferred_then_once "421 greeting" greet@example.weir.test '4\.[0-9]' \
	"$STACK/sink-fault $D sink greet421" "$STACK/sink-fault $D sink none"
check "421 greeting: the sink logged the fault" sink_saw "$SINK_LOG" 'fault=greet421'

# --- per recipient: 250, 450, 550 in one LMTP transaction ----------------------
agent_mark
t=$(token)
rok=ok-b@example.weir.test rdef=deferonce-b@example.weir.test rrej=reject-b@example.weir.test
check "RCPT faults: Postfix accepts one message for 3 recipients" send_mail "$FROM" "$rok,$rdef,$rrej" "$t"
q=$QID
check "RCPT faults: the good recipient: status=sent" pf_sent "$q" "$rok"
check "RCPT faults: the 450 recipient: deferred, the sink's 450 4.2.0 and text quoted" \
	pf_deferred "$q" "$rdef" '450 4\.2\.0 .*temporarily rejected'
check "RCPT faults: the 550 recipient: bounced, the sink's 550 5.1.1 and text quoted" \
	pf_bounced "$q" "$rrej" '550 5\.1\.1 .*User unknown'
check "RCPT faults: weir-agent: $rok status=sent" agent_rcpt "$rok" sent
check "RCPT faults: weir-agent: $rdef status=deferred" agent_rcpt "$rdef" deferred '4\.2\.0'
check "RCPT faults: weir-agent: $rrej status=bounced" agent_rcpt "$rrej" bounced '5\.1\.1'
check "RCPT faults: one copy stored, for the good recipient only" \
	bash -c "[ \"\$(grep -lF '$t' '$SINK_DIR'/*.eml | xargs grep -L '^X-Sink-Mail-From: <>' | wc -l)\" = 1 ]"
f=$(sink_files_with "$t" | head -n 1)
check "RCPT faults: its envelope: exactly <$rok>" test "$(sink_header "$f" X-Sink-Rcpt-To | tr '\n' ' ')" = "<$rok> "
check "RCPT faults: the bounce for $rrej reached the sender" wait_sink_null "$rrej" 30
check "RCPT faults: postqueue -f" flush
check "RCPT faults: the deferred recipient is delivered after the retry" \
	wait_for 30 bash -c "grep -lF '$t' '$SINK_DIR'/*.eml | xargs grep -L '^X-Sink-Mail-From: <>' | xargs grep -l '^X-Sink-Rcpt-To: <$rdef>' | grep -q ."
check "RCPT faults: Postfix: $rdef status=sent" pf_sent "$q" "$rdef"
check "RCPT faults: two copies in all (one per accepted delivery), none for $rrej" \
	bash -c "[ \"\$(grep -lF '$t' '$SINK_DIR'/*.eml | xargs grep -L '^X-Sink-Mail-From: <>' | wc -l)\" = 2 ] &&
		! grep -lF '$t' '$SINK_DIR'/*.eml | xargs grep -L '^X-Sink-Mail-From: <>' | xargs grep -q '^X-Sink-Rcpt-To: <$rrej>'"

# --- connection reset during the data, after the data ---------------------------
deferred_then_once "reset in the middle of the data" resetmidonce-c@example.weir.test '4\.[0-9]'
check "reset in the middle of the data: the sink reset it" sink_saw "$SINK_LOG" 'fault=resetmid'
deferred_then_once "reset after the final dot" resetonce-c@example.weir.test '4\.[0-9]'
check "reset after the final dot: the sink reset it" sink_saw "$SINK_LOG" 'fault=reset rcpt'

# --- a server that stops answering ------------------------------------------------
deferred_then_once "no answer to the final dot (data_timeout 4s)" hangonce-d@example.weir.test '4\.[0-9]'
check "no answer to the final dot: the sink hung" sink_saw "$SINK_LOG" 'fault=hang rcpt'
deferred_then_once "no answer to RCPT (command_timeout 4s)" hangrcptonce-d@example.weir.test '4\.[0-9]'
sleep 2 # session_idle: no pooled session left, the next one is a new connection
deferred_then_once "no greeting at all" silent@example.weir.test '4\.[0-9]' \
	"$STACK/sink-fault $D sink silent" "$STACK/sink-fault $D sink none"

# --- 5xx and 4xx after the data ----------------------------------------------------
agent_mark
t=$(token) r=faildata-e@example.weir.test
check "554 after the data: Postfix accepts" send_mail "$FROM" "$r" "$t"
check "554 after the data: bounced with the sink's 554 5.6.0 and text quoted" \
	pf_bounced "$QID" "$r" '554 5\.6\.0 .*content rejected'
check "554 after the data: weir-agent: status=bounced" agent_rcpt "$r" bounced '5\.6\.0'
check "554 after the data: nothing stored" no_copy "$t" 1
deferred_then_once "451 after the data" tempdataonce-e@example.weir.test '451 4\.3\.0 .*temporary trouble'

# --- nothing lost --------------------------------------------------------------------
check "Postfix's queue is empty" wait_queue_empty 60
all_once() {
	local tok n bad=0
	for tok in "${EXPECT[@]}"; do
		n=$(copies "$tok" "$SINK_DIR")
		[ "$n" = 1 ] || { echo "    $tok: $n copies"; bad=1; }
	done
	return "$bad"
}
check "every message that was not refused for good is at the sink exactly once (${#EXPECT[@]})" all_once
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

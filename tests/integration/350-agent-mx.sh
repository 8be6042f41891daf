#!/bin/bash
# 350-agent-mx: direct delivery to the recipient domain's MX hosts (an mx
# route) through the stack's DNS server (nsd, weir's resolver setting):
#   mxa.weir.test   MX 10 mx-a            -> the mxa sink (port 25)
#   mxb.weir.test   MX 10 mx-dead, 20 mx-b -> mx-dead refuses, the mxb sink
#   nomx.weir.test  no MX, an A record    -> that address (the mxb sink)
#   nullmx.weir.test  MX 0 .  (RFC 7505)   -> 556 5.1.10, Postfix bounces
#   nosuch.weir.test  NXDOMAIN              -> 550 5.1.2, Postfix bounces
#   dead.weir.test  a delegation that never answers -> 451 4.4.3, queued
# One LMTP transaction with recipients in four destinations: each
# recipient gets its own answer, each MX gets a copy for its recipient
# only. Over SMTP (weir-agent's ESMTP listener) a recipient for a second
# destination gets 452 4.5.3.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent direct MX delivery: MX order, A fallback, null MX, NXDOMAIN, split by destination"
it_need_binaries milter agent
agent_need routes "agent.routes in weir-agent"
agent_need mx "direct MX delivery (mx routes) in weir-agent"

agent_prepare
printf '%s\n' 'dead.weir.test. IN NS ns.nowhere.invalid.' >"$D/zone.extra"
agent_start_stack '
  command_timeout = "10s";
  routes = (
    { name = "direct"; mx = true;
      rcpt_domains = ("mxa.weir.test", "mxb.weir.test", "nomx.weir.test", "nullmx.weir.test",
                      "nosuch.weir.test", "dead.weir.test"); },
    { name = "default"; hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );' WEIR_STACK_MX=1 WEIR_STACK_ZONE_EXTRA="$D/zone.extra"
it_say "MX hosts: mx-a $MX_A_ADDR, mx-b $MX_B_ADDR, mx-dead $MX_DEAD_ADDR (port 25)"
FROM=mx@client.weir.test

# direct WHAT RCPT SPOOL HOSTERE: delivered to SPOOL
direct() {
	local what=$1 r=$2 spool=$3 host=$4 t
	agent_mark
	t=$(token)
	check "$what: Postfix accepts" send_mail "$FROM" "$r" "$t"
	check "$what: Postfix status=sent" pf_sent "$QID" "$r"
	check "$what: one copy at $(basename "$spool")" one_copy "$t" "$spool"
	check "$what: its envelope: <$r>" test "$(rcpts_of "$t" "$spool")" = "<$r>"
	check "$what: weir-agent: status=sent, route direct, via $host" agent_rcpt "$r" sent ' route=direct ' "$host"
}
direct "MX 10 mx-a" u@mxa.weir.test "$MXA_DIR" "mx-a\.weir\.test|$(ere_quote "$MX_A_ADDR")"
direct "MX 10 mx-dead (refuses), MX 20 mx-b" u@mxb.weir.test "$MXB_DIR" "mx-b\.weir\.test|$(ere_quote "$MX_B_ADDR")"
check "mx-dead was tried first (weir-agent names it)" log_has "$AGENT_LOG" "mx-dead\.weir\.test|$(ere_quote "$MX_DEAD_ADDR")"
direct "no MX: the A record" u@nomx.weir.test "$MXB_DIR" "nomx\.weir\.test|$(ere_quote "$MX_B_ADDR")"

# bounced WHAT RCPT CODE ERE
bounced() {
	local what=$1 r=$2 ere=$3 t
	agent_mark
	t=$(token)
	check "$what: Postfix accepts" send_mail "$FROM" "$r" "$t"
	check "$what: Postfix bounced it: $ere" pf_bounced "$QID" "$r" "$ere"
	check "$what: weir-agent: status=bounced" agent_rcpt "$r" bounced "$ere"
	check "$what: nothing stored" no_copy "$t" 1
	check "$what: the bounce reached the sender" wait_sink_null "$r" 30
}
bounced "null MX" u@nullmx.weir.test '556 5\.1\.10 .*null MX'
bounced "NXDOMAIN" u@nosuch.weir.test '550 5\.1\.2 .*(not found|does not exist)'

agent_mark
t=$(token) r=u@dead.weir.test
check "DNS failure: Postfix accepts" send_mail "$FROM" "$r" "$t"
check "DNS failure: Postfix deferred it with 451 4.4.3" pf_deferred "$QID" "$r" '451 4\.4\.3'
check "DNS failure: weir-agent: status=deferred" agent_rcpt "$r" deferred '4\.4\.3'
check "DNS failure: still queued, not bounced" bash -c "postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -q '^$QID' && ! grep -F '$QID: to=<$r>' '$POSTFIX_LOG' | grep -q bounced"
Q_DEAD=$QID

# --- LMTP: one transaction, four destinations ------------------------------------
agent_mark
t=$(token)
x1=x1@mxa.weir.test x2=x2@mxb.weir.test x3=x3@nullmx.weir.test x4=x4@example.weir.test
check "split: Postfix accepts one message for 4 recipients" send_mail "$FROM" "$x1,$x2,$x3,$x4" "$t"
Q=$QID
check "split: Postfix: $x1 sent" pf_sent "$Q" "$x1"
check "split: Postfix: $x2 sent" pf_sent "$Q" "$x2"
check "split: Postfix: $x3 bounced 5.1.10" pf_bounced "$Q" "$x3" '5\.1\.10'
check "split: Postfix: $x4 sent" pf_sent "$Q" "$x4"
check "split: Postfix handed all four to weir-agent in one LMTP transaction" \
	bash -c "[ \$(grep -F '$Q: to=<' '$POSTFIX_LOG' | grep -o 'postfix/lmtp\[[0-9]*\]' | sort -u | wc -l) = 1 ]"
check "split: mxa has one copy, for $x1 only" bash -c "[ '$(rcpts_of "$t" "$MXA_DIR")' = '<$x1>' ]"
check "split: mxb has one copy, for $x2 only" bash -c "[ '$(rcpts_of "$t" "$MXB_DIR")' = '<$x2>' ]"
check "split: the smart host has one copy, for $x4 only" bash -c "[ '$(rcpts_of "$t" "$SINK_DIR")' = '<$x4>' ]"
check "split: one copy in each place" \
	bash -c "[ \$(grep -lF '$t' '$MXA_DIR'/*.eml '$MXB_DIR'/*.eml '$SINK_DIR'/*.eml | xargs grep -L '^X-Sink-Mail-From: <>' | wc -l) = 3 ]"
check "split: weir-agent: $x1 sent" agent_rcpt "$x1" sent ' route=direct '
check "split: weir-agent: $x2 sent" agent_rcpt "$x2" sent ' route=direct '
check "split: weir-agent: $x3 bounced" agent_rcpt "$x3" bounced '5\.1\.10'
check "split: weir-agent: $x4 sent" agent_rcpt "$x4" sent ' route=default '

# --- SMTP: one destination per transaction ----------------------------------------
smtp_split() {
	"$PY" - "$AGENT_SMTP_PORT" "$1" <<'PYEOF'
import smtplib, sys
port, tok = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port, local_hostname="mx.weir.test", timeout=30)
s.ehlo("mx.weir.test")
code, _ = s.mail("mx@client.weir.test")
assert code == 250, code
r1 = s.rcpt("y1@mxa.weir.test")
r2 = s.rcpt("y2@mxb.weir.test")
print("  RCPT y1@mxa.weir.test: %d %s" % (r1[0], r1[1].decode()))
print("  RCPT y2@mxb.weir.test: %d %s" % (r2[0], r2[1].decode()))
ok = r1[0] == 250 and r2[0] == 452 and b"4.5.3" in r2[1]
code, msg = s.data(("Subject: weir test %s\r\n\r\nbody %s\r\n" % (tok, tok)).encode())
print("  DATA: %d %s" % (code, msg.decode()))
s.quit()
sys.exit(0 if ok and code == 250 else 1)
PYEOF
}
t=$(token)
check "SMTP: the second destination's RCPT gets 452 4.5.3, the first is relayed" smtp_split "$t"
check "SMTP: mxa got it, for y1 only" bash -c "sleep 1; [ '$(sleep 1; rcpts_of "$t" "$MXA_DIR")' = '<y1@mxa.weir.test>' ]"
check "SMTP: mxb got nothing" bash -c "[ -z \"\$(grep -lF '$t' '$MXB_DIR'/*.eml 2>/dev/null)\" ]"

check "the DNS-failure message is still queued (the rest is done)" in_queue "$Q_DEAD"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

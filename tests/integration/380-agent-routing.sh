#!/bin/bash
# 380-agent-routing: routes by login, sender domain and recipient domain
# through the real stack with SMTP AUTH (Postfix + Cyrus SASL) and
# weir-milter passing the login in a header (milter.login_header =
# agent.login_header = X-Weir-Login), and what an upstream without 8BITMIME
# or SMTPUTF8 gets:
#   login app (glob "app*")            -> route bylogin (smtps sink, TLS 465)
#   alice as alice@eu.corp.weir.test   -> route bysender (".corp.weir.test", sink2)
#   alice as alice@local.weir.test     -> the default route (sink)
#   a client's own X-Weir-Login: app   -> removed by weir-milter: default route
#   the login header never reaches a smart host;
#   to legacy.weir.test (sink3 without 8BITMIME and SMTPUTF8):
#   BODY=8BITMIME mail -> 550 5.6.3, SMTPUTF8 mail -> 553 5.6.7, never
#   relayed (Postfix bounces), 7-bit mail goes through; BODY=8BITMIME to a
#   host that has 8BITMIME keeps its bytes.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent routes by login, sender and recipient domain; 8BITMIME and SMTPUTF8 refused by the upstream"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
agent_need routes "agent.routes in weir-agent"
grep -aq 'login_header' "$WEIR_MILTER" || it_skip "not built yet: milter.login_header in weir-milter"

agent_prepare
cat >"$D/policy.conf" <<'EOF'
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test", "corp.weir.test");
senders = {
  map = (
    { login = "alice"; addresses = ("alice@local.weir.test", "@.corp.weir.test"); },
    { login = "app"; addresses = ("app?@local.weir.test"); }
  );
};
EOF
printf '  login_header = "X-Weir-Login";\n' >"$D/milter.conf"
chmod 644 "$D/policy.conf" "$D/milter.conf"
agent_start_stack '
  tls_ca_file = "@TLS_CA_FILE@";
  login_header = "X-Weir-Login";
  routes = (
    { name = "bylogin"; logins = ("app*");
      hosts = ( { host = "smtps.weir.test"; tls = "implicit"; } ); },
    { name = "bysender"; sender_domains = (".corp.weir.test");
      hosts = ( { host = "sink2.weir.test"; port = @SINK2_PORT@; tls = "none"; } ); },
    { name = "legacy"; rcpt_domains = ("legacy.weir.test");
      hosts = ( { host = "sink3.weir.test"; port = @SINK3_PORT@; tls = "none"; } ); },
    { name = "default";
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );' WEIR_STACK_SASL=1 WEIR_STACK_POSTFIX_OPEN=1 WEIR_STACK_CONF_EXTRA="$D/policy.conf" \
	WEIR_STACK_MILTER_EXTRA="$D/milter.conf" WEIR_STACK_SINKS=3 WEIR_STACK_SMTPS=1 \
	WEIR_STACK_SINK3_ARGS="--ehlo-drop 8BITMIME --ehlo-drop SMTPUTF8"

no_login_header() { # TOKEN SPOOL: the stored copy has no X-Weir-Login
	local f
	f=$(sink_files_with "$1" "$2" | head -n 1)
	[ -n "$f" ] || { echo "    $1 not in $2"; return 1; }
	if grep -qi '^X-Weir-Login:' "$f"; then
		echo "    $f still has: $(grep -i '^X-Weir-Login:' "$f")"
		return 1
	fi
}
# routed WHAT TOKEN RCPT SPOOL ROUTE: Postfix sent, one copy in SPOOL
# without the login header, weir-agent's line names ROUTE
routed() {
	local what=$1 t=$2 r=$3 spool=$4 route=$5
	check "$what: Postfix status=sent" pf_sent "$QID" "$r"
	check "$what: one copy at $(basename "$spool")" one_copy "$t" "$spool"
	check "$what: the copy has no X-Weir-Login header" no_login_header "$t" "$spool"
	check "$what: weir-agent: status=sent route=$route" agent_rcpt "$r" sent " route=$route "
}

# --- by login --------------------------------------------------------------------
agent_mark
t=$(token) r=r1@example.weir.test
check "login app: submitted with AUTH (from 127.0.0.2)" \
	smtp "app-$RANDOM" -u app --from app1@local.weir.test --to "$r" --header "Subject: weir test $t" --body "$t"
routed "login app" "$t" "$r" "$SMTPS_DIR" bylogin
check "login app: weir-milter added the login for weir-agent" log_has "$MILTER_LOG" "queue_id=$QID .*login=app"

# --- by sender domain -----------------------------------------------------------------
agent_mark
t=$(token) r=r2@example.weir.test
check "alice as alice@eu.corp.weir.test: submitted" \
	smtp "alice-corp-$RANDOM" -u alice --from alice@eu.corp.weir.test --to "$r" --header "Subject: weir test $t" --body "$t"
routed "sender .corp.weir.test" "$t" "$r" "$SINK2_DIR" bysender

# --- neither: the default ---------------------------------------------------------------
agent_mark
t=$(token) r=r3@example.weir.test
check "alice as alice@local.weir.test: submitted" \
	smtp "alice-local-$RANDOM" -u alice --from alice@local.weir.test --to "$r" --header "Subject: weir test $t" --body "$t"
routed "login alice, sender local" "$t" "$r" "$SINK_DIR" default

# --- a forged login header ------------------------------------------------------------
agent_mark
t=$(token) r=r4@example.weir.test
check "trusted client without AUTH, its own 'X-Weir-Login: app': submitted" \
	smtp "forged-$RANDOM" -i 127.0.0.1 --from x@local.weir.test --to "$r" \
	--header "Subject: weir test $t" --header "X-Weir-Login: app" --body "$t"
routed "forged login header" "$t" "$r" "$SINK_DIR" default
check "forged login header: nothing went to the login route" no_copy_in "$t" "$SMTPS_DIR"

# --- an upstream without 8BITMIME / SMTPUTF8 --------------------------------------------
agent_mark
t=$(token) r=seven@legacy.weir.test
check "7-bit mail to legacy.weir.test: submitted" \
	smtp "7bit-$RANDOM" -i 127.0.0.1 --from x@local.weir.test --to "$r" --header "Subject: weir test $t" --body "$t"
routed "7-bit to a host without 8BITMIME" "$t" "$r" "$SINK3_DIR" legacy

# py_send TOKEN FROM RCPT OPTIONS: one message into Postfix with smtplib,
# MAIL options OPTIONS (comma separated), an 8-bit body line; sets QID
# from Postfix's log once the message is handled
py_send() {
	local t=$1 from=$2 r=$3 opts=$4
	"$PY" - "$SMTP_PORT" "$t" "$from" "$r" "$opts" <<'PYEOF' || return 1
import smtplib, sys
port, tok, frm, rcpt, opts = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.weir.test", timeout=30)
s.ehlo("client.weir.test")
msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: weir test %s\r\n\r\nbody %s caf\u00e9 cr\u00e8me\r\n"
       % (frm, rcpt, tok, tok)).encode()
s.sendmail(frm, [rcpt], msg, mail_options=[o for o in opts.split(",") if o])
s.quit()
PYEOF
	wait_for 20 bash -c "grep -F 'to=<$r>' '$POSTFIX_LOG' | grep -q status=" || return 1
	QID=$(grep -F "to=<$r>" "$POSTFIX_LOG" | tail -n 1 | sed -n 's/.*: \([0-9A-F]\{6,\}\): to=.*/\1/p')
}

agent_mark
t=$(token) r=eight@legacy.weir.test
check "BODY=8BITMIME mail to legacy.weir.test: submitted" py_send "$t" x@local.weir.test "$r" BODY=8BITMIME
check "8BITMIME: Postfix bounced it with weir-agent's 550 5.6.3" pf_bounced "${QID:-none}" "$r" '550 5\.6\.3'
check "8BITMIME: weir-agent: status=bounced 5.6.3" agent_rcpt "$r" bounced '5\.6\.3'
check "8BITMIME: nothing relayed to sink3" no_copy_in "$t" "$SINK3_DIR"

agent_mark
t=$(token) r=utf8@legacy.weir.test
check "SMTPUTF8 mail (UTF-8 sender) to legacy.weir.test: submitted" py_send "$t" "j$(printf '\xc3\xb6')rg@local.weir.test" "$r" SMTPUTF8
check "SMTPUTF8: Postfix bounced it with weir-agent's 553 5.6.7" pf_bounced "${QID:-none}" "$r" '553 5\.6\.7'
check "SMTPUTF8: weir-agent: status=bounced 5.6.7" agent_rcpt "$r" bounced '5\.6\.7'
check "SMTPUTF8: nothing relayed to sink3" no_copy_in "$t" "$SINK3_DIR"

agent_mark
t=$(token) r=eight@example.weir.test
check "BODY=8BITMIME mail to a host with 8BITMIME: submitted" py_send "$t" x@local.weir.test "$r" BODY=8BITMIME
check "8BITMIME to the default sink: Postfix status=sent" pf_sent "${QID:-none}" "$r"
check "8BITMIME to the default sink: the 8-bit bytes arrive as sent" \
	bash -c "grep -lF '$t' '$SINK_DIR'/*.eml | xargs grep -l \"caf$(printf '\xc3\xa9') cr$(printf '\xc3\xa8')me\" | grep -q ."
check "8BITMIME to the default sink: BODY=8BITMIME passed on" \
	agent_log_has "upstream sink\.weir\.test.*> MAIL FROM:<x@local\.weir\.test>.*BODY=8BITMIME"

check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

#!/bin/bash
# 370-agent-contrib: the contrib/ snippets, used for real.
#   Postfix: the stack's Postfix is reconfigured with contrib/postfix/
#   master.cf (services weir and weir-smtp) and main.cf (paths replaced by
#   the stack's); (A) every message goes through the "weir" lmtp service
#   to weir-agent; (B) only the senders of contrib/postfix/weir-senders do
#   (sender_dependent_default_transport_maps): @domain -> weir (LMTP),
#   newsletter@ -> weir-smtp (SMTP to weir-agent's ESMTP listener, where
#   recipients for two destinations take two transactions), anyone else
#   -> Postfix's own smtp client straight to another host.
#   Sendmail: a sendmail.cf built with m4 from contrib/sendmail/weir.mc
#   and Debian's sendmail-cf; with a private sendmail binary
#   (WEIR_SENDMAIL_ROOT, made by tests/agent/sendmail-root.sh: Debian's
#   sendmail-bin conflicts with postfix) its address test routes to the
#   weir mailer and a message goes through it over LMTP to weir-agent.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "contrib/ snippets: Postfix master.cf/main.cf/weir-senders for real, Sendmail weir.mc with m4"
it_need_binaries milter agent
agent_need routes "agent.routes in weir-agent"

CONTRIB=$REPO/contrib
agent_start_stack '
  routes = (
    { name = "second"; rcpt_domains = ("second.weir.test");
      hosts = ( { host = "sink3.weir.test"; port = @SINK3_PORT@; tls = "none"; } ); },
    { name = "default"; hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );' WEIR_STACK_SINKS=3
PF=$POSTFIX_CONFIG_DIR
MILTER_SOCK=${MILTER_SOCKET#unix:}

# subst FILE: a contrib file with the default paths and ports replaced by
# the stack's
subst() {
	sed -e "s|/run/weir/agent.lmtp|$AGENT_LMTP_SOCKET|g" \
		-e "s|/run/weir/milter.sock|$MILTER_SOCK|g" \
		-e "s|/etc/postfix/|$PF/|g" \
		-e "s|\[127.0.0.1\]:10025|[127.0.0.1]:$AGENT_SMTP_PORT|g" \
		-e "s|@example.com |@via.weir.test |; s|newsletter@example.org|newsletter@news.weir.test|" "$1"
}
# apply_main FILE: main.cf = the stack's main.cf without the settings FILE
# makes, then FILE
apply_main() {
	"$PY" - "$PF/main.cf" "$1" <<'PYEOF'
import re, sys
main, snip = sys.argv[1], open(sys.argv[2]).read()
keys = set(re.findall(r"(?m)^([a-z_0-9]+)\s*=", snip))
out = [l for l in open(main).read().split("\n") if not (re.match(r"^([a-z_0-9]+)\s*=", l) and re.match(r"^([a-z_0-9]+)", l).group(1) in keys)]
open(main, "w").write("\n".join(out).rstrip("\n") + "\n\n# --- contrib/postfix/main.cf (tests/integration/370) ---\n" + snip)
PYEOF
}
pf_reload() {
	script -qec "postfix -c $PF check" /dev/null >"$D/log/postfix-check-370.log" 2>&1 &&
		script -qec "postfix -c $PF reload" /dev/null >>"$D/log/postfix-check-370.log" 2>&1 || {
		cat "$D/log/postfix-check-370.log"
		return 1
	}
	sleep 1
}

# --- Postfix, (A): everything through weir-agent --------------------------------
subst "$CONTRIB/postfix/master.cf" >>"$PF/master.cf"
subst "$CONTRIB/postfix/main.cf" >"$D/contrib-main.cf"
check "contrib main.cf and master.cf applied" apply_main "$D/contrib-main.cf"
check "postfix check and reload accept them" pf_reload
check "master.cf has the weir and weir-smtp services" \
	bash -c "postconf -c '$PF' -M weir/unix | grep -q lmtp && postconf -c '$PF' -M weir-smtp/unix | grep -q smtp"
check "default_transport is the weir service" \
	bash -c "[ \"\$(postconf -c '$PF' -h default_transport)\" = 'weir:unix:$AGENT_LMTP_SOCKET' ]"

agent_mark
t=$(token) r=a@example.weir.test
check "(A) Postfix accepts" send_mail alice@client.weir.test "$r" "$t"
check "(A) delivered by the weir service (postfix/weir/lmtp), status=sent" \
	pf_has "$QID" "$r" 'postfix/weir/lmtp\[' "$(ere_quote "$AGENT_LMTP_SOCKET")" 'status=sent'
check "(A) one copy at the sink" one_copy "$t" "$SINK_DIR"
check "(A) weir-agent: status=sent" agent_rcpt "$r" sent ' route=default '
check "(A) weir-milter saw it (smtpd_milters from the snippet)" log_has "$MILTER_LOG" "queue_id=$QID "

# --- Postfix, (B): only the senders in weir-senders -------------------------------
subst "$CONTRIB/postfix/weir-senders" >"$PF/weir-senders"
{
	sed -e 's/^default_transport = .*/default_transport = smtp:[127.0.0.1]:SINK2PORT/' \
		-e 's/^relay_transport = .*/relay_transport = smtp:[127.0.0.1]:SINK2PORT/' \
		-e 's/^#sender_dependent_default_transport_maps/sender_dependent_default_transport_maps/' \
		"$D/contrib-main.cf" | sed "s/SINK2PORT/$SINK2_PORT/"
	echo "smtp_tls_security_level = none"
} >"$D/contrib-main-b.cf"
check "(B) main.cf: the existing relay stays the default, the sender map is on" apply_main "$D/contrib-main-b.cf"
check "(B) postfix check and reload accept it" pf_reload
check "(B) sender_dependent_default_transport_maps = texthash:.../weir-senders" \
	bash -c "postconf -c '$PF' -h sender_dependent_default_transport_maps | grep -q 'texthash:$PF/weir-senders'"

agent_mark
t=$(token) r=b@example.weir.test
check "(B) @domain in the map: Postfix accepts" send_mail someone@via.weir.test "$r" "$t"
check "(B) @domain: delivered by postfix/weir/lmtp" pf_has "$QID" "$r" 'postfix/weir/lmtp\[' 'status=sent'
check "(B) @domain: one copy at the sink" one_copy "$t" "$SINK_DIR"
check "(B) @domain: weir-agent: status=sent" agent_rcpt "$r" sent

agent_mark
t=$(token) r1=c1@first.weir.test r2=c2@second.weir.test
check "(B) newsletter@: Postfix accepts one message for two weir destinations" \
	send_mail newsletter@news.weir.test "$r1,$r2" "$t"
Q=$QID
check "(B) newsletter@: $r1 delivered by postfix/weir-smtp/smtp" pf_has "$Q" "$r1" 'postfix/weir-smtp/smtp\[' 'status=sent'
flush >/dev/null 2>&1
check "(B) newsletter@: $r2 delivered too (in a transaction of its own)" \
	pf_has "$Q" "$r2" 'postfix/weir-smtp/smtp\[' 'status=sent'
check "(B) newsletter@: weir-agent said 452 4.5.3 to the second destination at first" \
	agent_log_has '452 4\.5\.3'
check "(B) newsletter@: $r1 at the sink (default route), once" copy_here "$t" "$SINK_DIR" "<$r1>"
check "(B) newsletter@: $r2 at sink3 (route second), once" copy_here "$t" "$SINK3_DIR" "<$r2>"
smtp_both() {
	agent_lines 'proto=smtp' " to=<$r1>" 'status=sent' >/dev/null &&
		agent_lines 'proto=smtp' " to=<$r2>" 'status=sent' >/dev/null
}
check "(B) newsletter@: weir-agent: $r1 and $r2 sent over SMTP" smtp_both

agent_mark
t=$(token) r=d@example.weir.test
check "(B) a sender not in the map: Postfix accepts" send_mail other@else.weir.test "$r" "$t"
check "(B) not in the map: Postfix's own smtp client, straight to sink2" \
	pf_has "$QID" "$r" 'postfix/smtp\[' "127\.0\.0\.1\]:$SINK2_PORT" 'status=sent'
check "(B) not in the map: one copy at sink2" one_copy "$t" "$SINK2_DIR"
check "(B) not in the map: weir-agent never saw it" agent_log_lacks "<$(ere_quote "$r")>"
check "Postfix's queue is empty" wait_queue_empty 30

# --- Sendmail: contrib/sendmail/weir.mc ----------------------------------------------
CFM4=/usr/share/sendmail/cf/m4/cf.m4
if [ ! -r "$CFM4" ] || ! command -v m4 >/dev/null; then
	agent_partial "Sendmail check: Debian's sendmail-cf (m4 files) or m4 is not installed"
else
	SM=$D/sendmail
	mkdir -p "$SM/queue" && chmod 700 "$SM/queue" && : >"$SM/cw"
	# the snippet with this stack's LMTP socket and milter port
	sed -e "s|A=FILE /run/weir/agent.lmtp|A=FILE $AGENT_LMTP_SOCKET|" -e "s|S=unix:/run/weir/milter.sock|S=inet:$MILTER_PORT@127.0.0.1|" \
		"$CONTRIB/sendmail/weir.mc" >"$SM/weir.mc"
	# and its TCP variant (the dnl'd hint): A=TCP $h LMTP_PORT
	sed -e "s|A=FILE /run/weir/agent.lmtp|A=TCP \$h $LMTP_PORT|" -e "s|S=unix:/run/weir/milter.sock|S=inet:$MILTER_PORT@127.0.0.1|" \
		"$CONTRIB/sendmail/weir.mc" >"$SM/weir-tcp.mc"
	cat >"$SM/test.mc" <<EOF
divert(-1)dnl
include(\`$CFM4')dnl
VERSIONID(\`weir tests/integration/370')dnl
OSTYPE(\`linux')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`QUEUE_DIR', \`$SM/queue')dnl
define(\`confPID_FILE', \`$SM/sendmail.pid')dnl
define(\`confCW_FILE', \`$SM/cw')dnl
define(\`ALIAS_FILE', \`')dnl
define(\`confDONT_BLAME_SENDMAIL', \`GroupWritableDirPathSafe,TrustStickyBit')dnl
include(\`$SM/weir.mc')dnl
MAILER(\`local')dnl
MAILER(\`smtp')dnl
EOF
	check "Sendmail: m4 builds sendmail.cf from contrib/sendmail/weir.mc without errors" \
		bash -c "m4 '$SM/test.mc' >'$SM/sendmail.cf' 2>'$SM/m4.err' && [ ! -s '$SM/m4.err' ] || { cat '$SM/m4.err'; false; }"
	check "Sendmail: the smart host is the weir mailer" grep -qx 'DSweir:\[127.0.0.1\]' "$SM/sendmail.cf"
	check "Sendmail: mailer weir speaks LMTP (F=...z) to weir-agent's LMTP socket" \
		bash -c "grep -A1 '^Mweir,' '$SM/sendmail.cf' | tr -d '\n' | grep -qE 'P=\[IPC\].*F=[A-Za-z0-9]*z.*A=FILE $(ere_quote "$AGENT_LMTP_SOCKET")'"
	sed -e "s|include(\`$SM/weir.mc')|include(\`$SM/weir-tcp.mc')|" "$SM/test.mc" >"$SM/test-tcp.mc"
	check "Sendmail: the TCP variant builds too (A=TCP \$h PORT)" \
		bash -c "m4 '$SM/test-tcp.mc' >'$SM/sendmail-tcp.cf' 2>'$SM/m4-tcp.err' && [ ! -s '$SM/m4-tcp.err' ] &&
			grep -A1 '^Mweir,' '$SM/sendmail-tcp.cf' | grep -q 'A=TCP \$h $LMTP_PORT'"
	check "Sendmail: weir-milter is an input filter (F=T)" grep -q "^Xweir, S=inet:$MILTER_PORT@127.0.0.1, F=T" "$SM/sendmail.cf"
	# the SMTP variant of the snippet (the dnl'd lines)
	sed -n 's/^dnl \(define(`\(SMART_HOST\|ESMTP_MAILER_ARGS\|RELAY_MAILER_ARGS\).*\)$/\1/p' "$CONTRIB/sendmail/weir.mc" >"$SM/weir-smtp.mc"
	sed -e "s|include(\`$SM/weir.mc')|include(\`$SM/weir-smtp.mc')|" "$SM/test.mc" >"$SM/test-smtp.mc"
	check "Sendmail: the SMTP variant builds too, esmtp to port 10025" \
		bash -c "m4 '$SM/test-smtp.mc' >'$SM/sendmail-smtp.cf' 2>'$SM/m4-smtp.err' && [ ! -s '$SM/m4-smtp.err' ] &&
			grep -qx 'DSesmtp:\[127.0.0.1\]' '$SM/sendmail-smtp.cf' && grep -A3 '^Mesmtp,' '$SM/sendmail-smtp.cf' | grep -q 'A=TCP \$h 10025'"
	SMROOT=${WEIR_SENDMAIL_ROOT:-}
	SMBIN=$SMROOT/usr/libexec/sendmail/sendmail
	if [ -z "$SMROOT" ] || [ ! -x "$SMBIN" ]; then
		it_say "note: Sendmail itself not run (only its .cf checked): no private sendmail binary;" \
			"set WEIR_SENDMAIL_ROOT (tests/agent/sendmail-root.sh makes one: sendmail-bin conflicts with postfix)"
	else
		smrun() { # ARGS...: the private sendmail under its own host name
			timeout 60 unshare -um sh -c 'hostname relay.weir.test; exec env LD_LIBRARY_PATH="$0/lib/x86_64-linux-gnu:$0/usr/lib/x86_64-linux-gnu" "$@"' \
				"$SMROOT" "$SMBIN" "$@"
		}
		sm_bt() {
			printf '3,0 user@example.weir.test\n' | smrun -bt -C "$SM/sendmail.cf" >"$SM/bt.out" 2>&1
			grep -q 'parse *returns: \$# weir \$@ \[ 127 \. 0 \. 0 \. 1 \]' "$SM/bt.out" || {
				tail -n 5 "$SM/bt.out"
				return 1
			}
		}
		check "Sendmail (real): the address test routes to the weir mailer" sm_bt
		agent_mark
		t=$(token) r=sm@example.weir.test
		{
			printf 'From: <sendmail@client.weir.test>\nTo: <%s>\nSubject: weir test %s\n\n' "$r" "$t"
			body_for "$t"
			echo
		} >"$SM/msg"
		sm_send() {
			smrun -C "$SM/sendmail.cf" -odi -oi -f sendmail@client.weir.test "$r" <"$SM/msg" >"$SM/run.out" 2>&1 || {
				cat "$SM/run.out"
				return 1
			}
		}
		check "Sendmail (real): sendmail -odi delivers through the weir mailer (LMTP to weir-agent's socket)" sm_send
		check "Sendmail (real): one copy at the sink" one_copy "$t" "$SINK_DIR"
		check "Sendmail (real): weir-agent: status=sent over LMTP" agent_rcpt "$r" sent ' proto=lmtp '
		check "Sendmail (real): nothing left in its queue" bash -c "[ -z \"\$(ls '$SM/queue')\" ]"
		# the TCP variant, for real as well
		agent_mark
		t=$(token) r=sm-tcp@example.weir.test
		{
			printf 'From: <sendmail@client.weir.test>\nTo: <%s>\nSubject: weir test %s\n\n' "$r" "$t"
			body_for "$t"
			echo
		} >"$SM/msg"
		sm_send_tcp() {
			smrun -C "$SM/sendmail-tcp.cf" -odi -oi -f sendmail@client.weir.test "$r" <"$SM/msg" >"$SM/run-tcp.out" 2>&1 || {
				cat "$SM/run-tcp.out"
				return 1
			}
		}
		check "Sendmail (real), TCP variant: delivers over LMTP to weir-agent's LMTP port" sm_send_tcp
		check "Sendmail (real), TCP variant: one copy at the sink" one_copy "$t" "$SINK_DIR"
		check "Sendmail (real), TCP variant: weir-agent: status=sent" agent_rcpt "$r" sent ' proto=lmtp '

	fi
fi
check "weir-agent still running" pid_alive "$AGENT_PID"
agent_end

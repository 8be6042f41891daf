#!/bin/bash
# 300-agent-tls: weir-agent's TLS to smart hosts, through the real stack
# (Postfix -> weir-agent over LMTP -> aiosmtpd sinks with a test CA):
#   starttls   verified against the test CA (agent.tls_ca_file) and the name
#   implicit   TLS from the first byte on port 465 (no port written)
#   may        STARTTLS when offered (sink3), clear when not (sink2), and
#              once more in clear when the handshake fails
#   a certificate for another name, or from an unknown CA: 451 4.7.5, the
#              message stays in Postfix's queue and nothing reaches the
#              sink in clear; verify = false is logged and delivers; a
#              pooled session verified otherwise (verify = false, another
#              CA) to the same host and port never serves a route that
#              verifies; once the route is fixed (reload) the queued mail
#              goes out, once.
# Each case checks Postfix's delivery line and queue, the copy the sink
# stored (its X-Sink-Session: tls=...) and weir-agent's lines.
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent TLS to smart hosts: starttls, implicit 465, may, wrong name, unknown CA"
it_need_binaries milter agent weirctl
agent_need routes "agent.routes in weir-agent (routes by recipient domain)"
agent_need tls "TLS to smart hosts in weir-agent (STARTTLS, implicit, verification)"

ROUTES='
  tls_ca_file = "@TLS_CA_FILE@";
  command_timeout = "10s";
  host_backoff = "2s";
  routes = (
    { name = "starttls"; rcpt_domains = ("starttls.weir.test");
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "starttls"; } ); },
    { name = "implicit"; rcpt_domains = ("implicit.weir.test");
      hosts = ( { host = "smtps.weir.test"; tls = "implicit"; } ); },
    { name = "may-tls"; rcpt_domains = ("may.weir.test");
      hosts = ( { host = "sink3.weir.test"; port = @SINK3_PORT@; tls = "may"; } ); },
    { name = "may-clear"; rcpt_domains = ("clear.weir.test");
      hosts = ( { host = "sink2.weir.test"; port = @SINK2_PORT@; tls = "may"; } ); },
    { name = "badname"; rcpt_domains = ("badname.weir.test");
      hosts = ( { host = "BADHOST"; port = @SINK3_PORT@; tls = "starttls"; } ); },
    { name = "rogue"; rcpt_domains = ("rogue.weir.test");
      hosts = ( { host = "sink3.weir.test"; port = @SINK3_PORT@; tls = "starttls"; ca_file = "ROGUECA"; } ); },
    { name = "rogue2"; rcpt_domains = ("rogue2.weir.test");
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "starttls"; ca_file = "ROGUECA"; } ); },
    { name = "noverify"; rcpt_domains = ("noverify.weir.test");
      hosts = ( { host = "badname.weir.test"; port = @SINK3_PORT@; tls = "starttls"; verify = false; } ); },
    { name = "default";
      hosts = ( { host = "sink2.weir.test"; port = @SINK2_PORT@; tls = "none"; } ); }
  );'
conf_with() { # BADHOST ROGUECA
	local c=${ROUTES//BADHOST/$1}
	printf '%s' "${c//ROGUECA/$2}"
}

agent_prepare
agent_start_stack "$(conf_with badname.weir.test "@DIR@/tls/rogue.pem")" \
	WEIR_STACK_SINKS=3 WEIR_STACK_SINK_TLS=starttls WEIR_STACK_SINK2_TLS=none \
	WEIR_STACK_SINK3_TLS=may WEIR_STACK_SMTPS=1

check "the verify = false host is logged at load (lab only)" \
	log_has "$AGENT_LOG" 'noverify.*(not verified|NOT verified|verify = false)|(not verified|NOT verified|verify = false).*noverify'

# --- starttls, verified -----------------------------------------------------
agent_mark
t=$(token) r=user@starttls.weir.test
check "starttls: Postfix accepts" send_mail tls-starttls@client.weir.test "$r" "$t"
check "starttls: Postfix status=sent" pf_sent "$QID" "$r"
check "starttls: one copy at sink (starttls required there)" one_copy "$t" "$SINK_DIR"
check "starttls: stored over TLS 1.2/1.3" stored_with "$t" "$SINK_DIR" '^tls=TLSv1\.[23] '
check "starttls: weir-agent: $r status=sent (route starttls)" agent_rcpt "$r" sent ' route=starttls '

check "starttls: weir-agent: upstream session to sink.weir.test with TLS, verified" \
	agent_log_has 'sink\.weir\.test' 'tls=TLSv1\.[23]' 'verified=yes'

# a route that trusts another CA must not be served by the session just
# verified against the test CA (same host, port and tls; pooled, idle)
agent_mark
t_rogue2=$(token) r_rogue2=user@rogue2.weir.test
check "unknown CA, host with a pooled verified session: Postfix accepts" \
	send_mail tls-rogue2@client.weir.test "$r_rogue2" "$t_rogue2"
Q_ROGUE2=$QID
check "unknown CA, host with a pooled verified session: deferred with 4.7.5" pf_deferred "$Q_ROGUE2" "$r_rogue2" '4\.7\.5'
check "unknown CA, host with a pooled verified session: nothing stored" no_copy "$t_rogue2" 1

# --- implicit TLS, port 465 by default ----------------------------------------
agent_mark
t=$(token) r=user@implicit.weir.test
check "implicit: Postfix accepts" send_mail tls-implicit@client.weir.test "$r" "$t"
check "implicit: Postfix status=sent" pf_sent "$QID" "$r"
check "implicit: one copy at the smtps sink ($SMTPS_ADDR:465)" one_copy "$t" "$SMTPS_DIR"
check "implicit: stored over TLS" stored_with "$t" "$SMTPS_DIR" '^tls=TLSv1\.[23] '
check "implicit: weir-agent: $r status=sent (route implicit)" agent_rcpt "$r" sent ' route=implicit ' 
check "implicit: weir-agent: session to smtps.weir.test ($SMTPS_ADDR, port 465) with TLS, verified" \
	agent_log_has 'smtps\.weir\.test' "$(ere_quote "$SMTPS_ADDR")" 'tls=TLSv1\.[23]' 'verified=yes'

# --- may: STARTTLS offered ------------------------------------------------------
agent_mark
t=$(token) r=user@may.weir.test
check "may (offered): Postfix accepts" send_mail tls-may@client.weir.test "$r" "$t"
check "may (offered): Postfix status=sent" pf_sent "$QID" "$r"
check "may (offered): one copy at sink3" one_copy "$t" "$SINK3_DIR"
check "may (offered): stored over TLS" stored_with "$t" "$SINK3_DIR" '^tls=TLSv1\.[23] '
check "may (offered): weir-agent: $r status=sent" agent_rcpt "$r" sent
check "may (offered): weir-agent: session to sink3.weir.test with TLS" \
	agent_log_has 'upstream session.*sink3\.weir\.test' 'tls=TLSv1\.[23]'

# --- may: not offered -----------------------------------------------------------
agent_mark
t=$(token) r=user@clear.weir.test
check "may (not offered): Postfix accepts" send_mail tls-clear@client.weir.test "$r" "$t"
check "may (not offered): Postfix status=sent" pf_sent "$QID" "$r"
check "may (not offered): one copy at sink2" one_copy "$t" "$SINK2_DIR"
check "may (not offered): stored in clear" stored_with "$t" "$SINK2_DIR" '^tls=none '
check "may (not offered): weir-agent: $r status=sent" agent_rcpt "$r" sent
check "may (not offered): weir-agent: session to sink2.weir.test without TLS" \
	agent_log_has 'upstream session.*sink2\.weir\.test' 'tls=none'

# --- may: the handshake fails: once more in clear ---------------------------------
check "sink2 restarted offering a STARTTLS that fails" \
	bash -c "'$STACK/sink-stop' '$D' sink2 && '$STACK/sink-start' '$D' sink2 '' --starttls-broken >/dev/null"
agent_mark
t=$(token) r=user2@clear.weir.test
check "may (handshake fails): Postfix accepts" send_mail tls-broken@client.weir.test "$r" "$t"
check "may (handshake fails): Postfix status=sent" pf_sent "$QID" "$r"
check "may (handshake fails): one copy at sink2, in clear" one_copy "$t" "$SINK2_DIR"
check "may (handshake fails): stored in clear" stored_with "$t" "$SINK2_DIR" '^tls=none '
check "may (handshake fails): sink2 saw the STARTTLS" sink_saw "$SINK2_LOG" 'starttls=broken'
check "may (handshake fails): weir-agent logs the failure and the clear retry" \
	agent_log_has 'sink2\.weir\.test' 'TLS.*(fail|error)' 'without TLS'
check "may (handshake fails): weir-agent: $r status=sent" agent_rcpt "$r" sent
check "sink2 back to plain" \
	bash -c "'$STACK/sink-stop' '$D' sink2 && '$STACK/sink-start' '$D' sink2 '' --hostname sink2.weir.test >/dev/null"

# --- a certificate for another name: 4xx, never in clear ------------------------
agent_mark
t_bad=$(token) r_bad=user@badname.weir.test
check "wrong name: Postfix accepts" send_mail tls-badname@client.weir.test "$r_bad" "$t_bad"
Q_BAD=$QID
check "wrong name: Postfix deferred it with weir-agent's 451 4.7.5" pf_deferred "$Q_BAD" "$r_bad" '4\.7\.5'
check "wrong name: the reply names TLS and the host" pf_has "$Q_BAD" "$r_bad" 'TLS with smart host badname\.weir\.test'
check "wrong name: weir-agent: $r_bad status=deferred 4.7.5" agent_rcpt "$r_bad" deferred '4\.7\.5'
check "wrong name: nothing stored anywhere" no_copy "$t_bad"
check "wrong name: sink3 never saw a MAIL FROM of it (no clear fallback)" \
	bash -c "! grep -q 'MAIL FROM:<tls-badname@' '$SINK3_LOG'"

# --- a certificate from an unknown CA ---------------------------------------
agent_mark
t_rogue=$(token) r_rogue=user@rogue.weir.test
check "unknown CA: Postfix accepts" send_mail tls-rogue@client.weir.test "$r_rogue" "$t_rogue"
Q_ROGUE=$QID
check "unknown CA: Postfix deferred it with weir-agent's 451 4.7.5" pf_deferred "$Q_ROGUE" "$r_rogue" '4\.7\.5'
check "unknown CA: weir-agent: $r_rogue status=deferred 4.7.5" agent_rcpt "$r_rogue" deferred '4\.7\.5'
check "unknown CA: nothing stored anywhere" no_copy "$t_rogue"
check "unknown CA: sink3 never saw a MAIL FROM of it" \
	bash -c "! grep -q 'MAIL FROM:<tls-rogue@' '$SINK3_LOG'"

# --- verify = false: logged, delivered ----------------------------------------
agent_mark
t=$(token) r=user@noverify.weir.test
check "verify = false: Postfix accepts" send_mail tls-noverify@client.weir.test "$r" "$t"
check "verify = false: Postfix status=sent" pf_sent "$QID" "$r"
check "verify = false: one copy at sink3, over TLS" one_copy "$t" "$SINK3_DIR"
check "verify = false: stored over TLS" stored_with "$t" "$SINK3_DIR" '^tls=TLSv1\.[23] '
check "verify = false: weir-agent logs the unverified session" \
	agent_log_has 'badname\.weir\.test' '(NOT verified|not verified|verified=no)'

# the unverified session to badname.weir.test must not serve the route
# that verifies: the same host and port, another route
agent_mark
t=$(token) r=user2@badname.weir.test
check "wrong name after an unverified session to the same host: Postfix accepts" \
	send_mail tls-badname2@client.weir.test "$r" "$t"
check "wrong name after an unverified session: still deferred with 4.7.5" pf_deferred "$QID" "$r" '4\.7\.5'
check "wrong name after an unverified session: nothing stored" no_copy "$t"
Q_BAD2=$QID

# a retry before the fix changes nothing: the pool must not hand the
# route that verifies a session opened without verification (or with
# another CA)
check "postqueue -f before the fix" flush
sleep 3
check "before the fix: the wrong-name message still not delivered" no_copy "$t_bad" 1
check "before the fix: the unknown-CA message still not delivered" no_copy "$t_rogue" 1
check "before the fix: both still in Postfix's queue" bash -c "postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -q '^$Q_BAD' && postqueue -c '$POSTFIX_CONFIG_DIR' -p | grep -q '^$Q_ROGUE'"

# --- fixed by the administrator (reload): the queued mail goes out, once ----------
check "routes fixed (right name, right CA) and weir-agent reloaded" \
	agent_reconfigure "$(conf_with sink3.weir.test "@TLS_CA_FILE@")"
agent_mark
check "postqueue -f" flush
check "the wrong-name message arrives after the fix, once, over TLS" one_copy "$t_bad" "$SINK3_DIR" 60
check "... stored over TLS" stored_with "$t_bad" "$SINK3_DIR" '^tls=TLSv1\.[23] '
check "the unknown-CA message arrives after the fix, once" one_copy "$t_rogue" "$SINK3_DIR" 60
check "the second wrong-name message arrives after the fix, once" one_copy "$t" "$SINK3_DIR" 60
check "the rogue2 message arrives after the fix, once (at sink)" one_copy "$t_rogue2" "$SINK_DIR" 60
check "Postfix: the wrong-name message status=sent" pf_sent "$Q_BAD" "$r_bad"
check "Postfix: the unknown-CA message status=sent" pf_sent "$Q_ROGUE" "$r_rogue"
check "Postfix: the second wrong-name message status=sent" pf_sent "$Q_BAD2" "$r"
check "Postfix's queue is empty" wait_queue_empty 30
check "nothing bounced" bash -c "! grep -q 'status=bounced' '$POSTFIX_LOG'"
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

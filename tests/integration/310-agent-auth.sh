#!/bin/bash
# 310-agent-auth: weir-agent's AUTH to smart hosts, through the real stack.
# The sink requires STARTTLS and AUTH and offers PLAIN, LOGIN, CRAM-MD5 and
# XOAUTH2 (one user, one password, one bearer token). Routes by recipient
# domain pick the mechanism; their hosts are different names of the same
# sink (NAME.alias.weir.test) so that no pooled session of one mechanism
# serves another.
#   each mechanism delivers, and the sink saw that mechanism after TLS;
#   auth = "any" picks CRAM-MD5 (CRAM-MD5 > PLAIN > LOGIN);
#   a wrong password: 451 4.7.8 (agent.auth_failure = tempfail, the
#   default), the message stays queued, nothing stored; after a reload
#   with auth_failure = "reject" the upstream's 535 5.7.8 is quoted and
#   Postfix bounces;
#   XOAUTH2 with a stale token: 4.7.8; the token file rewritten: the
#   queued message goes out (the file is re-read when it changes);
#   tls = "may" with credentials to a host without STARTTLS: no AUTH in
#   clear (4.7.8, the sink never saw AUTH); tls = "none" written: AUTH in
#   clear, warned about at load;
#   the secrets never appear in weir-agent's log; a credentials file
#   readable by others is refused at load ("chmod 600").
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/agent/agent-lib.sh"
it_begin "weir-agent AUTH to smart hosts: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, any, wrong password, token file"
it_need_binaries milter agent weirctl
agent_need routes "agent.routes in weir-agent"
agent_need tls "TLS to smart hosts in weir-agent"
agent_need auth "AUTH to smart hosts in weir-agent"

USER=relayuser
PASS=Correct-Horse-7x
BADPASS=Wrong-Battery-9y
TOKEN=ya29.weir-test-token-OK
STALE=ya29.weir-test-token-STALE

agent_prepare
agent_creds "good $USER $PASS" "bad $USER $BADPASS" "oauth $USER unused-secret-3z"
printf '%s\n' "$STALE" >"$D/token"
chown weir: "$D/token" && chmod 600 "$D/token"

CONF='
  tls_ca_file = "@TLS_CA_FILE@";
  credentials_file = "@DIR@/credentials";
  command_timeout = "10s";
  host_backoff = "2s";
  AUTH_FAILURE
  routes = (
    { name = "plain"; rcpt_domains = ("plain.weir.test");
      hosts = ( { host = "plain.alias.weir.test"; port = @SINK_PORT@; tls = "starttls"; auth = "plain"; credentials = "good"; } ); },
    { name = "login"; rcpt_domains = ("login.weir.test");
      hosts = ( { host = "login.alias.weir.test"; port = @SINK_PORT@; tls = "starttls"; auth = "login"; credentials = "good"; } ); },
    { name = "cram"; rcpt_domains = ("cram.weir.test");
      hosts = ( { host = "cram.alias.weir.test"; port = @SINK_PORT@; tls = "starttls"; auth = "cram-md5"; credentials = "good"; } ); },
    { name = "xoauth2"; rcpt_domains = ("xoauth2.weir.test");
      hosts = ( { host = "xoauth2.alias.weir.test"; port = @SINK_PORT@; tls = "starttls"; auth = "xoauth2"; credentials = "oauth";
                  oauth2_token_file = "@DIR@/token"; } ); },
    { name = "any"; rcpt_domains = ("any.weir.test");
      hosts = ( { host = "any.alias.weir.test"; port = @SINK_PORT@; auth = "any"; credentials = "good"; } ); },
    { name = "wrongpw"; rcpt_domains = ("wrongpw.weir.test");
      hosts = ( { host = "wrongpw.alias.weir.test"; port = @SINK_PORT@; credentials = "bad"; } ); },
    { name = "mayauth"; rcpt_domains = ("mayauth.weir.test");
      hosts = ( { host = "sink2.weir.test"; port = @SINK2_PORT@; tls = "may"; auth = "plain"; credentials = "good"; } ); },
    { name = "clearauth"; rcpt_domains = ("clearauth.weir.test");
      hosts = ( { host = "clear.alias.weir.test"; port = @SINK2_PORT@; tls = "none"; auth = "plain"; credentials = "good"; } ); },
    { name = "default";
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; credentials = "good"; } ); }
  );'
conf() { printf '%s' "${CONF//AUTH_FAILURE/$1}"; }

agent_start_stack "$(conf '')" WEIR_STACK_SINKS=2 WEIR_STACK_SINK_TLS=starttls WEIR_STACK_SINK2_TLS=none \
	WEIR_STACK_SINK_AUTH="$USER:$PASS" WEIR_STACK_SINK_AUTH_MECHS="PLAIN LOGIN CRAM-MD5 XOAUTH2" \
	WEIR_STACK_SINK_XOAUTH2_TOKEN="$TOKEN"

check "tls = none with AUTH is warned about at load" \
	log_has "$AGENT_LOG" 'clear\.alias\.weir\.test.*AUTH|AUTH.*clear\.alias\.weir\.test'

# deliver MECH DOMAIN SINKMECH ROUTE: one message through the route; Postfix
# sent, one copy at the sink, authenticated with SINKMECH after TLS
deliver() {
	local what=$1 dom=$2 mech=$3 route=$4 t r
	agent_mark
	t=$(token) r=user@$dom
	check "$what: Postfix accepts" send_mail "auth-$route@client.weir.test" "$r" "$t"
	check "$what: Postfix status=sent" pf_sent "$QID" "$r"
	check "$what: one copy at the sink" one_copy "$t" "$SINK_DIR"
	check "$what: the sink saw AUTH $mech as $USER, over TLS" \
		stored_with "$t" "$SINK_DIR" "^tls=TLSv1\.[23] auth=$USER:$mech "
	check "$what: weir-agent: $r status=sent route=$route" agent_rcpt "$r" sent " route=$route "
	check "$what: weir-agent: upstream session with auth=$mech" \
		agent_log_has "upstream session .*$route\.alias\.weir\.test" "auth=$mech"
}
deliver "PLAIN" plain.weir.test PLAIN plain
deliver "LOGIN" login.weir.test LOGIN login
deliver "CRAM-MD5" cram.weir.test CRAM-MD5 cram
deliver "any (CRAM-MD5 is the best offered)" any.weir.test CRAM-MD5 any

# --- XOAUTH2: a stale token, then the file rewritten ------------------------------
agent_mark
t_x=$(token) r_x=user@xoauth2.weir.test
check "XOAUTH2, stale token: Postfix accepts" send_mail auth-xoauth2@client.weir.test "$r_x" "$t_x"
Q_X=$QID
check "XOAUTH2, stale token: deferred with 4.7.8" pf_deferred "$Q_X" "$r_x" '4\.7\.8'
check "XOAUTH2, stale token: weir-agent: status=deferred" agent_rcpt "$r_x" deferred '4\.7\.8'
check "XOAUTH2, stale token: nothing stored" no_copy "$t_x" 1
check "XOAUTH2, stale token: the sink refused it" sink_saw "$SINK_LOG" "auth=XOAUTH2 login=$USER result=fail"
sleep 1.1 # a new mtime for the token file, whatever its resolution
printf '%s\n' "$TOKEN" >"$D/token.new" && chown weir: "$D/token.new" && chmod 600 "$D/token.new" &&
	mv "$D/token.new" "$D/token"
agent_mark
check "postqueue -f" flush
check "XOAUTH2, token rewritten: Postfix status=sent" pf_sent "$Q_X" "$r_x" 60
check "XOAUTH2, token rewritten: one copy at the sink" one_copy "$t_x" "$SINK_DIR"
check "XOAUTH2, token rewritten: the sink saw AUTH XOAUTH2 over TLS" \
	stored_with "$t_x" "$SINK_DIR" "^tls=TLSv1\.[23] auth=$USER:XOAUTH2 "
check "XOAUTH2, token rewritten: weir-agent: status=sent" agent_rcpt "$r_x" sent ' route=xoauth2 '

# --- a wrong password: 451 4.7.8 by default, the mail stays --------------------
agent_mark
t_w=$(token) r_w=user@wrongpw.weir.test
check "wrong password: Postfix accepts" send_mail auth-wrongpw@client.weir.test "$r_w" "$t_w"
Q_W=$QID
check "wrong password: Postfix deferred it with weir-agent's 451 4.7.8" pf_deferred "$Q_W" "$r_w" '4\.7\.8'
check "wrong password: weir-agent: $r_w status=deferred 4.7.8" agent_rcpt "$r_w" deferred '4\.7\.8'
check "wrong password: weir-agent logs the refusal with the credentials' name" \
	agent_log_has 'wrongpw\.alias\.weir\.test' '(refused|failed)' 'bad'
check "wrong password: the sink refused the login" sink_saw "$SINK_LOG" "login=$USER result=fail"
check "wrong password: nothing stored" no_copy "$t_w" 1
check "wrong password: still in the deferred queue" wait_for 10 in_deferred "$Q_W"
check "wrong password: not bounced" bash -c "! grep -F '$Q_W: to=<$r_w>' '$POSTFIX_LOG' | grep -q status=bounced"

# --- no AUTH in clear unless tls = "none" was written -------------------------------
agent_mark
t=$(token) r=user@mayauth.weir.test
check "tls may, no STARTTLS offered, credentials: Postfix accepts" send_mail auth-mayauth@client.weir.test "$r" "$t"
Q_M=$QID
check "tls may without STARTTLS: deferred with 4.7.8 (AUTH only over TLS)" pf_deferred "$Q_M" "$r" '4\.7\.8'
check "tls may without STARTTLS: sink2 never saw AUTH" bash -c "! grep -q \"b'AUTH\" '$SINK2_LOG'"
check "tls may without STARTTLS: nothing stored" no_copy "$t" 1
agent_mark
t=$(token) r=user@clearauth.weir.test
check "tls none written, AUTH PLAIN in clear: Postfix accepts" send_mail auth-clearauth@client.weir.test "$r" "$t"
check "tls none written: Postfix status=sent" pf_sent "$QID" "$r"
check "tls none written: one copy at sink2" one_copy "$t" "$SINK2_DIR"
check "tls none written: stored with auth=$USER:PLAIN, tls=none" stored_with "$t" "$SINK2_DIR" "^tls=none auth=$USER:PLAIN "

# --- the secrets never reach the log ------------------------------------------------
b64() { printf '%s' "$1" | base64 -w0; }
secrets_absent() {
	local s
	for s in "$PASS" "$BADPASS" "$TOKEN" "$STALE" unused-secret-3z \
		"$(b64 "$USER"$'\0'"$PASS")" "$(b64 $'\0'"$USER"$'\0'"$PASS")" "$(b64 "$PASS")" \
		"$(b64 $'\0'"$USER"$'\0'"$BADPASS")" "$(b64 "$BADPASS")" \
		"$(b64 "user=$USER"$'\1'"auth=Bearer $TOKEN"$'\1\1')" "$(b64 "user=$USER"$'\1'"auth=Bearer $STALE"$'\1\1')"; do
		if grep -qF -- "$s" "$AGENT_LOG"; then
			echo "    weir-agent's log holds a secret (or its base64): $s"
			grep -nF -- "$s" "$AGENT_LOG" | head -n 2 | sed 's/^/      /'
			return 1
		fi
	done
}
check "no password, token or their base64 in weir-agent's log (log_level debug)" secrets_absent

# --- auth_failure = "reject": the upstream's 5xx quoted, Postfix bounces ------------
check "agent.auth_failure = reject, reloaded" agent_reconfigure "$(conf 'auth_failure = "reject";')"
agent_mark
t=$(token) r=user2@wrongpw.weir.test
check "wrong password, reject: Postfix accepts" send_mail auth-wrongpw2@client.weir.test "$r" "$t"
check "wrong password, reject: Postfix bounced it with the sink's 535 5.7.8 quoted" \
	pf_bounced "$QID" "$r" '535 5\.7\.8'
check "wrong password, reject: weir-agent: status=bounced" agent_rcpt "$r" bounced '5\.7\.8'
check "wrong password, reject: the bounce reached the sender (at the sink)" wait_sink_null "$t" 40
check "wrong password, reject: no copy stored" no_copy "$t" 0

# --- a credentials file others can read is refused ----------------------------------
cp -p "$D/credentials" "$D/credentials-644" && chmod 644 "$D/credentials-644"
sed "s|$D/credentials\"|$D/credentials-644\"|" "$WEIR_CONF" >"$D/weir-644.conf"
chmod 644 "$D/weir-644.conf"
refused_644() {
	local out
	out=$("$@" 2>&1)
	if [ $? = 0 ]; then
		echo "    accepted: $*"
		return 1
	fi
	printf '%s\n' "$out" | grep -q "chmod 600" && return 0
	echo "    refused, but without 'chmod 600':"
	printf '%s\n' "$out" | head -n 4 | sed 's/^/      /'
	return 1
}
check "weir-agent -n refuses a credentials file mode 644 (says chmod 600)" refused_644 "$WEIR_AGENT" -n -c "$D/weir-644.conf"
check "weirctl check refuses it too" refused_644 "$WEIRCTL" -c "$D/weir-644.conf" check
check "the mode-644 file's secrets are not printed" \
	bash -c "! '$WEIR_AGENT' -n -c '$D/weir-644.conf' 2>&1 | grep -qF -- '$PASS'"

# the first wrong-password message: bounced now on retry (reject), never stored
check "postqueue -f" flush
check "the first wrong-password message now bounced too" pf_bounced "$Q_W" "$r_w" '535 5\.7\.8'
check "nothing of it stored" no_copy "$t_w" 0
check "weir-agent still running" pid_alive "$AGENT_PID"
it_end

#!/bin/bash
# 460-bounces: bounces that come back days later, through the real stack
# (issue 9, part C): swaks -> Postfix (SMTP AUTH) -> weir-milter ->
# weir-agent (a VERP route) -> sink; then a DSN and an ARF complaint sent
# to Postfix from outside, for the bounce domain, which Postfix hands to
# weir-agent's LMTP by transport_maps (bounce intake). Checked:
#   - each recipient of a VERP route goes upstream in a transaction of its
#     own, MAIL FROM bounces+LOCAL=DOMAIN@bounces.weir.test
#   - weirctl outcome show: the delivery rows (with Postfix's queue id),
#     then the bounce (bounced, userunknown, source bounce)
#   - weirctl suppression list: the hard bounce (global) and the
#     complaint (scope: the sender domain of the original message)
#   - the next submission to the bounced recipient is refused at RCPT by
#     weir-milter (550 5.1.1 ... suppressed since DATE: userunknown); the
#     complaint only for mail from that sender domain
#   - webhooks: a local HTTP server gets the bounce and the complaint,
#     signed (HMAC-SHA256 checked by the server)
#   - weir-agent's own check (LMTP straight to it): an entry with a 2 s
#     expiry refuses (550 5.1.1), then stops refusing
. "$(dirname "$0")/lib.sh"
it_begin "bounces: VERP, intake through Postfix, outcome log, suppression, webhooks, expiry"
it_need_binaries milter agent weirctl
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
"$WEIRCTL" outcome show --help >/dev/null 2>&1 || it_skip "not built yet: weirctl outcome"

BD=bounces.weir.test
SHOP=shop.weir.test
gone=gone@$OTHER_DOMAIN
fine=fine@$OTHER_DOMAIN
today=$(date -u +%Y-%m-%d)

# the databases and the webhook secret: a directory of their own, made
# before the stack (weir-agent prepares it as root, then runs as weir)
T=$(mktemp -d /tmp/weir-it-bounce.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
HOOK_PID=
bounce_cleanup() {
	local rc=$?
	[ -n "$HOOK_PID" ] && kill "$HOOK_PID" 2>/dev/null && wait "$HOOK_PID" 2>/dev/null
	if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ] || [ "$rc" = 77 ]; then
		rm -rf -- "$T"
	else
		it_say "bounce directory kept: $T"
	fi
	(exit "$rc")
	it_cleanup
}
trap bounce_cleanup EXIT

printf 'it-460-secret' >"$T/secret"
chown weir "$T/secret" && chmod 600 "$T/secret" || it_abort "cannot prepare the secret file"
(exec $PY "$REPO/tests/policy/webhook-server.py" "$T/hook.port" "$T/hook.log" it-460-secret) &
HOOK_PID=$!
wait_for 10 test -s "$T/hook.port" || it_abort "the webhook server did not start"
HOOK_PORT=$(cat "$T/hook.port")

cat >"$T/agent.conf" <<'EOF'
  routes = (
    { name = "out"; verp = "bounces.weir.test";
      hosts = ( { host = "sink.weir.test"; port = @SINK_PORT@; tls = "none"; } ); }
  );
EOF
chmod 644 "$T/agent.conf"
it_start_policy_stack "
local_domains = (\"$LOCAL_DOMAIN\", \"$BD\");
senders = { map = ( { login = \"alice\"; addresses = (\"alice@$LOCAL_DOMAIN\", \"@$SHOP\"); } ); };
suppression = { db = \"$T/db/suppression.db\"; };
outcome = { db = \"$T/db/outcome.db\"; };
bounce = {
  domains = (\"$BD\");
  rules = \"$REPO/contrib/bounce/rules.conf\";
  webhooks = ( { url = \"http://127.0.0.1:$HOOK_PORT/hook\"; secret_file = \"$T/secret\"; } );
};" WEIR_STACK_AGENT_EXTRA="$T/agent.conf" WEIR_STACK_BOUNCE_DOMAINS="$BD"

outcome() { "$WEIRCTL" -c "$WEIR_CONF" outcome show "$@"; }
supp() { "$WEIRCTL" -c "$WEIR_CONF" suppression "$@"; }

# --- mail out through a VERP route ------------------------------------------
tok=$(token)
smtp "out-1" -u alice --from "alice@$LOCAL_DOMAIN" --to "$gone,$fine" \
	--header "Subject: $tok" --header "Message-ID: <$tok@local.weir.test>" --body "$tok"
check "alice's message to two recipients queued by Postfix" reply_matches DATA '^250 '
qid=$QID
check "both reached the sink" wait_sink "$tok" 2 30
verp_from() { # RCPT: the stored copy for RCPT came with its VERP MAIL FROM
	local f want="bounces+${1%@*}=${1#*@}@$BD"
	f=$(grep -l "^X-Sink-Rcpt-To: <$1>" $(sink_files_with "$tok") 2>/dev/null | head -n 1)
	[ -n "$f" ] || { echo "    no copy for $1"; return 1; }
	[ "$(grep -c '^X-Sink-Rcpt-To:' "$f")" = 1 ] || { echo "    $f has more recipients"; return 1; }
	[ "$(sink_header "$f" X-Sink-Mail-From)" = "<$want>" ] && return 0
	echo "    $f: MAIL FROM $(sink_header "$f" X-Sink-Mail-From), want <$want>"
	return 1
}
check "VERP: <$gone> alone, MAIL FROM bounces+gone=$OTHER_DOMAIN@$BD" verp_from "$gone"
check "VERP: <$fine> alone, its own MAIL FROM" verp_from "$fine"
delivered_row() {
	outcome --rcpt "$gone" --result delivered | grep -qP "^\S+\t$qid\talice@$LOCAL_DOMAIN\t$gone\tdelivered\t250\t"
}
check "weirctl outcome show: delivered, with Postfix's queue id $qid" wait_for 10 delivered_row

# --- the DSN comes back -------------------------------------------------------
dsn() {
	printf 'From: MAILER-DAEMON@mx.other.weir.test (Mail Delivery System)\r\n'
	printf 'To: bounces+gone=%s@%s\r\nSubject: Undelivered Mail Returned to Sender\r\n' "$OTHER_DOMAIN" "$BD"
	printf 'Date: %s\r\nMessage-ID: <dsn-%s@mx.other.weir.test>\r\n' "$(date -R)" "$tok"
	printf 'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n\r\n'
	printf -- '--B1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n'
	printf -- '--B1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.other.weir.test\r\n\r\n'
	printf 'Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.1.1\r\n' "$gone"
	printf 'Diagnostic-Code: smtp; 550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n\r\n' "$gone"
	printf -- '--B1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@%s\r\nTo: %s\r\nMessage-ID: <%s@local.weir.test>\r\nSubject: %s\r\n\r\n' \
		"$LOCAL_DOMAIN" "$gone" "$tok" "$tok"
	printf -- '--B1--\r\n'
}
arf() {
	printf 'From: fbl@isp.other.weir.test\r\nTo: fbl@%s\r\nSubject: abuse report\r\n' "$BD"
	printf 'Date: %s\r\nMessage-ID: <arf-%s@isp.other.weir.test>\r\n' "$(date -R)" "$tok"
	printf 'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary="A1"\r\n\r\n'
	printf -- '--A1\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\r\n'
	printf -- '--A1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: fbl/1\r\nVersion: 1\r\n'
	printf 'Original-Mail-From: <news@%s>\r\nOriginal-Rcpt-To: <%s>\r\n\r\n' "$SHOP" "$fine"
	printf -- '--A1\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@%s\r\nTo: %s\r\nSubject: offer\r\nMessage-ID: <offer-%s@%s>\r\n\r\nbuy\r\n' \
		"$SHOP" "$fine" "$tok" "$SHOP"
	printf -- '--A1--\r\n'
}
dsn >"$D/dsn.eml"
arf >"$D/arf.eml"
smtp "dsn" --from '<>' --to "bounces+gone=$OTHER_DOMAIN@$BD" --data "$D/dsn.eml"
check "the DSN for <$gone>, from outside to $BD, queued by Postfix" reply_matches DATA '^250 '
dsn_qid=$QID
smtp "arf" --from '<>' --to "fbl@$BD" --data "$D/arf.eml"
check "the complaint about <$fine> queued by Postfix" reply_matches DATA '^250 '
check "Postfix handed both to weir-agent (queue empty)" wait_queue_empty 30
check "... over its transport_maps entry, delivered by the agent (2.0.0)" \
	bash -c "grep -F '$dsn_qid: to=<bounces+gone=$OTHER_DOMAIN@$BD>' '$POSTFIX_LOG' | grep -q 'status=sent (250 2.0.0 .*dsn recorded for 1 recipient'"
check "nothing of the bounces went to the sink" bash -c "! grep -lF 'abuse report' '$SINK_DIR'/*.eml | grep -q ."
bounced_row() {
	outcome --rcpt "$gone" --result bounced | grep -qP "\t$gone\tbounced\t550\t5\.1\.1\tuserunknown\thard\t.*\tbounce\t"
}
check "weirctl outcome show: <$gone> bounced, 550 5.1.1 userunknown hard, source bounce" bounced_row
check "weirctl outcome show --json: the complaint row" \
	bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" outcome show --rcpt '$fine' --result complaint --json | $PY -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if len(r)==1 and r[0][\"source\"]==\"complaint\" else 1)'"
check "weirctl suppression list: <$gone> global, userunknown" \
	bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" suppression list | grep -qE '^$gone .*global.*userunknown'"
check "weirctl suppression list --scope $SHOP: <$fine>, complaint" \
	bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" suppression list --scope $SHOP | grep -qE '^$fine .*complaint'"
check "weirctl report --json: <$fine> delivered, <$gone> bounced (once each), 1 complaint, userunknown hard" \
	bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" report --json | $PY -c 'import json,sys; r=json.load(sys.stdin); t=r[\"totals\"]; b=r[\"bounce_reasons\"]; sys.exit(0 if (t[\"recipients\"],t[\"delivered\"],t[\"bounced\"],t[\"complaints\"])==(2,1,1,1) and (b[0][\"reason\"],b[0][\"kind\"])==(\"userunknown\",\"hard\") else 1)'"

# --- the next submissions ------------------------------------------------------
smtp "again-gone" -u alice --from "alice@$LOCAL_DOMAIN" --to "$gone" --quit-after RCPT
check "to <$gone> again: 550 5.1.1 suppressed at RCPT by weir-milter" \
	reply_is RCPT "550 5.1.1 <$gone>: suppressed since $today: userunknown"
smtp "again-fine-shop" -u alice --from "news@$SHOP" --to "$fine" --quit-after RCPT
check "to <$fine> from $SHOP: 550 5.1.1 (the complaint's scope)" \
	reply_is RCPT "550 5.1.1 <$fine>: suppressed since $today: complaint"
smtp "again-fine-local" -u alice --from "alice@$LOCAL_DOMAIN" --to "$fine" --quit-after RCPT
check "to <$fine> from $LOCAL_DOMAIN: 250" reply_matches RCPT '^250 '

# --- webhooks -------------------------------------------------------------------
hook_event() { # TYPE ERE...: a signed POST of TYPE whose JSON body matches each ERE
	local type=$1
	shift
	$PY - "$T/hook.log" "$type" "$@" <<'PYEOF'
import json, re, sys
log, kind, eres = sys.argv[1], sys.argv[2], sys.argv[3:]
for line in open(log):
    f = line.rstrip("\n").split("\t")
    if len(f) < 8 or f[1] != kind or f[5] != "1" or f[4] != "application/json":
        continue
    body = bytes.fromhex(f[7]).decode()
    json.loads(body)
    if all(re.search(e, body) for e in eres):
        sys.exit(0)
sys.exit(1)
PYEOF
}
check "webhook: the bounce, signed, JSON with recipient, reason, hard, suppressed" \
	wait_for 30 hook_event bounce "\"recipient\":\"$gone\"" '"reason":"userunknown"' '"hard":true' \
	'"source":"dsn"' '"suppressed":true' "\"original_message_id\":\"$tok@local.weir.test\""
check "webhook: the complaint, with its feedback type and scope" \
	wait_for 30 hook_event complaint "\"recipient\":\"$fine\"" '"feedback_type":"abuse"' "\"scope\":\"$SHOP\""

# --- weir-agent's own check, and expiry -----------------------------------------
lmtp() { # RCPT: the agent's answer to one LMTP transaction (RCPT, or after the data)
	$PY - "$LMTP_PORT" "$1" <<'PYEOF'
import smtplib, sys
s = smtplib.LMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo_or_helo_if_needed()
s.mail("alice@local.weir.test")
code, msg = s.rcpt(sys.argv[2])
if code == 250:
    s.putcmd("data")
    s.getreply()
    s.send(b"Subject: agent check\r\n\r\nx\r\n.\r\n")
    code, msg = s.getreply()
print(code, msg.decode())
s.quit()
PYEOF
}
check "weirctl suppression add <short@$OTHER_DOMAIN> --expires 2s" \
	supp add "short@$OTHER_DOMAIN" --expires 2s --reason manual
lmtp_is() { # RCPT ERE
	local got
	got=$(lmtp "$1" 2>&1)
	printf '%s\n' "$got" | grep -qE -- "$2" && return 0
	echo "    LMTP for <$1>: want /$2/, got '$got'"
	return 1
}
check "weir-agent itself refuses it: 550 5.1.1 suppressed" \
	lmtp_is "short@$OTHER_DOMAIN" "^550 5\.1\.1 <short@$OTHER_DOMAIN>: suppressed since $today: manual"
check "... and records it (outcome: suppressed)" \
	wait_for 5 bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" outcome show --rcpt short@$OTHER_DOMAIN --result suppressed | grep -q suppressed"
sleep 2.5
check "after 2 s the entry has expired: relayed (250)" lmtp_is "short@$OTHER_DOMAIN" '^250 '
it_end

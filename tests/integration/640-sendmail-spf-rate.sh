#!/bin/bash
# 640-sendmail-spf-rate: weir-milter behind Sendmail (WEIR_STACK_MTA=
# sendmail, contrib/sendmail/weir.mc), short cases of what differs between
# MTAs: the SMTP AUTH login ({auth_authen}) and the queue id (i) reach the
# milter at MAIL and at end of message; SPF of inbound mail (pass with
# Received-SPF, fail refused 550 5.7.23 at MAIL); a rate limit (the third
# message of a login refused 4xx); action "hold" is Sendmail's quarantine
# (smfi_quarantine: mailq -qQ lists it with the reason, nothing delivered
# until an administrator releases it, then it is delivered once).
. "$(dirname "$0")/lib.sh"
it_begin "Sendmail: AUTH login and queue id macros, SPF, a rate limit, hold as quarantine"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
export WEIR_STACK_MTA=sendmail

ZONE_FILE=$(mktemp /tmp/weir-it-640zone.XXXXXX) || it_abort "mktemp failed"
chmod 644 "$ZONE_FILE"
# rate.state_db: a directory of the test's own that weir may write (never
# the system's /var/lib/weir/rate.db)
T=$(mktemp -d /tmp/weir-it-rate.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T" && chown weir "$T" || it_abort "chown weir $T failed"
cleanup_640() {
	local rc=$?
	rm -f -- "$ZONE_FILE"
	rm -rf -- "$T"
	(exit "$rc")
	it_cleanup
}
trap cleanup_640 EXIT
cat >"$ZONE_FILE" <<'EOF'
pass.spf IN TXT "v=spf1 ip4:127.0.0.2 -all"
fail.spf IN TXT "v=spf1 ip4:192.0.2.1 -all"
EOF
it_start_policy_stack '
trusted_networks = ("127.0.0.1/32");
local_domains = ("local.weir.test");
senders = { map = (
  { login = "alice"; addresses = ("alice@local.weir.test"); },
  { login = "bob"; addresses = ("bob@local.weir.test"); }
); };
spf = { preflight = "off"; };
rate = {
  backend = "memory";
  state_db = "'"$T"'/rate.db";
  limits = (
    { name = "msgs"; key = "login"; rate = "2/1h"; burst = 2;
      overrides = ( { login = "bob"; unlimited = true; } ); },
    { name = "held"; key = "login"; rate = "1/1h"; burst = 1; action = "hold";
      overrides = ( { login = "alice"; unlimited = true; } ); }
  );
};' WEIR_STACK_ZONE_EXTRA="$ZONE_FILE"
check "the stack runs Sendmail" test "$STACK_MTA" = sendmail
to=rcpt@$OTHER_DOMAIN

# send NAME RCPT [smtp args...]: one message to RCPT with a fresh token
# (TOK); marks the milter log first
send() {
	local name=$1 rcpt=$2
	shift 2
	TOK=$(token)
	log_mark
	smtp "$name" "$@" --to "$rcpt" --header "Subject: weir 640 $TOK" --body "body $TOK"
}
# msg_line ERE...: the milter's per-message line since the mark matches
msg_line() {
	local l e
	l=$(log_since | grep -E ' decision=' | tail -n 1)
	for e in "$@"; do
		printf '%s\n' "$l" | grep -qE -- "$e" || {
			echo "    want /$e/ in the message line: $l"
			return 1
		}
	done
}

# --- the login and the queue id -----------------------------------------------
send auth1 "$to" -u alice --from "alice@$LOCAL_DOMAIN"
check "alice: AUTH PLAIN accepted by Sendmail (235)" auth_ok
check "alice: message accepted with a Sendmail queue id" test -n "$QID"
check "alice: delivered" wait_sink "$TOK" 1 30
check "milter: the login is alice, as typed ({auth_authen} at MAIL)" \
	msg_line ' identity=authenticated( |$)' ' login=alice( |$)'
check "milter: the queue id is Sendmail's ({i} at MAIL and end of message)" msg_line " queue_id=$QID( |$)"
check "Sendmail logged the login (AUTH=server ... authid=alice)" \
	log_has "$MTA_LOG" 'AUTH=server, relay=\[127\.0\.0\.2\], authid=alice, mech=PLAIN'

# --- a rate limit ---------------------------------------------------------------------
send auth2 "$to" -u alice --from "alice@$LOCAL_DOMAIN"
check "alice's second message accepted (burst 2)" reply_matches DATA '^250 '
send auth3 "$to" -u alice --from "alice@$LOCAL_DOMAIN" --quit-after RCPT
check "alice's third message: 451 4.7.x rate limit msgs exceeded at MAIL" \
	reply_matches MAIL '^451 4\.7\.[0-9] rate limit msgs exceeded for alice: try again in [0-9]+ seconds'
check "milter: decision line rule=rate action=tempfail login=alice" \
	test "$(decision_count ' rule=rate( |$)' ' action=tempfail( |$)' ' login=alice( |$)')" = 1

# --- hold is Sendmail's quarantine ----------------------------------------------------------
send hold1 "$to" -u bob --from "bob@$LOCAL_DOMAIN"
check "bob's first message delivered" wait_sink "$TOK" 1 30
send hold2 "$to" -u bob --from "bob@$LOCAL_DOMAIN"
tokh=$TOK qidh=$QID
check "bob's second message (over the limit) accepted by SMTP (250 after the data)" reply_matches DATA '^250 '
check "milter: per-message line decision=hold for $qidh" msg_line ' decision=hold( |$)' " queue_id=$qidh( |$)"
check "Sendmail quarantined $qidh (an hf file; mailq -qQ lists it)" wait_for 10 mta_held "$qidh"
check "mailq -qQ shows weir's reason" \
	bash -c "'$STACK/sendmail' '$D' -qQ -bp | grep -A2 '^$qidh' | grep -qi 'QUARANTINE: .*rate'"
check "Sendmail logged the milter's quarantine" log_has "$MTA_LOG" "$qidh: milter=weir, quarantine=weir rate: "
check "not delivered while quarantined (a queue run leaves it)" bash -c "'$STACK/sendmail' '$D' -q; sleep 3; ! grep -lqF '$tokh' '$SINK_DIR'/*.eml"
check "released by the administrator (sendmail -qQ -Q -qI$qidh)" mta_release "$qidh"
check "the released message arrives once" wait_sink "$tokh" 1 30
check "exactly one copy" test "$(sink_files_with "$tokh" | wc -l)" = 1

# --- SPF of inbound mail ----------------------------------------------------------------------
send spfpass "bob@$LOCAL_DOMAIN" --from "x@pass.spf.weir.test"
check "SPF pass: accepted" reply_matches DATA '^250 '
check "SPF pass: delivered" wait_sink "$TOK" 1 30
f=$(sink_file "$TOK")
check "SPF pass: Received-SPF: pass in the stored message" grep -qE '^Received-SPF: pass ' "$f"
check "SPF pass: milter line spf=pass" msg_line ' spf=pass( |$)'
send spffail "bob@$LOCAL_DOMAIN" --from "x@fail.spf.weir.test" --quit-after RCPT
check "SPF fail: 550 5.7.23 at MAIL" reply_matches MAIL '^550 5\.7\.23 '
check "Sendmail logged the milter's reject at MAIL" log_has "$MTA_LOG" 'Milter: from=<x@fail\.spf\.weir\.test>, reject=550 5\.7\.23 '

check "Sendmail's queue is empty" wait_queue_empty 30
check "weir-milter still running" pid_alive "$MILTER_PID"
it_end

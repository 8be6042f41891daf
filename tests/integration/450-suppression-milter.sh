#!/bin/bash
# 450-suppression-milter: the suppression list at RCPT (issue 9) through
# the real stack: swaks -> Postfix (real SMTP AUTH) -> weir-milter ->
# weir-agent -> sink. Checked against the issue 9 spec:
#   - weirctl suppression add (as root) makes the list; weir-milter, as
#     user weir, still reads it
#   - a login's message to a suppressed recipient gets, at RCPT,
#     "550 5.1.1 <rcpt>: suppressed since YYYY-MM-DD: REASON" (today, UTC),
#     the local part's case not mattering; a decision line
#     rule=suppression action=reject suppressed=REASON
#   - another recipient of the same message goes through to the sink
#   - a scoped entry refuses only mail from that sender domain
#   - an entry added with --expires 2s stops refusing after it
#   - weirctl suppression remove: mail flows again
. "$(dirname "$0")/lib.sh"
it_begin "suppression list: refused at RCPT by weir-milter"
it_need_binaries milter agent weirctl
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"

# suppression.db: a directory of its own, made before the stack (so not
# under $D), given to weir by weirctl/weir-milter themselves
T=$(mktemp -d /tmp/weir-it-supp.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
supp_cleanup() {
	local rc=$?
	if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ] || [ "$rc" = 77 ]; then
		rm -rf -- "$T"
	else
		it_say "suppression directory kept: $T"
	fi
	(exit "$rc")
	it_cleanup
}
trap supp_cleanup EXIT

it_start_policy_stack "
local_domains = (\"$LOCAL_DOMAIN\");
senders = { map = ( { login = \"alice\"; addresses = (\"alice@$LOCAL_DOMAIN\", \"@shop.weir.test\"); } ); };
suppression = { db = \"$T/db/suppression.db\"; };"

ctl() { "$WEIRCTL" -c "$WEIR_CONF" suppression "$@"; }
today=$(date -u +%Y-%m-%d)
gone=gone@$OTHER_DOMAIN
fine=fine@$OTHER_DOMAIN

check "weirctl suppression add (as root) creates the list" \
	ctl add "Gone@$OTHER_DOMAIN" --reason userunknown
check "the list belongs to weir, mode 0640" \
	test "$(stat -c '%U %a' "$T/db/suppression.db")" = "weir 640"
check "weirctl suppression list shows it" \
	bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" suppression list | grep -q 'Gone@$OTHER_DOMAIN .* global .*userunknown'"

# a message to a suppressed and a good recipient
tok=$(token)
log_mark
smtp "supp-1" -u alice --from "alice@$LOCAL_DOMAIN" --to "GONE@$OTHER_DOMAIN,$fine" \
	--header "Subject: $tok" --body "$tok"
check "alice: authenticated (235)" auth_ok
check "suppressed recipient: 550 5.1.1 <GONE@...>: suppressed since $today: userunknown at RCPT" \
	bash -c "grep -qF '<** 550 5.1.1 <GONE@$OTHER_DOMAIN>: suppressed since $today: userunknown' '$SW'"
check "the other recipient: 250 at RCPT, the message goes through" \
	reply_matches DATA '^250 '
check "one decision line rule=suppression action=reject suppressed=userunknown" \
	decision_is suppression reject authenticated alice " rcpt=<GONE@$(ere_quote "$OTHER_DOMAIN")>" \
	' suppressed=userunknown ' ' suppressed_scope=global '
check "the sink gets the message for <$fine> only" wait_sink "$tok" 1 30
check "... and not for the suppressed recipient" \
	bash -c "! grep -l -- '$tok' '$SINK_DIR'/*.eml | xargs grep -qi '^X-Sink-Rcpt-To:.*gone@'"

# scoped to a sender domain
check "weirctl suppression add --scope shop.weir.test" \
	ctl add "$fine" --scope shop.weir.test --reason "complaint (abuse)"
smtp "supp-scope-1" -u alice --from "news@shop.weir.test" --to "$fine" --quit-after RCPT
check "mail from shop.weir.test to it: 550 5.1.1 ... complaint (abuse)" \
	reply_is RCPT "550 5.1.1 <$fine>: suppressed since $today: complaint (abuse)"
smtp "supp-scope-2" -u alice --from "alice@$LOCAL_DOMAIN" --to "$fine" --quit-after RCPT
check "mail from another domain to it: 250" reply_matches RCPT '^250 '

# expiry
exp=short@$OTHER_DOMAIN
check "weirctl suppression add --expires 2s" ctl add "$exp" --expires 2s --reason manual
smtp "supp-exp-1" -u alice --from "alice@$LOCAL_DOMAIN" --to "$exp" --quit-after RCPT
check "before it expires: 550 5.1.1" reply_is RCPT "550 5.1.1 <$exp>: suppressed since $today: manual"
sleep 3
smtp "supp-exp-2" -u alice --from "alice@$LOCAL_DOMAIN" --to "$exp" --quit-after RCPT
check "after it expired: 250" reply_matches RCPT '^250 '
check "weirctl suppression list --all marks it expired" \
	bash -c "\"$WEIRCTL\" -c \"$WEIR_CONF\" suppression list --all | grep -q '^$exp .*\\[expired\\]'"

# remove
check "weirctl suppression remove" ctl remove "$gone"
smtp "supp-rm" -u alice --from "alice@$LOCAL_DOMAIN" --to "$gone" --quit-after RCPT
check "removed: 250 at RCPT" reply_matches RCPT '^250 '
check "the list's files still belong to weir after weirctl (root) wrote them" \
	bash -c "! find '$T/db' ! -user weir | grep -q ."
it_end

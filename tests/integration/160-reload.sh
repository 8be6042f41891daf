#!/bin/bash
# 160-reload: senders.table (a file) and senders.sqlite (an SQLite database)
# are read at start and again on SIGUSR1: a change of alice's (table) and
# bob's (SQLite) addresses takes effect without a restart of weir-milter.
. "$(dirname "$0")/lib.sh"
it_begin "senders table and SQLite database are re-read on SIGUSR1"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
command -v sqlite3 >/dev/null || it_skip "sqlite3 not installed"

T=$(mktemp -d /tmp/weir-it-senders.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
trap 'rc=$?; rm -rf -- "$T"; (exit $rc); it_cleanup' EXIT
cat >"$T/senders.table" <<'TBL'
# login address[, address ...]
alice alice@local.weir.test
TBL
sqlite3 "$T/senders.sqlite" "CREATE TABLE senders (login TEXT NOT NULL, address TEXT NOT NULL);
INSERT INTO senders VALUES ('bob', 'bob@local.weir.test');" || it_abort "sqlite3 failed"
chmod 644 "$T/senders.table" "$T/senders.sqlite"

it_start_policy_stack "
trusted_networks = (\"127.0.0.1/32\", \"::1/128\");
local_domains = (\"local.weir.test\");
senders = {
  table = \"$T/senders.table\";
  sqlite = \"$T/senders.sqlite\";
};
policy = { envelope_sender = \"reject\"; };"
pid0=$MILTER_PID
to=rcpt@$OTHER_DOMAIN

# mail_from_is LOGIN ADDR ERE: the reply to MAIL FROM:<ADDR> as LOGIN matches ERE
mail_from_is() {
	smtp "mf-$1-$RANDOM" -u "$1" --from "$2" --to "$to" --quit-after RCPT
	reply_matches MAIL "$3" >/dev/null
}
REFUSED='^550 5\.7\.1 [a-z]+ may not send as <'

check "table: alice as <alice@$LOCAL_DOMAIN> accepted" mail_from_is alice "alice@$LOCAL_DOMAIN" '^250 '
check "table: alice as <alice.new@$LOCAL_DOMAIN> refused" mail_from_is alice "alice.new@$LOCAL_DOMAIN" "$REFUSED"
check "sqlite: bob as <bob@$LOCAL_DOMAIN> accepted" mail_from_is bob "bob@$LOCAL_DOMAIN" '^250 '
check "sqlite: bob as <bob.new@$LOCAL_DOMAIN> refused" mail_from_is bob "bob.new@$LOCAL_DOMAIN" "$REFUSED"

# change both, then SIGUSR1
cat >"$T/senders.table.new" <<'TBL'
# alice moved to a new address; a login may span lines
alice alice.new@local.weir.test
alice alice.other@local.weir.test, alice.third@local.weir.test
TBL
chmod 644 "$T/senders.table.new"
mv "$T/senders.table.new" "$T/senders.table"
sqlite3 "$T/senders.sqlite" "DELETE FROM senders WHERE login = 'bob';
INSERT INTO senders VALUES ('bob', 'bob.new@local.weir.test');" || it_abort "sqlite3 failed"
log_mark
kill -USR1 "$MILTER_PID"
sleep 2
check "weir-milter is still the same process (pid $pid0)" pid_alive "$pid0"
check "after SIGUSR1: alice as <alice.new@$LOCAL_DOMAIN> accepted" \
	wait_for 10 mail_from_is alice "alice.new@$LOCAL_DOMAIN" '^250 '
check "after SIGUSR1: alice as <alice.third@$LOCAL_DOMAIN> accepted (second line, list)" \
	mail_from_is alice "alice.third@$LOCAL_DOMAIN" '^250 '
check "after SIGUSR1: alice as <alice@$LOCAL_DOMAIN> now refused" \
	mail_from_is alice "alice@$LOCAL_DOMAIN" "$REFUSED"
check "after SIGUSR1: bob as <bob.new@$LOCAL_DOMAIN> accepted (SQLite)" \
	wait_for 10 mail_from_is bob "bob.new@$LOCAL_DOMAIN" '^250 '
check "after SIGUSR1: bob as <bob@$LOCAL_DOMAIN> now refused (SQLite)" \
	mail_from_is bob "bob@$LOCAL_DOMAIN" "$REFUSED"
check "the refusal after reload has its decision line" \
	decision_is envelope_sender reject authenticated bob "may not send as <bob@local\\.weir\\.test>"

# a message really goes through with the new address
tok=$(token)
check "alice.new sends a message" smtp send-new -u alice --from "alice.new@$LOCAL_DOMAIN" --to "$to" \
	--header "Subject: $tok" --body "$tok"
check "alice.new's message reaches the sink" wait_sink "$tok" 1 30

# a broken table on reload: reported as file:line, the old data kept
printf 'alice\n' >"$T/senders.table"
log_mark
kill -USR1 "$MILTER_PID"
sleep 2
check "broken table: weir-milter still runs" pid_alive "$pid0"
check "broken table: the error names $T/senders.table:1" \
	wait_log "$MILTER_LOG" "$(ere_quote "$T/senders.table"):1" 5
check "broken table: alice.new still accepted (old data kept)" \
	mail_from_is alice "alice.new@$LOCAL_DOMAIN" '^250 '
it_end

#!/bin/bash
# 500-milter-metrics: weir-milter's Prometheus endpoint (issue 10) through
# the real stack: swaks -> Postfix (SMTP AUTH, open) -> weir-milter ->
# weir-agent -> sink, with milter.metrics_listen on a free loopback port
# (WEIR_STACK_METRICS=1). After accepted mail, mail refused by the
# envelope sender rule and mail over a rate limit, a scrape of /metrics
# has exactly:
#   weir_milter_messages_total{decision="accept",reason="none"} 3
#   weir_milter_messages_total{decision="reject",reason="sender"} 1
#   weir_milter_messages_total{decision="tempfail",reason="rate"} 1
#   weir_milter_rate_limited_total{limit="m500"} 1
#   stage histogram counts: mail 5, rcpt 3, eom 3 (cumulative buckets,
#   +Inf = _count), connect up by the 5 sessions
# and the endpoint answers 404 / 405 like an HTTP server should; the rate
# hit is in outcome.db's rate_hits table for weirctl report.
. "$(dirname "$0")/lib.sh"
it_begin "weir-milter metrics: /metrics after accepted, refused and rate-limited mail"
it_need_binaries milter agent
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v curl >/dev/null || it_skip "curl not installed"
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
. "$REPO/tests/rate/rate-lib.sh"

RATE_LOGINS="alice bob"
# rate.state_db in a directory weir (the milter's user) may write
T=$(mktemp -d /tmp/weir-it-500.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
chown weir "$T" || it_abort "chown weir $T failed"
trap 'rc=$?; rm -rf -- "$T"; (exit $rc); it_cleanup' EXIT
CONF="
trusted_networks = (\"127.0.0.1/32\");
local_domains = (\"$LOCAL_DOMAIN\");
senders = { map = (
  { login = \"alice\"; addresses = (\"alice@$LOCAL_DOMAIN\"); },
  { login = \"bob\"; addresses = (\"bob@$LOCAL_DOMAIN\"); }
); };
policy = { envelope_sender = \"reject\"; };
rate = {
  backend = \"memory\";
  state_db = \"$T/rate.db\";
  limits = (
    { name = \"m500\"; key = \"login\"; count = \"messages\"; rate = \"1/1h\"; burst = 1;
      $(rate_scope bob) }
  );
};"
it_start_policy_stack "$CONF" WEIR_STACK_SASL_USERS="alice:alice-secret bob:bob-secret" \
	WEIR_STACK_METRICS=1

URL=http://127.0.0.1:$METRICS_PORT
scrape() { curl -sf --max-time 10 "$URL/metrics" >"$D/metrics-$1.txt"; }
# value FILE SERIES: the sample value of SERIES (exact text before the value)
value() {
	awk -v s="$2" 'index($0, s " ") == 1 { print substr($0, length(s) + 2); f = 1 }
		END { if (!f) print "absent" }' "$1"
}
# is FILE SERIES WANT: SERIES has the value WANT
is() {
	local got
	got=$(value "$1" "$2")
	[ "$got" = "$3" ] && return 0
	echo "    $2: want $3, got $got ($1)"
	return 1
}

check "the milter says where its metrics are" grep -q "metrics endpoint listen=127.0.0.1:$METRICS_PORT" "$MILTER_LOG"
check "GET /metrics before any mail: 200" scrape before
check "content type is text format 0.0.4" \
	bash -c "curl -sf -o /dev/null -w '%{content_type}' '$URL/metrics' | grep -qx 'text/plain; version=0.0.4; charset=utf-8'"
check "HELP and TYPE of every weir-milter metric" bash -c "
	for m in messages_total:counter stage_seconds:histogram rate_limited_total:counter \
		spf_results_total:counter dkim_signed_total:counter suppressed_total:counter; do
		grep -qx \"# TYPE weir_milter_\${m%%:*} \${m#*:}\" '$D/metrics-before.txt' || exit 1
		grep -q \"^# HELP weir_milter_\${m%%:*} .\" '$D/metrics-before.txt' || exit 1
	done"
check "no message counted yet" bash -c "! grep -q '^weir_milter_messages_total{' '$D/metrics-before.txt'"
check "GET /nope: 404" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$URL/nope')\" = 404 ]"
check "POST /metrics: 405" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x '$URL/metrics')\" = 405 ]"
conn0=$(value "$D/metrics-before.txt" 'weir_milter_stage_seconds_count{stage="connect"}')
[ "$conn0" = absent ] && conn0=0

# two accepted messages from alice, one from bob (his burst)
for who in alice alice bob; do
	tok=$(token)
	smtp "ok-$who-$IT_SEQ" -u "$who" --from "$who@$LOCAL_DOMAIN" --to "rcpt@$OTHER_DOMAIN" \
		--header "Subject: $tok" --body "$tok"
	check "$who: message accepted (250 at the end of data)" reply_matches DATA '^250 '
	check "$who: message reaches the sink" wait_sink "$tok" 1 30
done
# refused by the envelope sender rule at MAIL
smtp "sender-refused" -u alice --from "bob@$LOCAL_DOMAIN" --to "rcpt@$OTHER_DOMAIN" --quit-after RCPT
check "alice as bob: 550 5.7.1 at MAIL" reply_is MAIL "550 5.7.1 alice may not send as"
# bob over his limit: 451 4.7.0 at MAIL
smtp "rate-limited" -u bob --from "bob@$LOCAL_DOMAIN" --to "rcpt@$OTHER_DOMAIN" --quit-after RCPT
check "bob over m500: 451 4.7.0 at MAIL" reply_is MAIL "451 4.7.0 rate limit m500 exceeded"

check "GET /metrics after the mail: 200" scrape after
A=$D/metrics-after.txt
check "3 accepted" is "$A" 'weir_milter_messages_total{decision="accept",reason="none"}' 3
check "1 rejected by the sender rule" is "$A" 'weir_milter_messages_total{decision="reject",reason="sender"}' 1
check "1 tempfailed by the rate limit" is "$A" 'weir_milter_messages_total{decision="tempfail",reason="rate"}' 1
check "no other decision" bash -c "[ \"\$(grep -c '^weir_milter_messages_total{' '$A')\" = 3 ]"
check "1 hit of limit m500" is "$A" 'weir_milter_rate_limited_total{limit="m500"}' 1
check "nothing signed, nothing suppressed" bash -c "
	grep -qx 'weir_milter_dkim_signed_total 0' '$A' && grep -qx 'weir_milter_suppressed_total 0' '$A'"
check "MAIL stage observed 5 times" is "$A" 'weir_milter_stage_seconds_count{stage="mail"}' 5
check "RCPT stage observed 3 times" is "$A" 'weir_milter_stage_seconds_count{stage="rcpt"}' 3
check "end of message observed 3 times" is "$A" 'weir_milter_stage_seconds_count{stage="eom"}' 3
check "+Inf bucket equals the count" is "$A" 'weir_milter_stage_seconds_bucket{stage="mail",le="+Inf"}' 5
check "MAIL stage took under 30 s" is "$A" 'weir_milter_stage_seconds_bucket{stage="mail",le="30"}' 5
check "buckets are cumulative (never decreasing)" awk '
	/^weir_milter_stage_seconds_bucket\{stage="mail"/ { v = $NF + 0; if (v < last) bad = 1; last = v }
	END { exit bad }' "$A"
check "the sum is a number >= 0" awk '
	/^weir_milter_stage_seconds_sum\{stage="mail"\} / { if ($NF + 0 >= 0 && $NF ~ /^[0-9.e+-]+$/) ok = 1 }
	END { exit !ok }' "$A"
conn1=$(value "$A" 'weir_milter_stage_seconds_count{stage="connect"}')
check "connect stage: at least the 5 sessions more" bash -c "[ $conn1 -ge $((conn0 + 5)) ]"
check "contrib/grafana/weir.json is valid JSON with a panel for every weir-milter metric" bash -c "
	python3 -m json.tool '$REPO/contrib/grafana/weir.json' >/dev/null || exit 1
	for m in \$(sed -n 's/^# TYPE \\(weir_milter_[a-z_]*\\) .*/\\1/p' '$A'); do
		grep -q \"\$m\" '$REPO/contrib/grafana/weir.json' || { echo \"    \$m not in the dashboard\"; exit 1; }
	done"
if command -v sqlite3 >/dev/null; then
	check "the rate hit is in outcome.db for weirctl report" bash -c "
		[ \"\$(sqlite3 -separator '|' '$D/run/outcome.db' 'SELECT login, limit_name, COUNT(*) FROM rate_hits GROUP BY login, limit_name')\" = 'bob|m500|1' ]"
fi
it_end

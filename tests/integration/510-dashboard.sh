#!/bin/bash
# 510-dashboard: weir-agent's HTTP endpoint (issue 10) through the real
# stack, with agent.http_listen on a free loopback port
# (WEIR_STACK_METRICS=1) and agent.dashboard_dir at the build tree's
# dashboard/dist. Traffic straight to the agent's LMTP listener (so that
# no retry or DSN of Postfix changes the figures): 3 recipients
# delivered (two domains), 1 refused 550 by the sink, 1 deferred 450.
# Then:
#   /metrics: weir_agent_deliveries_total 3 / 1 / 1, the histogram's
#     count 5, the upstream up, every weir-agent metric declared;
#   /api/summary?since=1h: totals equal `weirctl report --since 1h
#     --json`'s and the traffic; the series add up to them; top
#     destinations, the recent bounce, the upstream;
#   /, /assets/NAME, no path traversal, 400 for a bad since, 404;
#   Debian's chromium (headless) loads the page: no console message at
#     all (a JS error, a CSP violation or a failed load would be one),
#     the data attributes show the traffic's numbers, a screenshot in
#     tests/results/dashboard.png;
#   basic auth after a reload with agent.http_auth_file (401 / 200), a
#     group-readable auth file and a non-loopback listen without one are
#     configuration errors, and a port that cannot be bound is a warning
#     while the agent runs on.
. "$(dirname "$0")/lib.sh"
it_begin "weir-agent /metrics, /api/summary and the dashboard in headless Chromium"
it_need_binaries agent weirctl
command -v swaks >/dev/null || it_skip "swaks not installed"
command -v curl >/dev/null || it_skip "curl not installed"
CHROMIUM=$(command -v chromium || command -v chromium-browser) || it_skip "chromium not installed"
DIST=$WEIR_BUILD/dashboard/dist
for f in index.html app.js style.css uPlot.iife.min.js uPlot.min.css; do
	[ -s "$DIST/$f" ] || it_skip "$DIST/$f missing: run make first"
done
RESULTS=$REPO/tests/results
mkdir -p "$RESULTS"

T=$(mktemp -d /tmp/weir-it-510.XXXXXX) || it_abort "mktemp failed"
chmod 755 "$T"
trap 'rc=$?; rm -rf -- "$T"; (exit $rc); it_cleanup' EXIT
printf 'dashboard_dir = "%s";\n' "$DIST" >"$T/agent.conf"
it_start_stack WEIR_STACK_METRICS=1 WEIR_STACK_AGENT_EXTRA="$T/agent.conf"

URL=http://127.0.0.1:$AGENT_HTTP_PORT
# value FILE SERIES: the sample value of SERIES (exact text before the value)
value() {
	awk -v s="$2" 'index($0, s " ") == 1 { print substr($0, length(s) + 2); f = 1 }
		END { if (!f) print "absent" }' "$1"
}
is() {
	local got
	got=$(value "$1" "$2")
	[ "$got" = "$3" ] && return 0
	echo "    $2: want $3, got $got"
	return 1
}
code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }

check "the agent says where its endpoint is" \
	log_has "$AGENT_LOG" "http endpoint listen=127.0.0.1:$AGENT_HTTP_PORT .*dashboard=$DIST"
check "GET /metrics: text format 0.0.4" bash -c \
	"[ \"\$(curl -sf -o '$D/m0.txt' -w '%{content_type}' '$URL/metrics')\" = 'text/plain; version=0.0.4; charset=utf-8' ]"
check "HELP and TYPE of every weir-agent metric" bash -c "
	for m in deliveries_total:counter delivery_seconds:histogram throttle_deferred_total:counter \
		throttle_state:gauge throttle_sessions:gauge upstream_up:gauge \
		suppression_entries:gauge bounces_total:counter; do
		grep -qx \"# TYPE weir_agent_\${m%%:*} \${m#*:}\" '$D/m0.txt' || { echo \"    \$m\"; exit 1; }
		grep -q \"^# HELP weir_agent_\${m%%:*} .\" '$D/m0.txt' || exit 1
	done"

# --- traffic: LMTP straight to the agent ---------------------------------
lmtp() { # RCPT: one transaction; the last reply code naming RCPT (the
	# LMTP answer after DATA, or the refusal at RCPT)
	swaks --protocol LMTP --server "127.0.0.1:$LMTP_PORT" --helo client.weir.test \
		--from app@local.weir.test --to "$1" --body "510 $1" >"$D/log/lmtp-$1.log" 2>&1
	sed -n 's/^<[-*][*]* *\([245][0-9][0-9]\) .*<'"$1"'>.*/\1/p' "$D/log/lmtp-$1.log" | tail -n 1
}
check "ok1@a.weir.test delivered" [ "$(lmtp ok1@a.weir.test)" = 250 ]
check "ok2@a.weir.test delivered" [ "$(lmtp ok2@a.weir.test)" = 250 ]
check "ok3@b.weir.test delivered" [ "$(lmtp ok3@b.weir.test)" = 250 ]
check "reject-1@b.weir.test refused 550 by the sink" [ "$(lmtp reject-1@b.weir.test)" = 550 ]
check "defer-1@a.weir.test deferred 450 by the sink" [ "$(lmtp defer-1@a.weir.test)" = 450 ]

# --- /metrics -------------------------------------------------------------
curl -sf --max-time 10 "$URL/metrics" >"$D/m1.txt"
G=group=\"smarthost\"
check "deliveries_total delivered 3" is "$D/m1.txt" "weir_agent_deliveries_total{result=\"delivered\",$G}" 3
check "deliveries_total bounced 1" is "$D/m1.txt" "weir_agent_deliveries_total{result=\"bounced\",$G}" 1
check "deliveries_total deferred 1" is "$D/m1.txt" "weir_agent_deliveries_total{result=\"deferred\",$G}" 1
check "delivery_seconds counts the 5 answers" \
	is "$D/m1.txt" 'weir_agent_delivery_seconds_count{route="smarthost"}' 5
check "the smart host is up" is "$D/m1.txt" "weir_agent_upstream_up{host=\"sink.weir.test:$SINK_PORT\"}" 1

# --- /api/summary against weirctl report ----------------------------------
summary() { curl -sf --max-time 10 "$URL/api/summary?since=1h" >"$D/summary.json"; }
summary_has_all() { # the outcome rows are written within outcome.flush_interval
	summary && $PY -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["totals"]["recipients"] != 5)' "$D/summary.json"
}
check "/api/summary counts the 5 recipients" wait_for 10 summary_has_all
"$WEIRCTL" -c "$D/weir.conf" report --since 1h --json >"$D/report.json" 2>"$D/report.err"
check "/api/summary agrees with weirctl report --json and the traffic" \
	$PY - "$D/summary.json" "$D/report.json" "$SINK_PORT" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
bad = []
def want(what, got, exp):
    if got != exp:
        bad.append("%s: want %r, got %r" % (what, exp, got))
for k in ("recipients", "delivered", "deferred", "bounced", "suppressed", "complaints"):
    want("totals." + k + " vs weirctl report", s["totals"][k], r["totals"][k])
want("delivered", s["totals"]["delivered"], 3)
want("deferred", s["totals"]["deferred"], 1)
want("bounced", s["totals"]["bounced"], 1)
want("delivery_rate", s["delivery_rate"], r["totals"]["delivery_rate"])
ser = s["series"]
want("bucket", s["bucket_seconds"], 60)
want("series length", len(ser["time"]), len(ser["delivered"]))
for k in ("delivered", "deferred", "bounced"):
    want("series sum " + k, sum(ser[k]), s["totals"][k])
top = {d["domain"]: d for d in s["top_destinations"]}
want("a.weir.test", (top["a.weir.test"]["delivered"], top["a.weir.test"]["deferred"]), (2, 1))
want("b.weir.test", (top["b.weir.test"]["delivered"], top["b.weir.test"]["bounced"]), (1, 1))
want("destinations vs weirctl report",
     [(d["domain"], d["recipients"], d["delivered"], d["bounced"]) for d in s["top_destinations"]],
     [(d["domain"], d["recipients"], d["delivered"], d["bounced"]) for d in r["destination_domains"]][:10])
b = s["recent_bounces"]
want("recent bounces", [(x["recipient"], x["code"], x["status"], x["reason"], x["hard"]) for x in b],
     [("reject-1@b.weir.test", 550, "5.1.1", "userunknown", True)])
want("upstreams", [(u["host"], u["up"]) for u in s["upstreams"]],
     [("sink.weir.test:%s" % sys.argv[3], True)])
want("throttle", s["throttle"], [])
want("outcome_error", s["outcome_error"], None)
for line in bad:
    print("    " + line)
sys.exit(1 if bad else 0)
PYEOF

# --- the static files -----------------------------------------------------
check "GET /: the page" bash -c "curl -sf '$URL/' | grep -q 'assets/app.js'"
check "GET /assets/app.js: JavaScript" bash -c \
	"[ \"\$(curl -sf -o /dev/null -w '%{content_type}' '$URL/assets/app.js')\" = 'text/javascript; charset=utf-8' ]"
check "GET /assets/uPlot.iife.min.js: the bundled chart library" bash -c \
	"curl -sf '$URL/assets/uPlot.iife.min.js' | cmp -s - '$DIST/uPlot.iife.min.js'"
check "no path traversal: /assets/../weir.conf 404" [ "$(code_of --path-as-is "$URL/assets/../weir.conf")" = 404 ]
check "no path traversal: /assets/..%2Fweir.conf 404" [ "$(code_of "$URL/assets/..%2Fweir.conf")" = 404 ]
check "no hidden files: /assets/.x 404" [ "$(code_of "$URL/assets/.x")" = 404 ]
check "/nope 404" [ "$(code_of "$URL/nope")" = 404 ]
check "/api/summary?since=bogus 400" [ "$(code_of "$URL/api/summary?since=bogus")" = 400 ]
check "POST /api/summary 405" [ "$(code_of -X POST -d x "$URL/api/summary")" = 405 ]

# --- the page in headless Chromium ----------------------------------------
chromium_run() { # OUT ERR ARGS...: one headless run on the dashboard
	local out=$1 err=$2
	shift 2
	timeout 30 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
		--disable-extensions --disable-background-networking --disable-sync \
		--user-data-dir="$T/chromium" --enable-logging=stderr --v=0 \
		--virtual-time-budget=5000 "$@" "$URL/" >"$out" 2>"$err"
}
check "chromium dumps the page's DOM" chromium_run "$D/dom.html" "$D/chromium-dom.err" --dump-dom
check "no console message (JS error, CSP violation, failed load)" bash -c \
	"! grep -a ':CONSOLE' '$D/chromium-dom.err'" || grep -a ':CONSOLE' "$D/chromium-dom.err" | head -n 5
check "the page shows the traffic's numbers" $PY - "$D/dom.html" <<'PYEOF'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.by_id = {}
        self.rows = {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.by_id[a["id"]] = a
        if tag == "body":
            self.by_id["body"] = a
        if tag == "tr" and "data-domain" in a:
            self.rows[a["data-domain"]] = a
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
ids, bad = p.by_id, []
def want(what, got, exp):
    if got != exp:
        bad.append("%s: want %r, got %r" % (what, exp, got))
want("state", ids.get("body", {}).get("data-state"), "ready")
for k, v in (("delivered", "3"), ("deferred", "1"), ("bounced", "1"), ("suppressed", "0")):
    want(k + "-total", ids.get(k + "-total", {}).get("data-value"), v)
    if k != "suppressed":
        want("chart " + k, ids.get("chart", {}).get("data-" + k), v)
want("chart points", int(ids.get("chart", {}).get("data-points", "0")) > 0, True)
want("delivery rate", ids.get("delivery-rate", {}).get("data-value"), "0.75")
want("destinations", ids.get("destinations", {}).get("data-count"), "2")
want("a.weir.test delivered", p.rows.get("a.weir.test", {}).get("data-delivered"), "2")
want("b.weir.test bounced", p.rows.get("b.weir.test", {}).get("data-bounced"), "1")
want("bounces", ids.get("bounces", {}).get("data-count"), "1")
want("upstreams", (ids.get("upstreams", {}).get("data-count"), ids.get("upstreams", {}).get("data-down")), ("1", "0"))
want("throttle", ids.get("throttle", {}).get("data-count"), "0")
for line in bad:
    print("    " + line)
sys.exit(1 if bad else 0)
PYEOF
check "the chart is drawn (uPlot canvas)" grep -q '<canvas' "$D/dom.html"
rm -f "$RESULTS/dashboard.png"
chromium_run "$D/shot.out" "$D/chromium-shot.err" --hide-scrollbars --window-size=1400,1500 \
	--screenshot="$RESULTS/dashboard.png"
check "screenshot saved to tests/results/dashboard.png" bash -c \
	"[ \"\$(head -c 8 '$RESULTS/dashboard.png' | od -An -tx1 | tr -d ' ')\" = 89504e470d0a1a0a ] && [ \$(stat -c %s '$RESULTS/dashboard.png') -gt 20000 ]"
check "no console message in the screenshot run either" bash -c "! grep -a ':CONSOLE' '$D/chromium-shot.err'"

# --- configuration: basic auth, errors, bind failure -----------------------
printf 'admin:s3cret-510\n' >"$T/http-auth"
chown weir "$T/http-auth" && chmod 600 "$T/http-auth"
printf 'dashboard_dir = "%s";\nhttp_auth_file = "%s";\n' "$DIST" "$T/http-auth" >"$T/agent-auth.conf"
"$STACK/agent-config" "$D" "$T/agent-auth.conf"
kill -HUP "$AGENT_PID"
check "reload with agent.http_auth_file: basic auth" wait_log "$AGENT_LOG" "http endpoint listen=127.0.0.1:$AGENT_HTTP_PORT .*auth=basic" 10
check "without credentials: 401" [ "$(code_of "$URL/metrics")" = 401 ]
check "wrong password: 401" [ "$(code_of -u admin:nope "$URL/metrics")" = 401 ]
check "with credentials: 200" [ "$(code_of -u admin:s3cret-510 "$URL/api/summary")" = 200 ]
chmod 640 "$T/http-auth"
check "a group-readable auth file is a configuration error" bash -c \
	"! '$WEIR_AGENT' -n -c '$D/weir.conf' >'$D/n1.out' 2>&1 && grep -q 'http-auth' '$D/n1.out'"
chmod 600 "$T/http-auth"
sed "s|^\([[:space:]]*http_listen = \)\"[^\"]*\"|\1\"0.0.0.0:$AGENT_HTTP_PORT\"|; /http_auth_file/d" \
	"$D/weir.conf" >"$T/open.conf"
check "a non-loopback listen without auth is a configuration error" bash -c \
	"! '$WEIR_AGENT' -n -c '$T/open.conf' >'$D/n2.out' 2>&1 && grep -q 'http_auth_file is required' '$D/n2.out'"
# a port in use (the sink's): a warning, the agent runs on
printf 'dashboard_dir = "%s";\nhttp_listen = "127.0.0.1:%s";\n' "$DIST" "$SINK_PORT" >"$T/agent-busy.conf"
sed -i '/^[[:space:]]*http_listen = /d' "$D/weir.conf"
"$STACK/agent-config" "$D" "$T/agent-busy.conf"
kill -HUP "$AGENT_PID"
check "a port that cannot be bound is a warning" \
	wait_log "$AGENT_LOG" "http endpoint 127.0.0.1:$SINK_PORT: .*running without" 10
check "the agent runs on and relays" [ "$(lmtp ok4@a.weir.test)" = 250 ]
check "the old endpoint is gone" [ "$(code_of "$URL/metrics")" = 000 ]

it_end

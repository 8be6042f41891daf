# tests/integration/lib.sh - helpers for the integration tests (sourced)
#
# A test script:
#     . "$(dirname "$0")/lib.sh"
#     it_begin "what this test shows"
#     it_need_binaries milter agent        # exit 77 when not built
#     it_start_stack                       # fresh stack, stopped on exit
#     ... check "description" command ...  # records ok / not ok, goes on
#     it_end                               # exit 0 if every check passed
#
# Exit status: 0 pass, 1 fail, 77 skip. On failure the tails of the logs
# are printed and the stack directory is kept (its path is printed);
# WEIR_IT_KEEP=1 keeps it on success too.
#
# Environment: WEIR_BUILD (build tree, default the repository root),
# WEIR_IT_TIMEOUT (seconds for each wait, default 60).

set -u
set -o pipefail

IT_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IT_HOME/../.." && pwd)
STACK=$REPO/tests/stack
export WEIR_BUILD=$(realpath -m "${WEIR_BUILD:-$REPO}")
WEIR_MILTER=$WEIR_BUILD/milter/weir-milter
WEIR_AGENT=$WEIR_BUILD/delivery-agent/weir-agent
WEIRCTL=$WEIR_BUILD/policy/weirctl
PY=/usr/bin/python3
IT_TIMEOUT=${WEIR_IT_TIMEOUT:-60}
IT_NAME=$(basename "$0" .sh)
IT_FAILS=0
IT_CHECKS=0
IT_DIR=
IT_SEQ=0
D=

it_say() { echo "[$IT_NAME] $*"; }

it_begin() {
	it_say "== $*"
	if [ "$(id -u)" != 0 ]; then
		it_skip "must run as root (private Postfix, daemons that drop to user weir)"
	fi
}

it_skip() {
	it_say "SKIP: $*"
	IT_SKIPPING=1
	exit 77
}

# it_need_binaries [milter] [agent] [weirctl]: skip when not built
it_need_binaries() {
	local b f
	for b in "$@"; do
		case $b in
		milter) f=$WEIR_MILTER ;;
		agent) f=$WEIR_AGENT ;;
		weirctl) f=$WEIRCTL ;;
		*) f=$b ;;
		esac
		[ -x "$f" ] || it_skip "$f is not built"
	done
}

# it_logs: the tails of every log of the stack
it_logs() {
	local f
	[ -n "$D" ] && [ -d "$D/log" ] || return 0
	for f in "$D"/log/postfix.log "$D"/log/weir-milter.log "$D"/log/weir-agent.log "$D"/log/sink*.log; do
		[ -e "$f" ] || continue
		echo "----- last 25 lines of $f -----"
		tail -n 25 -- "$f"
	done
	if [ "${STACK_MTA:-postfix}" = sendmail ]; then
		for f in "$D"/log/sendmail.log "$D"/log/sendmail.out; do
			[ -s "$f" ] || continue
			echo "----- last 25 lines of $f -----"
			tail -n 25 -- "$f"
		done
		echo "----- mailq (Sendmail) -----"
		"$STACK/sendmail" "$D" -bp 2>&1 | head -20
	elif [ -f "$D/postfix/main.cf" ]; then
		echo "----- postqueue -p -----"
		postqueue -c "$D/postfix" -p 2>&1 | head -20
	fi
	echo "----- sink spool -----"
	ls -l "$D"/sink 2>&1 | tail -n +2
}

it_cleanup() {
	local rc=$?
	trap - EXIT
	if [ -n "$D" ] && [ -d "$D" ]; then
		"$STACK/stop" "$D" >/dev/null 2>&1 || true
		# Sanitized daemons (WEIR_BUILD=build-asan) report memory errors
		# and leaks in their logs, leaks only at exit: after the stop.
		if grep -lE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
			"$D"/log/weir-*.log >/dev/null 2>&1; then
			echo "FAIL: sanitizer report in a daemon log:"
			grep -hE -A30 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
				"$D"/log/weir-*.log | head -60
			[ "$rc" = 0 ] && rc=1
		fi
		if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ]; then
			rm -rf -- "$D"
		elif [ "$rc" != 77 ]; then
			it_say "stack directory kept: $D"
		else
			rm -rf -- "$D"
		fi
	fi
	exit "$rc"
}
trap it_cleanup EXIT

# it_abort MSG: fail now, with the logs
it_abort() {
	it_say "FAIL: $*"
	it_logs
	exit 1
}

# it_start_stack [VAR=VALUE...]: start a stack in a fresh directory and
# source its stack.env (ports, PIDs, paths). VAR=VALUE are passed to the
# start script (WEIR_STACK_SKIP=milter, WEIR_SINK_SLOW=8, ...).
it_start_stack() {
	it_need_mta
	D=$(mktemp -d /tmp/weir-it.XXXXXX) || it_abort "mktemp failed"
	chmod 755 "$D"
	it_say "starting the stack in $D $*${WEIR_STACK_MTA:+ (WEIR_STACK_MTA=$WEIR_STACK_MTA)}"
	if ! env "$@" "$STACK/start" "$D" >"$D/start.out" 2>&1; then
		cat "$D/start.out"
		it_abort "the stack did not start"
	fi
	# shellcheck disable=SC1091
	. "$D/stack.env"
	it_say "$(tail -n 1 "$D/start.out")"
}

# check DESC CMD...: run CMD, record and print the result, go on
check() {
	local desc=$1
	shift
	IT_CHECKS=$((IT_CHECKS + 1))
	if "$@"; then
		it_say "ok - $desc"
		return 0
	fi
	IT_FAILS=$((IT_FAILS + 1))
	it_say "NOT OK - $desc"
	return 1
}

# it_end: print the summary and exit 0 / 1
it_end() {
	if [ "$IT_FAILS" -ne 0 ]; then
		it_say "FAIL: $IT_FAILS of $IT_CHECKS checks failed"
		it_logs
		exit 1
	fi
	it_say "PASS: $IT_CHECKS checks"
	exit 0
}

# token: a unique string for a message body
token() {
	IT_SEQ=$((IT_SEQ + 1))
	echo "tok-$IT_NAME-$$-$IT_SEQ-$RANDOM$RANDOM"
}

# body_for TOKEN: the body send_mail sends (a dot line tests dot-stuffing)
body_for() {
	printf 'body line 1 %s\nline 2: a line with a leading dot follows\n.dot-line %s\n..two dots\n\tlast line %s' "$1" "$1" "$1"
}

# sink_body_ok FILE TOKEN: the body stored in FILE is exactly what
# send_mail sent (lines compared with CRLF endings, trailing empty lines
# ignored)
sink_body_ok() {
	$PY - "$1" "$2" "$(body_for "$2")" <<'PYEOF'
import sys
raw = open(sys.argv[1], "rb").read()
want = sys.argv[3].encode().split(b"\n")
head, sep, body = raw.partition(b"\r\n\r\n")
if not sep:
    print("  no header/body separator (CRLF CRLF) in %s" % sys.argv[1]); sys.exit(1)
got = body.split(b"\r\n")
while got and got[-1] == b"":
    got.pop()
if got != want:
    print("  body differs in %s:\n  want %r\n  got  %r" % (sys.argv[1], want, got)); sys.exit(1)
PYEOF
}

# send_mail FROM TO[,TO...] TOKEN [swaks args...]: send through Postfix.
# Sets QID to the Postfix queue id. Returns swaks' status. The transcript
# goes to $D/log/swaks-N.log.
QID=
send_mail() {
	local from=$1 to=$2 tok=$3 log
	shift 3
	log=$D/log/swaks-$IT_SEQ-$RANDOM.log
	swaks --server "127.0.0.1:$SMTP_PORT" --helo client.weir.test \
		--from "$from" --to "$to" \
		--header "Subject: weir test $tok" --body "$(body_for "$tok")" "$@" >"$log" 2>&1
	local rc=$?
	QID=$(mta_qid "$log")
	if [ "$rc" != 0 ]; then
		it_say "swaks exited $rc; transcript $log:"
		tail -n 15 "$log"
	fi
	return "$rc"
}

# sink_count [SPOOL]: number of stored messages
sink_count() {
	find "${1:-$SINK_DIR}" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l
}

# sink_files_with STRING [SPOOL]: stored messages containing STRING,
# except bounces (null sender): a DSN quotes the original message
sink_files_with() {
	grep -lF -- "$1" "${2:-$SINK_DIR}"/*.eml 2>/dev/null | xargs -r grep -L '^X-Sink-Mail-From: <>'
}

# wait_for SECS CMD...: poll CMD every 0.25 s until it succeeds
wait_for() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.25
	done
	return 0
}

_sink_has() { [ "$(sink_files_with "$1" "$3" | wc -l)" -ge "$2" ]; }
# wait_sink TOKEN [N [SECS [SPOOL]]]: wait until N stored messages contain TOKEN
wait_sink() {
	wait_for "${3:-$IT_TIMEOUT}" _sink_has "$1" "${2:-1}" "${4:-$SINK_DIR}"
}

# wait_log FILE ERE [SECS]: wait until a line of FILE matches ERE
wait_log() {
	wait_for "${3:-$IT_TIMEOUT}" grep -qE -- "$2" "$1"
}

# log_has FILE ERE: a line of FILE matches ERE
log_has() {
	grep -qE -- "$2" "$1" 2>/dev/null
}

# pf_status QID RCPT: Postfix's last delivery line for QID and RCPT
pf_status() {
	grep -F "$1: to=<$2>" "$POSTFIX_LOG" 2>/dev/null | tail -n 1
}

# queue_empty: the MTA's queue holds nothing (for Postfix both views,
# postqueue -p and the queue directories, must agree)
queue_empty() {
	if is_sendmail; then
		[ "$(mta_queue_count)" = 0 ]
		return
	fi
	postqueue -c "$POSTFIX_CONFIG_DIR" -p 2>/dev/null | grep -q "Mail queue is empty" &&
		[ -z "$(find "$POSTFIX_QUEUE_DIR"/{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null)" ]
}

# in_queue QID: QID is still in the MTA's queue (held or not)
in_queue() {
	if is_sendmail; then
		[ -e "$SENDMAIL_QUEUE_DIR/qf$1" ] || [ -e "$SENDMAIL_QUEUE_DIR/hf$1" ]
		return
	fi
	postqueue -c "$POSTFIX_CONFIG_DIR" -p 2>/dev/null | grep -q "^$1[*! ]"
}

# in_deferred QID: QID waits for another delivery attempt (Postfix's
# deferred queue; Sendmail has one queue: a qf file that a delivery
# attempt has already deferred)
in_deferred() {
	if is_sendmail; then
		[ -e "$SENDMAIL_QUEUE_DIR/qf$1" ] && grep -q "$1: to=.* stat=Deferred" "$MTA_LOG" 2>/dev/null
		return
	fi
	[ -n "$(find "$POSTFIX_QUEUE_DIR/deferred" -type f -name "$1" 2>/dev/null)" ]
}

# --- the MTA, Postfix or Sendmail (WEIR_STACK_MTA; stack.env STACK_MTA) ---
# Tests that run against both call these instead of postqueue/postsuper
# and instead of matching Postfix's log lines.

# is_sendmail: the stack's MTA is Sendmail
is_sendmail() {
	[ "${STACK_MTA:-postfix}" = sendmail ]
}

# mta_name: "Postfix" or "Sendmail", for check descriptions
mta_name() {
	if is_sendmail; then echo Sendmail; else echo Postfix; fi
}

# mta_qid TRANSCRIPT: the queue id in a swaks transcript's reply to the
# end of data: Postfix's "250 2.0.0 Ok: queued as QID", Sendmail's "250
# 2.0.0 QID Message accepted for delivery"
mta_qid() {
	sed -n -e 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' \
		-e 's/^ *<[-~] *250 2\.0\.0 \([0-9A-Za-z]*\) Message accepted for delivery.*/\1/p' "$1" | tail -n 1
}

# mta_queue_count: messages in the MTA's queue, held ones included
mta_queue_count() {
	if is_sendmail; then
		# qf: queued, hf: quarantined (Sendmail's hold), Qf: lost
		find "$SENDMAIL_QUEUE_DIR" -maxdepth 1 -type f -name '[qhQ]f*' 2>/dev/null | wc -l
	else
		find "$POSTFIX_QUEUE_DIR"/{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null | wc -l
	fi
}

# mta_flush: try every queued message now (postqueue -f; sendmail -q)
mta_flush() {
	if is_sendmail; then
		"$STACK/sendmail" "$D" -q
	else
		postqueue -c "$POSTFIX_CONFIG_DIR" -f
	fi
}

# mta_log_line QID RCPT ERE: the MTA's last log line about QID and RCPT
# matches ERE
mta_log_line() {
	local l
	if is_sendmail; then
		l=$(grep -F "$1: to=<$2>" "$MTA_LOG" 2>/dev/null | tail -n 1)
	else
		l=$(grep -F "$1: to=<$2>" "$POSTFIX_LOG" 2>/dev/null | tail -n 1)
	fi
	[ -n "$l" ] && grep -qE -- "$3" <<<"$l"
}

# mta_sent_to_agent QID RCPT [SECS]: wait until the MTA logs QID to RCPT
# delivered to weir-agent over LMTP (Postfix's lmtp client to the agent's
# socket; Sendmail's weir mailer of contrib/sendmail/weir.mc)
mta_sent_to_agent() {
	if is_sendmail; then
		wait_for "${3:-30}" mta_log_line "$1" "$2" ' mailer=weir, .* stat=Sent'
	else
		wait_log "$POSTFIX_LOG" "postfix/lmtp\[[0-9]+\]: $1: to=<$2>, relay=[^ ]*agent\.lmtp.* status=sent" "${3:-30}"
	fi
}

# mta_sent QID RCPT [SECS]: wait until the MTA logs QID to RCPT sent
mta_sent() {
	if is_sendmail; then
		wait_for "${3:-30}" mta_log_line "$1" "$2" ' stat=Sent'
	else
		wait_log "$POSTFIX_LOG" "$1: to=<$2>,.* status=sent" "${3:-30}"
	fi
}

# mta_deferred_by_agent QID RCPT [SECS]: wait until the MTA logs QID to
# RCPT deferred by a 4xx reply of weir-agent (not a failure to connect)
mta_deferred_by_agent() {
	if is_sendmail; then
		wait_for "${3:-30}" mta_log_line "$1" "$2" \
			' mailer=weir, .* dsn=4\.[0-9.]+, reply=4[0-9][0-9] .*stat=Deferred: 4[0-9][0-9] '
	else
		wait_log "$POSTFIX_LOG" "postfix/lmtp\[[0-9]+\]: $1: to=<$2>,.* dsn=4\.[0-9.]+, status=deferred" "${3:-30}" &&
			grep -F "$1: to=<$2>" "$POSTFIX_LOG" | grep -q 'said: 4[0-9][0-9]'
	fi
}

# mta_held QID: QID is on hold: Postfix's hold queue (postqueue -p marks it
# "!"); Sendmail's quarantine (smfi_quarantine: an hf file, listed by
# mailq -qQ with the reason)
mta_held() {
	local q
	if is_sendmail; then
		[ -e "$SENDMAIL_QUEUE_DIR/hf$1" ] && q=$("$STACK/sendmail" "$D" -qQ -bp 2>/dev/null) &&
			grep -q "^$1" <<<"$q"
	else
		q=$(postqueue -c "$POSTFIX_CONFIG_DIR" -p 2>/dev/null) && grep -q "^$1!" <<<"$q" &&
			[ -n "$(find "$POSTFIX_QUEUE_DIR/hold" -type f -name "$1" 2>/dev/null)" ]
	fi
}

# mta_release QID: the administrator releases a held message and the MTA
# tries it at once (postsuper -H, postqueue -i; sendmail -qQ -Q -qI)
mta_release() {
	if is_sendmail; then
		"$STACK/sendmail" "$D" -qQ -Q -qI"$1" >/dev/null 2>&1 &&
			"$STACK/sendmail" "$D" -qI"$1"
	else
		postsuper -c "$POSTFIX_CONFIG_DIR" -H "$1" >/dev/null 2>&1 &&
			postqueue -c "$POSTFIX_CONFIG_DIR" -i "$1" >/dev/null 2>&1
	fi
}

# it_need_mta: skip when WEIR_STACK_MTA=sendmail and no private Sendmail
# can be had (Debian's sendmail-bin is fetched once with apt-get
# download, see tests/stack/sendmail-fetch); sets WEIR_SENDMAIL_ROOT
it_need_mta() {
	local root
	[ "${WEIR_STACK_MTA:-postfix}" = sendmail ] || return 0
	[ -r /usr/share/sendmail/cf/m4/cf.m4 ] || it_skip "sendmail-cf is not installed"
	command -v m4 >/dev/null || it_skip "m4 is not installed"
	root=$("$STACK/sendmail-fetch" 2>&1) || it_skip "no private Sendmail: $root"
	export WEIR_SENDMAIL_ROOT=$root
}

# wait_queue_empty [SECS]
wait_queue_empty() {
	wait_for "${1:-$IT_TIMEOUT}" queue_empty
}

# sink_header FILE NAME: the values of the sink's envelope header NAME
sink_header() {
	sed -n "s/^$2: //p" "$1" | tr -d '\r'
}

# pid_alive PID (not a zombie)
pid_alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)
	[ "$st" != Z ]
}

# free_port: one free loopback port
free_port() {
	$PY "$STACK/stackutil.py" freeports 1
}

# ---------------------------------------------------------------------------
# Helpers for the sender-policy tests (1NN-*.sh): a stack with real SMTP AUTH
# (WEIR_STACK_SASL=1) and a permissive Postfix (WEIR_STACK_POSTFIX_OPEN=1) so
# that weir-milter is the one deciding. Clients: "outside" connects from
# 127.0.0.2, "trusted" from 127.0.0.1 (the tests' trusted_networks).
OUTSIDE_IP=127.0.0.2
TRUSTED_IP=127.0.0.1
LOCAL_DOMAIN=local.weir.test
OTHER_DOMAIN=other.weir.test

# it_start_policy_stack CONF_TEXT [VAR=VALUE...]: write CONF_TEXT (weir.conf
# settings: trusted_networks, local_domains, senders, policy) to a file and
# start a stack with SASL and an open Postfix with it appended to weir.conf
it_start_policy_stack() {
	local conf=$1 f
	shift
	f=$(mktemp /tmp/weir-it-conf.XXXXXX) || it_abort "mktemp failed"
	printf '%s\n' "$conf" >"$f"
	chmod 644 "$f"
	it_start_stack WEIR_STACK_SASL=1 WEIR_STACK_POSTFIX_OPEN=1 WEIR_STACK_CONF_EXTRA="$f" "$@"
	cp "$f" "$D/conf-extra.conf"
	rm -f "$f"
}

# sasl_pass LOGIN: the password of LOGIN from stack.env's SASL_USERS
sasl_pass() {
	local up
	for up in $SASL_USERS; do
		[ "${up%%:*}" = "$1" ] && { echo "${up#*:}"; return 0; }
	done
	return 1
}

# smtp NAME [swaks args...]: one SMTP session with Postfix through swaks;
# the transcript is $D/log/smtp-NAME.log (SW set to it). Options before
# the swaks args, in this order, all optional:
#   -i IP       source address (default $OUTSIDE_IP)
#   -u LOGIN    AUTH PLAIN as LOGIN with its password from SASL_USERS
# Sets QID (queue id when queued). Returns swaks' status (0 = all ok).
SW=
smtp() {
	local name=$1 ip=$OUTSIDE_IP rc
	local -a auth=()
	shift
	if [ "${1:-}" = -i ]; then ip=$2; shift 2; fi
	if [ "${1:-}" = -u ]; then
		auth=(-a PLAIN -au "$2" -ap "$(sasl_pass "$2")")
		shift 2
	fi
	SW=$D/log/smtp-$name.log
	swaks --server "127.0.0.1:$SMTP_PORT" --local-interface "$ip" \
		--helo client.weir.test "${auth[@]}" "$@" >"$SW" 2>&1
	rc=$?
	QID=$(mta_qid "$SW")
	return "$rc"
}

# sw_reply CMD [LOG]: the server's (last) reply line to the SMTP command
# CMD (MAIL, RCPT, DATA = the reply after the message's final dot, AUTH)
# in a swaks transcript, without swaks' prefix
sw_reply() {
	awk -v cmd="$1" '
		/^ *(->|~>|\*\*) / { c = $2; if ($2 ~ /^[A-Z]+$/) last = $2; else last = "MSG"; next }
		/^ *(<-|<~|<\*\*) / {
			line = $0; sub(/^ *(<-|<~|<\*\*) +/, "", line)
			k = last; if (k == "MSG") k = "DATA_END"
			if (k == "AUTH" && line ~ /^334/) next
			r[k] = line
		}
		END {
			want = cmd; if (want == "DATA") want = "DATA_END"
			if (want in r) print r[want]
		}' "${2:-$SW}" | {
		# Sendmail puts the envelope address before a filter's reply
		# text at MAIL and RCPT: "550 5.7.1 <a@b>... text"
		if is_sendmail; then
			sed -E 's/^([245][0-9][0-9][ -]([245]\.[0-9]{1,3}\.[0-9]{1,3} )?)<[^>]*>\.\.\. /\1/'
		else
			cat
		fi
	}
}

# reply_is CMD EXPECTED [LOG]: the reply to CMD starts with EXPECTED
# (fixed string); prints both when not
reply_is() {
	local got
	got=$(sw_reply "$1" "${3:-$SW}")
	case $got in
	"$2"*) return 0 ;;
	esac
	echo "    reply to $1: want '$2...'"
	echo "    got:         '$got'   (transcript ${3:-$SW})"
	return 1
}

# auth_ok [LOG]: the session's AUTH succeeded (235)
auth_ok() {
	grep -qE '^ *<[-~] +235 ' "${1:-$SW}"
}

# log_mark [FILE]: remember how many lines FILE (default the milter log)
# has; log_since prints what was added after the mark
LOG_MARK=0
log_mark() {
	LOG_MARK=$(wc -l <"${1:-$MILTER_LOG}" 2>/dev/null || echo 0)
}
log_since() {
	tail -n +"$((LOG_MARK + 1))" -- "${1:-$MILTER_LOG}" 2>/dev/null
}

# decision_count ERE...: number of milter log lines since log_mark that
# hold a rule= decision and match every ERE
decision_count() {
	local lines
	lines=$(log_since | grep -E ' rule=[a-z_]+ ')
	local e
	for e in "$@"; do
		lines=$(printf '%s\n' "$lines" | grep -E -- "$e")
	done
	printf '%s\n' "$lines" | grep -c .
}

# decision_is RULE ACTION IDENTITY LOGIN [ERE...]: exactly one decision line
# since log_mark has rule=RULE action=ACTION identity=IDENTITY login=LOGIN,
# the keys queue_id= client= reply="..." and matches every ERE
decision_is() {
	local rule=$1 action=$2 ident=$3 login=$4 n
	shift 4
	n=$(decision_count " rule=$rule( |$)" " action=$action( |$)" " identity=$ident( |$)" \
		" login=$login( |$)" ' queue_id=[^ ]+' ' client=[^ ]+' ' reply="[^"]*"' "$@")
	[ "$n" = 1 ] && return 0
	echo "    want 1 milter decision line rule=$rule action=$action identity=$ident login=$login $*, found $n; lines since the mark:"
	log_since | grep -E ' rule=| decision=' | sed 's/^/      /' | tail -n 8
	return 1
}

# no_decision RULE: no decision line for RULE since log_mark
no_decision() {
	local n
	n=$(decision_count " rule=$1( |$)")
	[ "$n" = 0 ] && return 0
	echo "    unexpected milter decision line(s) for rule=$1:"
	log_since | grep -E " rule=$1( |$)" | sed 's/^/      /'
	return 1
}

# msg_decision DECISION [ERE...]: a per-message line since log_mark says
# decision=DECISION and matches every ERE
msg_decision() {
	local d=$1 n
	shift
	n=$(log_since | grep -E " decision=$d( |$)" | {
		l=$(cat)
		for e in "$@"; do l=$(printf '%s\n' "$l" | grep -E -- "$e"); done
		printf '%s\n' "$l"
	} | grep -c .)
	[ "$n" -ge 1 ] && return 0
	echo "    no per-message line decision=$d $* since the mark:"
	log_since | grep -E ' decision=' | sed 's/^/      /' | tail -n 5
	return 1
}

# ere_quote STRING: STRING as an ERE matching it literally
ere_quote() {
	printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'
}

# sink_none_with TOKEN [SECS]: no stored message holds TOKEN, after waiting
# SECS (default 3) for a delivery that should not come
sink_none_with() {
	sleep "${2:-3}"
	[ -z "$(grep -lF -- "$1" "$SINK_DIR"/*.eml 2>/dev/null)" ]
}

# raw_msg FROM_HEADER TOKEN [EXTRA HEADER LINES...]: a whole message (CRLF)
# for swaks --data: the given From (and extra) header lines, a Subject
# holding TOKEN and a body. FROM_HEADER "" means no From header.
raw_msg() {
	local from=$1 tok=$2 h
	shift 2
	{
		[ -n "$from" ] && printf '%s\r\n' "$from"
		for h in "$@"; do printf '%s\r\n' "$h"; done
		printf 'To: <someone@%s>\r\n' "$OTHER_DOMAIN"
		printf 'Subject: weir test %s\r\n' "$tok"
		printf 'Message-ID: <%s@client.weir.test>\r\n' "$tok"
		printf 'Date: %s\r\n' "$(date -R)"
		printf '\r\nbody %s\r\n' "$tok"
	}
}

# reply_matches CMD ERE [LOG]: the reply to CMD matches ERE
reply_matches() {
	local got
	got=$(sw_reply "$1" "${3:-$SW}")
	printf '%s\n' "$got" | grep -qE -- "$2" && return 0
	echo "    reply to $1: want /$2/, got '$got'   (transcript ${3:-$SW})"
	return 1
}

# wait_sink_null TOKEN [SECS]: a stored message with the null sender holds
# TOKEN (sink_files_with leaves those out: it skips bounces)
wait_sink_null() {
	wait_for "${2:-30}" bash -c "grep -lF -- '$1' '$SINK_DIR'/*.eml 2>/dev/null | xargs -r grep -l '^X-Sink-Mail-From: <>' | grep -q ."
}

# reply_is_ci CMD EXPECTED [LOG]: like reply_is, letter case ignored (for
# replies that quote an address the milter may have normalized)
reply_is_ci() {
	local got
	got=$(sw_reply "$1" "${3:-$SW}")
	case ${got,,} in
	"${2,,}"*) return 0 ;;
	esac
	echo "    reply to $1: want '$2...' (any case)"
	echo "    got:         '$got'   (transcript ${3:-$SW})"
	return 1
}

# it_restart_policy_stack CONF_TEXT [VAR=VALUE...]: stop the running stack
# and start a fresh one with another configuration. The old directory is
# removed when every check so far passed, else kept (and its path printed).
it_restart_policy_stack() {
	local old=$D
	"$STACK/stop" "$old" >/dev/null 2>&1
	it_start_policy_stack "$@"
	if [ "$IT_FAILS" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ]; then
		rm -rf -- "$old"
	else
		it_say "previous stack directory kept: $old"
	fi
}

# ---------------------------------------------------------------------------
# Helpers for the DKIM tests (2NN-*.sh, issue 4). Keys are made at test time
# in IT_KEYDIR (mode 0600, owned by weir, which weir-milter runs as) and
# their TXT records collected in $IT_KEYDIR/zone.extra, to be passed to the
# stack as WEIR_STACK_ZONE_EXTRA: keys are made BEFORE the stack starts
# (nsd has no remote control here; records are never added to a running
# stack). The independent verifiers (tests/dkim/verify.py: dkimpy,
# tests/dkim/verify.pl: Mail::DKIM) fetch the public keys from the stack's
# nsd on 127.0.0.1:$DNS_PORT.
DKIM_HOME=$REPO/tests/dkim
IT_KEYDIR=
# DKIM_KEYGEN: how keys are made: auto (weirctl keygen when this weirctl
# has it, else openssl), weirctl, openssl
DKIM_KEYGEN=${DKIM_KEYGEN:-auto}

# dkim_need_tools: skip unless the verifiers and key tools are installed
dkim_need_tools() {
	command -v swaks >/dev/null || it_skip "swaks not installed"
	command -v openssl >/dev/null || it_skip "openssl not installed"
	command -v dig >/dev/null || it_skip "dig not installed (dnsutils)"
	$PY -c 'import dkim, dns.message, nacl' 2>/dev/null ||
		it_skip "dkimpy for $PY missing: install python3-dkim python3-dnspython python3-nacl"
	perl -MMail::DKIM::Verifier -MNet::DNS::Resolver -e 1 2>/dev/null ||
		it_skip "Mail::DKIM missing: install libmail-dkim-perl libnet-dns-perl"
}

# it_dkim_cleanup: the EXIT trap once IT_KEYDIR exists: removes IT_KEYDIR
# (kept with the stack directory when the test failed), then it_cleanup
# with the test's exit status
it_dkim_cleanup() {
	local rc=$?
	if [ -n "$IT_KEYDIR" ] && [ -d "$IT_KEYDIR" ]; then
		if [ "$rc" = 0 ] && [ "${WEIR_IT_KEEP:-0}" != 1 ] || [ "$rc" = 77 ]; then
			rm -rf -- "$IT_KEYDIR"
		else
			it_say "key directory kept: $IT_KEYDIR"
		fi
	fi
	(exit "$rc")
	it_cleanup
}

# dkim_keydir: make IT_KEYDIR (once)
dkim_keydir() {
	[ -n "$IT_KEYDIR" ] && return 0
	IT_KEYDIR=$(mktemp -d /tmp/weir-it-keys.XXXXXX) || it_abort "mktemp failed"
	chmod 755 "$IT_KEYDIR"
	: >"$IT_KEYDIR/zone.extra"
	chmod 644 "$IT_KEYDIR/zone.extra"
	trap it_dkim_cleanup EXIT
}

# weirctl_has_keygen: this weirctl knows the keygen command
weirctl_has_keygen() {
	local usage
	[ -x "$WEIRCTL" ] || return 1
	usage=$("$WEIRCTL" 2>&1) # the usage, with exit status 1
	grep -qE '^ +keygen( |$)' <<<"$usage"
}

# dkim_txt_record NAME K P: a zone line for a DKIM key, p= split in strings
# of at most 250 bytes
dkim_txt_record() {
	local name=$1 k=$2 p=$3 line
	line="$name IN TXT ( \"v=DKIM1; k=$k; p=\""
	while [ -n "$p" ]; do
		line="$line \"${p:0:250}\""
		p=${p:250}
	done
	echo "$line )"
}

# dkim_make_key DOMAIN SELECTOR rsa|ed25519 [BITS]: make a key pair:
# $IT_KEYDIR/DOMAIN.SELECTOR.pem (0600, owner weir) and its TXT record,
# appended to $IT_KEYDIR/zone.extra and kept in $IT_KEYDIR/DOMAIN.SELECTOR.txt.
# Run it in the test's shell, not in $(...): the first call makes IT_KEYDIR. With DKIM_KEYGEN=auto|weirctl the key comes
# from weirctl keygen, else from openssl (fallback while weirctl has none).
# DKIM_PUBLISH=0 makes the key but leaves its record out of zone.extra.
dkim_make_key() {
	local dom=$1 sel=$2 alg=$3 bits=${4:-2048} f txt p how=$DKIM_KEYGEN
	dkim_keydir
	f=$IT_KEYDIR/$dom.$sel.pem
	txt=$IT_KEYDIR/$dom.$sel.txt
	rm -f -- "$f" "$txt"
	if [ "$how" = auto ]; then
		if weirctl_has_keygen; then how=weirctl; else how=openssl; fi
	fi
	if [ "$how" = weirctl ]; then
		if [ "$alg" = rsa ]; then
			"$WEIRCTL" keygen --domain "$dom" --selector "$sel" --algorithm rsa --bits "$bits" \
				--output "$f" >"$txt" 2>"$txt.err"
		else
			"$WEIRCTL" keygen --domain "$dom" --selector "$sel" --algorithm "$alg" \
				--output "$f" >"$txt" 2>"$txt.err"
		fi || {
			echo "weirctl keygen failed: $(cat "$txt.err")" >&2
			return 1
		}
	else
		(
			umask 077
			if [ "$alg" = rsa ]; then
				openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" -out "$f" 2>"$txt.err"
			else
				openssl genpkey -algorithm ed25519 -out "$f" 2>"$txt.err"
			fi
		) || { echo "openssl genpkey failed: $(cat "$txt.err")" >&2; return 1; }
		if [ "$alg" = rsa ]; then
			p=$(openssl pkey -in "$f" -pubout -outform DER | base64 -w0)
		else
			p=$(openssl pkey -in "$f" -pubout -outform DER | tail -c 32 | base64 -w0)
		fi
		dkim_txt_record "$sel._domainkey.$dom." "$alg" "$p" >"$txt"
	fi
	chmod 600 "$f" && chown weir "$f" || return 1
	if [ "${DKIM_PUBLISH:-1}" = 1 ]; then
		cat "$txt" >>"$IT_KEYDIR/zone.extra"
		echo >>"$IT_KEYDIR/zone.extra"
	fi
}

# dkim_keygen_how: which tool dkim_make_key uses now (weirctl or openssl)
dkim_keygen_how() {
	if [ "$DKIM_KEYGEN" = auto ]; then
		if weirctl_has_keygen; then echo weirctl; else echo openssl; fi
	else
		echo "$DKIM_KEYGEN"
	fi
}

# dns_txt NAME: the TXT strings of NAME from the stack's nsd, joined
dns_txt() {
	dig +short +norecurse -p "$DNS_PORT" @127.0.0.1 TXT "$1" 2>/dev/null | sed 's/" "//g; s/^"//; s/"$//'
}

# verify_py FILE: tests/dkim/verify.py (dkimpy) against the stack's DNS;
# its lines are printed indented
verify_py() {
	local out rc
	out=$($PY "$DKIM_HOME/verify.py" --dns-port "$DNS_PORT" "$1" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/    verify.py: /'
	return "$rc"
}

# verify_pl FILE [--allow-unsupported]: tests/dkim/verify.pl (Mail::DKIM)
verify_pl() {
	local out rc f=$1
	shift
	out=$(perl "$DKIM_HOME/verify.pl" --dns-port "$DNS_PORT" "$@" "$f" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/    verify.pl: /'
	return "$rc"
}

# verify_py_fails / verify_pl_fails FILE [args]: the verifier says not all
# pass (exit 1), and no error of its own (exit 2)
verify_py_fails() {
	verify_py "$@"
	[ $? = 1 ]
}
verify_pl_fails() {
	verify_pl "$@"
	[ $? = 1 ]
}

# mail_dkim_supports ALG: this Mail::DKIM verifies ALG (Debian 12's
# 1.20230212 has no ed25519-sha256)
mail_dkim_supports() {
	perl "$DKIM_HOME/verify.pl" --supports "$1" 2>/dev/null
}

# dkim_sigs FILE: tests/dkim/sigs.py lines (one per DKIM-Signature)
dkim_sigs() {
	$PY "$DKIM_HOME/sigs.py" "$1" 2>&1
}

# dkim_sigs_are FILE SPEC...: FILE has exactly one DKIM-Signature per SPEC,
# in that order (top first); SPEC is "d=D s=S a=A c=C" with any more
# sigs.py fields (x=-, xt=7200, ...). Every signature
# also has no l=, a t=, bh= and b=, and h= holds From twice (oversigned).
dkim_sigs_are() {
	local f=$1 got n i=0 line spec kv bad=0
	shift
	got=$(dkim_sigs "$f")
	n=$(printf '%s\n' "$got" | grep -c '^sig ')
	if [ "$n" != $# ]; then
		echo "    want $# DKIM-Signature header(s), found $n in $f:"
		printf '%s\n' "$got" | sed 's/^/      /'
		return 1
	fi
	for spec in "$@"; do
		line=$(printf '%s\n' "$got" | sed -n "$((i + 1))p")
		for kv in $spec l=- t=yes bh=yes b=yes hfrom=2; do
			case " $line " in
			*" $kv "*) ;;
			*) echo "    signature $i: want $kv, got: $line"; bad=1 ;;
			esac
		done
		i=$((i + 1))
	done
	return "$bad"
}

# dkim_no_sig FILE: FILE has no DKIM-Signature header
dkim_no_sig() {
	if grep -qi '^DKIM-Signature:' "$1"; then
		echo "    unexpected DKIM-Signature in $1:"
		dkim_sigs "$1" | sed 's/^/      /'
		return 1
	fi
}

# sink_file TOKEN: the first stored message holding TOKEN
sink_file() {
	sink_files_with "$1" | head -n 1
}

# dkim_tamper FILE subject|body|from OUT: a copy of FILE with one change:
# a letter added to the Subject value, one byte of the body changed, or
# the From header's address changed
dkim_tamper() {
	$PY - "$1" "$2" "$3" <<'PYEOF'
import re, sys
raw = open(sys.argv[1], "rb").read()
head, sep, body = raw.partition(b"\r\n\r\n")
if sys.argv[2] == "subject":
    head, n = re.subn(rb"(?mi)^(Subject:[^\r\n]*)", rb"\1X", head, count=1)
    assert n == 1, "no Subject header"
elif sys.argv[2] == "from":
    head, n = re.subn(rb"(?mi)^(From:[^\r\n]*?)@", rb"\1x@", head, count=1)
    assert n == 1, "no From header"
else:
    m = re.search(rb"[A-Za-z]", body)
    assert m, "no letter in the body"
    i = m.start()
    c = body[i:i + 1]
    body = body[:i] + (b"Q" if c != b"Q" else b"R") + body[i + 1:]
open(sys.argv[3], "wb").write(head + sep + body)
PYEOF
}

# dkim_lines_since ERE: milter log lines since log_mark that hold "dkim"
# and match ERE
dkim_lines_since() {
	log_since | grep -E 'dkim' | grep -E -- "$1"
}

# dkim_log_has ERE: some milter line since log_mark holds ERE; else the
# dkim lines since the mark are printed
dkim_log_has() {
	if log_since | grep -qE -- "$1"; then
		return 0
	fi
	echo "    no milter log line since the mark matches /$1/; dkim lines since the mark:"
	log_since | grep -iE 'dkim' | sed 's/^/      /' | tail -n 6
	return 1
}

# dkim_log_lacks ERE: no milter line since log_mark holds ERE
dkim_log_lacks() {
	if log_since | grep -qE -- "$1"; then
		echo "    unexpected milter log line(s) matching /$1/:"
		log_since | grep -E -- "$1" | sed 's/^/      /' | tail -n 4
		return 1
	fi
}

# ar_headers FILE: the Authentication-Results headers of FILE, one per
# line (unfolded, CR removed)
ar_headers() {
	$PY - "$1" <<'PYEOF'
import email.parser, email.policy, re, sys
raw = open(sys.argv[1], "rb").read()
lines = raw.split(b"\n")
while lines and lines[0].startswith(b"X-Sink-"):
    lines.pop(0)
msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(b"\n".join(lines))
for v in msg.get_all("Authentication-Results") or []:
    print(re.sub(r"\s+", " ", str(v)).strip())
PYEOF
}

# log_has_since ERE [FILE]: a line added to FILE (default the milter log)
# after log_mark matches ERE
log_has_since() {
	log_since "${2:-$MILTER_LOG}" | grep -qE -- "$1"
}

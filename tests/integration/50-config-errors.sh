#!/bin/bash
# 50-config-errors: a weir.conf with several errors makes `weir-milter -n`,
# `weir-agent -n` and `weirctl check` exit 1 and print every error as
# FILE:LINE: message, with the right line numbers (and no others); a
# syntax error is reported with its line; a good file exits 0.
. "$(dirname "$0")/lib.sh"
it_begin "configuration errors are reported as FILE:LINE: message"
it_need_binaries milter agent weirctl
D=$(mktemp -d /tmp/weir-it.XXXXXX)
chmod 755 "$D"

BAD=$D/bad.conf
cat >"$BAD" <<'CONF'
# weir.conf with one error on each of lines 3, 4, 6, 12, 13 and 14
user = "weir";
no_such_setting = 1;
log_level = 42;
milter = {
  socket = "tcp:abc";
  pid_file = "/tmp/weir-test-50.pid";
};
agent = {
  lmtp_listen = ("unix:/tmp/weir-test-50.lmtp");
  smarthost = "sink.weir.test:2525";
  max_clients = 0;
  connect_timeout = "soon";
  smtp_listen = ("inet:99999@127.0.0.1");
};
CONF
BAD_LINES="3 4 6 12 13 14"
declare -A WHAT=([3]="unknown setting" [4]="wrong type" [6]="bad socket syntax"
	[12]="out of range" [13]="bad duration" [14]="bad port in a socket list")

SYN=$D/syntax.conf
printf 'user = "weir";\nhostname = "relay.weir.test";\nlog_level = "debug"\nmilter = { socket = ; };\n' >"$SYN"

GOOD=$D/good.conf
cat >"$GOOD" <<CONF
user = "weir";
hostname = "relay.weir.test";
resolver = "127.0.0.1@53";
log_level = "debug";
milter = { socket = "inet:10025@127.0.0.1"; pid_file = "$D/milter.pid"; };
agent = {
  lmtp_listen = ("unix:$D/agent.lmtp", "inet:10024@127.0.0.1");
  smtp_listen = ("inet:10026@127.0.0.1");
  pid_file = "$D/agent.pid";
  socket_mode = "0666";
  smarthost = "sink.weir.test:2525";
  connect_timeout = "10s";
};
CONF

# run_prog NAME OUT CMD...: run with a time limit, both streams to OUT; echo status
run_prog() {
	local out=$1
	shift
	timeout 20 "$@" >"$out" 2>&1 </dev/null
	echo $?
}

# lines_reported FILE OUT: the sorted distinct line numbers "FILE:N:" in OUT
lines_reported() {
	grep -oE "^$(printf '%s' "$1" | sed 's/[.[\*^$/]/\\&/g'):[0-9]+:" "$2" |
		sed -E 's/.*:([0-9]+):$/\1/' | sort -n -u | tr '\n' ' ' | sed 's/ $//'
}

for prog in milter agent weirctl; do
	case $prog in
	milter) cmd=("$WEIR_MILTER" -n -c) ;;
	agent) cmd=("$WEIR_AGENT" -n -c) ;;
	weirctl) cmd=("$WEIRCTL" -c) ;;
	esac
	post=()
	[ $prog = weirctl ] && post=(check)

	out=$D/$prog-bad.out
	rc=$(run_prog "$out" "${cmd[@]}" "$BAD" "${post[@]}")
	check "$prog: bad file exits 1 (got $rc)" test "$rc" = 1
	for n in $BAD_LINES; do
		check "$prog: reports $BAD:$n: (${WHAT[$n]})" grep -qE "^$BAD:$n: .+" "$out"
	done
	got=$(lines_reported "$BAD" "$out")
	check "$prog: reports exactly lines [$BAD_LINES] (got [$got])" test "$got" = "$BAD_LINES"
	if [ "$IT_FAILS" -ne 0 ]; then
		it_say "$prog output:"
		sed "s/^/    /" "$out"
	fi

	out=$D/$prog-syntax.out
	rc=$(run_prog "$out" "${cmd[@]}" "$SYN" "${post[@]}")
	check "$prog: syntax error exits 1 (got $rc)" test "$rc" = 1
	check "$prog: syntax error reported at $SYN:4: (the line of the bad token)" \
		bash -c "grep -qE '^$SYN:(3|4): .*syntax' '$out'"
	check "$prog: nothing is started on a check (-n): no pid file" \
		bash -c "! ls '$D'/*.pid 2>/dev/null | grep -q ."

	out=$D/$prog-good.out
	rc=$(run_prog "$out" "${cmd[@]}" "$GOOD" "${post[@]}")
	check "$prog: good file exits 0 (got $rc)" test "$rc" = 0
	check "$prog: good file prints no FILE:LINE error" bash -c "! grep -qE '^$GOOD:[0-9]+:' '$out'"
	[ "$rc" = 0 ] || { it_say "$prog output on the good file:"; sed "s/^/    /" "$out"; }
done
it_end

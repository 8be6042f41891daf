#!/bin/bash
# miltertest.sh - weir-milter over the milter protocol (miltertest drives
# it as an MTA would): the per-message log line, unix and inet sockets,
# socket mode and owner, privilege drop, pid file, SIGUSR1 reload (good and
# broken file), a second instance refused, and clean exit on SIGTERM.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${WEIR_BUILD:-$top}
milter=$build/milter/weir-milter
scripts=$top/tests/milter/scripts
command -v miltertest >/dev/null || { echo "miltertest not installed"; exit 77; }
[ -x "$milter" ] || { echo "no $milter: build first"; exit 1; }
id weir >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin weir

dir=$(mktemp -d /tmp/weir-miltertest.XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/run" && chown weir: "$dir/run"
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && sleep 0.5
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "---- weir-milter log"; tail -n 30 "$dir/milter.log"
	exit 1
}

write_conf() { # write_conf SOCKET LOGLEVEL [EXTRA]
	cat >"$dir/weir.conf" <<CONF
user = "weir";
log_level = "$2";
# no DNS here: SPF is tested through the real stack (tests/integration)
resolver = "127.0.0.1@9";
spf = { verify = false; preflight = "off"; };
local_domains = ("example.net", "example.org");
senders = { map = ({ login = "alice"; addresses = ("alice@example.com"); }); };
milter = {
  socket = "$1";
  pid_file = "$dir/run/weir-milter.pid";
  socket_mode = "0660";
};
${3:-}
CONF
}

start() {
	"$milter" -f -c "$dir/weir.conf" 2>>"$dir/milter.log" &
	pid=$!
	for _ in $(seq 50); do
		[ -s "$dir/run/weir-milter.pid" ] && return 0
		kill -0 "$pid" 2>/dev/null || fail "weir-milter exited at start"
		sleep 0.1
	done
	fail "no pid file after 5s"
}

stop() {
	kill -TERM "$pid"
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid"; local rc=$?; pid=; return $rc; }
		sleep 0.1
	done
	fail "weir-milter still running 20s after SIGTERM"
}

run_lua() { # run_lua SOCKET QUEUEID
	MILTER_SOCKET=$1 QUEUE_ID=$2 miltertest -s "$scripts/transaction.lua" >"$dir/mt.out" 2>&1 ||
		{ cat "$dir/mt.out"; fail "miltertest failed on $1"; }
}

# 1. unix socket
sock=$dir/run/milter.sock
write_conf "unix:$sock" info
start
[ "$(cat "$dir/run/weir-milter.pid")" = "$pid" ] || fail "pid file does not hold $pid"
[ "$(ps -o user= -p "$pid" | tr -d ' ')" = weir ] || fail "not running as weir: $(ps -o user= -p "$pid")"
[ "$(stat -c '%a %U' "$sock")" = "660 weir" ] || fail "socket mode/owner: $(stat -c '%a %U' "$sock")"
run_lua "unix:$sock" UNIXQ1
grep -q 'queue_id=UNIXQ1 conn=[0-9]* client=client.example\[192.0.2.7\] identity=authenticated login=alice helo=client.example auth=alice from=<alice@example.com> rcpts=<bob@example.net>,<carol@example.org> nrcpt=2 decision=accept' "$dir/milter.log" ||
	fail "no per-message line for UNIXQ1"
grep -q 'queue_id=UNIXQ1B .*from=<> .*decision=none reason="aborted before end of message"' "$dir/milter.log" ||
	fail "no line for the aborted message"
echo "ok: unix socket, per-message lines, user weir, socket 0660 weir"

# 2. a second instance is refused while the first runs
"$milter" -f -c "$dir/weir.conf" 2>"$dir/second.log" && fail "a second instance started"
grep -q "already running" "$dir/second.log" || fail "second instance: $(cat "$dir/second.log")"
echo "ok: second instance refused"

# 3. reload: a broken file is refused, the old configuration stays
write_conf "unix:$sock" info "bogus_setting = 1;"
kill -USR1 "$pid"
sleep 1
kill -0 "$pid" || fail "died on reload of a broken file"
grep -q "weir.conf:13: unknown setting 'bogus_setting'" "$dir/milter.log" || fail "reload error not logged with file:line"
grep -q "reload refused" "$dir/milter.log" || fail "no 'reload refused'"
run_lua "unix:$sock" AFTERBAD
grep -q "queue_id=AFTERBAD " "$dir/milter.log" || fail "no mail handled after the refused reload"
grep -q "debug: conn=" "$dir/milter.log" && fail "debug lines before the good reload"
echo "ok: broken reload refused, still serving"

# 4. reload: a good file is taken (log_level debug shows connect lines)
write_conf "unix:$sock" debug
kill -USR1 "$pid"
sleep 1
grep -q "reload: configuration .* loaded" "$dir/milter.log" || fail "good reload not logged"
run_lua "unix:$sock" AFTERGOOD
grep -q "debug: conn=[0-9]* connect client=client.example\[192.0.2.7\]" "$dir/milter.log" ||
	fail "new log_level not in effect after reload"
echo "ok: good reload taken"

# 5. clean stop
stop || fail "exit status $? after SIGTERM"
[ -e "$dir/run/weir-milter.pid" ] && fail "pid file left behind"
grep -q "stopping" "$dir/milter.log" || fail "no 'stopping' line"
echo "ok: SIGTERM: clean exit, pid file removed"

# 6. inet socket on a free loopback port
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
write_conf "inet:$port@127.0.0.1" info
start
run_lua "inet:$port@127.0.0.1" INETQ1
grep -q "queue_id=INETQ1 " "$dir/milter.log" || fail "no line for INETQ1 over inet"
stop || fail "exit status after SIGTERM (inet)"
echo "ok: inet socket"

# 7. -n reports every error with file:line and exits 1
cat >"$dir/bad.conf" <<'CONF'
milter = {
  socket = "tcp:99";
  timeout = "forever";
};
log_levle = "info";
CONF
"$milter" -n -c "$dir/bad.conf" 2>"$dir/n.out" && fail "-n accepted a bad file"
grep -q "bad.conf:2: milter.socket" "$dir/n.out" || fail "-n: $(cat "$dir/n.out")"
grep -q "bad.conf:3: milter.timeout" "$dir/n.out" || fail "-n: $(cat "$dir/n.out")"
grep -q "bad.conf:5: unknown setting 'log_levle' (did you mean 'log_level'?)" "$dir/n.out" || fail "-n: $(cat "$dir/n.out")"
"$milter" -n -c "$dir/weir.conf" >/dev/null || fail "-n refused a good file"
echo "ok: -n"
echo "all ok"

# tests/stack/common.sh - functions shared by the stack scripts (sourced).
#
# Every process the stack starts is recorded in DIR/run/stack-NAME.pid with
# the PID the shell got from `(exec cmd) &`, i.e. the server's own PID.
# Before signalling a recorded PID we check that /proc/PID/cmdline still
# mentions DIR, so a recycled PID of someone else's process is never hit.

STACK_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STACK_PY=/usr/bin/python3
STACKUTIL="$STACK_PY $STACK_HOME/stackutil.py"

stack_abs_dir() { # DIR -> absolute, normalized path (need not exist)
	realpath -m -- "$1"
}

stack_tail() { # FILE [N]: print the tail of a log, framed
	local f=$1 n=${2:-30}
	if [ -s "$f" ]; then
		echo "----- last $n lines of $f -----"
		tail -n "$n" -- "$f"
		echo "----- end of $f -----"
	else
		echo "----- $f: empty or missing -----"
	fi
}

# stack_owned PID DIR: PID is alive and its command line mentions DIR
stack_owned() {
	local pid=$1 dir=$2
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"
}

stack_alive() { # PID: process exists and is not a zombie
	local pid=$1 st
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

stack_record_pid() { # DIR NAME PID
	echo "$3" >"$1/run/stack-$2.pid"
}

stack_recorded_pid() { # DIR NAME -> PID or empty
	cat "$1/run/stack-$2.pid" 2>/dev/null || true
}

# stack_stop_pid DIR NAME [TIMEOUT]: SIGTERM the recorded process, wait up
# to TIMEOUT seconds (default 15), then SIGKILL. Never fails.
stack_stop_pid() {
	local dir=$1 name=$2 timeout=${3:-15} pid i
	pid=$(stack_recorded_pid "$dir" "$name")
	rm -f "$dir/run/stack-$name.pid"
	[ -n "$pid" ] || return 0
	if ! stack_owned "$pid" "$dir"; then
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < timeout * 10; i++)); do
		stack_alive "$pid" || return 0
		sleep 0.1
	done
	echo "stack: $name (pid $pid) still running after ${timeout}s, sending SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		stack_alive "$pid" || return 0
		sleep 0.1
	done
	return 0
}

# stack_env_set DIR KEY VALUE: replace (or add) KEY=VALUE in DIR/stack.env
stack_env_set() {
	local f=$1/stack.env key=$2 val=$3
	[ -f "$f" ] || return 0
	if grep -q "^$key=" "$f"; then
		sed -i "s|^$key=.*|$key=$(printf %q "$val" | sed 's/[|&]/\\&/g')|" "$f"
	else
		printf '%s=%q\n' "$key" "$val" >>"$f"
	fi
}

# stack_start_sink DIR NAME PORT SPOOL: start a sink in the background,
# record its PID, wait until it answers 220. Returns 1 (with log tail) if
# it does not come up within 15 s. Per-sink files in DIR/run, kept for
# sink-restart: NAME.addr (listening address, default 127.0.0.1),
# NAME.args (more sink.py arguments, one per line: --tls, --auth, ...),
# NAME.control (the connection-level fault file, see sink.py and
# tests/stack/sink-fault; created empty).
stack_start_sink() {
	local dir=$1 name=$2 port=$3 spool=$4 pid i log addr=127.0.0.1 tls=
	local -a extra=()
	log=$dir/log/$name.log
	mkdir -p -- "$spool"
	[ -s "$dir/run/$name.addr" ] && addr=$(cat "$dir/run/$name.addr")
	[ -f "$dir/run/$name.args" ] && mapfile -t extra <"$dir/run/$name.args"
	[ -f "$dir/run/$name.control" ] || : >"$dir/run/$name.control"
	case " ${extra[*]} " in *" --tls implicit "*) tls=tls ;; esac
	(exec "$STACK_PY" "$STACK_HOME/sink.py" --host "$addr" --port "$port" \
		--dir "$spool" --pidfile "$dir/run/$name.pid" --control "$dir/run/$name.control" \
		"${extra[@]}" </dev/null >>"$log" 2>&1) &
	pid=$!
	stack_record_pid "$dir" "$name" "$pid"
	for ((i = 0; i < 150; i++)); do
		if ! stack_alive "$pid"; then
			echo "stack: $name (sink on $addr:$port) exited during start" >&2
			stack_tail "$log" >&2
			return 1
		fi
		if [ -s "$dir/run/$name.control" ]; then # a fault is on: no 220 to wait for
			$STACK_PY -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' \
				"$addr" "$port" 2>/dev/null && return 0
			sleep 0.1
			continue
		fi
		$STACKUTIL waitbanner "$port" 0.5 "$addr" $tls 2>/dev/null && return 0
	done
	echo "stack: $name (sink on $addr:$port) does not answer after 15s" >&2
	stack_tail "$log" >&2
	return 1
}

# stack_build_zone DIR: DIR/dns/weir.test.zone = base.zone (with the serial
# from DIR/dns/serial) + extra.zone. Written to a new file and renamed.
stack_build_zone() {
	local dir=$1 serial
	serial=$(cat "$dir/dns/serial")
	{
		sed "s/SERIAL/$serial/" "$dir/dns/base.zone"
		echo "; extra lines (WEIR_STACK_ZONE_EXTRA, tests/stack/dns-add)"
		cat "$dir/dns/extra.zone"
		echo
	} >"$dir/dns/weir.test.zone.tmp" && mv "$dir/dns/weir.test.zone.tmp" "$dir/dns/weir.test.zone"
}

# stack_start_nsd DIR PORT WAIT: start nsd in the foreground (-d), record
# its PID, wait until sink.weir.test resolves.
stack_start_nsd() {
	local dir=$1 port=$2 wait=$3 pid i
	(exec nsd -d -c "$dir/dns/nsd.conf" </dev/null >>"$dir/log/nsd.log" 2>&1) &
	pid=$!
	stack_record_pid "$dir" nsd "$pid"
	for ((i = 0; i < wait * 4; i++)); do
		if ! stack_alive "$pid"; then
			echo "stack: nsd exited during start" >&2
			stack_tail "$dir/log/nsd.log" >&2
			return 1
		fi
		$STACKUTIL dns "$port" sink.weir.test A >/dev/null 2>&1 && return 0
		sleep 0.25
	done
	echo "stack: nsd on 127.0.0.1@$port does not answer for sink.weir.test after ${wait}s" >&2
	stack_tail "$dir/log/nsd.log" >&2
	return 1
}

# stack_port_free6 PORT: nothing is bound to TCP PORT on [::1]
# (WEIR_STACK_IPV6; stackutil.py freeports checks 127.0.0.1 only)
stack_port_free6() {
	"$STACK_PY" - "$1" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
try:
    s.bind(("::1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PYEOF
}

# stack_wait_banner6 PORT SECS: wait until [::1]:PORT sends an SMTP
# banner (220) (WEIR_STACK_IPV6)
stack_wait_banner6() {
	"$STACK_PY" - "$1" "$2" <<'PYEOF'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        with socket.create_connection(("::1", port), timeout=2) as s:
            s.settimeout(2)
            if s.recv(512).startswith(b"220"):
                s.sendall(b"QUIT\r\n")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.25)
sys.exit(1)
PYEOF
}

# stack_make_certs DIR: a test CA and certificates in DIR/tls (openssl,
# ECDSA P-256, valid for two days from now):
#   ca.pem/ca.key        the test CA ("weir test CA <time>")
#   sink.pem/sink.key    signed by it, CN sink.weir.test, SAN sink,
#                        sink2, sink3, smtps.weir.test and
#                        *.alias.weir.test (serverAuth)
#   rogue.pem/rogue.key  self-signed, CN and SAN sink.weir.test: a
#                        certificate from no known CA
# Certificates 0644 (user weir reads ca.pem), keys 0600 (root's sinks).
stack_make_certs() {
	local t=$1/tls log=$1/log/openssl.log
	mkdir -p -- "$t" && chmod 755 "$t" || return 1
	: >"$log"
	(
		set -e
		cd "$t"
		umask 077
		ext() { printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$1"; }
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout ca.key -out ca.pem -days 2 -subj "/O=weir tests/CN=weir test CA $(date +%s)" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout sink.key -out sink.csr -subj /CN=sink.weir.test
		ext DNS:sink.weir.test,DNS:sink2.weir.test,DNS:sink3.weir.test,DNS:smtps.weir.test,DNS:*.alias.weir.test >sink.ext
		openssl x509 -req -in sink.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
			-days 2 -out sink.pem -extfile sink.ext
		ext DNS:sink.weir.test >rogue.ext
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout rogue.key -out rogue.pem -days 2 -subj /CN=sink.weir.test -addext "subjectAltName=DNS:sink.weir.test"
		rm -f sink.csr sink.ext rogue.ext
		chmod 644 ca.pem sink.pem rogue.pem
		openssl verify -CAfile ca.pem sink.pem
	) >>"$log" 2>&1 || { cat "$log" >&2; return 1; }
}

# stack_subst FILE NAME=VALUE...: FILE with every @NAME@ replaced by VALUE
stack_subst() {
	"$STACK_PY" - "$@" <<'PYEOF'
import sys
text = open(sys.argv[1]).read()
for kv in sys.argv[2:]:
    k, _, v = kv.partition("=")
    text = text.replace("@%s@" % k, v)
sys.stdout.write(text)
PYEOF
}

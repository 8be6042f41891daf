#!/bin/bash
# test-upstream-tls - weir-agent's upstream sessions (delivery-agent/upstream.c)
# against real TLS + AUTH smart hosts (aiosmtpd, tls-smarthost.py).
#
# Makes a throwaway CA and two server certificates with openssl (one for
# localhost, one for wrong.example), starts six servers on free loopback
# ports (STARTTLS+AUTH, implicit TLS+AUTH, plain, AUTH without TLS,
# broken STARTTLS, STARTTLS with the wrong name), then runs
# tests/delivery-agent/test-upstream, which opens sessions through
# upstream_new_host and checks the outcomes.
# Skipped (77) without python3-aiosmtpd or openssl.
set -u
srcdir=${srcdir:-.}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
driver=${TEST_UPSTREAM:-$top/tests/delivery-agent/test-upstream}
py=/usr/bin/python3
server=$srcdir/tests/delivery-agent/tls-smarthost.py
[ -f "$server" ] || server=$here/tls-smarthost.py

if ! $py -c 'import aiosmtpd' 2>/dev/null || ! command -v openssl >/dev/null; then
	echo "SKIP: needs python3-aiosmtpd and openssl"
	exit 77
fi
[ -x "$driver" ] || { echo "missing $driver (make check builds it)"; exit 1; }

work=$(mktemp -d /tmp/test-upstream-tls.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# a test CA and server certificates (never committed: made at each run)
mkcert() { # NAME SAN
	openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$work/$1.key" \
		-out "$work/$1.csr" 2>/dev/null &&
	printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$2" \
		>"$work/$1.ext" &&
	openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
		-CAcreateserial -days 2 -sha256 -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=weir test CA" -days 2 \
	-keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null || { echo "openssl failed"; exit 1; }
mkcert localhost "DNS:localhost" || { echo "openssl failed"; exit 1; }
mkcert wrong.example "DNS:wrong.example" || { echo "openssl failed"; exit 1; }

free_port() {
	$py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

export TLS_SMARTHOST_LOG=1 # the servers log each command: QUIT is checked below

# start MODE CERT: a server on a free port; its port in $port
start() {
	local mode=$1 cert=$2 out=$work/$1-$2.out
	port=$(free_port)
	mkdir -p "$work/msg-$mode-$cert"
	(exec $py "$server" "$mode" "$port" --cert "$work/$cert.pem" --key "$work/$cert.key" \
		--user tim@example.com --password 's3cret-Pw-4711' --token 'ya29.T0ken-0815' \
		--msgdir "$work/msg-$mode-$cert" >"$out" 2>&1) &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q ready "$out" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "server $mode did not start:"; cat "$out"
	exit 1
}

start starttls localhost; export PORT_STARTTLS=$port
start implicit localhost; export PORT_IMPLICIT=$port
start plain localhost; export PORT_PLAIN=$port
start plainauth localhost; export PORT_PLAINAUTH=$port
start brokentls localhost; export PORT_BROKEN=$port
start starttls wrong.example; export PORT_WRONGNAME=$port
export PORT_CLOSED=$(free_port)

printf 'good tim@example.com s3cret-Pw-4711\nbad tim@example.com wrong-Pw-0000\n' >"$work/creds"
chmod 600 "$work/creds"
printf 'ya29.T0ken-0815\n' >"$work/token"
printf 'ya29.Wr0ng-0000\n' >"$work/badtoken"
chmod 600 "$work/token" "$work/badtoken"
export CA_FILE=$work/ca.pem CREDS=$work/creds TOKEN=$work/token BADTOKEN=$work/badtoken
export SECRETS="s3cret-Pw-4711 wrong-Pw-0000 ya29.T0ken-0815 ya29.Wr0ng-0000"

"$driver"
rc=$?
n=$(ls "$work"/msg-*/ 2>/dev/null | grep -c '\.eml$')
echo "messages stored by the smart hosts: $n"
if [ $rc -eq 0 ] && [ "$n" -lt 5 ]; then
	echo "FAIL: expected at least 5 messages at the smart hosts"
	rc=1
fi
# a session freed while idle says QUIT, through TLS too
quits=$(cat "$work/starttls-localhost.out" "$work/implicit-localhost.out" | grep -c ">> b'QUIT'")
echo "QUIT received over TLS: $quits"
if [ $rc -eq 0 ] && [ "$quits" -lt 5 ]; then
	echo "FAIL: expected QUIT at the end of the TLS sessions"
	rc=1
fi
if [ $rc -ne 0 ]; then
	for f in "$work"/*.out; do echo "== $f"; tail -20 "$f"; done
fi
exit $rc

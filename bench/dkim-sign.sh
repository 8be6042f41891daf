#!/bin/bash
# dkim-sign.sh - how fast weir-milter signs, against what the CPU can sign.
#
#   bench/dkim-sign.sh [MESSAGES] [SECONDS] [THREADS]
#
# Starts weir-milter (unix socket, a private directory) three times: without
# a dkim group (the cost of the milter protocol alone), with one RSA 2048
# key, with one ed25519 key, all for local.weir.test. bench/milter-load
# sends it MESSAGES messages (default 4000, or SECONDS seconds, default 30,
# whichever ends first) over THREADS connections in parallel (default 2),
# as login alice (senders.map allows alice@local.weir.test), 2 KiB bodies
# (BODY=bytes to change), and checks that each signed message got exactly
# one DKIM-Signature. The first signed message (as milter-load -o writes
# it, the milter's header changes applied) is verified against the public
# key with python3-dkim (dkimpy; the key record is handed to it, no DNS).
#
# In the same run: `openssl speed -seconds 3 rsa2048` and `... ed25519`
# (single-threaded: sign/s on one core). Printed per key:
#   wall rate      messages/s of the whole run
#   per core       wall rate / min(THREADS, cores): the cores the signing
#                  could use at most (the load generator shares them, so
#                  this understates the milter)
#   per CPU-second messages / CPU seconds weir-milter itself used (user +
#                  system, all its threads, from /proc/PID/stat): the fair
#                  per-core figure, comparable with openssl's sign/s, which
#                  is signatures per CPU-second of one core
# and each one's ratio to openssl sign/s. The issue's goal: per
# CPU-second >= 80 % of openssl's sign/s.
#
# If opendkim (Debian package opendkim) is installed, the same load is also
# sent to OpenDKIM with the same keys, for reference.
#
# Bounded: at most MESSAGES messages and SECONDS seconds per run (5 runs);
# loopback and unix sockets only; stops exactly the daemons it started.
# Needs root and a build (make).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${WEIR_BUILD:-$top}
n=${1:-4000}
secs=${2:-30}
threads=${3:-2}
body=${BODY:-2048}
milter=$build/milter/weir-milter
load=$build/bench/milter-load
weirctl=$build/policy/weirctl
domain=local.weir.test

[ "$(id -u)" = 0 ] || { echo "dkim-sign: must run as root" >&2; exit 1; }
for f in "$milter" "$load" "$weirctl"; do
	[ -x "$f" ] || { echo "dkim-sign: $f not built (make)" >&2; exit 1; }
done
id weir >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin weir

dir=$(mktemp -d /tmp/weir-dkim-sign.XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/run" "$dir/keys"
chown weir: "$dir/run"
pid=
stop_daemon() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	pid=
}
# OpenDKIM refuses keys under a world-writable directory such as /tmp
# (RequireSafeKeys walks up the path): its copies live under /run.
okeys=
trap 'stop_daemon; rm -rf "$dir" ${okeys:+"$okeys"}' EXIT
cores=$(nproc)
used=$((threads < cores ? threads : cores))
tck=$(getconf CLK_TCK)

# cpu_ticks PID - user + system clock ticks of a process, all threads
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# keygen ALG(rsa|ed25519) SELECTOR OWNER - a private key, mode 0600
keygen() {
	local file=$dir/keys/$domain.$2.pem
	if "$weirctl" 2>&1 | grep -qw keygen; then
		(cd "$dir/keys" && "$weirctl" keygen --domain "$domain" --selector "$2" \
			--algorithm "$1" --output "$file" >"$dir/keys/$2.dns" 2>&1)
	elif [ "$1" = rsa ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$file" 2>/dev/null
	else
		openssl genpkey -algorithm ed25519 -out "$file" 2>/dev/null
	fi
	chmod 600 "$file"
	chown "$3" "$file"
	echo "$file"
}

# write_conf [SELECTOR ALGORITHM KEYFILE]
write_conf() {
	cat >"$dir/weir.conf" <<EOF
user = "weir";
hostname = "relay.weir.test";
log_level = "warning";
senders = { map = ({ login = "alice"; addresses = ("alice@$domain"); }); };
milter = {
  socket = "unix:$dir/run/milter.sock";
  pid_file = "$dir/run/weir-milter.pid";
  socket_mode = "0660";
};
EOF
	[ $# = 3 ] || return 0
	cat >>"$dir/weir.conf" <<EOF
dkim = {
  sign = ( { domain = "$domain"; keys = (
    { selector = "$1"; algorithm = "$2"; key = "$3"; }
  ); } );
  verify = false;
};
EOF
}

# start DAEMON-COMMAND... - start in the background, wait for the socket
start() {
	rm -f "$dir/run/milter.sock"
	"$@" 2>>"$dir/daemon.log" &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$dir/run/milter.sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "dkim-sign: $1 did not start:" >&2
	tail -n 20 "$dir/daemon.log" >&2
	pid=
	exit 1
}

# run LABEL EXPECTED_SIGNATURES - one milter-load run against $pid;
# sets rate, cpu (seconds), msgs; prints milter-load's report on failure
run() {
	local t0 t1 out rc=0
	t0=$(cpu_ticks "$pid")
	"$load" -s "unix:$dir/run/milter.sock" -c "$threads" -n "$n" -T "$secs" -m 100 \
		-l alice -f "alice@$domain" -b "$body" -k "$2" -o "$dir/signed.$1.eml" \
		>"$dir/load.$1.out" 2>&1 || rc=$?
	t1=$(cpu_ticks "$pid")
	if [ "$rc" != 0 ]; then
		echo "dkim-sign: $1: milter-load failed (exit $rc):" >&2
		cat "$dir/load.$1.out" >&2
		tail -n 5 "$dir/daemon.log" >&2
		exit 1
	fi
	rate=$(awk '/^rate:/ {print $2}' "$dir/load.$1.out")
	msgs=$(awk '/^messages:/ {print $2}' "$dir/load.$1.out")
	cpu=$(echo "scale=3; ($t1 - $t0) / $tck" | bc)
	sigs=$(awk '/^dkim:/ {print $2}' "$dir/load.$1.out")
	lat=$(sed -n 's/^per message (ms): //p' "$dir/load.$1.out")
}

# verify FILE KEYFILE - check a signed message's DKIM-Signature with the
# key's public half (python3-dkim, the key record given, no DNS)
verify() {
	[ -s "$1" ] || { echo "no signed message written"; return 1; }
	if /usr/bin/python3 -c 'import dkim' 2>/dev/null; then
		/usr/bin/python3 - "$1" "$2" <<'PY' && return 0
import sys, dkim, subprocess
msg = open(sys.argv[1], 'rb').read()
pub = subprocess.run(['openssl', 'pkey', '-in', sys.argv[2], '-pubout', '-outform', 'DER'],
                     capture_output=True, check=True).stdout
import base64
if b'\x2b\x65\x70' in pub[:16]:           # ed25519 OID: raw 32-byte key
    rec = b'v=DKIM1; k=ed25519; p=' + base64.b64encode(pub[-32:])
else:
    rec = b'v=DKIM1; k=rsa; p=' + base64.b64encode(pub)
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec)
print('verified' if ok else 'FAILED')
sys.exit(0 if ok else 1)
PY
		return 1
	fi
	echo "not checked (python3-dkim not installed)"
}

# openssl_rate ALG - sign/s of openssl speed (one core)
openssl_rate() {
	openssl speed -seconds 3 "$1" 2>/dev/null |
		awk '/^rsa 2048 bits|EdDSA \(Ed25519\)/ {print $(NF-1)}'
}

ratio() { echo "scale=3; $1 / $2" | bc; }
pct() { echo "scale=1; 100 * $1 / $2" | bc; }

echo "dkim-sign: $n messages (or ${secs}s) per run, $threads connections, body $body bytes," \
	"$cores cores; per core = wall rate / $used"

# 1. no signing: the milter protocol alone
write_conf
start "$milter" -f -c "$dir/weir.conf"
run nosign 0
stop_daemon
printf '%-22s %8.1f messages/s  (%s messages, milter CPU %ss = %s messages per CPU-second)\n' \
	"weir-milter no dkim" "$rate" "$msgs" "$cpu" "$(echo "scale=1; $msgs / $cpu" | bc)"
echo "    per message: $lat"
base_rate=$rate

fail=0
for alg in rsa ed25519; do
	if [ "$alg" = rsa ]; then sel=rsa1 dalg=rsa-sha256 sp=rsa2048
	else sel=ed1 dalg=ed25519-sha256 sp=ed25519; fi
	key=$(keygen "$alg" "$sel" weir)
	write_conf "$sel" "$dalg" "$key"
	ssl=$(openssl_rate "$sp")
	echo "openssl speed -seconds 3 $sp: $ssl sign/s (one core)"
	rate=
	if ! "$milter" -n -c "$dir/weir.conf" >"$dir/check.out" 2>&1; then
		echo "weir-milter $dalg: SKIPPED: weir-milter -n refuses the dkim group (signing not built yet?):"
		sed 's/^/    /' "$dir/check.out"
		fail=1
	else
		start "$milter" -f -c "$dir/weir.conf"
		run "$sel" 1
		stop_daemon
		percpu=$(echo "scale=1; $msgs / $cpu" | bc)
		percore=$(echo "scale=1; $rate / $used" | bc)
		printf '%-22s %8.1f messages/s  (%s messages, %s signatures, milter CPU %ss)\n' \
			"weir-milter $dalg" "$rate" "$msgs" "$sigs" "$cpu"
		echo "    per message: $lat"
		v=$(verify "$dir/signed.$sel.eml" "$key") || fail=1
		echo "    signature of the first message: $v"
		printf '    per core (wall rate / %d): %s messages/s = %s %% of openssl\n' \
			"$used" "$percore" "$(pct "$percore" "$ssl")"
		printf '    per CPU-second of weir-milter: %s messages = %s %% of openssl (goal >= 80 %%)\n' \
			"$percpu" "$(pct "$percpu" "$ssl")"
		printf '    signing vs no dkim: %s of the unsigned rate\n' "$(ratio "$rate" "$base_rate")"
	fi

	# OpenDKIM with the same key and load, for reference
	if command -v opendkim >/dev/null; then
		if [ -z "$okeys" ]; then
			okeys=$(mktemp -d -p /run weir-bench-dkim.XXXXXX)
			chown opendkim: "$okeys"
			chmod 700 "$okeys"
		fi
		okey=$okeys/$sel.pem
		cp "$key" "$okey"
		chown opendkim: "$okey"
		chmod 600 "$okey"
		echo "$sel._domainkey.$domain $domain:$sel:$okey" >"$dir/keytable"
		echo "*@$domain $sel._domainkey.$domain" >"$dir/signingtable"
		cat >"$dir/opendkim.conf" <<EOF
Syslog no
Mode s
Background no
Socket local:$dir/run/milter.sock
UMask 000
UserID opendkim
KeyTable $dir/keytable
SigningTable refile:$dir/signingtable
InternalHosts 127.0.0.1
Canonicalization relaxed/relaxed
SignatureAlgorithm $dalg
OversignHeaders From,Subject,To,Cc,Reply-To,List-Unsubscribe,List-Unsubscribe-Post
EOF
		chown opendkim: "$dir/run"
		# OpenDKIM signs for internal hosts: no login, client 127.0.0.1
		start opendkim -f -x "$dir/opendkim.conf"
		t0=$(cpu_ticks "$pid")
		orc=0
		"$load" -s "unix:$dir/run/milter.sock" -c "$threads" -n "$n" -T "$secs" -m 100 \
			-f "alice@$domain" -b "$body" -k 1 -o "$dir/opendkim.$sel.eml" \
			>"$dir/load.opendkim.$sel.out" 2>&1 || orc=$?
		t1=$(cpu_ticks "$pid")
		stop_daemon
		chown weir: "$dir/run"
		if [ "$orc" != 0 ]; then
			echo "    opendkim: milter-load failed (exit $orc):"
			sed 's/^/      /' "$dir/load.opendkim.$sel.out"
			fail=1
			continue
		fi
		orate=$(awk '/^rate:/ {print $2}' "$dir/load.opendkim.$sel.out")
		omsgs=$(awk '/^messages:/ {print $2}' "$dir/load.opendkim.$sel.out")
		ocpu=$(echo "scale=3; ($t1 - $t0) / $tck" | bc)
		printf '    opendkim, same key and load: %.1f messages/s, %s per CPU-second (= %s %% of openssl)' \
			"$orate" "$(echo "scale=1; $omsgs / $ocpu" | bc)" "$(pct "$(echo "$omsgs / $ocpu" | bc -l)" "$ssl")"
		[ -n "$rate" ] && printf '; weir-milter / opendkim: %s' "$(ratio "$rate" "$orate")"
		echo
		echo "    opendkim signature of the first message: $(verify "$dir/opendkim.$sel.eml" "$key")"
	fi
done
exit $fail

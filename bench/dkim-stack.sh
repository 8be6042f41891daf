#!/bin/bash
# dkim-stack.sh - what DKIM signing costs Postfix's SMTP server: bare
# Postfix, Postfix + weir-milter signing, Postfix + OpenDKIM signing.
#
#   bench/dkim-stack.sh [MESSAGES] [ROUNDS]
#
# One stack (tests/stack/start) whose weir-milter has a dkim group for
# local.weir.test (one key: ALG=rsa, the default, RSA 2048 selector rsa1;
# ALG=ed25519, selector ed1), and beside it OpenDKIM (Debian package
# opendkim) in the foreground on its own unix socket, signing the same
# domain with the same key (KeyTable/SigningTable). In each round
# smtp-source sends MESSAGES messages (4 sessions in parallel, header
# From: <bench@local.weir.test>, client 127.0.0.1: weir's trusted network
# and OpenDKIM's InternalHosts, so both sign) three times, Postfix's
# smtpd_milters set in turn (postconf -e + postfix reload) to:
#   bare      smtpd_milters empty: Postfix alone (as the stack runs with
#             WEIR_STACK_SKIP=milter; weir-milter idles)
#   weir      weir-milter
#   opendkim  OpenDKIM
# in a rotating order. Timed: smtp-source's run, i.e. until Postfix has
# accepted (queued) every message; delivery (weir-agent -> sink) is waited
# for between runs, untimed, so that each run starts on an idle machine.
# Then the sink's files of each run are checked: MESSAGES files, each with
# exactly one DKIM-Signature d=local.weir.test (none for bare), and the
# first of each signed run verified against the public key (python3-dkim,
# key record handed over, no DNS). Prints each round's times and the
# median ratios weir/bare and opendkim/bare (1.00: no measurable cost).
# The machine is small and noisy: read ratios, not absolute times.
# Bounded: MESSAGES * ROUNDS * 3 messages (default 200 * 3 * 3), each
# wait at most 120 s. Needs root, a build, postfix, nsd, opendkim,
# python3-aiosmtpd, python3-dkim (contrib/debian-packages.txt).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${WEIR_BUILD:-$top}
n=${1:-200}
rounds=${2:-3}
alg=${ALG:-rsa}
domain=local.weir.test
case $alg in
rsa) sel=rsa1 dalg=rsa-sha256 ;;
ed25519) sel=ed1 dalg=ed25519-sha256 ;;
*) echo "dkim-stack: ALG must be rsa or ed25519" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "dkim-stack: must run as root" >&2; exit 1; }
for t in opendkim smtp-source postconf bc; do
	command -v "$t" >/dev/null || { echo "dkim-stack: $t not installed (contrib/debian-packages.txt)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import dkim' 2>/dev/null || { echo "dkim-stack: python3-dkim not installed" >&2; exit 1; }
id weir >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin weir

dir=$(mktemp -d /tmp/weir-bench.XXXXXX)
chmod 755 "$dir"
# keys: weir's under $dir (mode checks only); OpenDKIM's copy under /run,
# as OpenDKIM refuses a key below a world-writable directory such as /tmp
okeys=$(mktemp -d -p /run weir-bench-dkim.XXXXXX)
odpid=
stop_opendkim() {
	[ -n "$odpid" ] || return 0
	kill -TERM "$odpid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$odpid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$odpid" 2>/dev/null && kill -KILL "$odpid" 2>/dev/null
	wait "$odpid" 2>/dev/null || true
	odpid=
}
# WEIR_BENCH_KEEP=1 keeps $dir (the sink's files, logs) for a look
trap 'stop_opendkim; "$top/tests/stack/stop" "$dir/stack" >/dev/null 2>&1; rm -rf "$okeys"
	[ "${WEIR_BENCH_KEEP:-0}" = 1 ] && echo "kept $dir" || rm -rf "$dir"' EXIT
mkdir -p "$dir/keys" "$dir/od" "$dir/got"

key=$dir/keys/$domain.$sel.pem
if "$build/policy/weirctl" 2>&1 | grep -qw keygen; then
	(cd "$dir/keys" && "$build/policy/weirctl" keygen --domain "$domain" --selector "$sel" \
		--algorithm "$alg" --output "$key" >/dev/null 2>&1)
elif [ "$alg" = rsa ]; then
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
else
	openssl genpkey -algorithm ed25519 -out "$key" 2>/dev/null
fi
chmod 600 "$key"
chown weir "$key"
cp "$key" "$okeys/$sel.pem"
chown -R opendkim: "$okeys"
chmod 700 "$okeys"
chmod 600 "$okeys/$sel.pem"

# Both sign the same headers the same way (weir's defaults, see
# doc/weir.conf.5; OpenDKIM told explicitly).
cat >"$dir/dkim.conf" <<EOF
dkim = {
  sign = ( { domain = "$domain"; keys = (
    { selector = "$sel"; algorithm = "$dalg"; key = "$key"; }
  ); } );
};
EOF
WEIR_STACK_CONF_EXTRA=$dir/dkim.conf "$top/tests/stack/start" "$dir/stack" >"$dir/start.log" 2>&1 || {
	cat "$dir/start.log" >&2
	exit 1
}
. "$dir/stack/stack.env"
pcf=$POSTFIX_CONFIG_DIR
weir_milter=$(postconf -c "$pcf" -h smtpd_milters)

# OpenDKIM: its own daemon, socket in a directory only it writes to
chown opendkim: "$dir/od"
echo "$sel._domainkey.$domain $domain:$sel:$okeys/$sel.pem" >"$dir/od/keytable"
echo "*@$domain $sel._domainkey.$domain" >"$dir/od/signingtable"
cat >"$dir/od/opendkim.conf" <<EOF
Syslog no
Mode s
Background no
Socket local:$dir/od/opendkim.sock
UMask 000
UserID opendkim
KeyTable $dir/od/keytable
SigningTable refile:$dir/od/signingtable
InternalHosts 127.0.0.1
Canonicalization relaxed/relaxed
SignatureAlgorithm $dalg
SignHeaders From,Subject,To,Cc,Date,Message-ID,Reply-To,In-Reply-To,References,List-Unsubscribe,List-Unsubscribe-Post,MIME-Version,Content-Type,Content-Transfer-Encoding,Sender
OversignHeaders From,Subject,To,Cc,Reply-To,List-Unsubscribe,List-Unsubscribe-Post
EOF
opendkim -f -x "$dir/od/opendkim.conf" >"$dir/od/opendkim.log" 2>&1 &
odpid=$!
for _ in $(seq 100); do
	[ -S "$dir/od/opendkim.sock" ] && break
	kill -0 "$odpid" 2>/dev/null || break
	sleep 0.1
done
[ -S "$dir/od/opendkim.sock" ] || { echo "dkim-stack: opendkim did not start:" >&2; cat "$dir/od/opendkim.log" >&2; exit 1; }
opendkim_milter=unix:$dir/od/opendkim.sock

mode() { # mode bare|weir|opendkim
	case $1 in
	bare) postconf -c "$pcf" -e "smtpd_milters=" ;;
	weir) postconf -c "$pcf" -e "smtpd_milters=$weir_milter" ;;
	opendkim) postconf -c "$pcf" -e "smtpd_milters=$opendkim_milter" ;;
	esac
	postfix -c "$pcf" reload >/dev/null 2>&1
	sleep 1
}
send() { # send -> seconds for n messages (bounded by smtp-source's count)
	local t0 t1
	t0=$(date +%s.%N)
	timeout 300 smtp-source -s 4 -m "$n" -f "bench@$domain" -t "rcpt@example.weir.test" \
		"127.0.0.1:$SMTP_PORT" || { echo "dkim-stack: smtp-source failed" >&2; return 1; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
# collect MODE ROUND - wait for delivery, move the sink's files aside
collect() {
	local d=$dir/got/$1.$2 i
	"$top/tests/stack/wait-queue-empty" "$dir/stack" 120 >&2 || return 1
	mkdir -p "$d"
	# the sink renames each file into place after writing it
	for ((i = 0; i < 100; i++)); do
		[ "$(find "$SINK_DIR" -maxdepth 1 -name '*.eml' | wc -l)" -ge "$n" ] && break
		sleep 0.2
	done
	find "$SINK_DIR" -maxdepth 1 -name '*.eml' -exec mv -t "$d" {} +
}
# check MODE ROUND - the sink's files: n of them; for a signing mode each
# with exactly one DKIM-Signature, d=local.weir.test, that verifies with
# the public key (python3-dkim, key record handed over, no DNS); for bare
# none
check() {
	/usr/bin/python3 - "$dir/got/$1.$2" "$key" "$n" "$1" "$domain" <<'PY' || { echo "CHECK FAILED: $1 round $2"; return 1; }
import base64, glob, re, subprocess, sys
import dkim
d, keyfile, n, mode, domain = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
pub = subprocess.run(['openssl', 'pkey', '-in', keyfile, '-pubout', '-outform', 'DER'],
                     capture_output=True, check=True).stdout
if b'\x2b\x65\x70' in pub[:16]:      # ed25519 OID: the raw key is the last 32 bytes
    rec = b'v=DKIM1; k=ed25519; p=' + base64.b64encode(pub[-32:])
else:
    rec = b'v=DKIM1; k=rsa; p=' + base64.b64encode(pub)
files = sorted(glob.glob(d + '/*.eml'))
bad = []
for f in files:
    lines = open(f, 'rb').read().split(b'\r\n')
    while lines and lines[0].startswith(b'X-Sink-'):   # the sink's trace lines
        lines.pop(0)
    msg = b'\r\n'.join(lines)
    head = msg.split(b'\r\n\r\n', 1)[0]
    sigs = re.findall(rb'(?im)^DKIM-Signature:((?:.*)(?:\r\n[ \t].*)*)', head)
    if mode == 'bare':
        if sigs:
            bad.append((f, 'signed'))
        continue
    if len(sigs) != 1:
        bad.append((f, '%d signatures' % len(sigs)))
    elif not re.search(rb'(^|;)d=' + re.escape(domain.encode()) + rb'(;|$)', re.sub(rb'\s', b'', sigs[0])):
        bad.append((f, 'd= is not ' + domain))
    elif not dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec):
        bad.append((f, 'does not verify'))
if len(files) != n:
    print('%s: %d messages at the sink, want %d' % (mode, len(files), n))
for f, why in bad[:5]:
    print('%s: %s: %s' % (mode, f, why))
sys.exit(1 if bad or len(files) != n else 0)
PY
}

echo "dkim-stack: $n messages x $rounds rounds x 3 modes, $dalg, smtp-source -s 4"
rw=() ro=() failed=0
modes=(bare weir opendkim)
"$top/tests/stack/wait-queue-empty" "$dir/stack" 60 >/dev/null
find "$SINK_DIR" -maxdepth 1 -name '*.eml' -delete
for r in $(seq "$rounds"); do
	# rotate the order: bare weir opendkim, weir opendkim bare, ...
	k=$(((r - 1) % 3))
	order="${modes[@]:k} ${modes[@]:0:k}"
	for m in $order; do
		mode "$m"
		eval "t_$m=\$(send)"
		collect "$m" "$r"
		check "$m" "$r" || failed=1
	done
	rw+=("$(echo "scale=3; $t_weir / $t_bare" | bc)")
	ro+=("$(echo "scale=3; $t_opendkim / $t_bare" | bc)")
	printf 'round %d (%s): bare %.2fs  weir-milter %.2fs  opendkim %.2fs  weir/bare %.3f  opendkim/bare %.3f\n' \
		"$r" "$order" "$t_bare" "$t_weir" "$t_opendkim" "${rw[-1]}" "${ro[-1]}"
done
med() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
echo "median ratio weir-milter signing / bare Postfix: $(med "${rw[@]}")"
echo "median ratio OpenDKIM signing / bare Postfix:    $(med "${ro[@]}")"
echo "signed and verified: weir $(find "$dir"/got/weir.* -name '*.eml' | wc -l) messages," \
	"opendkim $(find "$dir"/got/opendkim.* -name '*.eml' | wc -l) messages (checks: $([ $failed = 0 ] && echo ok || echo FAILED))"
exit $failed

#!/bin/bash
# contrib/quickstart.sh - try weir on a fresh Debian 12, as root, from the
# repository root: install the packages (contrib/debian-packages.txt), build,
# start the test stack (private Postfix -> weir-milter -> weir-agent ->
# a sink SMTP server, nsd for DNS; loopback ports only) in a fresh
# directory, send three messages (a normal one, one with a recipient the
# smart host rejects, one with a recipient it defers) and show what became
# of each. The stack keeps running; the end of the output says how to use
# and stop it.
#
# Options (environment): QUICKSTART_NO_APT=1 skip apt-get;
# QUICKSTART_NO_BUILD=1 skip the build; WEIR_BUILD=DIR use another build tree.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "quickstart: run as root (apt-get, Postfix, daemons dropping to user weir)" >&2
	exit 1
fi
if [ ! -f configure.ac ] || [ ! -x tests/stack/start ]; then
	echo "quickstart: run from the root of the weir repository" >&2
	exit 1
fi
REPO=$(pwd)
say() { printf '\n=== %s\n' "$*"; }

if [ "${QUICKSTART_NO_APT:-0}" != 1 ]; then
	say "installing Debian packages (contrib/debian-packages.txt)"
	sh contrib/install-deps.sh
fi
# The postfix package starts the system instance on port 25 when it was
# configured; with "No configuration" it is not. Our instance is private.

if [ "${QUICKSTART_NO_BUILD:-0}" != 1 ]; then
	say "building (autoreconf -fi && ./configure && make -j2)"
	autoreconf -fi
	./configure
	make -j2
fi

DIR=$(mktemp -d /tmp/weir-quickstart.XXXXXX)
chmod 755 "$DIR"
id weir >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin weir

say "making a DKIM key for client.weir.test (weirctl keygen) and publishing it"
mkdir -p "$DIR/keys"
"${WEIR_BUILD:-$REPO}/policy/weirctl" keygen --domain client.weir.test --selector quick \
	--output "$DIR/keys/client.weir.test.quick.pem" >"$DIR/keys/quick.txt"
chown weir "$DIR/keys/client.weir.test.quick.pem"
sed 's/\.client\.weir\.test\. IN/.client IN/' "$DIR/keys/quick.txt" >"$DIR/keys/zone.extra"
cut -c1-110 "$DIR/keys/quick.txt"
cat >"$DIR/keys/weir.conf.extra" <<CONF
dkim = {
  sign = ( { domain = "client.weir.test";
             keys = ( { selector = "quick"; algorithm = "rsa-sha256";
                        key = "$DIR/keys/client.weir.test.quick.pem"; } ); } );
};
CONF

say "starting the stack in $DIR"
if ! WEIR_STACK_ZONE_EXTRA=$DIR/keys/zone.extra WEIR_STACK_CONF_EXTRA=$DIR/keys/weir.conf.extra \
	tests/stack/start "$DIR"; then
	echo "quickstart: the stack did not start; logs are in $DIR/log" >&2
	exit 1
fi
# shellcheck disable=SC1091
. "$DIR/stack.env"

send() { # LABEL TO: send one message through Postfix, print its queue id
	local label=$1 to=$2 out
	out=$(swaks --server "127.0.0.1:$SMTP_PORT" --helo client.weir.test \
		--from alice@client.weir.test --to "$to" \
		--header "Subject: quickstart: $label" \
		--body "This is the quickstart message '$label'." 2>&1) || true
	echo "$out" | sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' | tail -n 1
}
say "sending 3 messages through Postfix on 127.0.0.1:$SMTP_PORT"
Q1=$(send normal bob@example.weir.test)
Q2=$(send "rejected recipient" "carol@example.weir.test,reject-dave@example.weir.test")
Q3=$(send "deferred recipient" "erin@example.weir.test,defer-frank@example.weir.test")
echo "queue ids: normal=${Q1:-?} rejected=${Q2:-?} deferred=${Q3:-?}"

say "waiting (up to 30 s) for Postfix to finish the first attempts"
for _ in $(seq 60); do
	done_n=0
	for q in $Q1 $Q2 $Q3; do
		n=$(grep -cE "$q: to=<.*status=(sent|bounced|deferred)" "$POSTFIX_LOG" 2>/dev/null || true)
		exp=1
		[ "$q" != "$Q1" ] && exp=2
		[ "${n:-0}" -ge $exp ] && done_n=$((done_n + 1))
	done
	[ $done_n -ge 3 ] && break
	sleep 0.5
done

show() { # LABEL QID
	local label=$1 q=$2 f
	say "message '$label' (Postfix queue id ${q:-none})"
	if [ -z "$q" ]; then
		echo "  Postfix did not accept it: see $DIR/log/"
		return
	fi
	echo "  Postfix says:"
	grep -E "$q: to=<" "$POSTFIX_LOG" | sed -E 's/^.*: to=</    to=</' || echo "    (nothing yet)"
	echo "  the sink (smart host) received:"
	f=$(grep -lF "id $q" "$SINK_DIR"/*.eml 2>/dev/null || true)
	if [ -n "$f" ]; then
		for x in $f; do
			echo "    $x:"
			grep -E '^X-Sink-|^Subject:|^DKIM-Signature:' "$x" | tr -d '\r' | cut -c1-100 |
				sed 's/^/      /'
		done
	else
		echo "    nothing"
	fi
	echo "  weir-milter logged:"
	grep -F "$q" "$MILTER_LOG" 2>/dev/null | grep -v ' debug: ' | sed 's/^/    /' || echo "    (nothing with this queue id)"
}
show normal "$Q1"
show "rejected recipient" "$Q2"
show "deferred recipient" "$Q3"
say "weir-agent's relay log (non-debug lines)"
grep -v ' debug: ' "$AGENT_LOG" | tail -n 15 | sed 's/^/  /'
say "Postfix's queue now (the deferred recipient stays until the sink accepts it)"
postqueue -c "$POSTFIX_CONFIG_DIR" -p | sed 's/^/  /'
bounces=$( (grep -l '^X-Sink-Mail-From: <>' "$SINK_DIR"/*.eml 2>/dev/null || true) | wc -l)
echo "  (the sink also holds $bounces bounce message(s) Postfix sent back to the sender)"

cat <<EOT

=== the stack is still running in $DIR
  ports and pids:       cat $DIR/stack.env
  send more by hand:    swaks --server 127.0.0.1:$SMTP_PORT --from you@client.weir.test --to someone@example.weir.test
                        (local parts reject..., defer..., slow... make the sink answer 550, 450, or slowly)
  what arrived:         ls $SINK_DIR
  logs:                 $DIR/log/{postfix,weir-milter,weir-agent,sink}.log
  Postfix's queue:      postqueue -c $POSTFIX_CONFIG_DIR -p     (flush: postqueue -c $POSTFIX_CONFIG_DIR -f)
  DNS:                  dig @127.0.0.1 -p $DNS_PORT example.weir.test MX
  stop everything:      $REPO/tests/stack/stop $DIR
EOT

#!/bin/bash
# milter.sh - weir-milter under valgrind: transactions, an aborted
# message, a good and a broken reload, then SIGTERM. Fails on any memory
# error or any definitely/indirectly lost block.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${WEIR_BUILD:-$top}
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
command -v miltertest >/dev/null || { echo "miltertest not installed"; exit 77; }
id weir >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin weir
dir=$(mktemp -d /tmp/weir-vg-milter.XXXXXX)
chmod 755 "$dir"
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
sock=$dir/milter.sock
cat >"$dir/weir.conf" <<CONF
user = "weir";
log_level = "debug";
local_domains = ("example.net", "example.org");
senders = { map = ({ login = "alice"; addresses = ("alice@example.com"); }); };
milter = { socket = "unix:$sock"; pid_file = ""; socket_mode = "0666";
	   metrics_listen = "127.0.0.1:0"; };
CONF
chown weir "$dir"
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--suppressions="$top/tests/valgrind/weir.supp" \
	--show-leak-kinds=definite,indirect --track-fds=no --log-file="$dir/vg.log" \
	"$build/milter/weir-milter" -f -c "$dir/weir.conf" 2>"$dir/milter.log" &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "no socket"; cat "$dir/milter.log" "$dir/vg.log"; exit 1; }
for i in 1 2 3; do
	MILTER_SOCKET=unix:$sock QUEUE_ID=VG$i miltertest -s "$top/tests/milter/scripts/transaction.lua" ||
		{ echo "miltertest failed"; cat "$dir/milter.log"; exit 1; }
done
# the metrics endpoint's thread under valgrind too
mport=$(sed -n 's/.*metrics endpoint .* port=\([0-9]*\).*/\1/p' "$dir/milter.log" | head -1)
if command -v curl >/dev/null && [ -n "$mport" ]; then
	curl -sf "http://127.0.0.1:$mport/metrics" >"$dir/metrics.txt" ||
		{ echo "no metrics"; cat "$dir/milter.log"; exit 1; }
	grep -qx 'weir_milter_messages_total{decision="accept",reason="none"} 3' "$dir/metrics.txt" ||
		{ echo "metrics: expected 3 accepted"; cat "$dir/metrics.txt"; exit 1; }
fi
kill -USR1 $pid; sleep 1
echo "nonsense = 1;" >>"$dir/weir.conf"
kill -USR1 $pid; sleep 1
MILTER_SOCKET=unix:$sock QUEUE_ID=VG4 miltertest -s "$top/tests/milter/scripts/transaction.lua" ||
	{ echo "miltertest failed after reloads"; exit 1; }
kill -TERM $pid
wait $pid
rc=$?
pid=
grep -c "decision=accept" "$dir/milter.log"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$dir/vg.log"
if [ $rc != 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$dir/vg.log"; then
	echo "valgrind found errors (exit $rc):"
	cat "$dir/vg.log"
	exit 1
fi
[ "$(grep -c decision=accept "$dir/milter.log")" = 4 ] || { echo "expected 4 messages"; cat "$dir/milter.log"; exit 1; }
echo ok

#!/bin/bash
# milter-overhead.sh - what weir-milter costs Postfix's SMTP server.
#
#   bench/milter-overhead.sh [MESSAGES] [ROUNDS]
#
# One stack (tests/stack/start); in each round smtp-source sends MESSAGES
# messages (4 sessions in parallel) into Postfix twice: once with
# weir-milter attached (smtpd_milters) and once without (postfix reload in
# between), in alternating order. Prints each round's times and the
# median ratio with/without: 1.00 means no measurable cost. The machine
# is noisy and has 2 cores: read ratios, not absolute times. Bounded: at
# most MESSAGES * ROUNDS * 2 messages, default 200 * 3 * 2.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200}
rounds=${2:-3}
dir=$(mktemp -d /tmp/weir-bench.XXXXXX)
trap '"$top/tests/stack/stop" "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
"$top/tests/stack/start" "$dir" >/dev/null
. "$dir/stack.env"
pcf=$POSTFIX_CONFIG_DIR
milters=$(postconf -c "$pcf" -h smtpd_milters)

send() { # send -> seconds for n messages
	local t0 t1
	t0=$(date +%s.%N)
	smtp-source -s 4 -m "$n" -f bench@weir.test -t "rcpt@example.weir.test" \
		"127.0.0.1:$SMTP_PORT"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
mode() { # mode with|without
	if [ "$1" = with ]; then postconf -c "$pcf" -e "smtpd_milters=$milters"
	else postconf -c "$pcf" -e "smtpd_milters="; fi
	postfix -c "$pcf" reload >/dev/null 2>&1
	sleep 1
}
ratios=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="without with"; else order="with without"; fi
	for m in $order; do
		mode "$m"
		eval "t_$m=\$(send)"
	done
	ratio=$(echo "scale=3; $t_with / $t_without" | bc)
	ratios+=("$ratio")
	printf 'round %d: %d messages  without milter %.2fs  with weir-milter %.2fs  ratio %.3f\n' \
		"$r" "$n" "$t_without" "$t_with" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
echo "median ratio (with weir-milter / bare Postfix): $median"

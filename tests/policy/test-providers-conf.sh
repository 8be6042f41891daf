#!/bin/sh
# test-providers-conf - contrib/throttle/providers.conf, copied next to
# weir.conf and @included inside throttle = { } as its head comment says,
# passes `weirctl check` and yields every provider group it documents.
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
weirctl=$(pwd)/policy/weirctl
[ -x "$weirctl" ] || weirctl=$top/policy/weirctl
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-providers.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cp "$top/contrib/throttle/providers.conf" "$work/throttle-providers.conf" || exit 1
cat >"$work/weir.conf" <<CONF
agent = { smarthost = "smtp.example.net:587"; };
throttle = {
  wait = "3s";
  @include "throttle-providers.conf"
};
CONF
fail=0
out=$("$weirctl" -c "$work/weir.conf" check 2>&1)
if [ "$out" != "$work/weir.conf: ok" ]; then
	echo "FAIL weirctl check: $out"
	fail=1
else
	echo "ok   weirctl check accepts the include"
fi
groups=$("$weirctl" -c "$work/weir.conf" settings 2>&1 | grep '^throttle.groups = ')
for g in "google: gmail.com googlemail.com mx=google.com mx=googlemail.com" \
	"microsoft: outlook.com hotmail.com live.com msn.com mx=protection.outlook.com" \
	"yahoo: yahoo.com ymail.com rocketmail.com aol.com mx=yahoodns.net" \
	"apple: icloud.com me.com mac.com mx=icloud.com mx=apple.com" \
	"gmx-webde: " "comcast: comcast.net mx=comcast.net"; do
	case $groups in
	*"$g"*) echo "ok   group ${g%%:*}" ;;
	*) echo "FAIL group ${g%%:*}: not in: $groups"; fail=1 ;;
	esac
done
exit $fail

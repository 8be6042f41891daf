#!/bin/bash
# 650-sendmail-readme: the README's "Sendmail sites" .mc lines are real:
# the indented block is cut out of the README, built into a sendmail.cf
# with m4 and Debian's sendmail-cf (as 370 does for contrib/sendmail/
# weir.mc), and the result attaches weir-milter (F=T) and routes every
# address to the weir mailer (LMTP to weir-agent's socket), checked with a
# private Sendmail's address test (sendmail -bt) when one can be had. Each
# README line is also in contrib/sendmail/weir.mc (the two never drift).
. "$(dirname "$0")/lib.sh"
it_begin "README: the Sendmail sites .mc lines build with m4 and route to weir"
CFM4=/usr/share/sendmail/cf/m4/cf.m4
[ -r "$CFM4" ] || it_skip "sendmail-cf is not installed"
command -v m4 >/dev/null || it_skip "m4 is not installed"
W=$(mktemp -d /tmp/weir-it-650.XXXXXX) || it_abort "mktemp failed"
trap 'rc=$?; rm -rf -- "$W"; exit $rc' EXIT

# the indented lines of the section, 4 spaces of indentation removed
awk '/^Sendmail sites$/ { on = 1; next }
	on && /^[A-Z][^ ].*$/ && prev == "" && NR > 1 && seen { exit }
	on && /^    / { print substr($0, 5); seen = 1 }
	{ prev = $0 }' "$REPO/README" >"$W/readme.mc"
check "README has a Sendmail sites section with .mc lines" test -s "$W/readme.mc"
check "README's block has INPUT_MAIL_FILTER, SMART_HOST and the weir mailer" \
	bash -c "grep -q '^INPUT_MAIL_FILTER(' '$W/readme.mc' && grep -q '^define(\`SMART_HOST' '$W/readme.mc' && grep -q '^Mweir,' '$W/readme.mc'"
in_contrib() {
	local bad=0 l
	# blanks squeezed to one space on both sides (the README indents
	# with spaces, the .mc with tabs)
	tr -s ' \t' '  ' <"$REPO/contrib/sendmail/weir.mc" | sed 's/^ //' >"$W/contrib.norm"
	while IFS= read -r l; do
		l=$(printf '%s' "$l" | tr -s ' \t' '  ' | sed 's/^ //')
		grep -qxF -- "$l" "$W/contrib.norm" ||
			{ echo "    not in contrib/sendmail/weir.mc: $l"; bad=1; }
	done <"$W/readme.mc"
	return "$bad"
}
check "every README line is in contrib/sendmail/weir.mc" in_contrib

cat >"$W/test.mc" <<MC
divert(-1)dnl
include(\`$CFM4')dnl
OSTYPE(\`linux')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`QUEUE_DIR', \`$W/queue')dnl
define(\`confCW_FILE', \`$W/cw')dnl
define(\`ALIAS_FILE', \`')dnl
include(\`$W/readme.mc')dnl
MAILER(\`local')dnl
MAILER(\`smtp')dnl
MC
build() {
	m4 "$W/test.mc" >"$W/sendmail.cf" 2>"$W/m4.err" && [ ! -s "$W/m4.err" ] || {
		cat "$W/m4.err"
		return 1
	}
}
check "m4 builds a sendmail.cf from them without a message" build
check "weir-milter is an input filter with F=T on /run/weir/milter.sock" \
	grep -q '^Xweir, S=unix:/run/weir/milter.sock, F=T, T=C:30s;S:300s;R:300s;E:10m' "$W/sendmail.cf"
check "the filter macros: i and {auth_authen} at MAIL, i at end of message" \
	bash -c "grep -q '^O Milter.macros.envfrom=i, {auth_type}, {auth_authen}' '$W/sendmail.cf' && grep -q '^O Milter.macros.eom=i, {msg_id}' '$W/sendmail.cf'"
check "the smart host is the weir mailer" grep -qx 'DSweir:\[127.0.0.1\]' "$W/sendmail.cf"
check "mailer weir: LMTP (F=...z) to /run/weir/agent.lmtp, L=998" \
	bash -c "grep -A1 '^Mweir,' '$W/sendmail.cf' | tr -d '\n' | grep -qE 'F=[A-Za-z0-9]*z.*L=998.*A=FILE /run/weir/agent.lmtp'"

if root=$("$STACK/sendmail-fetch" 2>/dev/null); then
	mkdir -p "$W/queue" && chmod 700 "$W/queue" && : >"$W/cw"
	bt() {
		printf '3,0 someone@example.org\n' |
			timeout 60 unshare -um sh -c 'hostname mx.weir.test; exec env LD_LIBRARY_PATH="$0/lib/x86_64-linux-gnu:$0/usr/lib/x86_64-linux-gnu" "$@"' \
				"$root" "$root/usr/libexec/sendmail/sendmail" -bt -C "$W/sendmail.cf" >"$W/bt.out" 2>&1
		grep -q 'parse *returns: \$# weir \$@ \[ 127 \. 0 \. 0 \. 1 \]' "$W/bt.out" || {
			tail -n 5 "$W/bt.out"
			return 1
		}
	}
	check "a real Sendmail's address test sends someone@example.org to the weir mailer" bt
else
	it_say "note: no private Sendmail (tests/stack/sendmail-fetch): the address test is not run"
fi
it_end

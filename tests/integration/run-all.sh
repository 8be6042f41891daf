#!/bin/bash
# tests/integration/run-all.sh [TEST...] - run the integration tests (all
# [0-9]*-*.sh by default), one after another; print each result and a summary
# 'N passed, N failed, N skipped'. Exit 1 if any failed.
cd "$(dirname "$0")" || exit 1
[ $# -gt 0 ] || set -- '[0-9]*-*.sh'
tests=()
for pat in "$@"; do
	pat=${pat##*/}
	# accept "10", "10-relay-basic", "10-relay-basic.sh" or a glob
	for t in $pat $pat-*.sh $pat.sh; do
		[ -f "$t" ] && tests+=("$t")
	done
done
pass=0 fail=0 skip=0 failed=
for t in $(printf '%s\n' "${tests[@]}" | awk '!seen[$0]++'); do
	out=$(mktemp)
	start=$SECONDS
	./"$t" >"$out" 2>&1
	rc=$?
	case $rc in
	0) pass=$((pass + 1)); r=PASS ;;
	77) skip=$((skip + 1)); r=SKIP ;;
	*) fail=$((fail + 1)); r=FAIL; failed="$failed $t" ;;
	esac
	echo "$r $t ($((SECONDS - start))s)"
	if [ $rc != 0 ] || [ "${VERBOSE:-0}" = 1 ]; then sed 's/^/    /' "$out"; fi
	rm -f "$out"
done
echo "$pass passed, $fail failed, $skip skipped${failed:+ (failed:$failed)}"
[ $fail = 0 ]

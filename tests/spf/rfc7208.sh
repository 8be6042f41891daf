#!/bin/sh
# rfc7208.sh - the RFC 7208 SPF test suite (python3-spf) through weir's SPF
# engine, with nsd serving each scenario's zone on 127.0.0.1. Fails when
# fewer cases agree than FLOOR (the count that agreed when it was written;
# raise it as deviations are fixed). 77 (skip) when a tool is missing.
# Known mismatches and their causes: tests/spf/expected-deviations.txt
FLOOR=146
here=$(cd "$(dirname "$0")" && pwd)
suite=/usr/share/doc/python3-spf/rfc7208-tests.yml.gz
command -v nsd >/dev/null 2>&1 || { echo "nsd not installed"; exit 77; }
command -v nsd-checkzone >/dev/null 2>&1 || { echo "nsd-checkzone not installed"; exit 77; }
[ -r "$suite" ] || { echo "python3-spf not installed ($suite)"; exit 77; }
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "python3-yaml not installed"; exit 77; }
check=${SPF_CHECK:-$here/spf-check}
[ -x "$check" ] || check=$(pwd)/tests/spf/spf-check
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-spf.XXXXXX") || exit 1
/usr/bin/python3 "$here/rfc7208.py" "$check" "$work" "$suite" --floor "$FLOOR"
rc=$?
rm -rf "$work"
exit $rc

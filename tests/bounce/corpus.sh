#!/bin/sh
# corpus.sh - agreement of `weirctl bounce classify` with Sisimai's
# expected results over its public bounce corpus (expected.tsv).
#
# Each expected row (file, index) is compared with the line weirctl
# prints for that file and recipient index: reason, and hard/soft.
# Rows whose reason is delivered or vacation must produce no line for
# their file and index (they count as agreeing when none is printed);
# feedback rows are complaints, printed with REASON "feedback". Prints
#   reason agreement: N/M (P%)
#   hard/soft agreement: N/M (P%)
# and fails when either is below its floor. Skipped (77) without the
# corpus ($WEIR_BOUNCE_CORPUS, default ../shared/corpus/bounces next to
# the repository). BOUNCE_CORPUS_VERBOSE=1 lists every disagreement.
set -u

# floors, in per cent: raise them as the classifier improves
REASON_FLOOR=75
HARD_FLOOR=85

top=$(cd "$(dirname "$0")/../.." && pwd)
# make check runs tests in the build directory (a VPATH build's weirctl)
builddir=${WEIR_BUILDDIR:-$top}
[ -z "${WEIR_BUILDDIR:-}" ] && [ -x "$PWD/policy/weirctl" ] && builddir=$PWD
corpus=${WEIR_BOUNCE_CORPUS:-$top/../shared/corpus/bounces}
# a checkout elsewhere (CI clones into a temporary directory): the
# workplace's copy
[ -d "$corpus" ] || [ -n "${WEIR_BOUNCE_CORPUS:-}" ] || corpus=/work/shared/corpus/bounces
weirctl=$builddir/policy/weirctl
rules=$top/contrib/bounce/rules.conf

if [ ! -f "$corpus/expected.tsv" ]; then
	echo "SKIP: no bounce corpus at $corpus (set WEIR_BOUNCE_CORPUS)"
	exit 77
fi
if [ ! -x "$weirctl" ]; then
	echo "FAIL: $weirctl not built"
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the files named in expected.tsv, classified in one run (paths relative
# to the corpus, as expected.tsv names them)
tail -n +2 "$corpus/expected.tsv" | cut -f1 | sort -u >"$work/files"
(cd "$corpus" && xargs "$weirctl" bounce classify --rules "$rules") \
	<"$work/files" >"$work/got" 2>"$work/err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
	echo "FAIL: weirctl bounce classify exited $rc"
	cat "$work/err"
	exit 1
fi
if [ -s "$work/err" ]; then
	echo "FAIL: weirctl reported errors:"
	cat "$work/err"
	exit 1
fi

awk -F'\t' -v reason_floor="$REASON_FLOOR" -v hard_floor="$HARD_FLOOR" \
	-v verbose="${BOUNCE_CORPUS_VERBOSE:-0}" '
	FNR == NR { got[$1 "\t" $2] = $5 "\t" $6; next }
	FNR == 1 { next }
	{
		key = $1 "\t" $2
		want = $5
		wanthard = ($6 == "true") ? "hard" : "soft"
		have = (key in got)
		split(have ? got[key] : "\t", g, "\t")
		if (want == "delivered" || want == "vacation") {
			total++; hardtotal++
			if (!have) { ok++; hardok++ }
			else if (verbose) print "want none: " key " got " g[1] > "/dev/stderr"
			next
		}
		total++; hardtotal++
		if (have && g[1] == want) ok++
		else if (verbose) print "reason: " key " want " want " got " (have ? g[1] : "(none)") > "/dev/stderr"
		if (have && g[2] == wanthard) hardok++
		else if (verbose) print "hard: " key " want " wanthard " got " (have ? g[2] : "(none)") > "/dev/stderr"
	}
	END {
		rp = total ? 100 * ok / total : 0
		hp = hardtotal ? 100 * hardok / hardtotal : 0
		printf "reason agreement: %d/%d (%.1f%%)\n", ok, total, rp
		printf "hard/soft agreement: %d/%d (%.1f%%)\n", hardok, hardtotal, hp
		if (rp < reason_floor) { printf "FAIL: reason agreement below %d%%\n", reason_floor; exit 1 }
		if (hp < hard_floor) { printf "FAIL: hard/soft agreement below %d%%\n", hard_floor; exit 1 }
	}' "$work/got" "$corpus/expected.tsv"

#!/bin/bash
# run.sh - weir's whole test suite, as CI runs it (as root, Debian 12).
#
#   tests/run.sh [--no-install] [--skip-asan] [--skip-fuzz] [--only PATTERN]
#
# Phases: install packages, build with -Werror, unit tests (make check),
# integration tests against a real Postfix stack (tests/integration),
# milter protocol tests (miltertest), valgrind on both daemons, a second
# build with -fsanitize=address,undefined that reruns the unit tests and
# the core integration tests, then each libFuzzer target for a bounded
# time. Every check counts once; the last line is "N passed, N failed,
# N skipped". Logs of failures are printed; everything is kept under
# tests/results/.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
install=1 asan=1 fuzz=1 only=
while [ $# -gt 0 ]; do
	case "$1" in
	--no-install) install=0 ;;
	--skip-asan) asan=0 ;;
	--skip-fuzz) fuzz=0 ;;
	--only) only=$2; shift ;;
	*) echo "usage: tests/run.sh [--no-install] [--skip-asan] [--skip-fuzz] [--only PATTERN]" >&2; exit 2 ;;
	esac
	shift
done

results=$top/tests/results
rm -rf "$results"
mkdir -p "$results"
passed=0 failed=0 skipped=0
failures=()

# record NAME STATUS [LOGFILE] - count one check (STATUS 0 pass, 77 skip)
record() {
	local name=$1 status=$2 log=${3:-}
	case "$status" in
	0) passed=$((passed + 1)); echo "PASS: $name" ;;
	77) skipped=$((skipped + 1)); echo "SKIP: $name" ;;
	*) failed=$((failed + 1)); failures+=("$name"); echo "FAIL: $name (exit $status)"
	   if [ -n "$log" ] && [ -f "$log" ]; then
		   echo "---- last lines of $log"; tail -n 40 "$log"; echo "----"
	   fi ;;
	esac
}

# run_check NAME TIMEOUT CMD... - run one check with a time bound
run_check() {
	local name=$1 limit=$2; shift 2
	local log="$results/$(echo "$name" | tr '/ ' '__').log"
	if [ -n "$only" ] && [[ "$name" != *$only* ]]; then return; fi
	timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
	record "$name" $? "$log"
}

# run_pool JOBS TIMEOUT PREFIX TEST... - run_check PREFIX$TEST for each
# executable TEST, JOBS at a time (the stack picks free loopback ports
# and addresses and its own directory, so stacks run side by side; most
# of a test's time is waiting on mail). Results are recorded in the
# order given.
run_pool() {
	local jobs=$1 limit=$2 prefix=$3 t log
	local -a names=()
	shift 3
	for t; do
		[ -x "$t" ] || continue
		if [ -n "$only" ] && [[ "$prefix$t" != *$only* ]]; then continue; fi
		while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
		log="$results/$(echo "$prefix$t" | tr '/ ' '__').log"
		( timeout --kill-after=10 "$limit" "$t" >"$log" 2>&1; echo $? >"$log.rc" ) &
		names+=("$t")
	done
	wait
	for t in "${names[@]}"; do
		log="$results/$(echo "$prefix$t" | tr '/ ' '__').log"
		record "$prefix$t" "$(cat "$log.rc" 2>/dev/null || echo 1)" "$log"
		rm -f "$log.rc"
	done
}

# count_automake DIR PREFIX - one check per unit test program of make check
count_automake() {
	local dir=$1 prefix=$2 trs res name
	for trs in $(cd "$dir" && find tests -name '*.trs' | sort); do
		res=$(sed -n 's/^:test-result: //p' "$dir/$trs" | head -1)
		name="$prefix${trs%.trs}"
		case "$res" in
		PASS) record "$name" 0 ;;
		SKIP) record "$name" 77 ;;
		*) record "$name" 1 "$dir/${trs%.trs}.log" ;;
		esac
	done
}

step() { echo; echo "== $*"; }

if [ $install = 1 ]; then
	step "installing packages"
	sh contrib/install-deps.sh || { echo "package installation failed"; echo "0 passed, 1 failed"; exit 1; }
fi

step "build (-Werror)"
if ! { [ -x configure ] || autoreconf -fi; } >"$results/autoreconf.log" 2>&1 ||
   ! { [ -f Makefile ] || ./configure --enable-werror; } >"$results/configure.log" 2>&1 ||
   ! make -j2 >"$results/build.log" 2>&1; then
	cat "$results"/*.log | tail -n 60
	record build 1
	echo; echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi
record build 0

step "unit tests"
make -j2 check >"$results/check.log" 2>&1
count_automake "$top" ""

step "integration tests (real Postfix, nsd, sink)"
run_pool "${WEIR_TEST_JOBS:-2}" 300 "" tests/integration/[0-9]*.sh tests/milter/*.sh

# Postfix to weir-milter over TCP too (the stack's default is a unix socket).
WEIR_STACK_MILTER_TRANSPORT=inet run_check "milter-over-inet/10-relay-basic.sh" 300 \
	tests/integration/10-relay-basic.sh

step "valgrind on the daemons"
for t in tests/valgrind/*.sh; do
	[ -x "$t" ] || continue
	run_check "$t" 300 "$t"
done

if [ $asan = 1 ]; then
	step "build with -fsanitize=address,undefined"
	asan_dir=$top/build-asan
	rm -rf "$asan_dir"
	mkdir -p "$asan_dir"
	# A copy of the tree: automake refuses a second, out-of-tree build of
	# a source tree that is configured in place.
	tar -C "$top" --exclude=./.git --exclude=./build-asan --exclude=./tests/results \
		-cf - . | tar -C "$asan_dir" -xf -
	san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
	if (cd "$asan_dir" && { make distclean >/dev/null 2>&1 || true; } &&
	    ./configure --enable-werror CFLAGS="-O1 -g $san" \
		LDFLAGS="$san") >"$results/asan-configure.log" 2>&1 &&
	   make -C "$asan_dir" -j2 >"$results/asan-build.log" 2>&1; then
		record asan/build 0
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0
		export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		make -C "$asan_dir" -j2 check >"$results/asan-check.log" 2>&1
		count_automake "$asan_dir" "asan/"
		# The core integration tests again, with sanitized daemons. A
		# sanitizer report in a daemon's log fails the test (lib.sh).
		# (a subset: the whole suite with sanitizers would not fit the
		# 20 minutes; each new daemon path has one representative)
		export WEIR_BUILD=$asan_dir
		run_pool "${WEIR_TEST_JOBS:-2}" 300 asan/ tests/integration/10-*.sh \
			tests/integration/20-*.sh tests/integration/40-*.sh \
			tests/integration/60-*.sh tests/integration/230-*.sh \
			tests/integration/251-*.sh tests/integration/270-*.sh
		unset WEIR_BUILD
	else
		tail -n 40 "$results/asan-build.log" "$results/asan-configure.log"
		record asan/build 1
	fi
fi

if [ $fuzz = 1 ]; then
	step "fuzz targets (libFuzzer, bounded)"
	for f in tests/fuzz/fuzz-*.c; do
		[ -f "$f" ] || continue
		run_check "$f" 240 tests/fuzz/run.sh "$f" "${WEIR_FUZZ_SECONDS:-12}"
	done
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

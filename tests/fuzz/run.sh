#!/bin/bash
# run.sh - build one libFuzzer target and run it for a bounded time.
#
#   tests/fuzz/run.sh tests/fuzz/fuzz-NAME.c [SECONDS]
#
# Each target names what it links in a comment line of its own:
#   fuzz-sources: lib/log.c lib/xalloc.c ...
#   fuzz-pkg: libconfig libevent        (pkg-config modules, optional)
# "@config" in fuzz-sources stands for everything the configuration
# loader links (CONFIG_SOURCES below: the one list to keep up to date when
# a setting's parser moves into a new file), and "@config" in fuzz-pkg for
# the packages those need (CONFIG_PKGS).
# Seeds live in tests/fuzz/corpus/NAME/; the run's new inputs go to a
# scratch copy, so the committed corpus only changes by hand. A crash
# leaves its input in tests/results/fuzz/ and fails the run.
set -eu
src=$1
secs=${2:-20}
top=$(cd "$(dirname "$0")/../.." && pwd)
name=$(basename "$src" .c)
out=$top/tests/results/fuzz
mkdir -p "$out"
cd "$top"
CONFIG_SOURCES="lib/log.c lib/xalloc.c lib/endpoint.c lib/cidr.c lib/strmap.c lib/strbuf.c
	lib/daemon.c policy/config.c policy/settings.c policy/address.c policy/senders.c
	policy/dkim_keys.c policy/rate_limits.c policy/routes.c policy/credentials.c
	policy/config_entry.c lib/secret_file.c policy/throttle_config.c policy/throttle_rules.c
	policy/webhook_config.c lib/httpd.c policy/bounce_rules.c"
# the packages those need (with a target's own fuzz-pkg)
CONFIG_PKGS="libconfig sqlite3 openssl libmicrohttpd gmime-3.0 libcurl"
sources=$(sed -n 's/.*fuzz-sources: *//p' "$src" | head -1)
sources=${sources//@config/$CONFIG_SOURCES}
pkgs=$(sed -n 's/.*fuzz-pkg: *//p' "$src" | head -1)
pkgs=${pkgs//@config/$CONFIG_PKGS}
flags=""
[ -n "$pkgs" ] && flags=$(pkg-config --cflags --libs $pkgs)
[ -f autoconf.h ] || { echo "run ./configure first (autoconf.h is missing)"; exit 1; }
# shellcheck disable=SC2086
clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$top" -o "$out/$name" "$src" $sources $flags -lpthread
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "tests/fuzz/corpus/$name" ]; then
	cp -r "tests/fuzz/corpus/$name/." "$work/"
fi
cd "$out"
"./$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$out/$name-" "$work"

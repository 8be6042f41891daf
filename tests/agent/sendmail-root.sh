#!/bin/bash
# tests/agent/sendmail-root.sh DIR - a private Sendmail for
# tests/integration/370-agent-contrib.sh: Debian's sendmail-bin (and
# libwrap0) unpacked into DIR with dpkg -x, not installed (it conflicts
# with postfix); the binary's setgid bit dropped so that LD_LIBRARY_PATH
# works. Needs apt (it downloads the two packages). Then:
#     WEIR_SENDMAIL_ROOT=DIR tests/integration/370-agent-contrib.sh
set -eu
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download sendmail-bin libwrap0 >/dev/null)
for f in "$work"/*.deb; do dpkg -x "$f" "$dir"; done
chmod g-s "$dir/usr/libexec/sendmail/sendmail"
echo "WEIR_SENDMAIL_ROOT=$dir"

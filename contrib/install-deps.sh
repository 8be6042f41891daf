#!/bin/sh
# install-deps.sh - install the Debian 12 packages weir needs (as root).
# Postfix is pre-seeded with "No configuration" so nothing prompts and
# the machine's own mail setup is not touched.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pkgs=$(grep -v '^#' "$here/debian-packages.txt" | tr '\n' ' ')
if [ "$(id -u)" != 0 ]; then
	echo "install-deps.sh: run as root (it uses apt-get)" >&2
	exit 1
fi
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
# npm (the dashboard's charting package is fetched from the npm registry
# at build time): Debian's package only where no npm is installed yet
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "install-deps.sh: installing$missing"
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null

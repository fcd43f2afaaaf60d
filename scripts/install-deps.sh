#!/usr/bin/env bash
# Installs what ringlm needs to build and test, from Debian's packages, only
# when something is missing. Runs as root or through sudo.
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in build-essential cmake pkg-config libjansson-dev libpcre2-dev libicu-dev libmicrohttpd-dev \
         python3-torch python3-numpy python3-jinja2 clang libclang-rt-14-dev; do
  have_pkg "$p" || need+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2

#!/bin/sh
# Installs every Debian 12 package calypso-purse needs to build, test, demo and bench.
# Idempotent: re-running it only installs what is missing.
set -eu

PKGS="
  build-essential pkg-config ca-certificates openssl curl
  lua5.4 liblua5.4-dev
  lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev
  luajit2 libluajit2-5.1-dev
  luarocks lua-cjson lua-cjson-dev lua-busted lua-socket lua-luaossl
  libcurl4-openssl-dev libmbedtls-dev
  nginx libnginx-mod-http-lua
  valgrind clang libclang-rt-14-dev
  lua-curl lua-http
  lua-sec
  lua-check
"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# Debian's nginx package starts a system nginx on port 80; the project never needs it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  $SUDO systemctl stop nginx || true
fi

#!/bin/sh
# Runs the busted suite in-tree on one Lua runtime: scripts/run-specs.sh 5.4 [busted args]
# (runtime: 5.1, 5.2, 5.3, 5.4 or jit). The C module comes from build/<runtime>/.
set -eu
v=${1:-5.4}
[ $# -gt 0 ] && shift
case "$v" in
  jit) lua=luajit ;;
  *) lua=lua$v ;;
esac
cd "$(dirname "$0")/.."
LUA_CPATH="build/$v/?.so;;" CALYPSO_MOCK_LUA="$lua" \
  exec "$lua" /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' "$@"

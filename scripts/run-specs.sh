#!/bin/sh
# Runs the busted suite in-tree on one Lua runtime: scripts/run-specs.sh 5.4 [busted args]
# (runtime: 5.1, 5.2, 5.3, 5.4 or jit). The C module comes from build/<runtime>/.
# Ends with one line "N passed, N failed" for CI logs.
set -eu
v=${1:-5.4}
[ $# -gt 0 ] && shift
case "$v" in
  jit) lua=luajit ;;
  *) lua=lua$v ;;
esac
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
LUA_CPATH="build/$v/?.so;;" CALYPSO_MOCK_LUA="$lua" \
  "$lua" /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' "$@" >"$log" 2>&1 || status=$?
cat "$log"
summary=$(grep -E '^[0-9]+ successe?s? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -n 1 || true)
passed=$(echo "$summary" | sed -E 's#^([0-9]+) success.*#\1#')
failed=$(echo "$summary" | sed -E 's#^[0-9]+ successe?s? / ([0-9]+) failures? / ([0-9]+) error.*#\1 \2#' | awk '{print $1 + $2}')
[ -n "$summary" ] || { echo "run-specs: busted printed no summary (lua $v)"; exit 1; }
echo "lua $v: $passed passed, $failed failed"
exit $status

#!/bin/sh
# The whole test run behind `make test` (after deps, build and the rock check):
#   1. the busted suite on every installed runtime (5.4 first; 5.1, 5.2, 5.3, LuaJIT),
#   2. the stages other scripts provide when present (lint, nginx, sanitizers, valgrind,
#      fuzz smoke), each a script under scripts/ that exits non-zero on failure,
#   3. the quickstart from the installed rocks (make rock: calypso-purse and calypso-purse-mock),
#   4. the release check: one version everywhere, the release rockspecs packed into source
#      rocks and installed offline into a temporary tree (scripts/check-release.sh).
# Ends with one line "N passed, N failed" over all busted runs.
set -u
cd "$(dirname "$0")/.."
total_pass=0
total_fail=0
failed_stages=""

run_stage() {   # name, command... (its "lua X: N passed, M failed" line, if any, counts)
  name=$1
  shift
  echo "=== $name"
  if ! "$@" >"$stage_log" 2>&1; then
    failed_stages="$failed_stages $name"
  fi
  cat "$stage_log"
  count "$stage_log"
}

count() {       # adds the "lua X: N passed, M failed" line of a log to the totals
  line=$(grep -E '^lua [^:]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
  [ -n "$line" ] || return 0
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
}

log=$(mktemp)
stage_log=$(mktemp)
trap 'rm -f "$log" "$stage_log"' EXIT
for v in 5.4 5.1 5.2 5.3 jit; do
  case "$v" in jit) bin=luajit ;; *) bin=lua$v ;; esac
  command -v "$bin" >/dev/null 2>&1 || { echo "=== lua $v: not installed, skipped"; continue; }
  make -s build LUA_VERSION="$v" || { failed_stages="$failed_stages build-$v"; continue; }
  echo "=== busted on lua $v"
  if sh scripts/run-specs.sh "$v" >"$log" 2>&1; then :; else failed_stages="$failed_stages lua-$v"; fi
  tail -n 40 "$log" | grep -v '^[+-]*$' || true
  count "$log"
done

for stage in lint test-nginx sanitize valgrind fuzz-smoke check-docs; do
  [ -f "scripts/$stage.sh" ] && run_stage "$stage" sh "scripts/$stage.sh"
done

run_stage quickstart env \
  LUA_PATH="build/rocks/share/lua/5.4/?.lua;build/rocks/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="build/rocks/lib/lua/5.4/?.so;;" lua5.4 examples/quickstart.lua

run_stage release sh scripts/check-release.sh 5.4

echo
if [ -n "$failed_stages" ]; then
  echo "FAILED stages:$failed_stages"
fi
echo "$total_pass passed, $total_fail failed"
[ -z "$failed_stages" ] && [ "$total_fail" -eq 0 ]

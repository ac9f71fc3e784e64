#!/bin/sh
# The busted suite under valgrind memcheck, with the normal build of the core (-O2 -g):
# invalid reads/writes, uses of uninitialised memory and DEFINITE leaks are errors
# (--error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite). The specs' child
# processes (the mock, helper interpreters) are not traced: they run the same core paths the
# main process already exercises. Suppressions (scripts/valgrind.supp) cover only libraries
# that are not ours, each with its reason.
# VALGRIND_SPECS picks the spec files (default: all); VALGRIND_RUNTIME the runtime (5.4).
# Exits non-zero on any error or failing spec. Stage of scripts/test.sh (`make test`).
set -u
cd "$(dirname "$0")/.."
v=${VALGRIND_RUNTIME:-5.4}
case "$v" in jit) lua=luajit ;; *) lua=lua$v ;; esac
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed"; exit 1; }
make -s build LUA_VERSION="$v" || exit 1
VG="valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --num-callers=30 --trace-children=no --suppressions=scripts/valgrind.supp"

# Canaries: a heap overflow and a leak in a tiny module must fail under these very options.
mkdir -p build/valgrind
cc -std=c99 -g -O0 -fPIC -shared -I/usr/include/lua5.4 -o build/valgrind/canary.so scripts/canary.c || exit 1
for bug in "overflow(8)" "leak()"; do
  # shellcheck disable=SC2086
  if LUA_CPATH="build/valgrind/?.so" $VG lua5.4 -e "require('canary').$bug" >/dev/null 2>&1; then
    echo "valgrind: the canary $bug was NOT caught: the memcheck set-up is broken"
    exit 1
  fi
done
echo "valgrind: canaries caught (heap overflow, definite leak)"

# RSS judged under valgrind measures valgrind; memcheck's own leak check guards that instead.
RSS_TESTS="gives their C memory back"
# The pure-Lua reader fed every split of the hostile corpus: no C code to check, and its own
# CPU-time watchdog (2 s per read) fires at valgrind's speed.
CPU_TESTS="rv_split_everywhere"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
# shellcheck disable=SC2086
LUA_CPATH="build/$v/?.so;;" CALYPSO_MOCK_LUA="$lua" \
  $VG "$lua" /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' --filter-out="$RSS_TESTS" \
    --filter-out="$CPU_TESTS" \
    ${VALGRIND_SPECS:-} "$@" >"$log" 2>&1
rc=$?
errors=$(grep -E '== ERROR SUMMARY: [0-9]+ errors' "$log" | tail -n 1 | sed -E 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/')
summary=$(grep -E '^[0-9]+ successe?s? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -n 1)
if [ "$rc" -ne 0 ]; then
  grep -E '^==[0-9]+==' "$log" | head -n 150
  grep -A12 -E '^(Failure|Error) ->' "$log" | head -n 80
fi
echo "valgrind lua $v: ${summary:-no summary}, memcheck errors ${errors:-?}, $(( $(date +%s) - start )) s"
p=$(echo "$summary" | sed -nE 's#^([0-9]+) success.*#\1#p')
f=$(echo "$summary" | sed -nE 's#^[0-9]+ successe?s? / ([0-9]+) failures? / ([0-9]+) error.*#\1 \2#p' | awk '{print $1 + $2}')
[ "$rc" -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1   # a memcheck finding fails the run: count it
echo "lua $v valgrind: ${p:-0} passed, ${f:-1} failed"   # counted by scripts/test.sh
exit $rc

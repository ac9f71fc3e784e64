#!/bin/sh
# The whole busted suite with the C core built with ASan + UBSan (-fno-sanitize-recover=all:
# the first finding aborts). Debian's interpreters are not instrumented, so the ASan runtime
# is preloaded; leak detection is on (LeakSanitizer), with suppressions in
# scripts/lsan.supp for leaks of programs that are not ours (see that file).
# Runtimes: SANITIZE_RUNTIMES (default "5.4 5.1": the newest API and the compat shims).
# Extra arguments go to busted (a spec file, --filter=...).
# Exits non-zero on any finding or failing spec. Stage of scripts/test.sh (`make test`).
set -u
cd "$(dirname "$0")/.."
runtimes=${SANITIZE_RUNTIMES:-5.4 5.1}
cc=${SAN_CC:-cc}
asan=$($cc -print-file-name=libasan.so)
[ -f "$asan" ] || { echo "sanitize: $cc has no libasan.so ($asan)"; exit 1; }
SAN_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
# abort_on_error: a finding kills the process (no spec can swallow it); the children the
# specs start (the mock, helper interpreters) inherit the runtime and these options.
ASAN_OPTS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
LSAN_OPTS="suppressions=$(pwd)/scripts/lsan.supp:print_suppressions=0"
UBSAN_OPTS="halt_on_error=1:print_stacktrace=1"
# Tests that judge RSS: under ASan it measures the allocator's quarantine, not the core.
# The leak checks (LeakSanitizer here, memcheck in scripts/valgrind.sh) cover what they guard.
RSS_TESTS="gives their C memory back"
status=0

# Canaries: a tiny module with one bug of each kind must be caught with the very options the
# suite runs under, or a green run would prove nothing.
mkdir -p build/asan
$cc -std=c99 -g -fPIC -shared $SAN_FLAGS -I/usr/include/lua5.4 -o build/asan/canary.so scripts/canary.c
for bug in "overflow(8)" "leak()" "signed_overflow(2147483647)"; do
  if out=$(LD_PRELOAD="$asan" ASAN_OPTIONS="$ASAN_OPTS" LSAN_OPTIONS="$LSAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
           LUA_CPATH="build/asan/?.so" lua5.4 -e "require('canary').$bug" 2>&1); then
    echo "sanitize: the canary $bug was NOT caught: the sanitizer set-up is broken"
    echo "$out" | tail -n 5
    exit 1
  fi
  echo "$out" | grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' ||
    { echo "sanitize: canary $bug failed without a sanitizer report:"; echo "$out" | tail -n 5; exit 1; }
done
echo "sanitize: canaries caught (heap overflow, leak, signed overflow)"

for v in $runtimes; do
  case "$v" in jit) lua=luajit ;; *) lua=lua$v ;; esac
  start=$(date +%s)
  make -s "build/asan/$v/calypso/purse.so" SAN_CC="$cc" || { status=1; continue; }
  log=$(mktemp)
  LD_PRELOAD="$asan" ASAN_OPTIONS="$ASAN_OPTS" LSAN_OPTIONS="$LSAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
  LUA_CPATH="build/asan/$v/?.so;;" CALYPSO_MOCK_LUA="$lua" \
    "$lua" /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' \
      --filter-out="$RSS_TESTS" "$@" >"$log" 2>&1
  rc=$?
  findings=$(grep -cE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$log")
  summary=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    grep -B2 -A30 -E 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$log" | head -n 200
    tail -n 60 "$log"
    status=1
  fi
  echo "sanitize lua $v: ${summary:-no summary}, $findings sanitizer findings, $(( $(date +%s) - start )) s"
  rm -f "$log"
done
exit $status

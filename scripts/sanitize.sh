#!/bin/sh
# The whole busted suite with the C core built with ASan + UBSan (-fno-sanitize-recover=all:
# the first finding aborts). Debian's interpreters are not instrumented, so the compiler's
# ASan runtime is preloaded; leak detection is on (LeakSanitizer), with suppressions in
# scripts/lsan.supp for programs that are not ours (none needed so far).
# SANITIZE_RUNS picks runtime:compiler pairs (default "5.4:clang 5.3:gcc 5.1:clang": clang's UBSan checks
# more - null pointer offsets, float casts, function types - and gcc builds what most users
# ship; 5.3 propagates errors raised by __gc out of the core's allocations, 5.1 takes the
# compat shims). Extra arguments go to busted (a spec file, --filter=...).
# Exits non-zero on any finding or failing spec. Stage of scripts/test.sh (`make test`).
set -u
cd "$(dirname "$0")/.."
runs=${SANITIZE_RUNS:-5.4:clang 5.3:gcc 5.1:clang}
multiarch=$(cc -print-multiarch)
SAN_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
# abort_on_error: a finding kills the process (no spec can swallow it); the children the
# specs start (the mock, helper interpreters) inherit the runtime and these options.
ASAN_OPTS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
LSAN_OPTS="suppressions=$(pwd)/scripts/lsan.supp:print_suppressions=0"
UBSAN_OPTS="halt_on_error=1:print_stacktrace=1"
# Tests that judge RSS: under ASan that measures the allocator's quarantine, not the core.
# The leak checks (LeakSanitizer here, memcheck in scripts/valgrind.sh) guard the same thing.
RSS_TESTS="gives their C memory back"

asan_runtime() {  # compiler -> the ASan runtime to preload
  case "$1" in
    clang*) "$1" -print-file-name=libclang_rt.asan-x86_64.so ;;
    *) "$1" -print-file-name=libasan.so ;;
  esac
}

lua_inc() {       # runtime -> its headers
  case "$1" in jit) echo /usr/include/luajit-2.1 ;; *) echo "/usr/include/lua$1" ;; esac
}

# Canaries: a tiny module with one bug of each kind must be caught with the very compiler and
# options the suite runs under, or a green run would prove nothing.
canaries() {      # compiler, extra flags, runtime to preload
  mkdir -p "build/asan-$1"
  # shellcheck disable=SC2086
  $1 -std=c99 -g -fPIC -shared $SAN_FLAGS $2 -I/usr/include/lua5.4 -o "build/asan-$1/canary.so" \
    scripts/canary.c || return 1
  for bug in "overflow(8)" "leak()" "signed_overflow(2147483647)"; do
    if out=$(LD_PRELOAD="$3" ASAN_OPTIONS="$ASAN_OPTS" LSAN_OPTIONS="$LSAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
             LUA_CPATH="build/asan-$1/?.so" lua5.4 -e "require('canary').$bug" 2>&1); then
      echo "sanitize: the canary $bug was NOT caught with $1: the set-up is broken"
      echo "$out" | tail -n 5
      return 1
    fi
    echo "$out" | grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' ||
      { echo "sanitize: canary $bug failed without a sanitizer report ($1):"; echo "$out" | tail -n 5; return 1; }
  done
  echo "sanitize: $1 canaries caught (heap overflow, leak, signed overflow)"
}

status=0
all_pass=0
all_fail=0
for run in $runs; do
  v=${run%%:*}
  cc=${run#*:}
  case "$v" in jit) lua=luajit ;; *) lua=lua$v ;; esac
  start=$(date +%s)
  asan=$(asan_runtime "$cc")
  [ -f "$asan" ] || { echo "sanitize: $cc has no ASan runtime ($asan)"; status=1; continue; }
  extra=""
  case "$cc" in clang*) extra="-shared-libsan" ;; esac
  canaries "$cc" "$extra" "$asan" 2>/dev/null || { status=1; continue; }
  so=build/asan-$cc/$v/calypso/purse.so
  mkdir -p "$(dirname "$so")"
  # shellcheck disable=SC2086
  $cc -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $SAN_FLAGS $extra \
    -I"$(lua_inc "$v")" -I"/usr/include/$multiarch" -shared -o "$so" src/*.c -lcurl -lmbedcrypto ||
    { status=1; continue; }
  log=$(mktemp)
  for attempt in 1 2; do
    LD_PRELOAD="$asan" ASAN_OPTIONS="$ASAN_OPTS" LSAN_OPTIONS="$LSAN_OPTS" UBSAN_OPTIONS="$UBSAN_OPTS" \
    LUA_CPATH="build/asan-$cc/$v/?.so;;" CALYPSO_MOCK_LUA="$lua" \
      "$lua" /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' \
        --filter-out="$RSS_TESTS" "$@" >"$log" 2>&1
    rc=$?
    findings=$(grep -cE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$log")
    # LeakSanitizer's own tracer thread now and then dies of a SIGSEGV while it stops the
    # world at exit (seen once in CI with gcc 12's libasan on this AVX-512 machine). That is
    # the sanitizer runtime failing, not a finding: run once more, and say so.
    if [ "$attempt" = 1 ] && [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ] &&
       grep -q 'Tracer caught signal' "$log"; then
      echo "sanitize lua $v ($cc): LeakSanitizer's tracer crashed (runtime fault, no finding); running again"
      continue
    fi
    break
  done
  summary=$(grep -E '^[0-9]+ successe?s? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    grep -B2 -A30 -E 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$log" | head -n 200
    tail -n 60 "$log"
    status=1
  fi
  echo "sanitize lua $v ($cc): ${summary:-no summary}, $findings sanitizer findings, $(( $(date +%s) - start )) s"
  p=$(echo "$summary" | sed -nE 's#^([0-9]+) success.*#\1#p')
  f=$(echo "$summary" | sed -nE 's#^[0-9]+ successe?s? / ([0-9]+) failures? / ([0-9]+) error.*#\1 \2#p' | awk '{print $1 + $2}')
  all_pass=$((all_pass + ${p:-0}))
  all_fail=$((all_fail + ${f:-1} + findings))
  rm -f "$log"
done
echo "lua sanitizers: $all_pass passed, $all_fail failed"   # counted by scripts/test.sh
exit $status

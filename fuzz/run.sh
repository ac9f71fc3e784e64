#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60): fuzz/run.sh [SECONDS] [target...]
# Each starts from its seed corpus (fuzz/corpus/<target>/, read only) plus the inputs found
# by earlier runs on this machine (FUZZ_WORK/<target>/, default build/fuzz/work). A crash, a broken contract, a
# leak or a timeout stops that target with its input saved in build/fuzz/artifacts/, and the
# script exits non-zero. Prints one line per target: executions, new inputs, outcome.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-finish webhook prepare}
sh fuzz/build.sh >/dev/null || { echo "fuzz: build failed"; sh fuzz/build.sh; exit 1; }
mkdir -p build/fuzz/artifacts
work=${FUZZ_WORK:-build/fuzz/work}
status=0
total=0
for t in $targets; do
  mkdir -p "$work/$t"
  log="build/fuzz/$t.log"
  # -max_len: the cap keeps inputs meaningful (payload programs, bodies) and runs fast;
  # -timeout: one input taking 10 s is a finding; ASan/UBSan options make every finding fatal.
  # -detect_leaks=0: libFuzzer's per-input leak check compares malloc and free counts, which a
  # garbage-collected Lua heap never balances within one input, so it would run a full leak
  # scan on almost every new input (100x slower) and prove nothing; leaks are the business of
  # LeakSanitizer at exit and of scripts/sanitize.sh and scripts/valgrind.sh.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "./build/fuzz/$t" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 \
      -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/"$t"- \
      "$work/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n 1)
  corpus=$(ls "$work/$t" | wc -l)
  if [ "$rc" -ne 0 ]; then
    grep -B5 -A25 -E 'ERROR|contract broken|runtime error|deadly signal' "$log" | head -n 60
    echo "fuzz $t: FAILED after ${execs:-?} executions (exit $rc); input in build/fuzz/artifacts/"
    status=1
  else
    echo "fuzz $t: ${execs:-?} executions in $secs s, 0 crashes, $corpus inputs found so far"
  fi
  total=$((total + ${execs:-0}))
done
echo "fuzz: $total executions in all"
exit $status

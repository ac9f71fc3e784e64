#!/bin/sh
# Stage of scripts/test.sh (`make test`): every libFuzzer target for a few seconds
# (FUZZ_SMOKE_SECONDS, default 5) from its seed corpus, which includes the inputs of past
# findings (fuzz/corpus/*/regress-*). Non-zero on any crash, broken contract or leak.
# `make fuzz` is the long run (60 s per target by default).
set -u
cd "$(dirname "$0")/.."
command -v clang >/dev/null 2>&1 || command -v clang-14 >/dev/null 2>&1 ||
  { echo "fuzz-smoke: clang is not installed (scripts/install-deps.sh installs it)"; exit 1; }
# A fresh work corpus each time: the seconds go to mutating from the seeds, not to replaying
# what earlier runs on this machine found (make fuzz keeps that in build/fuzz/work).
work=build/fuzz/smoke-work
rm -rf "$work"
FUZZ_WORK=$work exec sh fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-5}"

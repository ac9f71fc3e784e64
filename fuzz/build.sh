#!/bin/sh
# Builds the libFuzzer targets into build/fuzz/: fuzz/driver.c plus every src/*.c, compiled
# with clang -fsanitize=fuzzer,address,undefined (every UB finding fatal), linked against
# Debian's liblua5.4. The target's contract lives in fuzz/<target>.lua.
set -eu
cd "$(dirname "$0")/.."
CLANG=${FUZZ_CC:-clang}
command -v "$CLANG" >/dev/null 2>&1 || CLANG=clang-14
root=$(pwd)
multiarch=$(cc -print-multiarch)
mkdir -p build/fuzz
for t in finish webhook prepare; do
  out=build/fuzz/$t
  # rebuild only when a source changed
  if [ -x "$out" ] && [ -z "$(find src fuzz/driver.c -newer "$out" -name '*.[ch]' 2>/dev/null)" ]; then
    continue
  fi
  $CLANG -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -DFUZZ_ROOT="\"$root\"" -DFUZZ_TARGET="\"$t\"" \
    -I/usr/include/lua5.4 -I"/usr/include/$multiarch" -Isrc \
    -o "$out" fuzz/driver.c src/*.c -llua5.4 -lcurl -lmbedcrypto
done
echo "fuzz: targets built in build/fuzz (finish webhook prepare)"

#!/bin/sh
# Builds and runs fuzz/wipe_test.c (see there): fuzz/wipe_test.sh [binary path]
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/wipe_test}
mkdir -p "$(dirname "$out")"
if [ ! -x "$out" ] || [ -n "$(find src fuzz/wipe_test.c -newer "$out" -name '*.[ch]' 2>/dev/null)" ]; then
  cc -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-builtin -Isrc -I/usr/include/lua5.4 \
    -I"/usr/include/$(cc -print-multiarch)" -o "$out" fuzz/wipe_test.c src/*.c \
    -llua5.4 -lcurl -lmbedcrypto -ldl -lm
fi
exec "$out"

#!/bin/sh
# Lints every Lua file with luacheck (Debian's lua-check) under .luacheckrc; any warning fails.
# Ends with one line "lua lint: N passed, M failed" (1 passed when clean) for scripts/test.sh.
set -u
cd "$(dirname "$0")/.."
command -v luacheck >/dev/null 2>&1 || {
  echo "lint: luacheck not found (Debian package lua-check: sh scripts/install-deps.sh)"
  echo "lua lint: 0 passed, 1 failed"
  exit 1
}
if luacheck -q .; then
  echo "lua lint: 1 passed, 0 failed"
else
  echo "lua lint: 0 passed, 1 failed"
  exit 1
fi

#!/bin/sh
# check-exports.sh SO...: each shared object must define exactly one dynamic symbol,
# luaopen_calypso_purse. Everything else in the C core is static or built with
# -fvisibility=hidden (Makefile BASE_CFLAGS, the rock's build included): an internal
# calypso_* function that leaked could be bound by another module loaded into the same
# process, or bind to one. Run by spec/packaging_spec.lua (the module under test),
# scripts/test-nginx.sh (the LuaJIT rock) and scripts/check-release.sh (the release rock).
set -u
command -v nm >/dev/null 2>&1 || { echo "check-exports: nm (binutils) not found"; exit 1; }
status=0
for so in "$@"; do
  [ -f "$so" ] || { echo "check-exports: $so: no such file"; status=1; continue; }
  defined=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' | sort | tr '\n' ' ')
  if [ "$defined" = "luaopen_calypso_purse " ]; then
    echo "check-exports: $so defines only luaopen_calypso_purse"
  else
    echo "check-exports: $so defines: $defined(expected only luaopen_calypso_purse)"
    status=1
  fi
done
exit $status

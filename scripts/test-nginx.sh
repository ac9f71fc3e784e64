#!/bin/sh
# The nginx stage of `make test`: calypso.transport.ngx in a real, private nginx
# (Debian's nginx + libnginx-mod-http-lua) on 127.0.0.1, against the bundled mock.
#   scripts/test-nginx.sh [busted args]
# Builds the C core for LuaJIT (build/jit, the runtime nginx's lua module embeds), then runs
# spec/nginx_spec.lua and spec/hostile_spec.lua (the hostile corpus through nginx and through
# libcurl) with busted under lua5.4 (the specs only talk HTTP to nginx, with luasocket). nginx runs with its own prefix under /tmp and is stopped by the spec; a
# watchdog stops it too if the spec dies. Then runs examples/openresty/run.sh (the example
# config against the mock) as one more check. Ends with "lua ngx: N passed, M failed".
set -eu
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "test-nginx: nginx is not installed (scripts/install-deps.sh installs it)"
  echo "lua ngx: 0 passed, 1 failed"
  exit 1
fi
if [ ! -f /usr/share/nginx/modules/ngx_http_lua_module.so ]; then
  echo "test-nginx: libnginx-mod-http-lua is not installed (scripts/install-deps.sh installs it)"
  echo "lua ngx: 0 passed, 1 failed"
  exit 1
fi
make -s build LUA_VERSION=jit
make -s build LUA_VERSION=5.4
# The rock as the README tells OpenResty users to build it (LuaJIT's headers), from a copy of
# the sources so that the build leaves nothing in the tree; the spec loads it in nginx too.
root=$(pwd)
rockdir=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$rockdir" "$log"' EXIT
cp -r src lua bin library Makefile calypso-purse-scm-1.rockspec README.md LICENSE "$rockdir/"
rm -rf build/rocks-jit
rock_ok=1
(cd "$rockdir" && luarocks --lua-version 5.1 --tree "$root/build/rocks-jit" make --deps-mode=none \
   LUA_INCDIR=/usr/include/luajit-2.1) >"$log" 2>&1 || { cat "$log"; rock_ok=0; }
chmod -R a+rX build/rocks-jit 2>/dev/null || true
# that rock's module exports luaopen_calypso_purse and nothing else
if [ "$rock_ok" -eq 1 ] && ! sh scripts/check-exports.sh build/rocks-jit/lib/lua/5.1/calypso/purse.so; then
  rock_ok=0
fi
status=0
CALYPSO_NGINX_SPEC=1 CALYPSO_ROCK_JIT="$root/build/rocks-jit" LUA_CPATH="build/5.4/?.so;;" CALYPSO_MOCK_LUA=lua5.4 \
  lua5.4 /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' spec/nginx_spec.lua spec/hostile_spec.lua spec/nginx_pools_spec.lua spec/nginx_stray_bytes_spec.lua spec/nginx_cpu_spec.lua spec/nginx_fork_spec.lua spec/nginx_writes_spec.lua "$@" \
  >"$log" 2>&1 || status=$?
cat "$log"
summary=$(grep -E '^[0-9]+ successe?s? / [0-9]+ failures? / [0-9]+ errors?' "$log" | tail -n 1 || true)
[ -n "$summary" ] || { echo "test-nginx: busted printed no summary"; echo "lua ngx: 0 passed, 1 failed"; exit 1; }
passed=$(echo "$summary" | sed -E 's#^([0-9]+) success.*#\1#')
failed=$(echo "$summary" | sed -E 's#^[0-9]+ successe?s? / ([0-9]+) failures? / ([0-9]+) error.*#\1 \2#' | awk '{print $1 + $2}')
if [ "$rock_ok" -eq 0 ]; then
  echo "test-nginx: luarocks --lua-version 5.1 make LUA_INCDIR=/usr/include/luajit-2.1 failed, or its module leaks symbols"
  failed=$((failed + 1))
  status=1
fi
echo "=== examples/openresty/run.sh"
if sh examples/openresty/run.sh; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi
echo "lua ngx: $passed passed, $failed failed"
exit $status

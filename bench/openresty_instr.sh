#!/bin/sh
# bench/openresty_instr.sh MODE N BENCH_PORT: user-space instructions that one nginx worker
# (single process, under callgrind) spends serving /loop?mode=MODE&n=N (bench/openresty.lua:
# N sequential calls to the bench server on 127.0.0.1:BENCH_PORT). Prints "refs=<count>".
# make bench runs it for N+1 and 1 calls and takes the difference per call. Bounded: the
# nginx under valgrind is stopped after the request, and `timeout` stops it regardless.
set -eu
mode=$1 n=$2 bench_port=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(mktemp -d /tmp/calypso-bench-instr.XXXXXX)
chmod 755 "$prefix"
trap 'rm -rf "$prefix"' EXIT
port=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); print(p); s:close()')
cat > "$prefix/nginx.conf" <<CONF
load_module /usr/share/nginx/modules/ndk_http_module.so;
load_module /usr/share/nginx/modules/ngx_http_lua_module.so;
master_process off;
daemon off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $prefix/body; proxy_temp_path $prefix/proxy; fastcgi_temp_path $prefix/fcgi;
  uwsgi_temp_path $prefix/uwsgi; scgi_temp_path $prefix/scgi;
  lua_package_path "$repo/lua/?.lua;$repo/lua/?/init.lua;;";
  lua_package_cpath "$repo/build/jit/?.so;;";
  server {
    listen 127.0.0.1:$port;
    location /loop { content_by_lua_file $repo/bench/openresty.lua; }
  }
}
CONF
timeout 600 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
  nginx -p "$prefix" -c "$prefix/nginx.conf" >"$prefix/valgrind.log" 2>&1 &
vg=$!
up=
for _ in $(seq 150); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then up=1; break; fi
  kill -0 $vg 2>/dev/null || break
  sleep 0.2
done
[ -n "$up" ] || { cat "$prefix/valgrind.log" "$prefix/error.log" >&2; kill $vg 2>/dev/null; exit 1; }
curl -s --max-time 300 "http://127.0.0.1:$port/loop?port=$bench_port&n=$n&mode=$mode" >/dev/null
kill -QUIT "$(cat "$prefix/nginx.pid")"
wait $vg || true
refs=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$prefix/valgrind.log" | tr -d ,)
[ -n "$refs" ] || { cat "$prefix/valgrind.log" >&2; exit 1; }
echo "refs=$refs"

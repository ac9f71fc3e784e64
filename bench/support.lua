-- bench/support.lua: what the bench scripts share: shell commands, free loopback
-- ports, RSS, and a private nginx that listens on 127.0.0.1 only and stops by itself.
local socket = require "socket"

local M = {}

--- Runs a shell command; returns its output (stdout and stderr), raises on failure.
function M.sh(cmd)
   local f = assert(io.popen("(" .. cmd .. ") 2>&1"))
   local out = f:read("*a")
   local ok, _, code = f:close()
   if ok ~= true and ok ~= 0 then
      error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out), 2)
   end
   return out
end

--- A port nothing listens on right now (127.0.0.1).
function M.free_port()
   local s = assert(socket.bind("127.0.0.1", 0))
   local _, port = s:getsockname()
   s:close()
   return port
end

--- This process's resident set size in KiB (Linux).
function M.rss_kib()
   local f = assert(io.open("/proc/self/statm"))
   f:read("*n")
   local pages = f:read("*n")
   f:close()
   return pages * 4
end

--- A fresh local CA and a server certificate for 127.0.0.1 (SAN IP:127.0.0.1, DNS:localhost),
-- valid 2 days, in a new world-readable directory: ca.pem, srv.pem, srv.key. Returns its path.
-- extra_san: more subjectAltName entries (",DNS:127.0.0.1": nginx's cosocket TLS checks the name
-- it is given against DNS names only).
function M.ca(extra_san)
   local certs = M.sh("mktemp -d /tmp/calypso-bench-ca.XXXXXX"):gsub("%s+$", "")
   M.sh(("(cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=calypso-bench-ca " ..
         "-keyout ca.key -out ca.pem && " ..
         "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr && " ..
         "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost%s' > ext.cnf && " ..
         "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 " ..
         "-extfile ext.cnf -out srv.pem) >/dev/null 2>&1")
        :format(certs, extra_san or ""))
   M.sh("chmod 755 " .. certs .. " && chmod 644 " .. certs .. "/*")
   return certs
end

--- Starts a private nginx in a fresh world-readable prefix (workers run as nobody).
-- opts.http(prefix) returns what goes inside http { } after the common settings;
-- opts.lua loads the NDK and ngx_lua modules (absolute paths, in that order);
-- opts.port is awaited (bounded) before returning; opts.lifetime (seconds) bounds the
-- process: it runs under `timeout`, so it stops by itself even if this script dies.
-- Returns { prefix = ..., stop = function }.
function M.nginx(opts)
   local prefix = M.sh("mktemp -d /tmp/calypso-bench.XXXXXX"):gsub("%s+$", "")
   M.sh("chmod 755 " .. prefix)
   local conf = {}
   if opts.lua then
      conf[#conf + 1] = "load_module /usr/share/nginx/modules/ndk_http_module.so;"
      conf[#conf + 1] = "load_module /usr/share/nginx/modules/ngx_http_lua_module.so;"
   end
   conf[#conf + 1] = ([[
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s/body; proxy_temp_path %s/proxy; fastcgi_temp_path %s/fcgi;
  uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
%s
}
]]):format(prefix, prefix, prefix, prefix, prefix, prefix, prefix, opts.http(prefix))
   local f = assert(io.open(prefix .. "/nginx.conf", "w"))
   f:write(table.concat(conf, "\n"))
   f:close()
   os.execute(("timeout %d nginx -p %s -c %s/nginx.conf -g 'daemon off;' >%s/stdout.log 2>&1 &")
      :format(opts.lifetime or 900, prefix, prefix, prefix))

   local server = { prefix = prefix }
   function server.stop()
      local pf = io.open(prefix .. "/nginx.pid")
      if pf then
         local pid = pf:read("*n")
         pf:close()
         if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      end
      os.execute("sleep 0.2; rm -rf " .. prefix)
   end
   for _ = 1, 100 do   -- at most ~15 s
      local c = socket.tcp()
      c:settimeout(0.1)
      local ok = c:connect("127.0.0.1", opts.port)
      c:close()
      if ok then return server end
      socket.sleep(0.05)
   end
   local logs = M.sh("cat " .. prefix .. "/*.log")
   server.stop()
   error("nginx did not start: " .. logs, 2)
end

return M

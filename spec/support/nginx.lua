-- A private nginx (Debian's nginx + libnginx-mod-http-lua) for the OpenResty specs.
--
--   local nginx = require("support.nginx")
--   local h = nginx.start{ http = "...", server = "location = /x { ... }" }
--   local status, body = h:request("POST", "/call", json_text)
--   h:stop()
--
-- Each instance gets its own prefix: a fresh directory under /tmp made world-readable (the
-- workers run as `nobody` when the master is root, and must read the config, the certificates
-- and the Lua files), with every temp path inside it and the error log at <prefix>/error.log.
-- The config loads the NDK module and then the lua module by absolute path, points
-- lua_package_path at the repo's lua/ and spec/nginx/ and lua_package_cpath at build/jit/
-- (the C core built against /usr/include/luajit-2.1), both ending in ";;", and listens on
-- 127.0.0.1 on a free port with one worker, `daemon off; master_process on`.
--
-- Lifetime: nginx is started in the background and stopped by its PID in h:stop() (TERM,
-- then KILL after 5 s). So that it can never outlive the test run, start() also launches a
-- small watchdog shell that sends TERM to that PID as soon as this Lua process has gone, or
-- after `lifetime` seconds (default 600) at the latest.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")

local M = {}

M.NGINX = os.getenv("NGINX") or "/usr/sbin/nginx"
M.MODULES = "/usr/share/nginx/modules"

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local function run(cmd)
   local ok = os.execute(cmd)
   return ok == true or ok == 0
end

local function read_file(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("*a")
   f:close()
   return s
end
M.read_file = read_file

local function write_file(path, text)
   local f = assert(io.open(path, "wb"))
   f:write(text)
   f:close()
end
M.write_file = write_file

--- The repository root (absolute), from this file's location.
function M.root()
   local src = debug.getinfo(1, "S").source:gsub("^@", "")
   local dir = src:match("^(.*)/spec/support/nginx%.lua$") or "."
   if dir:sub(1, 1) ~= "/" then
      local pwd = io.popen("pwd"):read("*l")
      dir = dir == "." and pwd or (pwd .. "/" .. dir)
   end
   return dir
end

--- A new world-readable directory under /tmp.
function M.tempdir(tag)
   local p = io.popen("mktemp -d /tmp/calypso-" .. (tag or "nginx") .. ".XXXXXX")
   local dir = p:read("*l")
   p:close()
   assert(dir and dir ~= "", "mktemp failed")
   assert(run("chmod 755 " .. shell_quote(dir)))
   return dir
end

--- A TCP port on 127.0.0.1 that was free a moment ago.
function M.free_port()
   local s = assert(socket.bind("127.0.0.1", 0))
   local _, port = s:getsockname()
   s:close()
   return tonumber(port)
end

-- This process's PID (Linux).
local function self_pid()
   local stat = read_file("/proc/self/stat")
   return stat and stat:match("^(%d+)")
end

-- True while `pid` is a live (not zombie) process.
local function alive(pid)
   local stat = read_file("/proc/" .. pid .. "/stat")
   if not stat then return false end
   local state = stat:match("^%d+ %b() (%a)")
   return state ~= "Z" and state ~= "X"
end
M.alive = alive

local Handle = {}
Handle.__index = Handle

--- The config text for a handle (see the header comment).
local function config(h, o)
   local root = M.root()
   local lua_path = (o.lua_path or table.concat({
      root .. "/lua/?.lua", root .. "/lua/?/init.lua",
   }, ";")) .. ";" .. root .. "/spec/nginx/?.lua;;"
   local lua_cpath = (o.lua_cpath or (root .. "/build/jit/?.so")) .. ";;"
   local p = h.prefix
   return table.concat({
      "daemon off;",
      "master_process on;",
      "worker_processes " .. (o.workers or 1) .. ";",
      "pid " .. p .. "/nginx.pid;",
      "error_log " .. p .. "/error.log " .. (o.log_level or "warn") .. ";",
      "load_module " .. M.MODULES .. "/ndk_http_module.so;",
      "load_module " .. M.MODULES .. "/ngx_http_lua_module.so;",
      "events { worker_connections 1024; }",
      "http {",
      "  access_log off;",
      "  client_body_temp_path " .. p .. "/tmp/body;",
      "  proxy_temp_path " .. p .. "/tmp/proxy;",
      "  fastcgi_temp_path " .. p .. "/tmp/fastcgi;",
      "  uwsgi_temp_path " .. p .. "/tmp/uwsgi;",
      "  scgi_temp_path " .. p .. "/tmp/scgi;",
      "  lua_package_path " .. ("%q"):format(lua_path) .. ";",
      "  lua_package_cpath " .. ("%q"):format(lua_cpath) .. ";",
      o.http or "",
      "  server {",
      "    listen 127.0.0.1:" .. h.port .. ";",
      o.server or "",
      "  }",
      o.servers or "",
      "}",
      "",
   }, "\n")
end

--- Starts nginx. opts: workers (worker processes, 1), http (text inside http {}), server (text
-- inside the main server {}),
-- servers (more server blocks inside http {}), port, log_level, lifetime (seconds, 600),
-- prefix (an existing world-readable directory to use), lua_path / lua_cpath (where
-- calypso comes from instead of the repo's lua/ and build/jit/; ";;" is appended). Returns a handle: .url, .port,
-- .prefix, .pid, :request(), :error_log(), :stop().
function M.start(opts)
   opts = opts or {}
   local h = setmetatable({}, Handle)
   h.prefix = opts.prefix or M.tempdir("nginx")
   h.port = opts.port or M.free_port()
   h.url = "http://127.0.0.1:" .. h.port
   assert(run("mkdir -p " .. shell_quote(h.prefix .. "/tmp") .. " " .. shell_quote(h.prefix .. "/logs")))
   h.conf = h.prefix .. "/nginx.conf"
   write_file(h.conf, config(h, opts))
   local parent = assert(self_pid(), "cannot read /proc/self/stat")
   local lifetime = math.floor(opts.lifetime or 600)
   local P = shell_quote(h.prefix)
   -- nginx in the background; its PID is written by the shell, not by nginx
   assert(run(("%s -p %s -e %s -c %s </dev/null >%s 2>&1 & echo $! >%s"):format(
      shell_quote(M.NGINX), P, shell_quote(h.prefix .. "/error.log"), shell_quote(h.conf),
      shell_quote(h.prefix .. "/stdout.log"), shell_quote(h.prefix .. "/started.pid"))))
   h.pid = (read_file(h.prefix .. "/started.pid") or ""):match("(%d+)")
   assert(h.pid, "nginx did not start")
   -- the watchdog: TERM to nginx once this process is gone or the lifetime is over
   -- (and, when this process died, removes a prefix that start() made itself)
   local cleanup = (not opts.prefix and h.prefix:match("^/tmp/calypso%-nginx%.[%w]+$"))
      and ("if ! kill -0 %s 2>/dev/null; then sleep 1; rm -rf %s; fi"):format(parent, P) or ":"
   assert(run(("( i=0; while [ $i -lt %d ] && kill -0 %s 2>/dev/null && kill -0 %s 2>/dev/null; "
      .. "do sleep 1; i=$((i+1)); done; kill -TERM %s 2>/dev/null; %s ) </dev/null >/dev/null 2>&1 &")
      :format(lifetime, parent, h.pid, h.pid, cleanup)))
   -- wait (bounded) until it accepts connections, or report why not
   local deadline = socket.gettime() + 10
   while true do
      local c = socket.tcp()
      c:settimeout(0.2)
      local ok = c:connect("127.0.0.1", h.port)
      c:close()
      if ok then break end
      if not alive(h.pid) or socket.gettime() > deadline then
         local log = (h:error_log() or "") .. (read_file(h.prefix .. "/stdout.log") or "")
         h:stop()
         error("support.nginx: nginx did not start:\n" .. log, 2)
      end
      socket.sleep(0.05)
   end
   return h
end

--- The error log so far.
function Handle:error_log()
   return read_file(self.prefix .. "/error.log")
end

--- Stops nginx by its PID: TERM, then KILL after 5 s. Safe to call twice.
function Handle:stop()
   if not self.pid or self.stopped then return true end
   self.stopped = true
   run("kill -TERM " .. self.pid .. " 2>/dev/null")
   for _ = 1, 100 do
      if not alive(self.pid) then return true end
      socket.sleep(0.05)
   end
   -- the master did not go: kill it and its workers (children of that PID only)
   run("pkill -KILL -P " .. self.pid .. " 2>/dev/null; kill -KILL " .. self.pid .. " 2>/dev/null")
   return not alive(self.pid)
end

--- Stops nginx and removes its prefix directory (its config, logs and temp files).
function Handle:remove()
   self:stop()
   run("rm -rf " .. shell_quote(self.prefix))
end

--- One HTTP request to this nginx; returns status, body, headers.
function Handle:request(method, path, body, headers, timeout)
   local out = {}
   local hdrs = { ["content-type"] = "application/json" }
   for k, v in pairs(headers or {}) do hdrs[k:lower()] = v end
   if body then hdrs["content-length"] = tostring(#body) end
   http.TIMEOUT = timeout or 30
   local ok, status, rheaders = http.request{
      url = self.url .. path, method = method, headers = hdrs,
      source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(out),
   }
   if not ok then
      error("support.nginx: " .. method .. " " .. path .. " failed: " .. tostring(status), 2)
   end
   return status, table.concat(out), rheaders
end

--- Sends several requests at once over separate connections (HTTP/1.0, so every answer ends
-- with the connection) and waits for all answers, at most `limit` seconds. Each request is
-- { method, path, body, at = seconds after the start (default 0) }. Returns a list of
-- { status, body, sent = t, done = t } (seconds since the start) in request order.
function Handle:parallel(reqs, limit)
   local t0 = socket.gettime()
   local deadline = t0 + (limit or 30)
   local state, remaining = {}, #reqs
   for i, r in ipairs(reqs) do state[i] = { req = r, parts = {} } end
   while remaining > 0 and socket.gettime() < deadline do
      local now = socket.gettime()
      local readers, next_start = {}, deadline
      for _, st in ipairs(state) do
         if not st.sock and not st.done then
            if now - t0 >= (st.req.at or 0) then
               local r = st.req
               local c = socket.tcp()
               c:settimeout(5)
               assert(c:connect("127.0.0.1", self.port))
               local body = r[3] or ""
               assert(c:send(("%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  .. "Content-Length: %d\r\n\r\n%s"):format(r[1], r[2], #body, body)))
               c:settimeout(0)
               st.sock, st.sent = c, socket.gettime() - t0
            else
               next_start = math.min(next_start, t0 + st.req.at)
            end
         end
         if st.sock and not st.done then readers[#readers + 1] = st.sock end
      end
      local wait = math.max(0, math.min(0.05, next_start - socket.gettime()))
      local readable = socket.select(readers, nil, wait)
      for _, st in ipairs(state) do
         if st.sock and not st.done and readable[st.sock] then
            local data, err, partial = st.sock:receive(65536)
            local got = data or partial
            if got and #got > 0 then st.parts[#st.parts + 1] = got end
            if err == "closed" then
               st.done = socket.gettime() - t0
               st.sock:close()
               remaining = remaining - 1
            end
         end
      end
   end
   local results = {}
   for i, st in ipairs(state) do
      if st.sock and not st.done then st.sock:close() end
      local text = table.concat(st.parts)
      local head, body = text:match("^(.-)\r\n\r\n(.*)$")
      results[i] = {
         status = head and tonumber(head:match("^HTTP/%d%.%d (%d+)")),
         body = body, sent = st.sent, done = st.done,
      }
   end
   return results
end

--- Counts ESTABLISHED TCP connections from this machine to 127.0.0.1:port (both ends of a
-- loopback connection are listed in /proc/net/tcp; this counts the client ends).
function M.connections_to(port)
   local text = read_file("/proc/net/tcp") or ""
   local want = ("%04X"):format(port)
   local n = 0
   for line in text:gmatch("[^\n]+") do
      local rem, st = line:match("^%s*%d+: %x+:%x+ (%x+:%x+) (%x%x)")
      if rem and st == "01" and rem:sub(-4) == want then n = n + 1 end
   end
   return n
end

return M

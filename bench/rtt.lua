-- rtt.lua: the RTT section of `make bench` (alone: `make bench-rtt`). What a call costs over a
-- network with round-trip time D, as a multiple of D, over HTTPS with a local CA.
--
-- A private loopback nginx answers every call with a fixed customer, behind bench/rtt_proxy (C,
-- epoll + timerfd), which delays every chunk by D/2 in each direction and a new connection by
-- one more D (the TCP handshake a real network charges). The proxy is checked first: the median
-- of BENCH_RTT_PROBES connect + 1-byte echo exchanges through it must be 2 D, and of a second
-- exchange on the same connection D, each within BENCH_RTT_TOLERANCE_MS, or the section refuses
-- to run. The proxy counts the connections it accepts: each cell reports how many it opened.
--
-- Rows: read (get_customer), write (block_customer), sign-up (create_customer -> get_address ->
-- find_transactions -> get_transaction), cold batch (fresh client, client:batch of 100
-- get_customer), warm batch (the second batch of 100 on the same client); the batches against an
-- HTTP/1.1-only server and against one that also offers HTTP/2 (ALPN h2). Columns: the module
-- (calypso.new, libcurl) on Lua 5.4 and on LuaJIT, the module inside nginx (calypso.transport.ngx,
-- timed inside nginx with purse.now(): bench/rtt_nginx.lua), and the peer users build today
-- (Lua-cURL + luaossl, one reused easy handle; its batch is 100 sequential calls).
-- read, write, sign-up: one untimed warm-up read, then BENCH_RTT_CALLS timed calls (sign-ups);
-- batches: BENCH_RTT_BATCHES timed batches; every cell also stops after BENCH_RTT_CELL_SECONDS.
--   lua5.4 bench/rtt.lua      (env: BENCH_RTT_MS=20 BENCH_RTT_CALLS=40 BENCH_RTT_BATCHES=10
--                              BENCH_RTT_CELL_SECONDS=30 BENCH_RTT_PROBES=20 BENCH_RTT_TOLERANCE_MS=3
--                              BENCH_RTT_ROWS=read,write,signup,cold,warm
--                              BENCH_RTT_COLUMNS=lua54,luajit,nginx,peer)
package.path = "./?.lua;" .. package.path
local socket = require "socket"
local http = require "socket.http"
local support = require "bench.support"
local sh, free_port = support.sh, support.free_port

local function env(name, default) return tonumber(os.getenv(name) or "") or default end
local D = env("BENCH_RTT_MS", 20)
local CALLS = env("BENCH_RTT_CALLS", 40)
local BATCHES = env("BENCH_RTT_BATCHES", 10)
local CELL_SECONDS = env("BENCH_RTT_CELL_SECONDS", 30)
local PROBES = env("BENCH_RTT_PROBES", 20)
local TOLERANCE = env("BENCH_RTT_TOLERANCE_MS", 3)
-- subsets, comma-separated: rows by case (read,write,signup,cold,warm), columns by key
-- (lua54,luajit,nginx,peer); default all
local function set(name)
   local v = os.getenv(name)
   if not v or v == "" then return nil end
   local t = {}
   for k in v:gmatch("[^,%s]+") do t[k] = true end
   return t
end
local ONLY_ROWS, ONLY_COLUMNS = set("BENCH_RTT_ROWS"), set("BENCH_RTT_COLUMNS")
local KEY, SECRET = "c529e14832b34b74972365cf7bf02430", "b823a6b9ea72408583cef9ec8d67fa52"
local CUSTOMER = '{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","email":"alice@example.com",' ..
                 '"description":"bench customer","externalId":"user-42","blocked":false}'
-- cells x (calls or batches) x worst case per call, plus start-up: every process stops by itself
local LIFETIME = math.floor(120 + 4 * 7 * (CELL_SECONDS + 30))
http.TIMEOUT = CELL_SECONDS + 120

local function median_p90(t)
   local s = {}
   for i, v in ipairs(t) do s[i] = v end
   table.sort(s)
   local n = #s
   local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
   return med, s[math.max(1, math.ceil(0.9 * n))]
end

local my_pid = io.open("/proc/self/stat"):read("*n")
local repo = sh("pwd"):gsub("%s+$", "")
local certs = support.ca(",DNS:127.0.0.1")
local h1_port, h2_port, or_port = free_port(), free_port(), free_port()
local server = support.nginx{ port = h1_port, lifetime = LIFETIME, http = function()
   -- TLS 1.3 as well, as API servers offer (Debian's nginx 1.22 offers only up to 1.2 by default)
   local tls = ("ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;")
      :format(certs, certs)
   local loc = ("location / { default_type application/json; return 200 '%s'; }"):format(CUSTOMER)
   return ([[
  server { listen 127.0.0.1:%d ssl; %s %s }
  server { listen 127.0.0.1:%d ssl http2; %s %s }]]):format(h1_port, tls, loc, h2_port, tls, loc)
end }

local tmp = sh("mktemp -d /tmp/calypso-rtt.XXXXXX"):gsub("%s+$", "")
local proxy_pid = sh(("timeout %d bench/rtt_proxy %g %d %d %d %d >%s/proxy.out 2>&1 & echo $!")
                     :format(LIFETIME, D, LIFETIME, my_pid, h1_port, h2_port, tmp)):match("%d+")
local control, check, via_h1, via_h2
for _ = 1, 100 do   -- at most ~5 s
   local f = io.open(tmp .. "/proxy.out")
   local line = f and f:read("l")
   if f then f:close() end
   if line and line:find("listen=") then
      control, check = tonumber(line:match("control=(%d+)")), tonumber(line:match("check=(%d+)"))
      via_h1, via_h2 = line:match("listen=(%d+),(%d+)")
      break
   end
   socket.sleep(0.05)
end

local or_server
local function stop()
   if proxy_pid then os.execute("kill " .. proxy_pid .. " 2>/dev/null") end
   server.stop()
   if or_server then or_server.stop() end
   os.execute("rm -rf " .. certs .. " " .. tmp)
end
if not control then
   stop()
   error("rtt_proxy did not start", 0)
end

local ok, err = pcall(function()
   -- the proxy's own round trip: connect + one echo exchange (2 D), then a second one (D)
   local first, second = {}, {}
   for i = 1, PROBES do
      local t0 = socket.gettime()
      local c = assert(socket.connect("127.0.0.1", check))
      c:setoption("tcp-nodelay", true)
      c:settimeout(10)
      assert(c:send("x"))
      assert(c:receive(1))
      local t1 = socket.gettime()
      assert(c:send("y"))
      assert(c:receive(1))
      first[i], second[i] = (t1 - t0) * 1000, (socket.gettime() - t1) * 1000
      c:close()
   end
   local f_med, f_p90 = median_p90(first)
   local s_med, s_p90 = median_p90(second)
   print(("rtt_proxy check, D = %g ms, %d probes: connect + echo median %.2f ms (p90 %.2f; expected %g), "
          .. "echo on the open connection median %.2f ms (p90 %.2f; expected %g)")
         :format(D, PROBES, f_med, f_p90, 2 * D, s_med, s_p90, D))
   io.stdout:flush()
   if math.abs(f_med - 2 * D) > TOLERANCE or math.abs(s_med - D) > TOLERANCE then
      error(("rtt_proxy: measured round trip off by more than %g ms: refusing to run"):format(TOLERANCE), 0)
   end

   or_server = support.nginx{ lua = true, port = or_port, lifetime = LIFETIME, http = function()
      return ([[
  lua_package_path "%s/?.lua;%s/lua/?.lua;%s/lua/?/init.lua;;";
  lua_package_cpath "%s/build/jit/?.so;;";
  lua_ssl_trusted_certificate %s/ca.pem;
  lua_ssl_verify_depth 2;
  server {
    listen 127.0.0.1:%d;
    location /rtt { content_by_lua_file %s/bench/rtt_nginx.lua; }
  }]]):format(repo, repo, repo, repo, certs, or_port, repo)
   end }

   local columns = {
      { key = "lua54", name = "module, Lua 5.4",
        cmd = "LUA_CPATH='build/5.4/?.so;;' lua5.4 bench/rtt_client.lua module" },
      { key = "luajit", name = "module, LuaJIT",
        cmd = "LUA_CPATH='build/jit/?.so;;' luajit bench/rtt_client.lua module" },
      { key = "nginx", name = "module in nginx", nginx = true },
      { key = "peer", name = "peer: Lua-cURL", cmd = "luajit bench/rtt_client.lua peer" },
   }
   local rows = {
      { name = "read", case = "read", route = 1, n = CALLS },
      { name = "write", case = "write", route = 1, n = CALLS },
      { name = "sign-up (4 calls)", case = "signup", route = 1, n = CALLS },
      { name = "cold batch of 100, h1 server", case = "cold", route = 1, n = BATCHES },
      { name = "warm batch of 100, h1 server", case = "warm", route = 1, n = BATCHES },
      { name = "cold batch of 100, h2 server", case = "cold", route = 2, n = BATCHES },
      { name = "warm batch of 100, h2 server", case = "warm", route = 2, n = BATCHES },
   }
   local function keep(list, only, field)
      local kept = {}
      for _, x in ipairs(list) do
         if not only or only[x[field]] then kept[#kept + 1] = x end
      end
      return kept
   end
   columns, rows = keep(columns, ONLY_COLUMNS, "key"), keep(rows, ONLY_ROWS, "case")
   local via = { via_h1, via_h2 }
   for _, row in ipairs(rows) do
      row.cells = {}
      for ci, col in ipairs(columns) do
         local base = "https://127.0.0.1:" .. via[row.route]
         local out
         if col.nginx then
            local body, code = http.request(("http://127.0.0.1:%d/rtt?case=%s&n=%d&max=%d&base=%s&control=%d&route=%d")
               :format(or_port, row.case, row.n, CELL_SECONDS, base, control, row.route))
            if code ~= 200 then
               error(("%s, %s: %s %s"):format(col.name, row.name, tostring(code), tostring(body)), 0)
            end
            out = body
         else
            out = sh(("%s %s %s %s %s %s/ca.pem %d %d %d %d"):format(col.cmd, row.case, base, KEY, SECRET,
                                                                    certs, control, row.route, row.n, CELL_SECONDS))
         end
         local ms, conns = {}, 0
         for m, c in out:gmatch("ms=([%d.]+) conns=(%d+)") do
            ms[#ms + 1], conns = tonumber(m), conns + tonumber(c)
         end
         if #ms == 0 then error(("%s, %s: no samples: %s"):format(col.name, row.name, out), 0) end
         local med, p90 = median_p90(ms)
         row.cells[ci] = { med = med, p90 = p90, n = #ms, conns = conns }
         io.stderr:write(("rtt: %s, %s: median %.1f ms, p90 %.1f ms, %d samples, %d connections\n")
                         :format(row.name, col.name, med, p90, #ms, conns))
      end
   end

   print(("RTT: HTTPS (local CA) through rtt_proxy at D = %g ms; each cell: median / p90 as multiples of D, "
          .. "[connections opened per call, sign-up or batch]; %d calls or sign-ups, %d batches per cell, %s")
         :format(D, CALLS, BATCHES, os.date("!%Y-%m-%d")))
   local head = ("%-30s"):format("")
   for _, col in ipairs(columns) do head = head .. (" | %-22s"):format(col.name) end
   print((head:gsub("%s+$", "")))
   for _, row in ipairs(rows) do
      local line = ("%-30s"):format(row.name)
      for _, c in ipairs(row.cells) do
         local per = c.conns / c.n
         local cell = ("%.2f / %.2f [%s]"):format(c.med / D, c.p90 / D,
            per == math.floor(per) and ("%d"):format(per) or ("%.1f"):format(per))
         line = line .. (" | %-22s"):format(cell)
      end
      print((line:gsub("%s+$", "")))
   end
   print("module in nginx: timed inside nginx (purse.now() around the calls), not from outside; "
         .. "the peer's batch is 100 sequential calls on its one handle (Lua-cURL has no multi).")
end)
stop()
if not ok then error(err, 0) end

-- bench.lua: `make bench`. Starts a private loopback nginx that answers every
-- Customer Purse call with a fixed 150-byte customer (HTTP and HTTPS with a
-- local CA), then compares each contender with its floor in lockstep: both
-- stay running, and the bench alternates bursts of BENCH_BURST calls between
-- them (a few milliseconds apart, every other pair contender first), with the
-- server's nginx worker and both clients on CPU 0 ("same core"), then with the
-- clients on CPU 1 ("other core"). It prints median calls/s, client CPU per
-- call and the paired ratios (median and quartiles), then the batch, signing,
-- callgrind and memory figures, and the RTT section (bench/rtt.lua). Bounded:
-- BENCH_PAIRS x 2 bursts per contender, in BENCH_RESTARTS segments with freshly
-- started programs.
--   lua5.4 bench/bench.lua            (env: BENCH_PAIRS=240 BENCH_BURST=200 BENCH_RESTARTS=12
--                                      BENCH_INSTR_CALLS=2000, 0 skips callgrind)
package.path = "./?.lua;" .. package.path

local PAIRS = tonumber(os.getenv("BENCH_PAIRS") or "") or 240
local BURST = tonumber(os.getenv("BENCH_BURST") or "") or 200
local RESTARTS = tonumber(os.getenv("BENCH_RESTARTS") or "") or 12
local per_segment = math.max(1, PAIRS // RESTARTS)   -- pairs per start
local ROUNDS = 15   -- client:batch rounds
local MEMORY_CALLS = tonumber(os.getenv("BENCH_MEMORY_CALLS") or "") or 1000000
local MEMORY_SECONDS = tonumber(os.getenv("BENCH_MEMORY_SECONDS") or "") or 180
local INSTR_CALLS = tonumber(os.getenv("BENCH_INSTR_CALLS") or "") or 2000
local batch, memory, instr, signing, sign_instr
local KEY, SECRET = "c529e14832b34b74972365cf7bf02430", "b823a6b9ea72408583cef9ec8d67fa52"
local CUSTOMER = '{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","email":"alice@example.com",' ..
                 '"description":"bench customer","externalId":"user-42","blocked":false}'

local support = require "bench.support"
local sh, free_port = support.sh, support.free_port

-- The bench server: a private nginx answering every call with a fixed customer, over HTTP
-- and HTTPS (local CA), plus a location that answers after 20 ms without blocking.
local http_port, https_port = free_port(), free_port()
local certs = support.ca()
local lifetime = 1200 + PAIRS * 3 + MEMORY_SECONDS
local server = support.nginx{ lua = true, port = http_port, lifetime = lifetime, http = function()
   return ([[
  lua_package_path ";;";
  lua_package_cpath ";;";
  server {
    listen 127.0.0.1:%d;
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s/srv.pem;
    ssl_certificate_key %s/srv.key;
    location / { default_type application/json; return 200 '%s'; }
    # every answer 20 ms late, without blocking the worker: for client:batch
    location /delay/ { default_type application/json; content_by_lua_block { ngx.sleep(0.02) ngx.print('%s') } }
  }]]):format(http_port, https_port, certs, certs, CUSTOMER, CUSTOMER)
end }

-- A second private nginx runs the OpenResty rows: its one worker is the client.
local repo = sh("pwd"):gsub("%s+$", "")
local or_port = free_port()
local or_server = support.nginx{ lua = true, port = or_port, lifetime = lifetime, http = function()
   return ([[
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;;";
  lua_package_cpath "%s/build/jit/?.so;;";
  server {
    listen 127.0.0.1:%d;
    location /loop { content_by_lua_file %s/bench/openresty.lua; }
  }]]):format(repo, repo, repo, or_port, repo)
end }

local function stop()
   server.stop()
   or_server.stop()
   os.execute("rm -rf " .. certs)
end

local HTTP = "http://127.0.0.1:" .. http_port
local HTTPS = "https://127.0.0.1:" .. https_port
local CA = certs .. "/ca.pem"
local CPATH54 = "LUA_CPATH='build/5.4/?.so;;'"
local CPATHJIT = "LUA_CPATH='build/jit/?.so;;'"

local OR = ("http://127.0.0.1:%d/loop?port=%d&n=%%d&mode="):format(or_port, http_port)
local FLOOR = ("bench/floor %s/api/v1/customer-purse/customer/get %s %s %%s"):format(HTTP, KEY, SECRET)
-- the floor after the fixes the module makes: URL parsed once, HMAC hash states precomputed,
-- less libcurl work per transfer for the same request bytes
local FLOOR_TUNED = ("bench/floor --curlu --hmac-state --lean-headers "
                     .. "%s/api/v1/customer-purse/customer/get %s %s %%s"):format(HTTP, KEY, SECRET)
local MODULE54 = ("%s lua5.4 bench/module.lua %s %s %s %%s"):format(CPATH54, HTTP, KEY, SECRET)
local MODULEJIT = ("%s luajit bench/module.lua %s %s %s %%s"):format(CPATHJIT, HTTP, KEY, SECRET)
local PEER = ("luajit bench/peer_luacurl.lua %s %s %s %%s"):format(HTTP, KEY, SECRET)
local PEER_HTTP = ("luajit bench/peer_luahttp.lua %s %s %s %%s"):format(HTTP, KEY, SECRET)
local HTTPS_FLOOR = ("bench/floor %s/api/v1/customer-purse/customer/get %s %s %%s %s"):format(HTTPS, KEY, SECRET, CA)
local HTTPS54 = ("%s lua5.4 bench/module.lua %s %s %s %%s %s"):format(CPATH54, HTTPS, KEY, SECRET, CA)
local HTTPSJIT = ("%s luajit bench/module.lua %s %s %s %%s %s"):format(CPATHJIT, HTTPS, KEY, SECRET, CA)
local contenders = {
   { name = "C floor (libcurl + mbedTLS, HTTP)", floor = "http", cmd = FLOOR },
   { name = "C floor, profiled (CURLU, HMAC states, lean headers)", vs = "http", cmd = FLOOR_TUNED },
   { name = "calypso.purse, Lua 5.4, HTTP", vs = "http", cmd = MODULE54 },
   { name = "calypso.purse, LuaJIT, HTTP", vs = "http", cmd = MODULEJIT },
   { name = "peer: Lua-cURL + luaossl + cjson, LuaJIT", vs = "http", cmd = PEER },
   { name = "peer: lua-http + luaossl + cjson, LuaJIT", vs = "http", cmd = PEER_HTTP },
   { name = "OpenResty: cosocket loop, same signing", floor = "openresty", url = OR .. "raw" },
   { name = "OpenResty: calypso.transport.ngx", vs = "openresty", url = OR .. "transport" },
   { name = "C floor (libcurl + mbedTLS, HTTPS)", floor = "https", cmd = HTTPS_FLOOR },
   { name = "calypso.purse, Lua 5.4, HTTPS", vs = "https", cmd = HTTPS54 },
   { name = "calypso.purse, LuaJIT, HTTPS", vs = "https", cmd = HTTPSJIT },
}

-- CPU placements: the server's nginx worker always on CPU 0; the clients with it, then on
-- the other CPU when there is one. On the same core a call is two context switches; across
-- cores it is two cross-CPU wake-ups, whose latency this VM varies widely.
local placements = { { name = "same core", cpu = 0 } }
if tonumber((sh("nproc"):match("%d+"))) >= 2 then placements[2] = { name = "other core", cpu = 1 } end

-- Pins the worker processes of the nginx whose pid file is `prefix`/nginx.pid.
local function pin_nginx(srv, cpu)
   sh(("for w in $(pgrep -P $(cat %s/nginx.pid)); do taskset -pc %d $w; done >/dev/null"):format(srv.prefix, cpu))
end

-- A running contender: run(n) makes n calls, returns seconds and CPU seconds per call.
-- Programs read "n" lines on stdin and answer one "calls= seconds= cpu=" line (lockstep);
-- the OpenResty rows are one request to the client nginx per burst.
local http_request = require("socket.http").request
local function start(c, cpu)
   local w = {}
   local function parse(out)
      local n, secs, used = tostring(out):match("calls=(%d+) seconds=([%d.]+) cpu=([%d.]+)")
      assert(n, c.name .. ": unexpected output: " .. tostring(out))
      return tonumber(secs) / tonumber(n), tonumber(used) / tonumber(n)
   end
   if c.url then
      function w.run(n) return parse(http_request(c.url:format(n))) end
      function w.close() end
      return w
   end
   local dir = sh("mktemp -d /tmp/calypso-lockstep.XXXXXX"):gsub("%s+$", "")
   sh(("mkfifo %s/in %s/out"):format(dir, dir))
   local env, rest = c.cmd:match("^([%u_]+='[^']*') (.*)$")   -- LUA_CPATH='...' goes first
   os.execute(("%s taskset -c %d %s < %s/in > %s/out 2>%s/err &"):format(env or "", cpu,
              (rest or c.cmd):format("-"), dir, dir, dir))
   local input, output = assert(io.open(dir .. "/in", "w")), assert(io.open(dir .. "/out", "r"))
   function w.run(n)
      input:write(n, "\n")
      input:flush()
      local line = output:read("l")
      if not line then error(c.name .. ": stopped: " .. sh("cat " .. dir .. "/err"), 0) end
      return parse(line)
   end
   function w.close()   -- end of input: the program exits
      input:close()
      output:close()
      sh("rm -rf " .. dir)
   end
   return w
end

local ok, err = pcall(function()
   local floors, pairs_ = {}, {}
   for _, c in ipairs(contenders) do
      if c.floor then floors[c.floor] = c end
   end
   for _, c in ipairs(contenders) do
      if c.vs then pairs_[#pairs_ + 1] = { floor = floors[c.vs], c = c } end
   end
   pin_nginx(server, 0)
   -- Each contender's pairs come in RESTARTS segments, each with both programs started
   -- afresh, and the segments of all contenders take turns: a program's speed depends a few
   -- percent on where its memory happens to lie (address-space layout, cache sets), which
   -- changes with every start, and a slow spell of the machine is spread over everyone.

   for _, pl in ipairs(placements) do
      pin_nginx(or_server, pl.cpu)
      for _, c in ipairs(contenders) do
         c[pl.name] = { rate = {}, cpu = {}, rratio = {}, cratio = {} }
      end
      for segment = 1, RESTARTS do
         for _, p in ipairs(pairs_) do
            local f, c = start(p.floor, pl.cpu), start(p.c, pl.cpu)
            f.run(BURST)   -- warm-up: connect (and TLS handshake), first touches
            c.run(BURST)
            local fr, cr = p.floor[pl.name], p.c[pl.name]
            for i = 1, per_segment do
               local fs, fc, cs, cc
               if i % 2 == 1 then
                  fs, fc = f.run(BURST)
                  cs, cc = c.run(BURST)
               else
                  cs, cc = c.run(BURST)
                  fs, fc = f.run(BURST)
               end
               fr.rate[#fr.rate + 1], fr.cpu[#fr.cpu + 1] = 1 / fs, fc * 1e6
               cr.rate[#cr.rate + 1], cr.cpu[#cr.cpu + 1] = 1 / cs, cc * 1e6
               cr.rratio[#cr.rratio + 1], cr.cratio[#cr.cratio + 1] = fs / cs, cc / fc
            end
            f.close()
            c.close()
         end
         io.stderr:write(("%s: segment %d/%d done\n"):format(pl.name, segment, RESTARTS))
      end
   end
   signing = sh("bench/sign")
   local out = sh(("%s lua5.4 bench/batch.lua %s/delay %s %s %d"):format(CPATH54, HTTP, KEY, SECRET, ROUNDS))
   batch = { ms = {} }
   for ms in out:gmatch("batch=([%d.]+)") do batch.ms[#batch.ms + 1] = tonumber(ms) end
   batch.sequential = tonumber(out:match("sequential=([%d.]+)"))
   if MEMORY_CALLS > 0 then
      out = sh(("%s lua5.4 bench/memory.lua %s %s %s %d %d"):format(CPATH54, HTTP, KEY, SECRET,
                                                                      MEMORY_CALLS, MEMORY_SECONDS))
      local n, secs, a, b = out:match("calls=(%d+) seconds=([%d.]+) rss_start_kib=(%d+) rss_end_kib=(%d+)")
      assert(n, "memory: unexpected output: " .. out)
      memory = { calls = tonumber(n), seconds = tonumber(secs), start = tonumber(a), finish = tonumber(b) }
   end
   -- Instructions per call under callgrind: deterministic where wall and CPU time are
   -- noisy. (N+1 calls minus 1 call: start-up, loading and the first connect cancel out.)
   if INSTR_CALLS > 0 and os.execute("command -v valgrind >/dev/null 2>&1") then
      instr = {}
      local function refs(cmd, n)
         local env, rest = cmd:match("^([%u_]+='[^']*') (.*)$")   -- LUA_CPATH='...' goes first
         local text = sh(("%s valgrind --tool=callgrind --callgrind-out-file=/dev/null %s")
                         :format(env or "", (rest or cmd):format(n)))
         local digits = (text:match("I%s+refs:%s+([%d,]+)") or ""):gsub(",", "")
         return tonumber(digits) or error("callgrind: " .. text)
      end
      local floor_refs
      for _, c in ipairs{ { "C floor, HTTP", FLOOR, true }, { "C floor, profiled, HTTP", FLOOR_TUNED },
                          { "calypso.purse, Lua 5.4, HTTP", MODULE54 }, { "calypso.purse, LuaJIT, HTTP", MODULEJIT },
                          { "peer: Lua-cURL + luaossl + cjson, HTTP", PEER },
                          { "peer: lua-http + luaossl + cjson, HTTP", PEER_HTTP },
                          { "C floor, HTTPS", HTTPS_FLOOR, true }, { "calypso.purse, Lua 5.4, HTTPS", HTTPS54 },
                          { "calypso.purse, LuaJIT, HTTPS", HTTPSJIT } } do
         local per_call = (refs(c[2], INSTR_CALLS + 1) - refs(c[2], 1)) / INSTR_CALLS
         if c[3] then floor_refs = per_call end
         instr[#instr + 1] = { name = c[1], per_call = per_call, ratio = per_call / floor_refs }
         io.stderr:write(("callgrind: %s done\n"):format(c[1]))
      end
      -- signing alone (bench/sign --only WAY N)
      sign_instr = {}
      for _, way in ipairs{ "floor", "sha512", "md_hmac_reset", "md_hmac", "calypso" } do
         local cmd = "bench/sign --only " .. way .. " %d"
         sign_instr[#sign_instr + 1] = {
            name = way, per_call = (refs(cmd, INSTR_CALLS * 10 + 1) - refs(cmd, 1)) / (INSTR_CALLS * 10) }
      end
      -- OpenResty: one nginx worker under callgrind runs the loop (bench/openresty_instr.sh)
      local function nginx_refs(mode, n)
         local text = sh(("sh bench/openresty_instr.sh %s %d %d"):format(mode, n, http_port))
         return tonumber(text:match("refs=(%d+)")) or error("openresty_instr: " .. text)
      end
      for _, c in ipairs{ { "OpenResty: cosocket loop, same signing", "raw", true },
                          { "OpenResty: calypso.transport.ngx", "transport" } } do
         local per_call = (nginx_refs(c[2], INSTR_CALLS + 1) - nginx_refs(c[2], 1)) / INSTR_CALLS
         if c[3] then floor_refs = per_call end
         instr[#instr + 1] = { name = c[1], per_call = per_call, ratio = per_call / floor_refs }
         io.stderr:write(("callgrind: %s done\n"):format(c[1]))
      end
   end
end)
stop()
if not ok then error(err, 0) end

local function median(t)
   local s = {}
   for i, v in ipairs(t) do s[i] = v end
   table.sort(s)
   local n = #s
   return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2, s[1], s[n]
end

-- Quartiles as well as the median: a ratio pairs two bursts a few milliseconds apart.
local function quartiles(t)
   local s = {}
   for i, v in ipairs(t) do s[i] = v end
   table.sort(s)
   local function at(q)   -- linear interpolation between closest ranks
      local x = 1 + (#s - 1) * q
      local lo = math.floor(x)
      return s[lo] + (s[math.min(lo + 1, #s)] - s[lo]) * (x - lo)
   end
   return at(0.5), at(0.25), at(0.75)
end
for _, pl in ipairs(placements) do
   print(("%s: clients and the server's nginx worker on %s; %d pairs of bursts of %d sequential keep-alive "
          .. "calls per contender (%d starts), each contender alternating with its floor, loopback nginx, %s")
         :format(pl.name, pl.cpu == 0 and "CPU 0" or "CPU 1 and CPU 0", per_segment * RESTARTS, BURST,
                 RESTARTS, os.date("!%Y-%m-%d")))
   print(("%-52s %8s %7s %21s %21s"):format("contender", "calls/s", "CPU us", "x floor (q1-q3)", "CPU x (q1-q3)"))
   for _, c in ipairs(contenders) do
      local r = c[pl.name]
      local rate, cpu = quartiles(r.rate), quartiles(r.cpu)
      if c.floor then
         print(("%-52s %8.0f %7.1f %6.3f %14s %6.3f"):format(c.name, rate, cpu, 1, "", 1))
      else
         local rm, rlo, rhi = quartiles(r.rratio)
         local cm, clo, chi = quartiles(r.cratio)
         print(("%-52s %8.0f %7.1f %6.3f (%.3f-%.3f) %6.3f (%.3f-%.3f)"):format(c.name, rate, cpu,
               rm, rlo, rhi, cm, clo, chi))
      end
   end
   print()
end

local bm, bmin, bmax = median(batch.ms)
print(("client:batch, 100 calls, server answers each after 20 ms: median %.1f ms (%.1f-%.1f over %d rounds); "
       .. "the same 100 calls sequentially: %.0f ms"):format(bm, bmin, bmax, #batch.ms, batch.sequential))
if instr then
   print()
   print(("user-space instructions per call (callgrind, %d calls minus 1 call; each ratio is to the "
          .. "floor above it):"):format(INSTR_CALLS))
   for _, r in ipairs(instr) do
      print(("  %-40s %10.0f %9.3f x floor"):format(r.name, r.per_call, r.ratio))
   end
end
print()
io.write(signing)
if sign_instr then
   print(("instructions per signature (callgrind, %d signatures minus 1):"):format(INSTR_CALLS * 10))
   for _, r in ipairs(sign_instr) do
      print(("  %-40s %10.0f %9.3f x floor"):format(r.name, r.per_call, r.per_call / sign_instr[1].per_call))
   end
end
if memory then
   print(("memory: %d calls in %.0f s on one client: RSS %d KiB -> %d KiB (%+d KiB)"):format(memory.calls,
         memory.seconds, memory.start, memory.finish, memory.finish - memory.start))
end

-- The RTT section (bench/rtt.lua, alone: `make bench-rtt`; BENCH_RTT=0 skips it): its own
-- servers and latency-injecting proxy; it refuses to run when the proxy's round trip is off.
if os.getenv("BENCH_RTT") ~= "0" then
   print()
   io.stdout:flush()
   assert(os.execute("lua5.4 bench/rtt.lua"), "bench/rtt.lua failed")
end

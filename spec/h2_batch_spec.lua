-- client:batch and client:multi over HTTP/2 (issue 14, point 4): once the server is known to
-- speak h2, the calls of a batch share one connection (CURLOPT_PIPEWAIT), reads and writes; an
-- HTTP/1.1-only server still gets one connection per call in flight, at once (PIPEWAIT there
-- would make a cold batch wait for the first handshake). Debian's nginx on loopback TLS, with a
-- fixed answer; connections counted from /proc/net/tcp (support.tcp_peers) and from nginx's
-- access log ($connection). Skipped without nginx.
local purse = require "calypso.purse"
local nginx_ok, nginx = pcall(require, "support.nginx")
local tls = require "support.tls"
local tcp_peers = require "support.tcp_peers"
local socket = require "socket"

local have_nginx = nginx_ok and (io.open("/usr/sbin/nginx") ~= nil)
   and io.open("/usr/share/nginx/modules/ngx_http_lua_module.so") ~= nil
if not have_nginx then
   pending("nginx is not installed")
   return
end

local CUSTOMER = '{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","email":"a@example.com",'
   .. '"description":"","externalId":"x","blocked":false}'
local N = 20
local certs, h, h1_port, h2_port, goaway_port

local function client(port)
   return purse.new{ key = "k", secret = "s", account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
                     base_url = "https://127.0.0.1:" .. port, ca_file = certs.ca, timeout = 10 }
end

local function reads(n)
   local calls = {}
   for i = 1, n do
      calls[i] = { "get_customer", { customerId = ("3fa85f64-5717-4562-b3fc-%012d"):format(i) } }
   end
   return calls
end

-- Runs fn and returns how many connections to port it opened (still established after it).
local function opened(port, fn)
   local before = tcp_peers.to(port)
   fn()
   return #tcp_peers.new_since(before, port)
end

local function all_ok(results, n)
   assert.are.equal(n, #results)
   for i = 1, n do assert.is_table(results[i].value, results[i].message) end
end

setup(function()
   certs = tls.make()
   os.execute("chmod 755 " .. certs.dir .. " && chmod 644 " .. certs.dir .. "/*")
   h1_port, h2_port, goaway_port = nginx.free_port(), nginx.free_port(), nginx.free_port()
   local prefix = nginx.tempdir("h2")
   local t = ("ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate %s; ssl_certificate_key %s;")
      :format(certs.server.certificate or certs.server.cert, certs.server.key)
   local loc = ("location / { default_type application/json; return 200 '%s'; }"):format(CUSTOMER)
   h = nginx.start{
      prefix = prefix,
      http = 'log_format conn "$connection $request_uri";',
      servers = table.concat({
         ("server { listen 127.0.0.1:%d ssl; access_log %s/h1.log conn; %s %s }"):format(h1_port, prefix, t, loc),
         ("server { listen 127.0.0.1:%d ssl http2; %s %s }"):format(h2_port, t, loc),
         -- a GOAWAY after 5 requests on a connection: the streams beyond it are refused
         ("server { listen 127.0.0.1:%d ssl http2; keepalive_requests 5; access_log %s/goaway.log conn; %s %s }")
            :format(goaway_port, prefix, t, loc),
      }, "\n"),
   }
end)

teardown(function()
   if h then h:stop() end
   tls.remove(certs)
end)

describe("HTTP/2 server", function()
   it("once known to speak h2, a fresh client's batch and multi use one connection", function()
      local first = client(h2_port)
      assert(first:get_customer{ customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" })   -- learns h2
      first:close()
      local c = client(h2_port)
      local res
      local n = opened(h2_port, function() res = c:batch(reads(N)) end)
      all_ok(res, N)
      print(("    cold batch of %d reads, h2 known: %d connection(s)"):format(N, n))
      assert.are.equal(1, n)
      -- the next batch reuses it: no new connection
      assert.are.equal(0, opened(h2_port, function() res = c:batch(reads(N)) end))
      all_ok(res, N)
      -- writes too (block_customer), on that same connection
      local writes = {}
      for i = 1, N do writes[i] = { "block_customer", { customerId = ("3fa85f64-5717-4562-b3fc-%012d"):format(i) } } end
      assert.are.equal(0, opened(h2_port, function() res = c:batch(writes) end))
      all_ok(res, N)
      c:close()
      -- client:multi on a fresh client: one connection
      local c2 = client(h2_port)
      local m = c2:multi()
      n = opened(h2_port, function()
         local ids = {}
         for i, call in ipairs(reads(N)) do ids[i] = assert(m:start(call[1], call[2])) end
         local done = 0
         for _ = 1, 1000 do   -- bounded: 1000 polls of at most 10 ms
            m:poll(0.01)
            done = 0
            for _, id in ipairs(ids) do if m:done(id) then done = done + 1 end end
            if done == N then break end
         end
         assert.are.equal(N, done)
         for _, id in ipairs(ids) do assert.is_table((m:result(id))) end
      end)
      assert.are.equal(1, n)
      m:close()
      c2:close()
   end)

   it("a GOAWAY under a batch of writes: no write processed twice", function()
      local c = client(goaway_port)
      assert(c:get_customer{ customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" })   -- learns h2
      local calls = {}
      for i = 1, N do calls[i] = { "/w/" .. i, {} } end   -- unknown paths: writes
      local res = c:batch(calls)
      c:close()
      local log
      for _ = 1, 30 do   -- the access log line follows the answer: wait for it, bounded
         log = nginx.read_file(h.prefix .. "/goaway.log") or ""
         local count = 0
         for _ in log:gmatch("/w/%d+") do count = count + 1 end
         local ok = 0
         for i = 1, N do if res[i].value then ok = ok + 1 end end
         if count >= ok then break end
         socket.sleep(0.1)
      end
      local seen, conns = {}, {}
      for conn, path in log:gmatch("(%d+) (/w/%d+)") do
         seen[path] = (seen[path] or 0) + 1
         conns[conn] = true
      end
      local ok, failed, nconns = 0, 0, 0
      for _ in pairs(conns) do nconns = nconns + 1 end
      for i = 1, N do
         local path = "/w/" .. i
         assert.is_true((seen[path] or 0) <= 1, path .. " processed " .. tostring(seen[path]) .. " times")
         if res[i].value then
            ok = ok + 1
            assert.are.equal(1, seen[path])
         else
            failed = failed + 1
            -- a write the server never processed may say so only when its body never left
            assert.are.equal("network", res[i].err.kind, res[i].message)
         end
      end
      print(("    GOAWAY after 5: %d answered, %d failed, over %d connections"):format(ok, failed, nconns))
      for i = 1, N do
         if not res[i].value then print("      " .. res[i].message .. " sent=" .. tostring(res[i].err.sent)) break end
      end
      assert.are.equal(N, ok + failed)
      assert.is_true(ok >= 5)
   end)
end)

describe("HTTP/1.1-only server", function()
   it("a batch still opens one connection per call in flight, at once (no PIPEWAIT)", function()
      local first = client(h1_port)
      assert(first:get_customer{ customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" })   -- learns h1
      first:close()
      local c = client(h1_port)
      local log0 = 0
      for _ = 1, 30 do   -- the warm-up's log line first (written after its answer), bounded
         log0 = #(nginx.read_file(h.prefix .. "/h1.log") or "")
         if log0 > 0 then break end
         socket.sleep(0.1)
      end
      local res = c:batch(reads(N))
      all_ok(res, N)
      local lines, n = 0, 0
      for _ = 1, 30 do   -- the access log line follows the answer: wait for it, bounded
         local conns = {}
         lines, n = 0, 0
         for conn in (nginx.read_file(h.prefix .. "/h1.log") or ""):sub(log0 + 1):gmatch("(%d+) /") do
            lines = lines + 1
            if not conns[conn] then conns[conn], n = true, n + 1 end
         end
         if lines >= N then break end
         socket.sleep(0.1)
      end
      assert.are.equal(N, lines)
      assert.are.equal(N, n)   -- every call on its own connection, as before
      c:close()
   end)
end)

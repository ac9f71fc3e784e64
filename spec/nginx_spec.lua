-- calypso.transport.ngx in a real nginx: Debian's nginx + libnginx-mod-http-lua, started
-- privately on 127.0.0.1 by spec/support/nginx.lua, with the handlers of
-- spec/nginx/calypso_test.lua calling the bundled mock.
--
-- Run by scripts/test-nginx.sh (it builds build/jit first and sets CALYPSO_NGINX_SPEC=1);
-- busted itself runs under lua5.4 and talks to nginx over HTTP with luasocket. Without
-- CALYPSO_NGINX_SPEC this file registers nothing, so the per-runtime suite skips it.
if os.getenv("CALYPSO_NGINX_SPEC") ~= "1" then
   return
end

local socket = require("socket")
local cjson = require("cjson")
local mock = require("calypso.mock")
local nginx = require("support.nginx")
local dns_server = require("support.dns")

local server, dns, h, certs, tls_port
local N, D = 10, 0.5 -- concurrency proof: N calls, each answered after D seconds

local function sh(cmd)
   local ok = os.execute(cmd .. " >/dev/null 2>&1")
   assert(ok == true or ok == 0, "command failed: " .. cmd)
end

-- A local CA and a server certificate for calypso.test signed by it (EC keys: quick).
local function make_certs(dir)
   local q = nginx.shell_quote
   sh("mkdir -p " .. q(dir))
   nginx.write_file(dir .. "/server.ext", "subjectAltName=DNS:calypso.test\n"
      .. "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
   local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
   sh(("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=calypso-test-ca "
      .. "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"):format(q(dir), ec))
   sh(("cd %s && openssl req %s -keyout server.key -out server.csr -subj /CN=calypso.test"):format(q(dir), ec))
   sh(("cd %s && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      .. "-out server.pem -days 2 -extfile server.ext"):format(q(dir)))
   sh("chmod 755 " .. q(dir) .. " && chmod 644 " .. q(dir) .. "/*")
   return { ca = dir .. "/ca.pem", cert = dir .. "/server.pem", key = dir .. "/server.key" }
end

local function prefix_of(handle) return handle.prefix end

local function client_opts(extra)
   local o = mock.client_options(server)
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

-- POSTs a request description to a location; returns the decoded answer.
local function run(path, req)
   local status, body = h:request("POST", path, cjson.encode(req))
   assert(status == 200, "HTTP " .. tostring(status) .. ": " .. tostring(body) .. "\n" .. (h:error_log() or ""))
   return cjson.decode(body)
end

local function call(op, payload, via, extra, path)
   return run(path or "/call", {
      client = client_opts(extra and extra.client), op = op, payload = payload or {}, via = via,
      transport = extra and extra.transport,
   })
end

-- Drops what legitimately differs between two answers to the same request (the mock's
-- random trace id and the second-resolution Date) after checking they are there.
local function normalise(t)
   if t.err then
      if t.err.status then assert.is_string(t.err.date) end
      t.err.date = nil
      if t.err.trace_id then
         local pattern = t.err.trace_id:gsub("%p", "%%%0")
         t.err.message = t.err.message:gsub(pattern, "TRACE")
         t.msg = t.msg:gsub(pattern, "TRACE")
         t.err.trace_id = "TRACE"
      end
   end
   return t
end

-- The same operation through cosockets and through libcurl, inside the same nginx worker.
local function both(op, payload, extra)
   local a = call(op, payload, "both", extra)
   return normalise(a.ngx), normalise(a.curl), a
end

local function same_both(op, payload, extra)
   local n, c = both(op, payload, extra)
   assert.are.same(c, n)
   return n
end

setup(function()
   server = mock.start()
   dns = dns_server.start({ "calypso.test", "other.test" })
   local prefix = nginx.tempdir("nginx")
   certs = make_certs(prefix .. "/certs")
   tls_port = nginx.free_port()
   local resolver = "resolver 127.0.0.1:" .. dns.port .. " ipv6=off valid=1s; resolver_timeout 2s;"
   local trust = "lua_ssl_trusted_certificate " .. certs.ca .. "; lua_ssl_verify_depth 2;"
   local handler = 'content_by_lua_block { require("calypso_test").call() }'
   h = nginx.start{
      prefix = prefix,
      http = table.concat({
         "lua_shared_dict phases 1m;",
         'log_format tls_reuse "$ssl_protocol $ssl_session_reused";',
         'init_by_lua_block { require("calypso_test").record_phase() }',
         'init_worker_by_lua_block { require("calypso_test").record_phase() }',
      }, "\n"),
      server = table.concat({
         "location = /call { " .. trust .. resolver .. handler .. " }",
         "location = /call-noca { " .. resolver .. handler .. " }",
         "location = /call-noresolver { " .. handler .. " }",
         "location = /timer { " .. trust .. resolver
            .. ' content_by_lua_block { require("calypso_test").timer() } }',
         'location = /ping { return 200 "pong\\n"; }',
         "location = /phases-run {",
         '  set_by_lua_block $unused { require("calypso_test").record_phase("set") return "" }',
         '  rewrite_by_lua_block { require("calypso_test").record_phase() }',
         '  access_by_lua_block { require("calypso_test").record_phase() }',
         '  header_filter_by_lua_block { require("calypso_test").record_phase() }',
         '  body_filter_by_lua_block { require("calypso_test").record_phase() }',
         '  log_by_lua_block { require("calypso_test").record_phase() }',
         '  content_by_lua_block { require("calypso_test").record_phase() ngx.say("ok") }',
         "}",
         'location = /phases { content_by_lua_block { require("calypso_test").phases() } }',
         "location = /call-tls13 { lua_ssl_protocols TLSv1.2 TLSv1.3; " .. trust .. resolver .. handler .. " }",
         "location = /set-phase {",
         '  set_by_lua_block $answer { return require("calypso_test").in_set() }',
         '  default_type application/json; return 200 $answer;',
         "}",
      }, "\n"),
      -- TLS in front of the mock: calypso.test with a certificate from the local CA
      servers = table.concat({
         "server {",
         "  listen 127.0.0.1:" .. tls_port .. " ssl;",
         "  server_name calypso.test;",
         "  ssl_certificate " .. certs.cert .. ";",
         "  ssl_certificate_key " .. certs.key .. ";",
         "  access_log " .. prefix .. "/tls.log tls_reuse;",
         "  location / { proxy_pass http://127.0.0.1:" .. server.port .. "; proxy_http_version 1.1;",
         '    proxy_set_header Connection ""; }',
         "}",
      }, "\n"),
   }
end)

teardown(function()
   if h then h:remove() end
   if dns then dns:stop() end
   if server then server:stop() end
end)

describe("nginx + ngx_lua", function()
   it("runs the C core built against /usr/include/luajit-2.1 on OpenResty's LuaJIT", function()
      local a = call("get_customer", { customerId = "x" }, "ngx")
      assert.are.equal("content", a.phase)
      assert.is_true(a.available)
      assert.truthy(a.runtime.jit:find("^LuaJIT 2%.1"))
      assert.is_true(a.runtime.openresty_luajit)
      assert.truthy(a.runtime.purse_file:find("/build/jit/calypso/purse%.so$"), a.runtime.purse_file)
      assert.truthy(a.runtime.ngx_lua >= 10000)
   end)

   it("says where cosockets are allowed", function()
      h:request("GET", "/phases-run")
      socket.sleep(0.2) -- the log phase runs after the answer went out
      local _, body = h:request("GET", "/phases")
      assert.are.same({
         init = "false", init_worker = "false", set = "false",
         rewrite = "true", access = "true", content = "true",
         header_filter = "false", body_filter = "false", log = "false",
      }, cjson.decode(body))
   end)
end)

describe("every operation over cosockets", function()
   it("gives what the libcurl path gives", function()
      local created = call("create_customer", { email = "ngx@example.com", externalId = "ngx-1" }, "ngx").ngx.res
      assert.are.equal("ngx@example.com", created.email)
      local id = created.id
      assert.are.same(created, same_both("get_customer", { customerId = id }).res)
      local by_ext = same_both("get_customers_by_external_id", { externalId = "ngx-1" })
      assert.are.same({ created }, by_ext.res.customers)
      local updated = call("update_customer", { id = id, description = "via cosockets" }, "ngx").ngx.res
      assert.are.equal("via cosockets", updated.description)
      assert.are.same(updated, same_both("get_customer", { customerId = id }).res)
      assert.is_true(call("block_customer", { customerId = id }, "ngx").ngx.res.blocked)
      assert.is_true(same_both("get_customer", { customerId = id }).res.blocked)
      assert.is_false(call("unblock_customer", { customerId = id }, "ngx").ngx.res.blocked)
      local address = same_both("get_address", { customerId = id, currency = "USDT_TRX" }).res
      assert.is_string(address.address)
      local purses = same_both("get_purses", { customerId = id }).res
      assert.are.equal(address.address, purses[1].address)
      local tx = server:deposit{ customerId = id, currency = "USDT_TRX", amount = 25.5, state = "CONFIRMED" }
      local got = same_both("get_transaction", { transactionId = tx.id }).res
      assert.are.equal(25.5, got.amount)
      local page = same_both("find_transactions", {
         customerId = id, pageNumber = 0, pageSize = 10,
         currencyFilter = { ["in"] = { "USDT_TRX", "ETH" } },
      }).res
      assert.are.equal(tx.id, page.result[1].id)
      assert.are.equal(id, same_both("customer/get", { customerId = id }).res.id)
      -- exact amounts come out of the same decoder
      local exact = same_both("get_transaction", { transactionId = tx.id }, { client = { exact_amounts = true } }).res
      assert.are.equal("25.5", exact.amount)
   end)

   it("gives the same failures as the libcurl path", function()
      local inv = same_both("get_customer", { customerId = "not-a-uuid" })
      assert.are.equal("invalid", inv.err.kind)
      local api = same_both("get_customer", { customerId = "00000000-0000-4000-8000-000000000000" })
      assert.are.same({ "api", "004", 400 }, { api.err.kind, api.err.code, api.err.status })
      server:fault{ mode = "html503", count = 2 }
      local busy = same_both("get_customers_by_external_id", { externalId = "x" })
      assert.are.same({ "http", 503, true }, { busy.err.kind, busy.err.status, busy.err.retryable })
      server:fault{ mode = "malformed", count = 2 }
      assert.are.equal("decode", same_both("get_customers_by_external_id", { externalId = "x" }).err.kind)
      server:fault{ mode = "raw", status = 429, count = 2, headers = { ["Retry-After"] = "7" },
                    body = '{"errorCode":"000","message":"slow down"}' }
      local slow = same_both("get_customers_by_external_id", { externalId = "x" })
      assert.are.same({ "api", "7", true }, { slow.err.kind, slow.err.retry_after, slow.err.retryable })
   end)

   it("reads chunked answers and caps the body size like the libcurl path", function()
      local chunked = "5\r\n" .. '{"cus' .. "\r\n" .. "e\r\n" .. 'tomers":[]}   ' .. "\r\n0\r\n\r\n"
      server:fault{ mode = "raw", status = 200, count = 2, body = chunked,
                    headers = { ["Transfer-Encoding"] = "chunked" } }
      local ok = same_both("get_customers_by_external_id", { externalId = "x" })
      assert.are.same({}, ok.res.customers)
      -- larger than max_response_size: with Content-Length, and chunked
      local small = { client = { max_response_size = 1024 } }
      local padded = '{"customers":[]}' .. string.rep(" ", 2000)
      server:fault{ mode = "raw", status = 200, count = 2, body = padded }
      local big = same_both("get_customers_by_external_id", { externalId = "x" }, small)
      assert.are.same({ "too_large", true }, { big.err.kind, big.err.sent })
      server:fault{ mode = "raw", status = 200, count = 2, headers = { ["Transfer-Encoding"] = "chunked" },
                    body = ("%x\r\n%s\r\n0\r\n\r\n"):format(#padded, padded) }
      big = same_both("get_customers_by_external_id", { externalId = "x" }, small)
      assert.are.equal("too_large", big.err.kind)
   end)

   it("works from an ngx.timer", function()
      local c = assert(mock.client_options(server))
      local a = run("/timer", { client = c, op = "get_customers_by_external_id",
                                payload = { externalId = "ngx-1" }, via = "both" })
      assert.are.equal("timer", a.phase)
      assert.is_true(a.available)
      assert.are.same(a.curl.res, a.ngx.res)
      assert.are.equal(1, #a.ngx.res.customers)
   end)
end)

describe("transport failures", function()
   it("connection refused: kind connect, never sent", function()
      local closed = nginx.free_port()
      local n, c = both("get_customers_by_external_id", { externalId = "x" },
                        { client = { base_url = "http://127.0.0.1:" .. closed } })
      for _, r in ipairs({ n, c }) do
         assert.are.same({ "connect", false, true }, { r.err.kind, r.err.sent, r.err.retryable })
      end
   end)

   it("a connect that never completes: kind timeout after connect_timeout, never sent", function()
      local port, close = require("support.helpers").full_backlog()
      local ok, e = pcall(function()
         local n, c = both("get_customers_by_external_id", { externalId = "x" },
                           { client = { base_url = "http://127.0.0.1:" .. port, connect_timeout = 0.3, timeout = 30 } })
         for via, r in pairs({ ngx = n, curl = c }) do
            assert.are.same({ "timeout", false, true }, { r.err.kind, r.err.sent, r.err.retryable }, via)
         end
         -- connect_timeout (0.3 s) ended them, not timeout (30 s): a loose bound, not a speed test
         local a = call("get_customers_by_external_id", { externalId = "x" }, "ngx",
                        { client = { base_url = "http://127.0.0.1:" .. port, connect_timeout = 0.3, timeout = 30 } })
         assert.are.equal("timeout", a.ngx.err.kind)
         assert.is_true(a.elapsed.ngx < 15, tostring(a.elapsed.ngx))
      end)
      close()
      assert(ok, e)
   end)

   it("a stalled server: kind timeout after the total timeout", function()
      server:fault{ mode = "stall" }
      local a = call("get_customers_by_external_id", { externalId = "x" }, "ngx", { client = { timeout = 1 } })
      assert.are.same({ "timeout", true, true }, { a.ngx.err.kind, a.ngx.err.sent, a.ngx.err.retryable })
      assert.is_true(a.elapsed.ngx >= 0.9 and a.elapsed.ngx < 3, tostring(a.elapsed.ngx))
      -- a slow answer is bounded by the same total timeout
      server:fault{ mode = "delay", seconds = 3 }
      a = call("get_customers_by_external_id", { externalId = "x" }, "ngx", { client = { timeout = 1 } })
      assert.are.equal("timeout", a.ngx.err.kind)
      assert.is_true(a.elapsed.ngx < 2.5, tostring(a.elapsed.ngx))
      -- a per-call deadline (on the purse.now() clock) ends it earlier still
      server:fault{ mode = "delay", seconds = 3 }
      a = run("/call", { client = client_opts(), op = "get_customers_by_external_id",
                         payload = { externalId = "x" }, deadline_in = 0.4 })
      assert.are.same({ "timeout", true }, { a.ngx.err.kind, a.ngx.err.sent })
      assert.is_true(a.elapsed.ngx < 1.5, tostring(a.elapsed.ngx))
      a = run("/call", { client = client_opts(), op = "get_customers_by_external_id",
                         payload = { externalId = "x" }, deadline_in = -1 })
      assert.are.same({ "timeout", false }, { a.ngx.err.kind, a.ngx.err.sent })
      -- the libcurl path says the same
      server:fault{ mode = "stall" }
      a = call("get_customers_by_external_id", { externalId = "x" }, "curl", { client = { timeout = 1 } })
      assert.are.same({ "timeout", true }, { a.curl.err.kind, a.curl.err.sent })
      socket.sleep(2.2) -- let the mock finish the delayed answer nobody waits for
   end)

   it("a connection closed without an answer: kind network, sent", function()
      server:fault{ mode = "close", count = 2 }
      local n, c = both("create_customer", { email = "closed@example.com" })
      for _, r in ipairs({ n, c }) do
         assert.are.same({ "network", true }, { r.err.kind, r.err.sent })
      end
   end)
end)

describe("keep-alive", function()
   local pool = { transport = { pool = "calypso-spec-reuse" } }

   it("reuses one pooled connection for reads and for recent writes", function()
      local before = nil
      local last
      for i = 1, 5 do
         last = call("get_customers_by_external_id", { externalId = "r" }, "ngx", pool)
         assert.is_table(last.ngx.res)
         assert.are.equal(i - 1, last.stats.last_reused)
         if i == 1 then before = nginx.connections_to(server.port) end
      end
      assert.are.equal(1, last.stats.connects)
      assert.are.equal(before, nginx.connections_to(server.port)) -- no new connection
      -- a write used within write_reuse_idle (2 s): it rides the pooled connection
      local w = call("create_customer", { email = "w@example.com" }, "ngx", pool)
      assert.is_string(w.ngx.res.id)
      assert.are.same({ 1, 5, 0 }, { w.stats.connects, w.stats.last_reused, w.stats.stale })
      local r = call("get_customers_by_external_id", { externalId = "r" }, "ngx", pool)
      assert.are.same({ 1, 6 }, { r.stats.connects, r.stats.last_reused })
      assert.are.equal(before, nginx.connections_to(server.port))
      local writes = 0
      for _, req in ipairs(server:requests()) do
         if req.path:find("customer/create", 1, true) and req.body:find("w@example.com", 1, true) then
            writes = writes + 1
            assert.is_nil(req.headers.connection) -- no Connection: close any more
         end
      end
      assert.are.equal(1, writes)
   end)

   it("resends a read once when its pooled connection turns out dead", function()
      local a = call("get_customers_by_external_id", { externalId = "r" }, "ngx", pool)
      assert.is_true(a.stats.last_reused >= 1)
      server:fault{ mode = "close" } -- the pooled connection dies under the next request
      local b = call("get_customers_by_external_id", { externalId = "r" }, "ngx", pool)
      assert.is_table(b.ngx.res)
      assert.are.equal(a.stats.resent + 1, b.stats.resent)
      -- the fresh connection of the resend is not kept: a write of another client (another
      -- pool) opens its own (ngx_lua finds a named pool by its name, whatever the server)
      local w = call("create_customer", { email = "after-resend@example.com" }, "ngx",
                     { transport = { pool = "calypso-spec-other" } })
      assert.is_string(w.ngx.res and w.ngx.res.id, cjson.encode(w))
      assert.are.equal(0, w.stats.last_reused)
   end)

   it("does not pool a connection the server closes, and honours keepalive_timeout", function()
      local opts = { transport = { pool = "calypso-spec-idle", keepalive_timeout = 0.3, pool_size = 2 } }
      call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      local a = call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      assert.are.same({ 1, 1 }, { a.stats.connects, a.stats.last_reused })
      socket.sleep(0.6) -- past the idle timeout: nginx closed it
      a = call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      assert.are.same({ 2, 0 }, { a.stats.connects, a.stats.last_reused })
      server:fault{ mode = "raw", status = 200, body = '{"customers":[]}', headers = { Connection = "close" } }
      call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      a = call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      assert.are.same({ 3, 0 }, { a.stats.connects, a.stats.last_reused })
   end)
end)

-- Writes on pooled connections (issue 14): a write rides a pooled connection used within
-- write_reuse_idle, and is never resent. Each case counts the write's copies in the mock's log.
describe("writes on pooled connections", function()
   local serial = 0
   local function email()
      serial = serial + 1
      return ("ngx-write-%d@example.com"):format(serial)
   end
   local function copies(e)
      local n = 0
      for _, req in ipairs(server:requests()) do
         if req.path:find("customer/create", 1, true) and req.body:find(e, 1, true) then n = n + 1 end
      end
      return n
   end
   local deaths = {
      { "closed unanswered (FIN)", { mode = "close" } },
      { "reset unanswered (RST)", { mode = "wire", data = "", after = "reset" } },
   }

   for i, death in ipairs(deaths) do
      it("a pooled connection " .. death[1] .. " under a write: one copy, network, sent, not resent", function()
         local opts = { transport = { pool = "calypso-spec-wdeath" .. i } }
         local a = call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
         assert.is_table(a.ngx.res)
         server:fault(death[2])
         local e = email()
         local w = call("create_customer", { email = e }, "ngx", opts)
         assert.is_nil(w.ngx.res)
         assert.are.same({ "network", true }, { w.ngx.err.kind, w.ngx.err.sent }, w.ngx.msg)
         assert.are.same({ 1, 1, a.stats.resent }, { w.stats.connects, w.stats.last_reused, w.stats.resent })
         assert.are.equal(1, copies(e))
         -- the Lua layer (retries on) does not resend it either
         local layer = { client = { transport = "ngx", max_retries = 3, backoff_base = 0.01 } }
         call("get_customers_by_external_id", { externalId = "r" }, "calypso", layer)
         server:fault(death[2])
         e = email()
         local l = call("create_customer", { email = e }, "calypso", layer)
         assert.is_nil(l.calypso.res)
         assert.are.same({ "network", true }, { l.calypso.err.kind, l.calypso.err.sent }, l.calypso.msg)
         assert.are.equal(1, copies(e))
      end)
   end

   it("a write after write_reuse_idle opens a fresh connection (the stale one is closed)", function()
      local opts = { client = { write_reuse_idle = 0.3 }, transport = { pool = "calypso-spec-wfresh" } }
      call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      local w = call("create_customer", { email = email() }, "ngx", opts)   -- recent: reused
      assert.are.same({ 1, 1, 0 }, { w.stats.connects, w.stats.last_reused, w.stats.stale })
      socket.sleep(0.6)
      -- had the idle connection been taken, this fault would strike the write on it
      local e = email()
      w = call("create_customer", { email = e }, "ngx", opts)
      assert.is_string(w.ngx.res and w.ngx.res.id, cjson.encode(w))
      assert.are.same({ 2, 0, 1 }, { w.stats.connects, w.stats.last_reused, w.stats.stale })
      assert.are.equal(1, copies(e))
      -- reads still take an idle pooled connection
      socket.sleep(0.6)
      local r = call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      assert.are.same({ 2, 1, 1 }, { r.stats.connects, r.stats.last_reused, r.stats.stale })
   end)

   it("write_reuse_idle = 0: every write on a connection of its own", function()
      local opts = { client = { write_reuse_idle = 0 }, transport = { pool = "calypso-spec-wzero" } }
      call("get_customers_by_external_id", { externalId = "r" }, "ngx", opts)
      for k = 1, 3 do
         local e = email()
         local w = call("create_customer", { email = e }, "ngx", opts)
         assert.is_string(w.ngx.res and w.ngx.res.id, cjson.encode(w))
         assert.are.same({ 1 + k, 0 }, { w.stats.connects, w.stats.last_reused })
         assert.are.equal(1, copies(e))
      end
   end)
end)

describe("TLS", function()
   -- `pool`: keep-alive pools are per worker and named after scheme, host and port, not after
   -- the location's trust settings; a connection verified under /call would be reused by
   -- /call-noca. The failure cases therefore use pools of their own.
   local https = function(host, pool, extra)
      local client = { base_url = "https://" .. host .. ":" .. tls_port }
      for k, v in pairs(extra or {}) do client[k] = v end
      return { client = client, transport = { pool = pool } }
   end

   it("verifies the server with lua_ssl_trusted_certificate and reuses the session's connection", function()
      local plain = call("get_customers_by_external_id", { externalId = "ngx-1" }, "ngx")
      local a = call("get_customers_by_external_id", { externalId = "ngx-1" }, "ngx", https("calypso.test"))
      assert.is_nil(a.ngx.err and a.ngx.err.message)
      assert.are.same(plain.ngx.res, a.ngx.res)
      local b = call("get_customers_by_external_id", { externalId = "ngx-1" }, "ngx", https("calypso.test"))
      assert.are.equal(1, b.stats.last_reused)
   end)

   it("resumes the previous TLS session on a new connection", function()
      -- write_reuse_idle = 0: each write opens a fresh connection, a new handshake
      local log = prefix_of(h) .. "/tls.log"
      for _, path in ipairs({ "/call", "/call-tls13" }) do
         local before = #(nginx.read_file(log) or "")
         for i = 1, 3 do
            local a = call("create_customer", { email = "tls" .. i .. "@example.com" }, "ngx",
                           https("calypso.test", "resume" .. path, { write_reuse_idle = 0 }), path)
            assert.is_string(a.ngx.res and a.ngx.res.id, cjson.encode(a))
         end
         local lines
         for _ = 1, 30 do -- the access log line is written after the answer: wait for it, bounded
            lines = {}
            for l in (nginx.read_file(log) or ""):sub(before + 1):gmatch("[^\n]+") do lines[#lines + 1] = l end
            if #lines >= 3 then break end
            socket.sleep(0.1)
         end
         io.stderr:write(("[nginx] TLS handshakes for %s (protocol, reused): %s\n")
                         :format(path, table.concat(lines, "; ")))
         assert.are.equal(3, #lines, (nginx.read_file(log) or "") .. " from offset " .. before)
         assert.truthy(lines[1]:find(" %.$"), lines[1]) -- the first one in full
         assert.truthy(lines[2]:find(" r$"), lines[2])  -- then resumed
         assert.truthy(lines[3]:find(" r$"), lines[3])
      end
   end)

   it("fails with kind tls without the CA or on a host name mismatch, before sending", function()
      local a = call("get_customers_by_external_id", { externalId = "x" }, "ngx",
                     https("calypso.test", "noca"), "/call-noca")
      assert.are.same({ "tls", false }, { a.ngx.err.kind, a.ngx.err.sent })
      -- insecure_skip_tls_verify (passed along by calypso.new) turns the checks off, in a pool
      -- of its own
      local insecure = https("calypso.test")
      insecure.transport.insecure_skip_tls_verify = true
      a = call("get_customers_by_external_id", { externalId = "x" }, "ngx", insecure, "/call-noca")
      assert.is_table(a.ngx.res, cjson.encode(a))
      assert.are.same({ 1, 0 }, { a.stats.connects, a.stats.last_reused })
      for _, host in ipairs({ "other.test", "127.0.0.1" }) do
         a = call("get_customers_by_external_id", { externalId = "x" }, "ngx", https(host))
         assert.are.same({ "tls", false }, { a.ngx.err.kind, a.ngx.err.sent })
         assert.truthy(a.ngx.msg:find("mismatch", 1, true), a.ngx.msg)
      end
   end)

   it("fails with kind resolve for unknown names and without a resolver", function()
      local a = call("get_customers_by_external_id", { externalId = "x" }, "ngx", https("nope.test"))
      assert.are.same({ "resolve", false }, { a.ngx.err.kind, a.ngx.err.sent })
      a = call("get_customers_by_external_id", { externalId = "x" }, "ngx", https("calypso.test", "noresolver"),
               "/call-noresolver")
      assert.are.same({ "resolve", false }, { a.ngx.err.kind, a.ngx.err.sent })
   end)
end)

describe("never blocking the worker", function()
   local function load(via, n, path, extra)
      local body = cjson.encode{ client = client_opts(extra), op = "get_customers_by_external_id",
                                 payload = { externalId = "ngx-1" }, via = via }
      local reqs = {}
      for i = 1, n do reqs[i] = { "POST", path or "/call", body } end
      reqs[n + 1] = { "GET", "/ping", nil, at = 0.1 } -- the trivial location, during the load
      server:config{ delay = D }
      local res = h:parallel(reqs, 60)
      server:config{ delay = 0 }
      local wall = 0
      for i = 1, n do
         assert.are.equal(200, res[i].status, tostring(res[i].body))
         local a = cjson.decode(res[i].body)
         assert.is_table(a[via].res, res[i].body)
         wall = math.max(wall, res[i].done)
      end
      local ping = res[n + 1]
      assert.are.equal(200, ping.status)
      return wall, ping.done - ping.sent
   end

   it(("N=%d calls to a server answering after D=%.1f s take about D on one worker"):format(N, D), function()
      local wall, ping = load("ngx", N)
      io.stderr:write(("\n[nginx] cosockets: %d concurrent calls, D=%.2fs: wall %.3fs; /ping during the load %.1f ms\n")
         :format(N, D, wall, ping * 1000))
      assert.is_true(wall < N * D / 2, ("wall %.3f s"):format(wall))
      assert.is_true(wall >= D * 0.9, ("wall %.3f s"):format(wall))
      assert.is_true(ping < D, ("ping %.3f s"):format(ping))
   end)

   it("while the blocking libcurl path serialises them and stalls the trivial location", function()
      local n = 4
      local wall, ping = load("curl", n)
      io.stderr:write(("[nginx] libcurl (blocking): %d concurrent calls, D=%.2fs: wall %.3fs; /ping waited %.1f ms\n")
         :format(n, D, wall, ping * 1000))
      assert.is_true(wall >= (n - 1) * D, ("wall %.3f s"):format(wall))
      assert.is_true(ping >= D / 2, ("ping %.3f s"):format(ping))
   end)
end)

-- The Lua layer (calypso.new) picks the transport per call: cosockets where nginx allows them,
-- otherwise libcurl only with blocking_fallback.
describe("through require('calypso').new", function()
   local function last_user_agent()
      local reqs = server:requests()
      return reqs[#reqs].headers["user-agent"]
   end

   local function layer_ready()
      local a = call("get_customers_by_external_id", { externalId = "ngx-1" }, "calypso",
                     { client = { transport = "auto" } })
      if a.calypso.error then
         pending("the Lua layer does not select transports yet: " .. a.calypso.error)
         return false
      end
      return true
   end

   it("goes over cosockets in a content handler and answers like the transport itself", function()
      if not layer_ready() then return end
      local direct = call("get_customers_by_external_id", { externalId = "ngx-1" }, "ngx")
      local a = call("get_customers_by_external_id", { externalId = "ngx-1" }, "calypso")
      assert.are.same(direct.ngx.res, a.calypso.res)
      assert.truthy(last_user_agent():find("ngx_lua/", 1, true), last_user_agent())
   end)

   it("never blocks the worker", function()
      if not layer_ready() then return end
      local body = cjson.encode{ client = client_opts(), op = "get_customers_by_external_id",
                                 payload = { externalId = "ngx-1" }, via = "calypso" }
      local reqs = {}
      for i = 1, N do reqs[i] = { "POST", "/call", body } end
      reqs[N + 1] = { "GET", "/ping", nil, at = 0.1 }
      server:config{ delay = D }
      local res = h:parallel(reqs, 60)
      server:config{ delay = 0 }
      local wall = 0
      for i = 1, N do
         assert.are.equal(200, res[i].status)
         assert.is_table(cjson.decode(res[i].body).calypso.res, res[i].body)
         wall = math.max(wall, res[i].done)
      end
      local ping = res[N + 1].done - res[N + 1].sent
      io.stderr:write(("[nginx] calypso.new (auto): %d concurrent calls, D=%.2fs: wall %.3fs; /ping %.1f ms\n")
         :format(N, D, wall, ping * 1000))
      assert.is_true(wall < N * D / 2, ("wall %.3f s"):format(wall))
      assert.is_true(ping < D, ("ping %.3f s"):format(ping))
   end)

   it("runs a batch concurrently on light threads", function()
      if not layer_ready() then return end
      local calls = {}
      for i = 1, N do calls[i] = { "get_customers_by_external_id", { externalId = "ngx-1" } } end
      server:config{ delay = D }
      local a = run("/call", { client = client_opts(), op = "batch", via = "batch", calls = calls })
      server:config{ delay = 0 }
      assert.are.equal(N, #a.batch)
      for i = 1, N do assert.is_table(a.batch[i].value, cjson.encode(a.batch[i])) end
      io.stderr:write(("[nginx] calypso client:batch: %d calls, D=%.2fs: %.3fs\n"):format(N, D, a.elapsed.batch))
      assert.is_true(a.elapsed.batch < N * D / 2, tostring(a.elapsed.batch))
   end)

   -- issue 15: batch and multi give each call the single-call policy on light threads too
   local function creates()
      local n = 0
      for _, r in ipairs(server:requests()) do
         if r.path:find("customer/create", 1, true) then n = n + 1 end
      end
      return n
   end

   -- (a 503 page: a read whose kept-alive connection is dropped is resent by the transport
   -- itself, before the layer sees a failure)
   it("retries the reads of a batch and of a multi answered with 503 pages", function()
      if not layer_ready() then return end
      local ids = {}
      for i = 1, 3 do
         local a = call("create_customer", { externalId = "ngx-drop-" .. i }, "calypso")
         ids[i] = assert(a.calypso.res, cjson.encode(a)).id
      end
      for _, via in ipairs{ "batch", "multi" } do
         server:fault{ mode = "html503", count = 3 }
         local calls = {}
         for i = 1, 3 do calls[i] = { "get_customer", ids[i] } end   -- positional
         local a = run("/call", { client = client_opts{ backoff_base = 0.001 }, op = "get_customer",
                                 via = via, calls = calls, events = true })
         for i = 1, 3 do
            assert.are.equal(ids[i], a[via][i].value and a[via][i].value.id, cjson.encode(a[via][i]))
         end
         local retried, ok = 0, 0
         for _, ev in ipairs(a.events) do
            assert.are.equal("ngx", ev.transport)
            if ev.retry == "retry" then retried = retried + 1 end
            if ev.ok then ok = ok + 1 end
         end
         assert.are.same({ 3, 3 }, { retried, ok }, cjson.encode(a.events))
      end
   end)

   it("never resends a write of a batch or a multi that may have reached the server", function()
      if not layer_ready() then return end
      for _, via in ipairs{ "batch", "multi" } do
         local before = creates()
         server:fault{ mode = "close" }
         local a = run("/call", { client = client_opts{ backoff_base = 0.001 }, op = "create_customer",
                                 via = via, calls = { { "create_customer", { externalId = "ngx-w-" .. via } } } })
         local r = a[via][1]
         assert.is_nil(r.value)
         assert.are.same({ "network", true, 1 }, { r.err.kind, r.err.sent, r.err.attempts })
         assert.are.equal(before + 1, creates())
      end
   end)

   it("refuses in a phase without cosockets unless blocking_fallback is on", function()
      if not layer_ready() then return end
      local function in_set(extra)
         local q = cjson.encode{ client = client_opts(extra), op = "get_customers_by_external_id",
                                 payload = { externalId = "ngx-1" }, via = "calypso" }
         local status, body = h:request("GET", "/set-phase?q=" .. q:gsub("[^%w]", function(c)
            return ("%%%02X"):format(c:byte())
         end))
         assert.are.equal(200, status, body)
         return cjson.decode(body)
      end
      local a = in_set()
      assert.are.same({ "set", false }, { a.phase, a.available })
      assert.is_nil(a.calypso.res)
      assert.are.same({ "unavailable", false, false },
                      { a.calypso.err.kind, a.calypso.err.sent, a.calypso.err.retryable })
      a = in_set({ blocking_fallback = true })
      assert.is_table(a.calypso.res, cjson.encode(a))
      -- libcurl's User-Agent, not the cosocket transport's
      assert.is_nil(last_user_agent():find("ngx_lua/", 1, true), last_user_agent())
   end)
end)

-- scripts/test-nginx.sh builds the rock the way the README says
-- (luarocks --lua-version 5.1 make LUA_INCDIR=/usr/include/luajit-2.1) into CALYPSO_ROCK_JIT.
describe("the rock built for OpenResty's LuaJIT", function()
   it("loads and works in nginx from its install tree", function()
      local tree = os.getenv("CALYPSO_ROCK_JIT")
      if not tree or not nginx.read_file(tree .. "/lib/lua/5.1/calypso/purse.so") then
         pending("no rock tree (run through scripts/test-nginx.sh)")
         return
      end
      local share = tree .. "/share/lua/5.1"
      local h2 = nginx.start{
         lua_path = share .. "/?.lua;" .. share .. "/?/init.lua",
         lua_cpath = tree .. "/lib/lua/5.1/?.so",
         server = 'location = /call { content_by_lua_block { require("calypso_test").call() } }',
      }
      local ok, err = pcall(function()
         local status, body = h2:request("POST", "/call", cjson.encode{
            client = client_opts(), op = "get_customers_by_external_id",
            payload = { externalId = "ngx-1" }, via = "both" })
         assert.are.equal(200, status, body)
         local a = cjson.decode(body)
         assert.are.equal(tree .. "/lib/lua/5.1/calypso/purse.so", a.runtime.purse_file)
         assert.is_table(a.ngx.res)
         assert.are.same(a.curl.res, a.ngx.res)
      end)
      h2:remove()
      assert(ok, err)
   end)
end)

-- A client made and used in init_by_lua (nginx's master, before it forks its workers: the
-- blocking libcurl path), then used by two workers at once. Each worker inherits the
-- master's kept-alive connection; without the pid check both would write on it and read
-- each other's answers (or wait for one that went to the other process).
describe("a client used in init_by_lua, then by two workers", function()
   local w, ids
   local CALLS = 40

   setup(function()
      local o = mock.client_options(server)
      local warm = assert(require("calypso.purse").new(o):create_customer{ externalId = "init-by-lua" })
      ids = {}
      for i = 1, CALLS do
         ids[i] = assert(require("calypso.purse").new(o):create_customer{ externalId = "fork-" .. i }).id
      end
      w = nginx.start{
         workers = 2,
         http = ([[
  init_by_lua_block {
    local purse = require "calypso.purse"
    local c = purse.new(require("cjson").decode(%q))
    assert(c:get_customer{ customerId = %q })   -- a kept-alive connection, then the fork
    package.loaded["forked_client"] = c
  }]]):format(cjson.encode(o), warm.id),
         server = [[
    location /own {
      content_by_lua_block {
        local c = package.loaded["forked_client"]
        local id = ngx.var.arg_id
        local res, msg = c:get_customer{ customerId = id }
        ngx.say(res and (res.id == id and "own" or "other") or ("failed: " .. tostring(msg)),
                " ", ngx.worker.pid())
      }
    }]],
      }
   end)
   teardown(function() if w then w:stop() end end)

   it("gives every request its own answer in both workers", function()
      local reqs = {}
      for i = 1, CALLS do reqs[i] = { "GET", "/own?id=" .. ids[i] } end
      local res = w:parallel(reqs, 60)
      local own, pids = 0, {}
      for i = 1, CALLS do
         local verdict, pid = tostring(res[i].body):match("^(%S+) (%d+)")
         assert.are.equal("own", verdict, ("call %d: %s\n%s"):format(i, tostring(res[i].body), w:error_log() or ""))
         own = own + 1
         pids[pid] = true
      end
      assert.are.equal(CALLS, own)
      local workers = 0
      for _ in pairs(pids) do workers = workers + 1 end
      io.stderr:write(("[nginx] init_by_lua client: %d calls, all their own, served by %d worker(s)\n")
         :format(CALLS, workers))
   end)
end)

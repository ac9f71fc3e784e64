-- The hostile corpus (spec/support/hostile_corpus.lua) against a real loopback server
-- (spec/support/hostile_server.lua), through both transports:
--   * calypso.transport.ngx in a private nginx (spec/support/nginx.lua), one call per case,
--     with the nginx worker's peak RSS (VmHWM, reset before each endless case) measured;
--   * the libcurl path: calypso.purse called from this process.
-- Every case must end with its kind (or the libcurl kind the corpus names, with the reason the
-- README's fault table gives), a slow case within timeout + 3 s, an endless case with the
-- worker's peak RSS grown by less than 8 MiB.
--
-- Part of the nginx stage: scripts/test-nginx.sh runs it (CALYPSO_NGINX_SPEC=1). Each case's
-- outcome is printed on stderr ("[hostile] ngx <case> kind=... t=...s rss=+...KiB").
if os.getenv("CALYPSO_NGINX_SPEC") ~= "1" then
   return
end

local cjson = require("cjson")
local socket = require("socket")
local purse = require("calypso.purse")
local mock_state = require("calypso.mock.state")
local nginx = require("support.nginx")
local corpus = require("support.hostile_corpus")
local hostile = require("support.hostile_server")

local RSS_LIMIT_KIB = 8 * 1024
local SLOW_MARGIN = 3

local server, h

local function client_options(c)
   return {
      key = mock_state.DEFAULT_KEY, secret = mock_state.DEFAULT_SECRET, account = mock_state.DEFAULT_ACCOUNT,
      base_url = server:url(c.name, c.ipv6), timeout = c.timeout, connect_timeout = 2,
      max_response_size = c.max,
   }
end

-- The PID of the (only) worker of nginx `h`.
local function worker_pid()
   local children = nginx.read_file(("/proc/%s/task/%s/children"):format(h.pid, h.pid)) or ""
   return children:match("(%d+)")
end

local function status_kib(pid, field)
   local text = nginx.read_file("/proc/" .. pid .. "/status") or ""
   return tonumber(text:match(field .. ":%s*(%d+)"))
end

-- Replaces the worker (SIGHUP to the master: a new worker, the old one leaves) so that memory
-- the previous cases left in the old worker's heap cannot hide this case's growth. Returns the
-- new worker's PID.
local function fresh_worker()
   local old = worker_pid()
   os.execute("kill -HUP " .. h.pid)
   for _ = 1, 200 do
      socket.sleep(0.05)
      local children = nginx.read_file(("/proc/%s/task/%s/children"):format(h.pid, h.pid)) or ""
      local pids = {}
      for pid in children:gmatch("%d+") do pids[#pids + 1] = pid end
      if #pids == 1 and pids[1] ~= old then return pids[1] end
   end
   error("nginx did not replace its worker")
end

-- Resets the peak RSS of `pid` to its current RSS (Linux: write 5 to clear_refs).
local function reset_peak(pid)
   local f = io.open("/proc/" .. pid .. "/clear_refs", "w")
   if f then
      f:write("5")
      f:close()
      return true
   end
   return false
end

local function outcome(res, msg, err)
   if res ~= nil then return "ok", res end
   return err and err.kind or ("no kind: " .. tostring(msg)), err
end

local function report(via, c, kind, elapsed, rss)
   io.stderr:write(("[hostile] %-4s %-32s expect=%-9s got=%-9s t=%6.2fs%s\n"):format(via, c.name,
      (via == "curl" and c.curl or c.kind), kind, elapsed, rss and ("  rss=+%dKiB"):format(rss) or ""))
end

local function check(via, c, kind, value, elapsed)
   local want = via == "curl" and c.curl or c.kind
   assert.are.equal(want, kind, c.name .. " via " .. via .. ": " .. cjson.encode(value or {}))
   if kind == "ok" then
      assert.are.same({}, value.customers, c.name)
   end
   if c.slow then
      assert.is_true(elapsed < c.timeout + SLOW_MARGIN, ("%s via %s took %.2f s"):format(c.name, via, elapsed))
   end
end

setup(function()
   server = hostile.start()
   h = nginx.start{
      lifetime = 900,
      server = 'location = /call { content_by_lua_block { require("calypso_test").call() } }\n'
         .. 'location = /ping { content_by_lua_block { require("calypso_test") require("calypso.purse") '
         .. 'pcall(require, "calypso.http1") require("calypso.transport.ngx") ngx.say("pong") } }',
   }
end)

teardown(function()
   if h then h:remove() end
   if server then server:stop() end
end)

describe("the hostile corpus over cosockets (nginx)", function()
   for _, c in ipairs(corpus.cases) do
      it(("%s: %s"):format(c.name, c.kind), function()
         local pid = assert(worker_pid(), "no nginx worker")
         local before
         if c.memory then
            pid = fresh_worker()
            h:request("GET", "/ping") -- the new worker loads calypso before the measure
            reset_peak(pid)
            before = status_kib(pid, "VmHWM")
         end
         local status, body = h:request("POST", "/call", cjson.encode{
            client = client_options(c), op = corpus.OP, payload = corpus.PAYLOAD, via = "ngx",
            transport = { pool = "hostile:" .. c.name },
         }, nil, c.timeout + 60)
         assert.are.equal(200, status, tostring(body) .. "\n" .. (h:error_log() or ""))
         local a = cjson.decode(body)
         local grown = c.memory and (status_kib(pid, "VmHWM") - before) or nil
         local kind = a.ngx.res and "ok" or (a.ngx.err and a.ngx.err.kind)
         report("ngx", c, kind, a.elapsed.ngx, grown)
         check("ngx", c, kind, a.ngx.res or a.ngx.err, a.elapsed.ngx)
         if c.memory then
            assert.is_true(grown < RSS_LIMIT_KIB, ("%s: worker peak RSS grew by %d KiB"):format(c.name, grown))
         end
      end)
   end

   it("never hands one answer's bytes to the next call on a kept-alive connection", function()
      local shared = { pool = "hostile:shared" }
      for _, name in ipairs({ "extra_bytes_after_body", "ok_content_length", "extra_bytes_after_body",
                              "ok_content_length" }) do
         local c = corpus.get(name)
         local opts = client_options(c)
         opts.base_url = server:url(name) -- same host and port: the same pool
         local _, body = h:request("POST", "/call", cjson.encode{
            client = opts, op = corpus.OP, payload = corpus.PAYLOAD, via = "ngx", transport = shared })
         local a = cjson.decode(body)
         assert.are.same({}, a.ngx.res and a.ngx.res.customers, body)
      end
   end)
end)

describe("the hostile corpus over libcurl", function()
   for _, c in ipairs(corpus.cases) do
      it(("%s: %s"):format(c.name, c.curl or c.kind), function()
         local client = purse.new(client_options(c))
         local t0 = socket.gettime()
         local kind, value = outcome(client[corpus.OP](client, corpus.PAYLOAD))
         local elapsed = socket.gettime() - t0
         client:close()
         report("curl", c, kind, elapsed)
         check("curl", c, kind, value, elapsed)
      end)
   end
end)

-- From a hostile review: cosocket writes on pooled connections (calypso.transport.ngx):
-- the per-pool stack of last-use times that mirrors ngx_lua's LIFO pool goes out of step when
-- nginx drops a pooled connection that is not the oldest (here: the server sends bytes on it
-- unasked, so ngx_lua's keepalive handler closes it), and a write then rides a connection that
-- idled far longer than write_reuse_idle, with the guard reporting it fresh.
-- The reuse count recorded with each time catches this (the stack is dropped, the write takes a new connection).
-- Run: CALYPSO_NGINX_SPEC=1 LUA_CPATH="build/5.4/?.so;;" CALYPSO_MOCK_LUA=lua5.4 \
--   lua5.4 /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' spec/nginx_writes_spec.lua
if os.getenv("CALYPSO_NGINX_SPEC") ~= "1" then
   return
end

local cjson = require("cjson")
local mock = require("calypso.mock")
local nginx = require("support.nginx")
local tcp_peers = require("support.tcp_peers")

local server, h

-- In one nginx request: two overlapping reads (two pooled connections A and B, same time t0);
-- a wait; one read (takes the newest, B; the server then sends bytes on B unasked and nginx
-- drops it from the pool); a short wait; then a write. The pool holds only A, idle since t0.
local HANDLER = [[
location = /seq { content_by_lua_block {
   ngx.req.read_body()
   local cjson = require("cjson.safe")
   local req = cjson.decode(ngx.req.get_body_data())
   local core = require("calypso.purse").new(req.client)
   local t = require("calypso.transport.ngx").new(core, { pool = req.pool })
   local out = { steps = {} }
   local function note(name, res, msg, err)
      out.steps[#out.steps + 1] = { name = name, ok = res ~= nil, msg = msg, kind = err and err.kind,
         sent = err and err.sent, at = ngx.now(), stats = { connects = t.stats.connects,
         reused = t.stats.reused, stale = t.stats.stale, last_reused = t.stats.last_reused } }
   end
   local th = {}
   for i = 1, 2 do
      th[i] = ngx.thread.spawn(function()
         return t:request("get_customers_by_external_id", { externalId = "x" .. i })
      end)
   end
   for i = 1, 2 do
      local _, res, msg, err = ngx.thread.wait(th[i])
      note("overlapping read " .. i, res, msg, err)
   end
   local t0 = ngx.now()
   ngx.sleep(req.gap)
   note("read on the newest (answered, then bytes unasked)",
        t:request("get_customers_by_external_id", { externalId = "y" }))
   ngx.sleep(0.4)
   note("write", t:request("create_customer", { email = "rv@example.com" }))
   out.oldest_idle = out.steps[#out.steps].at - t0
   ngx.say(cjson.encode(out))
} }
]]

setup(function()
   server = mock.start{ request_log_size = 100 }
   h = nginx.start{ lifetime = 120, server = HANDLER }
end)

teardown(function()
   if h then h:remove() end
   if server then server:stop() end
end)

describe("cosocket write freshness", function()
   it("rv_lifo_stack_desync: a write never rides a pooled connection idle longer than write_reuse_idle", function()
      server:reset()
      server:fault{ mode = "delay", seconds = 0.3, count = 2 }     -- the two reads overlap
      server:fault{ mode = "unsolicited", data = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", seconds = 0.1 }
      local client = mock.client_options(server)
      client.timeout = 5
      client.write_reuse_idle = 1
      local status, body = h:request("POST", "/seq", cjson.encode{ client = client, pool = "rv-lifo", gap = 1.5 },
                                     nil, 20)
      assert(status == 200, tostring(body))
      local out = cjson.decode(body)
      for _, s in ipairs(out.steps) do
         print(("    %-50s ok=%s kind=%s connects=%d reused=%d stale=%d last_reused=%d"):format(s.name,
            tostring(s.ok), tostring(s.kind), s.stats.connects, s.stats.reused, s.stats.stale, s.stats.last_reused))
      end
      local w = out.steps[#out.steps]
      -- B is gone (nginx closed it for the unasked bytes): one connection to the mock is left,
      -- A, back in the pool after the write; the write was not handed B's unasked bytes either
      local _, left = tcp_peers.to(server.port)
      print(("    connections from nginx to the mock after the write: %d"):format(left))
      assert.are.equal(1, left)
      assert.is_nil(w.msg)
      print(("    the only pooled connection had idled %.2f s when the write took it (write_reuse_idle = 1)")
         :format(out.oldest_idle))
      assert.is_true(w.ok, w.msg)
      assert.are.equal(2, out.steps[2].stats.connects)       -- A and B
      assert.is_true(out.oldest_idle > 1.5)
      -- what must happen: the stale connection is put aside (stale + 1) and the write opens a new
      -- one (last_reused = 0). Observed: stale = 0, the write rode A (last_reused >= 1).
      assert.are.equal(0, w.stats.last_reused, "the write rode a pooled connection idle " ..
         ("%.2f s (> write_reuse_idle = 1) believing it fresh"):format(out.oldest_idle))
   end)
end)

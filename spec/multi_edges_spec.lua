-- luacheck: ignore 241 512
-- From a hostile review of the multi/batch machinery (src/multi.c, the Lua layer's Multi): a
-- deadline passing in a core batch of more than 1024 calls, the calls of a closed client, an
-- on_event hook closing the Lua multi mid-poll; and the attacks that held up.
local purse = require "calypso.purse"
local calypso = require "calypso"
local mock = require "calypso.mock"
local cjson = require "cjson"
local helpers = require "support.helpers"

local server, opts, client, cust

setup(function()
   server = mock.start{ request_log_size = 3000 }
   opts = mock.client_options(server)
   client = purse.new(opts)
   cust = assert(client:create_customer{ email = "edges@example.com" })
end)
teardown(function()
   client:close()
   server:stop()
end)
after_each(function()
   server:config{ delay = 0 }
   client:deadline(nil)
end)

local function copy(t) local r = {} for k, v in pairs(t) do r[k] = v end return r end

describe("core client:batch and the 1024 slots", function()
   -- calls done at launch (deadline passed) do not count in m->running, so the start
   -- loop of client_batch starts every remaining entry before collecting any: past 1024 it
   -- raises "cannot start another call", and the results of calls already sent are lost.
   it("a deadline that passes mid-batch of >1024 writes gives a result per entry", function()
      server:config{ delay = 0.2 }
      local n0 = #server:requests()
      local calls = {}
      for i = 1, 1100 do calls[i] = { "create_customer", { email = ("w%d@example.com"):format(i) } } end
      client:deadline(purse.now() + 0.3)
      local ok, r = pcall(client.batch, client, calls, 1)
      client:deadline(nil)
      local reached = #server:requests() - n0
      assert.is_true(reached >= 1)   -- writes were applied by the server
      assert.is_true(ok, ("batch raised after %d writes reached the server: %s"):format(reached, tostring(r)))
      assert.are.equal(1100, #r)
      assert.is_truthy(r[1].value)                          -- the first write's answer
      assert.are.equal(false, r[1100].err.sent)             -- the tail expired unsent
   end)

   it("a deadline already passed gives 1100 'not sent' timeouts, not an error", function()
      local calls = {}
      for i = 1, 1100 do calls[i] = { "get_customer", { customerId = cust.id } } end
      client:deadline(purse.now() - 1)
      local ok, r = pcall(client.batch, client, calls)
      client:deadline(nil)
      assert.is_true(ok, tostring(r))
      assert.are.equal(1100, #r)
      assert.are.same({ "timeout", false }, { r[1100].err.kind, r[1100].err.sent })
   end)
end)

describe("core multi: queued calls of a closed client", function()
   -- From a hostile review: the calls of a closed client can never be collected (finished and
   -- result raise), yet pending() counted them and poll(seconds) returned at once, so
   -- `while m:pending() > 0 do m:poll(0.5) end` spun one core forever. Both now raise.
   it("pending and poll raise 'the client is closed' instead of spinning", function()
      server:config{ delay = 0.3 }
      local c = purse.new(opts)
      local m = c:multi{ max_in_flight = 1 }
      for _ = 1, 3 do assert(m:start("get_customer", { customerId = cust.id })) end
      c:close()
      local polls, err = 0, nil
      local ok = pcall(function()
         while m:pending() > 0 and polls < 1000 do
            local pok, e = pcall(m.poll, m, 0.5)
            if not pok then err = e error(e, 0) end
            polls = polls + 1
         end
      end)
      m:close()
      server:config{ delay = 0 }
      assert.is_false(ok)
      assert.are.equal(0, polls)
      assert.is_nil(err)   -- pending() raised first, before any poll
      assert.has_error(function() m:pending() end)   -- closed multi: raises too
   end)
end)

describe("core multi: what held up", function()
   it("max_in_flight = 1 with 1000 queued calls drains in order, every request signed, "
      .. "timestamps non-decreasing", function()
      local n0 = #server:requests()
      local m = client:multi{ max_in_flight = 1 }
      local ids = {}
      for i = 1, 1000 do ids[i] = assert(m:start("get_customer", { customerId = cust.id })) end
      local order, t0 = {}, purse.now()
      while m:pending() > 0 and purse.now() - t0 < 60 do
         m:poll(0.5)
         for id, res, msg in m:finished() do
            assert.is_truthy(res, msg)
            order[#order + 1] = id
         end
      end
      m:close()
      assert.are.same(ids, order)
      local reqs, last = server:requests(), 0
      assert.are.equal(1000, #reqs - n0)
      for i = n0 + 1, #reqs do
         local b = cjson.decode(reqs[i].body)
         assert.is_true(purse.verify(server.secret, reqs[i].body, reqs[i].headers.sign or ""))
         assert.is_true(b.timestamp >= last)
         last = b.timestamp
      end
   end)

   it("1024 calls not taken: start raises clearly; poll and finished go on; a taken slot is "
      .. "reused under a new id", function()
      server:config{ delay = 0.2 }
      local m = client:multi{ max_in_flight = 4 }
      for _ = 1, 1024 do assert(m:start("get_customer", { customerId = cust.id })) end
      local ok, e = pcall(m.start, m, "get_customer", { customerId = cust.id })
      assert.is_false(ok)
      assert.is_truthy(tostring(e):find("1024 calls not yet taken", 1, true))
      assert.is_true(m:poll(2) >= 1)
      local taken = {}
      for id in m:finished() do taken[#taken + 1] = id end
      assert.is_true(#taken >= 1)
      local id = assert(m:start("get_customer", { customerId = cust.id }))
      assert.are.equal(1025, id)
      assert.has_error(function() m:result(taken[1]) end)   -- an old id never names the new call
      m:close()
   end)

   it("a deadline passing while calls are queued: the running one times out (sent), queued ones "
      .. "expire unsent", function()
      server:config{ delay = 0.3 }
      local m = client:multi{ max_in_flight = 1 }
      client:deadline(purse.now() + 0.5)
      local ids = {}
      for i = 1, 3 do ids[i] = assert(m:start("get_customer", { customerId = cust.id })) end
      client:deadline(nil)
      local t0 = purse.now()
      while m:pending() > 0 and purse.now() - t0 < 5 do m:poll(1) end
      assert.is_truthy((m:result(ids[1])))
      local _, _, e2 = m:result(ids[2])
      local _, _, e3 = m:result(ids[3])
      m:close()
      assert.are.same({ "timeout", true }, { e2.kind, e2.sent })
      assert.are.same({ "timeout", false }, { e3.kind, e3.sent })
   end)

   it("breaking out of m:finished() halfway loses nothing and hands nothing out twice", function()
      local m = client:multi()
      local want = {}
      for _ = 1, 6 do want[assert(m:start("get_customer", { customerId = cust.id }))] = true end
      local t0 = purse.now()
      while m:pending() > 0 and purse.now() - t0 < 10 do m:poll(0.5) end
      local got = {}
      for id in m:finished() do got[id] = true break end
      local first = next(got)
      assert.has_error(function() m:result(first) end)
      for id in m:finished() do assert.is_nil(got[id]) got[id] = true end
      m:close()
      assert.are.same(want, got)
   end)
end)

describe("the Lua layer's Multi", function()
   -- take_core() stops once a hook closed the multi (its core iterator is gone), and poll
   -- returns instead of raising out of the caller's game loop.
   it("an on_event hook that closes the multi does not make poll raise", function()
      local lm
      local o = copy(opts)
      o.on_event = function(ev) if lm and ev.op == "get_customer" then lm:close() end end
      local lc = calypso.new(o)
      lm = lc:multi()
      for _ = 1, 3 do assert(lm:start("get_customer", { customerId = cust.id })) end
      local ok, e = pcall(lm.poll, lm, 2)
      lc:close()
      assert.is_true(ok, tostring(e))
   end)

   it("an on_event hook that starts calls re-entrantly: fresh ids, every answer to its own id", function()
      local o = copy(opts)
      local lm, started = nil, {}
      o.on_event = function(ev)
         if lm and ev.op == "get_customer" and #started < 3 then
            started[#started + 1] = lm:start("get_customer", { customerId = cust.id })
         end
      end
      local lc = calypso.new(o)
      lm = lc:multi()
      local ids = {}
      for i = 1, 3 do ids[i] = assert(lm:start("get_customer", { customerId = cust.id })) end
      local seen, t0 = {}, purse.now()
      while lm:pending() > 0 and purse.now() - t0 < 5 do
         lm:poll(0.5)
         for id, res in lm:finished() do
            assert.is_nil(seen[id]) seen[id] = true
            assert.are.equal(cust.id, res.id)
         end
      end
      lc:close()
      assert.are.same({ 4, 5, 6 }, started)
      for i = 1, 6 do assert.is_true(seen[i]) end
   end)

   it("a non-string op is refused by the core (never a core id handed out as a layer id)", function()
      local lc = calypso.new(opts)
      local lm = lc:multi()
      assert.has_error(function() lm:start(123, {}) end)
      assert.has_error(function() lm:start(nil, {}) end)
      lc:close()
   end)
end)

-- Finalizer attacks, each in a child interpreter (spec/support/multi_edges_child.lua).
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function run(name)
   local vars = { R_URL = server.url, R_KEY = server.key, R_SECRET = server.secret,
                  R_ACCOUNT = server.account }
   local list = {}
   for k, v in pairs(vars) do list[#list + 1] = k .. "=" .. q(v) end
   local code = ("package.path=%q package.cpath=%q require('support.multi_edges_child').run(%q)")
      :format(package.path, package.cpath, name)
   local f = assert(io.popen(("env %s timeout -s KILL 90 %s -e %s 2>&1; echo EXIT=$?")
      :format(table.concat(list, " "), q(helpers.lua()), q(code))))
   local text = f:read("*a")
   f:close()
   local r = {}
   for k, v in text:gmatch("([%w_]+)=([^\n]*)") do r[k] = v end
   assert.are.equal(name, r.DONE, "the child died or hung; it printed:\n" .. text:sub(1, 3000))
   return r, text
end

describe("finalizers in the multi machinery", function()
   it("m:poll of another multi (queued calls re-signed) from a finalizer inside client:batch", function()
      local r, text = run("poll_other_multi_in_batch")
      assert.are_not.equal("0", r.fired, text)
      assert.are.equal("0", r.bad, text)
      assert.are.equal("20", r.multi_ok, text)
   end)

   it("m:close() and a nested step from a finalizer inside the m:finished() step", function()
      local r, text = run("close_in_finished_step")
      assert.are_not.equal("0", r.fired, text)
      assert.is_true(r.outcome == nil or r.outcome:find("^ok") ~= nil
         or r.outcome:find("is closed", 1, true) ~= nil, text)
   end)
end)

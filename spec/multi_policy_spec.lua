-- client:batch and client:multi on a calypso.new client give each call the guarantees of a
-- single call: retries safe per operation, the deadline, clock-skew healing, one on_event per
-- attempt, and the very result or error a single call would give. Faults come from the mock's
-- fault queue (docs/mock.md); every loop here is bounded in count and time.
local calypso = require "calypso"
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local server
local UNKNOWN = "00000000-0000-4000-8000-000000000000"

local function new_client(extra)
   local o = mock.client_options(server)
   o.backoff_base = 0.001
   for k, v in pairs(extra or {}) do o[k] = v end
   return calypso.new(o)
end

local function requests(fragment)
   local list = {}
   for _, r in ipairs(server:requests()) do
      if r.path:find(fragment, 1, true) then list[#list + 1] = r end
   end
   return list
end

local function make_customers(c, n)
   local list = {}
   for i = 1, n do list[i] = assert(c:create_customer{ email = ("p%d@example.com"):format(i) }) end
   return list
end

-- Drives a Lua-layer multi until nothing is pending (at most `seconds`); returns
-- id -> { res, msg, err } of every call handed back by m:finished(), and how many times an id
-- was handed back more than once.
local function drain(m, seconds)
   local out, repeats = {}, 0
   local stop = purse.now() + (seconds or 10)
   local polls = 0
   while m:pending() > 0 and purse.now() < stop and polls < 100000 do
      m:poll(0.05)
      polls = polls + 1
      for id, res, msg, err in m:finished() do
         if out[id] then repeats = repeats + 1 end
         out[id] = { res, msg, err }
      end
   end
   return out, repeats
end

-- Events grouped by the payload they carry (hook_bodies = true), in order.
local function by_payload(events)
   local g = {}
   for _, ev in ipairs(events) do
      local k = ev.payload
      g[k] = g[k] or {}
      g[k][#g[k] + 1] = ev
   end
   return g
end

setup(function() server = mock.start{ request_log_size = 2000 } end)
teardown(function() server:stop() end)
before_each(function() server:reset() end)

describe("calypso.new client:batch", function()
   it("retries reads whose connections were dropped: 5 look-ups, 5 'close' faults, 5 answers", function()
      local c = new_client()
      local customers = make_customers(c, 5)
      server:fault{ mode = "close", count = 5 }
      local calls = {}
      for i = 1, 5 do calls[i] = { "get_customer", { customerId = customers[i].id } } end
      local results = c:batch(calls)
      assert.are.equal(5, #results)
      for i = 1, 5 do
         assert.are.same({ value = customers[i] }, results[i])
      end
      c:close()
   end)

   it("never resends a write that may have reached the server: exactly one copy each", function()
      local c = new_client()
      server:fault{ mode = "close", count = 2 }
      local results = c:batch{
         { "create_customer", { externalId = "batch-w1" } },
         { "create_customer", { externalId = "batch-w2" } },
      }
      for i = 1, 2 do
         assert.is_nil(results[i].value)
         assert.are.same({ "network", true, 1 }, { results[i].err.kind, results[i].err.sent, results[i].err.attempts })
      end
      assert.are.equal(2, #requests("customer/create"))
      local seen = {}
      for _, r in ipairs(requests("customer/create")) do
         local ext = r.body:match('"externalId":"([^"]+)"')
         assert.is_nil(seen[ext], "resent: " .. tostring(ext))
         seen[ext] = true
      end
      assert.are.same({ ["batch-w1"] = true, ["batch-w2"] = true }, seen)
      c:close()
   end)

   it("fires on_event per attempt, as a single call does", function()
      local events = {}
      local c = new_client{ hook_bodies = true, on_event = function(ev) events[#events + 1] = ev end }
      local customers = make_customers(c, 2)
      events = {}
      server:fault{ mode = "html503", count = 2 }
      local p1, p2 = { customerId = customers[1].id }, { customerId = customers[2].id }
      local results = c:batch{ { "get_customer", p1 }, { "get_customer", p2 } }
      assert.are.same({ { value = customers[1] }, { value = customers[2] } }, results)
      -- the two 503s strike the first two requests to arrive: one each, or both on one call
      -- when its retry overtakes the other call's first attempt
      local g = by_payload(events)
      local failed = 0
      for _, p in ipairs{ p1, p2 } do
         local evs = g[p]
         for i = 1, #evs - 1 do
            failed = failed + 1
            assert.are.same({ i, false, "http", 503, "retry", "transient", false, "curl" },
                            { evs[i].attempt, evs[i].ok, evs[i].kind, evs[i].status, evs[i].retry,
                              evs[i].reason, evs[i].final, evs[i].transport })
         end
         local last = evs[#evs]
         assert.are.same({ #evs, true, true, 200, "get_customer", "/api/v1/customer-purse/customer/get" },
                         { last.attempt, last.ok, last.final, last.status, last.op, last.path })
      end
      assert.are.equal(2, failed)
      c:close()
   end)

   it("heals clock skew per call: 011, learn the offset, re-sign, succeed", function()
      local c = new_client()
      local customers = make_customers(c, 3)
      server:config{ clock_skew_ms = 600000 }
      local calls = {}
      for i = 1, 3 do calls[i] = { "get_customer", { customerId = customers[i].id } } end
      local results = c:batch(calls)
      for i = 1, 3 do assert.are.same({ value = customers[i] }, results[i]) end
      assert.is_true(math.abs(c:clock_offset() - 600000) <= 2000, tostring(c:clock_offset()))
      c:close()
   end)

   it("gives each call the result and error a single call gives, in order", function()
      local c = new_client()
      local customers = make_customers(c, 3)
      local single = { c:get_transaction(UNKNOWN) }
      local results = c:batch{
         { "get_customer", { customerId = customers[2].id } },
         { "get_transaction", { transactionId = UNKNOWN } },
         { "get_customer", { customerId = "not-a-uuid" } },
         { "customer/get", { customerId = customers[3].id } },
         { "get_customer", customers[1].id },                        -- positional, as c:get_customer(id)
         { "get_address", customers[1].id, "ETH" },                  -- positional, two fields
      }
      assert.are.equal(6, #results)
      assert.are.same({ value = customers[2] }, results[1])
      local e = results[2].err
      assert.are.same({ "api", "004", 400, 1, "get_transaction" },
                      { e.kind, e.code, e.status, e.attempts, e.op })
      assert.are.equal(single[2]:gsub("trace %S+%)", "trace T)"), (results[2].message:gsub("trace %S+%)", "trace T)")))
      assert.are.equal("calypso: get_customer: customerId: must be a UUID (8-4-4-4-12 hex digits)", results[3].message)
      assert.are.same({ "invalid", false }, { results[3].err.kind, results[3].err.sent })
      assert.are.same({ value = customers[3] }, results[4])
      assert.are.same({ value = customers[1] }, results[5])
      assert.are.same({ value = assert(c:get_address(customers[1].id, "ETH")) }, results[6])
      c:close()
   end)

   it("ends each call by the deadline: a stalled read fails as timeout, the others succeed", function()
      local c = new_client{ deadline = 0.6, timeout = 5 }
      local customers = make_customers(c, 2)
      server:fault{ mode = "stall" }
      local t0 = purse.now()
      local results = c:batch({ { "get_customer", { customerId = customers[1].id } } })
      local elapsed = purse.now() - t0
      assert.are.equal("timeout", results[1].err.kind)
      assert.is_true(elapsed < 3, ("the deadline of 0.6 s let the batch run %.2f s"):format(elapsed))
      assert.are.same({ value = customers[2] }, c:batch{ { "get_customer", { customerId = customers[2].id } } }[1])
      c:close()
   end)

   it("raises for a malformed entry before anything starts", function()
      local c = new_client()
      local before = #server:requests()
      assert.has_error(function() c:batch{ { "get_customer", {} }, "nope" } end,
                       "calypso.purse: batch entry 2 must be a table { op, payload }")
      assert.has_error(function() c:batch{ { "not a path!", {} } } end,
                       "calypso.purse: batch entry 1: op is neither a method name nor a path "
                       .. "(path may only hold letters, digits and / - _ .)")
      assert.are.equal(before, #server:requests())
      c:close()
   end)
end)

describe("calypso.new client:batch connections", function()
   local tcp_peers = require "support.tcp_peers"
   it("stay alive from one batch to the next, as the core's batch keeps them", function()
      local port = tonumber(server.url:match(":(%d+)$"))
      local before, opened = nil, {}
      local c = new_client{ on_event = function()   -- sampled while the calls are in flight
         if before then
            for _, p in ipairs(tcp_peers.new_since(before, port)) do opened[p] = true end
         end
      end }
      local customers = make_customers(c, 6)
      local calls = {}
      for i = 1, 6 do calls[i] = { "get_customer", { customerId = customers[i].id } } end
      server:config{ delay = 0.05 }   -- the calls overlap: several connections
      for _, r in ipairs(c:batch(calls)) do assert.is_table(r.value) end
      before = tcp_peers.to(port)
      for _, r in ipairs(c:batch(calls)) do assert.is_table(r.value) end
      server:config{ delay = 0 }
      assert.are.same({}, opened)   -- not one new connection for the second batch
      c:close()
   end)

   it("a batch started from a hook during another one runs on a multi of its own", function()
      local setup_client = new_client()
      local customers = make_customers(setup_client, 4)
      setup_client:close()
      local calls = {}
      for i = 1, 4 do calls[i] = { "get_customer", { customerId = customers[i].id } } end
      local inner, h
      h = new_client{ on_event = function(ev)
         if inner == nil and ev.op == "get_customer" then
            inner = false
            inner = h:batch{ { "get_customer", { customerId = customers[1].id } } }
         end
      end }
      local outer = h:batch(calls)
      for i = 1, 4 do assert.are.same({ value = customers[i] }, outer[i]) end
      assert.are.same({ { value = customers[1] } }, inner)
      h:close()
   end)
end)

describe("calypso.new client:multi", function()
   it("retries dropped reads and hands each call its own answer once", function()
      local c = new_client()
      local customers = make_customers(c, 4)
      server:fault{ mode = "close", count = 4 }
      local m = c:multi()
      local want = {}
      for i = 1, 4 do want[assert(m:start("get_customer", customers[i].id))] = customers[i] end
      local out, repeats = drain(m, 10)
      assert.are.equal(0, repeats)
      local n = 0
      for id, cust in pairs(want) do
         n = n + 1
         assert.are.same({ cust }, out[id])
      end
      assert.are.equal(4, n)
      m:close()
      c:close()
   end)

   it("never resends a write that may have reached the server", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      server:fault{ mode = "close" }
      local m = c:multi()
      local id = assert(m:start("create_customer", { externalId = "multi-w1" }))
      local out = drain(m, 10)
      local res, _, err = out[id][1], out[id][2], out[id][3]
      assert.is_nil(res)
      assert.are.same({ "network", true, 1 }, { err.kind, err.sent, err.attempts })
      assert.are.equal(1, #requests("customer/create"))
      assert.are.equal(1, #events)
      assert.are.same({ false, true, "a write that may have reached the server" },
                      { events[1].ok, events[1].final, events[1].reason })
      m:close()
      c:close()
   end)

   it("heals clock skew and reports each attempt", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      local customer = make_customers(c, 1)[1]
      events = {}
      server:config{ clock_skew_ms = -900000 }
      local m = c:multi()
      local id = assert(m:start("get_customer", { customerId = customer.id }))
      local out = drain(m, 10)
      assert.are.same({ customer }, out[id])
      assert.are.equal(2, #events)
      assert.are.same({ 1, false, "api", "011", "heal", "clock skew", false },
                      { events[1].attempt, events[1].ok, events[1].kind, events[1].code, events[1].retry,
                        events[1].reason, events[1].final })
      assert.are.same({ 2, true, true }, { events[2].attempt, events[2].ok, events[2].final })
      assert.is_true(math.abs(c:clock_offset() + 900000) <= 2000, tostring(c:clock_offset()))
      m:close()
      c:close()
   end)

   it("reports an attempt launched after its deadline (done at start, unsent), never loses it", function()
      local c = new_client{ deadline = 0.001, max_retries = 0 }
      local m = c:multi()
      local id = assert(m:start("get_customer", UNKNOWN))
      local n, polls = 0, 0
      while n == 0 and polls < 20 do
         n = m:poll(0.1)
         polls = polls + 1
      end
      assert.are.equal(1, n)
      local res, msg, err = m:result(id)
      assert.is_nil(res)
      assert.are.same({ "timeout", false, 1 }, { err.kind, err.sent, err.attempts })
      assert.are.equal("calypso: get_customer: timeout error: the deadline passed before the request was sent", msg)
      assert.are.equal(0, m:pending())
      m:close()
      c:close()
   end)

   it("accepts the positional forms of the single-call methods", function()
      local c = new_client()
      local customer = make_customers(c, 1)[1]
      local m = c:multi()
      local a = assert(m:start("get_customer", customer.id))
      local b = assert(m:start("get_address", customer.id, "ETH"))
      local out = drain(m, 10)
      assert.are.same({ customer }, out[a])
      assert.are.same({ assert(c:get_address(customer.id, "ETH")) }, out[b])
      m:close()
      c:close()
   end)

   it("start gives an invalid payload's triple at once, as the method does", function()
      local c = new_client()
      local m = c:multi()
      local id, msg, err = m:start("get_customer", { customerId = 5 })
      assert.is_nil(id)
      assert.are.same({ "invalid", msg }, { err.kind, err.message })
      assert.are.same({ c:get_customer{ customerId = 5 } }, { nil, msg, err })
      assert.are.equal(0, m:pending())
      m:close()
      c:close()
   end)
end)

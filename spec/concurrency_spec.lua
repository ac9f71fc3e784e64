-- Many calls in flight: client:batch (results in order) and client:multi (a
-- non-blocking step API for game loops), over curl multi against the mock.
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local server, client
local customers = {}
local UNKNOWN = "00000000-0000-4000-8000-000000000000"

setup(function()
   server = mock.start()
   client = purse.new(mock.client_options(server))
   for i = 1, 6 do
      customers[i] = assert(client:create_customer{ email = ("c%d@example.com"):format(i) })
   end
end)

teardown(function()
   client:close()
   server:stop()
end)

after_each(function() server:config{ delay = 0 } end)

describe("client:batch", function()
   it("returns every result at its own position, errors included", function()
      local calls = {}
      for i = 1, 6 do calls[i] = { "get_customer", { customerId = customers[i].id } } end
      calls[7] = { "get_customer", { customerId = "not-a-uuid" } }        -- invalid: never sent
      calls[8] = { "get_transaction", { transactionId = UNKNOWN } }       -- API 004
      calls[9] = { "customer/get", { customerId = customers[3].id } }     -- a call path
      calls[10] = { "get_address", { customerId = customers[2].id, currency = "ETH" } }
      local results = client:batch(calls)
      assert.are.equal(10, #results)
      for i = 1, 6 do
         assert.are.same({ value = customers[i] }, results[i])
      end
      assert.is_nil(results[7].value)
      assert.are.equal("invalid", results[7].err.kind)
      assert.are.equal("calypso: get_customer: customerId: must be a UUID (8-4-4-4-12 hex digits)", results[7].message)
      assert.are.same({ "api", "004", "get_transaction" },
                      { results[8].err.kind, results[8].err.code, results[8].err.op })
      assert.are.same(customers[3], results[9].value)
      assert.are.same(assert(client:get_address{ customerId = customers[2].id, currency = "ETH" }), results[10].value)
   end)

   it("runs the calls concurrently: 12 answers delayed 0.5 s take about 0.5 s, not 6 s", function()
      server:config{ delay = 0.5 }
      local calls = {}
      for i = 1, 12 do calls[i] = { "get_customer", { customerId = customers[(i - 1) % 6 + 1].id } } end
      local t0 = purse.now()
      local results = client:batch(calls)
      local elapsed = purse.now() - t0
      for i = 1, 12 do assert.are.same(customers[(i - 1) % 6 + 1], results[i].value) end
      assert.is_true(elapsed < 3, ("12 delayed calls took %.2f s"):format(elapsed))
      assert.is_true(elapsed >= 0.5, ("%.2f s is faster than the server's delay"):format(elapsed))
   end)

   it("keeps at most max_in_flight calls running", function()
      server:config{ delay = 0.3 }
      local calls = {}
      for i = 1, 4 do calls[i] = { "get_customer", { customerId = customers[i].id } } end
      local t0 = purse.now()
      local results = client:batch(calls, 1)                 -- one at a time: ~4 x 0.3 s
      local elapsed = purse.now() - t0
      for i = 1, 4 do assert.are.same(customers[i], results[i].value) end
      assert.is_true(elapsed >= 1.2, ("sequential batch took only %.2f s"):format(elapsed))
   end)

   it("reports transport failures per call and the client keeps working", function()
      server:fault{ mode = "html503" }
      local results = client:batch{ { "get_customer", { customerId = customers[1].id } } }
      assert.are.same({ "http", 503 }, { results[1].err.kind, results[1].err.status })
      assert.are.same({ value = customers[1] }, client:batch{ { "get_customer", { customerId = customers[1].id } } }[1])
   end)

   it("an empty list gives an empty list; bad entries raise before anything starts", function()
      assert.are.same({}, client:batch{})
      local before = #server:requests()
      assert.has_error(function() client:batch{ { "get_customer", {} }, "nope" } end,
                       "calypso.purse: batch entry 2 must be a table { op, payload }")
      assert.has_error(function() client:batch{ { 42, {} } } end)
      assert.has_error(function() client:batch({}, 0) end)
      assert.are.equal(before, #server:requests())
   end)
end)

describe("client:batch checks every entry before the first call starts", function()
   it("raises for an invalid op or payload type in a later entry, and nothing was sent", function()
      local before = #server:requests()
      local cases = {
         { { "create_customer", { email = "first@example.com" } }, { "not a path!", {} },
           "calypso.purse: batch entry 2: op is neither a method name nor a path "
              .. "(path may only hold letters, digits and / - _ .)" },
         { { "create_customer", { email = "first@example.com" } }, { "../admin", {} },
           "calypso.purse: batch entry 2: op is neither a method name nor a path (path must not contain '..')" },
         { { "create_customer", { email = "first@example.com" } }, { "get_customer", "nope" },
           "calypso.purse: batch entry 2: payload must be a table or nil (got string)" },
      }
      for _, case in ipairs(cases) do
         local ok, err = pcall(client.batch, client, { case[1], case[2] })
         assert.is_false(ok)
         assert.truthy(tostring(err):find(case[3], 1, true), err)
      end
      assert.are.equal(before, #server:requests())
   end)

   it("still gives an invalid payload its own \"invalid\" result, unsent", function()
      local before = #server:requests()
      local results = client:batch{ { "get_customer", { customerId = "x" } }, { "customer/get", nil } }
      assert.are.equal("invalid", results[1].err.kind)
      assert.are.equal("api", results[2].err.kind)
      assert.are.equal(before + 1, #server:requests())
   end)
end)

describe("argument errors name the method on every call path", function()
   it("directly, through pcall, and through a tail call", function()
      local m = client:multi()
      local tail = function(...) return m.result(...) end
      for _, f in ipairs{ function() return m:result("nope") end, function() return tail(m, "nope") end } do
         local ok, err = pcall(f)
         assert.is_false(ok)
         assert.truthy(err:find("bad argument #1 to 'result' (number expected, got string)", 1, true), err)
      end
      local ok, err = pcall(m.result, m, 99)
      assert.truthy(not ok and err:find("bad argument #1 to 'result' (no such call", 1, true), err)
      ok, err = pcall(client.finish, client, "get_customer", "200", "{}")
      assert.truthy(not ok and err:find("bad argument #2 to 'finish' (number expected, got string)", 1, true), err)
      ok, err = pcall(client.call, client, "bad path!", {})
      assert.truthy(not ok and err:find("bad argument #1 to 'call' (path may only hold", 1, true), err)
      ok, err = pcall(client.batch, client, {}, 0)
      assert.truthy(not ok and err:find("bad argument #2 to 'batch' (max_in_flight must be from 1 to 1024)", 1, true),
                    err)
      ok, err = pcall(client.get_customer, "not a client", {})
      assert.truthy(not ok and err:find("calling 'get_customer' on bad self", 1, true), err)
      ok, err = pcall(m.poll, m, -1)
      assert.truthy(not ok and err:find("bad argument #1 to 'poll' (seconds must be from 0 to 3600)", 1, true), err)
      m:close()
   end)
end)

describe("client:multi", function()
   it("never blocks in poll(0) and hands back each result by id", function()
      server:config{ delay = 0.4 }
      local m = client:multi()
      local ids = {}
      for i = 1, 3 do ids[i] = assert(m:start("get_customer", { customerId = customers[i].id })) end
      local bad, msg, err = m:start("get_customer", { customerId = 5 })
      assert.is_nil(bad)
      assert.are.equal("invalid", err.kind, msg)
      assert.are.equal(3, m:pending())
      local t0 = purse.now()
      assert.are.equal(0, m:poll(0))
      assert.is_true(purse.now() - t0 < 0.2, "poll(0) waited")
      assert.is_false(m:done(ids[1]))
      assert.has_error(function() m:result(ids[1]) end)
      local frames = 0
      while m:pending() > 0 and frames < 10000 do   -- a game loop: ~1 ms frames
         m:poll(0.001)
         frames = frames + 1
      end
      assert.are.equal(0, m:pending())
      assert.is_true(frames > 5, "the loop got frames while the calls ran")
      for i = 3, 1, -1 do                          -- any order
         assert.is_true(m:done(ids[i]))
         assert.are.same(customers[i], assert(m:result(ids[i])))
      end
      assert.has_error(function() m:result(ids[1]) end)   -- taken already
      m:close()
      m:close()
      assert.has_error(function() m:poll() end)
   end)

   it("keeps the client alive while a multi refers to it", function()
      -- the only reference to this client is the multi's: without it the client
      -- would be collected (its __gc closes it) and result() would raise
      local m = purse.new(mock.client_options(server)):multi()
      local id = m:start("get_customer", { customerId = customers[4].id })
      collectgarbage()
      collectgarbage()
      local polls = 0
      while m:pending() > 0 and polls < 100 do m:poll(1); polls = polls + 1 end
      assert.are.same(customers[4], m:result(id))
      m:close()
   end)

   it("raises on a closed client", function()
      local c = purse.new(mock.client_options(server))
      local m = c:multi()
      c:close()
      assert.has_error(function() m:start("get_customer", { customerId = customers[1].id }) end)
   end)
end)

-- The multi step API of the core (purse.new(...):multi()): poll waits for a call to FINISH
-- (bounded by its seconds), m:finished() hands back each finished call once, max_in_flight
-- queues the rest; and the README's multi snippet runs as printed.
local purse = require "calypso.purse"
local mock = require "calypso.mock"
local helpers = require "support.helpers"

local server, client
local customers = {}

setup(function()
   server = mock.start{ request_log_size = 2000 }
   client = purse.new(mock.client_options(server))
   for i = 1, 6 do
      customers[i] = assert(client:create_customer{ email = ("s%d@example.com"):format(i) })
   end
end)

teardown(function()
   client:close()
   server:stop()
end)

after_each(function() server:config{ delay = 0 } end)

local function gets()
   local n = 0
   for _, r in ipairs(server:requests()) do
      if r.path:find("customer/get", 1, true) then n = n + 1 end
   end
   return n
end

describe("multi:poll(seconds)", function()
   it("returns once a call has finished, so its result is there", function()
      server:config{ delay = 0.3 }
      local m = client:multi()
      local id = assert(m:start("get_customer", { customerId = customers[1].id }))
      assert.are.equal(1, m:poll(5))
      assert.is_true(m:done(id))
      assert.are.same(customers[1], assert(m:result(id)))
      m:close()
   end)

   it("is bounded by its seconds when nothing finishes", function()
      server:fault{ mode = "stall" }
      local m = client:multi()
      local id = assert(m:start("get_customer", { customerId = customers[1].id }))
      local t0 = purse.now()
      assert.are.equal(0, m:poll(0.3))
      local waited = purse.now() - t0
      assert.is_true(waited >= 0.25 and waited < 2, ("poll(0.3) waited %.3f s"):format(waited))
      assert.is_false(m:done(id))
      m:close()
   end)
end)

describe("multi:finished()", function()
   it("hands back each finished call once, with its own result, and frees it", function()
      local m = client:multi()
      local want = {}
      for i = 1, 5 do want[assert(m:start("get_customer", { customerId = customers[i].id }))] = customers[i] end
      local bad = assert(m:start("get_transaction", { transactionId = "00000000-0000-4000-8000-000000000000" }))
      local got, count, polls = {}, 0, 0
      while m:pending() > 0 and polls < 200 do
         m:poll(0.05)
         polls = polls + 1
         for id, res, msg, err in m:finished() do
            assert.is_nil(got[id], "handed back twice")
            got[id] = { res, msg, err }
            count = count + 1
         end
      end
      for _ in m:finished() do error("nothing is left to hand back") end
      assert.are.equal(6, count)
      for id, cust in pairs(want) do assert.are.same({ cust }, got[id]) end
      assert.is_nil(got[bad][1])
      assert.are.same({ "api", "004" }, { got[bad][3].kind, got[bad][3].code })
      assert.has_error(function() m:result(bad) end)       -- taken already: freed
      m:close()
   end)
end)

describe("multi max_in_flight", function()
   it("starts at most n calls, queues the rest, and runs them all", function()
      server:config{ delay = 0.4 }
      local before = gets()
      local m = client:multi{ max_in_flight = 2 }
      local want = {}
      for i = 1, 5 do want[assert(m:start("get_customer", { customerId = customers[i].id }))] = customers[i] end
      assert.are.equal(5, m:pending())
      m:poll(0.15)
      assert.are.equal(2, gets() - before)             -- two sent, three waiting
      local got, polls = {}, 0
      while m:pending() > 0 and polls < 200 do
         m:poll(0.1)
         polls = polls + 1
         for id, res in m:finished() do got[id] = res end
      end
      for id, cust in pairs(want) do assert.are.same(cust, got[id]) end
      assert.are.equal(5, gets() - before)
      m:close()
   end)

   it("refuses a bad max_in_flight", function()
      assert.has_error(function() client:multi{ max_in_flight = 0 } end)
      assert.has_error(function() client:multi{ max_in_flight = 1.5 } end)
      assert.has_error(function() client:multi{ nope = 1 } end)
   end)
end)

describe("the reference's client:multi example", function()
   it("runs as printed against the mock", function()
      local f = assert(io.open("docs/reference.md"))
      local text = f:read("*a")
      f:close()
      local section = assert(text:match("\n## calypso.purse multi\n(.-)\n### "), "no multi section")
      local code = assert(section:match("```lua\n(.-)```"), "no lua block in the section")
      local out = helpers.run_lua(code, {
         CALYPSO_BASE_URL = server.url, CALYPSO_API_KEY = server.key,
         CALYPSO_API_SECRET = server.secret, CALYPSO_ACCOUNT = server.account,
      })
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      table.sort(lines)
      assert.are.same({ "profile ok", "purses ok" }, lines, out)
   end)
end)

-- client:deadline (a call's timeout shrinks to the time left) and
-- client:last_status, which the Lua layer uses for retries under one
-- deadline and for hook events.
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local server, client, customer

setup(function()
   server = mock.start()
   client = purse.new(mock.client_options(server))
   customer = assert(client:create_customer{})
end)

teardown(function()
   client:close()
   server:stop()
end)

describe("client:deadline", function()
   after_each(function() client:deadline(nil) end)

   it("cuts a call short at the deadline instead of the full timeout", function()
      server:fault{ mode = "delay", seconds = 3 }
      local t0 = purse.now()
      assert.are.equal(t0 + 0.3, client:deadline(t0 + 0.3))
      local res, msg, err = client:get_customer{ customerId = customer.id }
      local elapsed = purse.now() - t0
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind, msg)
      assert.is_true(err.sent)
      assert.is_true(elapsed < 2.5, ("waited %.2f s, past the 0.3 s deadline"):format(elapsed))
   end)

   it("fails a call made after the deadline without sending it", function()
      local before = #server:requests()
      client:deadline(purse.now() + 0.001)
      purse.sleep(0.01)
      local res, msg, err = client:get_customer{ customerId = customer.id }
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.is_false(err.sent)
      assert.are.equal("calypso: get_customer: timeout error: the deadline passed before the request was sent", msg)
      assert.are.equal(before, #server:requests())
   end)

   it("is cleared with nil, and the full timeout applies again", function()
      client:deadline(purse.now() + 0.001)
      assert.is_nil(client:deadline(nil))
      assert.is_nil(client:deadline())
      server:fault{ mode = "delay", seconds = 0.2 }
      assert.are.same(customer, assert(client:get_customer{ customerId = customer.id }))
   end)

   it("raises for a deadline that is not a purse.now() time", function()
      assert.has_error(function() client:deadline("soon") end)
      assert.has_error(function() client:deadline(-1) end)
   end)
end)

describe("client:last_status", function()
   it("tells the HTTP status of the last call", function()
      assert(client:get_customer{ customerId = customer.id })
      assert.are.equal(200, client:last_status())
      server:fault{ mode = "html503" }
      client:get_customer{ customerId = customer.id }
      assert.are.equal(503, client:last_status())
   end)
end)

describe("connect_timeout", function()
   it("ends a connect that never completes: kind timeout, never sent, well before timeout", function()
      local helpers = require "support.helpers"
      local port, close = helpers.full_backlog()
      local c = purse.new{ key = "k", secret = "s", account = "0x1", base_url = "http://127.0.0.1:" .. port,
                           connect_timeout = 0.3, timeout = 30 }
      for _, op in ipairs{ "get_customer", "create_customer" } do   -- a read and a write
         local t0 = purse.now()
         local res, msg, err = c[op](c, op == "get_customer"
                                        and { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" } or {})
         local elapsed = purse.now() - t0
         assert.is_nil(res)
         assert.are.same({ "timeout", false, true }, { err.kind, err.sent, err.retryable })
         assert.truthy(msg:lower():find("connect", 1, true), msg)
         -- connect_timeout (0.3 s) ended it, not timeout (30 s): a loose bound, not a speed test
         assert.is_true(elapsed < 15, tostring(elapsed))
      end
      c:close()
      close()
   end)
end)

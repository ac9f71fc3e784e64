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
      assert.are.equal("timeout", err.kind)
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

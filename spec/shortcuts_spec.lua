-- Positional shortcuts: each single-id operation also takes its ids as arguments and sends
-- exactly the payload of the table form.
local calypso = require "calypso"
local mock = require "calypso.mock"
local cjson = require "cjson"

local server, client, customer, tx

local function last_payload()
   local reqs = server:requests()
   return cjson.decode(reqs[#reqs].body).payload
end

setup(function()
   server = mock.start()
   client = calypso.new(mock.client_options(server))
   customer = assert(client:create_customer{ email = "short@example.com", externalId = "short-1" })
   tx = server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = 5 }
end)
teardown(function()
   client:close()
   server:stop()
end)

describe("positional shortcuts", function()
   local cases = {
      { "get_customer", function() return { customer.id } end, function() return { customerId = customer.id } end },
      { "block_customer", function() return { customer.id } end, function() return { customerId = customer.id } end },
      { "unblock_customer", function() return { customer.id } end, function() return { customerId = customer.id } end },
      { "get_purses", function() return { customer.id } end, function() return { customerId = customer.id } end },
      { "get_transaction", function() return { tx.id } end, function() return { transactionId = tx.id } end },
      { "get_address", function() return { customer.id, "USDT_TRX" } end,
                       function() return { customerId = customer.id, currency = "USDT_TRX" } end },
      { "get_customers_by_external_id", function() return { "short-1" } end,
                                        function() return { externalId = "short-1" } end },
   }
   for _, case in ipairs(cases) do
      local name, args, payload = case[1], case[2], case[3]
      it(name .. " gives the same answer and sends the same payload as the table form", function()
         local a = { assert(client[name](client, payload())) }
         local sent_table = last_payload()
         local positional = args()
         local b = { assert(client[name](client, positional[1], positional[2])) }
         assert.are.same(a, b)
         assert.are.same(payload(), sent_table)
         assert.are.same(payload(), last_payload())
      end)
   end

   it("get_address without its currency is refused before any I/O", function()
      local before = #server:requests()
      local res, msg, err = client:get_address(customer.id)
      assert.is_nil(res)
      assert.are.equal("calypso: get_address: currency: required field is missing", msg)
      assert.are.equal("invalid", err.kind)
      assert.are.equal(before, #server:requests())
   end)

   it("a wrong id type is the core's invalid error", function()
      local res, msg, err = client:get_customer(42)
      assert.is_nil(res)
      assert.are.equal("invalid", err.kind)
      assert.truthy(msg:find("^calypso: get_customer: customerId: "), msg)
   end)

   it("operations without a positional form pass other values to the core unchanged", function()
      local res, _, err = client:create_customer("alice")
      assert.is_nil(res)
      assert.are.equal("invalid", err.kind)
   end)

   it("calling with a dot instead of a colon raises a clear error", function()
      assert.has_error(function() client.get_customer(customer.id) end,
         "calypso: get_customer: call it as client:get_customer(...)")
   end)
end)

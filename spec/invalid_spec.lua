-- Input the API would reject, or that cannot be sent exactly, is caught before
-- any network I/O and returned as nil, message, { kind = "invalid" }.
-- The base URL points at a port nobody listens on: were anything sent, the
-- kind would be "connect", not "invalid".
local purse = require "calypso.purse"

local UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local client

setup(function()
   client = purse.new{ key = "k", secret = "s", account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
                       base_url = "http://127.0.0.1:9", timeout = 2 }
end)
teardown(function() client:close() end)

local function expect_invalid(method, payload, message)
   local res, msg, err = client[method](client, payload)
   assert.is_nil(res)
   assert.are.equal("calypso: " .. method .. ": " .. message, msg)
   assert.are.equal("invalid", err.kind)
   assert.are.equal(msg, err.message)
   assert.is_false(err.sent)
   assert.is_false(err.retryable)
end

describe("invalid payloads", function()
   local cyclic = { customerId = UUID }
   cyclic.self = cyclic
   local cases = {
      { "get_customer", "nope", "payload must be a table (got string)" },
      { "get_customer", 42, "payload must be a table (got number)" },
      { "get_customer", nil, "customerId: required field is missing" },
      { "get_customer", {}, "customerId: required field is missing" },
      { "get_customer", { customerId = "abc" }, "customerId: must be a UUID (8-4-4-4-12 hex digits)" },
      { "get_customer", { customerId = UUID .. "0" }, "customerId: must be a UUID (8-4-4-4-12 hex digits)" },
      { "get_customer", { customerId = "3fa85f64x5717-4562-b3fc-2c963f66afa6" },
        "customerId: must be a UUID (8-4-4-4-12 hex digits)" },
      { "get_customer", { customerId = 12345 }, "customerId: must be a string (got number)" },
      { "get_customer", { customerId = UUID, extra = 1 },
        "extra: unknown field (check the spelling against the API docs)" },
      { "get_customer", { UUID }, "payload: must be a table of named fields, not an array" },
      { "get_transaction", { customerId = UUID }, "transactionId: required field is missing" },
      { "get_customers_by_external_id", { externalId = "" }, "externalId: must not be empty" },
      { "get_address", { customerId = UUID }, "currency: required field is missing" },
      { "get_address", { customerId = UUID, currency = true }, "currency: must be a string (got boolean)" },
      { "update_customer", { customerId = UUID }, "id: required field is missing" },
      { "update_customer", { id = UUID, email = "a\255b" }, "email: string is not valid UTF-8" },
      { "create_customer", { email = {} }, "email: must be a string (got table)" },
      { "create_customer", { emial = "x@example.com" },
        "emial: unknown field (check the spelling against the API docs)" },
      -- a UTF-16 surrogate
      { "create_customer", { description = ("\237\160\128") }, "description: string is not valid UTF-8" },
      { "block_customer", { customerId = UUID:upper() .. " " }, "customerId: must be a UUID (8-4-4-4-12 hex digits)" },
      { "find_transactions", { customerId = UUID, pageNumber = -1 }, "pageNumber: must be >= 0" },
      { "find_transactions", { customerId = UUID, pageSize = 0 }, "pageSize: must be >= 1" },
      { "find_transactions", { customerId = UUID, pageSize = 2.5 }, "pageSize: must be an integer (got a fraction)" },
      { "find_transactions", { customerId = UUID, pageSize = 5.5 }, "pageSize: must be an integer (got a fraction)" },
      { "find_transactions", { customerId = UUID, pageSize = "20" }, "pageSize: must be an integer (got string)" },
      { "find_transactions", { customerId = UUID, currencyFilter = "USDT" },
        "currencyFilter: must be a table (got string)" },
      { "find_transactions", { customerId = UUID, currencyFilter = { ["in"] = {} } },
        "currencyFilter.in: must be a non-empty array of strings" },
      { "find_transactions", { customerId = UUID, currencyFilter = { ["in"] = { "ETH", 5 } } },
        "currencyFilter.in: must be a non-empty array of strings" },
      { "find_transactions", { customerId = UUID, currencyFilter = { startsWith = "U" } },
        "currencyFilter.startsWith: unknown field (check the spelling against the API docs)" },
      { "find_transactions", { customerId = UUID, transactionStateFilter = { contains = "CONF" } },
        "transactionStateFilter.contains: unknown field (check the spelling against the API docs)" },
      { "find_transactions", { customerId = UUID, transactionStateFilter = { specified = "yes" } },
        "transactionStateFilter.specified: must be a boolean (got string)" },
      { "find_transactions", { customerId = UUID, sort = "" }, "sort: must not be empty" },
   }
   for _, c in ipairs(cases) do
      it(c[1] .. " -> " .. c[3], function() expect_invalid(c[1], c[2], c[3]) end)
   end

   it("client:call still checks that the payload can be sent as JSON", function()
      local function call_invalid(payload, message)
         local res, msg, err = client:call("customer/get", payload)
         assert.is_nil(res)
         assert.are.equal("calypso: customer/get: " .. message, msg)
         assert.are.equal("invalid", err.kind)
      end
      call_invalid({ a = { 1, 2, nil, 4 } }, "a: sparse array (holes) cannot be sent as JSON")
      call_invalid({ a = 0 / 0 }, "a: number must be finite (not NaN or infinity)")
      call_invalid({ a = math.huge }, "a: number must be finite (not NaN or infinity)")
      call_invalid({ a = -math.huge }, "a: number must be finite (not NaN or infinity)")
      call_invalid({ a = 0.1 + 0.2 }, "a: number has more than 14 significant digits and cannot be sent exactly")
      call_invalid({ a = print }, "a: a function cannot be sent as JSON")
      call_invalid({ a = io.stdout }, "a: a userdata cannot be sent as JSON")
      call_invalid({ a = { 1, x = 2 } }, "a: table mixes array items and named fields")
      call_invalid({ [true] = 1 },
                   "payload: table keys must be strings, or 1..n without holes (a sparse array or odd key)")
      call_invalid({ ["k\255"] = 1 }, "k?: key is not valid UTF-8")
      call_invalid({ big = string.rep("x", 2 * 1024 * 1024) }, "big: payload is too large")
      -- the budget counts every byte written: numbers, keys and punctuation too
      local numbers = {}
      for i = 1, 1000000 do numbers[i] = i end
      local res, msg, err = client:call("customer/get", { list = numbers })
      assert.is_nil(res)
      assert.are.equal("invalid", err.kind)
      assert.truthy(msg:find("^calypso: customer/get: list%[%d+%]: payload is too large$"), msg)
      local keys = {}
      for i = 1, 100000 do keys["k" .. i] = true end
      res, msg, err = client:call("customer/get", keys)
      assert.is_nil(res, msg)
      assert.are.equal("invalid", err.kind, msg)
      call_invalid(cyclic, string.rep("self.", 15) .. "self: tables nested too deeply (or a cycle)")
      if math.type then
         call_invalid({ a = math.maxinteger }, "a: integer has more than 14 digits and cannot be sent exactly")
      else
         call_invalid({ a = 2 ^ 53 + 2 }, "a: number has more than 14 significant digits and cannot be sent exactly")
      end
   end)

   it("never runs metatables of payload tables", function()
      local trap = setmetatable({ customerId = UUID }, {
         __index = function() error("metatable ran") end,
         __pairs = function() error("metatable ran") end,
         __len = function() error("metatable ran") end,
      })
      -- reaches the network (closed port): validation and encoding read raw
      local res, msg, err = client:get_customer(trap)
      assert.is_nil(res)
      assert.are.equal("connect", err.kind, msg)
   end)

   it("raises for a client:call path that is not a path", function()
      assert.has_error(function() client:call(nil, {}) end)
      assert.has_error(function() client:call("", {}) end)
      assert.has_error(function() client:call("customer/get?x=1", {}) end)
      assert.has_error(function() client:call("../admin", {}) end)
      assert.has_error(function() client:call(string.rep("a", 300), {}) end)
   end)
end)

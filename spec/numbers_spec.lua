-- Money is never rounded: with exact_amounts, "amount" values come back as the
-- server's own decimal text; integers too long for a double never pass through
-- one. Checked over real sockets against the mock (raw bodies via faults).
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local server, plain, exact, customer

setup(function()
   server = mock.start()
   local o = mock.client_options(server)
   plain = purse.new(o)
   o.exact_amounts = true
   exact = purse.new(o)
   customer = assert(plain:create_customer{})
end)

teardown(function()
   plain:close()
   exact:close()
   server:stop()
end)

local function deposit(amount)
   return server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = amount }.id
end

describe("exact_amounts", function()
   it("keeps a 30-significant-digit amount to the last digit", function()
      local text = "123456789012345678901234.567890"
      local id = deposit(text)
      local tx = assert(exact:get_transaction{ transactionId = id })
      assert.are.equal(text, tx.amount)
      -- without the option the same amount is a (rounded) Lua number
      local rounded = assert(plain:get_transaction{ transactionId = id }).amount
      assert.are.equal("number", type(rounded))
      assert.are_not.equal(text, ("%.6f"):format(rounded))
   end)

   it("keeps 1e-8 style and tiny decimals exactly as written", function()
      for _, text in ipairs({ "1e-8", "1E-8", "0.00000001", "2.5e-7", "-0.1", "0", "100" }) do
         local tx = assert(exact:get_transaction{ transactionId = deposit(text) })
         assert.are.equal(text, tx.amount)
      end
   end)

   it("applies to every amount in a page and leaves other numbers alone", function()
      local c = assert(plain:create_customer{})
      server:deposit{ customerId = c.id, currency = "ETH", amount = "0.30000000000000000001" }
      server:deposit{ customerId = c.id, currency = "ETH", amount = "7" }
      local page = assert(exact:find_transactions{ customerId = c.id })
      assert.are.same({ "0.30000000000000000001", "7" }, { page.result[1].amount, page.result[2].amount })
      assert.are.equal(2, page.totalElements)
      assert.are.equal("number", type(page.totalElements))
   end)

   it("finds the end of strings that end in escaped backslashes", function()
      server:fault{ mode = "raw", status = 200,
                    body = '{"a":"x\\\\","amount":1.25,"b":"\\"amount\\":2","c":"\\\\\\"","amount2":3}' }
      local res = assert(exact:call("transaction/get", {}))
      assert.are.equal("x\\", res.a)
      assert.are.equal("1.25", res.amount)
      assert.are.equal('"amount":2', res.b)
      assert.are.equal('\\"', res.c)
      assert.are.equal(3, res.amount2)
   end)

   it("is off by default: amounts are Lua numbers", function()
      local tx = assert(plain:get_transaction{ transactionId = deposit("25.5") })
      assert.are.equal(25.5, tx.amount)
   end)

   it("does not touch an amount that is already a string or a key inside a string", function()
      server:fault{ mode = "raw", status = 200,
                    body = '{"amount":"12.50","note":"\\"amount\\":1.5","nested":{"amount" : 3.14159265358979323846}}' }
      local res = assert(exact:call("transaction/get", { transactionId = customer.id }))
      assert.are.equal("12.50", res.amount)
      assert.are.equal('"amount":1.5', res.note)
      assert.are.equal("3.14159265358979323846", res.nested.amount)
   end)
end)

describe("integers beyond 2^53", function()
   local body = '{"id":9007199254740993,"neg":-9007199254740993,"max":9223372036854775807,' ..
                '"huge":123456789012345678901234567890,"small":42,"list":[9007199254740995,1]}'

   it("come back exact: integers on 5.3+, digit strings where Lua has no such integer", function()
      server:fault{ mode = "raw", status = 200, body = body }
      local res = assert(plain:call("transaction/get", {}))
      if math.type then
         assert.are.equal(9007199254740993, res.id)
         assert.are.equal("integer", math.type(res.id))
         assert.are.equal(-9007199254740993, res.neg)
         assert.are.equal(math.maxinteger, res.max)
         assert.are.equal(9007199254740995, res.list[1])
      else
         assert.are.equal("9007199254740993", res.id)
         assert.are.equal("-9007199254740993", res.neg)
         assert.are.equal("9223372036854775807", res.max)
         assert.are.equal("9007199254740995", res.list[1])
      end
      assert.are.equal("123456789012345678901234567890", res.huge)
      assert.are.equal(42, res.small)
      assert.are.equal(1, res.list[2])
   end)

   it("a 16-digit integer below 2^53 is a plain number everywhere", function()
      server:fault{ mode = "raw", status = 200, body = '{"n":1234567890123456}' }
      local res = assert(plain:call("transaction/get", {}))
      assert.are.equal(1234567890123456, res.n)
      assert.are.equal("number", type(res.n))
   end)
end)

describe("purse.decode", function()
   it("decodes like a client does: integers, dropped nulls, exact amounts on request", function()
      local t = assert(purse.decode('{"amount":0.10,"id":12,"n":null,"a":[null,1],'
                                    .. '"big":123456789012345678901234}', true))
      assert.are.equal("0.10", t.amount)
      assert.are.equal(12, t.id)
      if math.type then assert.are.equal("integer", math.type(t.id)) end
      assert.is_nil(t.n)
      assert.are.equal(purse.null, t.a[1])
      assert.are.equal(2, #t.a)
      assert.are.equal("123456789012345678901234", t.big)
      assert.are.equal(0.1, assert(purse.decode('{"amount":0.10}')).amount)
   end)

   it("returns a decode failure for malformed text", function()
      local res, msg, err = purse.decode('{"a":')
      assert.is_nil(res)
      assert.are.equal("decode", err.kind)
      assert.truthy(msg:find("^calypso: decode: malformed JSON"), msg)
      assert.has_error(function() purse.decode(nil) end)
   end)
end)

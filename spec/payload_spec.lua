-- The payload writer: documented operations write their payload as JSON in C,
-- in the same walk that checks it (src/validate.c), without lua-cjson. These
-- specs pin the exact bytes, the escaping, the field order, and that a
-- refused payload leaves nothing behind for the next call.
local purse = require "calypso.purse"
local cjson = require "cjson"
local mock = require "calypso.mock"

local UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local client, server

-- The payload text of a prepared request (the envelope around it is fixed).
local function payload_text(op, payload)
   local body, msg, err = client:prepare(op, payload)
   if not body then return nil, msg, err end
   local text = body:match('^{"account":"0xc195df92dd9db2a8f28e597981f113d6e7582f8b","timestamp":%d+,"payload":(.*)}$')
   assert(text, "unexpected envelope: " .. body)
   return text
end

setup(function()
   server = mock.start()
   client = purse.new(mock.client_options(server))
end)
teardown(function()
   client:close()
   server:stop()
end)

describe("the payload writer", function()
   it("takes whole-number floats for integer fields on every runtime and writes them as integers", function()
      assert.are.equal('{"customerId":"' .. UUID .. '","pageNumber":0,"pageSize":5}',
                       payload_text("find_transactions", { customerId = UUID, pageSize = 5.0, pageNumber = 0.0 }))
      assert.are.equal('{"customerId":"' .. UUID .. '","pageSize":1048576}',
                       payload_text("find_transactions", { customerId = UUID, pageSize = 2 ^ 20 }))
   end)

   it("writes every documented operation's fields in the order of the endpoint table", function()
      assert.are.equal('{"customerId":"' .. UUID .. '"}', payload_text("get_customer", { customerId = UUID }))
      assert.are.equal('{"email":"a@b.c","description":"d","externalId":"e"}',
                       payload_text("create_customer", { externalId = "e", description = "d", email = "a@b.c" }))
      assert.are.equal('{}', payload_text("create_customer", {}))
      assert.are.equal('{}', payload_text("create_customer", nil))
      assert.are.equal('{"id":"' .. UUID .. '","externalId":"x"}',
                       payload_text("update_customer", { externalId = "x", id = UUID }))
      assert.are.equal('{"customerId":"' .. UUID .. '","currency":"USDT_TRX"}',
                       payload_text("get_address", { currency = "USDT_TRX", customerId = UUID }))
      assert.are.equal('{"externalId":"user-42"}',
                       payload_text("get_customers_by_external_id", { externalId = "user-42" }))
      assert.are.equal('{"transactionId":"' .. UUID .. '"}',
                       payload_text("get_transaction", { transactionId = UUID }))
      assert.are.equal(
         '{"customerId":"' .. UUID .. '","currencyFilter":{"equals":"ETH","specified":true,"in":["ETH","USDT_TRX"]},' ..
         '"transactionStateFilter":{"notEquals":"FAILED","specified":false,"notIn":["PENDING"]},' ..
         '"pageNumber":0,"pageSize":20,"sort":"createdAt,desc","properties":"id"}',
         payload_text("find_transactions", {
            properties = "id", sort = "createdAt,desc", pageSize = 20, pageNumber = 0,
            transactionStateFilter = { notIn = { "PENDING" }, specified = false, notEquals = "FAILED" },
            currencyFilter = { ["in"] = { "ETH", "USDT_TRX" }, specified = true, equals = "ETH" },
            customerId = UUID,
         }))
   end)

   it("gives the same bytes for the same payload, whatever order the table was filled in", function()
      local a, b = {}, {}
      a.email, a.description, a.externalId = "x@y.z", "one", "two"
      b.externalId, b.email, b.description = "two", "x@y.z", "one"
      assert.are.equal(payload_text("create_customer", a), payload_text("create_customer", b))
   end)

   it("escapes quotes, backslashes and control characters, and passes UTF-8 through", function()
      local s = 'q"b\\s/n\nr\rt\tb\bf\f\1\31\127 é € 😀'
      local text = payload_text("create_customer", { description = s })
      assert.are.equal('{"description":"q\\"b\\\\s/n\\nr\\rt\\tb\\bf\\f\\u0001\\u001f\127 é € 😀"}', text)
      assert.are.equal(s, cjson.decode(text).description)
   end)

   it("escapes a special byte at every position of a word-at-a-time scan", function()
      local escaped = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\0"] = "\\u0000", ["\31"] = "\\u001f" }
      for ch, esc in pairs(escaped) do
         for pos = 1, 19 do
            local s = ("a"):rep(pos - 1) .. ch .. ("b"):rep(19 - pos)
            assert.are.equal('{"email":"' .. ("a"):rep(pos - 1) .. esc .. ("b"):rep(19 - pos) .. '"}',
                             payload_text("create_customer", { email = s }))
         end
      end
   end)

   it("round-trips every byte value that may appear in a UTF-8 string", function()
      local bytes = {}
      for b = 0, 127 do bytes[#bytes + 1] = string.char(b) end
      local s = table.concat(bytes) .. "\194\128\223\191\224\160\128\239\191\191\240\144\128\128\244\143\191\191"
      local text = payload_text("create_customer", { email = s, description = s:reverse():gsub("[\128-\255]", "") })
      local back = cjson.decode(text)
      assert.are.equal(s, back.email)
      assert.are.equal((s:reverse():gsub("[\128-\255]", "")), back.description)
   end)

   it("reaches the server as the same strings (the mock parses what was signed)", function()
      local s = 'a "quoted" \\ back\nslash\t€'
      local created = assert(client:create_customer{ description = s, externalId = "x/y" })
      assert.are.equal(s, created.description)
      local again = assert(client:get_customer{ customerId = created.id })
      assert.are.equal(s, again.description)
      assert.are.equal("x/y", again.externalId)
   end)

   it("writes integers exactly, up to the 14-digit bound, and refuses more", function()
      assert.are.equal('{"customerId":"' .. UUID .. '","pageNumber":99999999999999,"pageSize":1}',
                       payload_text("find_transactions",
                                    { customerId = UUID, pageNumber = 99999999999999, pageSize = 1 }))
      local text, msg, err = payload_text("find_transactions", { customerId = UUID, pageNumber = 100000000000000 })
      assert.is_nil(text)
      assert.are.equal("invalid", err.kind)
      assert.are.equal("calypso: find_transactions: pageNumber: integer has more than 14 digits "
                       .. "and cannot be sent exactly", msg)
   end)

   it("names the exact place of a bad list item or a mixed list table", function()
      local _, msg = payload_text("find_transactions",
         { customerId = UUID, currencyFilter = { ["in"] = { "ETH", "\255" } } })
      assert.are.equal("calypso: find_transactions: currencyFilter.in[2]: string is not valid UTF-8", msg)
      _, msg = payload_text("find_transactions",
         { customerId = UUID, currencyFilter = { ["in"] = { "ETH", extra = "x" } } })
      assert.are.equal("calypso: find_transactions: currencyFilter.in: table mixes array items and named fields", msg)
      _, msg = payload_text("find_transactions",
         { customerId = UUID, currencyFilter = { ["in"] = { "ETH", [1.5] = "x" } } })
      assert.are.equal("calypso: find_transactions: currencyFilter.in: table keys must be strings, " ..
                       "or 1..n without holes (a sparse array or odd key)", msg)
      _, msg = payload_text("find_transactions", { customerId = UUID, currencyFilter = { "ETH" } })
      assert.are.equal("calypso: find_transactions: currencyFilter: must be a table of named fields, not an array", msg)
      _, msg = payload_text("find_transactions", { customerId = UUID, currencyFilter = { equals = "ETH", bogus = 1 } })
      assert.are.equal("calypso: find_transactions: currencyFilter.bogus: unknown field " ..
                       "(check the spelling against the API docs)", msg)
   end)

   it("leaves nothing of a refused payload for the next call", function()
      local _, msg = payload_text("create_customer", { email = "ok", description = "\255" })
      assert.are.equal("calypso: create_customer: description: string is not valid UTF-8", msg)
      assert.are.equal('{"email":"ok"}', payload_text("create_customer", { email = "ok" }))
      local c = assert(client:create_customer{ email = "after@example.com" })
      assert.are.equal("after@example.com", c.email)
      assert.is_nil(c.description)
   end)

   it("refuses a payload whose strings pass the 1 MiB budget, and then works again", function()
      local big = string.rep("\1", 600 * 1024)   -- escaped 6x: 3.6 MiB of JSON
      local text = payload_text("create_customer", { email = big })
      assert.are.equal(6 * #big + #'{"email":""}', #text)
      local _, msg, err = payload_text("create_customer", { email = big, description = big })
      assert.are.equal("invalid", err.kind)
      assert.are.equal("calypso: create_customer: description: payload is too large", msg)
      assert.are.equal('{"email":"x"}', payload_text("create_customer", { email = "x" }))
   end)
end)

-- Every method against the bundled mock over real sockets: exact results, and
-- the exact bytes on the wire (checked with an independent HMAC: luaossl).
local purse = require "calypso.purse"
local calypso = require "calypso"
local mock = require "calypso.mock"
local hmac = require "openssl.hmac"
local VERSION = require "support.version"

local UUID_PAT = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local server, client

local function hex(s)
   return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function keys(t)
   local ks = {}
   for k in pairs(t) do ks[#ks + 1] = k end
   table.sort(ks)
   return ks
end

local function last_request()
   local reqs = server:requests()
   return reqs[#reqs]
end

setup(function()
   server = mock.start()
   client = purse.new(mock.client_options(server))
end)

teardown(function()
   client:close()
   server:stop()
end)

describe("customers", function()
   it("create_customer returns the new customer, exactly", function()
      local c = assert(client:create_customer{ email = "alice@example.com", description = "VIP",
                                               externalId = "user-42" })
      assert.truthy(c.id:match(UUID_PAT), c.id)
      assert.are.same({ id = c.id, email = "alice@example.com", description = "VIP",
                        externalId = "user-42", blocked = false }, c)
   end)

   it("create_customer with no payload makes a customer with only an id", function()
      local c = assert(client:create_customer())
      assert.are.same({ "blocked", "id" }, keys(c))
      assert.is_false(c.blocked)
   end)

   it("get_customer returns what was created; an unknown id is API error 004", function()
      local c = assert(client:create_customer{ email = "bob@example.com" })
      assert.are.same(c, assert(client:get_customer{ customerId = c.id }))
      local res, msg, err = client:get_customer{ customerId = "00000000-0000-4000-8000-000000000000" }
      assert.is_nil(res)
      assert.are.equal("api", err.kind, msg)
      assert.are.equal("004", err.code)
      assert.are.equal(400, err.status)
   end)

   it("get_customers_by_external_id lists every customer with that reference", function()
      local a = assert(client:create_customer{ externalId = "shared-ref" })
      local b = assert(client:create_customer{ externalId = "shared-ref", email = "b@example.com" })
      local res = assert(client:get_customers_by_external_id{ externalId = "shared-ref" })
      assert.are.same({ "customers" }, keys(res))
      assert.are.same({ a, b }, res.customers)
      local none = assert(client:get_customers_by_external_id{ externalId = "nobody" })
      assert.are.same({ customers = {} }, none)
   end)

   it("update_customer changes the given fields and keeps the others", function()
      local c = assert(client:create_customer{ email = "old@example.com", description = "keep me" })
      local u = assert(client:update_customer{ id = c.id, email = "new@example.com" })
      assert.are.same({ id = c.id, email = "new@example.com", description = "keep me", blocked = false }, u)
      assert.are.same(u, assert(client:get_customer{ customerId = c.id }))
   end)

   it("block_customer and unblock_customer flip the blocked flag", function()
      local c = assert(client:create_customer{ email = "carol@example.com" })
      local blocked = assert(client:block_customer{ customerId = c.id })
      assert.is_true(blocked.blocked)
      assert.is_true(assert(client:get_customer{ customerId = c.id }).blocked)
      local unblocked = assert(client:unblock_customer{ customerId = c.id })
      assert.is_false(unblocked.blocked)
      assert.are.same(c, unblocked)
   end)
end)

describe("purses and addresses", function()
   it("get_address gives one purse per currency, the same on repeat, one address per chain", function()
      local c = assert(client:create_customer{})
      local trx = assert(client:get_address{ customerId = c.id, currency = "USDT_TRX" })
      assert.are.same({ "address", "id" }, keys(trx))
      assert.truthy(trx.id:match(UUID_PAT))
      assert.truthy(trx.address:match("^T%w+$"), trx.address)
      assert.are.same(trx, assert(client:get_address{ customerId = c.id, currency = "USDT_TRX" }))
      local eth = assert(client:get_address{ customerId = c.id, currency = "ETH" })
      local bsc = assert(client:get_address{ customerId = c.id, currency = "USDT_BSC" })
      assert.truthy(eth.address:match("^0x%x+$") and #eth.address == 42, eth.address)
      assert.are.equal(eth.address, bsc.address)
      assert.are_not.equal(eth.id, bsc.id)
   end)

   it("get_purses returns the customer's purses as a sequence", function()
      local c = assert(client:create_customer{})
      assert.are.same({}, assert(client:get_purses{ customerId = c.id }))
      local a = assert(client:get_address{ customerId = c.id, currency = "USDT_TRX" })
      local b = assert(client:get_address{ customerId = c.id, currency = "ETH" })
      local purses = assert(client:get_purses{ customerId = c.id })
      assert.are.equal(2, #purses)
      table.sort(purses, function(x, y) return x.currency > y.currency end)
      assert.are.same({ id = a.id, address = a.address, currency = "USDT_TRX", state = "PENDING_PAYMENT" }, purses[1])
      assert.are.same({ id = b.id, address = b.address, currency = "ETH", state = "PENDING_PAYMENT" }, purses[2])
   end)
end)

describe("transactions", function()
   local customer
   setup(function()
      customer = assert(client:create_customer{ email = "dave@example.com" })
      assert(client:get_address{ customerId = customer.id, currency = "USDT_TRX" })
   end)

   it("get_transaction returns a deposit with every documented field", function()
      local made = server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = 25.5,
                                   state = "CONFIRMED", addressFrom = "TSender", transactionHash = "abc123" }
      local tx = assert(client:get_transaction{ transactionId = made.id })
      assert.are.same({ "addressFrom", "amount", "complianceState", "createdDate", "currency", "id",
                        "transactionHash", "transactionState", "translationToAccountCompleted" }, keys(tx))
      assert.are.equal(made.id, tx.id)
      assert.are.equal(25.5, tx.amount)
      assert.are.equal("TSender", tx.addressFrom)
      assert.are.equal("USDT_TRX", tx.currency)
      assert.are.equal("abc123", tx.transactionHash)
      assert.are.equal("CONFIRMED", tx.transactionState)
      assert.are.equal("CHECKED", tx.complianceState)
      assert.is_false(tx.translationToAccountCompleted)
      assert.truthy(tx.createdDate:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"), tx.createdDate)
   end)

   it("returns integral JSON numbers as integers", function()
      local made = server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = 100,
                                   state = "MEM_POOL_FOUND" }
      local tx = assert(client:get_transaction{ transactionId = made.id })
      assert.are.equal(100, tx.amount)
      assert.are.equal("UNCHECKED", tx.complianceState)
      if math.type then assert.are.equal("integer", math.type(tx.amount)) end
      local page = assert(client:find_transactions{ customerId = customer.id, pageSize = 1 })
      if math.type then
         assert.are.equal("integer", math.type(page.page))
         assert.are.equal("integer", math.type(page.totalElements))
      end
   end)

   it("find_transactions pages 0-based with total = number of pages, and filters", function()
      local c = assert(client:create_customer{})
      local states = { "CONFIRMED", "DECLINED", "CONFIRMED", "PENDING_COMPLIANCE_CHECK", "CONFIRMED" }
      local ids = {}
      for i, st in ipairs(states) do
         ids[i] = server:deposit{ customerId = c.id, currency = i % 2 == 1 and "USDT_TRX" or "ETH",
                                  amount = i, state = st }.id
      end
      local p0 = assert(client:find_transactions{ customerId = c.id, pageNumber = 0, pageSize = 2 })
      assert.are.same({ "page", "result", "size", "total", "totalElements" }, keys(p0))
      assert.are.same({ 0, 2, 3, 5 }, { p0.page, p0.size, p0.total, p0.totalElements })
      assert.are.same({ ids[1], ids[2] }, { p0.result[1].id, p0.result[2].id })
      local p2 = assert(client:find_transactions{ customerId = c.id, pageNumber = 2, pageSize = 2 })
      assert.are.equal(1, #p2.result)
      assert.are.equal(ids[5], p2.result[1].id)
      local past = assert(client:find_transactions{ customerId = c.id, pageNumber = 3, pageSize = 2 })
      assert.are.same({}, past.result)

      local confirmed = assert(client:find_transactions{ customerId = c.id,
         transactionStateFilter = { equals = "CONFIRMED" }, sort = "DESC", properties = "createdDate" })
      assert.are.same({ ids[5], ids[3], ids[1] },
                      { confirmed.result[1].id, confirmed.result[2].id, confirmed.result[3].id })
      assert.are.equal(3, confirmed.totalElements)

      local eth = assert(client:find_transactions{ customerId = c.id, currencyFilter = { ["in"] = { "ETH" } } })
      assert.are.same({ ids[2], ids[4] }, { eth.result[1].id, eth.result[2].id })
      assert.are.equal(2, #eth.result)
   end)

   it("an empty history is an empty result", function()
      local c = assert(client:create_customer{})
      local page = assert(client:find_transactions{ customerId = c.id })
      assert.are.same({ result = {}, page = 0, size = 20, total = 0, totalElements = 0 }, page)
   end)
end)

describe("client:call", function()
   it("reaches any operation by relative or absolute path", function()
      local c = assert(client:create_customer{ email = "erin@example.com" })
      assert.are.same(c, assert(client:call("customer/get", { customerId = c.id })))
      assert.are.same(c, assert(client:call("/api/v1/customer-purse/customer/get", { customerId = c.id })))
      assert.are.equal("/api/v1/customer-purse/customer/get", last_request().path)
   end)
end)

describe("the request on the wire", function()
   it("is the documented envelope, signed over its exact bytes", function()
      local c = assert(client:create_customer{})
      local before = os.time() * 1000
      assert(client:get_address{ customerId = c.id, currency = "ETH" })
      local req = last_request()
      assert.are.equal("POST", req.method)
      assert.are.equal("/api/v1/customer-purse/address/get", req.path)
      assert.are.equal(server.key, req.headers["key"])
      assert.are.equal("application/json", req.headers["content-type"])
      assert.are.equal("application/json", req.headers["accept"])
      assert.are.equal("calypso-purse/" .. VERSION, req.headers["user-agent"])
      -- the body is exactly: account, timestamp, payload, in that order
      local ts = req.body:match('^{"account":"0xc195df92dd9db2a8f28e597981f113d6e7582f8b",'
                                .. '"timestamp":(%d+),"payload":{')
      assert.truthy(ts, req.body)
      assert.is_true(math.abs(tonumber(ts) - before) < 5000)
      local payload = require("cjson").decode(req.body).payload
      assert.are.same({ customerId = c.id, currency = "ETH" }, payload)
      -- independent HMAC-SHA512 (OpenSSL via luaossl, not our mbedTLS code)
      local expected = hex(hmac.new(server.secret, "sha512"):final(req.body))
      assert.are.equal(expected, req.headers["sign"])
      assert.are.equal(128, #req.headers["sign"])
   end)

   it("appends the user_agent option to the User-Agent", function()
      local o = mock.client_options(server)
      o.user_agent = "shop/1.2 (+ops@example.com)"
      local c2 = purse.new(o)
      assert(c2:create_customer{})
      c2:close()
      assert.are.equal("calypso-purse/" .. VERSION .. " shop/1.2 (+ops@example.com)",
         last_request().headers["user-agent"])
   end)

   it("sends the same head for any body size: these headers, in this order, no Expect", function()
      -- libcurl would add "Expect: 100-continue" (and wait up to 1 s) to a body over 1024
      -- bytes; the client suppresses it only for such bodies, so both sides of the line count
      local head = { "Host", "User-Agent", "Key", "Content-Type", "Accept", "Sign", "Content-Length" }
      for _, size in ipairs{ 0, 800, 1025, 4000 } do
         local c = assert(client:create_customer{ description = ("d"):rep(size) })
         local req = last_request()
         assert.are.same(head, req.header_names, "description of " .. size)
         assert.are.equal(c.description, ("d"):rep(size))
         assert.are.equal(tostring(#req.body), req.headers["content-length"])
      end
      -- over 1 MiB, where this libcurl's own threshold lies (older ones: over 1024 bytes);
      -- the mock turns the 1 MiB description down, after recording the request
      local _, _, err = client:call("customer/create", { description = ("d"):rep(1024 * 1024 - 64) })
      assert.are.equal("001", err.code)
      local req = last_request()
      assert.is_true(tonumber(req.headers["content-length"]) > 1024 * 1024)
      assert.are.same(head, req.header_names)
      -- the boundary itself: bodies of exactly 1024 and 1025 bytes
      local pad = ("e"):rep(1024 - #'{"account":"","timestamp":0000000000000,"payload":{"description":""}}'
                             - #server.account)
      for extra = 0, 1 do
         assert(client:create_customer{ description = pad .. ("e"):rep(extra) })
         local r = last_request()
         assert.are.equal(1024 + extra, #r.body)
         assert.are.same(head, r.header_names)
      end
   end)

   it("signs each request afresh (timestamps move, signatures differ)", function()
      local c = assert(client:create_customer{})
      assert(client:get_customer{ customerId = c.id })
      local r1 = last_request()
      assert(client:get_customer{ customerId = c.id })
      local r2 = last_request()
      assert.are.equal(hex(hmac.new(server.secret, "sha512"):final(r2.body)), r2.headers["sign"])
      if r1.body ~= r2.body then assert.are_not.equal(r1.headers["sign"], r2.headers["sign"]) end
   end)

   it("applies clock_offset to the signed timestamp", function()
      local c = assert(client:create_customer{})
      assert.are.equal(0, client:clock_offset())
      assert.are.equal(-60000, client:clock_offset(-60000))
      assert(client:get_customer{ customerId = c.id })
      local ts = tonumber(last_request().body:match('"timestamp":(%d+)'))
      client:clock_offset(0)
      assert.is_true(math.abs(ts - (os.time() * 1000 - 60000)) < 5000, tostring(ts))
   end)
end)

describe("proxies", function()
   -- a loopback port with nothing listening
   local function closed_port()
      local s = assert(require("socket").bind("127.0.0.1", 0))
      local _, port = s:getsockname()
      s:close()
      return port
   end
   local function call_with(env, proxy)
      local o = mock.client_options(server)
      local code = ([[
         local c = require("calypso.purse").new{ key = %q, secret = %q, account = %q, base_url = %q,
                                                 proxy = %s, connect_timeout = 2, timeout = 5 }
         local cust, msg, err = c:create_customer{ email = "proxy@example.com" }
         print(cust and cust.email or err.kind)
      ]]):format(o.key, o.secret, o.account, o.base_url, proxy and ("%q"):format(proxy) or "nil")
      return require("support.helpers").run_lua(code, env)
   end

   it("come only from the proxy option: the environment's are ignored", function()
      local dead = "http://127.0.0.1:" .. closed_port()
      assert.are.equal("proxy@example.com\n",
         call_with({ http_proxy = dead, HTTP_PROXY = dead, https_proxy = dead, ALL_PROXY = dead, all_proxy = dead }))
      -- nor does no_proxy exempt a host from the proxy that was given
      assert.are.equal("connect\n", call_with({ no_proxy = "127.0.0.1", NO_PROXY = "127.0.0.1" }, dead))
      assert.are.equal("connect\n", call_with({}, dead))
   end)
end)

describe("the calypso Lua layer", function()
   it("fills missing options from CALYPSO_* variables; given options win", function()
      local helpers = require "support.helpers"
      local env = { CALYPSO_API_KEY = server.key, CALYPSO_API_SECRET = "not-the-secret",
                    CALYPSO_ACCOUNT = server.account, CALYPSO_BASE_URL = server.url }
      local code = [[
         local calypso = require "calypso"
         local c = calypso.new(%s)
         local cust, msg, err = c:create_customer{ email = "env@example.com" }
         print(cust and cust.email or (err.kind .. " " .. err.code))
      ]]
      -- everything from the environment: the wrong secret there gives 003
      assert.are.equal("api 003\n", helpers.run_lua(code:format("nil"), env))
      -- the secret given in code wins over the environment's
      assert.are.equal("env@example.com\n",
         helpers.run_lua(code:format(("{ secret = %q }"):format(server.secret)), env))
   end)

   it("raises for options that are not a table", function()
      assert.has_error(function() calypso.new("key") end, "calypso.new: options must be a table (got string)")
   end)
end)

-- client:transactions and client:pages: lazy iteration over transaction/find against the mock.
local calypso = require "calypso"
local mock = require "calypso.mock"

local server, client

local function find_requests()
   local list = {}
   for _, r in ipairs(server:requests()) do
      if r.path:find("transaction/find", 1, true) then list[#list + 1] = r end
   end
   return list
end

local function new_customer(n, fields)
   local c = assert(client:create_customer{})
   local txs = {}
   for i = 1, n do
      local args = { customerId = c.id, currency = "USDT_TRX", amount = i }
      for k, v in pairs(fields and fields(i) or {}) do args[k] = v end
      txs[i] = server:deposit(args)
   end
   return c, txs
end

local function collect(iter)
   local out = {}
   for tx in iter do out[#out + 1] = tx end
   return out
end

local function amounts(list)
   local out = {}
   for i, tx in ipairs(list) do out[i] = tx.amount end
   return out
end

setup(function()
   server = mock.start()
   local o = mock.client_options(server)
   o.backoff_base = 0.001
   client = calypso.new(o)
end)
teardown(function()
   client:close()
   server:stop()
end)
before_each(function() server:reset() end)

describe("client:transactions", function()
   it("yields nothing for a customer without transactions, after one request", function()
      local c = new_customer(0)
      assert.are.same({}, collect(client:transactions{ customerId = c.id, pageSize = 5 }))
      assert.are.equal(1, #find_requests())
   end)

   it("yields the single transaction", function()
      local c, txs = new_customer(1)
      assert.are.same(txs, collect(client:transactions{ customerId = c.id, pageSize = 5 }))
      assert.are.equal(1, #find_requests())
   end)

   it("exactly one full page takes one request", function()
      local c, txs = new_customer(5)
      assert.are.same(txs, collect(client:transactions{ customerId = c.id, pageSize = 5 }))
      assert.are.equal(1, #find_requests())
   end)

   it("walks many pages in order, one request per page, each asking the next page", function()
      local c, txs = new_customer(12)
      local got = collect(client:transactions{ customerId = c.id, pageSize = 5 })
      assert.are.same(txs, got)
      local reqs = find_requests()
      assert.are.equal(3, #reqs)
      for i, r in ipairs(reqs) do
         assert.truthy(r.body:find('"pageNumber":' .. (i - 1) .. "[,}]"), r.body)
         assert.truthy(r.body:find('"pageSize":5[,}]'), r.body)
      end
   end)

   it("is lazy: breaking out after the first item makes one request", function()
      local c = new_customer(12)
      -- one call of the iterator: what a `for` that breaks after its first item does
      local next_tx = client:transactions{ customerId = c.id, pageSize = 5 }
      assert.are.equal(1, next_tx().amount)
      assert.are.equal(1, #find_requests())
   end)

   it("passes filters and sorting through to every page", function()
      local states = { "CONFIRMED", "DECLINED", "CONFIRMED" }
      local c = new_customer(9, function(i)
         return { currency = i % 2 == 0 and "ETH" or "USDT_TRX", state = states[i % 3 + 1] }
      end)
      local got = collect(client:transactions{
         customerId = c.id, pageSize = 2, sort = "DESC",
         currencyFilter = { ["in"] = { "USDT_TRX" } },
         transactionStateFilter = { equals = "CONFIRMED" },
      })
      -- odd amounts are USDT_TRX; states[i % 3 + 1] is CONFIRMED unless i % 3 == 1
      assert.are.same({ 9, 5, 3 }, amounts(got))
      for _, tx in ipairs(got) do
         assert.are.equal("USDT_TRX", tx.currency)
         assert.are.equal("CONFIRMED", tx.transactionState)
      end
      local reqs = find_requests()
      assert.are.equal(2, #reqs)
      for _, r in ipairs(reqs) do
         assert.truthy(r.body:find('"transactionStateFilter":{"equals":"CONFIRMED"}', 1, true), r.body)
         assert.truthy(r.body:find('"sort":"DESC"', 1, true), r.body)
      end
   end)

   it("starts at the given pageNumber and accepts a bare customer id", function()
      local c, txs = new_customer(7)
      assert.are.same({ txs[6], txs[7] },
                      collect(client:transactions{ customerId = c.id, pageSize = 5, pageNumber = 1 }))
      assert.are.same(txs, collect(client:transactions(c.id)))
   end)

   it("does not change the caller's query table", function()
      local c = new_customer(3)
      local q = { customerId = c.id, pageSize = 2 }
      collect(client:transactions(q))
      assert.are.same({ customerId = c.id, pageSize = 2 }, q)
   end)

   it("raises an error object with err's fields, after the items before it (issue 15.3)", function()
      local c = new_customer(5)
      local seen = {}
      local ok, err = pcall(function()
         for tx in client:transactions{ customerId = c.id, pageSize = 2 } do
            seen[#seen + 1] = tx.amount
            if #seen == 2 then
               server:fault{ mode = "error", code = "001", status = 400 } -- not transient
            end
         end
      end)
      assert.is_false(ok)
      assert.are.same({ 1, 2 }, seen)
      assert.are.equal("table", type(err))
      assert.are.same({ "api", 400, "001", false, true, 1 },
                      { err.kind, err.status, err.code, err.retryable, err.sent, err.attempts })
      assert.are.equal("string", type(err.trace_id))
      assert.truthy(err.message:find("^calypso: find_transactions: API error 001: Bad request %(HTTP 400, trace "),
                    err.message)
      assert.truthy(err.message:find(err.trace_id, 1, true))
      -- it reads as its one-line message wherever a string is expected
      assert.are.equal(err.message, tostring(err))
      assert.are.equal("failed: " .. err.message, "failed: " .. err)
      assert.are.equal(err.message .. "!", err .. "!")
      assert.are.equal("calypso.failure", getmetatable(err).__name)
      assert.are.equal(2, #find_requests())
   end)

   it("carries the kind of a transport failure: timeout, retryable, maybe sent", function()
      local c = new_customer(1)
      local short = calypso.new{ key = server.key, secret = server.secret, account = server.account,
                                 base_url = server.url, timeout = 0.2, max_retries = 0 }
      server:fault{ mode = "stall" }
      local ok, err = pcall(function()
         for _ in short:pages(c.id) do end
      end)
      short:close()
      assert.is_false(ok)
      assert.are.same({ "timeout", true, true, 1 }, { err.kind, err.retryable, err.sent, err.attempts })
      assert.is_nil(err.status)
      assert.are.equal(err.message, tostring(err))
      assert.truthy(tostring(err):find("^calypso: find_transactions: "), tostring(err))
   end)

   it("uncaught, it prints its message in the standalone interpreter (5.2+ and LuaJIT)", function()
      local c = new_customer(1)
      server:fault{ mode = "error", code = "004", status = 404 }
      local out = require("support.helpers").run_lua(([[
         local client = require("calypso").new{ key = %q, secret = %q, account = %q, base_url = %q }
         for _ in client:transactions(%q) do end
      ]]):format(server.key, server.secret, server.account, server.url, c.id))
      if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
         -- lua5.1's interpreter shows no error object but a string: pcall and tostring it there
         assert.truthy(out:find("(error object is not a string)", 1, true), out)
      else
         assert.truthy(out:find(": calypso: find_transactions: API error 004: ", 1, true), out)
      end
   end)

   it("retries a transient failure mid-way and goes on", function()
      local c, txs = new_customer(5)
      local seen = {}
      for tx in client:transactions{ customerId = c.id, pageSize = 2 } do
         seen[#seen + 1] = tx
         if #seen == 2 then server:fault{ mode = "html503" } end
      end
      assert.are.same(txs, seen)
      assert.are.equal(4, #find_requests())
   end)

   it("raises instead of looping on a server that keeps answering the same page", function()
      local c, txs = new_customer(2)
      local body = ('{"result":[{"id":"%s","amount":1},{"id":"%s","amount":2}],'
                    .. '"page":0,"size":2,"total":5,"totalElements":10}'):format(txs[1].id, txs[2].id)
      server:fault{ mode = "raw", status = 200, body = body, count = 50 }
      local seen = 0
      local ok, err = pcall(function()
         for _ in client:transactions{ customerId = c.id, pageSize = 2 } do seen = seen + 1 end
      end)
      assert.is_false(ok)
      assert.are.equal("calypso: find_transactions: asked for page 1, the server answered page 0", tostring(err))
      assert.are.same({ "decode", false, true, 200 }, { err.kind, err.retryable, err.sent, err.status })
      assert.are.equal(2, seen)
      assert.are.equal(2, #find_requests())
   end)

   it("raises on a repeated page even when the page number is echoed", function()
      local c, txs = new_customer(2)
      local page = '{"result":[{"id":"%s","amount":1}],"page":%d,"size":1,"total":9,"totalElements":9}'
      server:fault{ mode = "raw", status = 200, body = page:format(txs[1].id, 0) }
      server:fault{ mode = "raw", status = 200, body = page:format(txs[1].id, 1) }
      local ok, err = pcall(function()
         for _ in client:transactions{ customerId = c.id, pageSize = 1 } do end
      end)
      assert.is_false(ok)
      assert.are.equal("calypso: find_transactions: page 1 repeats page 0; stopping instead of looping",
                       tostring(err))
      assert.are.same({ "decode", false, true, 200 }, { err.kind, err.retryable, err.sent, err.status })
      assert.are.equal(2, #find_requests())
   end)

   it("a query that is not a table raises", function()
      assert.has_error(function() client:transactions(42) end,
         "calypso: transactions: query must be a table (got number)")
   end)
end)

describe("client:pages", function()
   it("yields whole pages with their metadata", function()
      local c, txs = new_customer(7)
      local pages = {}
      for page in client:pages{ customerId = c.id, pageSize = 3 } do pages[#pages + 1] = page end
      assert.are.same({
         { result = { txs[1], txs[2], txs[3] }, page = 0, size = 3, total = 3, totalElements = 7 },
         { result = { txs[4], txs[5], txs[6] }, page = 1, size = 3, total = 3, totalElements = 7 },
         { result = { txs[7] }, page = 2, size = 3, total = 3, totalElements = 7 },
      }, pages)
      assert.are.equal(3, #find_requests())
   end)

   it("yields no page when nothing matches", function()
      local c = new_customer(3)
      local n = 0
      for _ in client:pages{ customerId = c.id, currencyFilter = { equals = "BTC" } } do n = n + 1 end
      assert.are.equal(0, n)
   end)

   it("reports the server's page size cap", function()
      server:config{ max_page_size = 2 }
      local c = new_customer(3)
      local sizes = {}
      for page in client:pages{ customerId = c.id, pageSize = 50 } do sizes[#sizes + 1] = page.size end
      assert.are.same({ 2, 2 }, sizes)
   end)

   it("raises an invalid query's message before any request", function()
      local ok, err = pcall(function()
         for _ in client:pages{ pageSize = 2 } do end
      end)
      assert.is_false(ok)
      assert.are.equal("calypso: find_transactions: customerId: required field is missing", tostring(err))
      assert.are.same({ "invalid", false, false }, { err.kind, err.retryable, err.sent })
      assert.are.equal(0, #find_requests())
   end)
end)

-- Every err.kind, each provoked for real over sockets, and the client keeps
-- working afterwards. The secret never shows in any message or err field.
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local server, client, customer
local UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local TRACE_PAT = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function opts(extra)
   local o = mock.client_options(server)
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

-- Asserts the failure triple and that no part of it carries the secret.
local function expect_failure(res, msg, err, kind)
   assert.is_nil(res)
   assert.are.equal("string", type(msg))
   assert.are.equal(kind, err.kind, msg)
   assert.are.equal(msg, err.message)
   assert.is_nil(msg:find("\n", 1, true))
   for k, v in pairs(err) do
      if type(v) == "string" then assert.is_nil(v:find(server.secret, 1, true), k) end
   end
   return err
end

-- After any failure the same client must go on working.
local function still_works(c)
   c = c or client
   local got = assert(c:get_customer{ customerId = customer.id })
   assert.are.equal(customer.id, got.id)
end

setup(function()
   server = mock.start()
   client = purse.new(opts{ timeout = 1 })
   customer = assert(client:create_customer{ email = "errors@example.com" })
end)

teardown(function()
   client:close()
   server:stop()
end)

describe("transport failures", function()
   it("connect: nobody listens on the port", function()
      local sock = require("socket").bind("127.0.0.1", 0)
      local _, port = sock:getsockname()
      sock:close()
      local c = purse.new(opts{ base_url = "http://127.0.0.1:" .. port })
      local res, msg, e = c:get_customer{ customerId = UUID }
      local err = expect_failure(res, msg, e, "connect")
      assert.is_false(err.sent)         -- provably never reached a server
      assert.is_true(err.retryable)
      assert.truthy(msg:find("^calypso: get_customer: connect error: "), msg)
      c:close()
   end)

   it("resolve: a host name that cannot exist (fails locally, no DNS query leaves)", function()
      local c = purse.new(opts{ base_url = "http://bad..host:8080" })
      local res, msg, e = c:get_customer{ customerId = UUID }
      local err = expect_failure(res, msg, e, "resolve")
      assert.is_false(err.sent)
      c:close()
   end)

   it("timeout: the server stalls past `timeout`", function()
      server:fault{ mode = "stall" }
      local res, msg, e = client:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "timeout")
      assert.is_true(err.sent)
      assert.is_true(err.retryable)
      still_works()
   end)

   it("timeout: a delayed answer longer than `timeout`", function()
      server:fault{ mode = "delay", seconds = 2 }
      local res, msg, e = client:get_customer{ customerId = customer.id }
      expect_failure(res, msg, e, "timeout")
      still_works()
   end)

   it("network: the server closes the connection without answering a write", function()
      server:fault{ mode = "close" }
      local res, msg, e = client:create_customer{ email = "once@example.com" }
      local err = expect_failure(res, msg, e, "network")
      assert.is_true(err.sent)
      -- it rode the kept-alive connection; libcurl cannot rewind its body, so it was not
      -- resent behind our back: the mock saw exactly one create since the fault was queued
      assert.truthy(msg:find("not resent", 1, true), msg)
      local creates = 0
      for _, r in ipairs(server:requests()) do
         if r.path:find("customer/create", 1, true) and r.body:find("once@example.com", 1, true) then
            creates = creates + 1
         end
      end
      assert.are.equal(1, creates)
      still_works()
   end)

   it("network: a read on a fresh client whose server closes without answering", function()
      local c = purse.new(opts())
      server:fault{ mode = "close" }
      local res, msg, e = c:get_customer{ customerId = customer.id }
      expect_failure(res, msg, e, "network")
      still_works(c)
      c:close()
   end)

   it("a read whose kept-alive connection died is resent transparently", function()
      still_works()                      -- a kept-alive connection now exists
      server:fault{ mode = "close" }     -- it dies on the next request
      still_works()                      -- libcurl reconnects and resends the read
   end)

   it("too_large: a body over max_response_size", function()
      local c = purse.new(opts{ max_response_size = 1024 })
      server:fault{ mode = "raw", status = 200, body = '{"pad":"' .. string.rep("x", 4096) .. '"}' }
      local res, msg, e = c:get_customer{ customerId = customer.id }
      expect_failure(res, msg, e, "too_large")
      assert.truthy(msg:find("max_response_size (1024 bytes)", 1, true), msg)
      still_works(c)
      c:close()
   end)
end)

describe("HTTP and decode failures", function()
   it("http: an HTML 503 page", function()
      server:fault{ mode = "html503" }
      local res, msg, e = client:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "http")
      assert.are.equal(503, err.status)
      assert.is_true(err.retryable)
      assert.are.equal("calypso: get_customer: HTTP 503 without a Calypso error body", msg)
      assert.truthy(err.body:find("<", 1, true))
      still_works()
   end)

   it("http: JSON without errorCode on a 4xx", function()
      server:fault{ mode = "raw", status = 404, body = '{"error":"not here"}' }
      local res, msg, e = client:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "http")
      assert.are.equal(404, err.status)
      assert.is_false(err.retryable)
   end)

   local decode_cases = {
      { "truncated JSON", { mode = "malformed" } },
      { "a JSON array where an object is due", { mode = "raw", status = 200, body = "[1,2,3]" } },
      { "a JSON string", { mode = "raw", status = 200, body = '"customer"' } },
      { "a JSON number", { mode = "raw", status = 200, body = "42" } },
      { "JSON null", { mode = "raw", status = 200, body = "null" } },
      { "an empty body", { mode = "raw", status = 200, body = "" } },
      { "NaN (not JSON)", { mode = "raw", status = 200, body = '{"amount":NaN}' } },
      { "nesting beyond 64 levels",
        { mode = "raw", status = 200, body = string.rep("[", 100) .. string.rep("]", 100) } },
   }
   for _, case in ipairs(decode_cases) do
      it("decode: " .. case[1], function()
         server:fault(case[2])
         local res, msg, e = client:get_customer{ customerId = customer.id }
         local err = expect_failure(res, msg, e, "decode")
         assert.are.equal(200, err.status)
         -- the server's Date still comes with it (libcurl headers are read late for a 2xx)
         assert.truthy(err.date and err.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"), err.date)
         still_works()
      end)
   end
end)

describe("API errors", function()
   it("001 Bad request: an account the API cannot accept", function()
      local c = purse.new(opts{ account = "not-an-account" })
      local res, msg, e = c:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "api")
      assert.are.same({ "001", 400 }, { err.code, err.status })
      c:close()
   end)

   it("002 Invalid api key", function()
      local c = purse.new(opts{ key = "ffffffffffffffffffffffffffffffff" })
      local res, msg, e = c:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "api")
      assert.are.same({ "002", 400, false }, { err.code, err.status, err.retryable })
      c:close()
   end)

   it("003 Wrong sign: a secret the server does not know", function()
      local c = purse.new(opts{ secret = "wrong-secret" })
      local res, msg, e = c:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "api")
      assert.are.equal("003", err.code)
      assert.are.equal("Wrong sign", err.api_message)
      c:close()
   end)

   it("004 Requested object is not found, with the exact message and trace id", function()
      local res, msg, e = client:get_transaction{ transactionId = UUID }
      local err = expect_failure(res, msg, e, "api")
      assert.are.equal("004", err.code)
      assert.truthy(err.trace_id:match(TRACE_PAT), err.trace_id)
      assert.are.equal(("calypso: get_transaction: API error 004: Requested object is not found (HTTP 400, trace %s)")
         :format(err.trace_id), msg)
   end)

   it("011 Invalid timestamp parameter: a clock more than 3 minutes off", function()
      client:clock_offset(-4 * 60 * 1000)
      local res, msg, e = client:get_customer{ customerId = customer.id }
      client:clock_offset(0)
      local err = expect_failure(res, msg, e, "api")
      assert.are.equal("011", err.code)
      assert.truthy(err.date, "the Date header is passed on for clock-skew repair")
      still_works()
   end)

   it("000 Internal server error (HTTP 500) is retryable", function()
      server:fault{ mode = "error", code = "000", status = 500 }
      local res, msg, e = client:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "api")
      assert.are.same({ "000", 500, true }, { err.code, err.status, err.retryable })
      still_works()
   end)

   it("server text with control characters stays on one line", function()
      server:fault{ mode = "raw", status = 400, body = '{"errorCode":"001","message":"bad\\nline\\r\\u0000x"}' }
      local res, msg, e = client:get_customer{ customerId = customer.id }
      local err = expect_failure(res, msg, e, "api")
      assert.are.equal("bad line  x", err.api_message)
   end)
end)

describe("server text in messages", function()
   it("is cut on a UTF-8 character boundary", function()
      -- "xy" and 300 two-byte characters: a 239-byte cut would end inside a character
      local long = string.rep("\195\169", 300)
      server:fault{ mode = "raw", status = 400, body = '{"errorCode":"001","message":"xy' .. long .. '"}' }
      local res, msg, err = client:get_customer{ customerId = customer.id }
      assert.is_nil(res)
      assert.are.equal("api", err.kind)
      assert.is_true(#err.api_message < 240)
      assert.truthy(utf8 == nil or utf8.len(err.api_message), "api_message is not valid UTF-8")
      assert.truthy(utf8 == nil or utf8.len(msg), "message is not valid UTF-8")
      assert.are.equal("xy" .. string.rep("\195\169", 118), err.api_message)
   end)

   it("a number beyond double range is a decode failure, not inf", function()
      server:fault{ mode = "raw", status = 200, body = '{"id":"x","amount":1e999}' }
      local res, msg, err = client:get_customer{ customerId = customer.id }
      assert.is_nil(res)
      assert.are.equal("decode", err.kind)
      assert.truthy(msg:find("a number too large for a double", 1, true), msg)
   end)
end)

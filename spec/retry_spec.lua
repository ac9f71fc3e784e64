-- calypso.retry: the pure decision table for every (operation, failure) pair, backoff, HTTP
-- dates and Retry-After; then the retry loop of calypso.new against the mock over real sockets.
local purse = require "calypso.purse"
local calypso = require "calypso"
local retry = require "calypso.retry"
local mock = require "calypso.mock"
local socket = require "socket"

local DATE = "Sun, 06 Nov 1994 08:49:37 GMT"

describe("retry.decide", function()
   -- Every failure the core can report, with the decision for a read and for a write.
   local FAILURES = {
      { "connect, never sent", { kind = "connect", sent = false }, "retry", "retry" },
      { "resolve, never sent", { kind = "resolve", sent = false }, "retry", "retry" },
      { "timeout while connecting", { kind = "timeout", sent = false }, "retry", "retry" },
      { "timeout after sending", { kind = "timeout", sent = true }, "retry", false },
      { "network after sending", { kind = "network", sent = true }, "retry", false },
      { "network, never sent", { kind = "network", sent = false }, "retry", "retry" },
      { "http 429", { kind = "http", status = 429, sent = true }, "retry", false },
      { "http 502", { kind = "http", status = 502, sent = true }, "retry", false },
      { "http 503", { kind = "http", status = 503, sent = true }, "retry", false },
      { "http 504", { kind = "http", status = 504, sent = true }, "retry", false },
      { "http 500", { kind = "http", status = 500, sent = true }, false, false },
      { "http 404", { kind = "http", status = 404, sent = true }, false, false },
      { "http 408", { kind = "http", status = 408, sent = true }, false, false },
      { "api 000", { kind = "api", status = 500, code = "000", sent = true }, "retry", false },
      { "api 001", { kind = "api", status = 400, code = "001", sent = true }, false, false },
      { "api 002", { kind = "api", status = 400, code = "002", sent = true }, false, false },
      { "api 003", { kind = "api", status = 400, code = "003", sent = true }, false, false },
      { "api 004", { kind = "api", status = 400, code = "004", sent = true }, false, false },
      { "api error behind a 503", { kind = "api", status = 503, code = "001", sent = true }, "retry", false },
      { "api 011 with a Date", { kind = "api", status = 400, code = "011", date = DATE, sent = true }, "heal", "heal" },
      { "api 011 without a Date", { kind = "api", status = 400, code = "011", sent = true }, false, false },
      { "api 011 with a bad Date", { kind = "api", status = 400, code = "011", date = "yesterday", sent = true },
        false, false },
      { "decode", { kind = "decode", status = 200, sent = true }, false, false },
      { "tls", { kind = "tls", sent = false }, false, false },
      { "too_large", { kind = "too_large", status = 200, sent = true }, false, false },
      { "invalid", { kind = "invalid", sent = false }, false, false },
      { "unavailable transport", { kind = "unavailable", sent = false }, false, false },
   }
   local READS = { get_customer = true, get_customers_by_external_id = true, get_address = true,
                   get_purses = true, get_transaction = true, find_transactions = true }
   local WRITES = { create_customer = true, update_customer = true, block_customer = true,
                    unblock_customer = true }

   it("classifies the ten operations as the README says", function()
      local n = 0
      for name, info in pairs(purse.operations) do
         n = n + 1
         assert.are.equal(WRITES[name] == true, info.writes, name)
         assert.are.equal(READS[name] == true, not info.writes, name)
      end
      assert.are.equal(10, n)
   end)

   local ops = {}
   for name, info in pairs(purse.operations) do ops[#ops + 1] = { name, info } end
   table.sort(ops, function(a, b) return a[1] < b[1] end)
   ops[#ops + 1] = { "call on an unknown path", { writes = true } }

   for _, op in ipairs(ops) do
      for _, f in ipairs(FAILURES) do
         local want = f[3]
         if op[2].writes then want = f[4] end
         it(("%s + %s -> %s"):format(op[1], f[1], tostring(want)), function()
            local action, reason = retry.decide(op[2], f[2], 1, { max_retries = 2 })
            assert.are.equal(want, action)
            assert.are.equal("string", type(reason))
         end)
      end
   end

   it("stops after max_retries transient retries", function()
      local read, err = { writes = false }, { kind = "timeout", sent = true }
      assert.are.equal("retry", (retry.decide(read, err, 1, { max_retries = 2 })))
      assert.are.equal("retry", (retry.decide(read, err, 2, { max_retries = 2 })))
      assert.are.same({ false, "retries exhausted" }, { retry.decide(read, err, 3, { max_retries = 2 }) })
      assert.are.same({ false, "retries exhausted" }, { retry.decide(read, err, 1, { max_retries = 0 }) })
      assert.are.equal("retry", (retry.decide(read, err, 2, {})), "default max_retries is 2")
      assert.are.same({ false, "retries exhausted" }, { retry.decide(read, err, 3, {}) })
   end)

   it("does not count the skew retry against max_retries", function()
      local read, err = { writes = false }, { kind = "timeout", sent = true }
      assert.are.equal("retry", (retry.decide(read, err, 3, { max_retries = 2, healed = true })))
      assert.are.equal(false, (retry.decide(read, err, 4, { max_retries = 2, healed = true })))
   end)

   it("heals clock skew once per call, also with retries off, unless turned off", function()
      local write = { writes = true }
      local err = { kind = "api", code = "011", status = 400, date = DATE, sent = true }
      assert.are.same({ "heal", "clock skew" }, { retry.decide(write, err, 1, { retry = false }) })
      assert.are.same({ false, "clock skew already healed once in this call" },
         { retry.decide(write, err, 2, { healed = true }) })
      assert.are.same({ false, "clock skew healing is off" },
         { retry.decide(write, err, 1, { heal_clock_skew = false }) })
   end)

   it("retry = false turns transient retries off", function()
      assert.are.same({ false, "retries are off" },
         { retry.decide({ writes = false }, { kind = "connect", sent = false }, 1, { retry = false }) })
   end)

   it("gives the reason a write is not retried", function()
      assert.are.same({ false, "a write that may have reached the server" },
         { retry.decide({ writes = true }, { kind = "network", sent = true }, 1, {}) })
      assert.are.same({ false, "a write that may have reached the server" },
         { retry.decide({ writes = true }, { kind = "timeout" }, 1, {}) }, "unknown sent counts as sent")
   end)
end)

describe("retry.backoff", function()
   it("is full jitter over an exponential window capped at max", function()
      local function r() return 0.5 end
      assert.are.equal(0.05, retry.backoff(1, 0.1, 10, r))
      assert.are.equal(0.1, retry.backoff(2, 0.1, 10, r))
      assert.are.equal(0.2, retry.backoff(3, 0.1, 10, r))
      assert.are.equal(2.5, retry.backoff(10, 0.1, 5, r))
      assert.are.equal(0, retry.backoff(4, 0.1, 10, function() return 0 end))
      local top = retry.backoff(3, 0.1, 10, function() return 0.999 end)
      assert.is_true(top < 0.4 and top > 0.39)
   end)
end)

describe("retry.http_date", function()
   it("reads the three HTTP date forms", function()
      assert.are.equal(784111777, retry.http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.are.equal(784111777, retry.http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
      assert.are.equal(784111777, retry.http_date("Sun Nov  6 08:49:37 1994"))
      assert.are.equal(0, retry.http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
      assert.are.equal(951782400, retry.http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
      assert.are.equal(4102444799, retry.http_date("Thu, 31 Dec 2099 23:59:59 GMT"))
   end)

   it("agrees with os.time on the current date", function()
      local now = os.time()
      local text = os.date("!%a, %d %b %Y %H:%M:%S GMT", now)
      assert.are.equal(now, retry.http_date(text))
   end)

   it("refuses anything else", function()
      for _, bad in ipairs({ "", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
                             "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT" }) do
         assert.is_nil(retry.http_date(bad), bad)
      end
      assert.is_nil(retry.http_date(nil))
      assert.is_nil(retry.http_date(42))
   end)
end)

describe("retry.retry_after and retry.clock_offset", function()
   it("reads delay-seconds and HTTP dates (against the response's Date first)", function()
      assert.are.equal(3, retry.retry_after("3", nil, 0))
      assert.are.equal(120, retry.retry_after(" 120 ", nil, 0))
      assert.are.equal(30, retry.retry_after("Sun, 06 Nov 1994 08:50:07 GMT", DATE, 0))
      assert.are.equal(20, retry.retry_after("Sun, 06 Nov 1994 08:50:07 GMT", nil, 784111787))
      assert.are.equal(0, retry.retry_after("Sun, 06 Nov 1994 08:49:00 GMT", DATE, 0))
      assert.is_nil(retry.retry_after(nil, DATE, 0))
      assert.is_nil(retry.retry_after("-1", nil, 0))
      assert.is_nil(retry.retry_after("soon", nil, 0))
   end)

   it("learns the offset from the server's Date", function()
      assert.are.equal(600000, retry.clock_offset(DATE, 784111777 - 600))
      assert.are.equal(-5000, retry.clock_offset(DATE, 784111782))
      assert.is_nil(retry.clock_offset(nil, 0))
   end)
end)

---------------------------------------------------------------------------------------------
-- The retry loop against the mock
---------------------------------------------------------------------------------------------

describe("retries over real sockets", function()
   local server, customer

   local function new_client(extra)
      local o = mock.client_options(server)
      o.backoff_base = 0.001
      o.backoff_max = 0.01
      for k, v in pairs(extra or {}) do o[k] = v end
      return calypso.new(o)
   end

   local function api_requests(fragment)
      local list = {}
      for _, r in ipairs(server:requests()) do
         if r.path:find(fragment, 1, true) then list[#list + 1] = r end
      end
      return list
   end

   local function free_port()
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, port = s:getsockname()
      s:close()
      return port
   end

   setup(function() server = mock.start() end)
   teardown(function() server:stop() end)
   before_each(function()
      server:reset()
      local c = new_client()
      customer = assert(c:create_customer{ email = "retry@example.com" })
      c:close()
   end)

   it("a read survives two 503 pages: three attempts, the last one answered", function()
      local c = new_client()
      server:fault{ mode = "html503", count = 2 }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert.are.equal(3, #api_requests("customer/get"))
      c:close()
   end)

   it("a read gives up after max_retries and says how many attempts it made", function()
      local c = new_client{ max_retries = 1 }
      server:fault{ mode = "html503", count = 5 }
      local res, msg, err = c:get_customer(customer.id)
      assert.is_nil(res)
      assert.are.equal("calypso: get_customer: HTTP 503 without a Calypso error body", msg)
      assert.are.equal("http", err.kind)
      assert.are.equal(2, err.attempts)
      assert.are.equal(2, #api_requests("customer/get"))
      c:close()
   end)

   it("max_retries = 4 makes five attempts", function()
      local c = new_client{ max_retries = 4 }
      server:fault{ mode = "html503", count = 4 }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert.are.equal(5, #api_requests("customer/get"))
      c:close()
   end)

   it("retry = false makes exactly one attempt", function()
      local c = new_client{ retry = false }
      server:fault{ mode = "html503", count = 1 }
      local res, _, err = c:get_customer(customer.id)
      assert.is_nil(res)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #api_requests("customer/get"))
      c:close()
   end)

   it("a read retries API error 000 but not 004", function()
      local c = new_client()
      server:fault{ mode = "error", code = "000", status = 500 }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert.are.equal(2, #api_requests("customer/get"))
      local res, _, err = c:get_customer("00000000-0000-4000-8000-000000000000")
      assert.is_nil(res)
      assert.are.equal("004", err.code)
      assert.are.equal(1, err.attempts)
      assert.are.equal(3, #api_requests("customer/get"))
      c:close()
   end)

   it("a read retries a 429 and a connection closed without an answer", function()
      local c = new_client()
      server:fault{ mode = "error", code = "001", status = 429 }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert.are.equal(2, #api_requests("customer/get"))
      c:close()
      c = new_client() -- fresh: no kept-alive connection for libcurl to resend on by itself
      server:fault{ mode = "close" }
      assert.are.same({}, assert(c:get_purses(customer.id)))
      assert.are.equal(2, #api_requests("purse/get-all"))
      c:close()
   end)

   it("a read retries a timeout", function()
      local c = new_client{ timeout = 0.5 }
      server:fault{ mode = "stall" }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert.are.equal(2, #api_requests("customer/get"))
      c:close()
   end)

   it("a write is never resent once it may have reached the server", function()
      local c = new_client()
      for _, mode in ipairs({ "html503", "close" }) do
         server:fault{ mode = mode }
         local res, _, err = c:create_customer{ externalId = "once-" .. mode }
         assert.is_nil(res)
         assert.are.equal(1, err.attempts, mode)
         assert.is_true(err.sent, mode)
      end
      server:fault{ mode = "error", code = "000", status = 500 }
      local res, _, err = c:block_customer(customer.id)
      assert.is_nil(res)
      assert.are.equal("000", err.code)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1 + 2, #api_requests("customer/create")) -- before_each's, then one each
      assert.are.equal(1, #api_requests("customer/block"))
      c:close()
   end)

   it("a write that never left (connection refused) is retried", function()
      local events = {}
      local c = calypso.new{ key = server.key, secret = server.secret, account = server.account,
                             base_url = "http://127.0.0.1:" .. free_port(), backoff_base = 0.001,
                             on_event = function(ev) events[#events + 1] = ev end }
      local res, _, err = c:create_customer{ email = "x@example.com" }
      assert.is_nil(res)
      assert.are.equal("connect", err.kind)
      assert.is_false(err.sent)
      assert.are.equal(3, err.attempts)
      assert.are.equal(3, #events)
      assert.are.same({ "retry", "retry" }, { events[1].retry, events[2].retry })
      assert.are.same({ "never sent", "never sent", "retries exhausted" },
                      { events[1].reason, events[2].reason, events[3].reason })
      assert.is_true(events[3].final)
      c:close()
   end)

   it("client:call uses the operation's policy on known paths and treats others as writes", function()
      local c = new_client()
      server:fault{ mode = "html503" }
      assert.are.same(customer, assert(c:call("customer/get", { customerId = customer.id })))
      server:fault{ mode = "html503" }
      assert.are.same(customer, assert(c:call("/api/v1/customer-purse/customer/get", { customerId = customer.id })))
      assert.are.equal(4, #api_requests("customer/get"))
      server:fault{ mode = "html503" }
      local res, _, err = c:call("customer/create", {})
      assert.is_nil(res)
      assert.are.equal(1, err.attempts)
      server:fault{ mode = "html503" }
      res, _, err = c:call("/api/v2/something/new", {})
      assert.is_nil(res)
      assert.are.equal(1, err.attempts)
      c:close()
   end)

   it("honours Retry-After and re-signs every attempt with a fresh timestamp", function()
      local c = new_client()
      server:fault{ mode = "raw", status = 503, body = "busy", content_type = "text/plain",
                    headers = { ["Retry-After"] = "1" } }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      local reqs = api_requests("customer/get")
      assert.are.equal(2, #reqs)
      local t1 = tonumber(reqs[1].body:match('"timestamp":(%d+)'))
      local t2 = tonumber(reqs[2].body:match('"timestamp":(%d+)'))
      assert.is_true(t2 - t1 >= 1000, "waited the Retry-After second: " .. (t2 - t1))
      assert.are_not.equal(reqs[1].headers.sign, reqs[2].headers.sign)
      assert.are.equal(reqs[1].body:gsub('"timestamp":%d+', ""), reqs[2].body:gsub('"timestamp":%d+', ""))
      c:close()
   end)

   it("gives up at once when Retry-After lies beyond the deadline", function()
      local events = {}
      local c = new_client{ deadline = 2, on_event = function(ev) events[#events + 1] = ev end }
      server:fault{ mode = "raw", status = 429, body = "slow down", content_type = "text/plain",
                    headers = { ["Retry-After"] = "30" } }
      local started = purse.now()
      local res, _, err = c:get_customer(customer.id)
      assert.is_nil(res)
      assert.are.equal(429, err.status)
      assert.are.equal("30", err.retry_after)
      assert.are.equal(1, err.attempts)
      assert.are.equal("deadline", events[1].reason)
      assert.is_true(purse.now() - started < 2, "did not sleep")
      c:close()
   end)

   it("stops at the deadline, not at max_retries, when every attempt stalls", function()
      local events = {}
      local c = new_client{ timeout = 0.2, deadline = 0.5, max_retries = 10,
                            on_event = function(ev) events[#events + 1] = ev end }
      server:fault{ mode = "stall", count = 20 }
      local res, _, err = c:get_customer(customer.id)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.is_true(err.attempts >= 2 and err.attempts < 11, "attempts: " .. err.attempts)
      assert.are.equal(err.attempts, #events)
      assert.are.equal("deadline", events[#events].reason)
      c:close()
   end)

   it("cuts a running attempt at the deadline instead of letting it run a whole timeout", function()
      local c = new_client{ timeout = 3, deadline = 0.5, max_retries = 10 }
      server:fault{ mode = "stall", count = 20 }
      local started = purse.now()
      local res, _, err = c:get_customer(customer.id)
      local elapsed = purse.now() - started
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      -- the first attempt ends at the deadline; a full-jitter backoff near 0 may let a few
      -- more start with a millisecond left, which the core fails without sending
      assert.is_true(err.attempts <= 11, "attempts: " .. err.attempts)
      -- without core:deadline the first attempt would have run its full 3 s timeout
      assert.is_true(elapsed < 2, ("ended %.2f s after start, deadline 0.5 s, timeout 3 s"):format(elapsed))
      c:close()
   end)

   it("the default deadline is timeout x (max_retries + 1)", function()
      local c = new_client{ timeout = 4 }
      assert.are.equal(12, c:info().deadline)
      c:close()
      c = new_client{ timeout = 4, max_retries = 0 }
      assert.are.equal(4, c:info().deadline)
      c:close()
      c = new_client{ timeout = 4, retry = false }
      assert.are.equal(4, c:info().deadline)
      c:close()
      c = new_client{ deadline = 7.5 }
      assert.are.equal(7.5, c:info().deadline)
      c:close()
   end)
end)

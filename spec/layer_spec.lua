-- calypso.new: the Lua layer's options, the client object, and the transport seam (libcurl,
-- the OpenResty transport when nginx cosockets are there, and the "unavailable" error).
local calypso = require "calypso"
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local server

local function opts(extra)
   local o = mock.client_options(server)
   o.backoff_base = 0.001
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

local function api_requests()
   local n = 0
   for _, r in ipairs(server:requests()) do
      if r.path:find("/api/", 1, true) then n = n + 1 end
   end
   return n
end

setup(function() server = mock.start() end)
teardown(function() server:stop() end)
before_each(function() server:reset() end)

describe("calypso.new options", function()
   it("checks this layer's options and raises on wrong types", function()
      local cases = {
         { "max_retries", -1, "an integer from 0 to 100 (got -1)" },
         { "max_retries", 1.5, "an integer from 0 to 100 (got 1.5)" },
         { "deadline", 0, "a number of seconds from 0.001 to 86400 (got 0)" },
         { "deadline", "5", "a number of seconds from 0.001 to 86400 (got string)" },
         { "retry", "no", "a boolean (got string)" },
         { "heal_clock_skew", 1, "a boolean (got number)" },
         { "backoff_base", -0.1, "a number of seconds from 0 to 3600 (got -0.1)" },
         { "backoff_max", math.huge, "a number of seconds from 0 to 3600 (got inf)" },
         { "on_event", {}, "a function (got table)" },
         { "hook_bodies", "yes", "a boolean (got string)" },
         { "transport", "http2", '"auto", "curl" or "ngx" (got string)' },
         { "blocking_fallback", 0, "a boolean (got number)" },
         { "ngx_options", "pool", "a table (got string)" },
      }
      for _, case in ipairs(cases) do
         assert.has_error(function() calypso.new(opts{ [case[1]] = case[2] }) end,
            ("calypso.new: option '%s' must be %s"):format(case[1], case[3]))
      end
   end)

   it("passes every other option to purse.new, which raises on unknown names", function()
      assert.has_error(function() calypso.new(opts{ retries = 3 }) end,
         "calypso.purse.new: unknown option 'retries'")
      local c = calypso.new(opts{ max_retries = 0, deadline = 3, retry = false, heal_clock_skew = true,
                                  backoff_base = 0, backoff_max = 0, on_event = print, hook_bodies = false,
                                  transport = "curl", blocking_fallback = false, timeout = 3,
                                  user_agent = "layer-spec" })
      local info = c:info()
      assert.are.same({ 3, 0, false, 3, "curl" },
                      { info.timeout, info.max_retries, info.retry, info.deadline, info.transport })
      assert.truthy(info.user_agent:find("layer-spec", 1, true))
      c:close()
   end)

   it("passes exact_amounts through: 30 significant digits and 1e-8 come back as text", function()
      local c = calypso.new(opts{ exact_amounts = true })
      local plain = calypso.new(opts())
      local customer = assert(c:create_customer{})
      for _, amount in ipairs({ "123456789012345678901234.567890", "1e-8", "0.1" }) do
         local tx = server:deposit{ customerId = customer.id, currency = "BTC", amount = amount }
         assert.are.equal(amount, assert(c:get_transaction(tx.id)).amount)
         assert.are.equal(tonumber(amount), assert(plain:get_transaction(tx.id)).amount)
      end
      local got = {}
      for tx in c:transactions(customer.id) do got[#got + 1] = tx.amount end
      assert.are.same({ "123456789012345678901234.567890", "1e-8", "0.1" }, got)
      c:close()
      plain:close()
   end)
end)

describe("calypso.new numeric ranges (issue 12)", function()
   local function refused(name, value)
      local ok, e = pcall(calypso.new, opts{ [name] = value })
      assert.is_false(ok, name .. " = " .. tostring(value) .. " was accepted")
      return e
   end

   it("refuses out-of-range max_retries, deadline and backoff at construction, naming the range", function()
      local cases = {
         { "max_retries", math.huge, "an integer from 0 to 100 (got inf)" },
         { "max_retries", 1e11, "an integer from 0 to 100 (got 100000000000)" },
         { "max_retries", 101, "an integer from 0 to 100 (got 101)" },
         { "max_retries", -1, "an integer from 0 to 100 (got -1)" },
         { "max_retries", 1.5, "an integer from 0 to 100 (got 1.5)" },
         { "max_retries", "3", "an integer from 0 to 100 (got string)" },
         { "deadline", 1e13, "a number of seconds from 0.001 to 86400 (got 10000000000000)" },
         { "deadline", math.huge, "a number of seconds from 0.001 to 86400 (got inf)" },
         { "deadline", 86401, "a number of seconds from 0.001 to 86400 (got 86401)" },
         { "deadline", 0, "a number of seconds from 0.001 to 86400 (got 0)" },
         { "backoff_base", math.huge, "a number of seconds from 0 to 3600 (got inf)" },
         { "backoff_base", 3601, "a number of seconds from 0 to 3600 (got 3601)" },
         { "backoff_max", 1e300, "a number of seconds from 0 to 3600 (got 1e+300)" },
         { "backoff_max", -0.5, "a number of seconds from 0 to 3600 (got -0.5)" },
      }
      for _, case in ipairs(cases) do
         local e = refused(case[1], case[2])
         assert.are.equal(("calypso.new: option '%s' must be %s"):format(case[1], case[3]), e)
      end
      -- NaN: refused too (its text differs between C libraries)
      for _, name in ipairs({ "max_retries", "deadline", "backoff_base", "backoff_max" }) do
         local e = refused(name, 0 / 0)
         assert.truthy(e:find("^calypso%.new: option '" .. name .. "' must be "), e)
      end
   end)

   it("refuses out-of-range ngx_options (pool_size, keepalive_timeout) and unknown names in it", function()
      local cases = {
         { { pool_size = math.huge }, "ngx_options.pool_size' must be an integer from 1 to 10000 (got inf)" },
         { { pool_size = 0 }, "ngx_options.pool_size' must be an integer from 1 to 10000 (got 0)" },
         { { pool_size = 2.5 }, "ngx_options.pool_size' must be an integer from 1 to 10000 (got 2.5)" },
         { { keepalive_timeout = math.huge },
           "ngx_options.keepalive_timeout' must be a number of seconds from 0.001 to 86400 (got inf)" },
         { { keepalive_timeout = 0 },
           "ngx_options.keepalive_timeout' must be a number of seconds from 0.001 to 86400 (got 0)" },
         { { pool = 5 }, "ngx_options.pool' must be a string (got number)" },
         { { poolsize = 5 }, "ngx_options.poolsize' is not an option of calypso.transport.ngx "
                             .. "(pool_size, keepalive_timeout, pool)" },
      }
      for _, case in ipairs(cases) do
         local ok, e = pcall(calypso.new, opts{ ngx_options = case[1] })
         assert.is_false(ok)
         assert.are.equal("calypso.new: option '" .. case[2], e)
      end
   end)

   it("accepts the ends of every range, and whole-number floats for integers on every runtime", function()
      local c = calypso.new(opts{ max_retries = 3.0, deadline = 86400, backoff_base = 3600, backoff_max = 0,
                                  ngx_options = { pool_size = 10000.0, keepalive_timeout = 0.001 } })
      assert.are.equal("3", tostring(c:info().max_retries)) -- an integer, not 3.0, on 5.3+ too
      assert.are.equal(86400, c:info().deadline)
      assert(c:create_customer{})
      c:close()
      c = calypso.new(opts{ max_retries = 100, deadline = 0.001 })
      assert.are.equal(100, c:info().max_retries)
      c:close()
   end)

   it("every accepted setting gives calls that answer instead of raising", function()
      -- the largest timeout and max_retries: the default deadline stays within one day
      local c = calypso.new(opts{ timeout = 86400, max_retries = 100 })
      assert.are.equal(86400, c:info().deadline)
      local customer = assert(c:create_customer{})
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      c:close()
   end)
end)

describe("the client object", function()
   it("tostring shows the key id and host, never the secret, also once closed", function()
      local c = calypso.new(opts())
      local s = tostring(c)
      assert.truthy(s:find("^calypso client over calypso%.purse client "
                           .. "%(key c529e148%.%.%., http://127%.0%.0%.1:%d+%)"), s)
      assert.is_nil(s:find(server.secret, 1, true))
      c:close()
      assert.truthy(tostring(c):find("^calypso client over calypso%.purse client %(closed%)"), tostring(c))
   end)

   it("close is idempotent and any call afterwards raises", function()
      local c = calypso.new(opts())
      c:close()
      c:close()
      assert.has_error(function() c:create_customer{} end)
      assert.has_error(function() c:clock_offset() end)
   end)

   it("exposes the core and the module's helpers", function()
      local c = calypso.new(opts())
      assert.are.equal("userdata", type(c.core))
      assert.are.equal(purse.sign, calypso.sign)
      assert.are.equal(purse.verify, calypso.verify)
      assert.are.equal(purse.decode, calypso.decode)
      assert.are.equal(purse.null, calypso.null)
      assert.are.equal(purse.operations, calypso.operations)
      for name in pairs(purse.operations) do
         assert.are.equal("function", type(c[name]), name)
      end
      c:close()
   end)

   it("reaches the core's other methods (prepare, batch, ...) unchanged", function()
      local c = calypso.new(opts())
      local customer = assert(c:create_customer{})
      local body, sign, path, writes = c:prepare("get_customer", { customerId = customer.id })
      assert.are.same({ "/api/v1/customer-purse/customer/get", false }, { path, writes })
      assert.are.equal(purse.sign(server.secret, body), sign)
      local results = c:batch{ { "get_customer", { customerId = customer.id } } }
      assert.are.same({ { value = customer } }, results)
      assert.is_nil(c.no_such_method)
      c:close()
   end)

   it("offers exactly its own methods and the listed pass-throughs, nothing else of the core", function()
      local c = calypso.new(opts())
      local core_mt = getmetatable(c.core).__index
      local passed, missing = {}, {}
      for name, f in pairs(core_mt) do
         if type(f) == "function" and calypso.Client[name] == nil then
            if c[name] ~= nil then passed[#passed + 1] = name else missing[#missing + 1] = name end
         end
      end
      table.sort(passed)
      assert.are.same({ "deadline", "failure", "finish", "last_status", "prepare", "prepare_http", "sign" },
                      passed)
      assert.are.same({}, missing)
      assert.are.equal(purse.sign(server.secret, "x"), c:sign("x"))
      c:close()
   end)

   it("client:call refuses a method name where a path belongs", function()
      local c = calypso.new(opts())
      assert.has_error(function() c:call("get_customer", {}) end,
         "calypso: call: 'get_customer' is a method name, not a path; use client:get_customer(...)")
      assert.has_error(function() c:call({}, {}) end)
      c:close()
   end)

   if _VERSION == "Lua 5.4" then
      it("closes at the end of a <close> scope", function()
         local f = assert(load([[
            local calypso, o = ...
            local keep
            do
               local c <close> = calypso.new(o)
               keep = c
            end
            return tostring(keep)
         ]]))
         assert.truthy(f(calypso, opts()):find("(closed)", 1, true))
      end)
   end
end)

describe("transports", function()
   local saved_ngx, saved_mod

   -- A stand-in for OpenResty: the `ngx` API and calypso.transport.ngx, recording their use.
   local function fake_nginx(available, phase)
      local log = { requests = {}, sleeps = {}, new = {} }
      package.loaded.ngx = {
         get_phase = function() return phase or "content" end,
         sleep = function(s) log.sleeps[#log.sleeps + 1] = s end,
         log = function() end, WARN = 5,
      }
      package.loaded["calypso.transport.ngx"] = {
         available = function() return available end,
         new = function(core, o)
            log.new[#log.new + 1] = o
            return {
               request = function(_, op, payload)
                  log.requests[#log.requests + 1] = op
                  if purse.operations[op] then return core[op](core, payload) end
                  return core:call(op, payload)
               end,
            }
         end,
      }
      return log
   end

   before_each(function()
      saved_ngx, saved_mod = package.loaded.ngx, package.loaded["calypso.transport.ngx"]
   end)
   after_each(function()
      package.loaded.ngx, package.loaded["calypso.transport.ngx"] = saved_ngx, saved_mod
   end)

   it("auto outside nginx is libcurl", function()
      local events = {}
      local c = calypso.new(opts{ on_event = function(ev) events[#events + 1] = ev end })
      assert(c:create_customer{})
      assert.are.equal("curl", events[1].transport)
      c:close()
   end)

   it('"ngx" outside nginx is the "unavailable" error, with nothing sent', function()
      local c = calypso.new(opts{ transport = "ngx" })
      local res, msg, err = c:create_customer{}
      assert.is_nil(res)
      assert.are.same({ kind = "unavailable", op = "create_customer", message = msg, retryable = false,
                        sent = false, attempts = 1 }, err)
      assert.truthy(msg:find("^calypso: create_customer: transport unavailable: "), msg)
      assert.truthy(msg:find("blocking_fallback", 1, true), msg)
      assert.are.equal(0, api_requests())
      c:close()
   end)

   it('"ngx" with blocking_fallback uses libcurl where cosockets are missing', function()
      local c = calypso.new(opts{ transport = "ngx", blocking_fallback = true })
      assert(c:create_customer{})
      assert.are.equal(1, api_requests())
      c:close()
   end)

   it("auto inside nginx uses the ngx transport, which gets no secret, and sleeps with ngx.sleep", function()
      local log = fake_nginx(true)
      local events = {}
      local c = calypso.new(opts{ on_event = function(ev) events[#events + 1] = ev end,
                                  ngx_options = { pool_size = 7 } })
      local customer = assert(c:create_customer{})
      server:fault{ mode = "html503" }
      assert(c:call("customer/get", { customerId = customer.id }))
      assert.are.same({ "create_customer", "customer/get", "customer/get" }, log.requests)
      assert.are.equal(1, #log.new, "one transport object per client")
      assert.is_nil(log.new[1].secret)
      assert.are.equal(server.url, log.new[1].base_url)
      assert.are.equal(7, log.new[1].pool_size)
      assert.are.equal(1, #log.sleeps)
      assert.is_true(log.sleeps[1] >= 0 and log.sleeps[1] < 0.01)
      assert.are.equal("ngx", events[1].transport)
      c:close()
   end)

   it("inside nginx where cosockets are missing: the error, or libcurl with blocking_fallback", function()
      fake_nginx(false, "init_worker")
      local c = calypso.new(opts())
      local res, _, err = c:create_customer{}
      assert.is_nil(res)
      assert.are.equal("unavailable", err.kind)
      assert.are.equal(0, api_requests())
      c:close()
      c = calypso.new(opts{ blocking_fallback = true })
      assert(c:create_customer{})
      assert.are.equal(1, api_requests())
      c:close()
   end)

   it("inside nginx, without base_url or CALYPSO_BASE_URL, says once which host it uses (issue 15.5)", function()
      if os.getenv("CALYPSO_BASE_URL") then return end -- the environment gives one: nothing to say
      local warned = {}
      fake_nginx(true)
      package.loaded.ngx.log = function(level, msg) warned[#warned + 1] = { level, msg } end
      local o = opts()
      o.base_url = nil
      local a, b = calypso.new(o), calypso.new(o)
      calypso.new(opts()):close() -- a base_url given: nothing to say either
      assert.are.same({ { 5, "calypso: no base_url option and no CALYPSO_BASE_URL in this worker's "
         .. "environment (nginx passes it only with an `env CALYPSO_BASE_URL;` line): using "
         .. "https://api.calypso.finance" } }, warned)
      a:close()
      b:close()
   end)

   it("outside nginx the default host is not reported", function()
      local o = opts()
      o.base_url = nil
      local lines = require("support.helpers").run_lua(([[
         local c = require("calypso").new{ key = %q, secret = %q, account = %q }
         io.write("base ", c:info().base_url, "\n")
      ]]):format(o.key, o.secret, o.account), { CALYPSO_BASE_URL = "" })
      assert.are.equal("base https://api.calypso.finance\n", lines)
   end)

   it('"curl" inside nginx is libcurl', function()
      local log = fake_nginx(true)
      local c = calypso.new(opts{ transport = "curl" })
      assert(c:create_customer{})
      assert.are.same({}, log.requests)
      assert.are.equal(1, api_requests())
      c:close()
   end)
end)

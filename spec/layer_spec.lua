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
         { "max_retries", -1, "a non-negative integer" },
         { "max_retries", 1.5, "a non-negative integer" },
         { "deadline", 0, "a positive number of seconds" },
         { "deadline", "5", "a positive number of seconds" },
         { "retry", "no", "a boolean" },
         { "heal_clock_skew", 1, "a boolean" },
         { "backoff_base", -0.1, "a non-negative number of seconds" },
         { "backoff_max", math.huge, "a non-negative number of seconds" },
         { "on_event", {}, "a function" },
         { "hook_bodies", "yes", "a boolean" },
         { "transport", "http2", '"auto", "curl" or "ngx"' },
         { "blocking_fallback", 0, "a boolean" },
         { "ngx_options", "pool", "a table" },
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

describe("the client object", function()
   it("tostring shows the key id and host, never the secret, also once closed", function()
      local c = calypso.new(opts())
      local s = tostring(c)
      assert.truthy(s:find("^calypso client over calypso%.purse client %(key c529e148%.%.%., http://127%.0%.0%.1:%d+%)"), s)
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

   it('"curl" inside nginx is libcurl', function()
      local log = fake_nginx(true)
      local c = calypso.new(opts{ transport = "curl" })
      assert(c:create_customer{})
      assert.are.same({}, log.requests)
      assert.are.equal(1, api_requests())
      c:close()
   end)
end)

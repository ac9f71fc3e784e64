-- The on_event hook: one event per attempt with what happened, never the secret, the Sign
-- value or (unless hook_bodies) the bodies; a hook that raises never breaks the call. And the
-- secret and signatures never reach any message or tostring either.
local calypso = require "calypso"
local mock = require "calypso.mock"
local socket = require "socket"

local server

local function new_client(extra)
   local o = mock.client_options(server)
   o.backoff_base = 0.001
   for k, v in pairs(extra or {}) do o[k] = v end
   return calypso.new(o)
end

local function sorted_keys(t)
   local ks = {}
   for k in pairs(t) do ks[#ks + 1] = k end
   table.sort(ks)
   return ks
end

-- Every string reachable from `v` (keys, values, tostring of tables), for leak checks.
local function dump(v, out, seen)
   out, seen = out or {}, seen or {}
   if type(v) == "table" then
      if seen[v] then return out end
      seen[v] = true
      out[#out + 1] = tostring(v)
      for k, x in pairs(v) do
         dump(k, out, seen)
         dump(x, out, seen)
      end
   else
      out[#out + 1] = tostring(v)
   end
   return out
end

setup(function() server = mock.start() end)
teardown(function() server:stop() end)
before_each(function() server:reset() end)

describe("on_event", function()
   it("reports a successful call as one event", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      local customer = assert(c:create_customer{ email = "ev@example.com" })
      assert.are.equal(1, #events)
      local ev = events[1]
      assert.are.same({ "attempt", "duration", "final", "ok", "op", "path", "status", "transport" }, sorted_keys(ev))
      assert.are.same({ "create_customer", "/api/v1/customer-purse/customer/create", 1, true, true, "curl", 200 },
                      { ev.op, ev.path, ev.attempt, ev.ok, ev.final, ev.transport, ev.status })
      assert.are.equal("number", type(ev.duration))
      assert.is_true(ev.duration >= 0 and ev.duration < 5)
      assert(c:get_customer(customer.id))
      assert.are.equal("/api/v1/customer-purse/customer/get", events[2].path)
      c:close()
   end)

   it("reports each attempt of a retried call, with status, kind, code, trace id and the decision", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      local customer = assert(c:create_customer{})
      events = {}
      server:fault{ mode = "error", code = "000", status = 500 }
      server:fault{ mode = "html503" }
      assert(c:get_customer(customer.id))
      assert.are.equal(3, #events)
      local e1, e2, e3 = events[1], events[2], events[3]
      assert.are.same({ 1, false, 500, "api", "000", "retry", "transient", false },
                      { e1.attempt, e1.ok, e1.status, e1.kind, e1.code, e1.retry, e1.reason, e1.final })
      assert.truthy(e1.trace_id:match("^%x+%-%x+%-%x+%-%x+%-%x+$"), e1.trace_id)
      assert.truthy(e1.message:find("^calypso: get_customer: API error 000"), e1.message)
      assert.are.equal("number", type(e1.delay))
      assert.are.same({ 2, false, 503, "http", "retry" }, { e2.attempt, e2.ok, e2.status, e2.kind, e2.retry })
      assert.is_nil(e2.trace_id)
      assert.are.same({ 3, true, true }, { e3.attempt, e3.ok, e3.final })
      assert.is_nil(e3.kind)
      c:close()
   end)

   it("reports the failure that ends a call as final, with the reason", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      c:get_customer("00000000-0000-4000-8000-000000000000")
      assert.are.equal(1, #events)
      assert.are.same({ false, true, "api", "004", 400, "not transient" },
                      { events[1].ok, events[1].final, events[1].kind, events[1].code, events[1].status,
                        events[1].reason })
      assert.is_nil(events[1].retry)
      c:close()
   end)

   it("reports payloads refused before any I/O", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      local res, msg = c:get_customer{ customerId = "nope" }
      assert.is_nil(res)
      assert.are.same({ "invalid", 1, true, msg },
                      { events[1].kind, events[1].attempt, events[1].final, events[1].message })
      c:close()
   end)

   it("carries bodies only with hook_bodies = true", function()
      local events = {}
      local c = new_client{ on_event = function(ev) events[#events + 1] = ev end }
      assert(c:create_customer{ email = "private@example.com" })
      assert.is_nil(events[1].payload)
      assert.is_nil(events[1].result)
      assert.is_false(table.concat(dump(events), "\n"):find("private@example.com", 1, true) ~= nil)
      c:close()

      events = {}
      c = new_client{ hook_bodies = true, on_event = function(ev) events[#events + 1] = ev end }
      local payload = { email = "shared@example.com" }
      local customer = assert(c:create_customer(payload))
      assert.are.equal(payload, events[1].payload)
      assert.are.equal(customer, events[1].result)
      c:close()
   end)

   it("a hook that raises does not break the call (reported once on stderr)", function()
      local calls, lines = 0, {}
      -- io.stderr swapped for a recorder (through the io library as a local) and put back below
      local stdio = require("io")
      local stderr = stdio.stderr
      stdio.stderr = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end }
      local ok, err = pcall(function()
         local c = new_client{ on_event = function() calls = calls + 1; error("hook bug", 0) end }
         local customer = assert(c:create_customer{ email = "still@example.com" })
         server:fault{ mode = "html503" }
         assert.are.same(customer, assert(c:get_customer(customer.id)))
         c:close()
      end)
      stdio.stderr = stderr
      assert(ok, err)
      assert.are.equal(3, calls)
      assert.are.same({ "calypso: the on_event hook raised (reported once per client; calls go on): hook bug\n" },
                      lines)
   end)

   it("no hook, no events: calls work the same", function()
      local c = new_client()
      assert(c:create_customer{})
      c:close()
   end)
end)

describe("no leaks", function()
   it("the secret and the Sign values reach no event, message, error or tostring", function()
      local events = {}
      local c = new_client{ hook_bodies = true, timeout = 0.5,
                            on_event = function(ev) events[#events + 1] = ev end }
      local seen = {}
      local function keep(...) seen[#seen + 1] = { ... } end
      local customer = assert(c:create_customer{ email = "leak@example.com" })
      keep(c:get_customer(customer.id))
      server:fault{ mode = "error", code = "000", status = 500, count = 3 }
      keep(c:get_customer(customer.id))
      server:fault{ mode = "html503" }
      keep(c:create_customer{})
      server:fault{ mode = "malformed" }
      keep(c:get_transaction("00000000-0000-4000-8000-000000000000"))
      server:fault{ mode = "stall" }
      keep(c:block_customer(customer.id))
      keep(c:get_customer{ customerId = 1 })
      server:config{ clock_skew_ms = 900000 }
      keep(c:get_address(customer.id, "BTC"))
      server:fault{ mode = "error", code = "011", count = 2 }
      keep(c:get_purses(customer.id))
      keep(c:call("customer/get", { customerId = customer.id }))
      for page in c:pages{ customerId = customer.id } do keep(page) end
      keep(tostring(c), tostring(c.core), c:info())
      local wrong = calypso.new{ key = server.key, secret = "wrong-" .. server.secret,
                                 account = server.account, base_url = server.url }
      keep(wrong:get_customer(customer.id)) -- API error 003: wrong sign
      keep(tostring(wrong))
      local s = assert(socket.bind("127.0.0.1", 0))
      local _, port = s:getsockname()
      s:close()
      local refused = calypso.new{ key = server.key, secret = server.secret, account = server.account,
                                   base_url = "http://127.0.0.1:" .. port, backoff_base = 0.001 }
      keep(refused:create_customer{})
      c:close()
      keep(tostring(c))

      local text = table.concat(dump({ events, seen, c, wrong, refused }), "\n")
      assert.is_true(#events >= 14, "events: " .. #events)
      assert.is_nil(text:find(server.secret, 1, true), "the secret leaked")
      local signs = 0
      for _, r in ipairs(server:requests()) do
         signs = signs + 1
         assert.is_nil(text:find(r.headers.sign, 1, true), "a Sign value leaked")
         assert.is_nil(text:find(r.headers.sign:sub(1, 32), 1, true), "part of a Sign value leaked")
      end
      assert.is_true(signs >= 14, "signed requests: " .. signs)
      -- the secret is not even kept by the Lua layer
      assert.is_nil(table.concat(dump(refused), "\n"):find(server.secret, 1, true))
      wrong:close()
      refused:close()
   end)
end)

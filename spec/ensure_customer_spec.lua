-- client:ensure_customer: find-or-create by externalId, in every failure window the mock can
-- make (issue 14.3). Each test asserts the result and the mock's customers.
local calypso = require "calypso"
local mock = require "calypso.mock"

local server

local function new_client(extra)
   local o = mock.client_options(server)
   o.backoff_base, o.timeout = 0.001, 0.3
   for k, v in pairs(extra or {}) do o[k] = v end
   return calypso.new(o)
end

-- The mock's customers with this externalId.
local function customers_with(ext)
   local out = {}
   for _, c in ipairs(server:customers().customers) do
      if c.externalId == ext then out[#out + 1] = c end
   end
   return out
end

-- The API operations the mock received, in order ("external/get", "create", ...).
local function api_ops()
   local out = {}
   for _, r in ipairs(server:requests()) do
      out[#out + 1] = r.path:match("/api/v1/customer%-purse/customer/(.*)$") or r.path
   end
   return out
end

-- After a refuse fault: until the mock listens again (bounded: 50 tries, 0.05 s apart).
local function wait_listening()
   local socket = require "socket"
   for _ = 1, 50 do
      local c = socket.tcp()
      c:settimeout(0.5)
      local ok = c:connect("127.0.0.1", server.port)
      c:close()
      if ok then return true end
      socket.sleep(0.05)
   end
   error("the mock did not listen again within about 3 s")
end

setup(function() server = mock.start() end)
teardown(function() server:stop() end)
before_each(function() server:reset() end)

describe("client:ensure_customer", function()
   it("creates the customer when none has the externalId", function()
      local client = new_client()
      local c, how = client:ensure_customer{ externalId = "u-1", email = "a@example.com", description = "d" }
      client:close()
      assert.are.equal("created", how)
      assert.are.same({ c }, customers_with("u-1"))
      assert.are.same({ "u-1", "a@example.com", "d", false }, { c.externalId, c.email, c.description, c.blocked })
      assert.are.same({ "external/get", "create" }, api_ops())
   end)

   it("returns the existing customer and creates nothing", function()
      local client = new_client()
      local existing = assert(client:create_customer{ externalId = "u-2" })
      local c, how = client:ensure_customer{ externalId = "u-2", email = "other@example.com" }
      client:close()
      assert.are.equal("found", how)
      assert.are.same(existing, c)
      assert.are.same({ existing }, customers_with("u-2"))
      assert.are.same({ "create", "external/get" }, api_ops())
   end)

   it("takes the externalId positionally", function()
      local client = new_client()
      local c, how = client:ensure_customer("u-3")
      local again, how2 = client:ensure_customer("u-3")
      client:close()
      assert.are.same({ "created", "found" }, { how, how2 })
      assert.are.same(c, again)
      assert.are.same({ c }, customers_with("u-3"))
   end)

   it("window: the lookup fails (not transient) -> that failure, nothing created", function()
      local client = new_client()
      server:fault{ mode = "error", code = "001", status = 400 }
      local c, msg, err = client:ensure_customer{ externalId = "u-4" }
      client:close()
      assert.is_nil(c)
      assert.are.same({ "api", "001", 400, 1 }, { err.kind, err.code, err.status, err.attempts })
      assert.truthy(msg:find("^calypso: get_customers_by_external_id: API error 001"), msg)
      assert.are.same({}, customers_with("u-4"))
      assert.are.same({ "external/get" }, api_ops())
   end)

   it("window: the lookup fails transiently on every attempt -> after its retries, nothing created", function()
      local client = new_client()
      server:fault{ mode = "html503", count = 3 }
      local c, _, err = client:ensure_customer{ externalId = "u-5" }
      client:close()
      assert.is_nil(c)
      assert.are.same({ "http", 503, 3 }, { err.kind, err.status, err.attempts })
      assert.are.same({}, customers_with("u-5"))
      assert.are.same({ "external/get", "external/get", "external/get" }, api_ops())
   end)

   it("window: the create is applied but its answer times out -> found by a second lookup", function()
      local client = new_client()
      server:fault{ mode = "delay", seconds = 0 }   -- the lookup: answered at once
      server:fault{ mode = "delay", seconds = 1 }   -- the create: applied, answered after the timeout
      local c, how = client:ensure_customer{ externalId = "u-6", email = "six@example.com" }
      client:close()
      assert.are.equal("recovered", how)
      assert.are.same(customers_with("u-6"), { c })
      assert.are.equal("six@example.com", c.email)
      assert.are.same({ "external/get", "create", "external/get" }, api_ops())
   end)

   it("window: the create's connection closes unanswered, not applied -> its failure, no second create", function()
      local client = new_client()
      server:fault{ mode = "delay", seconds = 0 }
      server:fault{ mode = "close" }                -- the create: read, never applied, closed
      local c, msg, err = client:ensure_customer{ externalId = "u-7" }
      client:close()
      assert.is_nil(c)
      assert.are.same({ "network", true, "absent" }, { err.kind, err.sent, err.after_lookup })
      assert.truthy(msg:find("^calypso: create_customer: "), msg)
      assert.truthy(msg:find("; no customer with this externalId afterwards", 1, true), msg)
      assert.are.same({}, customers_with("u-7"))
      assert.are.same({ "external/get", "create", "external/get" }, api_ops())
   end)

   it("window: the create times out after being applied and the second lookup fails -> the timeout", function()
      local client = new_client()
      server:fault{ mode = "delay", seconds = 0 }
      server:fault{ mode = "delay", seconds = 1 }
      server:fault{ mode = "error", code = "001", status = 400 } -- the second lookup
      local c, msg, err = client:ensure_customer{ externalId = "u-8" }
      assert.is_nil(c)
      assert.are.same({ "timeout", true, "failed" }, { err.kind, err.sent, err.after_lookup })
      assert.truthy(msg:find("; the lookup afterwards failed too", 1, true), msg)
      assert.are.same({ "external/get", "create", "external/get" }, api_ops())
      -- it was applied: the next call finds it instead of creating a second one
      local again, how = client:ensure_customer{ externalId = "u-8" }
      client:close()
      assert.are.equal("found", how)
      assert.are.same({ again }, customers_with("u-8"))
   end)

   it("window: the create fails before being sent (connection refused) -> its failure after retries, "
      .. "nothing created", function()
      local client = new_client{ write_reuse_idle = 0 }   -- the create needs a new connection
      server:fault{ mode = "refuse", seconds = 1 }  -- the lookup is answered, then no new connection
      local c, _, err = client:ensure_customer{ externalId = "u-9" }
      client:close()
      wait_listening() -- the control requests below need new connections too
      assert.is_nil(c)
      assert.are.same({ "connect", false, 3 }, { err.kind, err.sent, err.attempts })
      assert.is_nil(err.after_lookup)
      assert.are.same({ "external/get" }, api_ops())
      assert.are.same({}, customers_with("u-9"))
   end)

   it("window: the create is refused by the API -> its failure, no second lookup", function()
      local client = new_client()
      server:fault{ mode = "delay", seconds = 0 }
      server:fault{ mode = "error", code = "001", status = 400 }
      local c, _, err = client:ensure_customer{ externalId = "u-10" }
      client:close()
      assert.is_nil(c)
      assert.are.same({ "api", "001" }, { err.kind, err.code })
      assert.is_nil(err.after_lookup)
      assert.are.same({ "external/get", "create" }, api_ops())
      assert.are.same({}, customers_with("u-10"))
   end)

   it("invalid input is refused before any request", function()
      local client = new_client()
      assert.has_error(function() client:ensure_customer{ email = "x@example.com" } end,
         "calypso: ensure_customer: externalId must be a non-empty string")
      assert.has_error(function() client:ensure_customer("") end,
         "calypso: ensure_customer: externalId must be a non-empty string")
      assert.has_error(function() client.ensure_customer("u") end,
         "calypso: ensure_customer: call it as client:ensure_customer(...)")
      client:close()
      assert.are.same({}, api_ops())
   end)
end)

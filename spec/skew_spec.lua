-- Clock skew heals itself: on API error 011 the client learns the offset from the response's
-- Date header, re-signs and retries once; the offset is kept per client and exposed.
local calypso = require "calypso"
local mock = require "calypso.mock"

local server

local function new_client(extra)
   local o = mock.client_options(server)
   o.backoff_base = 0.001
   for k, v in pairs(extra or {}) do o[k] = v end
   return calypso.new(o)
end

local function requests(fragment)
   local list = {}
   for _, r in ipairs(server:requests()) do
      if r.path:find(fragment, 1, true) then list[#list + 1] = r end
   end
   return list
end

local function timestamp(req)
   return tonumber(req.body:match('"timestamp":(%d+)'))
end

-- The Date header has whole seconds, the local clock is read in whole seconds: the learnt
-- offset is exact to within two seconds, far inside the API's three-minute window.
local function assert_near(want, got)
   assert.is_true(math.abs(got - want) <= 2000, ("offset %s, want %s +- 2000"):format(got, want))
end

setup(function() server = mock.start() end)
teardown(function() server:stop() end)
before_each(function() server:reset() end)

describe("clock skew", function()
   it("a server 10 minutes ahead: 011, learn, re-sign, succeed", function()
      local c = new_client()
      local customer = assert(c:create_customer{ email = "skew@example.com" })
      server:config{ clock_skew_ms = 600000 }
      assert.are.equal(0, c:clock_offset())
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert_near(600000, c:clock_offset())
      local reqs = requests("customer/get")
      assert.are.equal(2, #reqs)
      assert_near(600000, timestamp(reqs[2]) - timestamp(reqs[1]))
      assert.are_not.equal(reqs[1].headers.sign, reqs[2].headers.sign)
      -- the offset is kept: the next call needs one attempt
      assert(c:get_customer(customer.id))
      assert.are.equal(3, #requests("customer/get"))
      c:close()
   end)

   it("a server 20 minutes behind", function()
      local c = new_client()
      local customer = assert(c:create_customer{})
      server:config{ clock_skew_ms = -1200000 }
      assert.are.same(customer, assert(c:get_customer(customer.id)))
      assert_near(-1200000, c:clock_offset())
      c:close()
   end)

   it("heals a write too, which is then applied exactly once", function()
      server:config{ clock_skew_ms = 400000 }
      local c = new_client()
      local created = assert(c:create_customer{ externalId = "skewed-write" })
      local found = assert(c:get_customers_by_external_id("skewed-write"))
      assert.are.same({ created }, found.customers)
      assert.are.equal(2, #requests("customer/create"))
      c:close()
   end)

   it("heals with retries turned off", function()
      server:config{ clock_skew_ms = 300000 }
      local c = new_client{ retry = false }
      assert(c:create_customer{})
      assert_near(300000, c:clock_offset())
      c:close()
   end)

   it("retries only once per call: a second 011 is returned", function()
      local c = new_client()
      server:fault{ mode = "error", code = "011", count = 2 }
      local res, msg, err = c:create_customer{}
      assert.is_nil(res)
      assert.are.equal("011", err.code)
      assert.are.equal(2, err.attempts)
      assert.truthy(msg:find("API error 011", 1, true), msg)
      assert.are.equal(2, #requests("customer/create"))
      assert_near(0, c:clock_offset()) -- the mock's clock is right: the learnt offset is ~0
      c:close()
   end)

   it("heal_clock_skew = false returns the 011 at once", function()
      server:config{ clock_skew_ms = 600000 }
      local c = new_client{ heal_clock_skew = false }
      local res, _, err = c:create_customer{}
      assert.is_nil(res)
      assert.are.equal("011", err.code)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, c:clock_offset())
      c:close()
   end)

   it("without a usable Date header there is nothing to learn", function()
      local c = new_client()
      server:fault{ mode = "raw", status = 400, headers = { Date = "not a date" },
                    body = '{"errorCode":"011","message":"Invalid timestamp parameter"}' }
      local res, _, err = c:create_customer{}
      assert.is_nil(res)
      assert.are.equal("011", err.code)
      assert.are.equal("not a date", err.date)
      assert.are.equal(1, err.attempts)
      c:close()
   end)

   it("the offset can be set and read by hand, per client", function()
      local a, b = new_client(), new_client()
      assert.are.equal(-5000, a:clock_offset(-5000))
      assert.are.equal(-5000, a:clock_offset())
      assert.are.equal(0, b:clock_offset())
      a:close()
      b:close()
   end)
end)

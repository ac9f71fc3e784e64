-- Hostile input from Lua: every public function called with wrong types, nil, 10 MiB strings,
-- NUL bytes, invalid UTF-8, cyclic tables, sparse arrays, NaN and infinities, integers beyond
-- 2^53, unknown fields and metatables whose every metamethod raises. Each call either raises a
-- clear error (programmer errors, CONTRIBUTING.md) or returns nil, message, err; nothing
-- crashes, and the mock sees exactly one request per call that returned a result: no
-- half-sent request, ever.
local purse = require "calypso.purse"
local calypso = require "calypso"
local mock = require "calypso.mock"

local UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local BIG = string.rep("x", 10 * 1024 * 1024)
local server, client, customer, seen_before, results

local function raise() error("metamethod ran", 0) end
local HOSTILE_MT = { __index = raise, __newindex = raise, __pairs = raise, __ipairs = raise,
                     __len = raise, __eq = raise, __lt = raise, __le = raise, __tostring = raise,
                     __concat = raise, __call = raise, __unm = raise, __add = raise,
                     __close = raise, __name = "hostile" }

-- The hostile values, by name (built fresh: some are mutated by what they are passed to).
local function values()
   local cyclic = { customerId = UUID }
   cyclic.self = cyclic
   local deep = {}
   local t = deep
   for _ = 1, 200 do t.a = {}; t = t.a end
   local v = {
      ["nil"] = nil, ["true"] = true, zero = 0, negative = -1, nan = 0 / 0, inf = math.huge,
      ninf = -math.huge, ["2^53+2"] = 2 ^ 53 + 2, ["2^63"] = 2 ^ 63, empty = "", big = BIG,
      nul = "a\0b", bad_utf8 = "\255\254", surrogate = "\237\160\128", fn = print,
      thread = coroutine.create(function() end), userdata = io.stdout, null = purse.null,
      table = {}, cyclic = cyclic, sparse = { 1, nil, 3 }, mixed = { 1, x = 2 }, deep = deep,
      hostile = setmetatable({ customerId = UUID }, HOSTILE_MT),
      hostile_empty = setmetatable({}, HOSTILE_MT),
   }
   if math.type then v.maxinteger = math.maxinteger; v.mininteger = math.mininteger end
   return v
end
local NAMES = {}
for name in pairs(values()) do NAMES[#NAMES + 1] = name end
NAMES[#NAMES + 1] = "nil"
table.sort(NAMES)

-- Runs fn(...) and classifies the outcome: "raised" (with a clear message), "failed" (the
-- failure triple), or "result". Anything else fails the test.
local function outcome(label, fn, ...)
   local packed = { pcall(fn, ...) }
   local ok, a, b, c = packed[1], packed[2], packed[3], packed[4]
   if not ok then
      assert.are.equal("string", type(a), label .. ": error value is a " .. type(a))
      assert.truthy(a:find("bad argument", 1, true) or a:find("calypso", 1, true)
                    or a:find("metamethod ran", 1, true), label .. ": unclear error: " .. a)
      assert.is_nil(a:find(server.secret, 1, true))
      return "raised", a
   end
   if a == nil and type(b) == "string" and type(c) == "table" then
      assert.are.equal(b, c.message, label)
      assert.is_string(c.kind, label)
      assert.is_nil(b:find("[\r\n]"), label)
      assert.is_nil(b:find(server.secret, 1, true), label)
      return "failed", c
   end
   return "result", a
end

-- A call through the client that must not leave a half-sent request: a result counts one
-- request the mock must have seen; a raise or an "invalid" failure counts none.
local function via_client(label, fn, ...)
   local kind, v = outcome(label, fn, ...)
   if kind == "failed" and v.kind == "invalid" then
      assert.is_false(v.sent, label)
   elseif kind == "failed" then   -- a valid request the server refused (payloads are read raw)
      assert.are.equal("api", v.kind, label .. ": " .. v.message)
      results = results + 1
   elseif kind == "result" then
      results = results + 1
   end
   return kind, v
end

setup(function()
   server = mock.start()
   client = purse.new(mock.client_options(server))
   customer = assert(client:create_customer{ email = "hostile@example.com" })
end)

teardown(function()
   client:close()
   server:stop()
end)

before_each(function()
   seen_before = #server:requests()
   results = 0
end)

after_each(function()
   collectgarbage()   -- runs the raising __gc of the hostile tables: a warning at most
   collectgarbage()
   assert.are.equal(seen_before + results, #server:requests(), "requests the mock saw")
end)

describe("hostile input", function()
   it("every operation, every hostile value as the payload, as a field and as a key", function()
      local field = { get_customer = "customerId", create_customer = "email", update_customer = "id",
                      get_address = "currency", find_transactions = "pageSize",
                      get_transaction = "transactionId", get_purses = "customerId",
                      block_customer = "customerId", unblock_customer = "customerId",
                      get_customers_by_external_id = "externalId" }
      for op in pairs(purse.operations) do
         for _, name in ipairs(NAMES) do
            local v = values()[name]
            local label = op .. "(" .. name .. ")"
            local kind = via_client(label, client[op], client, v)
            -- payloads are read raw: a hostile metatable on an empty table is an empty payload
            if op ~= "create_customer" or (name ~= "nil" and name ~= "table" and name ~= "hostile_empty") then
               assert.are_not.equal("result", kind, label)
            end
            via_client(label .. " as " .. field[op], client[op], client, { [field[op]] = v })
            if v ~= nil and v == v then
               local payload = { [v] = "x" }
               if op == "get_customer" then payload.customerId = UUID end
               assert.are_not.equal("result", (via_client(label .. " as a key", client[op], client, payload)), label)
            end
         end
      end
   end)

   it("a method called on anything but a client raises", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         for _, op in ipairs({ "get_customer", "call", "prepare", "prepare_http", "finish", "failure", "info",
                               "clock_offset", "close" }) do
            assert.are.equal("raised", (outcome(op .. " on " .. name, client[op], v, "customer/get", {})))
         end
      end
   end)

   it("client:call: a hostile path raises, a hostile payload is invalid", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         if type(v) ~= "number" then   -- numbers are coerced to paths like "0" (a valid path)
            assert.are.equal("raised", (via_client("call path " .. name, client.call, client, v, {})))
         end
         local kind = via_client("call payload " .. name, client.call, client, "customer/get",
                                 { customerId = customer.id, x = v })
         if name ~= "nil" and name ~= "true" and name ~= "zero" and name ~= "negative" and name ~= "empty"
            and name ~= "null" and name ~= "table" and name ~= "nul" and name ~= "2^53+2"
            and name ~= "hostile" and name ~= "hostile_empty" then
            assert.are.equal("failed", kind, name)
         end
      end
   end)

   it("client:prepare: never a raise for a payload, never a half-built request", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         local body, sign = client:prepare("get_customer", { customerId = UUID, extra = v })
         if body then
            assert.is_true(purse.verify(server.secret, body, sign))
         else
            assert.are.equal("invalid",
               select(3, client:prepare("get_customer", { customerId = UUID, extra = v })).kind)
         end
         if type(v) ~= "string" and type(v) ~= "number" then
            assert.are.equal("raised", (outcome("prepare op " .. name, client.prepare, client, v, {})))
         end
      end
      assert.are.equal("raised", (outcome("prepare op with NUL", client.prepare, client, "customer/\0get", {})))
      assert.are.equal("raised", (outcome("prepare op 10 MiB", client.prepare, client, BIG, {})))
   end)

   it("client:prepare_http: a hostile head or op raises, a hostile payload is invalid", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         local request = client:prepare_http("get_customer", { customerId = UUID, extra = v }, "Host: x")
         if request then
            local sign, body = request:match("\r\nSign: (%x+)\r\n.-\r\n\r\n(.*)$")
            assert.is_true(purse.verify(server.secret, body, sign))
         else
            assert.are.equal("invalid",
               select(3, client:prepare_http("get_customer", { customerId = UUID, extra = v }, "Host: x")).kind)
         end
         if type(v) ~= "string" and type(v) ~= "number" then
            assert.are.equal("raised",
               (outcome("prepare_http op " .. name, client.prepare_http, client, v, {}, "Host: x")))
            assert.are.equal("raised", (outcome("prepare_http head " .. name, client.prepare_http, client,
                                                "get_customer", { customerId = UUID }, v)))
         end
      end
      assert.are.equal("raised", (outcome("prepare_http head 10 MiB", client.prepare_http, client,
                                          "get_customer", { customerId = UUID }, BIG)))
      assert.is_string((client:prepare_http("get_customer", { customerId = UUID }, "Host: x")))
   end)

   it("client:finish: hostile status, body, date and retry_after", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         local kind = outcome("finish status " .. name, client.finish, client, "get_customer", v, "{}")
         -- 5.1 and LuaJIT turn any number into an integer (how is their business); 5.3+ refuse
         -- numbers without an integer representation
         if type(v) ~= "number" or (math.type and (v ~= math.floor(v) or v ~= v or math.abs(v) == math.huge
                                                   or v >= 2 ^ 63)) then
            assert.are.equal("raised", kind, name)
         end
         kind = outcome("finish body " .. name, client.finish, client, "get_customer", 200, v)
         if type(v) ~= "string" and type(v) ~= "number" then assert.are.equal("raised", kind, name) end
         outcome("finish date " .. name, client.finish, client, "get_customer", 429, "", v, v)
      end
      local _, _, err = client:finish("get_customer", 200, BIG)
      assert.are.equal("too_large", err.kind)
      _, _, err = client:finish("get_customer", 200, '{"a":"\0"}')
      assert.are.equal("decode", err.kind)
      _, _, err = client:finish("get_customer", 503, "x", BIG, "a\0b")
      assert.are.equal("http", err.kind)
      -- header values are cut to what the libcurl path keeps, control bytes blanked
      assert.are.equal("a b", err.retry_after)
      assert.are.equal(63, #err.date)
   end)

   it("client:failure, client:info, client:clock_offset", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         local kind = outcome("failure kind " .. name, client.failure, client, "get_customer", v, "x", false)
         assert.are.equal("raised", kind, name)
         kind = outcome("failure detail " .. name, client.failure, client, "get_customer", "network", v, v)
         if type(v) ~= "string" and type(v) ~= "number" then assert.are.equal("raised", kind, name) end
         outcome("info " .. name, client.info, client, v)
         kind = outcome("clock_offset " .. name, client.clock_offset, client, v)
         if v ~= nil and not (type(v) == "number" and math.abs(v) <= 8.64e10) then
            assert.are.equal("raised", kind, name)
         end
      end
      assert.are.equal(0, client:clock_offset(0))
      assert.are.equal("timeout", select(3, client:failure("get_customer", "timeout", BIG, true)).kind)
   end)

   it("purse.new and calypso.new: hostile options raise and leave nothing behind", function()
      local base = mock.client_options(server)
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         assert.are.equal("raised", (outcome("new(" .. name .. ")", purse.new, v)))
         if name ~= "table" and name ~= "nil" then
            assert.are.equal("raised", (outcome("calypso.new(" .. name .. ")", calypso.new, v)))
         end
         for _, opt in ipairs({ "key", "account", "base_url", "timeout", "connect_timeout", "ca_file",
                                "proxy", "user_agent", "max_response_size", "insecure_skip_tls_verify",
                                "exact_amounts" }) do
            local o = {}
            for k, x in pairs(base) do o[k] = x end
            o[opt] = v
            local kind, c = outcome("new{" .. opt .. "=" .. name .. "}", purse.new, o)
            if kind == "result" then c:close() end
         end
         local o = {}
         for k, x in pairs(base) do o[k] = x end
         if v ~= nil and v == v then
            o[v] = 1
            assert.are.equal("raised", (outcome("new{[" .. name .. "]=1}", purse.new, o)), name)
         end
      end
      -- the options table itself with raising metamethods: a raise, never a crash
      local o = setmetatable({}, HOSTILE_MT)
      for k, x in pairs(base) do rawset(o, k, x) end
      outcome("new(hostile options)", purse.new, o)
      local kind, c = outcome("calypso.new(hostile options)", calypso.new, setmetatable({}, HOSTILE_MT))
      if kind == "result" then c:close() end
      for _, opt in ipairs({ "key", "account", "base_url", "user_agent", "proxy" }) do
         for _, bad in ipairs({ "a\0b", "a\r\nX-Evil: 1", opt ~= "account" and BIG or nil }) do
            local p = {}
            for k, x in pairs(base) do p[k] = x end
            p[opt] = bad
            local how, msg = outcome("new{" .. opt .. "=bad}", purse.new, p)
            assert.are.equal("raised", how, opt)
            assert.truthy(msg:find("'" .. opt .. "'", 1, true) or msg:find(opt, 1, true), msg)
         end
      end
   end)

   it("a long proxy URL is not mistaken for a long user_agent (an option's length is its own)", function()
      local o = mock.client_options(server)
      o.proxy = "http://" .. string.rep("u", 250) .. ":secret@127.0.0.1:3128"
      local c = purse.new(o)   -- raised "option 'user_agent' is too long" before the fix
      c:close()
      o.proxy, o.ca_file = nil, "/" .. string.rep("d", 300) .. ".pem"
      purse.new(o):close()
   end)

   it("purse.sign, purse.verify, purse.decode, purse.sleep", function()
      for _, name in ipairs(NAMES) do
         local v = values()[name]
         local want = (type(v) == "string" or type(v) == "number") and "result" or "raised"
         assert.are.equal(want, (outcome("sign " .. name, purse.sign, v, "body")))
         assert.are.equal(want, (outcome("sign body " .. name, purse.sign, "k", v)))
         assert.are.equal(want, (outcome("verify " .. name, purse.verify, "k", "b", v)))
         local kind = outcome("decode " .. name, purse.decode, v)
         if want == "raised" then assert.are.equal("raised", kind) end
         if type(v) ~= "number" then
            assert.are.equal("raised", (outcome("sleep " .. name, purse.sleep, v)))
         end
      end
      assert.are.equal(128, #purse.sign(BIG, BIG))
      assert.is_true(purse.verify("k\0k", "a\0b", purse.sign("k\0k", "a\0b")))
      assert.is_false(purse.verify("k", "b", BIG))
      for _, text in ipairs({ BIG, "\0", "{\"a\":\"\255\"}", string.rep("[", 1e6), "{\"a\":1}\0" }) do
         local v, msg, err = purse.decode(text)
         assert.is_nil(v)
         assert.are.equal("decode", err.kind, msg)
      end
      for _, s in ipairs({ 0 / 0, -1, math.huge, 1e300 }) do
         assert.are.equal("raised", (outcome("sleep " .. tostring(s), purse.sleep, s)))
      end
   end)

   it("a hostile payload that is valid JSON goes out whole: NUL and big integers within 14 digits", function()
      local made = assert(client:create_customer{ email = "nul\0byte@example.com", description = "99999999999999" })
      results = results + 1
      assert.are.equal("nul\0byte@example.com", made.email)
      local last = server:requests()[#server:requests()]
      assert.truthy(last.body:find('"email":"nul\\u0000byte@example.com"', 1, true), last.body)
   end)

   it("finalizers that raise while the core allocates: a raise at most, no leak, no crash", function()
      -- On 5.2/5.3 an error in __gc propagates out of whatever allocation triggered the
      -- collection - here, allocations inside the core's C functions - so every such point must
      -- be safe to leave by longjmp (the sanitizer and valgrind runs check that nothing leaks).
      -- 5.4 turns such errors into warnings; 5.1 and LuaJIT run no __gc on tables.
      local gc_mt = { __gc = raise }
      local outcomes = {}
      for round = 1, 200 do
         for _ = 1, 20 do setmetatable({}, gc_mt) end
         local kind = outcome("round " .. round, function()
            local body = assert(client:prepare("get_customer", { customerId = UUID }))
            assert(client:finish("get_customer", 200, '{"id":"' .. UUID .. '","n":12345678901234567890}'))
            assert(purse.decode('{"a":[1,2,{"b":null}]}'))
            return body
         end)
         outcomes[kind] = (outcomes[kind] or 0) + 1
         if round % 50 == 0 then pcall(collectgarbage) end
      end
      gc_mt.__gc = nil   -- the rest die quietly
      collectgarbage()
      assert.is_nil(outcomes.failed)
      assert.truthy(outcomes.result)
   end)

   it("a closed client raises on every method; close is idempotent", function()
      local c = purse.new(mock.client_options(server))
      c:close()
      c:close()
      for _, op in ipairs({ "get_customer", "call", "prepare", "finish", "failure", "info", "clock_offset" }) do
         local kind, msg = outcome(op .. " after close", c[op], c, "get_customer", {})
         assert.are.equal("raised", kind, op)
         assert.truthy(msg:find("closed", 1, true), msg)
      end
      assert.truthy(tostring(c):find("closed", 1, true))
   end)
end)

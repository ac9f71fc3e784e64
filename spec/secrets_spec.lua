-- Secrets: across the whole fault matrix (spec/support/fault_matrix.lua) the API secret and
-- every Sign value sent never appear in a message, an err field, tostring of anything the
-- caller holds, client:info(), an on_event hook event (bodies included) or a raised error.
-- The C form of the secret (two SHA-512 states keyed from its HMAC pads) is wiped when a
-- client closes: fuzz/wipe_test.c watches every free() while a client closes and checks that
-- no freed block holds the secret, its ipad/opad or those states.
local purse = require "calypso.purse"
local calypso = require "calypso"
local mock = require "calypso.mock"
local matrix = require "support.fault_matrix"

-- Distinctive: a random-looking secret that no message could contain by chance.
local SECRET = "sk-7Hq2xV9pL4mZ8wR1tY6uN3bC5dF0gJ"
local TIMEOUT = 0.5
local server, client, layer, customer, events

-- Every string reachable from v (tables walked, with their keys; cycles cut), tostring'ed
-- values included.
local function strings(v, out, seen)
   out, seen = out or {}, seen or {}
   local t = type(v)
   if t == "string" then
      out[#out + 1] = v
   elseif t == "table" then
      if seen[v] then return out end
      seen[v] = true
      for k, x in pairs(v) do
         strings(k, out, seen)
         strings(x, out, seen)
      end
   elseif v ~= nil then
      out[#out + 1] = tostring(v)
   end
   return out
end

-- Fails if any string reachable from `...` holds the secret or a Sign value the mock saw.
local function clean(label, ...)
   local signs = {}
   for _, r in ipairs(server:requests()) do
      if r.headers.sign then signs[#signs + 1] = r.headers.sign:lower() end
   end
   for _, s in ipairs(strings({ ... })) do
      assert.is_nil(s:find(SECRET, 1, true), label .. ": the secret in " .. s:sub(1, 120))
      local lower = s:lower()
      for _, sign in ipairs(signs) do
         assert.is_nil(lower:find(sign, 1, true), label .. ": a Sign value in " .. s:sub(1, 120))
      end
   end
end

setup(function()
   server = mock.start{ secret = SECRET }
   local o = mock.client_options(server)
   o.timeout = TIMEOUT
   o.write_reuse_idle = 0   -- accept-time faults strike a write's own fresh connection
   client = purse.new(o)
   events = {}
   o.on_event = function(ev) events[#events + 1] = ev end
   o.hook_bodies = true
   o.max_retries = 0
   layer = calypso.new(o)
   customer = assert(client:create_customer{ email = "secrets@example.com" })
end)

teardown(function()
   client:close()
   layer:close()
   server:stop()
end)

describe("the secret and the Sign value", function()
   it("the checker catches them (so a pass means something)", function()
      local seen = server:requests()
      local sign = seen[#seen].headers.sign
      assert.are.equal(128, #sign)
      assert.has_error(function() clean("control", { nested = { "x" .. SECRET .. "y" } }) end)
      assert.has_error(function() clean("control", "Sign: " .. sign:upper()) end)
      assert.has_no_error(function() clean("control", "nothing here", { 1, 2 }) end)
   end)

   for _, row in ipairs(matrix.cases()) do
      if not row.refuse then
         it("never show through the fault: " .. row.name, function()
            for _, c in ipairs({ client, layer }) do
               events = {}
               server:fault(matrix.fault(row, customer))
               local op = row.op or "get_customer"
               local payload = op == "create_customer" and { email = "s@example.com" } or { customerId = customer.id }
               local res, msg, err = c[op](c, payload)
               if c == layer then assert.is_true(#events > 0, "no hook event") end
               clean(row.name, res ~= nil and "result" or nil, msg, err, events, tostring(c),
                     tostring(err), client:info(), debug.traceback(msg or ""))
            end
         end)
      end
   end

   it("never show in a successful call's events, prepare's other results or info", function()
      events = {}
      local got = assert(layer:get_customer{ customerId = customer.id })
      assert.is_true(#events > 0)
      local body, sign, path, writes = client:prepare("get_customer", { customerId = customer.id })
      assert.are.equal(128, #sign)   -- prepare hands the Sign out on purpose: that is its job
      clean("success", got, events, body, path, writes, client:info(), tostring(client), tostring(layer))
   end)

   it("never show in raised errors (programmer errors) or transport failures", function()
      local o = mock.client_options(server)
      local raised = {}
      for _, bad in ipairs({ { secret_key = SECRET }, { secret = 42 }, { secret = "" },
                             { secret = SECRET, timeout = "x" }, { secret = SECRET, base_url = "ftp://x" } }) do
         local p = {}
         for k, v in pairs(o) do p[k] = v end
         p.secret = nil
         for k, v in pairs(bad) do p[k] = v end
         local ok, e = pcall(purse.new, p)
         assert.is_false(ok)
         raised[#raised + 1] = e
         ok, e = pcall(calypso.new, p)
         assert.is_false(ok)
         raised[#raised + 1] = e
      end
      clean("raised", raised)
      local c = purse.new(o)
      c:close()
      local ok, e = pcall(c.get_customer, c, { customerId = customer.id })
      assert.is_false(ok)
      clean("closed", e, tostring(c))
      local r1 = { client:failure("get_customer", "tls", "handshake failed", false) }
      local r2 = { client:finish("get_customer", 400, '{"errorCode":"003","message":"Wrong sign"}') }
      clean("failure/finish", r1, r2)
   end)

   it("the C copy of the secret is wiped on close (fuzz/wipe_test.c)", function()
      local root = assert(io.popen("pwd")):read("*l")
      local bin = root .. "/build/wipe_test"
      -- its own free() interposition cannot share the process with a preloaded sanitizer
      -- runtime (scripts/sanitize.sh), so it runs without one
      local mk = assert(io.popen("env -u LD_PRELOAD sh fuzz/wipe_test.sh " .. bin .. " 2>&1"))
      local out = mk:read("*a")
      mk:close()
      assert.truthy(out:match("wipe_test: %d+ frees and %d+ unmaps watched while closing, 0 held the secret"), out)
      assert.truthy(out:find("wipe_test: the detector sees an unwiped copy", 1, true), out)
   end)
end)

-- Re-entrancy: Lua code that runs while a core method is in progress (a finalizer run by a GC
-- step inside the core's own allocations) calls methods of the same client or multi, close
-- included. Each attack runs in a child interpreter (spec/support/reentry.lua), bounded in
-- time, so that a crash or a hang fails here with what the child printed.
local purse = require "calypso.purse"
local mock = require "calypso.mock"
local helpers = require "support.helpers"

local server
local BUSY = "calypso.purse: client is busy (called from a finalizer or hook during another call on it)"
-- A 200 answer that is not JSON, long enough for the decoder to allocate before it fails.
local BAD_JSON = '{"a":"' .. ("x"):rep(300) .. '",' .. ('"k":"v",'):rep(400) .. '"end":}'
local VERSION = jit and "jit" or _VERSION:match("%d%.%d")

setup(function() server = mock.start() end)
teardown(function() server:stop() end)
before_each(function() server:reset() end)

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The child's sanitizer options with leak detection off (see the two scenarios that use it).
local function no_leak_check()
   local asan = os.getenv("ASAN_OPTIONS")
   return asan and { ASAN_OPTIONS = asan .. ":detect_leaks=0" } or nil
end

-- Runs one scenario in a child; returns its "key=value" lines as a table and the raw output.
local function run(name, env)
   local vars = { R_URL = server.url, R_KEY = server.key, R_SECRET = server.secret,
                  R_ACCOUNT = server.account }
   for k, v in pairs(env or {}) do vars[k] = v end
   local list = {}
   for k, v in pairs(vars) do list[#list + 1] = k .. "=" .. q(v) end
   local code = ("package.path=%q package.cpath=%q require('support.reentry').run(%q)")
      :format(package.path, package.cpath, name)
   local f = assert(io.popen(("env %s timeout -s KILL 60 %s -e %s 2>&1")
      :format(table.concat(list, " "), q(helpers.lua()), q(code))))
   local text = f:read("*a")
   f:close()
   local r = {}
   for k, v in text:gmatch("([%w_]+)=([^\n]*)") do r[k] = v end
   assert.are.equal(name, r.DONE, "the child died or hung; it printed:\n" .. text)
   assert.is_nil(r.attempts:find("none"), "the attack never fired during the call:\n" .. text)
   return r, text
end

-- Every API request the mock recorded is one JSON object, signed with the client's secret.
local function all_requests_well_formed()
   local cjson = require "cjson"
   local reqs = server:requests()
   assert.is_true(#reqs > 0)
   for _, req in ipairs(reqs) do
      local ok, body = pcall(cjson.decode, req.body)
      assert.is_true(ok and type(body) == "table" and type(body.payload) == "table",
                     "malformed request body: " .. req.body:sub(1, 200))
      assert.is_true(purse.verify(server.secret, req.body, req.headers.sign or ""),
                     "request not signed correctly: " .. req.body:sub(1, 200))
   end
end

describe("close from a finalizer during a call", function()
   it("in prepare (the table for a nil payload): the call completes, then the client is closed", function()
      local r, text = run("close_in_prepare")
      assert.are.equal("failed api", r.call, text)   -- customer/get without a customerId
      assert.are.equal("ok", r.outcome, text)
      assert.are.equal("true", r.closed_after, text)
      all_requests_well_formed()
   end)

   it("in finish: the failure carries the server's own bytes, never freed memory", function()
      server:fault{ mode = "raw", status = 200, body = BAD_JSON, count = 1000 }
      local r, text = run("close_in_finish", { R_BODY = BAD_JSON })
      assert.are.equal("failed decode", r.call, text)
      assert.are.equal("true", r.body_intact, text)
      assert.are.equal("true", r.closed_after, text)
   end)

   it("in client:batch: every call gets its own answer, then the client is closed", function()
      -- under the sanitizer on 5.1 (clang 14, glibc 2.36), LeakSanitizer's own tracer crashes
      -- reading a dlclose'd library's thread-local block at this child's exit ("Tracer caught
      -- signal 11"); the same child is clean under valgrind memcheck
      local r, text = run("close_in_batch", no_leak_check())
      assert.are.equal("6 results: api,api,api,api,api,api", r.batch, text)
      assert.are.equal("true", r.closed_after, text)
      all_requests_well_formed()
   end)

   it("of the multi in multi:result: the result is whole, then the multi is closed", function()
      server:fault{ mode = "raw", status = 200, body = BAD_JSON, count = 1000 }
      local r, text = run("multi_close_in_result", { R_BODY = BAD_JSON })
      assert.are.equal("failed decode", r.call, text)
      assert.are.equal("true", r.body_intact, text)
      assert.are.equal("true", r.closed_after, text)
   end)

   it("of the client in multi:result: the result is whole, then the client is closed", function()
      server:fault{ mode = "raw", status = 200, body = BAD_JSON, count = 1000 }
      local r, text = run("client_close_in_result", { R_BODY = BAD_JSON })
      assert.are.equal("failed decode", r.call, text)
      assert.are.equal("true", r.body_intact, text)
      assert.are.equal("true", r.closed_after, text)
   end)
end)

describe("a nested call from a finalizer", function()
   it("on a client busy writing its payload raises; nothing malformed is sent", function()
      local r, text = run("nested_call")
      all_requests_well_formed()
      assert.truthy(r.nested:find(BUSY, 1, true), text)
      assert.are.equal("true", r.read_only_ok, text)
      assert.are.equal("failed api", r.call, text)   -- the mock: unknown fields are fine, no customer
      all_requests_well_formed()
   end)

   it("starting a batch during a batch raises in the finalizer; the outer batch completes", function()
      local r, text = run("nested_batch")
      assert.truthy(r.nested:find(BUSY, 1, true), text)
      assert.are.equal("4 results: api,api,api,api", r.batch, text)
      all_requests_well_formed()
   end)
end)

describe("an error raised by a finalizer inside the core's JSON decoding", function()
   it("is never reported as a decode (or http) failure of the answer", function()
      -- an error answer whose decoding allocates a lot: room for a finalizer to land in it
      server:fault{ mode = "raw", status = 400, count = 100000,
                    body = '{"errorCode":"004","message":"not found","pad":{' ..
                           ('"k":"v",'):rep(400) .. '"end":1}}' }
      -- lua-cjson leaks its scratch buffer (strbuf_new, the size of the body) when an error
      -- unwinds through its decoder, as this finalizer's does on 5.1-5.3 and LuaJIT: not ours,
      -- so the sanitizer's leak check is off for this child
      local r, text = run("gc_error_in_decode", no_leak_check())
      if VERSION == "5.4" then
         -- 5.4 turns errors in __gc into warnings: the call is not disturbed
         assert.are.equal("failed api", r.call, text)
      elseif VERSION == "5.2" or VERSION == "5.3" then
         assert.are.equal("raised: error in __gc metamethod (boom from a finalizer)", r.call, text)
      else
         -- 5.1 and LuaJIT propagate it to whatever triggered the collection
         assert.are.equal("raised: boom from a finalizer", r.call, text)
      end
   end)
end)

-- Child side of spec/reentrancy_spec.lua: runs one attack in its own interpreter (so that a
-- crash or a hang fails the spec instead of killing the suite) and prints what happened as
-- "key=value" lines, then "DONE". The mock is given by R_URL, R_KEY, R_SECRET, R_ACCOUNT.
--
-- Attacks run from a finalizer under an aggressive collector: a chain of garbage objects whose
-- __gc makes the next one, so that some finalizer runs at most allocations inside the core.
-- The attack itself is armed right before the C call and runs once, the first time a
-- finalizer finds it armed (and its `when` true).
local purse = require "calypso.purse"

local M = {}
local UNKNOWN = "00000000-0000-4000-8000-000000000000"
-- Lua 5.2 runs pending finalizers only at the start of a GC step, so a finalizer lands in a
-- given allocation of the core far less often than on the other runtimes: more tries.
local TRIES = tonumber(os.getenv("R_TRIES") or "") or (_VERSION == "Lua 5.2" and 2000 or 200)
local opts = { key = os.getenv("R_KEY"), secret = os.getenv("R_SECRET"),
               account = os.getenv("R_ACCOUNT"), base_url = os.getenv("R_URL"), timeout = 10 }

local function pack(...) return { ... } end
local function out(k, v) io.write(k, "=", tostring(v), "\n") end

local armed, when, raw        -- the attack, its trigger, whether it runs unprotected
local fired, outcome = 0, nil

-- Runs from a finalizer (spec/support/gc_pressure.lua): the armed attack, once, when its
-- trigger says so.
local function on_finalize()
   if armed and (when == nil or when()) then
      local a = armed
      armed = nil
      fired = fired + 1
      if raw then
         a()
      else
         local ok, e = pcall(a)
         outcome = ok and "ok" or tostring(e)
      end
   end
end

-- The core's methods (client and multi): an attack counts only while one of them is on the
-- stack below the finalizer. Entering the Lua wrappers around the call can run a GC step
-- too (5.2+ check the collector when a Lua function starts), and an attack fired there, with
-- no core method in progress, would test nothing.
local core_methods = {}
local function note_methods(obj)
   if obj == nil then return end
   for _, f in pairs(getmetatable(obj).__index) do core_methods[f] = true end
end
local function in_core_call()
   for level = 2, 200 do
      local info = debug.getinfo(level, "f")
      if info == nil then return false end
      if core_methods[info.func] then return true end
   end
   return false
end

-- The attack is disarmed the moment the call returns or raises, before anything allocates
-- (pack's table, pcall's results): a finalizer may run at any allocation, and one that fired
-- outside the call would test nothing (or, raw, raise outside any pcall).
local function disarm(e)
   armed = nil
   return e
end

-- Tries up to `tries` times (within 40 s): make(ctx) sets up, then the attack is armed and
-- call(ctx) runs protected. Stops once the attack fired during the call. Returns ctx and the
-- call's results as pcall gives them.
local function attempt(tries, make, call, action, trigger)
   local deadline = os.time() + 40
   for i = 1, tries do
      local ctx = make()
      note_methods(ctx.c)
      note_methods(ctx.m)
      -- shift the collector's phase by a random amount: every try allocates alike, and a
      -- step that never lands in the call's window on one try may never land on any
      for _ = 1, math.random(0, 64) do local _ = {} end
      fired, outcome = 0, nil
      when = function() return in_core_call() and (trigger == nil or trigger(ctx)) end
      local run = function()
         local a, b, c, d = call(ctx)
         armed = nil
         return a, b, c, d
      end
      armed = function() return action(ctx) end
      local res = pack(xpcall(run, disarm))   -- no table made between arming and the call
      if fired > 0 and not (res[1] == false and tostring(res[2]):find("is closed", 1, true)) then
         out("attempts", i)
         return ctx, res
      end
      if os.time() > deadline then break end
   end
   out("attempts", "none fired")
   return nil
end

-- "ok"/"raised"/"failed <kind>" and details of a pcall'd call's results.
local function describe(res)
   if res[1] == false then return "raised: " .. tostring(res[2]) end
   if res[2] == nil then return "failed " .. tostring(res[4] and res[4].kind) end
   return "ok"
end

local function is_closed(obj)
   local ok, e = pcall(obj.info or obj.pending, obj)
   return not ok and tostring(e):find("is closed", 1, true) ~= nil
end

local scenarios = {}

-- close() while prepare makes the table for a nil payload.
scenarios.close_in_prepare = function()
   local ctx, res = attempt(TRIES, function() return { c = purse.new(opts) } end,
      function(ctx) return ctx.c:call("customer/get", nil) end,
      function(ctx) ctx.c:close() end)
   if not ctx then return end
   out("call", describe(res))
   out("outcome", outcome)
   out("closed_after", is_closed(ctx.c))
end

-- close() while finish decodes a 200 answer that turns out not to be JSON: err.body must be
-- the server's bytes (the mock answers R_BODY), not freed memory.
scenarios.close_in_finish = function()
   local body = os.getenv("R_BODY")
   local ctx, res = attempt(TRIES, function() return { c = purse.new(opts) } end,
      function(ctx) return ctx.c:call("customer/get", { customerId = UNKNOWN }) end,
      function(ctx) ctx.c:close() end,
      function(ctx) return ctx.c:last_status() == 200 end)
   if not ctx then return end
   out("call", describe(res))
   out("body_intact", res[4] ~= nil and res[4].body == body:sub(1, 256))
   out("closed_after", is_closed(ctx.c))
end

local function calls(n)
   local list = {}
   for i = 1, n do list[i] = { "get_customer", { customerId = UNKNOWN } } end
   return list
end

local function batch_report(res, n)
   if res[1] ~= true then return out("batch", describe(res)) end
   local kinds = {}
   for i = 1, n do kinds[i] = res[2][i] and res[2][i].err and res[2][i].err.kind or "?" end
   out("batch", #res[2] .. " results: " .. table.concat(kinds, ","))
end

-- close() of the client while its batch prepares and collects.
scenarios.close_in_batch = function()
   local ctx, res = attempt(TRIES, function() return { c = purse.new(opts), calls = calls(6) } end,
      function(ctx) return ctx.c:batch(ctx.calls) end,
      function(ctx) ctx.c:close() end)
   if not ctx then return end
   batch_report(res, 6)
   out("closed_after", is_closed(ctx.c))
end

-- close() of a multi, or of its client, while multi:result collects.
local function close_in_result(which)
   local ctx, res = attempt(TRIES, function()
         local c = purse.new(opts)
         local m = c:multi()
         local id = assert(m:start("get_customer", { customerId = UNKNOWN }))
         for _ = 1, 500 do
            if m:pending() == 0 then break end
            m:poll(0.01)
         end
         return { c = c, m = m, id = id }
      end,
      function(ctx) return ctx.m:result(ctx.id) end,
      function(ctx) ctx[which]:close() end)
   if not ctx then return end
   local body = os.getenv("R_BODY")
   out("call", describe(res))
   out("body_intact", res[4] ~= nil and res[4].body == body:sub(1, 256))
   out("closed_after", is_closed(ctx[which]))
end
scenarios.multi_close_in_result = function() close_in_result("m") end
scenarios.client_close_in_result = function() close_in_result("c") end

-- A nested call on the same client while the outer one writes its payload. Every request the
-- server saw must be whole and correctly signed (the spec checks the mock's log).
scenarios.nested_call = function()
   local c = purse.new(opts)
   local payload = {}
   for i = 1, 200 do payload["k" .. i] = ("v"):rep(i) end
   local ctx, res = attempt(TRIES, function() return { c = c } end,
      function(ctx) return ctx.c:call("customer/get", payload) end,
      function(ctx)
         ctx.info = ctx.c:info().key ~= nil and tostring(ctx.c):find("client") ~= nil
         return ctx.c:get_customer{ customerId = UNKNOWN }
      end)
   if not ctx then return end
   out("call", describe(res))
   out("nested", outcome)
   out("read_only_ok", ctx.info)
end

-- A batch started from a finalizer during a batch on the same client.
scenarios.nested_batch = function()
   local c = purse.new(opts)
   local ctx, res = attempt(TRIES, function() return { c = c, calls = calls(4) } end,
      function(ctx) return ctx.c:batch(ctx.calls) end,
      function(ctx) return ctx.c:batch(calls(2)) end)
   if not ctx then return end
   batch_report(res, 4)
   out("nested", outcome)
end

-- A finalizer that raises (unprotected) while the core decodes an answer.
scenarios.gc_error_in_decode = function()
   raw = true
   local ctx, res = attempt(TRIES, function() return { c = purse.new(opts) } end,
      function(ctx) return ctx.c:get_customer{ customerId = UNKNOWN } end,
      function() error("boom from a finalizer", 0) end,
      function(ctx) return ctx.c:last_status() ~= 0 end)
   raw = false
   if not ctx then return end
   out("call", describe(res))
end

function M.run(name)
   require("support.gc_pressure").start(on_finalize)
   scenarios[name]()
   collectgarbage("restart")
   out("DONE", name)
end

return M

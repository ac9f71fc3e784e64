-- luacheck: ignore 241 512
-- Child side of spec/multi_edges_spec.lua (finalizer attacks on the multi machinery): runs one
-- scenario in its own interpreter so a crash fails the spec. The mock is given by R_URL, R_KEY,
-- R_SECRET, R_ACCOUNT. Prints "key=value" lines, then "DONE=<name>".
local purse = require "calypso.purse"
local M = {}
local opts = { key = os.getenv("R_KEY"), secret = os.getenv("R_SECRET"),
               account = os.getenv("R_ACCOUNT"), base_url = os.getenv("R_URL"), timeout = 10 }
local function out(k, v) io.write(k, "=", tostring(v), "\n") io.flush() end
local newproxy = newproxy   -- luacheck: ignore

local attack, fired = nil, 0
local mk
local function fin()
   mk()
   if attack then
      local a = attack
      attack = nil
      fired = fired + 1
      pcall(a)
   end
end
mk = function()
   if newproxy then
      local p = newproxy(true)
      getmetatable(p).__gc = fin
      return p
   end
   return setmetatable({}, { __gc = fin })
end
local function aggressive()
   if _VERSION == "Lua 5.4" then collectgarbage("incremental", 1, 1000, 0)
   else collectgarbage("setpause", 1) collectgarbage("setstepmul", 1000) end
   for _ = 1, 200 do mk() end
end

local scenarios = {}

-- A finalizer inside client:batch drives another multi of the same client whose calls are
-- queued: launch_queued re-stamps and re-signs them with the client's signer mid-batch.
scenarios.poll_other_multi_in_batch = function()
   local c = purse.new(opts)
   local cust = assert(c:create_customer{ email = "fin@example.com" })
   local m = c:multi{ max_in_flight = 1 }
   local ids = {}
   for i = 1, 20 do ids[i] = assert(m:start("get_customer", { customerId = cust.id })) end
   local calls = {}
   for i = 1, 50 do calls[i] = { "get_customer", { customerId = cust.id } } end
   aggressive()
   local bad, tries = 0, 0
   for _ = 1, 50 do
      tries = tries + 1
      attack = function() for _ = 1, 5 do m:poll(0) end end
      local ok, r = pcall(c.batch, c, calls)
      attack = nil
      if not ok then bad = bad + 1 out("batch_error", r) break end
      for i = 1, #calls do if not (r[i].value and r[i].value.id == cust.id) then bad = bad + 1 end end
      if fired > 0 then break end
   end
   if _VERSION == "Lua 5.4" then
      collectgarbage("incremental", 200, 100, 13)
   else
      collectgarbage("setpause", 200)
      collectgarbage("setstepmul", 200)
   end
   local got, t0 = 0, purse.now()
   while m:pending() > 0 and purse.now() - t0 < 20 do m:poll(0.5) end
   for _, res in m:finished() do if res and res.id == cust.id then got = got + 1 end end
   out("fired", fired) out("tries", tries) out("bad", bad) out("multi_ok", got)
   m:close() c:close()
end

-- A finalizer closes the multi (and nests an iterator) while m:finished() hands a result out;
-- the loop then goes on.
scenarios.close_in_finished_step = function()
   local c = purse.new(opts)
   local cust = assert(c:create_customer{ email = "fin2@example.com" })
   aggressive()
   local outcome
   for _ = 1, 100 do
      local m = c:multi()
      for _ = 1, 8 do assert(m:start("get_customer", { customerId = cust.id })) end
      local t0 = purse.now()
      while m:pending() > 0 and purse.now() - t0 < 10 do m:poll(0.5) end
      fired = 0
      local taken = 0
      attack = function()
         local it, st = m:finished(); pcall(it, st)   -- nested step: busy
         m:close()
      end
      local ok, e = pcall(function() for _ in m:finished() do taken = taken + 1 end end)
      attack = nil
      if fired > 0 then outcome = (ok and "ok" or tostring(e)) .. " taken " .. taken break end
      m:close()
   end
   out("fired", fired) out("outcome", outcome)
   c:close()
end

function M.run(name)
   scenarios[name]()
   out("DONE", name)
end
return M

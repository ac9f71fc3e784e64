-- Child side of spec/finalizer_attacks_spec.lua: each scenario
-- runs in its own interpreter so that a crash fails the spec instead of killing the runner.
-- A scenario prints "key=value" lines, then "DONE=<name>". No network is needed: the base URL
-- is a closed loopback port and no scenario sends a request.
local purse = require "calypso.purse"

local M = {}
local function out(k, v) io.write(k, "=", tostring(v), "\n") io.flush() end

-- The attack runs once, from a finalizer (spec/support/gc_pressure.lua), when armed.
local attack
local function on_finalize()
   if attack then attack() end
end

local BASE = "http://127.0.0.1:9/" .. ("p"):rep(200)
local function opts()
   return { key = "k", secret = "s3cr3t", account = "0xabc", base_url = BASE,
            ca_file = "/etc/ssl/certs/ca-certificates.crt" }
end

local scenarios = {}

-- client:batch checks every entry first, then re-reads calls[i] with lua_rawgeti(L, -1, 1)
-- (src/multi.c, the start loop) without checking it is still a table. A finalizer that runs
-- after the check (the results table, a failure's table) replaces the entries.
scenarios.batch_entries_replaced = function()
   local c = purse.new(opts())
   local N = 400
   local calls = {}
   for i = 1, N do calls[i] = { "get_customer", {} } end   -- invalid payloads: nothing is sent
   local fired = 0
   attack = function()
      attack = nil
      fired = fired + 1
      for i = 1, N do calls[i] = 42 end
   end
   local ok, r = pcall(c.batch, c, calls)
   attack = nil
   out("fired", fired)
   out("batch", ok and ("results " .. #r) or ("raised " .. tostring(r)))
end

-- Lua 5.2 runs finalizers only where a GC step starts, and every try allocates alike: shift the
-- collector's phase by a random amount per try, and try more often there.
local TRIES = 3000
local function shift_phase()
   for _ = 1, math.random(0, 64) do local _ = {} end
end

-- client:info() is not guarded: a finalizer run by one of its allocations closes the client,
-- then info reads c->url (NULL after release: lua_pushlstring(NULL, n)) and c->ca_file.
scenarios.info_close = function()
   local fired = 0
   for i = 1, TRIES do
      local c = purse.new(opts())
      shift_phase()
      attack = function()
         attack = nil
         fired = fired + 1
         c:close()
      end
      local ok, r = pcall(c.info, c)
      attack = nil
      if fired > 0 then
         out("tries", i)
         out("info", ok and ("base_url " .. (r.base_url == BASE and "intact" or "GARBAGE"))
                       or ("raised " .. tostring(r)))
         return
      end
   end
   out("tries", "none fired")
end

-- tostring(client): the URL pointer is read before lua_pushfstring, whose GC step (5.1, 5.2,
-- LuaJIT check the collector before formatting) may run a finalizer that closes the client
-- and frees c->url.
scenarios.tostring_close = function()
   local fired = 0
   for i = 1, TRIES do
      local c = purse.new(opts())
      shift_phase()
      attack = function()
         attack = nil
         fired = fired + 1
         c:close()
      end
      local ok, r = pcall(tostring, c)
      attack = nil
      if fired > 0 then
         out("tries", i)
         local fine = ok and (r:find("(closed)", 1, true) or r:find(BASE, 1, true))
         out("tostring", fine and "whole" or ("GARBAGE " .. (tostring(r):gsub("[^%w%p ]", "?")):sub(1, 60)))
         return
      end
   end
   out("tries", "none fired")
end

-- purse.new reads option strings into C pointers and pops them ("still referenced by the opts
-- table"), then allocates (option names, the account's JSON, the userdata) before it copies
-- them. A finalizer that drops them from the table lets the collector free them: the core
-- then copies freed memory into the base URL, the key, the user agent, the HMAC key.
scenarios.new_options_dropped = function()
   local base = "http://127.0.0.1:9/" .. ("b"):rep(300)
   local skip, fired, bad = 0, 0, 0
   attack = nil
   local target
   local function drop()
      if skip > 0 then skip = skip - 1 return end
      attack = nil
      fired = fired + 1
      local o = target
      o.key, o.secret, o.base_url, o.proxy, o.user_agent = nil, nil, nil, nil, nil
      collectgarbage("collect")   -- 5.1-5.3; on 5.4 the aggressive collector frees them anyway
      for _ = 1, 50 do local _ = ("z"):rep(400) .. tostring({}) end   -- reuse the freed blocks
   end
   for i = 1, 300 do
      target = { key = "KEY" .. ("k"):rep(100) .. i, secret = "SECRET" .. ("s"):rep(300) .. i,
                 account = "0xabc", base_url = base .. i,
                 proxy = "http://127.0.0.1:1/" .. ("x"):rep(100) .. i, user_agent = ("u"):rep(150) .. i }
      fired, skip = 0, i % 12   -- the attack lands at a different allocation on each try
      attack = drop
      local ok, c = pcall(purse.new, target)
      attack = nil
      if fired > 0 and ok then
         local u = c:info().base_url
         if u ~= base .. i and u ~= "https://api.calypso.finance" then bad = bad + 1 end
         c:close()
      end
   end
   out("garbage_urls", bad)
end

function M.run(name)
   require("support.gc_pressure").start(on_finalize)
   scenarios[name]()
   collectgarbage("restart")
   out("DONE", name)
end

return M

-- multi_steps.lua: the worst time of one multi step (one m:start, one m:poll(0), taking the
-- finished results) while a cold burst of N calls runs, for N = 10, 50, 200, 1000, against
-- the bundled mock (started here on 127.0.0.1; it stops with this process). A game frame is
-- 16 ms: no step should come near it.
--   make build LUA_VERSION=5.4
--   LUA_CPATH='build/5.4/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
--     lua5.4 bench/multi_steps.lua [core|layer] [max_in_flight] [rounds]
-- core: purse.new(...):multi{ max_in_flight = n } (default: the multi's own default);
-- layer: calypso.new(...):multi{ ... } (retries, deadline and hooks per call).
-- Prints one line per burst size: worst start, worst poll(0), worst take, in ms, the median of
-- `rounds` rounds (default 3) of each worst, and how many calls failed.
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local which = arg[1] or "core"
local max_in_flight = tonumber(arg[2])
local rounds = tonumber(arg[3]) or 3
local server = mock.start{ request_log_size = 0 }
local opts = mock.client_options(server)
local client = which == "layer" and require("calypso").new(opts) or purse.new(opts)
local customer = assert(client:create_customer{ email = "bench@example.com" })
local payload = { customerId = customer.id }

local function median(t)
   table.sort(t)
   return t[math.ceil(#t / 2)]
end

-- One cold burst: a fresh multi (no kept-alive connections), n starts, then frames of
-- poll(0) + take until every call has finished (at most 60 s).
local function burst(n)
   local m = client:multi(max_in_flight and { max_in_flight = max_in_flight } or nil)
   local worst_start, worst_poll, worst_take, failed = 0, 0, 0, 0
   local ids = {}
   for i = 1, n do
      local t0 = purse.now()
      ids[i] = assert(m:start("get_customer", payload))
      worst_start = math.max(worst_start, purse.now() - t0)
   end
   local left, stop = n, purse.now() + 60
   while left > 0 and purse.now() < stop do
      local t0 = purse.now()
      m:poll(0)
      worst_poll = math.max(worst_poll, purse.now() - t0)
      t0 = purse.now()
      if m.finished then
         for _, res in m:finished() do
            left = left - 1
            if res == nil then failed = failed + 1 end
         end
      else -- a multi without finished(): scan every id (as before)
         for i = 1, n do
            if ids[i] and m:done(ids[i]) then
               if m:result(ids[i]) == nil then failed = failed + 1 end
               ids[i] = nil
               left = left - 1
            end
         end
      end
      worst_take = math.max(worst_take, purse.now() - t0)
      purse.sleep(0.001) -- the rest of the frame
   end
   m:close()
   return worst_start, worst_poll, worst_take, failed + left
end

print(("multi step worst times (%s, max_in_flight=%s), ms, median of %d rounds")
   :format(which, tostring(max_in_flight or "default"), rounds))
for _, n in ipairs{ 10, 50, 200, 1000 } do
   local s, p, t, f = {}, {}, {}, 0
   for r = 1, rounds do
      local a, b, c, d = burst(n)
      s[r], p[r], t[r], f = a, b, c, f + d
   end
   print(("burst=%-5d start=%7.3f  poll(0)=%7.3f  take=%7.3f  failed=%d")
      :format(n, median(s) * 1000, median(p) * 1000, median(t) * 1000, f))
end
client:close()
server:stop()

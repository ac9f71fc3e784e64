-- memory.lua: RSS over many sequential calls on one client.
--   lua memory.lua URL KEY SECRET COUNT MAX_SECONDS
-- prints: calls=N seconds=S rss_start_kib=A rss_end_kib=B
-- RSS is read after a warm-up of 10,000 calls (allocator pools, connection
-- and Lua heap settle), then again at the end; both after a full GC.
local purse = require "calypso.purse"
local url, key, secret, count, max_seconds = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])

package.path = "./?.lua;" .. package.path
local rss_kib = require("bench.support").rss_kib

local client = purse.new{ key = key, secret = secret, base_url = url,
                          account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b" }
local payload = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }
for _ = 1, 10000 do assert(client:get_customer(payload)) end
collectgarbage()
collectgarbage()
local start_kib = rss_kib()
local t0 = purse.now()
local done = 0
while done < count and purse.now() - t0 < max_seconds do
   for _ = 1, 1000 do assert(client:get_customer(payload)) end
   done = done + 1000
end
local secs = purse.now() - t0
collectgarbage()
collectgarbage()
print(("calls=%d seconds=%.3f rss_start_kib=%d rss_end_kib=%d"):format(done, secs, start_kib, rss_kib()))

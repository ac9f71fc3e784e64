-- bench/soak.lua: a soak run, not a test. One client makes SOAK_CALLS calls (default
-- 1,000,000) over one kept-alive connection to a private loopback nginx that answers with
-- fixed bodies, and reports RSS at start and end and calls per second. The mix walks the
-- failure paths too: per 32 calls, 28 get_customer answers (200, a customer) and one each of
-- an API error (400 + errorCode), an HTML 503 page, truncated JSON and JSON of the wrong
-- shape; every 1,000 calls also a prepare/finish/failure round in process. RSS growth from
-- the end of a 20,000-call warm-up to the end must stay under 1 MiB (exit status 1 if not).
--
--   make build && lua5.4 bench/soak.lua            (run from the repository root)
--   SOAK_CALLS=200000 SOAK_SECONDS=120 lua5.4 bench/soak.lua
--
-- Bounded: SOAK_CALLS calls or SOAK_SECONDS seconds (default 900), whichever comes first.
-- The nginx runs under `timeout` (SOAK_SECONDS + 60), so it stops by itself even if this
-- script dies; it listens on 127.0.0.1 only. The Lua mock would be the bottleneck (a few
-- thousand calls per second), so the server is nginx with `return 200 '...'` locations.
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local purse = require "calypso.purse"

local CALLS = tonumber(os.getenv("SOAK_CALLS") or "") or 1000000
local SECONDS = tonumber(os.getenv("SOAK_SECONDS") or "") or 900
local WARMUP = math.min(20000, math.floor(CALLS / 10))
local LIMIT_KIB = 1024

local UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local CUSTOMER = '{"id":"' .. UUID .. '","email":"soak@example.com","description":"soak",'
   .. '"externalId":"user-42","blocked":false}'
local API_ERROR = '{"errorCode":"004","message":"Requested object is not found",'
   .. '"traceId":"4a1c2b3d-0000-4000-8000-000000000000"}'
local HTML_503 = "<html><head><title>503 Service Temporarily Unavailable</title></head>"
   .. "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"

local support = require "bench.support"
local rss_kib = support.rss_kib

-- The private nginx: fixed answers for the mix above.
local port = support.free_port()
local P = "/api/v1/customer-purse/"
local server = support.nginx{ port = port, lifetime = SECONDS + 60, http = function()
   return ([[
  default_type application/json;
  server {
    listen 127.0.0.1:%d;
    location = %scustomer/get { return 200 '%s'; }
    location = %stransaction/get { return 400 '%s'; }
    location = %spurse/get-all { default_type text/html; return 503 '%s'; }
    location = %saddress/get { return 200 '{"id":"%s","addr'; }
    location = %scustomer/external/get { return 200 '[1,2,3]'; }
  }]]):format(port, P, CUSTOMER, P, API_ERROR, P, HTML_503, P, UUID, P)
end }
local stop = server.stop

local client = purse.new{ key = "c529e14832b34b74972365cf7bf02430", secret = "b823a6b9ea72408583cef9ec8d67fa52",
                          account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
                          base_url = "http://127.0.0.1:" .. port, timeout = 10 }
local by_id = { customerId = UUID }
local by_tx = { transactionId = UUID }
local by_address = { customerId = UUID, currency = "USDT_TRX" }
local by_external = { externalId = "user-42" }
local counts = { ok = 0, api = 0, http = 0, decode = 0 }

-- One block of 32 calls, each outcome checked.
local function block()
   for _ = 1, 28 do
      local c, msg = client:get_customer(by_id)
      if not c then error(msg) end
   end
   counts.ok = counts.ok + 28
   local _, _, e1 = client:get_transaction(by_tx)
   local _, _, e2 = client:get_purses(by_id)
   local _, _, e3 = client:get_address(by_address)
   local _, _, e4 = client:get_customers_by_external_id(by_external)
   assert(e1 and e1.kind == "api" and e2 and e2.kind == "http" and e3 and e3.kind == "decode"
          and e4 and e4.kind == "decode", "unexpected outcome in the mix")
   counts.api, counts.http, counts.decode = counts.api + 1, counts.http + 1, counts.decode + 2
end

local function in_process()
   local body, sign = assert(client:prepare("get_customer", by_id))
   assert(#sign == 128 and #body > 0)
   assert(client:finish("get_customer", 200, CUSTOMER))
   assert(not client:finish("get_customer", 503, HTML_503))
   assert(not client:failure("get_customer", "timeout", "soak", true))
end

local ok, err = pcall(function()
   local done = 0
   while done < WARMUP do block(); done = done + 32 end
   collectgarbage()
   collectgarbage()
   local rss_start = rss_kib()
   local t0 = purse.now()
   done = 0
   while done < CALLS and purse.now() - t0 < SECONDS do
      for _ = 1, 31 do block() end   -- 992 calls
      in_process()
      done = done + 992
   end
   local secs = purse.now() - t0
   collectgarbage()
   collectgarbage()
   local rss_end = rss_kib()
   local growth = rss_end - rss_start
   print(("soak: %d calls on one client in %.1f s = %.0f calls/s (after a %d-call warm-up)")
      :format(done, secs, done / secs, WARMUP))
   print(("soak: outcomes: %d results, %d api, %d http, %d decode; %d prepare/finish rounds")
      :format(counts.ok, counts.api, counts.http, counts.decode, math.floor(done / 992)))
   print(("soak: RSS %d KiB at start, %d KiB at end: growth %d KiB (limit %d KiB) -> %s")
      :format(rss_start, rss_end, growth, LIMIT_KIB, growth < LIMIT_KIB and "PASS" or "FAIL"))
   if done < CALLS then print(("soak: stopped by the %d s cap before %d calls"):format(SECONDS, CALLS)) end
   return growth < LIMIT_KIB
end)
client:close()
stop()
if not ok then error(err, 0) end
os.exit(err and 0 or 1)

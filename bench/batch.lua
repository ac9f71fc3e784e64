-- batch.lua: 100 calls against a server that answers each after 20 ms.
--   lua batch.lua BASE_URL KEY SECRET ROUNDS
-- prints per round: batch=<ms> (client:batch, 100 in flight) and, once,
-- sequential=<ms> (the same 100 calls one after another, for contrast).
local purse = require "calypso.purse"
local base, key, secret, rounds = arg[1], arg[2], arg[3], tonumber(arg[4])

local client = purse.new{ key = key, secret = secret, base_url = base,
                          account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b" }
local calls = {}
for i = 1, 100 do
   calls[i] = { "get_customer", { customerId = ("3fa85f64-5717-4562-b3fc-%012d"):format(i) } }
end

local function check(results)
   for i = 1, 100 do
      if not (results[i] and results[i].value and results[i].value.id) then
         io.stderr:write("batch: call ", i, " failed: ", tostring(results[i] and results[i].message), "\n")
         os.exit(1)
      end
   end
end

check(client:batch(calls))   -- warm-up: opens the connections
for _ = 1, rounds do
   local t0 = purse.now()
   local results = client:batch(calls)
   local ms = (purse.now() - t0) * 1000
   check(results)
   print(("batch=%.3f"):format(ms))
end
local t0 = purse.now()
for i = 1, 100 do assert(client:get_customer(calls[i][2])) end
print(("sequential=%.3f"):format((purse.now() - t0) * 1000))

-- module.lua: sequential keep-alive calls through calypso.purse (libcurl path).
--   lua module.lua URL KEY SECRET COUNT [CA_FILE]
-- prints: calls=N seconds=S cpu=C (COUNT "-": lockstep, see lockstep.lua)
local purse = require "calypso.purse"
local url, key, secret, count, ca = arg[1], arg[2], arg[3], arg[4], arg[5]

local client = purse.new{ key = key, secret = secret, base_url = url, ca_file = ca,
                          account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b" }
local payload = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }
local get_customer = client.get_customer
local now, clock = purse.now, os.clock

local function burst(n)
   local t0, c0 = now(), clock()
   for i = 1, n do
      local c, msg = get_customer(client, payload)
      if not c then
         io.stderr:write("module: call ", i, " failed: ", msg, "\n")
         os.exit(1)
      end
   end
   io.stdout:write(("calls=%d seconds=%.6f cpu=%.6f\n"):format(n, now() - t0, clock() - c0))
end
require("bench.lockstep")(count, burst)
client:close()

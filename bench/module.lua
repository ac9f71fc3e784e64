-- module.lua: sequential keep-alive calls through calypso.purse (libcurl path).
--   lua module.lua URL KEY SECRET COUNT [CA_FILE]
-- prints: calls=N seconds=S cpu=C (COUNT "-": lockstep, see lockstep.lua)
local purse = require "calypso.purse"
local url, key, secret, count, ca = arg[1], arg[2], arg[3], arg[4], arg[5]

local client = purse.new{ key = key, secret = secret, base_url = url, ca_file = ca,
                          account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b" }
local payload = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }
local get_customer = client.get_customer

require("bench.lockstep")(count, function(n)
   for i = 1, n do
      local c, msg = get_customer(client, payload)
      if not c then return i, msg end
   end
end, purse.now)
client:close()

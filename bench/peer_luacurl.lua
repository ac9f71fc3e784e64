-- peer_luacurl.lua: what a Lua user would write today with Debian's packages:
-- luacurl (Debian lua-curl: one reused easy handle) + luaossl HMAC-SHA512 +
-- lua-cjson. Debian builds lua-curl for 5.1/5.2 only, so it runs on LuaJIT.
--   luajit peer_luacurl.lua URL KEY SECRET COUNT [CA_FILE]
-- prints: calls=N seconds=S cpu=C (COUNT "-": lockstep, see lockstep.lua)
local curl = require "curl"
local peer = require "bench.peer_common"
local url, key, secret, ca = arg[1], arg[2], arg[3], arg[5]

local chunks
local easy = curl.easy_init()
easy:setopt(curl.OPT_URL, url .. "/api/v1/customer-purse/customer/get")
easy:setopt(curl.OPT_POST, 1)
easy:setopt(curl.OPT_NOSIGNAL, 1)
easy:setopt(curl.OPT_WRITEFUNCTION, function(s) chunks[#chunks + 1] = s return #s end)
if ca then easy:setopt(curl.OPT_CAINFO, ca) end

require("bench.lockstep")(arg[4], function(n)
   for i = 1, n do
      local body, sign = peer.signed_envelope(secret)
      chunks = {}
      easy:setopt(curl.OPT_HTTPHEADER, { "Key: " .. key, "Sign: " .. sign, "Content-Type: application/json",
                                         "Accept: application/json", "Expect:" })
      easy:setopt(curl.OPT_POSTFIELDS, body)
      easy:perform()
      local ok, why = peer.customer(table.concat(chunks))
      if not ok then return i, why end
   end
end, peer.now)

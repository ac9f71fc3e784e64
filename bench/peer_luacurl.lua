-- peer_luacurl.lua: what a Lua user would write today with Debian's packages:
-- luacurl (Debian lua-curl: one reused easy handle) + luaossl HMAC-SHA512 +
-- lua-cjson. Debian builds lua-curl for 5.1/5.2 only, so it runs on LuaJIT.
--   luajit peer_luacurl.lua URL KEY SECRET COUNT [CA_FILE]
-- prints: calls=N seconds=S cpu=C (COUNT "-": lockstep, see lockstep.lua)
local curl = require "curl"
local hmac = require "openssl.hmac"
local cjson = require "cjson"
local socket = require "socket"
local url, key, secret, ca = arg[1], arg[2], arg[3], arg[5]

local function hex(s)
   return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local chunks
local easy = curl.easy_init()
easy:setopt(curl.OPT_URL, url .. "/api/v1/customer-purse/customer/get")
easy:setopt(curl.OPT_POST, 1)
easy:setopt(curl.OPT_NOSIGNAL, 1)
easy:setopt(curl.OPT_WRITEFUNCTION, function(s) chunks[#chunks + 1] = s return #s end)
if ca then easy:setopt(curl.OPT_CAINFO, ca) end

local function burst(count)
   local wall0, c0 = socket.gettime(), os.clock()
   for i = 1, count do
      -- plain Lua has no millisecond clock: luasocket's gettime is what users reach for
      local body = cjson.encode{ account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
                                 timestamp = math.floor(socket.gettime() * 1000),
                                 payload = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" } }
      local sign = hex(hmac.new(secret, "sha512"):final(body))
      chunks = {}
      easy:setopt(curl.OPT_HTTPHEADER, { "Key: " .. key, "Sign: " .. sign, "Content-Type: application/json",
                                         "Accept: application/json", "Expect:" })
      easy:setopt(curl.OPT_POSTFIELDS, body)
      easy:perform()
      local ok, res = pcall(cjson.decode, table.concat(chunks))
      if not ok or type(res) ~= "table" or not res.id then
         io.stderr:write("peer: call ", i, " failed\n")
         os.exit(1)
      end
   end
   io.stdout:write(("calls=%d seconds=%.6f cpu=%.6f\n"):format(count, socket.gettime() - wall0, os.clock() - c0))
end
require("bench.lockstep")(arg[4], burst)

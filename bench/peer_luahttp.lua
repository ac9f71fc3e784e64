-- peer_luahttp.lua: the other peer a Lua user could write with Debian's packages:
-- lua-http (pure Lua HTTP over cqueues) + luaossl HMAC-SHA512 + lua-cjson, with one
-- connection kept alive by hand (http.client.connect, a new stream per request; the simpler
-- http.request would connect anew every call). Debian packages lua-http's lpeg_patterns
-- for 5.1/5.2 only, so it runs on LuaJIT.
--   luajit peer_luahttp.lua URL KEY SECRET COUNT [CA_FILE]
-- prints: calls=N seconds=S cpu=C (COUNT "-": lockstep, see lockstep.lua)
local client = require "http.client"
local new_headers = require("http.headers").new
local hmac = require "openssl.hmac"
local cjson = require "cjson"
local socket = require "socket"
local url, key, secret, ca = arg[1], arg[2], arg[3], arg[5]
local scheme, host, port = url:match("^(https?)://([^:/]+):(%d+)")
local PATH = "/api/v1/customer-purse/customer/get"

local function hex(s)
   return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local ctx
if ca then
   ctx = require("http.tls").new_client_context()
   ctx:getStore():add(ca)
   ctx:setVerify(require("openssl.ssl.context").VERIFY_PEER)
end
local conn = assert(client.connect{ host = host, port = tonumber(port), tls = scheme == "https",
                                    ctx = ctx, version = 1.1, sendname = host })

local function burst(count)
   local wall0, c0 = socket.gettime(), os.clock()
   for i = 1, count do
      local body = cjson.encode{ account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
                                 timestamp = math.floor(socket.gettime() * 1000),
                                 payload = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" } }
      local h = new_headers()
      h:append(":method", "POST")
      h:append(":scheme", scheme)
      h:append(":authority", host .. ":" .. port)
      h:append(":path", PATH)
      h:append("key", key)
      h:append("sign", hex(hmac.new(secret, "sha512"):final(body)))
      h:append("content-type", "application/json")
      h:append("accept", "application/json")
      h:append("content-length", tostring(#body))
      local stream = assert(conn:new_stream())
      assert(stream:write_headers(h, false, 30))
      assert(stream:write_chunk(body, true, 30))
      local rh = assert(stream:get_headers(30))
      local rbody = assert(stream:get_body_as_string(30))
      stream:shutdown()
      local ok, res = pcall(cjson.decode, rbody)
      if rh:get(":status") ~= "200" or not ok or type(res) ~= "table" or not res.id then
         io.stderr:write("peer: call ", i, " failed\n")
         os.exit(1)
      end
   end
   io.stdout:write(("calls=%d seconds=%.6f cpu=%.6f\n"):format(count, socket.gettime() - wall0, os.clock() - c0))
end
require("bench.lockstep")(arg[4], burst)
conn:close()

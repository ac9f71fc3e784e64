-- peer_luahttp.lua: the other peer a Lua user could write with Debian's packages:
-- lua-http (pure Lua HTTP over cqueues) + luaossl HMAC-SHA512 + lua-cjson, with one
-- connection kept alive by hand (http.client.connect, a new stream per request; the simpler
-- http.request would connect anew every call). Debian packages lua-http's lpeg_patterns
-- for 5.1/5.2 only, so it runs on LuaJIT.
--   luajit peer_luahttp.lua URL KEY SECRET COUNT [CA_FILE]
-- prints: calls=N seconds=S cpu=C (COUNT "-": lockstep, see lockstep.lua)
local client = require "http.client"
local new_headers = require("http.headers").new
local peer = require "bench.peer_common"
local url, key, secret, ca = arg[1], arg[2], arg[3], arg[5]
local scheme, host, port = url:match("^(https?)://([^:/]+):(%d+)")
local PATH = "/api/v1/customer-purse/customer/get"

local ctx
if ca then
   ctx = require("http.tls").new_client_context()
   ctx:getStore():add(ca)
   ctx:setVerify(require("openssl.ssl.context").VERIFY_PEER)
end
local conn = assert(client.connect{ host = host, port = tonumber(port), tls = scheme == "https",
                                    ctx = ctx, version = 1.1, sendname = host })

require("bench.lockstep")(arg[4], function(n)
   for i = 1, n do
      local body, sign = peer.signed_envelope(secret)
      local h = new_headers()
      h:append(":method", "POST")
      h:append(":scheme", scheme)
      h:append(":authority", host .. ":" .. port)
      h:append(":path", PATH)
      h:append("key", key)
      h:append("sign", sign)
      h:append("content-type", "application/json")
      h:append("accept", "application/json")
      h:append("content-length", tostring(#body))
      local stream = assert(conn:new_stream())
      assert(stream:write_headers(h, false, 30))
      assert(stream:write_chunk(body, true, 30))
      local rh = assert(stream:get_headers(30))
      local rbody = assert(stream:get_body_as_string(30))
      stream:shutdown()
      local status = rh:get(":status")
      if status ~= "200" then return i, "HTTP " .. tostring(status) end
      local ok, why = peer.customer(rbody)
      if not ok then return i, why end
   end
end, peer.now)
conn:close()

-- openresty.lua: content handler for the OpenResty rows of `make bench`.
--   GET /loop?mode=transport|raw&n=N&port=P
-- runs N sequential keep-alive calls from this nginx worker to the bench server
-- on 127.0.0.1:P and answers "calls=N seconds=S cpu=C" (cpu: this worker's CPU
-- time, which only this loop uses).
--   transport: calypso.transport.ngx (core prepare -> cosocket -> core finish)
--   raw:       the cosocket loop a user would write by hand with the same signing
--              (cjson.encode + client:sign + send + read status/headers/body + cjson.decode;
--              client:sign is the transport's own signer: pad states keyed once)
local purse = require "calypso.purse"
local cjson = require "cjson"

local KEY, SECRET = "c529e14832b34b74972365cf7bf02430", "b823a6b9ea72408583cef9ec8d67fa52"
local ACCOUNT = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b"
local CUSTOMER_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local PATH = "/api/v1/customer-purse/customer/get"

local args = ngx.req.get_uri_args()
local mode, n, port = args.mode, tonumber(args.n), tonumber(args.port)

local client = purse.new{ key = KEY, secret = SECRET, account = ACCOUNT, base_url = "http://127.0.0.1:" .. port }

local function raw_call(payload)
   ngx.update_time()
   local body = cjson.encode{ account = ACCOUNT, timestamp = math.floor(ngx.now() * 1000), payload = payload }
   local sock = ngx.socket.tcp()
   sock:settimeouts(10000, 30000, 30000)
   assert(sock:connect("127.0.0.1", port))
   assert(sock:send{ "POST ", PATH, " HTTP/1.1\r\nHost: 127.0.0.1\r\nKey: ", KEY,
                     "\r\nSign: ", client:sign(body),
                     "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ",
                     #body, "\r\n\r\n", body })
   local status = assert(sock:receive("*l"))
   local len
   while true do
      local line = assert(sock:receive("*l"))
      if line == "" then break end
      local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then len = tonumber(v) end
   end
   local data = assert(sock:receive(len))
   sock:setkeepalive(60000, 16)
   local res = cjson.decode(data)
   assert(status:find(" 200 ", 1, true) and res.id, "raw call failed")
   return res
end

local transport
if mode == "transport" then
   transport = require("calypso.transport.ngx").new(client, {})
end
local payload = { customerId = CUSTOMER_ID }

local t0, c0 = purse.now(), os.clock()
for _ = 1, n do
   if transport then
      assert(transport:request("get_customer", payload))
   else
      raw_call(payload)
   end
end
local secs, cpu = purse.now() - t0, os.clock() - c0
client:close()
ngx.say(("calls=%d seconds=%.6f cpu=%.6f"):format(n, secs, cpu))

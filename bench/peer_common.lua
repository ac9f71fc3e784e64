-- peer_common.lua: what both peer scripts do the same way, as a Lua user would with
-- luaossl, lua-cjson and luasocket: build and sign the envelope, check the answer.
local hmac = require "openssl.hmac"
local cjson = require "cjson"
local socket = require "socket"

local M = {}

--- Wall clock in seconds: plain Lua has no millisecond clock, luasocket's is what users reach for.
M.now = socket.gettime

local function hex(s)
   return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local GET_CUSTOMER = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }

--- The body of a call (default: get_customer's payload) and its Sign header value.
function M.signed_envelope(secret, payload)
   local body = cjson.encode{ account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
                              timestamp = math.floor(M.now() * 1000),
                              payload = payload or GET_CUSTOMER }
   return body, hex(hmac.new(secret, "sha512"):final(body))
end

--- The customer (a table) when text decodes to one, else nil and why.
function M.customer(text)
   local ok, res = pcall(cjson.decode, text)
   if ok and type(res) == "table" and res.id then return res end
   return nil, "not a customer: " .. tostring(text):sub(1, 80)
end

return M

-- fuzz/common.lua: what the fuzz targets share: the module, clients that never touch the
-- network (their base_url is a closed port and nothing here performs I/O), the contract of a
-- failure triple, and small readers over the fuzz bytes.
local purse = require "calypso.purse"

local M = { purse = purse }

M.SECRET = "fuzz-secret-7f3a9c1e"
M.ACCOUNT = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b"

local KINDS = { invalid = true, api = true, http = true, decode = true, timeout = true,
                connect = true, resolve = true, tls = true, network = true, too_large = true }

function M.client(extra)
   local o = { key = "fuzz-key", secret = M.SECRET, account = M.ACCOUNT,
               base_url = "http://127.0.0.1:9", timeout = 1 }
   for k, v in pairs(extra or {}) do o[k] = v end
   return purse.new(o)
end

-- Operation names in a fixed order, then paths as client:call takes them.
M.ops = {}
for name in pairs(purse.operations) do M.ops[#M.ops + 1] = name end
table.sort(M.ops)
M.ops[#M.ops + 1] = "customer/get"
M.ops[#M.ops + 1] = "/api/v1/customer-purse/customer/create"

--- Checks the (nil, message, err) contract (README, "Error handling"). input: the bytes that
-- played the server (headers, body); when they hold the secret themselves, an echo of
-- server text (err.date, err.api_message, ...) is not a leak, so the secret checks are off.
function M.check_failure(res, msg, err, kinds, input)
   local echoes_secret = input ~= nil and input:find(M.SECRET, 1, true) ~= nil
   assert(res == nil, "a failure with a result")
   assert(type(msg) == "string", "message is not a string")
   assert(type(err) == "table", "err is not a table")
   assert(KINDS[err.kind], "unknown kind " .. tostring(err.kind))
   if kinds then assert(kinds[err.kind], "unexpected kind " .. err.kind) end
   assert(err.message == msg, "err.message differs from message")
   assert(msg:sub(1, 9) == "calypso: ", "message without the calypso: prefix")
   assert(not msg:find("[%z\r\n]"), "message is not one line: " .. string.format("%q", msg))
   assert(echoes_secret or not msg:find(M.SECRET, 1, true), "the secret in a message")
   assert(type(err.retryable) == "boolean" and type(err.sent) == "boolean", "retryable/sent not booleans")
   if err.body ~= nil then assert(type(err.body) == "string" and #err.body <= 256, "err.body over 256 bytes") end
   for k, v in pairs(err) do
      assert(type(k) == "string", "err has a non-string key")
      if type(v) == "string" and k ~= "body" and not echoes_secret then
         assert(not v:find(M.SECRET, 1, true), "the secret in err." .. k)
      end
   end
end

--- A reader over the fuzz bytes: byte(), bytes(n), rest().
function M.reader(s)
   local i = 1
   local r = {}
   function r.byte()
      local b = s:byte(i)
      i = i + 1
      return b or 0
   end
   function r.bytes(n)
      local part = s:sub(i, i + n - 1)
      i = i + n
      return part
   end
   function r.rest()
      local part = s:sub(i)
      i = #s + 1
      return part
   end
   function r.done() return i > #s end
   return r
end

return M

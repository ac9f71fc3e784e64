-- fuzz/finish.lua: the finish path. Bytes -> (operation, HTTP status, Date, Retry-After, body)
-- -> client:finish, on a plain client and on one with exact_amounts and the smallest
-- max_response_size; the body also goes through purse.decode. Contract: a table, or the
-- failure triple with a known kind; never a raise.
local common = require "common"
local purse = common.purse

local plain = common.client()
local exact = common.client{ exact_amounts = true, max_response_size = 1024 }

function fuzz_one(s)
   local r = common.reader(s)
   local op = common.ops[r.byte() % #common.ops + 1]
   local status = r.byte() * 256 + r.byte()           -- 0..65535, most of them nonsense
   local flags = r.byte()
   local date = flags & 1 ~= 0 and r.bytes(r.byte() % 64) or nil
   local retry_after = flags & 2 ~= 0 and r.bytes(r.byte() % 32) or nil
   local client = flags & 4 ~= 0 and exact or plain
   local body = r.rest()
   local res, msg, err = client:finish(op, status, body, date, retry_after)
   if res == nil then
      common.check_failure(res, msg, err, nil, s)
      assert(err.status == (status > 0 and status or nil) or err.kind == "too_large",
             "err.status is not the status given")
      if status >= 200 and status < 300 then
         assert(err.kind == "decode" or err.kind == "too_large", "a 2xx failed as " .. err.kind)
      else
         assert(err.kind == "api" or err.kind == "http" or err.kind == "too_large",
                "a non-2xx failed as " .. err.kind)
      end
   else
      assert(type(res) == "table", "finish returned a " .. type(res))
      assert(status >= 200 and status < 300, "a result for HTTP " .. status)
   end
   local v, m, e = purse.decode(body, flags & 8 ~= 0)
   if v == nil then
      common.check_failure(v, m, e, { decode = true }, body)
   end
end

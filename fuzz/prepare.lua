-- fuzz/prepare.lua: payload validation and encoding. The bytes are a little program that
-- builds a payload (strings with any bytes, integers and doubles from raw bits, NaN and
-- infinities, null, nested and cyclic tables, sparse arrays, mixed keys, odd key types,
-- functions, metatables whose every metamethod raises), then client:prepare(op, payload).
-- Contract: either nil, message, err with kind "invalid", or (body, sign, path, writes) where
-- body is JSON whose envelope carries the account and the payload, and sign is the
-- HMAC-SHA512 of exactly those bytes under the client's secret. Never a raise: prepare reads
-- payloads raw, so no metamethod can run.
local common = require "common"
local purse = common.purse
local cjson = require("cjson").new()

local client = common.client()
local FIELDS = { "customerId", "id", "email", "description", "externalId", "currency",
                 "transactionId", "pageNumber", "pageSize", "sort", "properties",
                 "currencyFilter", "transactionStateFilter", "equals", "in", "notIn",
                 "specified", "contains" }
local UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local function raise() error("metamethod ran", 0) end
local HOSTILE_MT = { __index = raise, __newindex = raise, __pairs = raise, __len = raise,
                     __eq = raise, __lt = raise, __le = raise, __tostring = raise,
                     __concat = raise, __call = raise, __name = "hostile" }

function fuzz_one(s)
   local r = common.reader(s)
   local op = common.ops[r.byte() % #common.ops + 1]
   local stack = { {} }
   local steps = 0
   while not r.done() and steps < 400 do
      steps = steps + 1
      local top = stack[#stack]
      local b = r.byte()
      local code = b % 20
      local function push(v) if #stack < 64 then stack[#stack + 1] = v end end
      local function pop() if #stack > 1 then return table.remove(stack) end return nil end
      if code == 0 then push({})
      elseif code == 1 then push(r.bytes(r.byte() % 40))
      elseif code == 2 then local raw = r.bytes(8); if #raw == 8 then push((string.unpack("<i8", raw))) end
      elseif code == 3 then local raw = r.bytes(8); if #raw == 8 then push((string.unpack("<d", raw))) end
      elseif code == 4 then push(b >= 128)
      elseif code == 5 then push(purse.null)
      elseif code == 6 then push(({ 0 / 0, 1 / 0, -1 / 0, math.maxinteger, math.mininteger,
                                    2 ^ 53, 2 ^ 53 + 1, -0.0, 0.1, 1e308, 5e-324 })[r.byte() % 11 + 1])
      elseif code == 7 then push(UUID)
      elseif code == 8 then        -- t[field] = v
         local v = pop()
         if type(stack[#stack]) == "table" and v ~= nil then
            rawset(stack[#stack], FIELDS[r.byte() % #FIELDS + 1], v)
         end
      elseif code == 9 then        -- t[k] = v with a key from the bytes
         local v = pop()
         if type(stack[#stack]) == "table" and v ~= nil then rawset(stack[#stack], r.bytes(r.byte() % 12), v) end
      elseif code == 10 then       -- append
         local v = pop()
         local t = stack[#stack]
         if type(t) == "table" and v ~= nil then rawset(t, rawlen(t) + 1, v) end
      elseif code == 11 then       -- sparse or odd integer key
         local v = pop()
         local t = stack[#stack]
         if type(t) == "table" and v ~= nil then rawset(t, r.byte() - 64, v) end
      elseif code == 12 then       -- float, boolean or table key
         local v = pop()
         local t = stack[#stack]
         local keys = { 1.5, true, {}, -0.5, 2 ^ 63 }
         if type(t) == "table" and v ~= nil then rawset(t, keys[r.byte() % #keys + 1], v) end
      elseif code == 13 then       -- a cycle
         if type(top) == "table" then rawset(top, "self", top) end
      elseif code == 14 then       -- a table deeper than anything sane
         local t = {}
         local inner = t
         for _ = 1, r.byte() do local n = {}; rawset(inner, "a", n); inner = n end
         push(t)
      elseif code == 15 then       -- metamethods that raise
         if type(top) == "table" then setmetatable(top, HOSTILE_MT) end
      elseif code == 16 then push(print)
      elseif code == 17 then push(io.stdout)
      elseif code == 18 then push(coroutine.create(print))
      else                          -- a big string
         push(string.rep(r.bytes(1), r.byte() * 257))
      end
   end
   local payload = stack[1]
   if s:byte(1) and s:byte(1) >= 250 then payload = stack[#stack] end   -- sometimes not a table
   local body, sign, path, writes = client:prepare(op, payload)
   if body == nil then
      common.check_failure(body, sign, path, { invalid = true })
      assert(path.sent == false, "an invalid payload marked as sent")
      return
   end
   assert(type(body) == "string" and type(sign) == "string" and #sign == 128, "prepare results malformed")
   assert(type(path) == "string" and path:sub(1, 1) == "/", "path malformed")
   assert(type(writes) == "boolean", "writes is not a boolean")
   assert(purse.verify(common.SECRET, body, sign), "sign is not the HMAC of body")
   assert(sign == purse.sign(common.SECRET, body), "sign differs from purse.sign")
   local ok, env = pcall(cjson.decode, body)
   assert(ok and type(env) == "table", "body is not JSON: " .. tostring(env))
   assert(env.account == common.ACCOUNT, "account missing from the envelope")
   assert(math.type(env.timestamp) == "integer" or env.timestamp == math.floor(env.timestamp), "timestamp")
   assert(type(env.payload) == "table", "payload missing from the envelope")
   -- and the C decoder reads back what the C encoder wrote
   local v, m = purse.decode(body)
   assert(v ~= nil, "purse.decode refused prepare's body: " .. tostring(m))
end

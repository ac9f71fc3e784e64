-- fuzz/seeds.lua: writes the seed corpus fuzz/corpus/<target>/ (run from the repository root:
-- lua5.4 fuzz/seeds.lua). The files are committed; rerun after changing a target's layout.
local function write(target, name, bytes)
   os.execute("mkdir -p fuzz/corpus/" .. target)
   local f = assert(io.open("fuzz/corpus/" .. target .. "/" .. name, "wb"))
   f:write(bytes)
   f:close()
end

local customer = '{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","email":"a@example.com","blocked":false}'
local tx = '{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","amount":25.5,"currency":"USDT_TRX",'
   .. '"transactionState":"CONFIRMED","createdDate":"2025-07-30T10:53:50.356Z"}'
local page = '{"result":[' .. tx .. '],"page":0,"size":20,"total":1,"totalElements":1}'
local api_error = '{"errorCode":"004","message":"Requested object is not found","traceId":"4a1c"}'
local big = '{"id":12345678901234567890,"amount":123456789012345678901234.567890,"n":-9223372036854775808}'

-- finish: op byte, status (2 bytes, big endian), flags (1 date, 2 retry-after, 4 exact, 8 exact decode)
local function finish(op, status, flags, body, date, ra)
   local s = string.char(op, status // 256, status % 256, flags)
   if flags & 1 ~= 0 then s = s .. string.char(#date) .. date end
   if flags & 2 ~= 0 then s = s .. string.char(#ra) .. ra end
   return s .. body
end
write("finish", "customer", finish(1, 200, 0, customer))
write("finish", "transaction-exact", finish(8, 200, 4 + 8, tx))
write("finish", "page", finish(2, 200, 0, page))
write("finish", "purses-array", finish(6, 200, 0, '[{"id":"x","address":"T9yD","currency":"ETH"}]'))
write("finish", "purses-wrapped", finish(6, 200, 0, '{"purses":[{"id":"x"}]}'))
write("finish", "api-error", finish(3, 400, 1, api_error, "Wed, 30 Jul 2025 10:53:50 GMT"))
write("finish", "html-503", finish(0, 503, 2, "<html><body>503</body></html>", nil, "7"))
write("finish", "bigints", finish(4, 200, 8, big))
write("finish", "nested", finish(1, 200, 0, string.rep('{"a":', 63) .. "1" .. string.rep("}", 63)))
write("finish", "nulls", finish(1, 200, 0, '{"a":null,"b":[null,1,null],"c":{"d":null}}'))
write("finish", "utf8", finish(1, 200, 0, '{"email":"\u{e9}\u{1F600}\\u00e9\\ud83d\\ude00"}'))

-- webhook: secret length, secret, mode, body
local event = '{"id":1,"requestId":"r-1","createdDate":"2025-10-30T14:08:39.96068","level":"INFO",'
   .. '"service":"CUSTOMER_PURSE","eventType":"CUSTOMER_PURSE_DEPOSIT_CONFIRMED",'
   .. '"data":{"customerId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","amount":25.5,"currency":"USDT_TRX"}}'
local secret = "whsec-0123456789"
write("webhook", "signed-event", string.char(#secret) .. secret .. string.char(0) .. event)
write("webhook", "signed-exact", string.char(#secret) .. secret .. string.char(16) .. event)
write("webhook", "one-digit-off", string.char(#secret) .. secret .. string.char(1 + 4 * 7) .. event)
write("webhook", "sig-from-body", string.char(#secret) .. secret .. string.char(2) .. string.rep("a", 128) .. event)
write("webhook", "no-sign", string.char(0) .. string.char(3) .. event)
write("webhook", "array", string.char(#secret) .. secret .. string.char(0) .. "[1,2]")

-- prepare: op byte, then the program (see fuzz/prepare.lua for the codes)
local function prog(op, ...) return string.char(op, ...) end
write("prepare", "get-customer", prog(3, 7, 8, 0))                   -- { customerId = UUID }
write("prepare", "create-with-strings", prog(0, 1, 5, 104, 101, 108, 108, 111, 8, 2))
write("prepare", "filter-in", prog(7, 7, 8, 0, 0, 1, 3, 69, 84, 72, 10, 8, 14, 8, 12))
write("prepare", "cycle", prog(11, 0, 13, 8, 0))
write("prepare", "nan", prog(11, 6, 0, 8, 0))
write("prepare", "hostile-mt", prog(11, 15, 7, 8, 0))
write("prepare", "sparse", prog(11, 0, 7, 11, 70, 8, 0))
write("prepare", "deep", prog(11, 14, 200, 8, 0))
write("prepare", "bigint", prog(11, 6, 3, 8, 0))
print("fuzz/corpus written")

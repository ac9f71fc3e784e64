-- rtt_cases.lua: the cases of the bench's RTT section (bench/rtt.lua), shared by the plain-Lua
-- contenders (bench/rtt_client.lua) and the one inside nginx (bench/rtt_nginx.lua).
--   require("bench.rtt_cases")(case, n, max_seconds, api) -> lines
-- api.new() -> a client c with c.call(op, payload) -> true | nil, why; c.batch(calls) -> true |
-- nil, why; c.close(); api.now() -> seconds; api.accepts() -> connections the RTT proxy accepted
-- so far on this contender's listener (asked outside the timed part).
-- Every case does one untimed warm-up first (a read: the connection a running service has), then
-- at most n timed samples, and stops starting samples after max_seconds. Each sample is one
-- line "ms=<wall ms> conns=<connections the proxy accepted during it>".
--   read     get_customer
--   write    block_customer
--   signup   create_customer -> get_address -> find_transactions -> get_transaction
--   cold     a fresh client, client:batch of 100 get_customer (no warm-up)
--   warm     a fresh client, one untimed batch of 100, then the timed one
local CUSTOMER_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
local TRANSACTION_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

local BATCH = {}
for i = 1, 100 do
   BATCH[i] = { "get_customer", { customerId = ("3fa85f64-5717-4562-b3fc-%012d"):format(i) } }
end

local function must(ok, why, what)
   if not ok then error((what or "call") .. " failed: " .. tostring(why), 0) end
end

local function signup(c, i)
   local id = c.call("create_customer", { email = ("user%d@example.com"):format(i),
                                          externalId = ("user-%d"):format(i) })
   must(id, "no customer", "create_customer")
   id = type(id) == "table" and id.id or CUSTOMER_ID
   must(c.call("get_address", { customerId = id, currency = "USDT_TRX" }))
   must(c.call("find_transactions", { customerId = id, pageNumber = 0, pageSize = 20 }))
   must(c.call("get_transaction", { transactionId = TRANSACTION_ID }))
end

return function(case, n, max_seconds, api)
   local now, accepts = api.now, api.accepts
   local lines = {}
   local started = now()
   local c
   if case == "read" or case == "write" or case == "signup" then
      c = api.new()
      local ok, why = c.call("get_customer", { customerId = CUSTOMER_ID })
      must(ok, why, "warm-up get_customer")
   elseif case ~= "cold" and case ~= "warm" then
      error("rtt_cases: unknown case " .. tostring(case), 0)
   end
   for i = 1, n do
      if i > 1 and now() - started > max_seconds then break end
      local t0, a0
      if case == "cold" or case == "warm" then
         local b = api.new()
         if case == "warm" then must(b.batch(BATCH)) end
         a0 = accepts()
         t0 = now()
         must(b.batch(BATCH))
         lines[#lines + 1] = ("ms=%.3f"):format((now() - t0) * 1000)
         b.close()
      else
         a0 = accepts()
         t0 = now()
         if case == "read" then
            must(c.call("get_customer", { customerId = CUSTOMER_ID }))
         elseif case == "write" then
            must(c.call("block_customer", { customerId = CUSTOMER_ID }))
         else
            signup(c, i)
         end
         lines[#lines + 1] = ("ms=%.3f"):format((now() - t0) * 1000)
      end
      lines[#lines] = lines[#lines] .. (" conns=%d"):format(accepts() - a0)
   end
   if c then c.close() end
   return lines
end

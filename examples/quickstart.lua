-- Quickstart: create a customer, get a deposit address, see a deposit arrive,
-- list the customer's transactions.
--
-- By default it starts the bundled local Calypso mock (127.0.0.1, a free port)
-- and makes the deposit happen there. With CALYPSO_API_KEY, CALYPSO_API_SECRET
-- and CALYPSO_ACCOUNT set (and optionally CALYPSO_BASE_URL) it talks to the
-- real API instead, and you send the deposit yourself.
local calypso = require "calypso"

local real = os.getenv("CALYPSO_API_KEY") ~= nil
local mock, client

-- Runtime failures come back as nil, message, err (err.kind says what kind).
local function check(res, msg, err)
   if res == nil then
      io.stderr:write(msg, " [kind=", err.kind, "]\n")
      if mock then mock:stop() end
      os.exit(1)
   end
   return res
end

if real then
   client = calypso.new{ timeout = 15 }
   print("using the real Calypso API")
else
   mock = require("calypso.mock").start()
   client = calypso.new(require("calypso.mock").client_options(mock))
   print("using the local Calypso mock at " .. mock.url)
end

local customer = check(client:create_customer{
   email = "alice@example.com", description = "quickstart customer", externalId = "user-42",
})
print(("customer   %s  email=%s blocked=%s"):format(customer.id, customer.email, tostring(customer.blocked)))

local purse = check(client:get_address{ customerId = customer.id, currency = "USDT_TRX" })
print(("address    %s  (purse %s, USDT_TRX)"):format(purse.address, purse.id))

if mock then
   local tx = mock:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = 25.5, state = "CONFIRMED" }
   print(("deposit    %s  25.5 USDT_TRX arrives (mock)"):format(tx.id))
else
   print("send a USDT_TRX deposit to the address above, then run this again")
end

local page = check(client:find_transactions{ customerId = customer.id, pageNumber = 0, pageSize = 20 })
print(("transactions: %d in %d page(s)"):format(page.totalElements, page.total))
for _, tx in ipairs(page.result) do
   print(("  %s  %s %s  %s/%s  credited=%s"):format(tx.createdDate, tostring(tx.amount), tx.currency,
      tx.transactionState, tx.complianceState, tostring(tx.translationToAccountCompleted)))
end

client:close()
if mock then mock:stop() end
print("quickstart: done")

-- Webhook receiver: verify Calypso's signed webhooks, parse them, and confirm the terminal
-- ones with transaction/get, as the Calypso docs advise (webhooks are hints).
--
-- By default it runs a demo against the bundled mock: it listens on 127.0.0.1 (a free port),
-- subscribes that URL at the mock, makes a deposit go MEM_POOL_FOUND -> CONFIRMED -> credited,
-- handles the webhooks that arrive and exits.
--
-- With CALYPSO_WEBHOOK_SECRET set (the subscription's secretKey, not the API secret) it serves
-- forever on 127.0.0.1:CALYPSO_WEBHOOK_PORT (default 8081) instead, confirming with the API
-- credentials from CALYPSO_API_KEY, CALYPSO_API_SECRET and CALYPSO_ACCOUNT. Put it behind your
-- TLS-terminating proxy; it answers 200 to every verified event (also unknown types) and 401
-- to anything whose Sign does not match, so that Calypso never resends a forged body.
--
-- Written with luasocket so that it runs anywhere; in OpenResty see examples/openresty.
local socket = require "socket"
local calypso = require "calypso"
local webhook = require "calypso.webhook"

local MAX_BODY = 1024 * 1024

-- Reads one HTTP request (head and Content-Length body) from an accepted socket.
local function read_request(conn)
   conn:settimeout(10)
   local line = conn:receive("*l")
   if not line then return nil end
   local method, path = line:match("^(%u+) (%S+) HTTP/1%.%d$")
   local headers = {}
   for _ = 1, 100 do
      local l = conn:receive("*l")
      if not l then return nil end
      if l == "" then break end
      local name, value = l:match("^([^:]+):%s*(.-)%s*$")
      if name then headers[name:lower()] = value end
   end
   local length = tonumber(headers["content-length"] or "0")
   if not method or not length or length > MAX_BODY then return nil end
   local body = length > 0 and conn:receive(length) or ""
   return { method = method, path = path, headers = headers, body = body }
end

local function answer(conn, status, text)
   conn:send(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
      .. "Connection: close\r\n\r\n%s"):format(status, text, #text, text))
   conn:close()
end

-- Event ids already handled: Calypso resends until it gets a 200, so expect duplicates.
-- (A real receiver keeps these in its database, in the same transaction as the effect.)
local seen = {}

-- Handles one request; returns the HTTP status to answer with.
local function handle(req, secret, client)
   if req.method ~= "POST" then return 405, "POST only" end
   -- verify before parse: parse refuses a missing or wrong Sign before decoding anything
   local event, msg, err = webhook.parse(req.body, req.headers["sign"], secret,
                                         { exact_amounts = true })
   if not event then
      print("refused: " .. msg)
      return err.kind == "signature" and 401 or 400, err.kind
   end
   if seen[event.id] then return 200, "duplicate" end
   seen[event.id] = true
   local known = webhook.known(event)
   if not known then
      print(("event %s: %s (not a type this SDK knows; stored for later)"):format(
         tostring(event.id), event.eventType))
      return 200, "ok"
   end
   local data = event.data
   print(("event %s: %s  customer %s  amount %s %s  blocked=%s"):format(tostring(event.id),
      event.eventType, tostring(data.customerId), tostring(data.amount), tostring(data.currency),
      tostring(data.customerBlocked)))
   if known.terminal and data.transactionId then
      -- the webhook is a hint: the state to book is the one transaction/get returns
      local tx, tx_msg = client:get_transaction(data.transactionId)
      if tx then
         print(("  confirmed: %s %s, %s, compliance %s, credited=%s"):format(tx.amount,
            tx.currency, tx.transactionState, tx.complianceState,
            tostring(tx.translationToAccountCompleted)))
      else
         -- answer non-200 so that Calypso resends later, when the API can confirm
         print("  could not confirm yet: " .. tx_msg)
         seen[event.id] = nil
         return 503, "retry later"
      end
   end
   return 200, "ok"
end

local function serve_one(listener, secret, client)
   local conn = listener:accept()
   if not conn then return false end
   local req = read_request(conn)
   if not req then
      answer(conn, 400, "bad request")
   else
      answer(conn, handle(req, secret, client))
   end
   return true
end

local secret = os.getenv("CALYPSO_WEBHOOK_SECRET")
if secret and secret ~= "" then
   local port = tonumber(os.getenv("CALYPSO_WEBHOOK_PORT") or "8081")
   local listener = assert(socket.bind("127.0.0.1", port))
   local client = calypso.new{ timeout = 10 }
   print(("receiving Calypso webhooks on http://127.0.0.1:%d/"):format(port))
   while true do serve_one(listener, secret, client) end
end

-- Demo against the bundled mock.
local mock = require "calypso.mock"
local server = mock.start()
local client = calypso.new(mock.client_options(server))
local listener = assert(socket.bind("127.0.0.1", 0))
listener:settimeout(5)
local _, port = listener:getsockname()
secret = "demo-webhook-secret"
local sub = server:webhooks{ url = ("http://127.0.0.1:%d/calypso"):format(port), key = "demo-key",
                             secret = secret }
print(("mock at %s delivers to http://127.0.0.1:%d/calypso (subscription %s)"):format(
   server.url, port, sub.requestId))

local customer = assert(client:create_customer{ email = "webhooks@example.com" })
local tx = server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = "25.5",
                           state = "MEM_POOL_FOUND" }
server:update_transaction{ transactionId = tx.id, state = "CONFIRMED" }
server:update_transaction{ transactionId = tx.id, translationToAccountCompleted = true }
for _ = 1, 3 do
   if not serve_one(listener, secret, client) then
      io.stderr:write("no webhook arrived within 5 s\n")
      server:stop()
      os.exit(1)
   end
end
listener:close()
client:close()
server:stop()

-- The handlers of examples/openresty/nginx.conf.
--
-- One calypso client per nginx worker, created on first use (not in init_by_lua: the
-- CALYPSO_* variables reach the workers through `env` directives). Inside a content handler
-- calypso.new's default transport ("auto") goes over cosockets: the worker keeps serving
-- other requests while this one waits for Calypso.
local calypso = require("calypso")
local webhook = require("calypso.webhook")
local cjson = require("cjson.safe")

local M = {}

local client

local function get_client()
   if not client then
      -- amounts as the server's decimal text: never book money through a double
      client = calypso.new{ timeout = 10, exact_amounts = true }
   end
   return client
end

local function reply(status, value)
   ngx.status = status
   ngx.header["Content-Type"] = "application/json"
   ngx.say(cjson.encode(value))
   return ngx.exit(status)
end

-- A failed call: the message goes to the error log (it never holds the secret), the caller
-- gets the stable kind; 503 when trying again later may help.
local function failed(msg, err)
   ngx.log(ngx.ERR, msg)
   return reply(err.retryable and 503 or 502, { error = err.kind, code = err.code })
end

--- POST /customers {externalId, email?, currency?}: finds or creates the customer and
-- returns a deposit address.
function M.deposit_address()
   ngx.req.read_body()
   local req = cjson.decode(ngx.req.get_body_data() or "")
   if type(req) ~= "table" or type(req.externalId) ~= "string" or req.externalId == "" then
      return reply(400, { error = "externalId (a string) is required" })
   end
   local c = get_client()
   -- find-or-create: creates at most once, and looks up again after a lost create answer
   local customer, msg, err = c:ensure_customer{ externalId = req.externalId,
                                                 email = type(req.email) == "string" and req.email or nil }
   if not customer then return failed(msg, err) end
   local currency = type(req.currency) == "string" and req.currency or "USDT_TRX"
   local p
   p, msg, err = c:get_address{ customerId = customer.id, currency = currency }
   if not p then return failed(msg, err) end
   return reply(200, { customerId = customer.id, currency = currency, address = p.address })
end

-- Runs in an ngx.timer after the webhook was answered (timers have cosockets too):
-- webhooks are hints, the state to book is the one transaction/get returns. A real receiver
-- stores the event first and retries the confirmation until it succeeds.
local function confirm(premature, transaction_id, event_id)
   if premature then return end
   local tx, msg = get_client():get_transaction{ transactionId = transaction_id }
   if tx then
      ngx.log(ngx.NOTICE, "calypso event ", event_id, " confirmed: ", tx.transactionState, " ",
              tx.amount, " ", tx.currency)
   else
      ngx.log(ngx.ERR, "calypso event ", event_id, " not confirmed: ", msg)
   end
end

--- POST /calypso/webhook: calypso.webhook.parse checks Sign (HMAC-SHA512 of the raw body
-- with the subscription's secretKey) before it decodes anything; the answer is 200 once the
-- event is taken, and repeats of an event id are ignored (Calypso resends until it gets a 200).
function M.webhook()
   local secret = os.getenv("CALYPSO_WEBHOOK_SECRET")
   if not secret or secret == "" then
      ngx.log(ngx.ERR, "CALYPSO_WEBHOOK_SECRET is not set")
      return reply(500, { error = "not configured" })
   end
   ngx.req.read_body()
   local event, msg, err = webhook.parse(ngx.req.get_body_data() or "", ngx.req.get_headers()["Sign"],
                                         secret, { exact_amounts = true })
   if not event then
      ngx.log(ngx.WARN, msg)
      return reply(err.kind == "signature" and 401 or 400, { error = err.kind })
   end
   local first = ngx.shared.calypso_webhooks:add(tostring(event.id), true, 7 * 24 * 3600)
   if first then
      ngx.log(ngx.NOTICE, "calypso event ", tostring(event.id), " ", event.eventType)
      local known = webhook.known(event)
      if known and known.terminal and type(event.data.transactionId) == "string" then
         ngx.timer.at(0, confirm, event.data.transactionId, tostring(event.id))
      end
   end
   return reply(200, { ok = true, duplicate = not first })
end

return M

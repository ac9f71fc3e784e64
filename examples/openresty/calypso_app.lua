-- The handlers of examples/openresty/nginx.conf.
--
-- One calypso client per nginx worker, created on first use (not in init_by_lua: the
-- CALYPSO_* variables reach the workers through `env` directives). Inside a content handler
-- calypso.new's default transport ("auto") goes over cosockets: the worker keeps serving
-- other requests while this one waits for Calypso.
local calypso = require("calypso")
local purse = require("calypso.purse")
local cjson = require("cjson.safe")

local M = {}

local client

local function get_client()
   if not client then
      client = calypso.new{ timeout = 10 }
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
   local found, msg, err = c:get_customers_by_external_id{ externalId = req.externalId }
   if not found then return failed(msg, err) end
   local customer = found.customers[1]
   if not customer then
      customer, msg, err = c:create_customer{ externalId = req.externalId,
                                              email = type(req.email) == "string" and req.email or nil }
      if not customer then return failed(msg, err) end
   end
   local currency = type(req.currency) == "string" and req.currency or "USDT_TRX"
   local p
   p, msg, err = c:get_address{ customerId = customer.id, currency = currency }
   if not p then return failed(msg, err) end
   return reply(200, { customerId = customer.id, currency = currency, address = p.address })
end

--- POST /calypso/webhook: checks Sign (HMAC-SHA512 of the raw body with the webhook
-- subscription's secretKey) before parsing, answers 200 once the event is taken, and
-- ignores repeats of an event id (Calypso resends until it gets a 200).
function M.webhook()
   local secret = os.getenv("CALYPSO_WEBHOOK_SECRET")
   if not secret or secret == "" then
      ngx.log(ngx.ERR, "CALYPSO_WEBHOOK_SECRET is not set")
      return reply(500, { error = "not configured" })
   end
   ngx.req.read_body()
   local body = ngx.req.get_body_data()
   local sign = ngx.req.get_headers()["Sign"]
   if not body or type(sign) ~= "string" or not purse.verify(secret, body, sign) then
      return reply(401, { error = "bad signature" })
   end
   local event = purse.decode(body)
   if type(event) ~= "table" or event.id == nil then
      return reply(400, { error = "not a Calypso event" })
   end
   local first = ngx.shared.calypso_webhooks:add(tostring(event.id), true, 7 * 24 * 3600)
   if first then
      -- Hand the event to your own code here (a queue, a database). Before acting on a
      -- deposit, confirm its final state with client:get_transaction{ transactionId = ... }.
      ngx.log(ngx.NOTICE, "calypso event ", tostring(event.id), " ", tostring(event.eventType))
   end
   return reply(200, { ok = true, duplicate = not first })
end

return M

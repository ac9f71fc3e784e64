-- calypso.webhook: verify and parse the webhooks Calypso POSTs to your URL.
--
--   local webhook = require "calypso.webhook"
--   local event, msg, err = webhook.parse(raw_body, headers["Sign"], secret)
--
-- The signature is HMAC-SHA512 over the raw body, hex, keyed with the subscription's
-- secretKey (not the API secret). parse verifies before it decodes anything, with the clients'
-- own decoder (integers stay integers, exact amounts on request).
local purse = require "calypso.purse"

local type, error, format = type, error, string.format
local verify, decode = purse.verify, purse.decode

local M = {}

--- The six customer purse event types, each with what it means for a deposit:
-- `state` is the transactionState it reports (nil for EXPIRED, which is about the address),
-- `terminal` marks the ones after which the docs advise confirming with get_transaction.
M.types = {
   CUSTOMER_PURSE_EXPIRED = { terminal = false },
   CUSTOMER_PURSE_MEM_POOL_FOUND = { state = "MEM_POOL_FOUND", terminal = false },
   CUSTOMER_PURSE_PENDING_COMPLIANCE = { state = "PENDING_COMPLIANCE_CHECK", terminal = false },
   CUSTOMER_PURSE_COMPLIANCE_DECLINED = { state = "DECLINED", terminal = true },
   CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE = { state = "CONFIRMED", terminal = true },
   CUSTOMER_PURSE_TRANSLATION_TO_ACCOUNT_COMPLETED = { state = "CONFIRMED", terminal = true },
}

local function check_string(fn, name, v)
   if type(v) ~= "string" then
      error(format("calypso.webhook.%s: %s must be a string (got %s)", fn, name, type(v)), 3)
   end
end

--- True when `sign_header` is the hex HMAC-SHA512 of `raw_body` under `secret` (constant-time,
-- either hex case). A missing (nil) or malformed header is false; a non-string secret or body
-- raises.
function M.verify(secret, raw_body, sign_header)
   check_string("verify", "secret", secret)
   check_string("verify", "raw_body", raw_body)
   if type(sign_header) ~= "string" then return false end
   return verify(secret, raw_body, sign_header) == true
end

local function failure(kind, detail)
   local msg = "calypso: webhook: " .. detail
   return nil, msg, { kind = kind, message = msg }
end

--- Verifies, then decodes a webhook body. Returns the event table as sent ({ id, requestId,
-- createdDate, level, service, eventType, data, ... }; unknown event types and fields pass
-- through intact), or nil, message, err with err.kind "signature" (missing or wrong Sign) or
-- "decode" (not a JSON object with an eventType string and a data object).
-- opts: { exact_amounts = true } returns amounts as decimal strings, as the client option does.
function M.parse(raw_body, sign_header, secret, opts)
   check_string("parse", "raw_body", raw_body)
   check_string("parse", "secret", secret)
   if opts ~= nil and type(opts) ~= "table" then
      error("calypso.webhook.parse: opts must be a table (got " .. type(opts) .. ")", 2)
   end
   if type(sign_header) ~= "string" or sign_header == "" then
      return failure("signature", "missing Sign header")
   end
   if not verify(secret, raw_body, sign_header) then
      return failure("signature", "Sign header does not match the body")
   end
   local event, msg = decode(raw_body, opts and opts.exact_amounts == true or false)
   if event == nil then
      return failure("decode", "body is not JSON: " .. tostring(msg):gsub("^calypso: decode: ", ""))
   end
   if type(event) ~= "table" or event[1] ~= nil then
      return failure("decode", "body is not a JSON object")
   end
   if type(event.eventType) ~= "string" then
      return failure("decode", "event has no eventType string")
   end
   if type(event.data) ~= "table" then
      return failure("decode", "event has no data object")
   end
   return event
end

--- The entry of M.types for an event (or an event type name); nil for types this version
-- does not know (they still parse: act on the ones you know, log the rest).
function M.known(event)
   local name = type(event) == "table" and event.eventType or event
   return M.types[name]
end

return M

---@meta calypso.webhook
-- LuaCATS annotations for calypso.webhook (docs/reference.md, "calypso.webhook").

---@class calypso.WebhookEvent
---@field id integer de-duplicate on it
---@field requestId string
---@field createdDate string
---@field level string
---@field service string
---@field eventType string
---@field data table

---@class calypso.WebhookType
---@field state string? the transactionState it reports (nil for CUSTOMER_PURSE_EXPIRED)
---@field terminal boolean confirm with get_transaction after a terminal one

---@class calypso.WebhookParseOptions
---@field exact_amounts boolean? amounts as decimal strings

---@class calypso.webhook
local webhook = {}

--- The six customer purse event types.
---@type table<string, calypso.WebhookType>
webhook.types = {}

--- Constant-time check of the Sign header (false when missing or malformed).
---@param secret string the subscription's secretKey
---@param raw_body string
---@param sign_header string?
---@return boolean
function webhook.verify(secret, raw_body, sign_header) end

--- Verifies, then decodes. Fails with kind "signature" or "decode".
---@param raw_body string
---@param sign_header string?
---@param secret string
---@param opts calypso.WebhookParseOptions?
---@return calypso.WebhookEvent? event
---@return string? message
---@return calypso.Error? err
function webhook.parse(raw_body, sign_header, secret, opts) end

--- webhook.types[event.eventType] (an event or a type name), or nil for unknown types.
---@param event calypso.WebhookEvent|string
---@return calypso.WebhookType?
function webhook.known(event) end

return webhook

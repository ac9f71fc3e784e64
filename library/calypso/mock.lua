---@meta calypso.mock
-- LuaCATS annotations for calypso.mock (docs/reference.md, "calypso.mock"; docs/mock.md).

---@class calypso.mock.Options
---@field host string? ("127.0.0.1")
---@field port integer? (0: a free one)
---@field key string?
---@field secret string?
---@field account string?
---@field lifetime number? seconds (3600, at most 18 h)
---@field request_log_size integer? (200; 0 to 100000)
---@field log boolean? request log on stderr
---@field allow_non_loopback boolean?
---@field tls { certificate: string, key: string }? serve HTTPS (needs luasec)
---@field lua string? the interpreter (default: the running one)

--- server:deposit's argument.
---@class calypso.mock.DepositArgs
---@field customerId string
---@field currency string
---@field amount number|string?
---@field state string?
---@field addressFrom string?
---@field transactionHash string?
---@field translationToAccountCompleted boolean?

--- server:webhooks's argument.
---@class calypso.mock.WebhooksArgs
---@field url string?
---@field key string?
---@field secret string?
---@field requestId string?
---@field retry_delays number[]?
---@field timeout number?
---@field clear boolean?

---@class calypso.mock
local mock = {}

--- Starts a mock in its own process; returns its handle once it listens.
---@param opts calypso.mock.Options?
---@return calypso.mock.Server
function mock.start(opts) end

--- { key, secret, account, base_url } for calypso.new or purse.new.
---@param server calypso.mock.Server
---@return calypso.Options
function mock.client_options(server) end

--- A running mock (mock.start). Every method but stop raises on a stopped mock.
---@class calypso.mock.Server
---@field url string
---@field port integer
---@field tls boolean
---@field key string
---@field secret string
---@field account string
local Server = {}

---@param args calypso.mock.DepositArgs
---@return calypso.Transaction
function Server:deposit(args) end

---@param args { transactionId: string, state: string?, translationToAccountCompleted: boolean? }
---@return calypso.Transaction
function Server:update_transaction(args) end

---@param args { mode: string, count: integer?, [string]: any }
---@return { ok: boolean, queued: integer }
function Server:fault(args) end

---@param args { delay: number?, clock_skew_ms: number?, max_page_size: integer? }?
---@return table config
function Server:config(args) end

---@return table[]
function Server:requests() end

---@return { customers: calypso.Customer[] }
function Server:customers() end

---@return { endpoints: { path: string, methods: string[], summary: string }[] }
function Server:endpoints() end

---@param args calypso.mock.WebhooksArgs
---@return table
function Server:webhooks(args) end

---@param args { eventType: string, level: string?, data: table?, purseId: string? }
---@return { queued: integer }
function Server:emit_webhook(args) end

---@return table[]
function Server:deliveries() end

function Server:reset() end

--- Stops the mock and waits for its process. Safe to call twice.
---@return true
function Server:stop() end

return mock

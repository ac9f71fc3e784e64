---@meta calypso
-- LuaCATS annotations for calypso, the Lua layer (docs/reference.md, "calypso").
-- Never loaded at run time: point lua-language-server's workspace.library at library/.

---@class calypso.NgxOptions
---@field pool_size integer? connections kept per pool (1-10000)
---@field keepalive_timeout number? seconds an idle pooled connection is kept
---@field pool string? a pool name prefix (the server and trust mode are always added)

---@class calypso.LuaOptions: calypso.Options
---@field max_retries integer? transient retries after the first attempt (2; 0-100)
---@field retry boolean? false: no transient retries (true)
---@field deadline number? seconds for the whole call (timeout * (max_retries + 1))
---@field backoff_base number? seconds (0.5)
---@field backoff_max number? seconds (8)
---@field heal_clock_skew boolean? on API error 011, learn the offset and retry once (true)
---@field on_event fun(ev: calypso.Event)? called once per attempt
---@field hook_bodies boolean? put payload and result in the events (false)
---@field transport "auto"|"curl"|"ngx"|nil ("auto")
---@field blocking_fallback boolean? inside nginx without cosockets, block on libcurl (false)
---@field ngx_options calypso.NgxOptions?

--- One attempt, as the on_event hook sees it.
---@class calypso.Event
---@field op string method name, or the path given to call
---@field path string the request path
---@field attempt integer 1, 2, ... within the call
---@field ok boolean
---@field duration number seconds
---@field transport "curl"|"ngx"|nil
---@field final boolean no attempt follows
---@field status integer?
---@field kind calypso.ErrorKind?
---@field code string?
---@field trace_id string?
---@field message string?
---@field retry "retry"|"heal"|nil
---@field reason string?
---@field delay number? seconds waited before the next attempt
---@field payload table? with hook_bodies only
---@field result any with hook_bodies only

---@class calypso.LuaInfo: calypso.Info
---@field max_retries integer
---@field retry boolean
---@field deadline number
---@field transport "auto"|"curl"|"ngx"

--- The error object the page iterators raise: err's fields; tostring gives the message.
---@class calypso.Failure: calypso.Error

---@class calypso.EnsureCustomerPayload
---@field externalId string non-empty
---@field email string?
---@field description string?

---@class calypso
local calypso = {}

--- Creates a Lua layer client: purse.new's options (key, secret, account, base_url also from
--- CALYPSO_* environment variables) plus the layer's own.
---@param opts calypso.LuaOptions?
---@return calypso.Client
function calypso.new(opts) end

--- The method table of Lua layer clients.
---@type calypso.Client
calypso.Client = {}

--- purse.sign.
---@param secret string
---@param body string
---@return string hex
function calypso.sign(secret, body) end

--- purse.verify.
---@param secret string
---@param body string
---@param signature string
---@return boolean
function calypso.verify(secret, body, signature) end

--- purse.decode.
---@param json_text string
---@param exact_amounts boolean?
---@return any value
---@return string? message
---@return calypso.Error? err
function calypso.decode(json_text, exact_amounts) end

---@type lightuserdata
calypso.null = nil

---@type table<calypso.Operation, calypso.OperationInfo>
calypso.operations = {}

---@type string
calypso._VERSION = ""

--- A Lua layer client: the core's methods with retries, hooks and transports. Core methods it
--- does not wrap (prepare, prepare_http, finish, failure, sign, deadline, last_status)
--- are reachable unchanged.
---@class calypso.Client: calypso.purse.Client
---@field core calypso.purse.Client the wrapped core client
local Client = {}

---@param payload calypso.CreateCustomerPayload?
---@return calypso.Customer? customer
---@return string? message
---@return calypso.Error? err
function Client:create_customer(payload) end

---@param payload calypso.CustomerIdPayload
---@return calypso.Customer? customer
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, customerId: string): calypso.Customer?, string?, calypso.Error?
function Client:get_customer(payload) end

---@param payload calypso.ExternalIdPayload
---@return calypso.CustomerList? result
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, externalId: string): calypso.CustomerList?, string?, calypso.Error?
function Client:get_customers_by_external_id(payload) end

---@param payload calypso.UpdateCustomerPayload
---@return calypso.Customer? customer
---@return string? message
---@return calypso.Error? err
function Client:update_customer(payload) end

---@param payload calypso.CustomerIdPayload
---@return calypso.Customer? customer
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, customerId: string): calypso.Customer?, string?, calypso.Error?
function Client:block_customer(payload) end

---@param payload calypso.CustomerIdPayload
---@return calypso.Customer? customer
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, customerId: string): calypso.Customer?, string?, calypso.Error?
function Client:unblock_customer(payload) end

---@param payload calypso.AddressPayload
---@return calypso.Address? address
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, customerId: string, currency: string): calypso.Address?, string?, calypso.Error?
function Client:get_address(payload) end

---@param payload calypso.CustomerIdPayload
---@return calypso.Purse[]? purses
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, customerId: string): calypso.Purse[]?, string?, calypso.Error?
function Client:get_purses(payload) end

---@param payload calypso.TransactionIdPayload
---@return calypso.Transaction? tx
---@return string? message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, transactionId: string): calypso.Transaction?, string?, calypso.Error?
function Client:get_transaction(payload) end

---@param payload calypso.FindTransactionsPayload
---@return calypso.TransactionPage? page
---@return string? message
---@return calypso.Error? err
function Client:find_transactions(payload) end

--- Any operation by path; known paths get their operation's retry policy, others are writes.
---@param path string
---@param payload table?
---@return any result
---@return string? message
---@return calypso.Error? err
function Client:call(path, payload) end

--- Every transaction of every page, lazily. A failure raises a calypso.Failure.
---@param query calypso.FindTransactionsPayload|string a payload or a customer id
---@return fun(): calypso.Transaction?
function Client:transactions(query) end

--- Every non-empty page, lazily. A failure raises a calypso.Failure.
---@param query calypso.FindTransactionsPayload|string a payload or a customer id
---@return fun(): calypso.TransactionPage?
function Client:pages(query) end

--- Find-or-create by externalId. how: "found", "created" or "recovered"; on failure the
--- second value is the message.
---@param fields calypso.EnsureCustomerPayload
---@return calypso.Customer? customer
---@return "found"|"created"|"recovered"|string how_or_message
---@return calypso.Error? err
---@overload fun(self: calypso.Client, externalId: string): calypso.Customer?, string, calypso.Error?
function Client:ensure_customer(fields) end

--- Calls concurrently, results in order: curl multi, or light threads inside nginx. No retries.
---@param calls calypso.BatchCall[]
---@param max_in_flight integer?
---@return calypso.BatchResult[]
function Client:batch(calls, max_in_flight) end

--- A multi whose calls get the policy of a single call (retries, deadline, skew healing,
--- on_event per attempt); start takes the positional forms: m:start("get_customer", id).
---@param opts { max_in_flight: integer? }?
---@return calypso.purse.Multi
function Client:multi(opts) end

---@param ms number?
---@return integer ms
function Client:clock_offset(ms) end

---@return calypso.LuaInfo
function Client:info() end

--- Closes the core client. Idempotent.
function Client:close() end

return calypso

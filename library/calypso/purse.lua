---@meta calypso.purse
-- LuaCATS annotations for calypso.purse, the C core (docs/reference.md, "calypso.purse").
-- Never loaded at run time: point lua-language-server's workspace.library at library/.

---@alias calypso.ErrorKind
---| "invalid"     # the payload was refused before any I/O
---| "api"         # a non-2xx answer whose JSON body has an errorCode
---| "http"        # a non-2xx answer without a usable Calypso error body
---| "decode"      # a 2xx answer whose body is not the expected JSON
---| "timeout"     # the whole call took longer than timeout
---| "connect"     # no TCP connection could be made
---| "resolve"     # the host name could not be resolved
---| "tls"         # the TLS handshake or certificate verification failed
---| "network"     # the connection broke after the request was (maybe) sent
---| "too_large"   # the response body passed max_response_size
---| "unavailable" # Lua layer: no transport may run here
---| "signature"   # calypso.webhook.parse: missing or wrong Sign

--- The third return value of every failed call.
---@class calypso.Error
---@field kind calypso.ErrorKind
---@field message string the one-line message (also the second return value)
---@field op string? the method name, or the path given to call
---@field status integer? HTTP status, when a response arrived
---@field code string? Calypso errorCode ("004", ...), for kind "api"
---@field api_message string? the server's own message, for kind "api"
---@field trace_id string? Calypso traceId, when the error body has one
---@field date string? the response's Date header
---@field retry_after string? the response's Retry-After header
---@field body string? the first 256 bytes of a body that was not usable JSON
---@field retryable boolean? true when the failure is transient by nature
---@field sent boolean? false when the request provably never reached a server
---@field attempts integer? Lua layer: attempts made, retries included
---@field after_lookup "absent"|"failed"|nil ensure_customer: how the lookup after a lost create went

---@class calypso.Options
---@field key string public API key (Key header); calypso.new also reads CALYPSO_API_KEY
---@field secret string API secret; calypso.new also reads CALYPSO_API_SECRET
---@field account string merchant account id (0x...); calypso.new also reads CALYPSO_ACCOUNT
---@field base_url string? default "https://api.calypso.finance"; calypso.new also reads CALYPSO_BASE_URL
---@field timeout number? seconds for the whole call (30)
---@field connect_timeout number? seconds to connect (10)
---@field ca_file string? PEM bundle to verify the server with (default: the system store)
---@field proxy string? proxy URL (environment proxies are ignored)
---@field user_agent string? appended to calypso-purse/<version>
---@field max_response_size integer? larger bodies fail with too_large (8 MiB)
---@field insecure_skip_tls_verify boolean? turns certificate and host name checks off (tests only)
---@field exact_amounts boolean? amounts come back as decimal strings

---@class calypso.Info
---@field base_url string
---@field key string
---@field user_agent string
---@field timeout number
---@field connect_timeout number
---@field max_response_size integer
---@field exact_amounts boolean
---@field insecure_skip_tls_verify boolean
---@field ca_file string? only when set
---@field proxy boolean whether a proxy is set (never its URL)

---@class calypso.Customer
---@field id string
---@field email string?
---@field description string?
---@field externalId string?
---@field blocked boolean

---@class calypso.CustomerList
---@field customers calypso.Customer[]

---@class calypso.Address
---@field id string the purse id
---@field address string

---@class calypso.Purse
---@field id string
---@field address string
---@field currency string
---@field state string

---@class calypso.Transaction
---@field id string
---@field amount number|string a decimal string with exact_amounts
---@field addressFrom string?
---@field currency string
---@field transactionHash string?
---@field transactionState string
---@field complianceState string?
---@field translationToAccountCompleted boolean?
---@field createdDate string

---@class calypso.TransactionPage
---@field result calypso.Transaction[]
---@field page integer
---@field size integer
---@field total integer the number of pages
---@field totalElements integer

---@class calypso.CreateCustomerPayload
---@field email string?
---@field description string?
---@field externalId string?

---@class calypso.UpdateCustomerPayload
---@field id string the customer id (UUID)
---@field email string?
---@field description string?
---@field externalId string?

---@class calypso.CustomerIdPayload
---@field customerId string UUID

---@class calypso.ExternalIdPayload
---@field externalId string

---@class calypso.AddressPayload
---@field customerId string UUID
---@field currency string e.g. "USDT_TRX"

---@class calypso.TransactionIdPayload
---@field transactionId string UUID

---@class calypso.StringFilter
---@field equals string?
---@field notEquals string?
---@field specified boolean?
---@field in string[]? non-empty
---@field notIn string[]? non-empty
---@field contains string?
---@field doesNotContain string?

---@class calypso.EnumFilter
---@field equals string?
---@field notEquals string?
---@field specified boolean?
---@field in string[]? non-empty
---@field notIn string[]? non-empty

---@class calypso.FindTransactionsPayload
---@field customerId string UUID
---@field currencyFilter calypso.StringFilter?
---@field transactionStateFilter calypso.EnumFilter?
---@field pageNumber integer? 0-based
---@field pageSize integer?
---@field sort string? "ASC" or "DESC"
---@field properties string? one field name

---@alias calypso.Operation
---| "create_customer"
---| "get_customer"
---| "get_customers_by_external_id"
---| "update_customer"
---| "block_customer"
---| "unblock_customer"
---| "get_address"
---| "get_purses"
---| "get_transaction"
---| "find_transactions"

---@class calypso.OperationInfo
---@field path string relative to /api/v1/customer-purse/
---@field writes boolean a resend could apply it twice
---@field returns_list boolean

--- One entry of client:batch's calls: { op, payload }.
---@class calypso.BatchCall
---@field [1] calypso.Operation|string a method name or a path as for call
---@field [2] table? the payload

--- One entry of client:batch's results.
---@class calypso.BatchResult
---@field value any the result, on success
---@field message string? on failure
---@field err calypso.Error? on failure

---@class calypso.purse
local purse = {}

--- Creates a core client. Unknown option names and wrong types raise.
---@param opts calypso.Options
---@return calypso.purse.Client
function purse.new(opts) end

--- Lowercase hex HMAC-SHA512 of body, as in the Sign header.
---@param secret string
---@param body string
---@return string hex
function purse.sign(secret, body) end

--- Constant-time check of a hex signature (either case).
---@param secret string
---@param body string
---@param signature string
---@return boolean
function purse.verify(secret, body, signature) end

--- The clients' JSON decoder, for text that did not come through a client.
---@param json_text string
---@param exact_amounts boolean?
---@return any value
---@return string? message
---@return calypso.Error? err
function purse.decode(json_text, exact_amounts) end

--- Seconds on a monotonic clock.
---@return number
function purse.now() end

--- Blocks the calling thread (0 to 86400 seconds). Not for nginx handlers.
---@param seconds number
function purse.sleep(seconds) end

--- The table that drives the ten methods.
---@type table<calypso.Operation, calypso.OperationInfo>
purse.operations = {}

--- A JSON null item of an array (the same value as cjson.null).
---@type lightuserdata
purse.null = nil

--- The library version.
---@type string
purse._VERSION = ""

--- A core client (purse.new). Failures return nil, message, err.
---@class calypso.purse.Client
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
function Client:get_customer(payload) end

---@param payload calypso.ExternalIdPayload
---@return calypso.CustomerList? result
---@return string? message
---@return calypso.Error? err
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
function Client:block_customer(payload) end

---@param payload calypso.CustomerIdPayload
---@return calypso.Customer? customer
---@return string? message
---@return calypso.Error? err
function Client:unblock_customer(payload) end

---@param payload calypso.AddressPayload
---@return calypso.Address? address
---@return string? message
---@return calypso.Error? err
function Client:get_address(payload) end

---@param payload calypso.CustomerIdPayload
---@return calypso.Purse[]? purses
---@return string? message
---@return calypso.Error? err
function Client:get_purses(payload) end

---@param payload calypso.TransactionIdPayload
---@return calypso.Transaction? tx
---@return string? message
---@return calypso.Error? err
function Client:get_transaction(payload) end

---@param payload calypso.FindTransactionsPayload
---@return calypso.TransactionPage? page
---@return string? message
---@return calypso.Error? err
function Client:find_transactions(payload) end

--- Any operation by path (relative to /api/v1/customer-purse/ or absolute). A write.
---@param path string
---@param payload table?
---@return any result
---@return string? message
---@return calypso.Error? err
function Client:call(path, payload) end

--- Runs the calls concurrently over curl multi; results in order. Blocks.
---@param calls calypso.BatchCall[]
---@param max_in_flight integer? 1 to 1024 (128)
---@return calypso.BatchResult[]
function Client:batch(calls, max_in_flight) end

--- A multi: at most max_in_flight calls (1-1024, default 16) on the wire, the rest queued.
---@param opts { max_in_flight: integer? }?
---@return calypso.purse.Multi
function Client:multi(opts) end

--- Validates, builds and signs the envelope for a transport of your own.
---@param op calypso.Operation|string a method name or a path
---@param payload table?
---@return string? body nil for an invalid payload
---@return string sign_or_message
---@return string|calypso.Error path_or_err
---@return boolean? writes
function Client:prepare(op, payload) end

--- The whole signed HTTP/1.1 request in one string.
---@param op calypso.Operation|string
---@param payload table?
---@param head string fixed header lines joined by CRLF, no final CRLF
---@return string? request nil for an invalid payload
---@return boolean|string writes_or_message
---@return calypso.Error? err
function Client:prepare_http(op, payload, head) end

--- Turns an HTTP answer into what the method would have returned.
---@param op calypso.Operation|string
---@param status integer
---@param body string
---@param date string?
---@param retry_after string?
---@return any result
---@return string? message
---@return calypso.Error? err
function Client:finish(op, status, body, date, retry_after) end

--- A transport failure in the shape of the libcurl path's.
---@param op calypso.Operation|string
---@param kind "timeout"|"connect"|"resolve"|"tls"|"network"|"too_large"
---@param detail string
---@param sent boolean
---@param status integer?
---@param date string?
---@param retry_after string?
---@return nil
---@return string message
---@return calypso.Error err
function Client:failure(op, kind, detail, sent, status, date, retry_after) end

--- The Sign of body with the client's secret (keyed once).
---@param body string
---@return string hex
function Client:sign(body) end

--- The client's settings; never the secret.
---@return calypso.Info
function Client:info() end

--- Gets or sets the milliseconds added to the local clock for signed timestamps.
---@param ms number?
---@return integer ms
function Client:clock_offset(ms) end

--- Gets, sets (a purse.now() time) or clears (nil) the deadline of the calls that follow.
---@param t number?
---@return number? t
function Client:deadline(t) end

--- The HTTP status of the last call over libcurl (0 before any).
---@return integer
function Client:last_status() end

--- Frees the connection and wipes the key state. Idempotent.
function Client:close() end

--- The non-blocking step API (client:multi()).
---@class calypso.purse.Multi
local Multi = {}

--- Starts (or queues) a call; returns its id, or nil, message, err for an invalid payload.
---@param op calypso.Operation|string
---@param payload table?
---@return integer? id
---@return string? message
---@return calypso.Error? err
function Multi:start(op, payload) end

--- Moves every call forward; waits until a call finishes, nothing runs, or seconds (0) pass.
--- Returns how many finished during this poll.
---@param seconds number?
---@return integer
function Multi:poll(seconds) end

--- Whether the call has finished and its result waits.
---@param id integer
---@return boolean
function Multi:done(id) end

--- What the method would have returned; frees the call (raises while it still runs).
---@param id integer
---@return any result
---@return string? message
---@return calypso.Error? err
function Multi:result(id) end

--- Calls not finished yet (on the wire or queued).
---@return integer
function Multi:pending() end

--- Each finished call once, oldest first: id, then what the method would have returned, and
--- the HTTP status (0 when none). Results are freed as they are taken.
---@return fun(): integer?, any, string?, calypso.Error?, integer
function Multi:finished() end

--- Aborts running and queued calls and frees everything. Idempotent.
function Multi:close() end

return purse

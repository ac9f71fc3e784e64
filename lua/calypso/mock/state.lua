-- calypso.mock.state: the mock's in-memory Calypso "Customer Purse" backend.
--
-- Pure logic, no sockets: M.handle(st, path, headers, raw_body, now_ms) answers one API call
-- with an HTTP status and a JSON body string, so it can be tested directly. The control
-- operations (M.deposit, M.update_transaction) return Lua tables for the server to encode.
-- Behaviour follows docs/calypso-api.md, including the choices its "Open points" section makes
-- for what the Calypso docs leave unsaid (0-based pages, page size cap, update keeps omitted
-- fields, ...).

local json = require("calypso.mock.json")

local M = {}

local type, pairs, ipairs = type, pairs, ipairs
local format, concat, sort = string.format, table.concat, table.sort
local floor, ceil, abs = math.floor, math.ceil, math.abs

--- Documented sample credentials, used when the caller does not supply its own.
M.DEFAULT_KEY = "c529e14832b34b74972365cf7bf02430"
M.DEFAULT_SECRET = "b823a6b9ea72408583cef9ec8d67fa52"
M.DEFAULT_ACCOUNT = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b"

M.DEFAULT_MAX_PAGE_SIZE = 100

local TIMESTAMP_WINDOW_MS = 180000
local DEFAULT_PAGE_SIZE = 20
-- Bounds so that a long-running mock cannot grow without limit.
local MAX_OBJECTS = 20000      -- per kind: customers, purses, transactions
local MAX_STRING = 4096        -- bytes in any free-text field

M.MESSAGES = {
   ["000"] = "Internal server error",
   ["001"] = "Bad request",
   ["002"] = "Invalid api key",
   ["003"] = "Wrong sign",
   ["004"] = "Requested object is not found",
   ["011"] = "Invalid timestamp parameter",
}

local COMPLIANCE = {
   MEM_POOL_FOUND = "UNCHECKED",
   PENDING_COMPLIANCE_CHECK = "IN_PROGRESS",
   DECLINED = "DECLINE",
   CONFIRMED = "CHECKED",
}

local customer_shape = json.shape({ "id", "email", "description", "externalId", "blocked" })
local transaction_shape = json.shape({
   "id", "amount", "addressFrom", "currency", "transactionHash", "transactionState",
   "complianceState", "translationToAccountCompleted", "createdDate",
})
local purse_shape = json.shape({ "id", "address", "currency", "state" })
local address_shape = json.shape({ "id", "address" })
local page_shape = json.shape({ "result", "page", "size", "total", "totalElements" })
local error_shape = json.shape({ "traceId", "errorCode", "message" })

---------------------------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------------------------

local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local ACCOUNT_PATTERN = "^0x" .. ("%x"):rep(40) .. "$"

local function is_uuid(v)
   return type(v) == "string" and v:match(UUID_PATTERN) ~= nil
end

local function is_integer(v)
   return type(v) == "number" and v == floor(v) and abs(v) < 2 ^ 53
end

-- A JSON object decodes to a table without an array part (`[]` and `{}` both decode to an
-- empty table, which is accepted).
local function is_object(v)
   return type(v) == "table" and v[1] == nil
end

local function is_string_list(v)
   if type(v) ~= "table" then
      return false
   end
   for k, item in pairs(v) do
      if type(k) ~= "number" or type(item) ~= "string" then
         return false
      end
   end
   return true
end

-- Treats JSON null like an omitted field ("omitted/null fields are left unchanged").
local function field(p, name)
   local v = p[name]
   if v == json.null then
      return nil
   end
   return v
end

local function optional_string(p, name)
   local v = field(p, name)
   if v ~= nil and (type(v) ~= "string" or #v > MAX_STRING) then
      return nil, false
   end
   return v, true
end

-- A UUID v4 string from the state's random source.
local function new_uuid(st)
   local r = st.random
   return format("%04x%04x-%04x-4%03x-%x%03x-%04x%04x%04x",
      r(0, 0xffff), r(0, 0xffff), r(0, 0xffff), r(0, 0xfff),
      r(8, 11), r(0, 0xfff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
end

local function random_chars(st, alphabet, n)
   local out = {}
   for i = 1, n do
      local k = st.random(1, #alphabet)
      out[i] = alphabet:sub(k, k)
   end
   return concat(out)
end

local HEX = "0123456789abcdef"
local BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
local BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

local EVM = {
   ETH = true, USDT = true, USDC = true, DAI = true, FRAX = true, POL = true,
   MATIC = true, USDT_MATIC = true, USDT_BSC = true, BNB = true,
}

-- The chain a currency lives on; one address is shared per (customer, chain).
local function chain_of(currency)
   if currency == "TRX" or currency:match("_TRX$") then
      return "TRON"
   elseif EVM[currency] then
      return "EVM"
   elseif currency == "BTC" then
      return "BTC"
   end
   return "OTHER:" .. currency
end

local function new_address(st, chain, currency)
   if chain == "TRON" then
      return "T" .. random_chars(st, BASE58, 33)
   elseif chain == "EVM" then
      return "0x" .. random_chars(st, HEX, 40)
   elseif chain == "BTC" then
      return "bc1q" .. random_chars(st, BECH32, 38)
   end
   return "mock-" .. currency:lower() .. "-" .. random_chars(st, HEX, 32)
end

local function new_tx_hash(st, chain)
   local h = random_chars(st, HEX, 64)
   if chain == "EVM" then
      return "0x" .. h
   end
   return h
end

--- ISO-8601 UTC with milliseconds and `Z`, e.g. 2025-07-30T10:53:50.356Z.
function M.iso_date(ms)
   local secs = floor(ms / 1000)
   return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. format(".%03dZ", ms - secs * 1000)
end

---------------------------------------------------------------------------------------------
-- State
---------------------------------------------------------------------------------------------

--- Creates a backend. opts: key, secret, account (default: the docs' samples), verify
-- (function(secret, body, sign) -> boolean; default calypso.purse.verify), random (a
-- math.random-like function(m, n); default math.random), max_page_size.
function M.new(opts)
   opts = opts or {}
   local verify = opts.verify
   if verify == nil then
      verify = require("calypso.purse").verify
   end
   local st = {
      key = opts.key or M.DEFAULT_KEY,
      secret = opts.secret or M.DEFAULT_SECRET,
      account = opts.account or M.DEFAULT_ACCOUNT,
      verify = verify,
      random = opts.random or math.random,
      default_max_page_size = opts.max_page_size or M.DEFAULT_MAX_PAGE_SIZE,
   }
   M.reset(st)
   return st
end

--- Forgets every customer, purse and transaction and restores the page size cap.
function M.reset(st)
   st.customers = {}           -- id -> customer
   st.customer_list = {}       -- creation order
   st.purses = {}              -- customerId .. "|" .. currency -> purse
   st.purse_list = {}          -- customerId -> { purse, ... } in creation order
   st.purse_count = 0
   st.addresses = {}           -- customerId .. "|" .. chain -> address string
   st.transactions = {}        -- id -> transaction
   st.transaction_list = {}    -- creation order
   st.last_created_ms = 0
   st.max_page_size = st.default_max_page_size
end

--- A documented error body {"traceId","errorCode","message"}; `message` defaults to the
-- documented text for `code`.
function M.error_body(st, code, message)
   return json.encode(error_shape({
      traceId = new_uuid(st),
      errorCode = code,
      message = message or M.MESSAGES[code] or "Mock error",
   }))
end

--- The HTTP status the mock uses for a Calypso errorCode.
function M.error_status(code)
   if code == "000" then
      return 500
   end
   return 400
end

-- The id and state are tracked internally; the wire shape is built on demand.
local function customer_dto(c)
   return customer_shape({
      id = c.id, email = c.email, description = c.description,
      externalId = c.externalId, blocked = c.blocked,
   })
end

local function transaction_dto(tx)
   return transaction_shape({
      id = tx.id,
      amount = tx.amount,
      addressFrom = tx.addressFrom,
      currency = tx.currency,
      transactionHash = tx.transactionHash,
      transactionState = tx.transactionState,
      complianceState = COMPLIANCE[tx.transactionState] or "UNCHECKED",
      translationToAccountCompleted = tx.translationToAccountCompleted,
      createdDate = M.iso_date(tx.created_ms),
   })
end

-- Returns the purse for (customer, currency), creating it (and the chain address) if new.
local function ensure_purse(st, customer_id, currency)
   local key = customer_id .. "|" .. currency
   local purse = st.purses[key]
   if purse then
      return purse
   end
   if st.purse_count >= MAX_OBJECTS then
      return nil
   end
   local chain = chain_of(currency)
   local address_key = customer_id .. "|" .. chain
   local address = st.addresses[address_key] or new_address(st, chain, currency)
   st.addresses[address_key] = address
   purse = { id = new_uuid(st), address = address, currency = currency, state = "PENDING_PAYMENT" }
   st.purses[key] = purse
   local list = st.purse_list[customer_id] or {}
   list[#list + 1] = purse
   st.purse_list[customer_id] = list
   st.purse_count = st.purse_count + 1
   return purse
end

-- createdDate must be strictly increasing even for transactions made in the same millisecond.
local function next_created_ms(st, now_ms)
   local ms = floor(now_ms)
   if ms <= st.last_created_ms then
      ms = st.last_created_ms + 1
   end
   st.last_created_ms = ms
   return ms
end

---------------------------------------------------------------------------------------------
-- API operations: each takes (st, payload, now_ms) and returns a value to encode, or nil and
-- an errorCode.
---------------------------------------------------------------------------------------------

local ops = {}

local function customer_by(st, p, name)
   local id = field(p, name)
   if not is_uuid(id) then
      return nil, "001"
   end
   local c = st.customers[id]
   if not c then
      return nil, "004"
   end
   return c
end

ops["customer/create"] = function(st, p)
   local email, ok1 = optional_string(p, "email")
   local description, ok2 = optional_string(p, "description")
   local external_id, ok3 = optional_string(p, "externalId")
   if not (ok1 and ok2 and ok3) then
      return nil, "001"
   end
   if #st.customer_list >= MAX_OBJECTS then
      return nil, "000"
   end
   local c = { id = new_uuid(st), email = email, description = description,
               externalId = external_id, blocked = false }
   st.customers[c.id] = c
   st.customer_list[#st.customer_list + 1] = c
   return customer_dto(c)
end

--- Every customer, oldest first, as the API shows them (for GET /_mock/customers).
function M.customers(st)
   local list = json.array()
   for _, c in ipairs(st.customer_list) do
      list[#list + 1] = customer_dto(c)
   end
   return { customers = list }
end

ops["customer/get"] = function(st, p)
   local c, code = customer_by(st, p, "customerId")
   if not c then
      return nil, code
   end
   return customer_dto(c)
end

ops["customer/external/get"] = function(st, p)
   local external_id = field(p, "externalId")
   if type(external_id) ~= "string" then
      return nil, "001"
   end
   local found = json.array()
   for _, c in ipairs(st.customer_list) do
      if c.externalId == external_id then
         found[#found + 1] = customer_dto(c)
      end
   end
   return { customers = found }
end

ops["customer/update"] = function(st, p)
   local c, code = customer_by(st, p, "id")
   if not c then
      return nil, code
   end
   local email, ok1 = optional_string(p, "email")
   local description, ok2 = optional_string(p, "description")
   local external_id, ok3 = optional_string(p, "externalId")
   if not (ok1 and ok2 and ok3) then
      return nil, "001"
   end
   if email ~= nil then c.email = email end
   if description ~= nil then c.description = description end
   if external_id ~= nil then c.externalId = external_id end
   return customer_dto(c)
end

local function set_blocked(blocked)
   return function(st, p)
      local c, code = customer_by(st, p, "customerId")
      if not c then
         return nil, code
      end
      c.blocked = blocked
      return customer_dto(c)
   end
end

ops["customer/block"] = set_blocked(true)
ops["customer/unblock"] = set_blocked(false)

local function valid_currency(v)
   return type(v) == "string" and #v > 0 and #v <= 64
end

-- Blocked customers still get addresses (their addresses keep accepting deposits).
ops["address/get"] = function(st, p)
   local c, code = customer_by(st, p, "customerId")
   if not c then
      return nil, code
   end
   local currency = field(p, "currency")
   if not valid_currency(currency) then
      return nil, "001"
   end
   local purse = ensure_purse(st, c.id, currency)
   if not purse then
      return nil, "000"
   end
   return address_shape({ id = purse.id, address = purse.address })
end

ops["purse/get-all"] = function(st, p)
   local c, code = customer_by(st, p, "customerId")
   if not c then
      return nil, code
   end
   local out = json.array()
   for _, purse in ipairs(st.purse_list[c.id] or {}) do
      out[#out + 1] = purse_shape({ id = purse.id, address = purse.address,
                                    currency = purse.currency, state = purse.state })
   end
   return out
end

ops["transaction/get"] = function(st, p)
   local id = field(p, "transactionId")
   if not is_uuid(id) then
      return nil, "001"
   end
   local tx = st.transactions[id]
   if not tx then
      return nil, "004"
   end
   return transaction_dto(tx)
end

---------------------------------------------------------------------------------------------
-- transaction/find: filters, sorting, paging
---------------------------------------------------------------------------------------------

local function set_of(list)
   local s = {}
   for _, v in pairs(list) do
      s[v] = true
   end
   return s
end

local function is_filter_field(v, kind)
   if kind == "list" then
      return is_string_list(v)
   end
   return type(v) == kind
end

local FILTER_FIELDS = {
   equals = "string", notEquals = "string", specified = "boolean", ["in"] = "list",
   notIn = "list", contains = "string", doesNotContain = "string",
}

-- Validates a filter object and compiles it (lists become sets). `with_contains` allows the
-- string-only operators. Returns the compiled filter (nil when absent) and whether it is valid.
local function compile_filter(f, with_contains)
   if f == nil or f == json.null then
      return nil, true
   end
   if not is_object(f) then
      return nil, false
   end
   local compiled = {}
   for name, kind in pairs(FILTER_FIELDS) do
      local v = field(f, name)
      if v ~= nil then
         local allowed = with_contains or (name ~= "contains" and name ~= "doesNotContain")
         if not allowed or not is_filter_field(v, kind) then
            return nil, false
         end
         compiled[name] = kind == "list" and set_of(v) or v
      end
   end
   return compiled, true
end

-- True when value `v` (a string or nil) satisfies every condition of compiled filter `f`.
local function filter_matches(f, v)
   if not f then
      return true
   end
   if f.equals ~= nil and v ~= f.equals then return false end
   if f.notEquals ~= nil and v == f.notEquals then return false end
   if f.specified ~= nil and (v ~= nil) ~= f.specified then return false end
   if f["in"] ~= nil and not (v ~= nil and f["in"][v]) then return false end
   if f.notIn ~= nil and v ~= nil and f.notIn[v] then return false end
   if f.contains ~= nil and not (v ~= nil and v:find(f.contains, 1, true)) then return false end
   if f.doesNotContain ~= nil and v ~= nil and v:find(f.doesNotContain, 1, true) then
      return false
   end
   return true
end

local SORT_KEYS = {
   createdDate = function(tx) return tx.created_ms end,
   amount = function(tx) return json.to_number(tx.amount) end,
   currency = function(tx) return tx.currency end,
   transactionState = function(tx) return tx.transactionState end,
}

-- Sorts by the property, ties by creation order, all reversed for DESC (a total order, so the
-- pages are stable between calls).
local function sort_transactions(list, property, descending)
   local key = SORT_KEYS[property]
   sort(list, function(a, b)
      if descending then
         a, b = b, a
      end
      local ka, kb = key(a), key(b)
      if ka ~= kb then
         return ka < kb
      end
      return a.seq < b.seq
   end)
end

-- Reads and validates the paging/sorting fields; returns a table or nil when invalid.
local function page_request(st, p)
   local page = field(p, "pageNumber")
   local size = field(p, "pageSize")
   local order = field(p, "sort")
   local property = field(p, "properties")
   if page == nil then page = 0 end
   if size == nil then size = DEFAULT_PAGE_SIZE end
   if order == nil then order = "ASC" end
   if property == nil then property = "createdDate" end
   if not is_integer(page) or page < 0 or not is_integer(size) or size < 1 then
      return nil
   end
   if type(order) ~= "string" or (order:upper() ~= "ASC" and order:upper() ~= "DESC") then
      return nil
   end
   if type(property) ~= "string" or not SORT_KEYS[property] then
      return nil
   end
   if size > st.max_page_size then
      size = st.max_page_size
   end
   return { page = page, size = size, descending = order:upper() == "DESC", property = property }
end

ops["transaction/find"] = function(st, p)
   local c, code = customer_by(st, p, "customerId")
   if not c then
      return nil, code
   end
   local currency_filter, ok1 = compile_filter(field(p, "currencyFilter"), true)
   local state_filter, ok2 = compile_filter(field(p, "transactionStateFilter"), false)
   local req = page_request(st, p)
   if not (ok1 and ok2 and req) then
      return nil, "001"
   end
   local matched = {}
   for _, tx in ipairs(st.transaction_list) do
      if tx.customerId == c.id and filter_matches(currency_filter, tx.currency)
            and filter_matches(state_filter, tx.transactionState) then
         matched[#matched + 1] = tx
      end
   end
   sort_transactions(matched, req.property, req.descending)
   local result = json.array()
   local first = req.page * req.size + 1
   for i = first, math.min(#matched, first + req.size - 1) do
      result[#result + 1] = transaction_dto(matched[i])
   end
   return page_shape({
      result = result, page = req.page, size = req.size,
      total = ceil(#matched / req.size), totalElements = #matched,
   })
end

---------------------------------------------------------------------------------------------
-- Request checks and dispatch
---------------------------------------------------------------------------------------------

--- True when `path` (without query string) names one of the ten API operations.
function M.has_route(path)
   local op = path:match("^/api/v1/customer%-purse/(.+)$")
   return op ~= nil and ops[op] ~= nil
end

-- The HMAC check must not raise, whatever the Sign header holds.
local function sign_ok(st, raw_body, sign)
   if type(sign) ~= "string" then
      return false
   end
   local ok, res = pcall(st.verify, st.secret, raw_body, sign)
   return ok and res == true
end

-- Checks 1-4 (key, sign, envelope, timestamp); returns the payload or nil and an errorCode.
local function check_envelope(st, headers, raw_body, now_ms)
   if headers["key"] ~= st.key then
      return nil, "002"
   end
   if not sign_ok(st, raw_body, headers["sign"]) then
      return nil, "003"
   end
   local body = json.decode(raw_body)
   if not is_object(body) or type(body.account) ~= "string"
         or not is_integer(body.timestamp) or not is_object(body.payload) then
      return nil, "001"
   end
   if not body.account:match(ACCOUNT_PATTERN) then
      return nil, "001"
   end
   if body.account ~= st.account then
      return nil, "002"
   end
   if abs(now_ms - body.timestamp) > TIMESTAMP_WINDOW_MS then
      return nil, "011"
   end
   return body.payload
end

local function fail(st, code)
   return M.error_status(code), M.error_body(st, code)
end

--- Answers one API request. `path` may carry a query string (ignored); `headers` has
-- lowercased names; `raw_body` is the body exactly as received; `now_ms` is the mock clock
-- (epoch milliseconds, clock skew included). Returns HTTP status and JSON body string.
function M.handle(st, path, headers, raw_body, now_ms)
   local op = path:gsub("%?.*$", ""):match("^/api/v1/customer%-purse/(.+)$")
   local fn = op and ops[op]
   if not fn then
      return 404, M.error_body(st, "001")
   end
   local payload, code = check_envelope(st, headers, raw_body or "", now_ms)
   if not payload then
      return fail(st, code)
   end
   local result
   result, code = fn(st, payload, now_ms)
   if result == nil then
      return fail(st, code)
   end
   return 200, json.encode(result)
end

---------------------------------------------------------------------------------------------
-- Control operations (used by the /_mock/ endpoints)
---------------------------------------------------------------------------------------------

local function valid_state(v)
   return type(v) == "string" and v:match("^[A-Z][A-Z_]*$") ~= nil and #v <= 64
end

-- A Lua number, or a string holding a JSON number token (kept verbatim for exact decimals).
local function parse_amount(v)
   if type(v) == "number" then
      if v ~= v or v == math.huge or v == -math.huge then
         return nil
      end
      return v
   end
   return json.raw_number(v)
end

-- Validates the optional fields shared by deposit and update; returns nil or an error message.
local function check_tx_fields(args)
   local state = field(args, "state")
   if state ~= nil and not valid_state(state) then
      return "state must be an upper-case transactionState such as CONFIRMED"
   end
   local done = field(args, "translationToAccountCompleted")
   if done ~= nil and type(done) ~= "boolean" then
      return "translationToAccountCompleted must be a boolean"
   end
   return nil
end

local function check_deposit(st, args)
   if not is_uuid(field(args, "customerId")) then
      return "customerId must be a uuid string", 400
   end
   if not st.customers[args.customerId] then
      return "customer " .. args.customerId .. " not found", 404
   end
   if not valid_currency(field(args, "currency")) then
      return "currency must be a non-empty string", 400
   end
   if not parse_amount(field(args, "amount")) then
      return "amount must be a finite number or a string holding a JSON number", 400
   end
   for _, name in ipairs({ "addressFrom", "transactionHash" }) do
      local _, ok = optional_string(args, name)
      if not ok then
         return name .. " must be a string", 400
      end
   end
   if #st.transaction_list >= MAX_OBJECTS then
      return "transaction limit reached; reset the mock", 400
   end
   local msg = check_tx_fields(args)
   if msg then
      return msg, 400
   end
   return nil
end

--- Records an incoming deposit. args: customerId, currency, amount (number or JSON number
-- string), state (default CONFIRMED), addressFrom, transactionHash,
-- translationToAccountCompleted (default false). Creates the purse if needed.
-- Returns the PGTransactionDTO table, or nil, message, http_status.
function M.deposit(st, args, now_ms)
   if not is_object(args) then
      return nil, "body must be a JSON object", 400
   end
   local msg, status = check_deposit(st, args)
   if msg then
      return nil, msg, status
   end
   local purse = ensure_purse(st, args.customerId, args.currency)
   if not purse then
      return nil, "purse limit reached; reset the mock", 400
   end
   local chain = chain_of(args.currency)
   local tx = {
      seq = #st.transaction_list + 1,
      id = new_uuid(st),
      customerId = args.customerId,
      purseId = purse.id,
      amount = parse_amount(args.amount),
      addressFrom = field(args, "addressFrom") or new_address(st, chain, args.currency),
      currency = args.currency,
      transactionHash = field(args, "transactionHash") or new_tx_hash(st, chain),
      transactionState = field(args, "state") or "CONFIRMED",
      translationToAccountCompleted = field(args, "translationToAccountCompleted") == true,
      created_ms = next_created_ms(st, now_ms),
   }
   st.transactions[tx.id] = tx
   st.transaction_list[tx.seq] = tx
   return transaction_dto(tx)
end

--- Changes a transaction. args: transactionId, state, translationToAccountCompleted (omitted
-- fields unchanged). Returns the PGTransactionDTO table, or nil, message, http_status.
function M.update_transaction(st, args)
   if not is_object(args) then
      return nil, "body must be a JSON object", 400
   end
   local id = field(args, "transactionId")
   if not is_uuid(id) then
      return nil, "transactionId must be a uuid string", 400
   end
   local tx = st.transactions[id]
   if not tx then
      return nil, "transaction " .. id .. " not found", 404
   end
   local msg = check_tx_fields(args)
   if msg then
      return nil, msg, 400
   end
   tx.transactionState = field(args, "state") or tx.transactionState
   local done = field(args, "translationToAccountCompleted")
   if done ~= nil then
      tx.translationToAccountCompleted = done
   end
   return transaction_dto(tx)
end

--- Sets the page size cap used by transaction/find (nil restores the default).
function M.set_max_page_size(st, n)
   st.max_page_size = n or st.default_max_page_size
end

return M

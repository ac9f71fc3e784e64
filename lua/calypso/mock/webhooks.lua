-- calypso.mock.webhooks: signed webhook delivery for the mock (docs/calypso-api.md, "Webhooks").
--
-- A test subscribes a URL (POST /_mock/webhooks {url, key, secret}); from then on every
-- deposit and every change of a transaction's state or translationToAccountCompleted flag is
-- POSTed to it as a CUSTOMER_PURSE_* event with the headers `Sign` (hex HMAC-SHA512 of the body
-- under `secret`) and `Key`, like Calypso does. POST /_mock/webhooks/emit sends any event
-- (EXPIRED, or a type the SDK does not know); GET /_mock/webhooks/deliveries lists what
-- happened to each delivery.
--
-- The mock has one thread, and the receiver of a test often lives in the very process that is
-- waiting for a control answer. So nothing is sent from a request handler: events are queued
-- once the control answer is fully written (the handler's `after` callback), then driven by a
-- short timer of the event loop over a non-blocking socket (connect, send, read the status),
-- one delivery at a time per subscription, in order. An answer other than 200 (or no answer)
-- is retried after each of the subscription's `retry_delays` (Calypso waits 30 s, 60 s, ...;
-- the mock's defaults are short so tests stay fast).

local socket = require("socket")
local json = require("calypso.mock.json")

local M = {}

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, floor, random = string.format, math.floor, math.random
local gettime = socket.gettime

local POLL_INTERVAL = 0.005      -- seconds between two turns of a busy delivery
local DEFAULT_TIMEOUT = 5        -- seconds per delivery attempt
local DEFAULT_RETRY_DELAYS = { 0.2, 0.5 }
local MAX_SUBSCRIPTIONS = 20
local MAX_QUEUE = 1000           -- pending deliveries per subscription
local LOG_LIMIT = 200            -- deliveries kept for /_mock/webhooks/deliveries
local MAX_RESPONSE = 64 * 1024   -- bytes of a receiver's answer we read

-- transactionState -> event type and level of the event announcing it.
local STATE_EVENTS = {
   MEM_POOL_FOUND = { "CUSTOMER_PURSE_MEM_POOL_FOUND", "INFO" },
   PENDING_COMPLIANCE_CHECK = { "CUSTOMER_PURSE_PENDING_COMPLIANCE", "INFO" },
   DECLINED = { "CUSTOMER_PURSE_COMPLIANCE_DECLINED", "WARNING" },
   CONFIRMED = { "CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE", "SUCCESS" },
}
local TRANSLATED = { "CUSTOMER_PURSE_TRANSLATION_TO_ACCOUNT_COMPLETED", "SUCCESS" }
local LEVELS = { SUCCESS = true, INFO = true, WARNING = true }

local envelope_shape = json.shape({
   "requestId", "id", "createdDate", "level", "service", "eventType", "data" })
local data_shape = json.shape({
   "customerId", "customerBlocked", "purseId", "address", "transactionId", "amount", "currency" })
local subscription_shape = json.shape({ "requestId", "url", "key", "subscriptions" })
local delivery_shape = json.shape({
   "id", "eventType", "requestId", "url", "state", "attempts", "status", "error" })

local function uuid()
   return format("%04x%04x-%04x-4%03x-%x%03x-%04x%04x%04x",
      random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xfff),
      random(8, 11), random(0, 0xfff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff))
end

-- Webhook dates have no zone and a variable fraction: 2025-10-30T14:08:39.96068
-- (docs/calypso-api.md, "Webhooks").
local function webhook_date(micros)
   local secs = floor(micros / 1000000)
   local frac = format("%06d", micros - secs * 1000000):gsub("0+$", "")
   return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. "." .. (frac == "" and "0" or frac)
end

-- http://127.0.0.1:port/path -> host, port, path (loopback only: the mock never calls out).
local function parse_url(url)
   if type(url) ~= "string" then
      return nil
   end
   local host, port, path = url:match("^http://([%w%.%-]+):?(%d*)(/?[^%s#]*)$")
   if host == "localhost" then
      host = "127.0.0.1"
   end
   if not host or not host:match("^127%.%d+%.%d+%.%d+$") then
      return nil
   end
   port = tonumber(port ~= "" and port or "80")
   if not port or port < 1 or port > 65535 then
      return nil
   end
   return host, port, path ~= "" and path or "/"
end

local function is_delay_list(v)
   if type(v) ~= "table" then
      return false
   end
   for k, d in pairs(v) do
      if type(k) ~= "number" or type(d) ~= "number" or d < 0 or d > 3600 then
         return false
      end
   end
   return #v <= 20
end

---------------------------------------------------------------------------------------------
-- Hub: subscriptions, queues, delivery
---------------------------------------------------------------------------------------------

local Hub = {}
Hub.__index = Hub

--- A delivery hub for `server` (a calypso.mock.server Server: its clock, timers and state).
function M.new(server)
   return setmetatable({ server = server, subs = {}, log = {}, log_count = 0,
                         next_event_id = 1331293, last_micros = 0, polling = false }, Hub)
end

--- Closes open delivery sockets and forgets everything.
function Hub:close()
   for _, sub in ipairs(self.subs) do
      local d = sub.queue[1]
      if d and d.sock then
         d.sock:close()
      end
   end
   self.subs = {}
end

function Hub:subscribe(args)
   if args.clear == true then
      self:close()
      return 200, subscription_shape({ subscriptions = 0 })
   end
   local host, port, path = parse_url(args.url)
   if not host then
      return 400, { error = "url must be http://127.0.0.1:<port>/<path> (loopback only)" }
   end
   if type(args.key) ~= "string" or type(args.secret) ~= "string" or args.secret == "" then
      return 400, { error = "key and secret must be strings (secret non-empty)" }
   end
   if args.requestId ~= nil and type(args.requestId) ~= "string" then
      return 400, { error = "requestId must be a string" }
   end
   if args.retry_delays ~= nil and not is_delay_list(args.retry_delays) then
      return 400, { error = "retry_delays must be a list of at most 20 delays (0..3600 s)" }
   end
   if args.timeout ~= nil and (type(args.timeout) ~= "number" or args.timeout <= 0
                               or args.timeout > 3600) then
      return 400, { error = "timeout must be seconds in (0, 3600]" }
   end
   if #self.subs >= MAX_SUBSCRIPTIONS then
      return 400, { error = "too many subscriptions" }
   end
   local sub = {
      requestId = args.requestId or uuid(), url = args.url, key = args.key, secret = args.secret,
      host = host, port = port, path = path, queue = {},
      retry_delays = args.retry_delays or DEFAULT_RETRY_DELAYS,
      timeout = args.timeout or DEFAULT_TIMEOUT,
   }
   self.subs[#self.subs + 1] = sub
   return 200, subscription_shape({ requestId = sub.requestId, url = sub.url, key = sub.key,
                                    subscriptions = #self.subs })
end

-- Appends a delivery to the log ring (the same table is updated as it progresses).
function Hub:record(d)
   self.log_count = self.log_count + 1
   self.log[(self.log_count - 1) % LOG_LIMIT + 1] = d.entry
end

function Hub:deliveries()
   local list = json.array()
   for n = math.max(1, self.log_count - LOG_LIMIT + 1), self.log_count do
      list[#list + 1] = self.log[(n - 1) % LOG_LIMIT + 1]
   end
   return list
end

--- Queues one event for every subscription. Returns the number of deliveries queued.
function Hub:publish(event_type, level, data)
   local queued = 0
   for _, sub in ipairs(self.subs) do
      if #sub.queue < MAX_QUEUE then
         local id = self.next_event_id
         self.next_event_id = id + 1
         -- event times strictly increase, like the ids
         self.last_micros = math.max(self.last_micros + 1, self.server:now_ms() * 1000)
         local body = json.encode(envelope_shape({
            requestId = sub.requestId, id = id, createdDate = webhook_date(self.last_micros),
            level = level, service = "CUSTOMER_PURSE", eventType = event_type, data = data,
         }))
         local d = {
            sub = sub, body = body, sign = require("calypso.purse").sign(sub.secret, body),
            attempts = 0, next_at = 0,
            entry = delivery_shape({ id = id, eventType = event_type, requestId = sub.requestId,
                                     url = sub.url, state = "pending", attempts = 0 }),
         }
         sub.queue[#sub.queue + 1] = d
         self:record(d)
         queued = queued + 1
      end
   end
   self:kick()
   return queued
end

-- Makes sure a poll turn is scheduled.
function Hub:kick()
   if self.polling then
      return
   end
   self.polling = true
   self.server:add_timer(gettime() + POLL_INTERVAL, function()
      self.polling = false
      self:poll()
   end)
end

local function request_bytes(d)
   local sub = d.sub
   return format("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
      .. "Content-Length: %d\r\nKey: %s\r\nSign: %s\r\nUser-Agent: calypso-mock-webhooks\r\n"
      .. "Connection: close\r\n\r\n", sub.path, sub.host, sub.port, #d.body, sub.key, d.sign)
      .. d.body
end

-- Ends the current attempt of the delivery at the head of `sub`'s queue.
local function finish_attempt(sub, d, status, err)
   if d.sock then
      d.sock:close()
      d.sock = nil
   end
   local e = d.entry
   e.status, e.error = status, err
   if status == 200 then
      e.state = "delivered"
   elseif d.attempts <= #sub.retry_delays then
      d.next_at = gettime() + sub.retry_delays[d.attempts]
      return
   else
      e.state = "failed"
   end
   table.remove(sub.queue, 1)
end

-- The status code of a complete HTTP answer in `buf`, or nil while more is expected.
local function answer_status(buf, closed)
   local status = tonumber(buf:match("^HTTP/1%.%d (%d%d%d)"))
   local head_end = buf:find("\r\n\r\n", 1, true)
   if status and head_end then
      local length = tonumber(buf:sub(1, head_end):lower():match("\r\ncontent%-length:%s*(%d+)"))
      if closed or (length and #buf - head_end - 3 >= length) then
         return status
      end
   end
   if closed then
      return false
   end
   return nil
end

-- Advances one delivery attempt as far as the socket allows without blocking.
local function step_delivery(sub, d, now)
   if not d.sock then
      if now < d.next_at then
         return
      end
      d.attempts = d.attempts + 1
      d.entry.attempts = d.attempts
      d.sock = socket.tcp()
      d.sock:settimeout(0)
      d.phase, d.out, d.out_i, d.inbuf = "connect", request_bytes(d), 1, ""
      d.until_at = now + sub.timeout
   end
   if now > d.until_at then
      return finish_attempt(sub, d, nil, "timeout")
   end
   local sock = d.sock
   if d.phase == "connect" then
      local ok, err = sock:connect(sub.host, sub.port)
      if ok or err == "already connected" then
         d.phase = "send"
      elseif err ~= "timeout" and err ~= "Operation already in progress" then
         return finish_attempt(sub, d, nil, err)
      else
         return
      end
   end
   if d.phase == "send" then
      local last, err, partial = sock:send(d.out, d.out_i)
      d.out_i = (last or partial or d.out_i - 1) + 1
      if err and err ~= "timeout" then
         return finish_attempt(sub, d, nil, err)
      end
      if d.out_i > #d.out then
         d.phase = "answer"
      end
   end
   if d.phase == "answer" then
      local data, err, partial = sock:receive(8192)
      d.inbuf = d.inbuf .. (data or partial or "")
      local status = answer_status(d.inbuf, err == "closed")
      if status then
         return finish_attempt(sub, d, status, status ~= 200 and "HTTP " .. status or nil)
      elseif status == false or (err and err ~= "timeout" and err ~= "closed") then
         return finish_attempt(sub, d, nil, "no HTTP answer (" .. tostring(err) .. ")")
      elseif #d.inbuf > MAX_RESPONSE then
         return finish_attempt(sub, d, nil, "answer too large")
      end
   end
end

-- One turn over every subscription's head delivery; reschedules itself while work remains.
function Hub:poll()
   local now = gettime()
   local busy = false
   for _, sub in ipairs(self.subs) do
      local d = sub.queue[1]
      if d then
         step_delivery(sub, d, now)
      end
      busy = busy or sub.queue[1] ~= nil
   end
   if busy then
      self:kick()
   end
end

---------------------------------------------------------------------------------------------
-- Events from the mock's state
---------------------------------------------------------------------------------------------

local function find_purse(st, customer_id, purse_id)
   for _, p in ipairs(st.purse_list[customer_id] or {}) do
      if p.id == purse_id then
         return p
      end
   end
   return nil
end

-- The documented `data` of a deposit event for transaction `tx` (internal state record).
local function transaction_data(st, tx)
   local customer = st.customers[tx.customerId]
   local purse = find_purse(st, tx.customerId, tx.purseId)
   return data_shape({
      customerId = tx.customerId, customerBlocked = customer and customer.blocked or false,
      purseId = tx.purseId, address = purse and purse.address, transactionId = tx.id,
      amount = tx.amount, currency = tx.currency,
   })
end

--- Queues the events a transaction change announces: its new state (when it changed) and the
-- translation to the merchant account (when the flag turned true). `before` is nil for a new
-- deposit, else { state, translated } as they were.
function Hub:transaction_changed(tx_id, before)
   if #self.subs == 0 then
      return
   end
   local st = self.server.state
   local tx = st.transactions[tx_id]
   if not tx then
      return
   end
   local events = {}
   if not before or before.state ~= tx.transactionState then
      events[#events + 1] = STATE_EVENTS[tx.transactionState]
   end
   if tx.translationToAccountCompleted and not (before and before.translated) then
      events[#events + 1] = TRANSLATED
   end
   for _, ev in ipairs(events) do
      self:publish(ev[1], ev[2], transaction_data(st, tx))
   end
end

-- Checks POST /_mock/webhooks/emit {eventType, level, data | purseId}; returns the event to
-- publish { type, level, data }, or nil, http_status, message.
function Hub:emit_event(args)
   if type(args.eventType) ~= "string" or not args.eventType:match("^[%w_]+$") then
      return nil, 400, "eventType must be a word such as CUSTOMER_PURSE_EXPIRED"
   end
   local level = args.level or (args.eventType == "CUSTOMER_PURSE_EXPIRED" and "WARNING" or "INFO")
   if not LEVELS[level] then
      return nil, 400, "level must be SUCCESS, INFO or WARNING"
   end
   local data = args.data
   if data == nil and args.purseId ~= nil then
      -- the address-level data of CUSTOMER_PURSE_EXPIRED, from a purse of the mock
      local st = self.server.state
      for cid, list in pairs(st.purse_list) do
         for _, p in ipairs(list) do
            if p.id == args.purseId then
               local c = st.customers[cid]
               data = data_shape({ customerId = cid, customerBlocked = c and c.blocked or false,
                                   purseId = p.id, address = p.address })
            end
         end
      end
      if data == nil then
         return nil, 404, "purse " .. tostring(args.purseId) .. " not found"
      end
   end
   if data == nil then
      data = {}
   end
   if type(data) ~= "table" or data[1] ~= nil then
      return nil, 400, "data must be a JSON object"
   end
   return { type = args.eventType, level = level, data = data }
end

---------------------------------------------------------------------------------------------
-- Control endpoints
---------------------------------------------------------------------------------------------

-- Chains two `after` callbacks (either may be nil).
local function both(a, b)
   if not a then
      return b
   end
   return function()
      a()
      b()
   end
end

--- Adds the webhook control endpoints to the server's control table and makes deposits and
-- transaction updates announce themselves. `control` maps "/_mock/<name>" to
-- { methods, handler(server, args) -> status, value[, after] }.
function M.install(control)
   local POST, READ = { POST = true }, { GET = true, POST = true }

   local deposit = control["/_mock/deposit"].handler
   control["/_mock/deposit"].handler = function(srv, args)
      local status, value, after = deposit(srv, args)
      if status == 200 and type(value) == "table" then
         local id = value.id
         after = both(after, function() srv.webhooks:transaction_changed(id, nil) end)
      end
      return status, value, after
   end

   local update = control["/_mock/transaction/update"].handler
   control["/_mock/transaction/update"].handler = function(srv, args)
      local id = type(args) == "table" and args.transactionId
      local tx = type(id) == "string" and srv.state.transactions[id]
      local before = tx and { state = tx.transactionState, translated = tx.translationToAccountCompleted }
      local status, value, after = update(srv, args)
      if status == 200 and before then
         after = both(after, function() srv.webhooks:transaction_changed(id, before) end)
      end
      return status, value, after
   end

   control["/_mock/webhooks"] = {
      methods = POST, handler = function(srv, args) return srv.webhooks:subscribe(args) end }
   -- Answers first, then queues: the caller may be the receiver (see the header comment).
   control["/_mock/webhooks/emit"] = {
      methods = POST,
      handler = function(srv, args)
         local hub = srv.webhooks
         local event, status, msg = hub:emit_event(args)
         if not event then
            return status, { error = msg }
         end
         return 200, { queued = #hub.subs }, function()
            hub:publish(event.type, event.level, event.data)
         end
      end,
   }
   control["/_mock/webhooks/deliveries"] = {
      methods = READ, handler = function(srv) return 200, srv.webhooks:deliveries() end }
end

return M

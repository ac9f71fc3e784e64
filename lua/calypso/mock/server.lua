-- calypso.mock.server: the HTTP/1.1 front of the Calypso mock.
--
-- One process, one thread: an event loop on socket.select over non-blocking sockets. Each
-- connection walks through phases:
--   head    reading a request head           body    reading a Content-Length body
--   wait    answer computed, held by a timer (delays never block other connections)
--   respond writing the answer (partial writes resume when the socket is writable)
--   stall   fault "stall": never answered, read and discarded until the peer closes
--   drain   after a `Connection: close` answer: our side is shut down, we read until the peer
--           closes so that unread request bytes do not turn our answer into a TCP reset
-- Only head/body/stall/drain connections are read, so pipelined requests are answered in order.
-- API logic lives in calypso.mock.state; this file adds HTTP, faults, config, the request log
-- and the /_mock/ control endpoints.

local socket = require("socket")
local json = require("calypso.mock.json")
local state = require("calypso.mock.state")
local webhooks = require("calypso.mock.webhooks")

local M = {}

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, concat = string.format, table.concat
local floor, min, max = math.floor, math.min, math.max
local gettime, socket_select = socket.gettime, socket.select

local MAX_HEAD = 64 * 1024          -- request line + headers
local MAX_HEADERS = 100
local MAX_BODY = 16 * 1024 * 1024 -- the largest request the client can build (~8 MiB) fits
local RECV_SIZE = 64 * 1024
local IDLE_TIMEOUT = 60             -- seconds a connection may sit in head/body without data
local DRAIN_TIMEOUT = 2             -- seconds we wait for the peer to close after our answer
local DEFAULT_REQUEST_LOG_SIZE = 200 -- API requests kept by the request log (request_log_size)
local MAX_REQUEST_LOG_SIZE = 100000
local RECORD_BODY_LIMIT = 64 * 1024 -- bytes of each recorded body
local MAX_FAULTS = 1000
local MAX_DELAY = 3600
-- select() cannot watch descriptors beyond FD_SETSIZE; keep room for stdio and the listener.
local MAX_CONNECTIONS = min(1000, (socket._SETSIZE or 1024) - 24)

local DEFAULT_LIFETIME = 3600

local REASONS = {
   [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
   [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
   [405] = "Method Not Allowed", [408] = "Request Timeout", [411] = "Length Required",
   [413] = "Payload Too Large", [429] = "Too Many Requests",
   [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
   [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local HTML_503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
   .. "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
   .. "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

-- What the "malformed" fault sends: valid start, cut off mid-string.
local MALFORMED_BODY = '{"id":"3fa85f64-5717'

local DELIVERY_FAULTS -- modes delivered by Server:deliver_fault (defined with it)
-- Non-blocking I/O that has to wait: luasocket says "timeout", luasec "wantread"/"wantwrite".
local WOULD_BLOCK = { timeout = true, wantread = true, wantwrite = true }
local MAX_HUGE = 64 * 1024 * 1024 -- bytes of the largest "huge" body

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

-- RFC 7231 IMF-fixdate; names are spelled out so the C locale is not assumed.
local function http_date(ms)
   local t = os.date("!*t", floor(ms / 1000))
   return format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[t.wday], t.day, MONTHS[t.month],
      t.year, t.hour, t.min, t.sec)
end

local function is_loopback(host)
   return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

---------------------------------------------------------------------------------------------
-- Request parsing
---------------------------------------------------------------------------------------------

local TOKEN = "[%w!#$%%&'*+%-.^_`|~]+"

-- Parses header lines into a table with lowercased names (repeats joined with ", "), and
-- the names as sent, in order.
local function parse_header_lines(text)
   if text:gsub("\r\n", ""):find("[\r\n]") then
      return nil -- bare CR or LF: refuse rather than guess where lines end
   end
   local headers, names, count = {}, json.array(), 0
   for line in text:gmatch("([^\r\n]*)\r\n") do
      local name, value = line:match("^(" .. TOKEN .. "):[ \t]*(.-)[ \t]*$")
      count = count + 1
      if not name or count > MAX_HEADERS then
         return nil
      end
      names[count] = name
      name = name:lower()
      headers[name] = headers[name] and headers[name] .. ", " .. value or value
   end
   return headers, names
end

-- Framing and connection semantics of a parsed head; returns nil and an HTTP status on error.
local function check_framing(req)
   local h = req.headers
   if h["transfer-encoding"] then
      return nil, 411
   end
   local length = h["content-length"] or "0"
   if not length:match("^%d+$") then
      return nil, 400
   end
   if #length > 9 or tonumber(length) > MAX_BODY then
      return nil, 413
   end
   req.length = tonumber(length)
   local connection = (h["connection"] or ""):lower()
   if req.minor >= 1 then
      req.keep_alive = not connection:find("close", 1, true)
   else
      req.keep_alive = connection:find("keep-alive", 1, true) ~= nil
   end
   req.expect_continue = (h["expect"] or ""):lower() == "100-continue"
   return req
end

-- Parses the request head at the start of `buf`. Returns the request and the head length,
-- nothing when the head is incomplete, or nil, nil, status when it is invalid.
local function parse_head(buf)
   local stop = buf:find("\r\n\r\n", 1, true)
   if not stop then
      return nil
   end
   local first_end = buf:find("\r\n", 1, true)
   local method, target, major, minor =
      buf:sub(1, first_end - 1):match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
   local headers, names
   if method then
      headers, names = parse_header_lines(buf:sub(first_end + 2, stop + 1))
   end
   if not headers or major ~= "1" then
      return nil, nil, 400
   end
   local req, status = check_framing({
      method = method, target = target, path = target:gsub("%?.*$", ""),
      minor = tonumber(minor), headers = headers, header_names = names,
   })
   if not req then
      return nil, nil, status
   end
   return req, stop + 3
end

---------------------------------------------------------------------------------------------
-- Server object
---------------------------------------------------------------------------------------------

local Server = {}
Server.__index = Server

local function default_config()
   return { delay = 0, clock_skew_ms = 0, max_page_size = state.DEFAULT_MAX_PAGE_SIZE }
end

-- Binds the listening socket; raises with a clear message on failure.
local function listen(host, port)
   local bind_host = host == "localhost" and "127.0.0.1" or host
   -- Not socket.tcp(): in luasocket 3 it creates the descriptor only at bind time, so the
   -- reuseaddr option could not be set first.
   local sock = bind_host:find(":", 1, true) and socket.tcp6() or socket.tcp4()
   assert(sock:setoption("reuseaddr", true))
   local ok, err = sock:bind(bind_host, port)
   if ok then
      ok, err = sock:listen(1024)
   end
   if not ok then
      sock:close()
      error(format("calypso.mock.server: cannot listen on %s:%s: %s", host, tostring(port), err), 0)
   end
   sock:settimeout(0)
   local _, bound_port = sock:getsockname()
   return sock, tonumber(bound_port)
end

--- Creates a server bound to its port (not yet serving). Same options as M.main.
function M.new(opts)
   opts = opts or {}
   local host = opts.host or "127.0.0.1"
   local log_size = opts.request_log_size or DEFAULT_REQUEST_LOG_SIZE
   if type(log_size) ~= "number" or log_size ~= floor(log_size) or log_size < 0
         or log_size > MAX_REQUEST_LOG_SIZE then
      error("calypso.mock.server: request_log_size must be an integer from 0 to "
         .. MAX_REQUEST_LOG_SIZE, 0)
   end
   if not is_loopback(host) and not opts.allow_non_loopback then
      error("calypso.mock.server: refusing to listen on non-loopback host " .. host
         .. " (set allow_non_loopback to override)", 0)
   end
   local listener, port = listen(host, opts.port or 0)
   local self = setmetatable({
      host = host, port = port, listener = listener,
      lifetime = opts.lifetime or DEFAULT_LIFETIME,
      request_log_size = floor(log_size),
      heartbeat = opts.heartbeat and true or false,
      log_enabled = opts.log and true or false,
      state = state.new({ key = opts.key, secret = opts.secret, account = opts.account,
                          verify = opts.verify }),
      conns = {}, nconns = 0, timers = {}, running = true,
   }, Server)
   if opts.tls then
      self.tls = M.tls_context(opts.tls)
   end
   self:reset()
   return self
end

--- A server TLS context (luasec) from { certificate = PEM file, key = PEM file }; raises with
-- a clear message when luasec is missing or the files do not load.
function M.tls_context(t)
   local ok, ssl = pcall(require, "ssl")
   if not ok then
      error("calypso.mock.server: the tls option needs luasec (Debian package lua-sec)", 0)
   end
   if type(t) ~= "table" or type(t.certificate) ~= "string" or type(t.key) ~= "string" then
      error("calypso.mock.server: tls must be { certificate = file, key = file }", 0)
   end
   local ctx, err = ssl.newcontext({ mode = "server", protocol = "any", key = t.key,
                                     certificate = t.certificate, options = { "all" } })
   if not ctx then
      error("calypso.mock.server: cannot load the TLS certificate or key: " .. tostring(err), 0)
   end
   return ctx
end

--- Forgets all API state, faults, config and recorded requests.
function Server:reset()
   state.reset(self.state)
   self.faults = {}
   self.accept_faults = {} -- faults that strike at accept time (accept_close)
   self.config = default_config()
   self.records, self.record_count = {}, 0
   if self.webhooks then self.webhooks:close() end
   self.webhooks = webhooks.new(self) -- subscriptions and deliveries (calypso.mock.webhooks)
end

function Server:log(fmt, ...)
   if self.log_enabled then
      io.stderr:write("calypso-mock: ", format(fmt, ...), "\n")
   end
end

-- The mock clock in epoch milliseconds, clock skew included.
function Server:now_ms()
   return floor(gettime() * 1000) + self.config.clock_skew_ms
end

---------------------------------------------------------------------------------------------
-- Timers
---------------------------------------------------------------------------------------------

function Server:add_timer(at, fn)
   self.timers[#self.timers + 1] = { at = at, fn = fn }
end

function Server:next_timer()
   local soonest = math.huge
   for _, t in ipairs(self.timers) do
      soonest = min(soonest, t.at)
   end
   return soonest
end

-- Fires every timer that is due; the rest stay queued.
function Server:run_timers(now)
   local due, keep = {}, {}
   for _, t in ipairs(self.timers) do
      if t.at <= now then
         due[#due + 1] = t
      else
         keep[#keep + 1] = t
      end
   end
   if #due == 0 then
      return
   end
   self.timers = keep
   table.sort(due, function(a, b) return a.at < b.at end)
   for _, t in ipairs(due) do
      t.fn()
   end
end

---------------------------------------------------------------------------------------------
-- Connections: output
---------------------------------------------------------------------------------------------

function Server:close(c)
   if c.closed then
      return
   end
   c.closed = true
   c.sock:close()
   self.conns[c.sock] = nil
   self.nconns = self.nconns - 1
end

-- Half-closes our side and waits (bounded) for the peer to close; see the header comment.
function Server:start_drain(c)
   c.phase = "drain"
   c.drain_until = gettime() + DRAIN_TIMEOUT
   if not c.tls then -- a luasec connection cannot half-close; it just waits for the peer
      c.sock:shutdown("send")
   end
end

-- Called when all queued output of `c` is written.
function Server:on_sent(c)
   if c.phase == "fault" then
      return self:fault_sent(c)
   end
   if c.phase ~= "respond" then
      return -- an interim "100 Continue" went out while the body is still being read
   end
   if c.after_send then
      local fn = c.after_send
      c.after_send = nil
      fn()
   end
   if not c.keep_alive then
      return self:start_drain(c)
   end
   c.phase = "head"
   c.last_active = gettime()
   self:process_input(c) -- a pipelined request may already be buffered
end

-- Writes as much queued output as the socket takes without blocking.
function Server:flush(c)
   local last, err, partial = c.sock:send(c.out, c.out_i)
   c.out_i = (last or partial or c.out_i - 1) + 1
   if err and not WOULD_BLOCK[err] then
      return self:close(c)
   end
   if c.out_i > #c.out then
      c.out, c.out_i = nil, nil
      self:on_sent(c)
   end
end

function Server:queue_output(c, data)
   if c.out then
      c.out, c.out_i = c.out:sub(c.out_i) .. data, 1
   else
      c.out, c.out_i = data, 1
   end
   self:flush(c)
end

-- Header names the caller of a "raw" fault may set that change message framing; if set, the
-- connection is closed after the answer because the byte stream can no longer be trusted.
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- Builds the response head; `extra` (name -> value) overrides the default headers.
function Server:response_head(c, status, length, content_type, extra)
   local list = {
      { "Date", http_date(self:now_ms()) },
      { "Content-Type", content_type },
      { "Content-Length", tostring(length) },
      { "Connection", "" }, -- filled below, once keep-alive is final
   }
   for name, value in pairs(extra or {}) do
      local lname = name:lower()
      if FRAMING[lname] then
         c.keep_alive = false
      end
      local replaced = false
      if type(value) == "number" then
         value = json.encode(value) -- 5 rather than 5.0 for numbers decoded on Lua 5.3+
      end
      for _, h in ipairs(list) do
         if h[1]:lower() == lname then
            h[1], h[2], replaced = name, tostring(value), true
         end
      end
      if not replaced then
         list[#list + 1] = { name, tostring(value) }
      end
   end
   local lines = { format("HTTP/1.1 %d %s", status, REASONS[status] or "Status") }
   for _, h in ipairs(list) do
      if h[1] == "Connection" and h[2] == "" then
         h[2] = c.keep_alive and "keep-alive" or "close"
      end
      lines[#lines + 1] = h[1] .. ": " .. h[2]
   end
   return concat(lines, "\r\n") .. "\r\n\r\n"
end

-- Sends a complete answer on `c`.
function Server:respond(c, status, body, content_type, extra)
   if c.closed then
      return
   end
   c.keep_alive = c.keep_alive and self.running
   c.phase = "respond"
   self:log("%s %s -> %d", c.method or "-", c.target or "-", status)
   local head = self:response_head(c, status, #body, content_type or "application/json", extra)
   self:queue_output(c, head .. body)
end

-- Answers a request that could not be parsed, then closes.
function Server:reject(c, status)
   c.keep_alive = false
   c.inbuf = ""
   self:respond(c, status, state.error_body(self.state, "001"))
end

---------------------------------------------------------------------------------------------
-- Connections: input
---------------------------------------------------------------------------------------------

-- Parses and dispatches complete requests from the buffer while the connection is idle.
-- An answer sent synchronously re-enters via on_sent; the flag turns that into another turn of
-- this loop instead of recursion (a burst of pipelined requests must not nest calls).
function Server:process_input(c)
   if c.processing then
      return
   end
   c.processing = true
   self:process_requests(c)
   c.processing = false
end

function Server:process_requests(c)
   while c.phase == "head" and not c.closed do
      c.inbuf = c.inbuf:gsub("^[\r\n]+", "") -- stray CRLFs between requests are allowed
      local req, head_len, status = parse_head(c.inbuf)
      if status then
         return self:reject(c, status)
      elseif not req then
         if #c.inbuf > MAX_HEAD then
            self:reject(c, 431)
         end
         return
      end
      c.method, c.target = req.method, req.target
      c.body_parts, c.body_len, c.req = { c.inbuf:sub(head_len + 1) }, #c.inbuf - head_len, req
      c.inbuf = ""
      c.phase = "body"
      if c.body_len < req.length and req.expect_continue then
         self:queue_output(c, "HTTP/1.1 100 Continue\r\n\r\n")
      end
      self:maybe_finish_body(c)
   end
end

-- Once the whole body is in, splits off any pipelined bytes and dispatches the request.
function Server:maybe_finish_body(c)
   local req = c.req
   if c.closed or c.body_len < req.length then
      return
   end
   local data = concat(c.body_parts)
   req.body = data:sub(1, req.length)
   c.inbuf = data:sub(req.length + 1)
   c.body_parts, c.req = nil, nil
   self:dispatch(c, req)
end

-- One step of a non-blocking TLS handshake (the loop calls it whenever the socket is ready).
function Server:handshake(c)
   local ok, err = c.sock:dohandshake()
   c.want_write = err == "wantwrite"
   if ok then
      c.phase, c.last_active = "head", gettime()
   elseif err ~= "wantread" and err ~= "wantwrite" then
      self:log("TLS handshake failed: %s", tostring(err))
      self:close(c)
   end
end

function Server:on_readable(c)
   if c.phase == "handshake" then
      return self:handshake(c)
   end
   if c.reset_on_data then
      return self:close(c) -- unread bytes + zero linger: a TCP reset (fault accept_close rst)
   end
   local data, err, partial = c.sock:receive(RECV_SIZE)
   local chunk = data or partial
   if chunk and #chunk > 0 then
      c.last_active = gettime()
      if c.phase == "head" then
         c.inbuf = c.inbuf .. chunk
         self:process_input(c)
      elseif c.phase == "body" then
         c.body_parts[#c.body_parts + 1] = chunk
         c.body_len = c.body_len + #chunk
         self:maybe_finish_body(c)
      end -- stall/drain: discarded
   end
   if err == "closed" then
      if c.phase == "wait" or c.phase == "respond" then
         c.keep_alive = false -- peer half-closed after its request: still deliver the answer
      else
         self:close(c)
      end
   elseif err and not WOULD_BLOCK[err] then
      self:close(c)
   end
end

function Server:accept_all()
   while self.nconns < MAX_CONNECTIONS do
      local sock = self.listener:accept()
      if not sock then
         return
      end
      sock:settimeout(0)
      if not self:accept_fault(sock) then
         sock:setoption("tcp-nodelay", true) -- small answers must not wait for delayed ACKs
         local c = { sock = sock, phase = "head", inbuf = "", last_active = gettime() }
         if self.tls then -- the handshake runs in the loop, a step whenever the socket is ready
            c.sock, c.phase, c.tls = require("ssl").wrap(sock, self.tls), "handshake", true
            c.sock:settimeout(0)
         end
         self.conns[c.sock] = c
         self.nconns = self.nconns + 1
      end
   end
end

---------------------------------------------------------------------------------------------
-- Dispatch: faults, request log, API and control
---------------------------------------------------------------------------------------------

-- Appends an API request to the ring buffer of the last request_log_size requests.
function Server:record(req)
   local size = self.request_log_size
   if size == 0 then
      return
   end
   local body = req.body
   local rec = { method = req.method, path = req.target, headers = req.headers,
                 header_names = req.header_names, body = body }
   if #body > RECORD_BODY_LIMIT then
      rec.body, rec.truncated = body:sub(1, RECORD_BODY_LIMIT), true
   end
   self.record_count = self.record_count + 1
   self.records[(self.record_count - 1) % size + 1] = rec
end

function Server:recorded_requests()
   local list = json.array()
   local size = self.request_log_size
   for n = max(1, self.record_count - size + 1), self.record_count do
      list[#list + 1] = self.records[(n - 1) % size + 1]
   end
   return list
end

-- Takes one use of the fault at the head of the queue (FIFO, each entry `count` uses).
function Server:next_fault()
   local f = self.faults[1]
   if not f then
      return nil
   end
   f.remaining = f.remaining - 1
   if f.remaining <= 0 then
      table.remove(self.faults, 1)
   end
   return f
end

-- Computes the answer to an API request: status, body, content type, extra headers.
function Server:api_answer(req, fault)
   local mode = fault and fault.mode
   if mode == "malformed" then
      return 200, MALFORMED_BODY
   elseif mode == "html503" then
      return 503, HTML_503, "text/html; charset=utf-8"
   elseif mode == "raw" then
      return fault.status, fault.body, fault.content_type, fault.headers
   elseif mode == "error" then
      return fault.status, state.error_body(self.state, fault.code, fault.message)
   elseif mode == "huge" then
      return 200, '{"pad":"' .. string.rep("x", fault.size - 10) .. '"}'
   end
   if req.method ~= "POST" and state.has_route(req.path) then
      return 405, state.error_body(self.state, "001"), nil, { Allow = "POST" }
   end
   return state.handle(self.state, req.target, req.headers, req.body, self:now_ms())
end

function Server:dispatch_api(c, req)
   self:record(req)
   local fault = self:next_fault()
   if fault and fault.mode == "close" then
      self:log("%s %s -> fault close", req.method, req.target)
      return self:close(c)
   elseif fault and fault.mode == "stall" then
      self:log("%s %s -> fault stall", req.method, req.target)
      c.phase = "stall"
      return
   elseif fault and fault.mode == "wire" then
      self:log("%s %s -> fault wire", req.method, req.target)
      return self:fault_send(c, fault.data, fault.after)
   end
   local status, body, content_type, extra = self:api_answer(req, fault)
   if fault and fault.mode == "refuse" then
      -- before the answer goes out: a client that connects again after reading it is refused
      self:refuse_connections(fault.seconds)
   end
   if fault and (DELIVERY_FAULTS[fault.mode] or fault.chunk) then
      return self:deliver_fault(c, fault, status, body, content_type, extra)
   end
   local delay = self.config.delay + (fault and fault.mode == "delay" and fault.seconds or 0)
   if delay <= 0 then
      return self:respond(c, status, body, content_type, extra)
   end
   c.phase = "wait"
   self:add_timer(gettime() + delay, function()
      self:respond(c, status, body, content_type, extra)
   end)
end

---------------------------------------------------------------------------------------------
-- Fault delivery: answers that go out wrong on purpose (see FAULT_CHECKS for the modes)
---------------------------------------------------------------------------------------------

-- Fault "refuse": closes the listening socket, so that new connections are refused (the
-- client's kind "connect", never sent) while open ones go on, and listens again on the same
-- port `seconds` later (retrying every 0.1 s for up to 5 s should the bind fail).
function Server:refuse_connections(seconds)
   if not self.listener then
      return
   end
   self:log("refusing connections for %s s", tostring(seconds))
   self.listener:close()
   self.listener = nil
   local tries = 0
   local function relisten()
      if not self.running then
         return
      end
      local ok, sock = pcall(listen, self.host, self.port)
      if ok then
         self.listener = sock
         return
      end
      tries = tries + 1
      if tries >= 50 then
         self:log("cannot listen again on port %d: %s", self.port, tostring(sock))
         self.running = false
         return
      end
      self:add_timer(gettime() + 0.1, relisten)
   end
   self:add_timer(gettime() + seconds, relisten)
end

-- Modes whose answer is computed as usual but delivered by deliver_fault.
DELIVERY_FAULTS = { partial = true, trickle = true, chunked = true }

-- accept_close: takes one use of the first accept-time fault and, if there is one, closes the
-- fresh connection before reading a byte. With `rst` it waits until the request has arrived
-- and resets the connection without reading it (a reset any earlier may reach the client
-- while it is still connecting, which it would report as a connect failure). True when it
-- struck.
function Server:accept_fault(sock)
   local f = self.accept_faults[1]
   if not f then
      return false
   end
   f.remaining = f.remaining - 1
   if f.remaining <= 0 then
      table.remove(self.accept_faults, 1)
   end
   self:log("accept -> fault accept_close%s", f.rst and " (reset)" or "")
   if f.rst then
      sock:setoption("linger", { on = true, timeout = 0 })
      self.conns[sock] = { sock = sock, phase = "stall", reset_on_data = true, last_active = gettime() }
      self.nconns = self.nconns + 1
   else
      sock:close()
   end
   return true
end

-- Queues `data` on a fault connection; when it is all written, fault_sent ends the connection
-- as `after` says: "close" (FIN), "reset" (RST), "stall" (silence until the peer gives up) or
-- "drain" (a complete answer: the normal Connection: close ending).
function Server:fault_send(c, data, after)
   c.phase, c.keep_alive, c.fault_after = "fault", false, after or "close"
   self:queue_output(c, data)
end

function Server:fault_sent(c)
   if c.fault_more then
      return -- trickle: more pieces are due on a timer
   end
   local after = c.fault_after
   if after == "reset" then
      c.sock:setoption("linger", { on = true, timeout = 0 })
      return self:close(c)
   elseif after == "close" then
      return self:close(c)
   elseif after == "stall" then
      c.phase = "stall"
   else
      return self:start_drain(c)
   end
end

local function chunk_encode(body, size)
   local parts = {}
   for i = 1, #body, size do
      local piece = body:sub(i, i + size - 1)
      parts[#parts + 1] = format("%x\r\n", #piece) .. piece .. "\r\n" -- not %s: 5.1 stops at NUL
   end
   parts[#parts + 1] = "0\r\n\r\n"
   return concat(parts)
end

-- chunked (and any answer with `chunk`): Transfer-Encoding: chunked in `chunk`-byte pieces.
-- partial: the head promises the whole body, `bytes` of it go out (default half), then `after`.
-- trickle: the whole answer, its body `chunk` bytes every `interval` seconds.
function Server:deliver_fault(c, fault, status, body, content_type, extra)
   self:log("%s %s -> fault %s", c.method or "-", c.target or "-", fault.mode)
   c.keep_alive = false
   local head = self:response_head(c, status, #body, content_type or "application/json", extra)
   if fault.mode == "partial" then
      local n = min(fault.bytes or floor(#body / 2), max(#body - 1, 0))
      return self:fault_send(c, head .. body:sub(1, n), fault.after)
   elseif fault.mode == "trickle" then
      local size, interval, i = fault.chunk or 1, fault.interval or 0.1, 1
      c.fault_more = #body > 0
      self:fault_send(c, head, "drain")
      local function step()
         if c.closed then
            return
         end
         local piece = body:sub(i, i + size - 1)
         i = i + size
         c.fault_more = i <= #body
         if c.fault_more then
            self:add_timer(gettime() + interval, step)
         end
         self:queue_output(c, piece)
      end
      if c.fault_more then
         self:add_timer(gettime() + interval, step)
      end
      return
   end
   head = head:gsub("\r\nContent%-Length: %d+\r\n", "\r\nTransfer-Encoding: chunked\r\n", 1)
   return self:fault_send(c, head .. chunk_encode(body, fault.chunk or 16), "drain")
end

local control = {} -- "/_mock/<name>" -> { methods, handler(self, args) -> status, value }

-- What each control endpoint does, for GET /_mock/ (docs/mock.md has the details).
local SUMMARIES = {
   ["/_mock/"] = "this list",
   ["/_mock/health"] = "liveness: {ok, port}",
   ["/_mock/deposit"] = "record a deposit on a customer's purse (created if needed); the transaction",
   ["/_mock/transaction/update"] = "change a transaction's state or translationToAccountCompleted",
   ["/_mock/customers"] = "every customer, oldest first",
   ["/_mock/fault"] = "queue a fault for the next API requests (or accepted connections)",
   ["/_mock/config"] = "change delay, clock_skew_ms, max_page_size; the whole configuration",
   ["/_mock/requests"] = "the last request_log_size API requests, oldest first",
   ["/_mock/reset"] = "forget all state, faults, config, recorded requests and subscriptions",
   ["/_mock/shutdown"] = "stop the mock once this answer is out",
   ["/_mock/webhooks"] = "subscribe a loopback URL to signed webhooks ({clear = true} removes all)",
   ["/_mock/webhooks/emit"] = "send one event of any type to every subscription",
   ["/_mock/webhooks/deliveries"] = "the last 200 webhook deliveries and their state",
}

-- The control endpoints, sorted by path: { {path, methods, summary}, ... }.
local function endpoint_list()
   local paths = {}
   for path in pairs(control) do
      paths[#paths + 1] = path
   end
   table.sort(paths)
   local list = json.array()
   for _, path in ipairs(paths) do
      local methods = json.array()
      for _, m in ipairs({ "GET", "POST" }) do
         if control[path].methods[m] then
            methods[#methods + 1] = m
         end
      end
      list[#list + 1] = { path = path, methods = methods, summary = SUMMARIES[path] or "" }
   end
   return list
end

function Server:dispatch_control(c, req)
   local entry = control[req.path]
   if not entry then
      return self:respond(c, 404, json.encode({ error = "unknown control endpoint " .. req.path
         .. "; GET /_mock/ lists them", endpoints = endpoint_list() }))
   end
   if not entry.methods[req.method] then
      return self:respond(c, 405, json.encode({ error = "method not allowed" }))
   end
   local args = {}
   if req.body:match("%S") then
      args = json.decode(req.body)
      if type(args) ~= "table" or args[1] ~= nil then
         return self:respond(c, 400, json.encode({ error = "body must be a JSON object" }))
      end
   end
   local status, value, after = entry.handler(self, args)
   c.after_send = after
   self:respond(c, status, json.encode(value))
end

function Server:dispatch(c, req)
   c.keep_alive = req.keep_alive
   if req.path:sub(1, 7) == "/_mock/" then
      return self:dispatch_control(c, req)
   end
   return self:dispatch_api(c, req)
end

---------------------------------------------------------------------------------------------
-- Control endpoints
---------------------------------------------------------------------------------------------

local function bad(msg)
   return 400, { error = msg }
end

local function is_int(v, lo, hi)
   return type(v) == "number" and v == floor(v) and v >= lo and v <= hi
end

local function number_in(v, lo, hi)
   return type(v) == "number" and v >= lo and v <= hi
end

local function string_map(t)
   if type(t) ~= "table" then
      return false
   end
   for k, v in pairs(t) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
         return false
      end
   end
   return true
end

-- How a fault connection ends once its bytes are out (see Server:fault_send).
local AFTER = { close = true, reset = true, stall = true, drain = true }

-- Per-mode validation of a fault; fills defaults. Returns nil or an error message.
-- The modes (each takes `count`, default 1; all but accept_close strike API requests in order):
--   delay {seconds}         answer late             stall          never answer
--   close                   close without answer    malformed      truncated JSON, 200
--   html503                 an nginx 503 page       error {code, status, message}  Calypso error
--   raw {status, body, content_type, headers}       any answer
--   accept_close {rst}      close the next accepted connection before reading (rst: reset it
--                           once the request is in); strikes connections, not requests
--   partial {bytes, after}  promise the whole body, send `bytes` of it (default half), then
--                           after = "close" (FIN), "reset" (RST) or "stall"
--   trickle {chunk, interval}  the body `chunk` bytes (1) every `interval` seconds (0.1)
--   chunked {chunk}         the answer in Transfer-Encoding: chunked, `chunk`-byte chunks (16)
--   huge {size}             a 200 JSON object of exactly `size` bytes (9 MiB)
--   wire {data, after}      these exact bytes instead of an answer, then close/reset/stall/drain
--   refuse {seconds}        answer normally, then refuse new connections for `seconds` (the
--                           listening socket is closed and reopened on the same port)
-- Every mode that answers also takes `chunk` to send its body chunked.
local FAULT_CHECKS = {
   delay = function(f)
      if not number_in(f.seconds, 0, MAX_DELAY) then
         return "delay needs seconds between 0 and " .. MAX_DELAY
      end
   end,
   stall = function() end,
   close = function() end,
   malformed = function() end,
   html503 = function() end,
   raw = function(f)
      f.status = f.status or 200
      f.body = f.body or ""
      f.content_type = f.content_type or "application/json"
      if not is_int(f.status, 200, 599) then -- a lone 1xx would leave the client waiting
         return "raw needs an integer status in 200..599"
      end
      if type(f.body) ~= "string" or type(f.content_type) ~= "string" then
         return "raw needs string body and content_type"
      end
      if f.headers ~= nil and not string_map(f.headers) then
         return "raw headers must be an object of strings"
      end
   end,
   accept_close = function(f)
      if f.rst ~= nil and type(f.rst) ~= "boolean" then
         return "accept_close rst must be a boolean"
      end
   end,
   partial = function(f)
      f.after = f.after or "close"
      if f.bytes ~= nil and not is_int(f.bytes, 0, MAX_BODY) then
         return "partial bytes must be an integer >= 0"
      end
      if not AFTER[f.after] or f.after == "drain" then
         return "partial after must be close, reset or stall"
      end
   end,
   trickle = function(f)
      if f.interval ~= nil and not number_in(f.interval, 0.001, 10) then
         return "trickle interval must be seconds between 0.001 and 10"
      end
   end,
   chunked = function() end,
   refuse = function(f)
      if not number_in(f.seconds, 0.001, 60) then
         return "refuse needs seconds between 0.001 and 60"
      end
   end,
   huge = function(f)
      f.size = f.size or 9 * 1024 * 1024
      if not is_int(f.size, 16, MAX_HUGE) then
         return "huge size must be an integer from 16 to " .. MAX_HUGE
      end
   end,
   wire = function(f)
      f.after = f.after or "close"
      if type(f.data) ~= "string" then
         return "wire needs the bytes to send as a string `data`"
      end
      if not AFTER[f.after] then
         return "wire after must be close, reset, stall or drain"
      end
   end,
   error = function(f)
      f.code = f.code or "000"
      if type(f.code) ~= "string" or not f.code:match("^%d%d%d$") then
         return "error code must be a three-digit string such as \"004\""
      end
      f.status = f.status or state.error_status(f.code)
      if not is_int(f.status, 200, 599) then
         return "error status must be an integer in 200..599"
      end
      if f.message ~= nil and type(f.message) ~= "string" then
         return "error message must be a string"
      end
   end,
}

local function add_fault(self, args)
   local check = FAULT_CHECKS[args.mode]
   if not check then
      return bad("mode must be one of delay, stall, close, malformed, html503, raw, error, "
         .. "accept_close, partial, trickle, chunked, huge, wire, refuse")
   end
   args.count = args.count or 1
   if not is_int(args.count, 1, 1000000) then
      return bad("count must be an integer >= 1")
   end
   if args.chunk ~= nil and not is_int(args.chunk, 1, 1024 * 1024) then
      return bad("chunk must be an integer number of bytes >= 1")
   end
   local msg = check(args)
   if msg then
      return bad(msg)
   end
   local queue = args.mode == "accept_close" and self.accept_faults or self.faults
   if #queue >= MAX_FAULTS then
      return bad("too many queued faults")
   end
   args.remaining = args.count
   queue[#queue + 1] = args
   return 200, { ok = true, queued = #queue }
end

local function set_config(self, args)
   local cfg = self.config
   if args.delay ~= nil and not number_in(args.delay, 0, MAX_DELAY) then
      return bad("delay must be seconds between 0 and " .. MAX_DELAY)
   end
   if args.clock_skew_ms ~= nil and not is_int(args.clock_skew_ms, -1e12, 1e12) then
      return bad("clock_skew_ms must be an integer number of milliseconds")
   end
   if args.max_page_size ~= nil and not is_int(args.max_page_size, 1, 100000) then
      return bad("max_page_size must be an integer >= 1")
   end
   cfg.delay = args.delay or cfg.delay
   cfg.clock_skew_ms = args.clock_skew_ms or cfg.clock_skew_ms
   cfg.max_page_size = args.max_page_size or cfg.max_page_size
   state.set_max_page_size(self.state, cfg.max_page_size)
   return 200, cfg
end

-- Wraps a state control operation (nil, message, status on failure).
local function state_op(fn)
   return function(self, args)
      local value, msg, status = fn(self.state, args, self:now_ms())
      if value == nil then
         return status, { error = msg }
      end
      return 200, value
   end
end

local POST, READ = { POST = true }, { GET = true, POST = true }

control["/_mock/deposit"] = { methods = POST, handler = state_op(state.deposit) }
control["/_mock/transaction/update"] = {
   methods = POST, handler = state_op(state.update_transaction) }
control["/_mock/fault"] = { methods = POST, handler = add_fault }
control["/_mock/config"] = { methods = POST, handler = set_config }
control["/_mock/requests"] = {
   methods = READ, handler = function(self) return 200, self:recorded_requests() end }
control["/_mock/reset"] = {
   methods = POST, handler = function(self) self:reset(); return 200, { ok = true } end }
control["/_mock/"] = {
   methods = READ, handler = function() return 200, { endpoints = endpoint_list() } end }
control["/_mock/customers"] = {
   methods = READ, handler = function(self) return 200, state.customers(self.state) end }
control["/_mock/health"] = {
   methods = READ, handler = function(self) return 200, { ok = true, port = self.port } end }
control["/_mock/shutdown"] = {
   methods = POST,
   handler = function(self)
      -- Stop once the answer is out, or after a short grace period if the peer stops reading.
      self.stop_at = gettime() + DRAIN_TIMEOUT
      return 200, { ok = true }, function() self.running = false end
   end,
}
webhooks.install(control) -- /_mock/webhooks*, and deposits/updates announce themselves

---------------------------------------------------------------------------------------------
-- Event loop
---------------------------------------------------------------------------------------------

-- Closes idle or lingering connections (bounds resources held by silent peers).
function Server:sweep(now)
   for _, c in pairs(self.conns) do
      if (c.phase == "head" or c.phase == "body" or c.phase == "handshake")
            and now - c.last_active > IDLE_TIMEOUT then
         self:close(c)
      elseif c.phase == "drain" and now > c.drain_until then
         self:close(c)
      end
   end
end

function Server:select_sets()
   local readers, writers = {}, {}
   if self.nconns < MAX_CONNECTIONS and self.listener then
      readers[1] = self.listener
   end
   for sock, c in pairs(self.conns) do
      local p = c.phase
      if p == "head" or p == "body" or p == "stall" or p == "drain" or p == "handshake" then
         readers[#readers + 1] = sock
      end
      if c.out or c.want_write then
         writers[#writers + 1] = sock
      end
   end
   return readers, writers
end

-- One heartbeat byte to the parent; false once the pipe is gone (luasocket ignores SIGPIPE,
-- so the write fails with EPIPE instead of killing us).
local function beat()
   local ok = io.stdout:write("\n")
   if ok then
      ok = io.stdout:flush()
   end
   return ok and true or false
end

-- One select round: waits at most until `wake_at`, then serves whatever is ready.
function Server:step(wake_at)
   local readers, writers = self:select_sets()
   local timeout = max(0, min(wake_at, self:next_timer()) - gettime())
   local readable, writable = socket_select(readers, writers, timeout)
   for _, sock in ipairs(writable or {}) do
      local c = self.conns[sock]
      if c and c.phase == "handshake" then
         self:handshake(c)
      elseif c and c.out then
         self:flush(c)
      end
   end
   for _, sock in ipairs(readable or {}) do
      if self.listener and sock == self.listener then
         self:accept_all()
      elseif self.conns[sock] then
         self:on_readable(self.conns[sock])
      end
   end
   self:run_timers(gettime())
end

--- Serves until shut down, the lifetime ends or (with heartbeat) the parent goes away.
function Server:run()
   local now = gettime()
   local deadline = self.lifetime > 0 and now + self.lifetime or math.huge
   local tick = now + 1 -- heartbeat and idle sweep, once a second
   while self.running do
      now = gettime()
      if now >= deadline or (self.stop_at and now >= self.stop_at) then
         break
      end
      if now >= tick then
         tick = now + 1
         if self.heartbeat and not beat() then
            break
         end
         self:sweep(now)
      end
      self:step(min(tick, deadline, self.stop_at or math.huge))
   end
   self:close_all()
end

function Server:close_all()
   for _, c in pairs(self.conns) do
      self:close(c)
   end
   if self.listener then
      self.listener:close()
      self.listener = nil
   end
   self.running = false
end

-- Seeds math.random from the kernel so two mocks never hand out the same ids.
local function seed_random()
   local seed
   local f = io.open("/dev/urandom", "rb")
   if f then
      local bytes = f:read(4)
      f:close()
      if bytes and #bytes == 4 then
         local a, b, c, d = bytes:byte(1, 4)
         seed = ((a * 256 + b) * 256 + c) * 128 + floor(d / 2) -- 31 bits
      end
   end
   math.randomseed(seed or floor(gettime() * 1000) % 2147483647)
end

--- Runs the mock in this process until it is shut down. opts: host ("127.0.0.1"; only
-- loopback unless allow_non_loopback), port (0 = any free port), key, secret, account,
-- lifetime (seconds, default 3600; 0 = no limit), request_log_size (API requests kept for
-- /_mock/requests, default 200, 0 = none, at most 100000), heartbeat (write "\n" to stdout every
-- second and exit when that fails), log (request log on stderr), on_listen (function(port)
-- called after the LISTENING line).
function M.main(opts)
   opts = opts or {}
   seed_random()
   local srv = M.new(opts)
   io.stdout:write("LISTENING ", tostring(srv.port), "\n")
   io.stdout:flush()
   if opts.on_listen then
      opts.on_listen(srv.port)
   end
   srv:run()
   return true
end

return M

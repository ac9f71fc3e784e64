-- calypso.mock.conn: the mock's connections, from accept to close, over non-blocking sockets
-- (luasocket, or luasec with the tls option). Each connection walks through phases:
--   handshake  TLS only: the server handshake, a step whenever the socket is ready
--   head       reading a request head           body    reading a Content-Length body
--   wait       answer computed, held by a timer (delays never block other connections)
--   respond    writing the answer (partial writes resume when the socket is writable)
--   fault      writing what a fault sends (calypso.mock.faults), then ending as it says
--   stall      fault "stall": never answered, read and discarded until the peer closes
--   drain      after a `Connection: close` answer: our side is shut down, we read until the
--              peer closes so that unread request bytes do not turn our answer into a TCP reset
-- Only head/body/stall/drain connections are read, so pipelined requests are answered in order.
-- The bytes are parsed and formatted by calypso.mock.http; a complete request goes to
-- Server:dispatch (calypso.mock.server). The functions in `methods` are Server methods.

local socket = require("socket")
local http = require("calypso.mock.http")
local state = require("calypso.mock.state")

local M = {}

local tostring, tonumber = tostring, tonumber
local format, concat = string.format, table.concat
local min = math.min
local gettime = socket.gettime

local RECV_SIZE = 64 * 1024
local IDLE_TIMEOUT = 60             -- seconds a connection may sit in head/body without data
M.DRAIN_TIMEOUT = 2                 -- seconds we wait for the peer to close after our answer
local DRAIN_TIMEOUT = M.DRAIN_TIMEOUT
-- select() cannot watch descriptors beyond FD_SETSIZE; keep room for stdio and the listener.
M.MAX_CONNECTIONS = min(1000, (socket._SETSIZE or 1024) - 24)
local MAX_CONNECTIONS = M.MAX_CONNECTIONS
-- Non-blocking I/O that has to wait: luasocket says "timeout", luasec "wantread"/"wantwrite".
local WOULD_BLOCK = { timeout = true, wantread = true, wantwrite = true }
local MAX_HEAD = http.MAX_HEAD

--- Binds a listening socket; raises with a clear message on failure. Returns it and its port.
function M.listen(host, port)
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

local Server = {} -- methods of the Server (calypso.mock.server)
M.methods = Server

---------------------------------------------------------------------------------------------
-- Output
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
-- (A plain function, not a Server method: it needs only the connection.)
local function start_drain(c)
   c.phase = "drain"
   c.drain_until = gettime() + DRAIN_TIMEOUT
   if not c.tls then -- a luasec connection cannot half-close; it just waits for the peer
      c.sock:shutdown("send")
   end
end
M.start_drain = start_drain

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
      return start_drain(c)
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

-- Builds the response head for `c` (calypso.mock.http); a header in `extra` that changes the
-- framing turns keep-alive off.
function Server:response_head(c, status, length, content_type, extra)
   local head
   head, c.keep_alive = http.response_head(status, length, content_type, extra, c.keep_alive,
      self:now_ms())
   return head
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
-- Input
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
      local req, head_len, status = http.parse_head(c.inbuf)
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

return M

-- calypso.mock.faults: fault injection. POST /_mock/fault queues a fault (add, validated by
-- FAULT_CHECKS below); each API request takes one use of the fault at the head of the queue
-- (next_fault) and the accept-time mode accept_close strikes connections instead
-- (accept_fault). Server:dispatch_api (calypso.mock.server) applies what it took: answers that
-- replace the API's (fault_answer), answers delivered wrong on purpose (deliver_fault,
-- fault_send), and refusing new connections for a while (refuse_connections).
-- The functions in `methods` are Server methods.

local socket = require("socket")
local state = require("calypso.mock.state")
local http = require("calypso.mock.http")
local conn = require("calypso.mock.conn")
local argcheck = require("calypso.mock.check")

local M = {}

local type, tostring = type, tostring
local format, concat = string.format, table.concat
local floor, min, max = math.floor, math.min, math.max
local gettime = socket.gettime
local bad, is_int, number_in, string_map = argcheck.bad, argcheck.is_int, argcheck.number_in,
   argcheck.string_map

local MAX_FAULTS = 1000
M.MAX_DELAY = 3600
local MAX_DELAY = M.MAX_DELAY
local MAX_BODY = http.MAX_BODY
local MAX_HUGE = 64 * 1024 * 1024 -- bytes of the largest "huge" body

-- What the "malformed" fault sends: valid start, cut off mid-string.
local MALFORMED_BODY = '{"id":"3fa85f64-5717'

-- What the "html503" fault sends: the page nginx answers when its upstream is down.
local HTML_503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
   .. "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
   .. "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

local Server = {} -- methods of the Server (calypso.mock.server)
M.methods = Server

---------------------------------------------------------------------------------------------
-- The queues
---------------------------------------------------------------------------------------------

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

-- The answer a fault puts in place of the API's: status, body, content type, extra headers;
-- nothing for the modes that answer as the API would.
function Server:fault_answer(fault)
   local mode = fault.mode
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
      local ok, sock = pcall(conn.listen, self.host, self.port)
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
M.DELIVERY_FAULTS = { partial = true, trickle = true, chunked = true }

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
      return conn.start_drain(c)
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


---------------------------------------------------------------------------------------------
-- Queuing a fault (POST /_mock/fault)
---------------------------------------------------------------------------------------------

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
--   unsolicited {data, seconds}  the normal answer, kept alive, then `data` on the same
--                           connection `seconds` (0.15) later, unasked
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
   unsolicited = function(f)
      f.seconds = f.seconds or 0.15
      if type(f.data) ~= "string" or not number_in(f.seconds, 0, MAX_DELAY) then
         return "unsolicited needs a string `data` and seconds between 0 and " .. MAX_DELAY
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
         .. "accept_close, partial, trickle, chunked, huge, wire, refuse, unsolicited")
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

--- The handler of POST /_mock/fault: handler(server, args) -> status, value.
M.add = add_fault

return M

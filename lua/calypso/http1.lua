-- calypso.http1: reads one HTTP/1.1 response (RFC 9112) from a socket-like object, bounded in
-- memory and in time. Bytes in; status, headers we act on and body, or a failure kind, out.
--
--   local http1 = require "calypso.http1"
--   local res, f = http1.read(sock, deadline, now, max_body [, armed])
--   -- res: { status =, body =, close = (the connection must not be reused), date =, retry_after = }
--   -- f:   { kind = "network" | "timeout" | "too_large", detail =, nothing = (no byte arrived;
--   --        the connection ended: what a dead kept-alive connection looks like),
--   --        head = (status, date, retry_after once the head was read) }
--
-- `sock` needs two methods, those of an ngx.socket.tcp cosocket:
--   sock:receiveany(max) -> data (1..max bytes, as soon as any arrived) | nil, err
--                           (err "timeout", "closed" or any other message)
--   sock:settimeout(ms)  -> the time one receiveany may wait
-- `now()` gives the time in seconds on the clock of `deadline` (ngx.now inside nginx: cached,
-- refreshed by nginx's event loop after every wait). Before every read the socket's timeout is
-- set to the time left (only when the clock moved since the last time: a read served from
-- buffered bytes does not wait), and no time left fails with "timeout": a trickle cannot keep a
-- call alive past `deadline`. `armed`: the now() value at which the caller last set the
-- timeouts to the time left (nil: not set).
--
-- Memory: no line (status, header, chunk size, trailer) may take more than MAX_HEAD_BYTES; a
-- longer one fails as soon as that many bytes arrived without its end. The status line and
-- headers together take at most MAX_HEAD_BYTES and MAX_HEADERS lines, as do the trailers; at
-- most MAX_INTERIM 1xx answers are skipped. Bodies stop at max_body (kind too_large). A read
-- never asks for more than READ_SIZE bytes.
--
-- Strict framing: the status line is HTTP/1.0 or HTTP/1.1, one space, exactly three digits,
-- then the end of the line or a space and a reason; status 100-999 (1xx other than 101 are
-- skipped; an unasked 101 is an error). Header names are tokens followed directly by ":";
-- an obs-fold continues a field (and is an error after Content-Length or Transfer-Encoding).
-- The only transfer coding is "chunked" (anything else, or any coding in an HTTP/1.0 answer,
-- is an error); chunk sizes are hex digits (at most 16), optionally followed by ";extensions";
-- Content-Length is digits, and differing values are an error. Content-Encoding is not
-- interpreted: the bytes are handed over as they came (the libcurl path does the same).
-- Lines end with CRLF or a bare LF.
--
-- Pure Lua, in the common subset of Lua 5.1-5.4 and LuaJIT.
local M = {}

local byte, find, lower, match, sub = string.byte, string.find, string.lower, string.match, string.sub
local concat = table.concat
local floor, min = math.floor, math.min
local tonumber, tostring = tonumber, tostring

local MAX_HEAD_BYTES = 64 * 1024 -- status line + headers, or the trailers; also any one line
local MAX_HEADERS = 100          -- header lines per head, trailer lines per body
local MAX_INTERIM = 10           -- 1xx answers skipped before the real one
local READ_SIZE = 64 * 1024      -- the most one read asks for
M.MAX_HEAD_BYTES, M.MAX_HEADERS, M.MAX_INTERIM, M.READ_SIZE = MAX_HEAD_BYTES, MAX_HEADERS, MAX_INTERIM,
   READ_SIZE

local function failure(kind, detail)
   return { kind = kind, detail = detail }
end

-- One read of at most `max` bytes with the time left. Returns data or nil, failure
-- (failure.closed: the peer ended the connection).
local function fill(r, max, what)
   local now = r.now()
   if now ~= r.armed then
      local ms = floor((r.deadline - now) * 1000)
      if ms < 1 then
         return nil, failure("timeout", "timed out while reading " .. what)
      end
      r.sock:settimeout(ms)
      r.armed = now
   end
   local data, err = r.sock:receiveany(max)
   if not data then
      err = tostring(err)
      local f = failure(err == "timeout" and "timeout" or "network", err .. " while reading " .. what)
      f.closed = err == "closed"
      f.nothing = not r.got and err ~= "timeout"
      return nil, f
   end
   r.got = true
   return data
end

-- The next line, without its CRLF or LF, and the bytes it took; nil, failure when it does not
-- end within `limit` bytes (its end included) or the connection fails first.
local function line(r, limit, what)
   local buf, pos = r.buf, r.pos
   local e = find(buf, "\n", pos, true)
   if not e then
      local have = #buf - pos + 1
      if have == 0 then -- the usual case: nothing buffered, one read brings the whole line
         local data, f = fill(r, READ_SIZE, what)
         if not data then return nil, f end
         buf, pos = data, 1
         e = find(buf, "\n", 1, true)
      end
      if not e then
         local parts, n = { sub(buf, pos) }, 1
         have = #parts[1]
         while true do
            if have >= limit then
               return nil, failure("network", what .. " longer than " .. limit .. " bytes")
            end
            local data, f = fill(r, READ_SIZE, what)
            if not data then return nil, f end
            n = n + 1
            parts[n] = data
            local x = find(data, "\n", 1, true)
            if x then
               e = have + x
               break
            end
            have = have + #data
         end
         buf, pos = concat(parts, "", 1, n), 1
      end
      r.buf = buf
   end
   local used = e - pos + 1
   if used > limit then
      return nil, failure("network", what .. " longer than " .. limit .. " bytes")
   end
   r.pos = e + 1
   local stop = e - 1
   if stop >= pos and byte(buf, stop) == 13 then stop = stop - 1 end
   return sub(buf, pos, stop), used
end

-- Collects body pieces. Every JOIN pieces are joined into one, so that many tiny pieces (one-
-- byte chunks, one-byte reads) cost little more memory than the bytes they carry.
local JOIN = 256

local function collector(first)
   local acc = { n = 0, big = {}, bn = 0 }
   if first and first ~= "" then acc[1], acc.n = first, 1 end
   return acc
end

local function push(acc, s)
   local n = acc.n + 1
   acc[n] = s
   if n == JOIN then
      local b = acc.bn + 1
      acc.big[b] = concat(acc, "", 1, n)
      acc.bn, n = b, 0
   end
   acc.n = n
end

local function joined(acc)
   local b = acc.bn + 1
   acc.big[b] = concat(acc, "", 1, acc.n)
   return concat(acc.big, "", 1, b)
end

-- Exactly n (> 0) bytes, reading no further than that.
local function take(r, n, what)
   local buf, pos = r.buf, r.pos
   local have = #buf - pos + 1
   if have >= n then
      r.pos = pos + n
      return sub(buf, pos, pos + n - 1)
   end
   local acc = collector(have > 0 and sub(buf, pos) or nil)
   r.buf, r.pos = "", 1
   while have < n do
      local data, f = fill(r, min(n - have, READ_SIZE), what)
      if not data then return nil, f end
      push(acc, data)
      have = have + #data
   end
   return joined(acc)
end

-- "HTTP/1.x ddd" + (end | " " reason) -> status, whether HTTP/1.0; nil when malformed.
local function parse_status(s)
   local h, t1, t2, p, slash, one, dot, minor, sp, d1, d2, d3, after = byte(s, 1, 13)
   if h ~= 72 or t1 ~= 84 or t2 ~= 84 or p ~= 80 or slash ~= 47 or one ~= 49 or dot ~= 46
      or (minor ~= 48 and minor ~= 49) or sp ~= 32 or (after ~= nil and after ~= 32)
      or not (d1 and d1 >= 48 and d1 <= 57 and d2 and d2 >= 48 and d2 <= 57 and d3 and d3 >= 48 and d3 <= 57) then
      return nil
   end
   return (d1 - 48) * 100 + (d2 - 48) * 10 + (d3 - 48), minor == 48
end

-- First bytes (either case) of the header names we act on: Connection, Content-Length,
-- Date, Retry-After, Transfer-Encoding. Other fields are only checked for a well-formed name.
local WANTED_FIRST = { [67] = true, [99] = true, [68] = true, [100] = true, [82] = true, [114] = true,
                       [84] = true, [116] = true }
local TOKEN_COLON = "^[%w!#$%%&'*+%-%.%^_`|~]+:"
local OWS = { [32] = true, [9] = true }

local function trim(s)
   local i, n = 1, #s
   while i <= n and OWS[byte(s, i)] do i = i + 1 end
   while n >= i and OWS[byte(s, n)] do n = n - 1 end
   return sub(s, i, n)
end

-- Content-Length: "16" or a list of equal values ("16, 16"); nil when malformed or differing.
local function content_length(value, known)
   local n = known
   for v in (value .. ","):gmatch("([^,]*),") do
      v = trim(v)
      if not find(v, "^%d+$") then return nil end
      local x = tonumber(v)
      if n and n ~= x then return nil end
      n = x
   end
   return n
end

-- The status line and headers of one final answer (1xx skipped). Returns head
-- { status, close, http10, length, te, date, retry_after } or nil, failure.
local function read_head(r)
   for _ = 0, MAX_INTERIM do
      local s, used = line(r, MAX_HEAD_BYTES, "the status line")
      if not s then return nil, used end
      local status, http10 = parse_status(s)
      if not status then
         return nil, failure("network", "malformed status line from the server")
      elseif status < 100 then
         return nil, failure("network", "invalid status " .. sub(s, 10, 12) .. " from the server")
      elseif status == 101 then
         return nil, failure("network", "unrequested 101 Switching Protocols from the server")
      end
      local head = { status = status, close = http10, http10 = http10 }
      local count, last, closing = 0, nil, false
      while true do
         local h, n = line(r, MAX_HEAD_BYTES - used, "the response headers")
         if not h then return nil, n end
         used = used + n
         if h == "" then break end
         count = count + 1
         if count > MAX_HEADERS then
            return nil, failure("network", "more than " .. MAX_HEADERS .. " response header lines")
         end
         local b = byte(h, 1)
         if OWS[b] then -- obs-fold: continues the previous field
            if count == 1 or last == "content-length" or last == "transfer-encoding" then
               return nil, failure("network", "folded header line where none may be")
            end
            -- a Connection field goes on: a close there still counts
            if last == "connection" and find(lower(h), "close", 1, true) then
               head.close, closing = true, true
            end
         else
            local _, colon = find(h, TOKEN_COLON)
            if not colon then
               return nil, failure("network", "malformed response header line")
            end
            last = nil
            if WANTED_FIRST[b] then
               local name = lower(sub(h, 1, colon - 1))
               if name == "content-length" then
                  local v = content_length(sub(h, colon + 1), head.length)
                  if not v then
                     return nil, failure("network", "invalid Content-Length in the response")
                  end
                  head.length, last = v, name
               elseif name == "transfer-encoding" then
                  local v = lower(trim(sub(h, colon + 1)))
                  head.te, last = head.te and (head.te .. "," .. v) or v, name
               elseif name == "connection" then
                  last = name
                  local v = lower(sub(h, colon + 1))
                  if find(v, "close", 1, true) then
                     head.close, closing = true, true
                  elseif find(v, "keep-alive", 1, true) and not closing then
                     head.close = false
                  end
               elseif name == "date" then
                  head.date = trim(sub(h, colon + 1))
               elseif name == "retry-after" then
                  head.retry_after = trim(sub(h, colon + 1))
               end
            end
         end
      end
      if status >= 200 then return head end
      -- 1xx interim answer (no body): the real one follows
   end
   return nil, failure("network", "more than " .. MAX_INTERIM .. " interim (1xx) responses")
end

-- A chunked body of at most max bytes.
local function read_chunked(r, max)
   local acc, total = collector(), 0
   while true do
      local s, f = line(r, MAX_HEAD_BYTES, "a chunk size")
      if not s then return nil, f end
      local digits = match(s, "^%x+")
      if not digits or #digits > 16 then
         return nil, failure("network", "malformed chunk size in the response")
      end
      -- 13 significant hex digits (2^52) are far past any max_response_size and stay exact
      -- in a double; longer ones would wrap to a negative integer on 5.3/5.4
      if #match(digits, "^0*(.*)$") > 13 then
         return nil, failure("too_large", "chunk larger than max_response_size")
      end
      if #s > #digits and not find(s, "^[ \t]*;", #digits + 1) and not find(s, "^[ \t]*$", #digits + 1) then
         return nil, failure("network", "malformed chunk size in the response")
      end
      local size = tonumber(digits, 16)
      if size == 0 then
         local used = 0
         for _ = 1, MAX_HEADERS + 1 do
            local t, n = line(r, MAX_HEAD_BYTES - used, "the chunked trailer")
            if not t then return nil, n end
            if t == "" then return joined(acc) end
            used = used + n
         end
         return nil, failure("network", "more than " .. MAX_HEADERS .. " trailer lines")
      end
      total = total + size
      if total > max then
         return nil, failure("too_large", "chunked body larger than max_response_size")
      end
      local data
      data, f = take(r, size, "a chunk")
      if not data then return nil, f end
      push(acc, data)
      s, f = line(r, 2, "a chunk end")
      if not s then return nil, f end
      if s ~= "" then
         return nil, failure("network", "malformed chunk end in the response")
      end
   end
end

-- A body that ends when the server closes the connection.
local function read_to_close(r, max)
   local buf, pos = r.buf, r.pos
   local acc, total = collector(sub(buf, pos)), #buf - pos + 1
   r.buf, r.pos = "", 1
   while total <= max do
      local data, f = fill(r, READ_SIZE, "the response body")
      if not data then
         if f.closed then return joined(acc) end
         return nil, f
      end
      push(acc, data)
      total = total + #data
   end
   return nil, failure("too_large", "body larger than max_response_size")
end

--- Reads one response; see the header comment.
function M.read(sock, deadline, now, max, armed)
   local r = { sock = sock, deadline = deadline, now = now, armed = armed, buf = "", pos = 1, got = false }
   local head, f = read_head(r)
   if not head then return nil, f end
   local status, body = head.status, nil
   if status == 204 or status == 304 then
      body = ""
      -- they have no body whatever their framing headers say: bytes announced anyway may
      -- still come, and must not become the next call's answer
      if head.te or (head.length and head.length > 0) then head.close = true end
   elseif head.te then
      if head.http10 then
         f = failure("network", "Transfer-Encoding in an HTTP/1.0 response")
      elseif head.te ~= "chunked" then
         f = failure("network", "unsupported Transfer-Encoding " .. head.te)
      else
         -- chunked wins over a Content-Length, but such a connection is not trusted again
         if head.length then head.close = true end
         body, f = read_chunked(r, max)
      end
   elseif head.length then
      if head.length > max then
         f = failure("too_large", "Content-Length larger than max_response_size")
      elseif head.length == 0 then
         body = ""
      else
         body, f = take(r, head.length, "the response body")
      end
   else
      head.close = true
      body, f = read_to_close(r, max)
   end
   if not body then
      f.head = head
      return nil, f
   end
   head.body = body
   -- bytes after the answer: whatever they are, they must not become the next call's answer
   if r.pos <= #r.buf then head.close = true end
   return head
end

return M

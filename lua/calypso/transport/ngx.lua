-- calypso.transport.ngx: the non-blocking transport for OpenResty / nginx + ngx_lua.
--
-- The C core does everything but the I/O: core:prepare_http(op, payload, head) validates,
-- encodes, signs and lays out the whole HTTP request; this module sends those bytes over an
-- ngx.socket.tcp cosocket (which yields to the nginx event loop instead of blocking the
-- worker) and hands status + body back to core:finish(op, ...), so both transports return
-- identical results and identical errors.
-- Transport failures go through core:failure(op, kind, detail, sent) in the same shape as the
-- libcurl path's.
--
--   local t = require("calypso.transport.ngx").new(core, { pool_size = 30, keepalive_timeout = 60 })
--   local res, msg, err = t:request("get_customer", { customerId = id })
--
-- Connections: reads go through a per-worker keep-alive pool named after scheme, host and port.
-- Writes (and anything core:prepare calls a write) always go out on a fresh connection that is
-- closed afterwards, so a dead pooled connection can never force a decision to resend a write.
-- A read that finds its pooled connection dead before any answer arrived is resent once on a
-- fresh connection, as libcurl does.

local M = {}

local ngx = rawget(_G, "ngx") -- nil outside nginx; M.available() then says false
local type, tonumber, tostring, error, pcall = type, tonumber, tostring, error, pcall
local setmetatable = setmetatable
local floor, min = math.floor, math.min
local byte, find, lower, match, sub, gsub = string.byte, string.find, string.lower, string.match,
   string.sub, string.gsub
local concat = table.concat

local MAX_HEADERS = 100          -- header lines per response
local MAX_HEAD_BYTES = 64 * 1024 -- status line + headers
local MAX_INTERIM = 10           -- 1xx answers skipped before the real one
local READ_CHUNK = 64 * 1024
local FRESH_POOL = "calypso:fresh" -- never filled: a connect() under this name is always new
local FRESH_OPTIONS = { pool = FRESH_POOL }

-- Phases in which ngx_lua allows cosockets (lua-nginx-module README, "ngx.socket.tcp":
-- rewrite_by_lua*, access_by_lua*, content_by_lua*, ngx.timer.*, ssl_certificate_by_lua*,
-- ssl_session_fetch_by_lua*, ssl_client_hello_by_lua*; stream-lua adds preread_by_lua*).
-- Not in init*, set*, header_filter*, body_filter*, log*, balancer*, exit_worker.
local COSOCKET_PHASES = {
   rewrite = true, access = true, content = true, timer = true, preread = true,
   ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

--- True when running inside nginx in a phase where cosockets are allowed.
function M.available()
   if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" or type(ngx.socket) ~= "table" then
      return false
   end
   local ok, phase = pcall(ngx.get_phase)
   return ok and COSOCKET_PHASES[phase] == true
end

-- Splits a base URL into scheme, host (brackets kept for IPv6), port, and whether the port
-- is the scheme's default. Raises on anything else (core options are already checked).
local function parse_base(url)
   local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
   scheme = scheme and lower(scheme)
   if scheme ~= "http" and scheme ~= "https" then
      error("calypso.transport.ngx: base_url must be http:// or https:// (got " .. tostring(url) .. ")", 3)
   end
   local authority = match(rest, "^([^/?#]*)")
   authority = gsub(authority, "^.*@", "")
   local host, port = match(authority, "^(%[[^%]]+%]):?(%d*)$")
   if not host then
      host, port = match(authority, "^([^:]+):?(%d*)$")
   end
   if not host or host == "" then
      error("calypso.transport.ngx: no host in base_url " .. url, 3)
   end
   local default_port = scheme == "https" and 443 or 80
   local p = tonumber(port) or default_port
   return scheme, lower(host), p, p == default_port
end

local Transport = {}
Transport.__index = Transport

--- Creates a transport for the C core client `core`. opts (all optional; other keys, such as
-- the core options calypso.new passes along, are ignored except insecure_skip_tls_verify,
-- which turns certificate checks off, and proxy, which raises: cosockets cannot use one):
--   pool_size          connections kept per pool (default: nginx's lua_socket_pool_size)
--   keepalive_timeout  seconds an idle pooled connection is kept (default:
--                      nginx's lua_socket_keepalive_timeout)
--   pool               pool name (default "calypso:<scheme>://<host>:<port>"). Pools are per
--                      worker and shared by every client with that name; a pooled TLS
--                      connection was verified under the lua_ssl_* settings of the location
--                      that opened it: give locations with different trust their own pool.
function M.new(core, opts)
   if type(core) ~= "userdata" and type(core) ~= "table" then
      error("calypso.transport.ngx.new: core client expected (got " .. type(core) .. ")", 2)
   end
   if type(ngx) ~= "table" or type(ngx.socket) ~= "table" then
      error("calypso.transport.ngx.new: not running inside nginx (no ngx.socket)", 2)
   end
   opts = opts or {}
   if type(opts) ~= "table" then
      error("calypso.transport.ngx.new: options must be a table", 2)
   end
   local info = core:info()
   -- core:info() does not tell these yet; calypso.new passes the core options along in opts
   local proxy = info.proxy or opts.proxy
   local insecure = info.insecure_skip_tls_verify or opts.insecure_skip_tls_verify
   if proxy ~= nil and proxy ~= "" then
      error("calypso.transport.ngx.new: the proxy option is not supported over cosockets "
         .. "(use transport = \"curl\", which blocks the nginx worker, or no proxy)", 2)
   end
   local pool_size, keepalive = opts.pool_size, opts.keepalive_timeout
   if pool_size ~= nil and (type(pool_size) ~= "number" or pool_size < 1 or pool_size ~= floor(pool_size)) then
      error("calypso.transport.ngx.new: pool_size must be a positive integer", 2)
   end
   if keepalive ~= nil and (type(keepalive) ~= "number" or keepalive <= 0) then
      error("calypso.transport.ngx.new: keepalive_timeout must be a positive number of seconds", 2)
   end
   if opts.pool ~= nil and type(opts.pool) ~= "string" then
      error("calypso.transport.ngx.new: pool must be a string", 2)
   end
   local scheme, host, port, default_port = parse_base(info.base_url)
   local connect_host = match(host, "^%[(.*)%]$") or host
   -- "calypso-purse/<v> [app]" from the core; this transport adds "ngx_lua/<v>" after the
   -- first token (and drops a libcurl token, should the core name one)
   local ua = gsub(gsub(info.user_agent, " libcurl/%S+", "", 1), " curl/%S+", "", 1)
   local lua_version = ngx and ngx.config and ngx.config.ngx_lua_version
   if lua_version then
      ua = gsub(ua, "^(%S+)", "%1 " .. ("ngx_lua/%d.%d.%d"):format(floor(lua_version / 1000000),
         floor(lua_version / 1000) % 1000, lua_version % 1000), 1)
   end
   -- The head that is the same for every request; path, Sign and length are added per call.
   local fixed = concat({
      "Host: " .. host .. (default_port and "" or ":" .. port),
      "Key: " .. info.key,
      "Content-Type: application/json",
      "Accept: application/json",
      "User-Agent: " .. ua,
   }, "\r\n")
   local pool = opts.pool or ("calypso:" .. scheme .. "://" .. host .. ":" .. port
      .. (insecure and ":noverify" or ""))
   return setmetatable({
      core = core,
      scheme = scheme, host = connect_host, port = port,
      tls = scheme == "https",
      verify = not insecure,
      pool_size = pool_size,
      connect_options = { pool = pool, pool_size = pool_size },
      keepalive_ms = keepalive and floor(keepalive * 1000) or nil,
      timeout = info.timeout,
      connect_timeout = info.connect_timeout,
      max = info.max_response_size,
      fixed_head = fixed,
      -- counters, for tests and debugging: connections opened, requests on a reused one,
      -- reads resent after a dead pooled connection; last_reused = getreusedtimes() of the
      -- connection the last request used
      stats = { connects = 0, reused = 0, resent = 0, last_reused = 0 },
   }, Transport)
end

-- Milliseconds left before the deadline (at least 1: a zero timeout would mean "default").
-- ngx.now() is nginx's cached time, which its event loop refreshes whenever it wakes up, so
-- after every cosocket wait; only the start of a request forces an update.
local function left_ms(deadline)
   local ms = floor((deadline - ngx.now()) * 1000)
   return ms, ms < 1 and 1 or ms
end

-- Sets the socket's three timeouts to the time left; returns the cached time it did so at.
-- While that clock stands still, nothing has waited since (a line that was already buffered
-- comes back without a wait), so the timeouts still are the time left, to nginx's
-- millisecond: readers re-arm only when it moved. Re-arming before every header line cost
-- more than parsing the line.
local function arm(sock, deadline)
   local _, ms = left_ms(deadline)
   sock:settimeouts(ms, ms, ms)
   return ngx.now()
end

-- A failure description: kind, detail, sent, and whether a fresh connection may be tried.
local function fail(kind, detail, sent, retry)
   return { kind = kind, detail = detail, sent = sent, retry = retry }
end

local function io_kind(err)
   return err == "timeout" and "timeout" or "network"
end

-- Opens (or takes from the pool) a connection and finishes TLS on it. Returns the socket or
-- nil, failure.
local function open(self, deadline, fresh)
   local sock, err = ngx.socket.tcp()
   if not sock then
      return nil, fail("connect", "cannot create a socket: " .. tostring(err), false)
   end
   local left, ms = left_ms(deadline)
   if left < 1 then
      return nil, fail("timeout", "no time left to connect", false)
   end
   local cms = min(ms, floor(self.connect_timeout * 1000))
   sock:settimeouts(cms < 1 and 1 or cms, ms, ms)
   local ok
   ok, err = sock:connect(self.host, self.port, fresh and FRESH_OPTIONS or self.connect_options)
   if not ok then
      err = tostring(err)
      local kind = err == "timeout" and "timeout"
         or ((find(err, "resolve", 1, true) or find(err, "resolver", 1, true)) and "resolve")
         or "connect"
      return nil, fail(kind, err .. " (" .. self.host .. ":" .. self.port .. ")", false)
   end
   local reused = sock:getreusedtimes() or 0
   if reused == 0 then
      self.stats.connects = self.stats.connects + 1
      if self.tls then
         arm(sock, deadline)
         ok, err = sock:sslhandshake(nil, self.host, self.verify)
         if not ok then
            sock:close()
            err = tostring(err)
            return nil, fail(err == "timeout" and "timeout" or "tls", "TLS handshake with " ..
               self.host .. ": " .. err, false)
         end
      end
   else
      self.stats.reused = self.stats.reused + 1
   end
   self.stats.last_reused = reused
   return sock, reused
end

-- Reads one CRLF line with the time left; returns it and the time the timeouts were armed
-- at, or nil, failure. `armed`: when they were last set (see arm; nil: set them now).
local function read_line(sock, deadline, what, armed)
   if ngx.now() ~= armed then
      armed = arm(sock, deadline)
   end
   local line, err, partial = sock:receive("*l")
   if not line then
      -- nothing at all arrived: what a dead keep-alive connection looks like
      local nothing = partial == nil or partial == ""
      return nil, fail(io_kind(err), tostring(err) .. " while reading " .. what, true,
         nothing and err ~= "timeout")
   end
   return line, armed
end

-- Reads exactly n bytes with the time left (`armed` as for read_line).
local function read_exact(sock, deadline, n, what, armed)
   if ngx.now() ~= armed then
      arm(sock, deadline)
   end
   local data, err = sock:receive(n)
   if not data then
      return nil, fail(io_kind(err), tostring(err) .. " while reading " .. what, true)
   end
   return data
end

-- First bytes (either case) of the header names read_head acts on: Connection, Content-Length,
-- Content-Encoding, Date, Retry-After, Transfer-Encoding. Other lines are skipped unparsed.
local WANTED_FIRST = { [67] = true, [99] = true, [68] = true, [100] = true, [82] = true, [114] = true,
                       [84] = true, [116] = true }
local SPACE = { [32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true }

local function digit(b)
   return b and b >= 48 and b <= 57
end

-- "HTTP/d.d ddd ..." -> status, whether it is HTTP/1.0; nil when malformed.
local function parse_status(line)
   local h, t1, t2, p, slash, major, dot, minor, sp, s1, s2, s3 = byte(line, 1, 12)
   if h ~= 72 or t1 ~= 84 or t2 ~= 84 or p ~= 80 or slash ~= 47 or dot ~= 46 or sp ~= 32
      or not (digit(major) and digit(minor) and digit(s1) and digit(s2) and digit(s3)) then
      return nil
   end
   return (s1 - 48) * 100 + (s2 - 48) * 10 + (s3 - 48), major == 49 and minor == 48
end

-- "Name : value " -> "name", "value" for the headers we act on, else nil. Plain finds and
-- byte tests: a backtracking pattern here cost ~3,000 instructions a header line.
local function header_field(line)
   if not WANTED_FIRST[byte(line, 1)] then return nil end
   local colon = find(line, ":", 2, true)
   if not colon then return nil end
   local e = colon - 1
   while e > 0 and SPACE[byte(line, e)] do e = e - 1 end
   local name = sub(line, 1, e)
   if find(name, "%s") then return nil end -- "Content Length: 1" names nothing
   local s, n = colon + 1, #line
   while s <= n and SPACE[byte(line, s)] do s = s + 1 end
   while n >= s and SPACE[byte(line, n)] do n = n - 1 end
   return lower(name), sub(line, s, n)
end

-- Reads the status line and headers. Returns a table { status, date, retry_after, length,
-- chunked, close, encoding, armed } or nil, failure; failure.retry is set when nothing of
-- the answer arrived (a dead pooled connection shows as "closed" right here). `armed` as
-- for read_line.
local function read_head(sock, deadline, armed)
   local head
   for _ = 1, MAX_INTERIM do
      local line, got = read_line(sock, deadline, "the status line", armed)
      if not line then
         got.retry = got.retry and head == nil -- closed/reset before any answer byte
         return nil, got
      end
      armed = got
      local status, http10 = parse_status(line)
      if not status then
         return nil, fail("network", "malformed status line from the server", true)
      end
      head = { status = status, close = http10, bytes = #line }
      for _ = 1, MAX_HEADERS + 1 do
         line, got = read_line(sock, deadline, "the response headers", armed)
         if not line then return nil, got end
         armed = got
         if line == "" then break end
         head.bytes = head.bytes + #line
         head.count = (head.count or 0) + 1
         if head.count > MAX_HEADERS or head.bytes > MAX_HEAD_BYTES then
            return nil, fail("network", "response headers too large", true)
         end
         local name, value = header_field(line)
         if name then
            if name == "content-length" then
               local n = match(value, "^%d+$") and tonumber(value)
               if not n or (head.length and head.length ~= n) then
                  return nil, fail("network", "invalid Content-Length in the response", true)
               end
               head.length = n
            elseif name == "transfer-encoding" then
               head.chunked = find(lower(value), "chunked", 1, true) ~= nil
               head.te = lower(value)
            elseif name == "connection" then
               local v = lower(value)
               if find(v, "close", 1, true) then
                  head.close = true
               elseif find(v, "keep-alive", 1, true) then
                  head.close = false
               end
            elseif name == "content-encoding" then
               head.encoding = lower(value)
            elseif name == "date" then
               head.date = value
            elseif name == "retry-after" then
               head.retry_after = value
            end
         end
      end
      if status >= 200 then
         head.armed = armed
         return head
      end
      -- 1xx interim answer: its headers are done, the real one follows
   end
   return nil, fail("network", "too many interim (1xx) responses", true)
end

-- Reads a chunked body; returns it or nil, failure.
local function read_chunked(sock, deadline, max)
   local parts, total = {}, 0
   while true do
      local line, f = read_line(sock, deadline, "a chunk size")
      if not line then return nil, f end
      local size = match(line, "^%s*(%x+)")
      size = size and #size <= 15 and tonumber(size, 16)
      if not size then
         return nil, fail("network", "malformed chunk size in the response", true)
      end
      if size == 0 then
         for _ = 1, MAX_HEADERS + 1 do -- trailers, up to an empty line
            line, f = read_line(sock, deadline, "the chunked trailer")
            if not line then return nil, f end
            if line == "" then return concat(parts) end
         end
         return nil, fail("network", "chunked trailer too large", true)
      end
      total = total + size
      if total > max then
         return nil, fail("too_large", "chunked body larger than max_response_size", true)
      end
      local data
      data, f = read_exact(sock, deadline, size, "a chunk")
      if not data then return nil, f end
      parts[#parts + 1] = data
      line, f = read_line(sock, deadline, "a chunk end")
      if not line then return nil, f end
      if line ~= "" then
         return nil, fail("network", "malformed chunk end in the response", true)
      end
      local left = left_ms(deadline)
      if left < 1 then
         return nil, fail("timeout", "timed out while reading the chunked body", true)
      end
   end
end

-- Reads a body that ends when the server closes the connection.
local function read_to_close(sock, deadline, max)
   local parts, total = {}, 0
   while true do
      local left, ms = left_ms(deadline)
      if left < 1 then
         return nil, fail("timeout", "timed out while reading the response body", true)
      end
      sock:settimeouts(ms, ms, ms)
      local data, err = sock:receiveany(min(READ_CHUNK, max - total + 1))
      if not data then
         if err == "closed" then return concat(parts) end
         return nil, fail(io_kind(err), tostring(err) .. " while reading the response body", true)
      end
      total = total + #data
      if total > max then
         return nil, fail("too_large", "body larger than max_response_size", true)
      end
      parts[#parts + 1] = data
   end
end

-- Reads the body that follows `head`; returns it or nil, failure.
local function read_body(self, sock, deadline, head)
   local status = head.status
   if status == 204 or status == 304 then
      return ""
   elseif head.chunked then
      return read_chunked(sock, deadline, self.max)
   elseif head.te and head.te ~= "identity" then
      return nil, fail("network", "unsupported Transfer-Encoding " .. head.te, true)
   elseif head.length then
      if head.length > self.max then
         return nil, fail("too_large", "Content-Length larger than max_response_size", true)
      end
      if head.length == 0 then return "" end
      return read_exact(sock, deadline, head.length, "the response body", head.armed)
   end
   head.close = true
   return read_to_close(sock, deadline, self.max)
end

-- One attempt on one connection: send, read. Returns head, body or nil, failure (with
-- failure.head once the status line and headers had arrived).
local function exchange(self, sock, deadline, request)
   local armed = arm(sock, deadline)
   local ok, err = sock:send(request)
   if not ok then
      -- a dead pooled connection may refuse the request outright: a read may go again
      return nil, fail(io_kind(err), tostring(err) .. " while sending the request", true,
         err ~= "timeout")
   end
   local head, f = read_head(sock, deadline, armed)
   if not head then return nil, f end
   local body
   if head.encoding and head.encoding ~= "identity" then
      f = fail("network", "unsupported Content-Encoding " .. head.encoding, true)
   else
      body, f = read_body(self, sock, deadline, head)
   end
   if not body then
      f.head = head
      return nil, f
   end
   return head, body
end

--- Sends one operation; returns exactly what the core's method would: the decoded result,
-- or nil, message, err. `deadline` (optional, seconds on the purse.now() clock) ends the call
-- earlier than `timeout` would, as client:deadline() does for libcurl; being per call, it is
-- safe with many calls in flight on one client.
function Transport:request(op, payload, deadline)
   local core = self.core
   -- the whole request, signed, in one string: request line, Sign, the fixed head,
   -- Content-Length (and Connection: close for writes), body
   local request, writes, err = core:prepare_http(op, payload, self.fixed_head)
   if not request then
      return nil, writes, err -- nil, message, err (invalid payload)
   end
   local limit = self.timeout
   if deadline ~= nil then
      local left = deadline - require("calypso.purse").now()
      if left <= 0 then
         return core:failure(op, "timeout", "the deadline passed before the request was sent", false)
      end
      limit = min(limit, left)
   end
   ngx.update_time()
   deadline = ngx.now() + limit
   -- Writes never ride on a pooled connection; a read whose pooled connection turns out dead
   -- before any answer is resent once on a fresh one.
   local fresh = writes and true or false
   local head, rbody, f
   for _ = 1, 2 do
      local sock, reused = open(self, deadline, fresh)
      if not sock then
         f = reused
         break
      end
      head, rbody = exchange(self, sock, deadline, request)
      if head then
         if writes or head.close then
            sock:close()
         elseif not sock:setkeepalive(self.keepalive_ms, self.pool_size) then
            sock:close()
         end
         return core:finish(op, head.status, rbody, head.date, head.retry_after)
      end
      f = rbody
      sock:close()
      if not (f.retry and reused > 0 and not writes) then
         break
      end
      self.stats.resent = self.stats.resent + 1
      fresh = true
   end
   -- as on the libcurl path: what the answer's head said before the failure
   local head = f.head
   if head then
      return core:failure(op, f.kind, f.detail, f.sent, head.status, head.date, head.retry_after)
   end
   return core:failure(op, f.kind, f.detail, f.sent)
end

return M

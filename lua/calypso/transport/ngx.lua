-- calypso.transport.ngx: the non-blocking transport for OpenResty / nginx + ngx_lua.
--
-- The C core does everything but the I/O: core:prepare_http(op, payload, head) validates,
-- encodes, signs and lays out the whole HTTP request; this module sends those bytes over an
-- ngx.socket.tcp cosocket (which yields to the nginx event loop instead of blocking the
-- worker) and hands status + body back to core:finish(op, ...), so both transports return
-- identical results and identical errors.
-- Transport failures go through core:failure(op, kind, detail, sent) in the same shape as the
-- libcurl path's. The answer is read by calypso.http1 (strict RFC 9112 framing, every line and
-- body bounded, every read bounded by the time left before the call's deadline).
--
--   local t = require("calypso.transport.ngx").new(core, { pool_size = 30, keepalive_timeout = 60 })
--   local res, msg, err = t:request("get_customer", { customerId = id })
--
-- Connections: calls go through a per-worker keep-alive pool named after scheme, host and port.
-- A write (anything core:prepare_http calls a write) rides a pooled connection only while that
-- connection was used within write_reuse_idle seconds (a core option, default 2; 0: every write
-- on a fresh connection, closed afterwards), and is never resent: a write whose connection dies
-- is reported (network, sent = true) for the caller to decide. A read that finds its pooled
-- connection dead before any answer arrived is resent once on a fresh connection, as libcurl
-- does. TLS: a new connection offers the last session of its pool
-- and server in this worker (kept for at most MAX_SESSIONS of them), to resume the handshake.

local M = {}

local ngx = rawget(_G, "ngx") -- nil outside nginx; M.available() then says false
local ngx_now = ngx and ngx.now
local read_response = require("calypso.http1").read
local type, tonumber, tostring, error, pcall = type, tonumber, tostring, error, pcall
local setmetatable = setmetatable
local floor, min = math.floor, math.min
local find, lower, match, gsub = string.find, string.lower, string.match, string.gsub
local concat = table.concat

local MAX_SESSIONS = 64 -- TLS sessions kept per worker (one per pool name), to resume handshakes

-- The last TLS session per pool name and server (host, port, verification) in this worker: a new
-- connection offers it, and a server that allows it resumes instead of a full handshake.
-- Bounded: when MAX_SESSIONS names are kept and a new one comes, they are all dropped.
local sessions, session_count = {}, 0

-- When each connection idling in a pool was last used, per pool name in this worker: ngx_lua
-- keeps a pool last in, first out (setkeepalive puts a connection at the head, connect takes
-- the head), so this stack mirrors it: pushed on setkeepalive with the connection's reuse count,
-- popped when connect hands out a pooled connection. A connection nginx drops from a pool
-- (idle timeout, the server closed it or spoke out of turn) leaves its entry behind, and then
-- the stack no longer lines up with the pool: the entry popped would carry another
-- connection's time. The reuse count catches that (the connection handed out must have been
-- reused once more than when its entry was pushed) unless the two connections happened to have
-- the same count; on a mismatch the pool's times are all unknown (the stack is dropped), and
-- an unknown time counts as stale for a write. A miss costs a write that meets a server's
-- keep-alive timeout a failure (network, sent = true), never a second copy. Bounded per pool; names
-- beyond MAX_SESSIONS reset the table.
local idle_since, idle_count = {}, 0
local MAX_IDLE_ENTRIES = 1024

local function idle_stack(pool)
   local st = idle_since[pool]
   if st == nil then
      if idle_count >= MAX_SESSIONS then
         idle_since, idle_count = {}, 0
      end
      st = { n = 0 }
      idle_since[pool] = st
      idle_count = idle_count + 1
   end
   return st
end

local function push_idle(pool, t, reused)
   local st = idle_stack(pool)
   if st.n >= MAX_IDLE_ENTRIES then -- drop the oldest half
      local keep = {}
      for i = st.n - MAX_IDLE_ENTRIES / 2 + 1, st.n do keep[#keep + 1] = st[i] end
      st = { n = #keep }
      for i = 1, st.n do st[i] = keep[i] end
      idle_since[pool] = st
   end
   st.n = st.n + 1
   st[st.n] = { t, reused }
end

-- Pops the last-use time of the connection connect() just took from the pool, reused times
-- in all (nil: unknown, and the pool's other times with it).
local function pop_idle(pool, reused)
   local st = idle_stack(pool)
   if st.n == 0 then return nil end
   local e = st[st.n]
   st[st.n] = nil
   st.n = st.n - 1
   if e[2] + 1 ~= reused then
      idle_since[pool] = { n = 0 }   -- out of line with the pool: every time is unknown now
      return nil
   end
   return e[1]
end

local function keep_session(key, session)
   if sessions[key] == nil then
      if session_count >= MAX_SESSIONS then
         sessions, session_count = {}, 0
      end
      session_count = session_count + 1
   end
   sessions[key] = session
end

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
   local write_reuse_idle = info.write_reuse_idle or 2   -- a core option (client:info())
   if type(write_reuse_idle) ~= "number" or write_reuse_idle ~= write_reuse_idle or write_reuse_idle < 0 then
      error("calypso.transport.ngx.new: write_reuse_idle must be a number of seconds (0 or more)", 2)
   end
   local scheme, host, port, default_port = parse_base(info.base_url)
   -- ngx_lua's connect() takes an IPv6 literal in brackets ("[::1]"); SNI and the name check
   -- get the bare address
   local tls_name = match(host, "^%[(.*)%]$") or host
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
   -- ngx_lua finds a pool by its name alone: the name carries the server and the trust
   -- mode whatever the caller names it, so that no call rides on a connection to another
   -- server or one opened without verification
   local pool = (opts.pool and (opts.pool .. "|") or "calypso:") .. scheme .. "://" .. host .. ":"
      .. port .. (insecure and ":noverify" or "")
   return setmetatable({
      core = core,
      scheme = scheme, host = host, port = port, tls_name = tls_name,
      -- a session belongs to the server and to the trust it was verified under (the pool name)
      session_key = pool .. "|" .. host .. ":" .. port .. (insecure and "|noverify" or ""),
      tls = scheme == "https",
      verify = not insecure,
      pool_size = pool_size,
      connect_options = { pool = pool, pool_size = pool_size },
      -- A connect() under a pool name nothing is ever put back into is always new: a
      -- connection opened under it is closed after its call, never pooled. (ngx_lua looks a
      -- named pool up by its name alone, whatever the host and port: were anything ever kept
      -- under a name shared by all servers, a call could ride on another server's connection.)
      fresh_options = { pool = pool .. ":fresh" },
      keepalive_ms = keepalive and floor(keepalive * 1000) or nil,
      -- seconds a pooled connection may have idled and still carry a write; 0: never pooled
      write_reuse_idle = write_reuse_idle,
      timeout = info.timeout,
      connect_timeout = info.connect_timeout,
      max = info.max_response_size,
      fixed_head = fixed,
      -- counters, for tests and debugging: connections opened, requests on a reused one,
      -- reads resent after a dead pooled connection; last_reused = getreusedtimes() of the
      -- connection the last request used
      -- stale = pooled connections a write put aside for having idled too long
      stats = { connects = 0, reused = 0, resent = 0, last_reused = 0, stale = 0 },
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
-- While that clock stands still, nothing has waited since, so the timeouts still are the time
-- left, to nginx's millisecond: calypso.http1 re-arms before a read only when it moved.
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
-- nil, failure, plus whether it was opened under the fresh pool (never to be kept). write: a
-- pooled connection that idled longer than write_reuse_idle is closed
-- and a fresh one opened instead (the server may close it just as the write arrives).
local function open(self, deadline, fresh, write, stale_tries)
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
   ok, err = sock:connect(self.host, self.port, fresh and self.fresh_options or self.connect_options)
   if not ok then
      err = tostring(err)
      local kind = err == "timeout" and "timeout"
         or ((find(err, "resolve", 1, true) or find(err, "resolver", 1, true)) and "resolve")
         or "connect"
      return nil, fail(kind, err .. " (" .. self.host .. ":" .. self.port .. ")", false)
   end
   local reused = sock:getreusedtimes() or 0
   if reused > 0 and not fresh then
      local used = pop_idle(self.connect_options.pool, reused)
      if write and (used == nil or ngx.now() - used > self.write_reuse_idle) then
         -- idled too long to carry a write: closed; the next pooled one is older still (the
         -- pool is last in, first out), so after a few tries a new connection it is
         self.stats.stale = self.stats.stale + 1
         sock:close()
         return open(self, deadline, (stale_tries or 0) >= 8, write, (stale_tries or 0) + 1)
      end
   end
   if reused == 0 then
      self.stats.connects = self.stats.connects + 1
      if self.tls then
         arm(sock, deadline)
         local key = self.session_key
         local session
         session, err = sock:sslhandshake(sessions[key], self.tls_name, self.verify)
         if not session then
            sock:close()
            err = tostring(err)
            return nil, fail(err == "timeout" and "timeout" or "tls", "TLS handshake with " ..
               self.tls_name .. ": " .. err, false)
         end
         if type(session) == "userdata" or type(session) == "cdata" then
            keep_session(key, session)
         end
      end
   else
      self.stats.reused = self.stats.reused + 1
   end
   self.stats.last_reused = reused
   return sock, reused, fresh
end

-- One attempt on one connection: send, then read the answer with calypso.http1. Returns the
-- answer (status, body, close, date, retry_after) or nil, failure (with failure.head once the
-- status line and headers had arrived).
local function exchange(self, sock, deadline, request)
   local armed = arm(sock, deadline)
   local ok, err = sock:send(request)
   if not ok then
      -- a dead pooled connection may refuse the request outright: a read may go again
      return nil, fail(io_kind(err), tostring(err) .. " while sending the request", true,
         err ~= "timeout")
   end
   local res, f = read_response(sock, deadline, ngx_now, self.max, armed)
   if not res then
      -- nothing at all arrived before the connection ended: what a dead kept-alive one looks like
      return nil, fail(f.kind, f.detail, true, f.nothing), f.head
   end
   return res
end

--- Sends one operation; returns exactly what the core's method would: the decoded result,
-- or nil, message, err. `deadline` (optional, seconds on the purse.now() clock) ends the call
-- earlier than `timeout` would, as client:deadline() does for libcurl; being per call, it is
-- safe with many calls in flight on one client.
function Transport:request(op, payload, deadline)
   local core = self.core
   -- the whole request, signed, in one string: request line, Sign, the fixed head,
   -- Content-Length, body
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
   -- A write rides a pooled connection only while it was used recently (open), and is never
   -- resent; a read whose pooled connection turns out dead before any answer is resent once on
   -- a fresh one. write_reuse_idle = 0: every write on a connection of its own, closed after.
   local once = writes and self.write_reuse_idle <= 0
   local fresh = once
   local f, head
   for _ = 1, 2 do
      local sock, reused, opened_fresh = open(self, deadline, fresh, writes)
      if not sock then
         f = reused
         break
      end
      local res
      res, f, head = exchange(self, sock, deadline, request)
      if res then
         if opened_fresh or res.close then -- a connection opened under the fresh pool is never kept
            sock:close()
         elseif sock:setkeepalive(self.keepalive_ms, self.pool_size) then
            push_idle(self.connect_options.pool, ngx.now(), reused)
         else
            sock:close()
         end
         return core:finish(op, res.status, res.body, res.date, res.retry_after)
      end
      sock:close()
      if not (f.retry and reused > 0 and not writes) then
         break
      end
      self.stats.resent = self.stats.resent + 1
      fresh = true
   end
   -- as on the libcurl path: what the answer's head said before the failure
   if head then
      return core:failure(op, f.kind, f.detail, f.sent, head.status, head.date, head.retry_after)
   end
   return core:failure(op, f.kind, f.detail, f.sent)
end

return M

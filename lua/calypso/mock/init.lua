-- calypso.mock: start a local, stateful Calypso "Customer Purse" mock and drive it.
--
--   local mock = require("calypso.mock")
--   local h = mock.start()                       -- own OS process, dies with this one
--   local client = purse.new(mock.client_options(h))
--   h:deposit{ customerId = id, currency = "USDT_TRX", amount = "12.5" }
--   h:fault{ mode = "html503" }
--   h:stop()
--
-- The server runs as a child process (see calypso.mock.server) started with io.popen and the
-- same Lua interpreter. Its key, secret and other strings reach it as one line on its stdin,
-- through a named pipe in a private directory removed once the child is up: never on its
-- command line or in its environment, which other local users can read. The child writes a
-- heartbeat byte into the pipe every second; when this process exits the pipe closes, the write
-- fails and the child exits too, so a test run that crashes never leaves a mock behind. The
-- handle's methods talk to the unsigned /_mock/ control endpoints with luasocket.

local http = require("socket.http")
local ltn12 = require("ltn12")
local json = require("calypso.mock.json")
local state = require("calypso.mock.state")

local M = {}

local type, tostring, error, format = type, tostring, error, string.format

-- The parent never reads the heartbeat bytes, so they pile up in the pipe (64 KiB on Linux):
-- one byte a second fills it after ~18 hours, and the child would block on its next write.
local MAX_LIFETIME = 64800

local function shell_quote(s)
   return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function looks_like_lua(path)
   return type(path) == "string" and path:match("[^/]*$"):match("^lua") ~= nil
end

-- argv[0] of this process (Linux); used when `arg` says nothing, e.g. under `lua5.1 -e`.
local function process_argv0()
   local f = io.open("/proc/self/cmdline", "rb")
   if not f then
      return nil
   end
   local cmdline = f:read("*a") or ""
   f:close()
   return cmdline:match("^[^%z]+")
end

-- The running interpreter. With a script, the standalone interpreter puts its own name at
-- the lowest negative index of `arg`; without one (`lua -e ...`) Lua 5.2+ puts it at arg[0]
-- and Lua 5.1 sets no `arg` at all.
local function detect_lua()
   local a = rawget(_G, "arg")
   if type(a) == "table" then
      local i = 0
      while a[i - 1] ~= nil do
         i = i - 1
      end
      if i < 0 then
         return a[i]
      end
      if looks_like_lua(a[0]) then
         return a[0]
      end
   end
   local argv0 = process_argv0()
   if looks_like_lua(argv0) then
      return argv0
   end
   return nil
end

-- Lua code for `-e`: same module paths as this process, then the server with `opts`. Only
-- numbers and flags are written into it: the strings (host, key, secret, account, TLS files)
-- arrive as one JSON line on the child's stdin (see secrets_line), because a command line is
-- readable by every local user (ps, /proc/<pid>/cmdline). A startup error is reported on
-- stdout so that start() can show it instead of a bare EOF.
local function child_code(opts)
   local fields = {}
   fields[#fields + 1] = format("port=%d", opts.port)
   fields[#fields + 1] = format("lifetime=%d", math.ceil(opts.lifetime))
   fields[#fields + 1] = "heartbeat=true"
   if opts.request_log_size ~= nil then
      fields[#fields + 1] = format("request_log_size=%d", opts.request_log_size)
   end
   fields[#fields + 1] = "log=" .. tostring(opts.log and true or false)
   fields[#fields + 1] = "allow_non_loopback=" .. tostring(opts.allow_non_loopback and true or false)
   return format("package.path=%q package.cpath=%q ", package.path, package.cpath)
      .. "local ok, err = pcall(function() "
      .. "local o = {" .. table.concat(fields, ",") .. "} "
      .. "local s = require('calypso.mock.json').decode(io.stdin:read('*l') or '') "
      .. "if type(s) ~= 'table' then error('no settings on stdin', 0) end "
      .. "for k, v in pairs(s) do o[k] = v end "
      .. "return require('calypso.mock.server').main(o) end) "
      .. "if not ok then io.stdout:write('ERROR ', (tostring(err):gsub('%s+', ' ')), '\\n') "
      .. "io.stdout:flush() os.exit(1) end"
end

-- The child's string settings as one JSON line (JSON escapes newlines inside strings).
local function secrets_line(opts)
   local s = { host = opts.host, key = opts.key, secret = opts.secret, account = opts.account }
   if opts.tls then
      s.tls = { certificate = opts.tls.certificate, key = opts.tls.key }
   end
   return json.encode(s) .. "\n"
end

-- A named pipe in a fresh private directory (mktemp -d: mode 0700), opened read-write by this
-- process, which never blocks on a FIFO (Linux) and keeps its contents alive until the child
-- has opened it as its stdin. Returns the pipe's path, the open file and a clean-up function.
local function settings_pipe(line)
   -- mktemp's exit status is not relied on, only the directory it made: under a preloaded
   -- leak checker (the sanitizer stage) a clean mktemp still exits 1
   local p = assert(io.popen("umask 077; d=$(mktemp -d); "
      .. "[ -d \"$d\" ] && mkfifo \"$d/settings\" && printf '%s\\n' \"$d\""))
   local dir = p:read("*l")
   p:close()
   if not dir or dir == "" then
      error("calypso.mock: cannot make a named pipe (mktemp -d, mkfifo)", 3)
   end
   local path = dir .. "/settings"
   local f = io.open(path, "r+")
   local function cleanup()
      if f then f:close() f = nil end
      os.remove(path)
      os.remove(dir)
   end
   if not f or not f:write(line) or not f:flush() then
      cleanup()
      error("calypso.mock: cannot write to the named pipe " .. path, 3)
   end
   return path, cleanup
end

local function resolve_options(opts)
   local lifetime = opts.lifetime or 3600
   if lifetime <= 0 or lifetime > MAX_LIFETIME then
      lifetime = MAX_LIFETIME
   end
   return {
      lua = opts.lua or os.getenv("CALYPSO_MOCK_LUA") or detect_lua() or "lua",
      host = opts.host or "127.0.0.1",
      port = opts.port or 0,
      key = opts.key or state.DEFAULT_KEY,
      secret = opts.secret or state.DEFAULT_SECRET,
      account = opts.account or state.DEFAULT_ACCOUNT,
      lifetime = lifetime,
      log = opts.log,
      allow_non_loopback = opts.allow_non_loopback,
      tls = opts.tls,
      request_log_size = opts.request_log_size,
   }
end

---------------------------------------------------------------------------------------------
-- Handle
---------------------------------------------------------------------------------------------

local Handle = {}
Handle.__index = Handle

-- One control request; returns the decoded JSON answer or raises with the server's message.
local function control(h, method, path, args)
   local body = args and json.encode(args) or ""
   local chunks = {}
   -- Over TLS the control requests go through luasec without verification: the handle talks
   -- to its own child on 127.0.0.1; only the client under test has to verify.
   local request = h.tls and require("ssl.https").request or http.request
   local ok, status = request({
      url = h.url .. path,
      method = method,
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
      source = ltn12.source.string(body),
      sink = ltn12.sink.table(chunks),
   })
   if not ok then
      error(format("calypso.mock: %s %s failed: %s", method, path, tostring(status)), 3)
   end
   local text = table.concat(chunks)
   local value = json.decode(text)
   if status ~= 200 then
      local msg = type(value) == "table" and value.error or text
      error(format("calypso.mock: %s %s: HTTP %s: %s", method, path, tostring(status),
         tostring(msg)), 3)
   end
   if value == nil then
      error(format("calypso.mock: %s %s: undecodable answer: %s", method, path, text), 3)
   end
   return value
end

-- Guards every method: a stopped mock cannot answer.
local function live(h, name)
   if h._stopped then
      error("calypso.mock: " .. name .. " called on a stopped mock", 3)
   end
end

--- Records a deposit on the customer's purse (created if needed). args: customerId,
-- currency, amount (number, or string holding a JSON number written verbatim), state
-- ("CONFIRMED"), addressFrom, transactionHash, translationToAccountCompleted (false).
-- Returns the transaction (PGTransactionDTO) table.
function Handle:deposit(args)
   live(self, "deposit")
   return control(self, "POST", "/_mock/deposit", args)
end

--- Changes a transaction. args: transactionId, state, translationToAccountCompleted
-- (omitted fields unchanged). Returns the transaction table.
function Handle:update_transaction(args)
   live(self, "update_transaction")
   return control(self, "POST", "/_mock/transaction/update", args)
end

--- Queues a fault for the next `count` API requests (accept_close: accepted connections).
-- args: mode (see docs/mock.md: delay, stall, close, malformed, html503, raw, error,
-- accept_close, partial, trickle, chunked, huge, wire, refuse), count (1) and the mode's
-- fields. Returns {ok, queued}.
function Handle:fault(args)
   live(self, "fault")
   return control(self, "POST", "/_mock/fault", args)
end

--- Changes settings. args: delay (seconds), clock_skew_ms, max_page_size (omitted fields
-- unchanged). Returns the full configuration.
function Handle:config(args)
   live(self, "config")
   return control(self, "POST", "/_mock/config", args or {})
end

--- The last API requests (request_log_size of them, default 200), oldest first:
-- { {method, path, headers, header_names, body, truncated}, ... } (headers: lowercased names
-- to values; header_names: the names as sent, in order; bodies cut at 64 KiB, then truncated).
function Handle:requests()
   live(self, "requests")
   return control(self, "GET", "/_mock/requests")
end

--- Every customer, oldest first: { customers = { {id, email, description, externalId,
-- blocked}, ... } }, straight from the mock's state (no API request, no fault strikes it).
function Handle:customers()
   live(self, "customers")
   return control(self, "GET", "/_mock/customers")
end

--- The control endpoints: { endpoints = { {path, methods, summary}, ... } } (GET /_mock/).
function Handle:endpoints()
   live(self, "endpoints")
   return control(self, "GET", "/_mock/")
end

--- Subscribes a URL to signed webhooks (see calypso.mock.webhooks). args: url
-- ("http://127.0.0.1:<port>/<path>"), key (the `Key` header), secret (signs the `Sign`
-- header), requestId (default: a new uuid), retry_delays (seconds before each retry of a
-- delivery not answered 200; default {0.2, 0.5}), timeout (seconds per attempt, 5); or
-- { clear = true } to remove every subscription. Returns { requestId, url, key, subscriptions }.
-- From then on each deposit and each change of a transaction's state or
-- translationToAccountCompleted flag is delivered as a CUSTOMER_PURSE_* event.
function Handle:webhooks(args)
   live(self, "webhooks")
   return control(self, "POST", "/_mock/webhooks", args)
end

--- Sends one event of any type to every subscription. args: eventType, level (INFO; WARNING
-- for CUSTOMER_PURSE_EXPIRED), data (an object) or purseId (the address data of that purse).
-- Returns { queued = n }.
function Handle:emit_webhook(args)
   live(self, "emit_webhook")
   return control(self, "POST", "/_mock/webhooks/emit", args)
end

--- What happened to the last 200 webhook deliveries, oldest first: { {id, eventType,
-- requestId, url, state ("pending", "delivered", "failed"), attempts, status, error}, ... }.
function Handle:deliveries()
   live(self, "deliveries")
   return control(self, "GET", "/_mock/webhooks/deliveries")
end

--- Forgets all customers, purses, transactions, faults, config and recorded requests.
function Handle:reset()
   live(self, "reset")
   return control(self, "POST", "/_mock/reset")
end

--- Stops the mock and waits for its process to exit. Safe to call twice, and after the
-- mock died on its own.
function Handle:stop()
   if self._stopped then
      return true
   end
   self._stopped = true
   pcall(control, self, "POST", "/_mock/shutdown")
   -- Closing the pipe waits for the child; if the shutdown request failed, the closed pipe
   -- makes its next heartbeat fail, so it still exits within about a second.
   self._pipe:close()
   return true
end

Handle.__tostring = function(h)
   return format("calypso.mock (%s%s)", h.url, h._stopped and ", stopped" or "")
end

---------------------------------------------------------------------------------------------
-- Module functions
---------------------------------------------------------------------------------------------

--- Starts a mock server process and returns its handle once it is listening. opts (all
-- optional): host, port, key, secret, account, lifetime (seconds, default 3600, at most 18 h),
-- lua (interpreter command), log (request log on stderr), request_log_size (API requests
-- kept for h:requests(), default 200, 0 = none, at most 100000), allow_non_loopback, tls
-- ({ certificate = PEM file, key = PEM file }: serve HTTPS; needs luasec, Debian's lua-sec).
function M.start(opts)
   local o = resolve_options(opts or {})
   local size = o.request_log_size
   if size ~= nil and (type(size) ~= "number" or size ~= math.floor(size) or size < 0
                       or size > 100000) then
      error("calypso.mock: request_log_size must be an integer from 0 to 100000", 2)
   end
   if o.tls and (type(o.tls) ~= "table" or type(o.tls.certificate) ~= "string"
                 or type(o.tls.key) ~= "string") then
      error("calypso.mock: tls must be { certificate = file, key = file }", 2)
   end
   local fifo, cleanup = settings_pipe(secrets_line(o))
   local cmd = "exec " .. shell_quote(o.lua) .. " -e " .. shell_quote(child_code(o))
      .. " <" .. shell_quote(fifo)
   local pipe = io.popen(cmd, "r")
   local line = pipe and pipe:read("*l")
   cleanup() -- the child has read its settings (or is gone): nothing stays on disk
   if not pipe then
      error("calypso.mock: cannot start " .. o.lua, 2)
   end
   local port = line and tonumber(line:match("^LISTENING (%d+)$"))
   if not port then
      pipe:close()
      local why = line and line:match("^ERROR (.*)$")
         or "it exited without a word (is '" .. o.lua .. "' a Lua interpreter?)"
      error("calypso.mock: the mock server did not start: " .. why, 2)
   end
   -- The URL names the address actually bound: "localhost" may resolve to ::1 in a client.
   local host = o.host == "localhost" and "127.0.0.1" or o.host
   if host:find(":", 1, true) then
      host = "[" .. host .. "]"
   end
   return setmetatable({
      url = format("%s://%s:%d", o.tls and "https" or "http", host, port),
      tls = o.tls and true or false,
      port = port,
      key = o.key,
      secret = o.secret,
      account = o.account,
      _pipe = pipe,
      _stopped = false,
   }, Handle)
end

--- Client options for calypso.purse.new pointing at the mock: {key, secret, account, base_url}.
function M.client_options(h)
   return { key = h.key, secret = h.secret, account = h.account, base_url = h.url }
end

return M

-- calypso.mock.server: the Calypso mock as one object, a Server, and the process around it.
--
-- API logic lives in calypso.mock.state; the rest of the mock is one module per concern, each
-- adding its methods to the Server:
--   calypso.mock.http         the HTTP/1.1 wire format (request heads in, response heads out)
--   calypso.mock.conn         connections: accept, read, write, drain, TLS handshake
--   calypso.mock.loop         the event loop (socket.select) and its timers
--   calypso.mock.faults       fault injection: the queues, the modes and their delivery
--   calypso.mock.request_log  the last API requests, for GET /_mock/requests
--   calypso.mock.control      the /_mock/ control API and the configuration
--   calypso.mock.webhooks     signed webhook deliveries to subscribed receivers
-- This file creates and resets the Server, sends every request to the control API or to the
-- API (with the fault it takes applied), and runs the whole (M.main).

local socket = require("socket")
local state = require("calypso.mock.state")
local webhooks = require("calypso.mock.webhooks")
local conn = require("calypso.mock.conn")
local loop = require("calypso.mock.loop")
local faults = require("calypso.mock.faults")
local request_log = require("calypso.mock.request_log")
local control = require("calypso.mock.control")

local M = {}

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, floor = string.format, math.floor
local gettime = socket.gettime

local DEFAULT_LIFETIME = 3600
local DELIVERY_FAULTS = faults.DELIVERY_FAULTS

local function is_loopback(host)
   return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local Server = {}
Server.__index = Server

--- Creates a server bound to its port (not yet serving). Same options as M.main.
function M.new(opts)
   opts = opts or {}
   local host = opts.host or "127.0.0.1"
   local log_size = opts.request_log_size or request_log.DEFAULT_SIZE
   if type(log_size) ~= "number" or log_size ~= floor(log_size) or log_size < 0
         or log_size > request_log.MAX_SIZE then
      error("calypso.mock.server: request_log_size must be an integer from 0 to "
         .. request_log.MAX_SIZE, 0)
   end
   if not is_loopback(host) and not opts.allow_non_loopback then
      error("calypso.mock.server: refusing to listen on non-loopback host " .. host
         .. " (set allow_non_loopback to override)", 0)
   end
   local listener, port = conn.listen(host, opts.port or 0)
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
   self.config = control.default_config()
   self.request_log = request_log.new(self.request_log_size)
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
-- Dispatch: control API, or the API with faults and the request log
---------------------------------------------------------------------------------------------

-- Called by calypso.mock.conn with each complete request.
function Server:dispatch(c, req)
   c.keep_alive = req.keep_alive
   if req.path:sub(1, 7) == "/_mock/" then
      return self:dispatch_control(c, req)
   end
   return self:dispatch_api(c, req)
end

-- Computes the answer to an API request: status, body, content type, extra headers.
function Server:api_answer(req, fault)
   if fault then
      local status, body, content_type, extra = self:fault_answer(fault)
      if status then
         return status, body, content_type, extra
      end
   end
   if req.method ~= "POST" and state.has_route(req.path) then
      return 405, state.error_body(self.state, "001"), nil, { Allow = "POST" }
   end
   return state.handle(self.state, req.target, req.headers, req.body, self:now_ms())
end

function Server:dispatch_api(c, req)
   self.request_log:add(req)
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
   elseif fault and fault.mode == "unsolicited" then
      self:add_timer(gettime() + fault.seconds, function()
         if not c.closed then self:queue_output(c, fault.data) end
      end)
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

-- The methods of each concern (see the list at the top); a name defined twice is a bug.
for _, concern in ipairs({ conn, loop, faults, control }) do
   for name, fn in pairs(concern.methods) do
      assert(Server[name] == nil, "calypso.mock.server: two methods named " .. name)
      Server[name] = fn
   end
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

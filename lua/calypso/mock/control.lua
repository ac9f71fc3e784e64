-- calypso.mock.control: the unsigned control API under /_mock/ (docs/mock.md): routes, their
-- summaries for GET /_mock/, the mock's configuration (delay, clock_skew_ms, max_page_size),
-- and dispatch_control, the Server method (calypso.mock.server) that answers them. A route is
-- { methods, handler(server, args) -> status, value[, after] }: `value` goes out as JSON and
-- `after` runs once the answer is written. The webhook routes come from calypso.mock.webhooks.

local socket = require("socket")
local json = require("calypso.mock.json")
local state = require("calypso.mock.state")
local webhooks = require("calypso.mock.webhooks")
local conn = require("calypso.mock.conn")
local faults = require("calypso.mock.faults")
local argcheck = require("calypso.mock.check")

local M = {}

local type, pairs, ipairs = type, pairs, ipairs
local gettime = socket.gettime
local bad, is_int, number_in = argcheck.bad, argcheck.is_int, argcheck.number_in

local DRAIN_TIMEOUT = conn.DRAIN_TIMEOUT
local MAX_DELAY = faults.MAX_DELAY

--- The configuration of a fresh (or reset) mock.
function M.default_config()
   return { delay = 0, clock_skew_ms = 0, max_page_size = state.DEFAULT_MAX_PAGE_SIZE }
end

local Server = {} -- methods of the Server (calypso.mock.server)
M.methods = Server

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
---------------------------------------------------------------------------------------------
-- Routes
---------------------------------------------------------------------------------------------

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
control["/_mock/fault"] = { methods = POST, handler = faults.add }
control["/_mock/config"] = { methods = POST, handler = set_config }
control["/_mock/requests"] = {
   methods = READ, handler = function(self) return 200, self.request_log:list() end }
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

return M

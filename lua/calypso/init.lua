-- calypso: the Lua layer over the C core `calypso.purse`.
--
-- calypso.new(opts) wraps one core client and adds what the core deliberately leaves to Lua:
-- options from the environment, retries that are safe per operation (calypso.retry) under one
-- deadline, clock-skew healing, an observability hook, page iterators and positional
-- shortcuts. Every attempt goes through a transport: libcurl (the core's own methods) or, inside
-- OpenResty, calypso.transport.ngx (cosockets), chosen per call.
local purse = require "calypso.purse"
local retry = require "calypso.retry"

local getenv, os_time = os.getenv, os.time
local pairs, ipairs, type, tostring, error, pcall, require = pairs, ipairs, type, tostring, error, pcall, require
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local floor, random = math.floor, math.random
local format = string.format
local now, purse_sleep = purse.now, purse.sleep
local decide, backoff, retry_after = retry.decide, retry.backoff, retry.retry_after

local OPS = purse.operations
local PREFIX = "/api/v1/customer-purse/"

local M = {
   _VERSION = purse._VERSION,
   null = purse.null,
   sign = purse.sign,
   verify = purse.verify,
   decode = purse.decode,
   operations = OPS,
}

-- Option name -> environment variable that supplies it when it is absent.
local from_env = {
   key = "CALYPSO_API_KEY",
   secret = "CALYPSO_API_SECRET",
   account = "CALYPSO_ACCOUNT",
   base_url = "CALYPSO_BASE_URL",
}

-- Options of this layer (never passed to purse.new): option -> { check, what it must be }.
-- Every number has a range, so that nothing accepted here can break a call later (an
-- infinite max_retries made an infinite deadline, which core:deadline refuses). Whole-number
-- floats pass as integers on every runtime and are stored as integers.
local MAX_RETRIES = 100       -- transient retries after the first attempt
local MAX_SECONDS = 86400     -- deadline, keepalive_timeout: one day, like purse.new's timeout
local MAX_BACKOFF = 3600      -- backoff_base, backoff_max
local MAX_POOL_SIZE = 10000

-- An entry: { check(v) -> boolean, what v must be, kind ("integer", "number" or nil) }.
local function integer_in(lo, hi)
   return { function(v) return type(v) == "number" and v >= lo and v <= hi and v == floor(v) end,
            format("an integer from %d to %d", lo, hi), "integer" }
end
local function seconds_in(lo, hi)
   return { function(v) return type(v) == "number" and v >= lo and v <= hi end,
            format("a number of seconds from %s to %s", tostring(lo), tostring(hi)), "number" }
end
local function of_type(t, what)
   return { function(v) return type(v) == t end, what }
end
local TRANSPORTS = { auto = true, curl = true, ngx = true }
local function check(entry, what)
   if what then return { entry, what } end
   return entry
end
local LUA_OPTIONS = {
   max_retries = check(integer_in(0, MAX_RETRIES)),
   deadline = check(seconds_in(0.001, MAX_SECONDS)),
   retry = check(of_type("boolean", "a boolean")),
   heal_clock_skew = check(of_type("boolean", "a boolean")),
   backoff_base = check(seconds_in(0, MAX_BACKOFF)),
   backoff_max = check(seconds_in(0, MAX_BACKOFF)),
   on_event = check(of_type("function", "a function")),
   hook_bodies = check(of_type("boolean", "a boolean")),
   transport = check(function(v) return TRANSPORTS[v] ~= nil end, '"auto", "curl" or "ngx"'),
   blocking_fallback = check(of_type("boolean", "a boolean")),
   ngx_options = check(of_type("table", "a table")),
}
-- The options calypso.transport.ngx.new takes in ngx_options, checked here too: inside nginx
-- the transport is made on the first call, too late for a construction error.
local NGX_OPTIONS = {
   pool_size = check(integer_in(1, MAX_POOL_SIZE)),
   keepalive_timeout = check(seconds_in(0.001, MAX_SECONDS)),
   pool = check(of_type("string", "a string")),
}

-- Checks one option against its entry; returns the value to keep (integers as integers).
-- A refused number is shown as %.14g (the same text on every runtime), anything else by its
-- type only (never a string's text).
local function checked(name, entry, v, level)
   if not entry[1](v) then
      local shown = (entry[3] and type(v) == "number") and format("%.14g", v) or type(v)
      error(format("calypso.new: option '%s' must be %s (got %s)", name, entry[2], shown), level + 1)
   end
   if entry[3] == "integer" then return floor(v) end
   return v
end

local DEFAULT_MAX_RETRIES = 2
local DEFAULT_BACKOFF_BASE = 0.5
local DEFAULT_BACKOFF_MAX = 8

-- Relative operation path -> method name, so that client:call on a known path gets the
-- operation's retry policy; any other path is treated as a write.
local BY_PATH = {}
for name, info in pairs(OPS) do BY_PATH[info.path] = name end
local UNKNOWN_OP = { writes = true }

-- Positional shortcuts: method -> payload field names of its positional arguments.
local POSITIONAL = {
   get_customer = { "customerId" },
   block_customer = { "customerId" },
   unblock_customer = { "customerId" },
   get_purses = { "customerId" },
   get_transaction = { "transactionId" },
   get_address = { "customerId", "currency" },
   get_customers_by_external_id = { "externalId" },
}

---------------------------------------------------------------------------------------------
-- nginx detection, sleeping, reporting
---------------------------------------------------------------------------------------------

-- The ngx API table when running inside nginx (OpenResty), else nil.
local function ngx_api()
   local n = package.loaded.ngx
   if type(n) ~= "table" then n = rawget(_G, "ngx") end
   if type(n) == "table" then return n end
   return nil
end

-- calypso.transport.ngx (required only inside nginx: plain Lua never needs it), or false when
-- it cannot be loaded. Clients keep what it gave (ngx_module below).
local function ngx_transport()
   local ok, m = pcall(require, "calypso.transport.ngx")
   return ok and type(m) == "table" and type(m.available) == "function" and m or false
end

-- Waits without blocking nginx when it can: ngx.sleep yields in exactly the phases where
-- cosockets are allowed (the transport's list of them, kept in one place).
local function sleep(seconds)
   local n = ngx_api()
   local t = n and n.sleep and ngx_transport()
   if t and t.available() then
      return n.sleep(seconds)
   end
   return purse_sleep(seconds)
end

-- A random float in [0, 1) for jitter. math.random is seeded identically in every process on
-- Lua 5.1-5.3; mixing in the monotonic clock's low digits keeps processes from retrying in step.
local function jitter()
   return (random() + (now() * 1000003) % 1) % 1
end

-- One warning line (ngx.log inside nginx, stderr elsewhere).
local function warn(msg)
   local n = ngx_api()
   if n and n.log and n.WARN then
      n.log(n.WARN, msg)
   else
      io.stderr:write(msg, "\n")
   end
end

-- Inside nginx a missing `env CALYPSO_BASE_URL;` line silently sends every call to the
-- default host: say once per worker (each worker has its own Lua VM) which host is used.
local told_default_host = false
local function warn_default_host(core)
   if told_default_host or ngx_api() == nil then return end
   told_default_host = true
   warn("calypso: no base_url option and no CALYPSO_BASE_URL in this worker's environment "
      .. "(nginx passes it only with an `env CALYPSO_BASE_URL;` line): using "
      .. tostring(core:info().base_url))
end

---------------------------------------------------------------------------------------------
-- Transports
---------------------------------------------------------------------------------------------

-- The libcurl transport: the core's own methods (a method name) or core:call (a path).
local function curl_transport(core)
   return {
      name = "curl",
      request = function(_, op, payload)
         if OPS[op] then return core[op](core, payload) end
         return core:call(op, payload)
      end,
   }
end

-- The client's calypso.transport.ngx, loaded once.
local function ngx_module(self)
   local mod = self._ngx_module
   if mod == nil then
      mod = ngx_transport()
      self._ngx_module = mod
   end
   return mod
end

-- The transport for this call, or nil and why (docs/openresty.md, "Which transport, in which phase").
local function pick_transport(self)
   local mode = self._transport
   if mode == "curl" then return self._curl end
   local inside = ngx_api() ~= nil
   if mode == "auto" and not inside then return self._curl end
   local mod = ngx_module(self)
   if mod and mod.available() then
      local t = self._ngx
      if not t then
         t = mod.new(self.core, self._transport_opts)
         self._ngx = t
      end
      return t, "ngx"
   end
   if self._blocking_fallback then return self._curl end
   if not mod then
      return nil, "the ngx transport (calypso.transport.ngx) is not installed"
   end
   return nil, "nginx cosockets are not available here (outside nginx, or a phase without them)"
end

local function unavailable(op, why)
   local msg = format("calypso: %s: transport unavailable: %s; set blocking_fallback = true to "
      .. "use blocking libcurl instead", op, why)
   return nil, msg, { kind = "unavailable", op = op, message = msg, retryable = false, sent = false }
end

---------------------------------------------------------------------------------------------
-- The call loop: attempts, retries, hook events
---------------------------------------------------------------------------------------------

-- The retry policy entry and the full request path of an operation or a call path.
local function op_info(op)
   local info = OPS[op]
   if info then return info, PREFIX .. info.path end
   local rel = op
   if op:sub(1, 1) == "/" then
      rel = op:sub(1, #PREFIX) == PREFIX and op:sub(#PREFIX + 1) or nil
   end
   local name = rel and BY_PATH[rel]
   return name and OPS[name] or UNKNOWN_OP, op:sub(1, 1) == "/" and op or PREFIX .. op
end

-- Calls the hook; a hook that raises never breaks the call (reported once per client).
local function emit(self, ev)
   local ok, e = pcall(self._on_event, ev)
   if not ok and not self._hook_failed then
      self._hook_failed = true
      warn("calypso: the on_event hook raised (reported once per client; calls go on): "
         .. tostring(e))
   end
end

-- A logical call's state across its attempts (single calls, batch and multi alike).
local function new_call(self, op, payload)
   local info, path = op_info(op)
   local base = self._policy -- copied: one client may serve concurrent calls (nginx, multi)
   return {
      op = op, payload = payload, info = info, path = path, attempt = 0,
      policy = { max_retries = base.max_retries, retry = base.retry,
                 heal_clock_skew = base.heal_clock_skew, healed = false },
      deadline = now() + self._deadline,
   }
end

-- After an attempt of `call` (res, msg, err from the transport t, named tname; status of a
-- success): decides, reports the event, heals the clock when that is the decision. Returns
-- the seconds to wait before the next attempt (nil: the call is over) and err (a table).
local function settle(self, call, started, t, tname, status, res, msg, err)
   local action, reason, delay = false, nil, nil
   local attempt, policy = call.attempt, call.policy
   if res == nil then
      if type(err) ~= "table" then err = { kind = "invalid", message = msg } end
      action, reason = decide(call.info, err, attempt, policy)
      if action == "retry" then
         delay = retry_after(err.retry_after, err.date, os_time())
            or backoff(attempt - (policy.healed and 1 or 0), self._backoff_base,
                       self._backoff_max, jitter)
      elseif action == "heal" then
         delay = 0
      end
      if action and now() + delay >= call.deadline then
         action, reason = false, "deadline"
      end
      err.attempts = attempt
   end
   if self._on_event then
      local ev = {
         op = call.op, path = call.path, attempt = attempt, ok = res ~= nil,
         duration = now() - started, transport = t and (tname or t.name) or nil,
         final = not action,
      }
      if res ~= nil then
         ev.status = status
      else
         ev.kind, ev.status, ev.code, ev.trace_id = err.kind, err.status, err.code, err.trace_id
         ev.message, ev.retry, ev.reason, ev.delay = msg, action or nil, reason, delay
      end
      if self._hook_bodies then
         ev.payload, ev.result = call.hook_payload or call.payload, res
      end
      emit(self, ev)
   end
   if not action then return nil, err end
   if action == "heal" then
      self.core:clock_offset(retry.clock_offset(err.date, os_time()))
      policy.healed = true
   end
   return delay, err
end

-- One logical call: attempts until success, a final failure, or the deadline.
local function perform(self, op, payload, hook_payload)
   local call = new_call(self, op, payload)
   call.hook_payload = hook_payload
   while true do
      call.attempt = call.attempt + 1
      local started = now()
      local t, tname = pick_transport(self)
      local res, msg, err
      if t == self._curl then
         -- the running attempt ends by the deadline too, not one full timeout later
         local core = self.core
         core:deadline(call.deadline)
         res, msg, err = t:request(op, payload)
         core:deadline(nil)
      elseif t then
         res, msg, err = t:request(op, payload)
      else
         res, msg, err = unavailable(op, tname)
      end
      local status = res ~= nil and (t == self._curl and self.core:last_status() or 200) or nil
      local delay
      delay, err = settle(self, call, started, t, tname, status, res, msg, err)
      if delay == nil then return res, msg, err end
      if delay > 0 then sleep(delay) end
   end
end

---------------------------------------------------------------------------------------------
-- Client
---------------------------------------------------------------------------------------------

local Client = {}
local client_mt = { __name = "calypso.client" }

-- What a Lua client offers, in one place:
--   wrapped (this file: retries, deadline, skew healing, on_event, transports): the ten
--     operations, call, batch, multi, pages, transactions, ensure_customer, clock_offset,
--     info, close (the Client table below);
--   passed through to the core unchanged (no retries, no hook): PASS_THROUGH.
local PASS_THROUGH = {}
for _, name in ipairs({ "prepare", "prepare_http", "sign", "finish", "failure", "deadline",
                        "last_status" }) do
   PASS_THROUGH[name] = function(client, ...)
      local c = client.core
      return c[name](c, ...)
   end
end

function client_mt.__index(_, name)
   local m = Client[name]
   if m ~= nil then return m end
   return PASS_THROUGH[name]
end

function client_mt.__tostring(self)
   return "calypso client over " .. tostring(self.core)
end

local function check_self(self, name)
   if getmetatable(self) ~= client_mt then
      error(format("calypso: %s: call it as client:%s(...)", name, name), 3)
   end
end

-- One method per operation, generated from the core's table. Single-id operations also take
-- their ids positionally: client:get_customer(id), client:get_address(id, currency).
for name in pairs(OPS) do
   local fields = POSITIONAL[name]
   Client[name] = function(self, a, b)
      check_self(self, name)
      local payload = a
      if fields and a ~= nil and type(a) ~= "table" then
         payload = { [fields[1]] = a }
         if fields[2] then payload[fields[2]] = b end
      end
      return perform(self, name, payload)
   end
end

--- Any operation by path (relative to /api/v1/customer-purse/ or absolute). Known paths get
-- their operation's retry policy; unknown ones are treated as writes.
function Client:call(path, payload)
   check_self(self, "call")
   if type(path) ~= "string" then
      return self.core:call(path, payload) -- raises the core's argument error
   end
   if OPS[path] then
      error(format("calypso: call: '%s' is a method name, not a path; use client:%s(...)",
         path, path), 2)
   end
   return perform(self, path, payload)
end

---------------------------------------------------------------------------------------------
-- Many calls in flight: client:multi and client:batch with the per-call policy
---------------------------------------------------------------------------------------------

-- The payload of `op` called with positional arguments a, b, as client:<op>(a, b) takes it.
local function positional(op, a, b)
   local fields = POSITIONAL[op]
   if fields and a ~= nil and type(a) ~= "table" then
      local payload = { [fields[1]] = a }
      if fields[2] then payload[fields[2]] = b end
      return payload
   end
   return a
end

-- A private copy of a payload (raw reads, metatables kept), so that what was checked is what
-- every attempt sends even if the caller (or a finalizer) changes the table meanwhile. Cycles
-- and very deep tables are left as they are: the core refuses them.
local function copy_payload(v, depth, seen)
   if type(v) ~= "table" or depth > 64 or seen[v] then return v end
   seen[v] = true
   local t = {}
   for k, x in next, v do t[k] = copy_payload(x, depth + 1, seen) end
   seen[v] = nil
   local mt = getmetatable(v)
   if type(mt) == "table" then setmetatable(t, mt) end
   return t
end

-- client:call's path rules (the core's calypso_path_problem), for checking batch entries
-- before anything starts.
local function path_problem(p)
   if #p == 0 or #p > 256 then return "path must be 1 to 256 characters" end
   if p:find("[^%w/%-_%.]") then return "path may only hold letters, digits and / - _ ." end
   if p:find("..", 1, true) then return "path must not contain '..'" end
   return nil
end

-- Checks a batch's calls as the core's batch does and copies them into a private plan:
-- { op, payload, hook payload } per entry. Raises (naming the entry) before anything starts.
local function batch_plan(calls, max_in_flight)
   if type(calls) ~= "table" then
      error(format("bad argument #1 to 'batch' (table expected, got %s)", type(calls)), 0)
   end
   if max_in_flight ~= nil and not (type(max_in_flight) == "number" and max_in_flight >= 1
         and max_in_flight <= 1024 and max_in_flight == floor(max_in_flight)) then
      error("bad argument #2 to 'batch' (max_in_flight must be from 1 to 1024)", 0)
   end
   local plan = {}
   for i = 1, #calls do
      local entry = rawget(calls, i)
      if type(entry) ~= "table" then
         error(format("calypso.purse: batch entry %d must be a table { op, payload }", i), 0)
      end
      local op, a, b = rawget(entry, 1), rawget(entry, 2), rawget(entry, 3)
      if type(op) ~= "string" then
         error(format("calypso.purse: batch entry %d: op must be a method name or path", i), 0)
      end
      local why = not OPS[op] and path_problem(op)
      if why then
         error(format("calypso.purse: batch entry %d: op is neither a method name nor a path (%s)",
            i, why), 0)
      end
      local payload = positional(op, a, b)
      if payload ~= nil and type(payload) ~= "table" then
         error(format("calypso.purse: batch entry %d: payload must be a table or nil (got %s)",
            i, type(payload)), 0)
      end
      plan[i] = { op, copy_payload(payload, 0, {}), payload }
   end
   return plan, floor(max_in_flight or 128)
end

-- The Lua layer's multi over the core's libcurl multi. The core multi stays mechanical
-- (start, poll, finished); this drives the policy: a failed attempt that decide() retries is
-- started again on the same core multi once its backoff has passed (a per-call "not before"
-- time: other calls go on meanwhile), after a clock-skew heal at once.
local Multi = {}
local multi_mt = { __name = "calypso.multi", __index = Multi }

local function check_multi(m, name)
   if getmetatable(m) ~= multi_mt then
      error(format("calypso: %s: call it as m:%s(...)", name, name), 3)
   end
   if m._closed then error("calypso: the multi is closed", 3) end
end

-- Starts the next attempt of call on the core multi. Returns true when it runs, else false
-- and the attempt's failure triple (an invalid payload).
local function launch(m, call)
   local client, core = m._client, m._client.core
   call.attempt = call.attempt + 1
   call.started = now()
   core:deadline(call.deadline)   -- the attempt's timeout shrinks to what is left of it
   local ok, cid, msg, err = pcall(m._core.start, m._core, call.op, call.payload)
   core:deadline(nil)
   if not ok then error(cid, 0) end
   if cid ~= nil then
      m._by_core[cid] = call
      return true
   end
   settle(client, call, call.started, client._curl, nil, nil, nil, msg, err)
   return false, msg, err
end

-- The call is over: its result waits for m:finished() or m:result(id).
local function finish(m, call, res, msg, err)
   call.done, call.res, call.msg, call.err = true, res, msg, err
   m._pending = m._pending - 1
   m._done_tail = m._done_tail + 1
   m._done[m._done_tail] = call.id
end

-- Handles the finished attempts of the core multi; returns how many calls ended.
local function take_core(m)
   local ended = 0
   local client = m._client
   for cid, res, msg, err, status in m._core:finished() do
      local call = m._by_core[cid]
      m._by_core[cid] = nil
      if call and not m._closed then
         local delay
         delay, err = settle(client, call, call.started, client._curl, nil, status, res, msg, err)
         if delay == nil then
            finish(m, call, res, msg, err)
            ended = ended + 1
         else
            call.not_before = now() + delay
            m._waiting[#m._waiting + 1] = call
         end
      end
      if m._closed then break end   -- an on_event hook closed the multi: its core is gone
   end
   return ended
end

-- Starts the retries whose backoff has passed; returns how many calls ended (a retry refused
-- at start) and the earliest "not before" still ahead (or nil).
local function launch_due(m)
   local ended, next_due, keep = 0, nil, {}
   local t = now()
   for _, call in ipairs(m._waiting) do
      if call.not_before <= t then
         local ok, msg, err = launch(m, call)
         if not ok then
            finish(m, call, nil, msg, err)
            ended = ended + 1
         end
      else
         keep[#keep + 1] = call
         if next_due == nil or call.not_before < next_due then next_due = call.not_before end
      end
   end
   m._waiting = keep
   return ended, next_due
end

--- m:start(op, ...) -> id | nil, message, err: op a method name (positional forms as the
-- method takes them: m:start("get_customer", id)) or a path as for client:call.
function Multi:start(op, a, b)
   check_multi(self, "start")
   if type(op) ~= "string" then return self._core:start(op, a) end -- raises the core's error
   local payload = positional(op, a, b)
   local call = new_call(self._client, op, copy_payload(payload, 0, {}))
   call.hook_payload = payload
   local ok, msg, err = launch(self, call)
   if not ok then return nil, msg, err end
   self._next_id = self._next_id + 1
   call.id = self._next_id
   self._calls[call.id] = call
   self._pending = self._pending + 1
   return call.id
end

--- m:poll([seconds]) -> how many calls finished (after their retries) during this poll. Waits
-- up to `seconds` (default 0: never blocks) for at least one to finish.
function Multi:poll(seconds)
   check_multi(self, "poll")
   seconds = seconds or 0
   if type(seconds) ~= "number" or not (seconds >= 0 and seconds <= 3600) then
      error("bad argument #1 to 'poll' (seconds must be from 0 to 3600)", 2)
   end
   if self._polling then
      error("calypso: multi is busy (poll called from a hook or finalizer during poll)", 2)
   end
   self._polling = true
   local ok, ended = pcall(function()
      local stop, count = now() + seconds, 0
      for _ = 1, 1000000 do
         local e, next_due = launch_due(self)
         -- attempts the core finished already (one launched after its deadline is done at
         -- start, unsent), which may queue retries
         count = count + e + take_core(self)
         if self._closed then break end
         for _, call in ipairs(self._waiting) do
            if next_due == nil or call.not_before < next_due then next_due = call.not_before end
         end
         local running = self._core:pending()
         if count > 0 or (running == 0 and next_due == nil) then break end
         local wait = stop - now()
         if next_due and next_due - now() < wait then wait = next_due - now() end
         if wait < 0 then wait = 0 end
         if running > 0 then
            self._core:poll(wait)
         elseif wait > 0 then
            purse_sleep(wait)
         end
         count = count + take_core(self)
         if count > 0 or self._closed or now() >= stop then break end
      end
      return count
   end)
   self._polling = false
   if not ok then error(ended, 0) end
   return ended
end

--- for id, res, msg, err in m:finished() do ... end: each finished call once, oldest first;
-- its result is freed as it is taken.
local function take_finished(self)
   return function()
      while self._done_head < self._done_tail do
         self._done_head = self._done_head + 1
         local id = self._done[self._done_head]
         self._done[self._done_head] = nil
         local call = self._calls[id]
         if call then
            self._calls[id] = nil
            return id, call.res, call.msg, call.err
         end
      end
      return nil
   end
end

local function find_call(m, id, name)
   local call = type(id) == "number" and m._calls[id] or nil
   if not call then
      error(format("bad argument #1 to '%s' (no such call (never started, or its result was "
         .. "already taken))", name), 3)
   end
   return call
end

-- The step methods both multis (curl multi here, light threads inside nginx) share: they
-- read only _calls, _done and _pending. check_kind raises unless self is that kind of multi.
local function add_step_methods(class, check_kind)
   --- m:finished() -> iterator over finished calls, oldest first: id, res, msg, err, status.
   function class:finished()
      check_kind(self, "finished")
      return take_finished(self)
   end

   --- m:done(id) -> true when the call has finished and its result waits.
   function class:done(id)
      check_kind(self, "done")
      return find_call(self, id, "done").done == true
   end

   --- m:result(id) -> what the method would have returned (retries included); frees the call.
   function class:result(id)
      check_kind(self, "result")
      local call = find_call(self, id, "result")
      if not call.done then
         error(format("calypso: call %d is still running (poll until done)", id), 2)
      end
      self._calls[id] = nil
      return call.res, call.msg, call.err
   end

   --- m:pending() -> calls not finished yet (on the wire, queued, or waiting for a retry).
   function class:pending()
      check_kind(self, "pending")
      return self._pending
   end
end
add_step_methods(Multi, check_multi)

--- m:close(): aborts running calls and frees everything; idempotent.
function Multi:close()
   if getmetatable(self) ~= multi_mt then error("calypso: close: call it as m:close()", 2) end
   if self._closed then return end
   self._closed = true
   self._core:close()
   self._calls, self._by_core, self._waiting, self._done = {}, {}, {}, {}
   self._pending = 0
end

multi_mt.__close = function(self) self:close() end
multi_mt.__tostring = function(self)
   return format("calypso multi (%d pending) over %s", self._pending, tostring(self._core))
end

local function new_multi(self, opts, core)
   return setmetatable({
      _client = self, _core = core or self.core:multi(opts), _calls = {}, _by_core = {},
      _waiting = {}, _done = {}, _done_head = 0, _done_tail = 0, _pending = 0, _next_id = 0,
   }, multi_mt)
end

-- Inside nginx: the same step API over light threads. Each call is a whole logical call
-- (perform: retries, deadline, healing, events) run by one of at most max_in_flight worker
-- threads; poll yields to them (ngx.sleep) until a call finishes or `seconds` pass.
local NgxMulti = {}
local ngx_multi_mt = { __name = "calypso.multi", __index = NgxMulti }

local function check_ngx_multi(m, name)
   if getmetatable(m) ~= ngx_multi_mt then
      error(format("calypso: %s: call it as m:%s(...)", name, name), 3)
   end
   if m._closed then error("calypso: the multi is closed", 3) end
end

local function ngx_worker(m)
   while not m._closed and m._queue_head < m._queue_tail do
      m._queue_head = m._queue_head + 1
      local call = m._queue[m._queue_head]
      m._queue[m._queue_head] = nil
      local res, msg, err = perform(m._client, call.op, call.payload, call.hook_payload)
      if m._closed then break end
      call.done, call.res, call.msg, call.err = true, res, msg, err
      m._pending = m._pending - 1
      m._finished_count = m._finished_count + 1
      m._done_tail = m._done_tail + 1
      m._done[m._done_tail] = call.id
   end
   m._workers = m._workers - 1
end

function NgxMulti:start(op, a, b)
   check_ngx_multi(self, "start")
   local client = self._client
   local payload = positional(op, a, b)
   local copy = copy_payload(payload, 0, {})
   -- checked now, as the core's start does: an invalid payload gives its triple at once
   local ok, msg, err = client.core:prepare(op, copy)
   if ok == nil then
      local call = new_call(client, op, copy)
      call.attempt, call.hook_payload = 1, payload
      local t, tname = pick_transport(client)
      local _
      _, err = settle(client, call, now(), t, tname, nil, nil, msg, err)
      return nil, msg, err
   end
   self._next_id = self._next_id + 1
   local call = { id = self._next_id, op = op, payload = copy, hook_payload = payload }
   self._calls[call.id] = call
   self._pending = self._pending + 1
   self._queue_tail = self._queue_tail + 1
   self._queue[self._queue_tail] = call
   if self._workers < self._cap then
      self._workers = self._workers + 1
      local th = ngx_api().thread.spawn(ngx_worker, self)
      self._threads[#self._threads + 1] = th
   end
   return call.id
end

function NgxMulti:poll(seconds)
   check_ngx_multi(self, "poll")
   seconds = seconds or 0
   if type(seconds) ~= "number" or not (seconds >= 0 and seconds <= 3600) then
      error("bad argument #1 to 'poll' (seconds must be from 0 to 3600)", 2)
   end
   local n = ngx_api()
   local before, stop = self._finished_count, now() + seconds
   n.sleep(0) -- lets the workers run once
   for _ = 1, 3600000 do
      if self._finished_count > before or self._pending == 0 or now() >= stop then break end
      n.sleep(math.min(0.001, stop - now()))
   end
   return self._finished_count - before
end

add_step_methods(NgxMulti, check_ngx_multi)
function NgxMulti:close()
   if getmetatable(self) ~= ngx_multi_mt then error("calypso: close: call it as m:close()", 2) end
   if self._closed then return end
   self._closed = true
   for _, th in ipairs(self._threads) do pcall(ngx_api().thread.kill, th) end
   self._calls, self._queue, self._done, self._threads, self._pending = {}, {}, {}, {}, 0
end
ngx_multi_mt.__close = function(self) self:close() end

local function new_ngx_multi(self, opts)
   local cap = 16
   if opts ~= nil then
      if type(opts) ~= "table" then
         error(format("bad argument #1 to 'multi' (table expected, got %s)", type(opts)), 3)
      end
      for k in pairs(opts) do
         if k ~= "max_in_flight" then
            error("bad argument #1 to 'multi' (unknown option (the one option is max_in_flight))", 3)
         end
      end
      local v = opts.max_in_flight
      if v ~= nil then
         if not (type(v) == "number" and v >= 1 and v <= 1024 and v == floor(v)) then
            error("bad argument #1 to 'multi' (max_in_flight must be an integer from 1 to 1024)", 3)
         end
         cap = floor(v)
      end
   end
   return setmetatable({
      _client = self, _cap = cap, _calls = {}, _queue = {}, _queue_head = 0, _queue_tail = 0,
      _done = {}, _done_head = 0, _done_tail = 0, _pending = 0, _next_id = 0, _workers = 0,
      _threads = {}, _finished_count = 0,
   }, ngx_multi_mt)
end

--- client:multi([{ max_in_flight = n }]): the step API with this layer's policy per call (see
-- Multi above). Over libcurl; inside nginx over light threads.
function Client:multi(opts)
   check_self(self, "multi")
   local t = pick_transport(self)
   if t == self._curl or not t then
      return new_multi(self, opts)
   end
   return new_ngx_multi(self, opts)
end

--- Runs calls concurrently and returns their results in order, each { value = res } or
-- { message = msg, err = err }, each call with the policy of a single call (retries, deadline,
-- clock-skew healing, on_event per attempt): over the core's curl multi, or inside nginx on
-- light threads (ngx.thread.spawn), at most max_in_flight at once.
function Client:batch(calls, max_in_flight)
   check_self(self, "batch")
   local plan, cap = batch_plan(calls, max_in_flight)
   local t, tname = pick_transport(self)
   local results, total = {}, #plan
   if t == self._curl then
      -- One curl multi per client carries its batches, so that their connections stay alive
      -- from one batch to the next (a multi per batch would open them all again). A batch
      -- started while another runs (from an on_event hook) gets a multi of its own, and one
      -- that ended by an error leaves its calls to a multi that is then dropped.
      local shared = not self._batch_running
      if shared and self._batch_core == nil then
         self._batch_core = self.core:multi{ max_in_flight = 1024 }   -- the batch caps itself
      end
      local m = new_multi(self, { max_in_flight = cap }, shared and self._batch_core or nil)
      if shared then self._batch_running = true end
      local index, next_i, left = {}, 1, total
      local ok, e = pcall(function()
         for _ = 1, 100000000 do
            while next_i <= total and m._pending < cap do
               local p = plan[next_i]
               local call = new_call(self, p[1], p[2])
               call.hook_payload = p[3]
               local started, msg, err = launch(m, call)
               if started then
                  m._next_id = m._next_id + 1
                  call.id = m._next_id
                  m._calls[call.id] = call
                  m._pending = m._pending + 1
                  index[call.id] = next_i
               else
                  results[next_i] = { message = msg, err = err }
                  left = left - 1
               end
               next_i = next_i + 1
            end
            if left == 0 then break end
            m:poll(1)
            for id, res, msg, err in m:finished() do
               if res ~= nil then results[index[id]] = { value = res }
               else results[index[id]] = { message = msg, err = err } end
               left = left - 1
            end
         end
      end)
      if shared then
         self._batch_running = false
         if not ok then
            self._batch_core = nil
            m:close()
         end
      else
         m:close()
      end
      if not ok then error(e, 0) end
      return results
   end
   if not t then
      for i, p in ipairs(plan) do
         local _, msg, err = unavailable(p[1], tname)
         results[i] = { message = msg, err = err }
      end
      return results
   end
   -- max_in_flight workers (light threads), each taking the next call until none is left;
   -- each call is a whole logical call (perform: retries, deadline, healing, events)
   local n, next_i = ngx_api(), 1
   local function worker()
      while next_i <= total do
         local i = next_i
         next_i = i + 1
         local p = plan[i]
         local res, msg, err = perform(self, p[1], p[2], p[3])
         if res ~= nil then results[i] = { value = res } else results[i] = { message = msg, err = err } end
      end
   end
   local workers = {}
   for w = 1, math.min(cap, total) do
      workers[w] = n.thread.spawn(worker)
   end
   for w = 1, #workers do
      local ok, e = n.thread.wait(workers[w])
      if not ok then error("calypso: batch: " .. tostring(e), 2) end
   end
   return results
end

-- True when a failed create may have been applied: it may have left (sent ~= false) and no
-- Calypso error body other than 000 says it was refused (timeout, network, an HTTP error page
-- from a proxy, an unreadable 200, API error 000).
local function maybe_applied(err)
   if type(err) ~= "table" or err.sent == false or err.kind == "invalid" then return false end
   if err.kind == "api" and err.code ~= "000" then return false end
   return true
end

-- The first customer with this externalId: the customer, false when there is none, or nil,
-- message, err.
local function find_by_external_id(self, external_id)
   local found, msg, err = perform(self, "get_customers_by_external_id", { externalId = external_id })
   if found == nil then return nil, msg, err end
   local list = type(found) == "table" and found.customers
   if type(list) ~= "table" then
      msg = "calypso: get_customers_by_external_id: the answer has no customers list"
      return nil, msg, { kind = "decode", op = "get_customers_by_external_id", message = msg,
                         status = 200, retryable = false, sent = true }
   end
   return list[1] or false
end

--- Find-or-create by externalId: client:ensure_customer{ externalId =, email =, description = }
-- or client:ensure_customer(external_id). Returns customer, how ("found": it existed;
-- "created": this call created it; "recovered": the create's answer was lost and a second
-- lookup found it), or nil, message, err. Creates at most once per call: after a create that
-- may have been applied it looks up again instead of creating again (err.after_lookup =
-- "absent" or "failed" says how that went). See docs/reference.md, "client:ensure_customer".
function Client:ensure_customer(fields)
   check_self(self, "ensure_customer")
   if type(fields) == "string" then fields = { externalId = fields } end
   local external_id = type(fields) == "table" and fields.externalId or nil
   if type(external_id) ~= "string" or external_id == "" then
      error("calypso: ensure_customer: externalId must be a non-empty string", 2)
   end
   local customer, msg, err = find_by_external_id(self, external_id)
   if customer == nil then return nil, msg, err end
   if customer then return customer, "found" end
   local created, cmsg, cerr = perform(self, "create_customer", {
      externalId = external_id, email = fields.email, description = fields.description })
   if created ~= nil then return created, "created" end
   if not maybe_applied(cerr) then return nil, cmsg, cerr end
   customer = find_by_external_id(self, external_id)
   if customer then return customer, "recovered" end
   if customer == false then
      cerr.after_lookup = "absent"
      cmsg = cmsg .. "; no customer with this externalId afterwards"
   else
      cerr.after_lookup = "failed"
      cmsg = cmsg .. "; the lookup afterwards failed too: the customer may exist"
   end
   cerr.message = cmsg
   return nil, cmsg, cerr
end

--- Gets or sets the milliseconds added to the local clock for signed timestamps.
function Client:clock_offset(ms)
   check_self(self, "clock_offset")
   if ms == nil then return self.core:clock_offset() end
   return self.core:clock_offset(ms)
end

--- The core's info table (never the secret), plus this layer's settings.
function Client:info()
   check_self(self, "info")
   local info = self.core:info()
   info.max_retries = self._policy.max_retries
   info.retry = self._policy.retry
   info.deadline = self._deadline
   info.transport = self._transport
   return info
end

--- Frees the connection and wipes the key state; idempotent.
function Client:close()
   check_self(self, "close")
   local t = self._ngx
   if t and t.close then t:close() end
   if self._batch_core then
      self._batch_core:close()
      self._batch_core = nil
   end
   self.core:close()
end

client_mt.__close = function(self) self:close() end

---------------------------------------------------------------------------------------------
-- Pages
---------------------------------------------------------------------------------------------

local function page_query(query, name)
   if type(query) == "string" then return { customerId = query } end
   if type(query) ~= "table" then
      error(format("calypso: %s: query must be a table (got %s)", name, type(query)), 3)
   end
   local q = {}
   for k, v in pairs(query) do q[k] = v end
   return q
end

-- The error object an iterator raises: err's fields (kind, status, code, retryable, sent,
-- trace_id, message, attempts, ...) in a table that reads as its one-line message: tostring,
-- `..`, string.format's %s (5.2+, LuaJIT), and the standalone interpreters (5.2+, LuaJIT).
local failure_mt = { __name = "calypso.failure" }
failure_mt.__tostring = function(e) return e.message end
failure_mt.__concat = function(a, b) return tostring(a) .. tostring(b) end

local function raise_failure(msg, err)
   local e = {}
   for k, v in pairs(type(err) == "table" and err or {}) do e[k] = v end
   e.message = msg
   if e.kind == nil then e.kind = "invalid" end
   error(setmetatable(e, failure_mt), 0)
end

-- A page that breaks the paging contract (no result list, another page, a repeat): kind
-- "decode", like any answer the client cannot use; the request was sent and answered 200.
local function page_failure(fmt, ...)
   local msg = "calypso: find_transactions: " .. format(fmt, ...)
   raise_failure(msg, { kind = "decode", op = "find_transactions", status = 200,
                        retryable = false, sent = true })
end

--- Iterator over the pages of transaction/find, lazily, from query.pageNumber (default 0):
-- `for page in client:pages{ customerId = id, pageSize = 50 } do ... end`. Yields every page
-- that holds at least one transaction ({ result, page, size, total, totalElements }). A failure
-- raises an error object (raise_failure: err's fields, tostring = the one-line message) after
-- the usual retries; so does a server that answers another page than the one asked for or
-- repeats the previous page, instead of looping forever.
function Client:pages(query)
   check_self(self, "pages")
   local q = page_query(query, "pages")
   local n = q.pageNumber or 0
   local done, previous = false, nil
   return function()
      if done then return nil end
      done = true -- until this page proves there may be another
      local ask = {}
      for k, v in pairs(q) do ask[k] = v end
      ask.pageNumber = n
      local page, msg, err = perform(self, "find_transactions", ask)
      if page == nil then raise_failure(msg, err) end
      local items = page.result
      if type(items) ~= "table" then
         page_failure("page %d has no result list", n)
      end
      if items[1] == nil then return nil end
      if type(page.page) == "number" and page.page ~= n then
         page_failure("asked for page %d, the server answered page %s", n, tostring(page.page))
      end
      local ids, fresh = {}, previous == nil
      for _, tx in ipairs(items) do
         local id = type(tx) == "table" and tx.id or nil
         if id == nil then
            fresh = true
         else
            ids[id] = true
            if not (previous and previous[id]) then fresh = true end
         end
      end
      if not fresh then
         page_failure("page %d repeats page %d; stopping instead of looping", n, n - 1)
      end
      previous = ids
      n = n + 1
      local last = (type(page.total) == "number" and n >= page.total)
         or (type(page.size) == "number" and #items < page.size)
      done = last and true or false
      return page
   end
end

--- Iterator over every transaction of every page, lazily:
-- `for tx in client:transactions{ customerId = id, pageSize = 100 } do ... end`.
-- Failures raise as in client:pages.
function Client:transactions(query)
   check_self(self, "transactions")
   local next_page = self:pages(page_query(query, "transactions"))
   local items, i = nil, 0
   return function()
      while true do
         if items then
            i = i + 1
            local tx = items[i]
            if tx ~= nil then return tx end
         end
         local page = next_page()
         if page == nil then
            items = nil
            return nil
         end
         items, i = page.result, 0
      end
   end
end

---------------------------------------------------------------------------------------------
-- Constructor
---------------------------------------------------------------------------------------------

--- Creates a client. Options given win over the environment; this layer's options (see
-- LUA_OPTIONS) are checked here and everything else goes to purse.new, where unknown names
-- and wrong types raise.
function M.new(opts)
   if opts ~= nil and type(opts) ~= "table" then
      error("calypso.new: options must be a table (got " .. type(opts) .. ")", 2)
   end
   local core_opts, mine, transport_opts = {}, {}, {}
   for k, v in pairs(opts or {}) do
      local entry = LUA_OPTIONS[k]
      if entry then
         mine[k] = checked(k, entry, v, 2)
      else
         core_opts[k] = v
      end
   end
   local ngx_opts = {}
   for k, v in pairs(mine.ngx_options or {}) do
      local entry = NGX_OPTIONS[k]
      if not entry then
         error(format("calypso.new: option 'ngx_options.%s' is not an option of "
            .. "calypso.transport.ngx (pool_size, keepalive_timeout, pool)", tostring(k)), 2)
      end
      ngx_opts[k] = checked("ngx_options." .. k, entry, v, 2)
   end
   for name, var in pairs(from_env) do
      if core_opts[name] == nil then
         local v = getenv(var)
         if v ~= nil and v ~= "" then core_opts[name] = v end
      end
   end
   local core = purse.new(core_opts)
   if core_opts.base_url == nil then warn_default_host(core) end
   -- calypso.transport.ngx.new gets the core options but the secret (the core signs), plus
   -- its own (pool_size, keepalive_timeout, pool) from ngx_options
   for k, v in pairs(core_opts) do
      if k ~= "secret" then transport_opts[k] = v end
   end
   for k, v in pairs(ngx_opts) do transport_opts[k] = v end
   local max_retries = mine.max_retries or DEFAULT_MAX_RETRIES
   local attempts = mine.retry == false and 1 or max_retries + 1
   local deadline = mine.deadline or math.min(core:info().timeout * attempts, MAX_SECONDS)
   return setmetatable({
      core = core,
      _policy = { max_retries = max_retries, retry = mine.retry ~= false,
                  heal_clock_skew = mine.heal_clock_skew ~= false },
      _deadline = deadline,
      _backoff_base = mine.backoff_base or DEFAULT_BACKOFF_BASE,
      _backoff_max = mine.backoff_max or DEFAULT_BACKOFF_MAX,
      _on_event = mine.on_event,
      _hook_bodies = mine.hook_bodies == true,
      _transport = mine.transport or "auto",
      _blocking_fallback = mine.blocking_fallback == true,
      _transport_opts = transport_opts,
      _curl = curl_transport(core),
   }, client_mt)
end

M.Client = Client

return M

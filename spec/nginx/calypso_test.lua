-- Handlers for the private nginx of spec/nginx_spec.lua (loaded with lua_package_path).
--
-- POST /call with a JSON body
--   { client = { key, secret, account, base_url, timeout, ... },  -- purse.new options
--     op = "get_customer", payload = { ... },
--     via = "ngx" | "curl" | "calypso" | "both" | "batch" | "multi", -- default "ngx"
--     calls = { { op, payload }, ... }, max_in_flight = n,         -- for "batch", "multi"
--     events = true,                                               -- answer.events (on_event)
--     transport = { pool_size, keepalive_timeout },                -- calypso.transport.ngx opts
--     deadline_in = seconds }                                      -- t:request's deadline
-- answers { ngx = { res, msg, err }, curl = { ... }, calypso = { ... }, elapsed = { ... },
--           stats = { connects, reused, resent, last_reused, stale }, phase = ngx.get_phase() }.
-- "ngx" goes through calypso.transport.ngx (cosockets), "curl" through the core's own
-- blocking libcurl method, "calypso" through require("calypso").new (the Lua layer decides).
local cjson = require("cjson.safe")
local purse = require("calypso.purse")
local transport = require("calypso.transport.ngx")

local M = {}

-- Transports are kept per worker and per client settings, so the stats add up across
-- requests (the keep-alive pool itself is per worker whatever we do).
local transports = {}

local function key_of(t)
   local keys = {}
   for k in pairs(t) do keys[#keys + 1] = k end
   table.sort(keys)
   local parts = {}
   for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
   return table.concat(parts, "&")
end

local function triple(res, msg, err)
   return { res = res, msg = msg, err = err }
end

local function via_ngx(req)
   local k = key_of(req.client) .. "|" .. key_of(req.transport or {})
   local t = transports[k]
   if not t then
      t = transport.new(purse.new(req.client), req.transport)
      transports[k] = t
   end
   local deadline = req.deadline_in and purse.now() + req.deadline_in or nil
   local out = triple(t:request(req.op, req.payload, deadline))
   return out, t.stats
end

local function call_method(client, op, payload)
   if purse.operations[op] then
      return client[op](client, payload)
   end
   return client:call(op, payload)
end

local function via_curl(req)
   local c = purse.new(req.client)
   local out = triple(call_method(c, req.op, req.payload))
   c:close()
   return out
end

local function via_calypso(req)
   local ok, c = pcall(require("calypso").new, req.client)
   if not ok then
      return { error = tostring(c) } -- e.g. a Lua layer that does not know an option yet
   end
   return triple(call_method(c, req.op, req.payload))
end

-- calypso.new(req.client); with req.events, its on_event events go to answer.events.
local function layer_client(req, answer)
   local opts = {}
   for k, v in pairs(req.client) do opts[k] = v end
   if req.events then
      answer.events = {}
      opts.on_event = function(ev)
         answer.events[#answer.events + 1] = { op = ev.op, attempt = ev.attempt, ok = ev.ok,
            kind = ev.kind, retry = ev.retry, reason = ev.reason, final = ev.final,
            transport = ev.transport }
      end
   end
   return require("calypso").new(opts)
end

local function timed(fn, req)
   ngx.update_time()
   local t0 = ngx.now()
   local a, b = fn(req)
   ngx.update_time()
   return a, b, ngx.now() - t0
end

--- Runs one request as described by the table `req`; returns the answer table.
function M.run(req)
   local via = req.via or "ngx"
   local _
   local answer = {
      phase = ngx.get_phase(), available = transport.available(), elapsed = {},
      runtime = {
         jit = rawget(_G, "jit") and jit.version, lua = _VERSION,
         openresty_luajit = (pcall(require, "table.isempty")), -- only OpenResty's branch has it
         ngx_lua = ngx.config.ngx_lua_version, purse = purse._VERSION,
         purse_file = package.searchpath and package.searchpath("calypso.purse", package.cpath),
      },
   }
   if via == "ngx" or via == "both" then
      answer.ngx, answer.stats, answer.elapsed.ngx = timed(via_ngx, req)
      answer.stats = {
         connects = answer.stats.connects, reused = answer.stats.reused,
         resent = answer.stats.resent, last_reused = answer.stats.last_reused,
         stale = answer.stats.stale,
      }
   end
   if via == "curl" or via == "both" then
      answer.curl, _, answer.elapsed.curl = timed(via_curl, req)
   end
   if via == "calypso" then
      answer.calypso, _, answer.elapsed.calypso = timed(via_calypso, req)
   end
   if via == "batch" then -- calypso.new(...):batch(req.calls), the Lua layer's light threads
      answer.batch, _, answer.elapsed.batch = timed(function(r)
         return layer_client(r, answer):batch(r.calls, r.max_in_flight)
      end, req)
   end
   if via == "multi" then -- calypso.new(...):multi{ max_in_flight }, start each of req.calls
      answer.multi, _, answer.elapsed.multi = timed(function(r)
         local m = layer_client(r, answer):multi{ max_in_flight = r.max_in_flight }
         local index, out = {}, {}
         for i, c in ipairs(r.calls) do
            local id, msg, err = m:start(c[1], c[2], c[3])
            if id then index[id] = i else out[i] = { message = msg, err = err } end
         end
         for _ = 1, 600 do -- at most ~30 s
            if m:pending() == 0 then break end
            m:poll(0.05)
            for id, res, msg, err in m:finished() do
               out[index[id]] = res ~= nil and { value = res } or { message = msg, err = err }
            end
         end
         m:close()
         return out
      end, req)
   end
   return answer
end

local function reply(status, value)
   ngx.status = status
   ngx.header["Content-Type"] = "application/json"
   ngx.print(cjson.encode(value))
end

--- content_by_lua handler for POST /call.
function M.call()
   ngx.req.read_body()
   local req = cjson.decode(ngx.req.get_body_data() or "")
   if type(req) ~= "table" or type(req.client) ~= "table" or type(req.op) ~= "string" then
      return reply(400, { error = "bad request" })
   end
   return reply(200, M.run(req))
end

--- content_by_lua handler for POST /timer: the same call from an ngx.timer (no request
-- object there); waits, bounded, for the timer to finish.
function M.timer()
   ngx.req.read_body()
   local req = cjson.decode(ngx.req.get_body_data() or "")
   if type(req) ~= "table" or type(req.client) ~= "table" then
      return reply(400, { error = "bad request" })
   end
   local box = {}
   local ok, err = ngx.timer.at(0, function(premature)
      if premature then return end
      box.answer = M.run(req)
   end)
   if not ok then
      return reply(500, { error = tostring(err) })
   end
   for _ = 1, 300 do -- at most ~30 s
      if box.answer then break end
      ngx.sleep(0.1)
   end
   return reply(box.answer and 200 or 504, box.answer or { error = "timer did not finish" })
end

--- set_by_lua handler: the request described by the JSON in the `q` query argument, run in
-- a phase without cosockets; returns the answer as JSON text.
function M.in_set()
   local req = cjson.decode(ngx.unescape_uri(ngx.var.arg_q or ""))
   if type(req) ~= "table" or type(req.client) ~= "table" then
      return cjson.encode({ error = "bad request" })
   end
   return cjson.encode(M.run(req))
end

--- Records available() for the current phase in the shared dict "phases".
function M.record_phase(name)
   ngx.shared.phases:set(name or ngx.get_phase(), tostring(transport.available()))
end

--- content_by_lua handler for GET /phases: what available() said in each phase seen so far.
function M.phases()
   local d = ngx.shared.phases
   local out = {}
   for _, k in ipairs(d:get_keys(100)) do out[k] = d:get(k) end
   return reply(200, out)
end

return M

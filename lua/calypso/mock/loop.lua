-- calypso.mock.loop: the mock's event loop. One process, one thread: socket.select over the
-- listener and the connections (calypso.mock.conn), with timers for everything that happens
-- later (delayed answers, trickled bytes, webhook deliveries, listening again after a refuse).
-- The functions in `methods` are Server methods (calypso.mock.server).

local socket = require("socket")
local conn = require("calypso.mock.conn")

local M = {}

local pairs, ipairs = pairs, ipairs
local min, max = math.min, math.max
local gettime, socket_select = socket.gettime, socket.select

local MAX_CONNECTIONS = conn.MAX_CONNECTIONS

local Server = {} -- methods of the Server (calypso.mock.server)
M.methods = Server

---------------------------------------------------------------------------------------------
-- Timers
---------------------------------------------------------------------------------------------

function Server:add_timer(at, fn)
   self.timers[#self.timers + 1] = { at = at, fn = fn }
end

function Server:next_timer()
   local soonest = math.huge
   for _, t in ipairs(self.timers) do
      soonest = min(soonest, t.at)
   end
   return soonest
end

-- Fires every timer that is due; the rest stay queued.
function Server:run_timers(now)
   local due, keep = {}, {}
   for _, t in ipairs(self.timers) do
      if t.at <= now then
         due[#due + 1] = t
      else
         keep[#keep + 1] = t
      end
   end
   if #due == 0 then
      return
   end
   self.timers = keep
   table.sort(due, function(a, b) return a.at < b.at end)
   for _, t in ipairs(due) do
      t.fn()
   end
end

---------------------------------------------------------------------------------------------
-- Event loop
---------------------------------------------------------------------------------------------

function Server:select_sets()
   local readers, writers = {}, {}
   if self.nconns < MAX_CONNECTIONS and self.listener then
      readers[1] = self.listener
   end
   for sock, c in pairs(self.conns) do
      local p = c.phase
      if p == "head" or p == "body" or p == "stall" or p == "drain" or p == "handshake" then
         readers[#readers + 1] = sock
      end
      if c.out or c.want_write then
         writers[#writers + 1] = sock
      end
   end
   return readers, writers
end

-- One heartbeat byte to the parent; false once the pipe is gone (luasocket ignores SIGPIPE,
-- so the write fails with EPIPE instead of killing us).
local function beat()
   local ok = io.stdout:write("\n")
   if ok then
      ok = io.stdout:flush()
   end
   return ok and true or false
end

-- One select round: waits at most until `wake_at`, then serves whatever is ready.
function Server:step(wake_at)
   local readers, writers = self:select_sets()
   local timeout = max(0, min(wake_at, self:next_timer()) - gettime())
   local readable, writable = socket_select(readers, writers, timeout)
   for _, sock in ipairs(writable or {}) do
      local c = self.conns[sock]
      if c and c.phase == "handshake" then
         self:handshake(c)
      elseif c and c.out then
         self:flush(c)
      end
   end
   for _, sock in ipairs(readable or {}) do
      if self.listener and sock == self.listener then
         self:accept_all()
      elseif self.conns[sock] then
         self:on_readable(self.conns[sock])
      end
   end
   self:run_timers(gettime())
end

--- Serves until shut down, the lifetime ends or (with heartbeat) the parent goes away.
function Server:run()
   local now = gettime()
   local deadline = self.lifetime > 0 and now + self.lifetime or math.huge
   local tick = now + 1 -- heartbeat and idle sweep, once a second
   while self.running do
      now = gettime()
      if now >= deadline or (self.stop_at and now >= self.stop_at) then
         break
      end
      if now >= tick then
         tick = now + 1
         if self.heartbeat and not beat() then
            break
         end
         self:sweep(now)
      end
      self:step(min(tick, deadline, self.stop_at or math.huge))
   end
   self:close_all()
end

function Server:close_all()
   for _, c in pairs(self.conns) do
      self:close(c)
   end
   if self.listener then
      self.listener:close()
      self.listener = nil
   end
   self.running = false
end

return M

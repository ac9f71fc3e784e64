-- A hostile HTTP server for the corpus of spec/support/hostile_corpus.lua, on 127.0.0.1 and
-- ::1 (free ports), in a child process.
--
--   local hostile = require("support.hostile_server")
--   local s = hostile.start()            -- s.port (127.0.0.1), s.port6 (::1)
--   s:url("status_000")                   -- "http://127.0.0.1:<port>/h/status_000"
--   s:url("ok_ipv6_literal", true)        -- "http://[::1]:<port6>/h/ok_ipv6_literal"
--   s:stop()
--
-- The client's base_url names the case: a request for /h/<case>/... is answered with that
-- case's steps, then the connection is closed. One connection at a time (the specs replay
-- the corpus one case after the other).
--
-- Lifetime: the child writes a heartbeat byte to its stdout pipe every second and exits when
-- that write fails (this process has gone), or after `lifetime` seconds (default 900) at the
-- latest. One case runs at most CASE_CAP seconds and sends at most its own byte count; a send
-- that the client does not take within 5 s ends the case.
local M = {}

local CASE_CAP = 20

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

---------------------------------------------------------------------------------------------
-- the child
---------------------------------------------------------------------------------------------

--- Runs the server in this process (the child). opts: lifetime (seconds).
function M.main(opts)
   local socket = require("socket")
   local corpus = require("support.hostile_corpus")
   local gettime = socket.gettime
   local deadline = gettime() + (opts.lifetime or 900)
   local l4 = assert(socket.bind("127.0.0.1", 0))
   local l6 = assert(socket.tcp6())
   assert(l6:setoption("ipv6-v6only", true))
   assert(l6:setoption("reuseaddr", true))
   assert(l6:bind("::1", 0))
   assert(l6:listen(32))
   local _, p4 = l4:getsockname()
   local _, p6 = l6:getsockname()
   io.stdout:write("LISTENING ", p4, " ", p6, "\n")
   io.stdout:flush()
   local tick = gettime() + 1
   local alive = true
   local function beat()
      local now = gettime()
      if now < tick then return alive end
      tick = now + 1
      local ok = io.stdout:write("\n")
      ok = ok and io.stdout:flush()
      alive = (ok and now < deadline) and true or false
      return alive
   end

   local function serve(c)
      c:settimeout(5)
      local line = c:receive("*l")
      if not line then return end
      local length = 0
      for _ = 1, 100 do
         local h = c:receive("*l")
         if not h or h == "" then break end
         local n = h:lower():match("^content%-length:%s*(%d+)")
         if n then length = tonumber(n) end
      end
      if length > 0 and length < 1e6 then c:receive(length) end
      local name = line:match("^%u+ /h/([%w_]+)/")
      local case = name and corpus.get(name)
      if not case then
         c:send("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
         return
      end
      -- a send the client does not take within 1 s, or a client that hung up, ends the case
      c:settimeout(1)
      local stop_at = gettime() + CASE_CAP
      for ev in corpus.events(case.steps) do
         if not beat() or gettime() > stop_at then break end
         if ev.data then
            local ok = c:send(ev.data)
            if not ok then break end
         else
            local wake, gone = gettime() + ev.sleep, false
            while not gone and beat() do
               local left = wake - gettime()
               if left <= 0 then break end
               -- the client sends nothing more: readable means it closed (or reset)
               local readable = socket.select({ c }, nil, math.min(left, 0.2))
               if readable and readable[1] then
                  c:settimeout(0)
                  local _, err = c:receive(1)
                  gone = err == "closed" or (err ~= nil and err ~= "timeout")
                  c:settimeout(1)
               end
            end
            if gone then break end
         end
      end
   end

   while beat() do
      local ready = socket.select({ l4, l6 }, nil, 0.5)
      for _, l in ipairs(ready or {}) do
         l:settimeout(0)
         local c = l:accept()
         if c then
            pcall(serve, c)
            c:close()
         end
      end
   end
   l4:close()
   l6:close()
end

---------------------------------------------------------------------------------------------
-- the parent
---------------------------------------------------------------------------------------------

local Handle = {}
Handle.__index = Handle

--- Starts the server in a child interpreter (the same `lua` as CALYPSO_MOCK_LUA, else lua5.4).
-- opts: lifetime (seconds, default 900), lua.
function M.start(opts)
   opts = opts or {}
   local lua = opts.lua or os.getenv("CALYPSO_MOCK_LUA") or "lua5.4"
   local code = ("package.path=%q package.cpath=%q require('support.hostile_server').main{ lifetime = %d }")
      :format(package.path, package.cpath, math.floor(opts.lifetime or 900))
   local pipe = assert(io.popen(shell_quote(lua) .. " -e " .. shell_quote(code), "r"))
   local first = pipe:read("*l") or ""
   local p4, p6 = first:match("^LISTENING (%d+) (%d+)")
   if not p4 then
      pipe:close()
      error("hostile_server: did not start: " .. first, 2)
   end
   return setmetatable({ pipe = pipe, port = tonumber(p4), port6 = tonumber(p6) }, Handle)
end

--- The base_url that makes the server answer with case `name`.
function Handle:url(name, ipv6)
   if ipv6 then
      return ("http://[::1]:%d/h/%s"):format(self.port6, name)
   end
   return ("http://127.0.0.1:%d/h/%s"):format(self.port, name)
end

--- Stops the server: closing the pipe makes its next heartbeat fail (within about a second).
function Handle:stop()
   if self.pipe then
      -- io.popen's close waits for the child; it exits at its next heartbeat
      self.pipe:close()
      self.pipe = nil
   end
end

return M

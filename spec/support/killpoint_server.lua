-- A scripted HTTP/1.1 server for the write-path hostile review (spec/write_killpoints_spec.lua):
-- a child lua5.4 process that serves connections one at a time, each request by a step of a
-- plan, and logs every request it saw (path, Content-Length, body bytes actually read) to a
-- file the spec reads back. Bounded: it exits after `lifetime` seconds (default 20) or when
-- its parent goes away (stdin closes). Loopback only.
--
--   local srv = require("support.killpoint_server").start{ plan = { [1] = { "ok", "head_close" } } }
--   ... srv.url ...
--   local log = srv:log()     -- { { conn = 1, path = ..., cl = n, got = m }, ... }
--   srv:stop()
--
-- Steps (per connection, per request; requests past the plan's list answer "ok"):
--   ok            read the whole request, answer 200 with a JSON customer
--   head_close    read the head only, close (FIN)
--   head_rst      read the head only, reset (RST)
--   part_close:N  read the head and N bytes of body, close
--   part_rst:N    read the head and N bytes of body, reset
--   full_close    read the whole request, close unanswered
--   c100_close    read the head, send "100 Continue", close
--   c100_ok       read the head, send "100 Continue", read the body, answer 200
--   early_ok      read the head, answer 200 at once, then read the body and go on
--   early_ok_close read the head, answer 200 (Connection: close) at once, close
--   status:N      read the whole request, answer N with an empty JSON error body
local M = {}

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local SERVER = [=[
local socket = require("socket")
local plan = load("return " .. os.getenv("RV_PLAN"))()
local logname = os.getenv("RV_LOG")
local lifetime = tonumber(os.getenv("RV_LIFETIME")) or 20
local l = assert(socket.bind("127.0.0.1", 0))
io.stdout:write("PORT ", select(2, l:getsockname()), "\n") io.stdout:flush()
local stop_at = socket.gettime() + lifetime
local log = assert(io.open(logname, "w"))
local function note(conn, path, cl, got, step)
   log:write(("%d\t%s\t%d\t%d\t%s\n"):format(conn, path, cl, got, step)) log:flush()
end
local CUSTOMER = '{"id":"11111111-1111-4111-8111-111111111111","email":"a@example.com","blocked":false}'
local function answer(c, status, body, extra)
   body = body or CUSTOMER
   c:send(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s")
      :format(status, #body, extra or "", body))
end
local function read_head(c)
   local line = c:receive("*l")
   if not line then return nil end
   local path = line:match("^%S+ (%S+)") or "?"
   local n = 0
   for _ = 1, 100 do
      local h = c:receive("*l")
      if not h or h == "" then break end
      n = tonumber(h:lower():match("^content%-length:%s*(%d+)")) or n
   end
   return path, n
end
local function read_body(c, n)
   if n <= 0 then return 0 end
   local got, err, part = c:receive(n)
   if got then return #got end
   return #(part or "")
end
local function rst(c)
   pcall(c.setoption, c, "linger", { on = true, timeout = 0 })
   c:close()
end
local conns = 0
l:settimeout(0.2)
while socket.gettime() < stop_at do
   local c = l:accept()
   if c then
      conns = conns + 1
      local steps = plan[conns] or {}
      c:settimeout(tonumber(os.getenv("RV_KEEP")) or 1.5)
      for i = 1, 50 do
         local step = steps[i] or "ok"
         local path, cl = read_head(c)
         if not path then break end
         local name, arg = step:match("^([%w_]+):?(%d*)$")
         arg = tonumber(arg)
         if name == "ok" then
            note(conns, path, cl, read_body(c, cl), step)
            answer(c, 200)
         elseif name == "head_close" then
            note(conns, path, cl, 0, step) c:close() break
         elseif name == "head_rst" then
            note(conns, path, cl, 0, step) rst(c) break
         elseif name == "part_close" then
            note(conns, path, cl, read_body(c, arg), step) c:close() break
         elseif name == "part_rst" then
            note(conns, path, cl, read_body(c, arg), step) rst(c) break
         elseif name == "full_close" then
            note(conns, path, cl, read_body(c, cl), step) c:close() break
         elseif name == "c100_close" then
            c:send("HTTP/1.1 100 Continue\r\n\r\n")
            note(conns, path, cl, 0, step) c:close() break
         elseif name == "c100_ok" then
            c:send("HTTP/1.1 100 Continue\r\n\r\n")
            note(conns, path, cl, read_body(c, cl), step)
            answer(c, 200)
         elseif name == "early_ok" then
            answer(c, 200)
            note(conns, path, cl, read_body(c, cl), step)
         elseif name == "early_ok_close" then
            answer(c, 200, nil, "Connection: close\r\n")
            note(conns, path, cl, 0, step) socket.sleep(0.2) c:close() break
         elseif name == "status" then
            note(conns, path, cl, read_body(c, cl), step)
            answer(c, arg, '{"code":"999","message":"x"}', arg == 307 and "Location: /api/v1/elsewhere\r\n" or "")
         end
      end
      pcall(c.close, c)
   end
end
log:close()
]=]

function M.start(opts)
   local logname = os.tmpname()
   local cmd = ("echo $$; RV_PLAN=%s RV_LOG=%s RV_LIFETIME=%d RV_KEEP=%s exec timeout -s KILL %d lua5.4 -e %s")
      :format(shell_quote(opts.plan_text), shell_quote(logname), opts.lifetime or 20,
              tostring(opts.keep or 1.5), (opts.lifetime or 20) + 5, shell_quote(SERVER))
   local pipe = assert(io.popen(cmd, "r"))
   local pid = tonumber(pipe:read("*l"))
   local port = tonumber(((pipe:read("*l") or ""):match("^PORT (%d+)")))
   assert(pid and port, "review server did not start")
   local h = { port = port, url = "http://127.0.0.1:" .. port, logname = logname, pipe = pipe, pid = pid }
   function h:log()
      local out = {}
      local f = io.open(self.logname, "r")
      if not f then return out end
      for line in f:lines() do
         local conn, path, cl, got, step = line:match("^(%d+)\t(%S+)\t(%d+)\t(%d+)\t(%S+)$")
         if conn then
            out[#out + 1] = { conn = tonumber(conn), path = path, cl = tonumber(cl), got = tonumber(got), step = step }
         end
      end
      f:close()
      return out
   end
   --- requests whose path contains `needle`
   function h:count(needle)
      local n = 0
      for _, r in ipairs(self:log()) do
         if r.path:find(needle, 1, true) then n = n + 1 end
      end
      return n
   end
   function h:stop()
      if self.pipe then
         os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")   -- the timeout(1) we started: it passes TERM on
         self.pipe:close()
         self.pipe = nil
      end
      os.remove(self.logname)
   end
   return h
end

return M

-- A keep-alive HTTPS server for the stale-SSL* specs. Per request (by customerId):
--   "...0005" (STALL): head with Content-Length 4096 and 16 bytes of body, then nothing more
--                      (the connection is kept open, never read again);
--   "...0006" (SLOW):  an empty 200 answer after 1 s;
--   anything else:     an empty 200 answer (Content-Length: 0: libcurl calls no body callback).
-- Lifetime: heartbeat on the stdout pipe every 0.5 s; exits when that fails or after 60 s.
local M = {}
M.STALL = "00000000-0000-4000-8000-000000000005"
M.SLOW = "00000000-0000-4000-8000-000000000006"
M.EMPTY = "00000000-0000-4000-8000-000000000007"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.main(opts)
   local socket = require "socket"
   local read_request = require "support.read_request"
   local ssl = require "ssl"
   local ctx = assert(ssl.newcontext{ mode = "server", protocol = "any", key = opts.key,
                                      certificate = opts.cert, options = { "all" } })
   local deadline = socket.gettime() + 60
   local l = assert(socket.bind("127.0.0.1", 0))
   l:settimeout(0)
   local _, port = l:getsockname()
   io.stdout:write("LISTENING ", port, "\n")
   io.stdout:flush()
   local tick, conns, stalled = 0, {}, {}
   local function drop(c)
      for i, x in ipairs(conns) do if x == c then table.remove(conns, i) break end end
      c:close()
   end
   local function serve(c)
      c:settimeout(2)
      local body = read_request(c)
      if not body then return drop(c) end
      local id = body:match('"customerId"%s*:%s*"([^"]+)"')
      if id == M.STALL then
         c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
                .. '{"id":"stalled",')
         for i, x in ipairs(conns) do if x == c then table.remove(conns, i) break end end
         stalled[#stalled + 1] = c            -- kept open, never read again
         return
      end
      if id == M.SLOW then socket.sleep(1.0) end
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n"
             .. "Connection: keep-alive\r\n\r\n")
   end
   while true do
      local now = socket.gettime()
      if now >= tick then
         tick = now + 0.5
         if not (io.stdout:write("\n") and io.stdout:flush()) then break end
      end
      if now > deadline then break end
      local r = socket.select({ l, (table.unpack or unpack)(conns) }, nil, 0.1)
      for _, s in ipairs(r or {}) do
         if s == l then
            local c = l:accept()
            if c then
               c = assert(ssl.wrap(c, ctx))
               c:settimeout(5)
               if c:dohandshake() then conns[#conns + 1] = c else c:close() end
            end
         else
            serve(s)
         end
      end
   end
   os.exit(0)
end

local Handle = {}
Handle.__index = Handle
function M.start(server_cert)
   local lua = os.getenv("CALYPSO_MOCK_LUA") or "lua5.4"
   local code = ("package.path=%q package.cpath=%q require('support.stall_tls_server').main{ cert = %q, key = %q }")
      :format(package.path, package.cpath, server_cert.certificate, server_cert.key)
   local pipe = assert(io.popen(q(lua) .. " -e " .. q(code), "r"))
   local port = (pipe:read("*l") or ""):match("^LISTENING (%d+)")
   if not port then pipe:close(); error("stall_tls_server: did not start", 2) end
   return setmetatable({ pipe = pipe, port = tonumber(port) }, Handle)
end
function Handle:base_url() return "https://127.0.0.1:" .. self.port end
function Handle:stop() if self.pipe then self.pipe:close(); self.pipe = nil end end
return M

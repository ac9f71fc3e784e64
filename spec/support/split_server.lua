-- A keep-alive HTTP(S) server for specs that writes each answer in two sends (two TLS
-- records over HTTPS): the head, then the body. For a request naming customer ARM_ID it
-- appends `junk` (a complete second answer nobody asked for) to the body's send, so over TLS
-- the junk sits in the same record as the body: OpenSSL decrypts it along with the body and
-- keeps it in its own buffer, where poll() on the socket never sees it.
--
--   local split = require "support.split_server"
--   local s = split.start{ tls = certs.server, junk = "HTTP/1.1 200 ..." }   -- s.port
--   s:stop()
-- Every other request gets {"id": <its customerId>, "email": "own@example.com"}.
-- Lifetime: heartbeat on the stdout pipe every 0.5 s; exits when that fails or after 120 s.
local M = {}

M.ARM_ID = "11111111-1111-4111-8111-111111111111"

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.main(opts)
   local socket = require "socket"
   local read_request = require "support.read_request"
   local ssl = opts.cert and require "ssl"
   local junk = opts.junk or ""
   local ctx
   if ssl then
      ctx = assert(ssl.newcontext{ mode = "server", protocol = "any", key = opts.key,
                                   certificate = opts.cert, options = { "all" } })
   end
   local deadline = socket.gettime() + 120
   local l = assert(socket.bind("127.0.0.1", 0))
   l:settimeout(0)
   local _, port = l:getsockname()
   io.stdout:write("LISTENING ", port, "\n")
   io.stdout:flush()
   local tick = 0
   local function alive()
      local now = socket.gettime()
      if now >= tick then
         tick = now + 0.5
         if not (io.stdout:write("\n") and io.stdout:flush()) then return false end
      end
      return now < deadline
   end
   local conns = {}
   local function drop(c)
      for i, x in ipairs(conns) do if x == c then table.remove(conns, i) break end end
      c:close()
   end
   local function serve(c)
      c:settimeout(2)
      local body = read_request(c)
      if not body then return drop(c) end
      local id = body:match('"customerId"%s*:%s*"([^"]+)"') or "00000000-0000-4000-8000-000000000001"
      local out = '{"id":"' .. id .. '","email":"own@example.com"}'
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #out
         .. "\r\nConnection: keep-alive\r\n\r\n")
      socket.sleep(0.02)
      c:send(out .. (id == M.ARM_ID and junk or ""))
   end
   while alive() do
      local r = socket.select({ l, (table.unpack or unpack)(conns) }, nil, 0.2)
      for _, s in ipairs(r or {}) do
         if s == l then
            local c = l:accept()
            if c then
               if ssl then
                  c = assert(ssl.wrap(c, ctx))
                  c:settimeout(5)
                  if c:dohandshake() then conns[#conns + 1] = c else c:close() end
               else
                  conns[#conns + 1] = c
               end
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

function M.start(opts)
   opts = opts or {}
   local lua = os.getenv("CALYPSO_MOCK_LUA") or "lua5.4"
   local code = ("package.path=%q package.cpath=%q "
                 .. "require('support.split_server').main{ cert = %s, key = %s, junk = %q }")
      :format(package.path, package.cpath,
              opts.tls and ("%q"):format(opts.tls.certificate) or "nil",
              opts.tls and ("%q"):format(opts.tls.key) or "nil", opts.junk or "")
   local pipe = assert(io.popen(shell_quote(lua) .. " -e " .. shell_quote(code), "r"))
   local first = pipe:read("*l") or ""
   local port = first:match("^LISTENING (%d+)")
   if not port then
      pipe:close()
      error("split_server: did not start: " .. first, 2)
   end
   return setmetatable({ pipe = pipe, port = tonumber(port), tls = opts.tls ~= nil }, Handle)
end

function Handle:base_url()
   return (self.tls and "https" or "http") .. "://127.0.0.1:" .. self.port
end

function Handle:stop()
   if self.pipe then self.pipe:close(); self.pipe = nil end
end

return M

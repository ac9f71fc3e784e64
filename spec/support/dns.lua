-- A tiny DNS server on 127.0.0.1 for the nginx specs: nginx's `resolver` directive needs a
-- real DNS server to turn a host name into an address (it never reads /etc/hosts), and TLS
-- host name checks need a host name. Answers A queries for the names it was given with
-- 127.0.0.1 and NXDOMAIN for everything else; nothing leaves the loopback interface.
--
--   local dns = require("support.dns").start{ "calypso.test", "other.test" }
--   -- nginx: resolver 127.0.0.1:<dns.port> ipv6=off;
--   dns:stop()
--
-- Like the mock, the server is a child process that writes a heartbeat byte to its parent
-- every second and exits when that fails (the parent is gone) or after `lifetime` seconds.
local socket = require("socket")

local M = {}

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The question section of a query: returns name (lowercase, dotted), qtype, end offset.
local function parse_question(q)
   local i, labels = 13, {}
   for _ = 1, 64 do
      local len = q:byte(i)
      if not len then return nil end
      if len == 0 then break end
      if len >= 64 then return nil end -- no compression in questions
      labels[#labels + 1] = q:sub(i + 1, i + len):lower()
      i = i + len + 1
   end
   local t1, t2 = q:byte(i + 1, i + 2)
   if not t2 then return nil end
   return table.concat(labels, "."), t1 * 256 + t2, i + 4
end

--- Serves until the parent goes away or lifetime passes (runs in the child).
function M.serve(names, lifetime)
   local known = {}
   for _, n in ipairs(names) do known[n:lower()] = true end
   local udp = assert(socket.udp())
   assert(udp:setsockname("127.0.0.1", 0))
   local _, port = udp:getsockname()
   io.stdout:write("LISTENING ", port, "\n")
   io.stdout:flush()
   udp:settimeout(1)
   local deadline = socket.gettime() + (lifetime or 900)
   while socket.gettime() < deadline do
      local q, ip, qport = udp:receivefrom()
      if q and #q >= 17 then
         local name, qtype, qend = parse_question(q)
         if name then
            local found = known[name]
            local answer = found and qtype == 1
            -- header: same id, QR+RD+RA, rcode 0 or 3 (NXDOMAIN); one question, 0/1 answer
            local head = q:sub(1, 2) .. string.char(0x81, found and 0x80 or 0x83)
               .. "\0\1" .. (answer and "\0\1" or "\0\0") .. "\0\0\0\0"
            local out = head .. q:sub(13, qend)
            if answer then
               out = out .. "\192\12" .. "\0\1\0\1" .. "\0\0\0\60" .. "\0\4" .. "\127\0\0\1"
            end
            udp:sendto(out, ip, qport)
         end
      end
      if not io.stdout:write("\n") or not io.stdout:flush() then
         break
      end
   end
   udp:close()
end

local Handle = {}
Handle.__index = Handle

function Handle:stop()
   if self.pipe then
      -- the child notices the closed pipe at its next heartbeat (<= 1 s) and exits
      self.pipe:close()
      self.pipe = nil
   end
end

--- Starts the server in a child process running `lua` (default: lua5.4); returns a handle
-- with .port and :stop().
function M.start(names, lua)
   local code = ("package.path=%q package.cpath=%q require('support.dns').serve(%s, 900)"):format(
      package.path, package.cpath,
      "{" .. table.concat((function()
         local t = {}
         for i, n in ipairs(names) do t[i] = ("%q"):format(n) end
         return t
      end)(), ",") .. "}")
   local pipe = assert(io.popen("exec " .. shell_quote(lua or "lua5.4") .. " -e " .. shell_quote(code), "r"))
   local line = pipe:read("*l")
   local port = line and tonumber(line:match("^LISTENING (%d+)$"))
   if not port then
      pipe:close()
      error("support.dns: the DNS server did not start: " .. tostring(line), 2)
   end
   return setmetatable({ port = port, pipe = pipe }, Handle)
end

return M

-- Shared helpers for the specs: the interpreter under test, a child-process
-- runner, and a client factory for the bundled mock.
local M = {}

--- The interpreter running this suite (scripts/run-specs.sh exports it).
function M.lua()
   local env = os.getenv("CALYPSO_MOCK_LUA")
   if env and env ~= "" then return env end
   local i = -1
   while arg and arg[i - 1] do i = i - 1 end
   return (arg and arg[i]) or "lua"
end

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs Lua code in a fresh interpreter with this suite's paths and the given
-- extra environment variables; returns what it printed (stdout and stderr).
function M.run_lua(code, env)
   local prelude = ("package.path=%q package.cpath=%q "):format(package.path, package.cpath)
   local vars = {}
   for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. shell_quote(v) end
   local cmd = ("env %s %s -e %s 2>&1"):format(table.concat(vars, " "), shell_quote(M.lua()),
                                               shell_quote(prelude .. code))
   local f = assert(io.popen(cmd))
   local out = f:read("*a")
   f:close()
   return out
end

--- A loopback port where a TCP connect never completes: a listener with a backlog of 0 that
-- never accepts, its accept queue filled by one connection, so the kernel drops every further
-- SYN and a client's connect waits until its own timeout. Returns port and a close function
-- (call it; the sockets also close when collected).
function M.full_backlog()
   local socket = require "socket"
   local listener = assert(socket.tcp())
   assert(listener:bind("127.0.0.1", 0))
   assert(listener:listen(0))
   local _, port = listener:getsockname()
   local fillers = {}
   for _ = 1, 8 do   -- the queue holds backlog + 1; the first connect that times out proves it full
      local c = assert(socket.tcp())
      c:settimeout(0.2)
      fillers[#fillers + 1] = c
      if not c:connect("127.0.0.1", port) then
         return port, function()
            for _, f in ipairs(fillers) do f:close() end
            listener:close()
         end
      end
   end
   error("full_backlog: the accept queue never filled")
end

--- Two bundled mocks, over plain HTTP and over HTTPS with a local CA, for specs that run each
-- case over both: pair.http, pair.https, pair.ca; pair.options(server [, extra]) gives client
-- options for either (timeout 5 s, the CA for https); pair:stop() stops both and removes the CA.
-- opts go to both mock.start calls.
function M.mock_pair(opts)
   local mock = require "calypso.mock"
   local tls = require "support.tls"
   local certs = tls.make()
   local function start(extra)
      local o = {}
      for k, v in pairs(opts or {}) do o[k] = v end
      for k, v in pairs(extra or {}) do o[k] = v end
      return mock.start(o)
   end
   local pair = { http = start(), https = start{ tls = certs.server }, ca = certs.ca }
   function pair.options(server, extra)
      local o = mock.client_options(server)
      o.timeout = 5
      if server.tls then o.ca_file = certs.ca end
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
   end
   function pair.stop()
      pair.http:stop()
      pair.https:stop()
      tls.remove(certs)
   end
   return pair
end

return M

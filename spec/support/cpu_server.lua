-- spec/support/hostile_server.lua serving the hostile corpus plus spec/support/cpu_corpus.lua
-- (same child process model, same lifetime rules: heartbeat on the pipe, `lifetime` cap).
local M = {}

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.start(opts)
   opts = opts or {}
   local lua = opts.lua or os.getenv("CALYPSO_MOCK_LUA") or "lua5.4"
   local code = ("package.path=%q package.cpath=%q require('support.cpu_corpus').install() "
      .. "require('support.hostile_server').main{ lifetime = %d }")
      :format(package.path, package.cpath, math.floor(opts.lifetime or 600))
   local pipe = assert(io.popen(shell_quote(lua) .. " -e " .. shell_quote(code), "r"))
   local first = pipe:read("*l") or ""
   local p4, p6 = first:match("^LISTENING (%d+) (%d+)")
   if not p4 then
      pipe:close()
      error("cpu_server: did not start: " .. first, 2)
   end
   local handle = { pipe = pipe, port = tonumber(p4), port6 = tonumber(p6) }
   function handle:url(name, ipv6)
      if ipv6 then return ("http://[::1]:%d/h/%s"):format(self.port6, name) end
      return ("http://127.0.0.1:%d/h/%s"):format(self.port, name)
   end
   function handle:stop()
      if self.pipe then self.pipe:close() self.pipe = nil end
   end
   return handle
end

return M

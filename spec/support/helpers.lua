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

return M

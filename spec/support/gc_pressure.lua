-- Finalizers under an aggressive collector, for the re-entrancy attacks: M.start(on_finalize)
-- sets the collector to step at nearly every allocation and makes a chain of garbage objects
-- whose __gc makes the next one, then calls on_finalize(); so some finalizer (and with it
-- on_finalize) runs in most allocations, the core's own included. On 5.1 and LuaJIT __gc runs
-- on userdata only (newproxy).
local M = {}

function M.start(on_finalize)
   local make
   local function fin()
      make()
      on_finalize()
   end
   make = function()
      if newproxy then   -- luacheck: ignore
         local p = newproxy(true)   -- luacheck: ignore
         getmetatable(p).__gc = fin
         return p
      end
      return setmetatable({}, { __gc = fin })
   end
   if _VERSION == "Lua 5.4" then
      collectgarbage("incremental", 1, 1000, 0)
   else
      collectgarbage("setpause", 1)
      collectgarbage("setstepmul", 1000)
   end
   for _ = 1, 200 do make() end
end

return M

-- Which local TCP ports hold an established connection to a loopback server port, read from
-- /proc/net/tcp (Linux): a spec's way to see whether calls shared one kept-alive connection.
-- Counts every process on the machine; specs call it while only their client talks to `port`.
local M = {}

--- The set { [local_port] = true } and its size for established connections to port.
function M.to(port)
   local set, n = {}, 0
   local f = io.open("/proc/net/tcp", "r")
   if not f then return set, 0 end
   for line in f:lines() do
      local lport, rport, st = line:match("^%s*%d+: %x+:(%x+) %x+:(%x+) (%x+)")
      if lport and tonumber(rport, 16) == port and st == "01" then
         local p = tonumber(lport, 16)
         if not set[p] then set[p], n = true, n + 1 end
      end
   end
   f:close()
   return set, n
end

--- The sorted local ports of connections to port that are not in `earlier` (a set from M.to).
function M.new_since(earlier, port)
   local now, list = M.to(port), {}
   for p in pairs(now) do
      if not earlier[p] then list[#list + 1] = p end
   end
   table.sort(list)
   return list
end

return M

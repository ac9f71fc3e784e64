-- rtt_wrap.lua: a calypso.new client as the RTT cases want it (see bench/rtt_cases.lua):
-- c.call(op, payload) -> res | nil, why; c.batch(calls) -> true | nil, why; c.close().
-- Shared by the module contenders in plain Lua (bench/rtt_client.lua) and in nginx
-- (bench/rtt_nginx.lua).
return function(client)
   local c = {}
   function c.call(op, payload)
      local res, msg = client[op](client, payload)
      return res, msg
   end
   function c.batch(calls)
      local results = client:batch(calls)
      for i = 1, #calls do
         if not (results[i] and results[i].value) then
            return nil, "batch call " .. i .. ": " .. tostring(results[i] and results[i].message)
         end
      end
      return true
   end
   function c.close() client:close() end
   return c
end

-- Reads one HTTP/1.1 request (request line, headers, a Content-Length body) from a luasocket
-- or luasec connection, for the scripted keep-alive servers of the specs (split_server,
-- stall_tls_server). Returns the body, or nil when the peer closed or timed out mid-request.
return function(c)
   if not c:receive("*l") then return nil end
   local len = 0
   repeat
      local h = c:receive("*l")
      if not h then return nil end
      local n = h:lower():match("^content%-length:%s*(%d+)")
      if n then len = tonumber(n) end
   until h == ""
   if len == 0 then return "" end
   return c:receive(len)
end

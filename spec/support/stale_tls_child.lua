-- luacheck: ignore bomb i t
-- Child for spec/stale_tls_session_spec.lua (run under valgrind). args: base_url ca_file
-- Needs a runtime where a finalizer's error propagates (5.1-5.3, LuaJIT).
local purse = require "calypso.purse"
local socket = require "socket"
local S = require "support.stall_tls_server"
local base, ca = arg[1], arg[2]
local c = purse.new{ key = "k", secret = "s", account = "0xabc", base_url = base, ca_file = ca, timeout = 5 }
-- batch 1: the STALL call gets its head and part of its body (on_body notes its SSL*), then
-- a finalizer raises while the SLOW call's result is built: the batch ends by error with
-- the STALL call still running.
local armed_at
local bomb
local function make_bomb()
   local p = newproxy and newproxy(true) or setmetatable({}, {})
   local mt = getmetatable(p)
   mt.__gc = function()
      if armed_at and socket.gettime() > armed_at then armed_at = nil; error("finalizer bomb") end
      make_bomb()
   end
   bomb = p; bomb = nil
end
collectgarbage("setpause", 1)
collectgarbage("setstepmul", 1000000)
make_bomb()
for i = 1, 1000 do local t = {} end   -- a first cycle: the chain is running
local t0 = socket.gettime()
armed_at = t0 + 0.25
local ok, e = pcall(c.batch, c, { { "get_customer", { customerId = S.STALL } },
                                  { "get_customer", { customerId = S.SLOW } } })
armed_at = nil
collectgarbage("setpause", 200)
print("batch1", ok, e, socket.gettime() - t0)
-- batch 2 reuses the STALL call's slot for an answer without a body: its stale SSL* is paired
-- with this connection. batch 3's launch (idle check) then asks OpenSSL about it.
for i = 2, 4 do
   local r = c:batch{ { "get_customer", { customerId = S.EMPTY } } }
   print("batch" .. i, r[1].message)
end
c:close()
print("END")

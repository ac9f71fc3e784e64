-- rtt_client.lua: one cell of the bench's RTT section (bench/rtt.lua) for a plain-Lua contender.
--   lua rtt_client.lua module|peer CASE BASE_URL KEY SECRET CA_FILE CONTROL_PORT ROUTE N MAX_SECONDS
-- module: calypso.new (the libcurl transport; LUA_CPATH picks build/5.4 or build/jit);
-- peer:   Lua-cURL (Debian lua-curl, one reused easy handle per client) + luaossl + lua-cjson, as in
--         bench/peer_luacurl.lua; LuaJIT only. Lua-cURL has no multi interface: the peer's
--         "batch" is its 100 calls one after another on the one handle.
-- CASE, N, MAX_SECONDS: see bench/rtt_cases.lua. CONTROL_PORT, ROUTE: the RTT proxy's control
-- port and which of its listeners this contender goes through (1-based), for connection counts.
-- Prints one line per sample: ms=<wall ms> conns=<connections opened>.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local socket = require "socket"
local kind, case, base, key, secret, ca = arg[1], arg[2], arg[3], arg[4], arg[5], arg[6]
local control, route, n, max_seconds = tonumber(arg[7]), tonumber(arg[8]), tonumber(arg[9]), tonumber(arg[10])
local ACCOUNT = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b"

local function accepts()
   local c = assert(socket.connect("127.0.0.1", control))
   c:settimeout(5)
   local line = assert(c:receive("*l"))
   c:close()
   local list = assert(line:match("accepts=([%d,]+)"), line)
   local i = 0
   for v in list:gmatch("%d+") do
      i = i + 1
      if i == route then return tonumber(v) end
   end
   error("rtt_client: no listener " .. route .. " in " .. line)
end

local api = { accepts = accepts }

if kind == "module" then
   local calypso = require "calypso"
   local purse = require "calypso.purse"
   api.now = purse.now
   function api.new()
      local client = calypso.new{ key = key, secret = secret, account = ACCOUNT, base_url = base, ca_file = ca }
      return require("bench.rtt_wrap")(client)
   end
elseif kind == "peer" then
   local curl = require "curl"
   local peer = require "bench.peer_common"
   api.now = peer.now
   local PATHS = {
      get_customer = "customer/get", block_customer = "customer/block", create_customer = "customer/create",
      get_address = "address/get", find_transactions = "transaction/find", get_transaction = "transaction/get",
   }
   function api.new()
      local chunks
      local easy = curl.easy_init()
      easy:setopt(curl.OPT_POST, 1)
      easy:setopt(curl.OPT_NOSIGNAL, 1)
      easy:setopt(curl.OPT_WRITEFUNCTION, function(s) chunks[#chunks + 1] = s return #s end)
      if ca then easy:setopt(curl.OPT_CAINFO, ca) end
      local c = {}
      function c.call(op, payload)
         local body, sign = peer.signed_envelope(secret, payload)
         chunks = {}
         easy:setopt(curl.OPT_URL, base .. "/api/v1/customer-purse/" .. PATHS[op])
         easy:setopt(curl.OPT_HTTPHEADER, { "Key: " .. key, "Sign: " .. sign, "Content-Type: application/json",
                                            "Accept: application/json", "Expect:" })
         easy:setopt(curl.OPT_POSTFIELDS, body)
         easy:perform()
         return peer.customer(table.concat(chunks))
      end
      function c.batch(calls)
         for i = 1, #calls do
            local ok, why = c.call(calls[i][1], calls[i][2])
            if not ok then return nil, "call " .. i .. ": " .. why end
         end
         return true
      end
      function c.close() easy = nil collectgarbage() end   -- Lua-cURL frees the handle in __gc
      return c
   end
else
   error("usage: rtt_client.lua module|peer CASE ...")
end

local ok, lines = pcall(require("bench.rtt_cases"), case, n, max_seconds, api)
if not ok then
   io.stderr:write("rtt_client: ", kind, " ", case, ": ", tostring(lines), "\n")
   os.exit(1)
end
print(table.concat(lines, "\n"))

-- Bytes nobody asked for are never an answer: a server (or a broken proxy) that sends a
-- second, complete, unsolicited response 150 ms after answering. The next call on that
-- kept-alive connection must not take those bytes as its answer; every call gets its own,
-- over HTTP and HTTPS, for plain calls, client:batch and client:multi. And a connection
-- that has nothing waiting is still reused (keep-alive is not given up to get there).
local purse = require "calypso.purse"
local helpers = require "support.helpers"
local tcp_peers = require "support.tcp_peers"
local socket = require "socket"

local JUNK_ID = "00000000-0000-4000-8000-00000000dead"
local JUNK_BODY = '{"id":"' .. JUNK_ID .. '","email":"junk@example.com"}'
local JUNK = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
   .. #JUNK_BODY .. "\r\nConnection: keep-alive\r\n\r\n" .. JUNK_BODY
local CALLS = 10
local servers   -- helpers.mock_pair(): .http, .https, .options

local function client(server)
   return purse.new(servers.options(server))
end

-- Makes the customers, then arms the fault on a read whose answer is followed by junk.
local function arm(server, c, call)
   local a = assert(c:create_customer{ email = "a@example.com" }).id
   local b = assert(c:create_customer{ email = "b@example.com" }).id
   server:fault{ mode = "unsolicited", seconds = 0.15, data = JUNK }
   local res, msg = call(a)
   assert.are.equal(a, res and res.id, msg)
   socket.sleep(0.4)   -- the junk is now waiting on the kept-alive connection
   return a, b
end

-- CALLS calls alternating between a and b, each checked against the id it asked for.
local function check(call, a, b)
   local got = {}
   for i = 1, CALLS do
      local want = i % 2 == 1 and b or a
      local res, msg = call(want)
      got[#got + 1] = res and (res.id == want and "own" or (res.id == JUNK_ID and "junk" or "other"))
         or ("fail(" .. tostring(msg) .. ")")
   end
   local text = table.concat(got, " ")
   print("    " .. text)
   assert.are.equal(("own "):rep(CALLS - 1) .. "own", text)
end

setup(function() servers = helpers.mock_pair() end)
teardown(function() servers.stop() end)

for _, scheme in ipairs({ "http", "https" }) do
   describe("an unsolicited response over " .. scheme .. ":", function()
      it("plain calls: the junk is never an answer, every later call gets its own", function()
         local server = servers[scheme]
         local c = client(server)
         local function call(id) return c:get_customer{ customerId = id } end
         local a, b = arm(server, c, call)
         check(call, a, b)
         c:close()
      end)

      it("client:batch: the junk is never an answer", function()
         local server = servers[scheme]
         local c = client(server)
         local function call(id)
            local r = c:batch({ { "get_customer", { customerId = id } } })[1]
            return r.value, r.message
         end
         local a, b = arm(server, c, call)
         check(call, a, b)
         c:close()
      end)

      it("client:multi: the junk is never an answer", function()
         local server = servers[scheme]
         local c = client(server)
         local m = c:multi()
         local function call(id)
            local n = assert(m:start("get_customer", { customerId = id }))
            local stop = socket.gettime() + 10
            while not m:done(n) and socket.gettime() < stop do m:poll(0.05) end
            if not m:done(n) then return nil, "never finished" end
            return m:result(n)
         end
         local a, b = arm(server, c, call)
         check(call, a, b)
         m:close()
         c:close()
      end)

      it("with nothing waiting, 20 calls share one kept-alive connection", function()
         local server = servers[scheme]
         local c = client(server)
         local id = assert(c:create_customer{ email = "ka@example.com" }).id
         local earlier = tcp_peers.to(server.port)
         for _ = 1, 20 do
            assert.are.equal(id, assert(c:get_customer{ customerId = id }).id)
         end
         local new = tcp_peers.new_since(earlier, server.port)
         c:close()
         print(("    new connections for 20 reads: %d"):format(#new))
         -- create_customer's fresh connection is in `earlier`; the reads reuse it
         assert.are.equal(0, #new)
      end)
   end)
end

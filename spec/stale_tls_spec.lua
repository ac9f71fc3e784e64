-- Bytes nobody asked for that the socket no longer shows: over HTTPS, a server that sends an
-- unsolicited second answer in the same TLS record as the body of a real one. OpenSSL
-- decrypts the whole record while libcurl reads the body (capped at Content-Length), so the
-- junk waits in OpenSSL's buffer; poll() on the socket (calypso_conns_check) sees nothing,
-- libcurl 7.88's liveness check (recv MSG_PEEK) sees nothing, and the next call on the
-- kept-alive connection reads the junk as its answer. Plain HTTP is the control.
local purse = require "calypso.purse"
local mock = require "calypso.mock"
local tls = require "support.tls"
local split = require "support.split_server"
local socket = require "socket"

local JUNK_ID = "00000000-0000-4000-8000-00000000dead"
local JUNK_BODY = '{"id":"' .. JUNK_ID .. '","email":"junk@example.com"}'
local JUNK = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
   .. #JUNK_BODY .. "\r\nConnection: keep-alive\r\n\r\n" .. JUNK_BODY
local OWN = "22222222-2222-4222-8222-222222222222"
local certs, creds

setup(function()
   certs = tls.make()
   local m = mock.start()
   creds = mock.client_options(m)
   m:stop()
end)

teardown(function() tls.remove(certs) end)

local function make_client(server)
   local o = {}
   for k, v in pairs(creds) do o[k] = v end
   o.base_url = server:base_url()
   o.timeout = 5
   if server.tls then o.ca_file = certs.ca end
   return purse.new(o)
end

for _, scheme in ipairs({ "http", "https" }) do
   local where = scheme == "https" and "TLS record" or "TCP send"
   describe("junk in the body's " .. where .. " over " .. scheme .. ":", function()
      local server
      before_each(function()
         server = split.start{ tls = scheme == "https" and certs.server or nil, junk = JUNK }
      end)
      after_each(function() server:stop() end)

      it("plain calls: the next call gets its own answer, never the junk", function()
         local c = make_client(server)
         local r = assert(c:get_customer{ customerId = split.ARM_ID })
         assert.are.equal(split.ARM_ID, r.id)
         socket.sleep(0.2)
         local got = {}
         for i = 1, 3 do
            local res, msg = c:get_customer{ customerId = OWN }
            got[i] = res and (res.id == OWN and "own" or res.id == JUNK_ID and "junk" or "other")
               or ("fail(" .. tostring(msg) .. ")")
         end
         c:close()
         print("    " .. table.concat(got, " "))
         assert.are.equal("own own own", table.concat(got, " "))
      end)

      it("client:multi (idle when the next call starts): never the junk", function()
         local c = make_client(server)
         local m = c:multi()
         local function call(id)
            local n = assert(m:start("get_customer", { customerId = id }))
            local stop = socket.gettime() + 10
            while not m:done(n) and socket.gettime() < stop do m:poll(0.05) end
            if not m:done(n) then return nil, "never finished" end
            return m:result(n)
         end
         assert.are.equal(split.ARM_ID, assert(call(split.ARM_ID)).id)
         socket.sleep(0.2)
         local got = {}
         for i = 1, 3 do
            local res, msg = call(OWN)
            got[i] = res and (res.id == OWN and "own" or res.id == JUNK_ID and "junk" or "other")
               or ("fail(" .. tostring(msg) .. ")")
         end
         m:close(); c:close()
         print("    " .. table.concat(got, " "))
         assert.are.equal("own own own", table.concat(got, " "))
      end)
   end)
end

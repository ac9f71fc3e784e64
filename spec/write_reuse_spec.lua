-- Writes on kept-alive connections (issue 14, points 1 and 2), libcurl path. A write rides the
-- connection the client already has, as reads do; but when that connection dies under it, the
-- server must see it at most once: libcurl resends a request whose reused connection died
-- before any answer, and for a write that is a second payment. Every case counts the copies of
-- the write in the mock's request log. Over HTTP and HTTPS, for plain calls, the Lua layer
-- (retries on) and client:batch / client:multi.
local purse = require "calypso.purse"
local calypso = require "calypso"
local helpers = require "support.helpers"
local tcp_peers = require "support.tcp_peers"
local socket = require "socket"

local servers   -- helpers.mock_pair(): .http, .https, .options
local serial = 0

local function options(server, extra)
   return servers.options(server, extra)
end

-- A unique e-mail per write, and how many requests carrying it the mock received.
local function next_email()
   serial = serial + 1
   return ("write-%d-%d@example.com"):format(serial, math.random(1e9))
end

local function copies(server, email)
   local n = 0
   for _, r in ipairs(server:requests()) do
      if r.path:find("customer/create", 1, true) and r.body:find(email, 1, true) then n = n + 1 end
   end
   return n
end

-- The faults a kept-alive connection can die of right as the write arrives: the mock reads
-- the request (and logs it), then closes with FIN, or resets (RST), without answering.
local DEATHS = {
   { name = "closed unanswered (FIN)", fault = { mode = "close" } },
   -- plain HTTP only: the mock's reset sets SO_LINGER, which its luasec (TLS) sockets lack
   { name = "reset unanswered (RST)", fault = { mode = "wire", data = "", after = "reset" }, plain = true },
}

setup(function() servers = helpers.mock_pair{ request_log_size = 1000 } end)
teardown(function() servers.stop() end)

for _, scheme in ipairs({ "http", "https" }) do
   describe("writes over " .. scheme .. ":", function()
      it("ride the kept-alive connection of the reads before them", function()
         local server = servers[scheme]
         local c = purse.new(options(server))
         assert(c:get_customers_by_external_id{ externalId = "warm" })
         local before, n0 = tcp_peers.to(server.port)
         local email = next_email()
         local res, msg = c:create_customer{ email = email }
         assert.is_string(res and res.id, msg)
         assert.are.same({}, tcp_peers.new_since(before, server.port))   -- no new connection
         assert.are.equal(1, n0)
         assert.are.equal(1, copies(server, email))
         c:close()
      end)

      for _, death in ipairs(DEATHS) do if scheme == "http" or not death.plain then
         it("a kept-alive connection " .. death.name .. " under a write: one copy, network, sent", function()
            local server = servers[scheme]
            local c = purse.new(options(server))
            assert(c:get_customers_by_external_id{ externalId = "warm" })
            server:fault(death.fault)
            local email = next_email()
            local res, msg, err = c:create_customer{ email = email }
            print(("    %s: %s"):format(death.name, tostring(msg)))
            assert.is_nil(res)
            assert.are.same({ "network", true }, { err.kind, err.sent })
            assert.are.equal(1, copies(server, email))
            -- the client goes on: the next write opens a connection and is applied once
            local again = next_email()
            assert.is_string(assert(c:create_customer{ email = again }).id)
            assert.are.equal(1, copies(server, again))
            c:close()
         end)

         it("the Lua layer does not retry it either (" .. death.name .. ")", function()
            local server = servers[scheme]
            local c = calypso.new(options(server, { max_retries = 3, backoff_base = 0.01 }))
            assert(c:get_customers_by_external_id{ externalId = "warm" })
            server:fault(death.fault)
            local email = next_email()
            local res, _, err = c:create_customer{ email = email }
            assert.is_nil(res)
            assert.are.same({ "network", true, true }, { err.kind, err.sent, err.retryable })
            assert.are.equal(1, copies(server, email))
            c:close()
         end)

         it("client:batch and client:multi: one copy (" .. death.name .. ")", function()
            local server = servers[scheme]
            local c = purse.new(options(server))
            local warm = c:batch({ { "get_customers_by_external_id", { externalId = "warm" } } })
            assert.is_table(warm[1].value, warm[1].message)
            server:fault(death.fault)
            local email = next_email()
            local r = c:batch({ { "create_customer", { email = email } } })[1]
            assert.is_nil(r.value)
            assert.are.same({ "network", true }, { r.err.kind, r.err.sent })
            assert.are.equal(1, copies(server, email))
            local m = c:multi()
            local wid = assert(m:start("get_customers_by_external_id", { externalId = "warm" }))
            for _ = 1, 500 do   -- bounded: 500 polls of at most 10 ms
               if m:done(wid) then break end
               m:poll(0.01)
            end
            assert.is_table((m:result(wid)))
            server:fault(death.fault)
            email = next_email()
            local id = assert(m:start("create_customer", { email = email }))
            local res, msg, err
            for _ = 1, 500 do
               m:poll(0.01)
               if m:done(id) then res, msg, err = m:result(id) break end
            end
            assert.is_nil(res, msg)
            assert.are.same({ "network", true }, { err and err.kind, err and err.sent })
            assert.are.equal(1, copies(server, email))
            m:close()
            c:close()
         end)
      end end

      it("a read whose kept-alive connection died is still resent (libcurl's resend kept)", function()
         local server = servers[scheme]
         local c = purse.new(options(server))
         local id = assert(c:create_customer{ email = next_email() }).id
         server:fault{ mode = "close" }
         local res, msg = c:get_customer{ customerId = id }
         assert.are.equal(id, res and res.id, msg)
         c:close()
      end)
   end)
end

describe("write_reuse_idle", function()
   it("a write after the connection idled longer opens a fresh one; recently used: reused", function()
      local server = servers.https
      local c = purse.new(options(server, { write_reuse_idle = 0.3 }))
      assert.are.equal(0.3, c:info().write_reuse_idle)
      assert(c:get_customers_by_external_id{ externalId = "warm" })
      local before = tcp_peers.to(server.port)
      assert(c:create_customer{ email = next_email() })          -- used just now: reused
      assert.are.equal(0, #tcp_peers.new_since(before, server.port))
      -- idle too long: a fresh connection, so the server closing the old one at its own idle
      -- timeout can never meet the write
      for _ = 1, 2 do
         socket.sleep(0.6)
         before = tcp_peers.to(server.port)
         local email = next_email()
         assert(c:create_customer{ email = email })
         assert.are.equal(1, #tcp_peers.new_since(before, server.port))
         assert.are.equal(1, copies(server, email))
      end
      -- reads still reuse an idle connection (libcurl resends them if it died)
      socket.sleep(0.6)
      before = tcp_peers.to(server.port)
      assert(c:get_customers_by_external_id{ externalId = "warm" })
      assert.are.equal(0, #tcp_peers.new_since(before, server.port))
      c:close()
   end)

   it("0: every write on a fresh connection, as before", function()
      local server = servers.http
      local c = purse.new(options(server, { write_reuse_idle = 0 }))
      assert(c:get_customers_by_external_id{ externalId = "warm" })
      for _ = 1, 3 do
         local before = tcp_peers.to(server.port)
         local email = next_email()
         assert(c:create_customer{ email = email })
         assert.are.equal(1, #tcp_peers.new_since(before, server.port))
         assert.are.equal(1, copies(server, email))
      end
      c:close()
   end)

   it("refuses what is not a number of seconds from 0 to 86400", function()
      for _, bad in ipairs({ -1, 86401, "2", true, 0 / 0 }) do
         local ok, e = pcall(purse.new, options(servers.http, { write_reuse_idle = bad }))
         assert.is_false(ok)
         assert.truthy(tostring(e):find("option 'write_reuse_idle' must be a number of seconds from 0 to 86400",
                                        1, true), e)
      end
   end)
end)

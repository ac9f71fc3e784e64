-- Fork attacks (src/conns.c, src/multi.c): paths on which the child touches a
-- connection the parent still uses, because libcurl closes it before any calypso_conns_check.
-- Every child stops itself: alarm(30) and _exit.
local purse = require "calypso.purse"
local helpers = require "support.helpers"
local tcp_peers = require "support.tcp_peers"
local socket = require "socket"
local unistd = require "support.forker"

local servers   -- helpers.mock_pair(): .http, .https, .options

local function client(server)
   return purse.new(servers.options(server))
end

local function wait(m, n, secs)
   local stop = socket.gettime() + secs
   while not m:done(n) and socket.gettime() < stop do m:poll(0.05) end
   return m:done(n)
end

setup(function() servers = helpers.mock_pair() end)
teardown(function() servers.stop() end)

-- ends: how the child lets go of the inherited multi
local ends = {
   ["m:close()"] = function(m) m:close() end,
   ["lua_close at exit (__gc)"] = function() os.exit(0, true) end,
}

for _, scheme in ipairs({ "http", "https" }) do
   for how, finish in pairs(ends) do
      describe("fork with a client:multi call in flight over " .. scheme .. ":", function()
         it("child lets go of the multi with " .. how .. "; the parent still gets its own answer", function()
            local server = servers[scheme]
            local c = client(server)
            local id = assert(c:create_customer{ email = "inflight@example.com" }).id
            local m = c:multi()
            local warm = assert(m:start("get_customer", { customerId = id }))
            assert(wait(m, warm, 10)); assert(m:result(warm))
            local earlier = tcp_peers.to(server.port)
            -- the answer comes 0.3 s late; the request goes out on the kept-alive connection
            server:fault{ mode = "delay", seconds = 0.3 }
            local n = assert(m:start("get_customer", { customerId = id }))
            m:poll(0); m:poll(0.05)
            socket.sleep(0.6)        -- the answer is now waiting in the parent's socket
            io.stdout:flush()
            local pid = assert(unistd.fork())
            if pid == 0 then
               unistd.alarm(30)
               pcall(finish, m)
               unistd._exit(0)
            end
            unistd.waitpid(pid)
            local done = wait(m, n, 10)
            local res, msg
            if done then res, msg = m:result(n) end
            local after = tcp_peers.new_since(earlier, server.port)
            m:close(); c:close()
            print(("    parent: done=%s id=%s msg=%s new connections=%d"):format(
               tostring(done), tostring(res and res.id), tostring(msg), #after))
            assert.is_true(done)
            assert.are.equal(id, res and res.id, msg)
            -- the child never touched the parent's connection: no reconnect was needed
            assert.are.equal(0, #after)
         end)

         it("a write in flight (" .. how .. " in the child): the parent gets the answer of the write it made",
            function()
            local server = servers[scheme]
            local c = client(server)
            local m = c:multi()
            local email = ("write-%s-%d@example.com"):format(scheme, math.random(1, 1e9))
            server:fault{ mode = "delay", seconds = 0.3 }
            local n = assert(m:start("create_customer", { email = email }))
            m:poll(0); m:poll(0.05)
            socket.sleep(0.6)
            io.stdout:flush()
            local pid = assert(unistd.fork())
            if pid == 0 then
               unistd.alarm(30)
               pcall(finish, m)
               unistd._exit(0)
            end
            unistd.waitpid(pid)
            local done = wait(m, n, 10)
            local res, msg
            local err
            if done then res, msg, err = m:result(n) end
            if err then
               msg = msg .. " (sent=" .. tostring(err.sent) .. ", retryable=" .. tostring(err.retryable) .. ")"
            end
            local made = 0
            for _, cu in ipairs(server:customers().customers) do
               if cu.email == email then made = made + 1 end
            end
            m:close(); c:close()
            print(("    parent: done=%s id=%s msg=%s customers made=%d"):format(
               tostring(done), tostring(res and res.id), tostring(msg), made))
            assert.are.equal(1, made)
            assert.is_truthy(res and res.id, msg)
         end)
      end)
   end
end

-- A write started on a client:multi (added, not yet on the wire) when the process forks:
-- both copies of the multi hold it, nothing was inherited to cut, so both processes send it.
-- The one write the program made is applied twice; the child should fail its inherited
-- in-flight calls instead (they belong to the process that started them).
for _, scheme in ipairs({ "http", "https" }) do
   describe("fork right after multi:start of a write over " .. scheme .. ":", function()
      it("the write is applied once", function()
         local server = servers[scheme]
         local c = client(server)
         local m = c:multi()
         local email = ("twice-%s-%d@example.com"):format(scheme, math.random(1, 1e9))
         local n = assert(m:start("create_customer", { email = email }))
         local out = os.tmpname()
         io.stdout:flush()
         local pid = assert(unistd.fork())
         if pid == 0 then
            unistd.alarm(30)
            local ok, res, msg, err = pcall(function()
               if not wait(m, n, 10) then return nil, "never finished" end
               return m:result(n)
            end)
            local f = io.open(out, "w")
            if f then
               f:write(ok and (res and ("ok " .. tostring(res.id))
                                   or (tostring(msg) .. " sent=" .. tostring(err and err.sent)))
                       or ("error " .. tostring(res)))
               f:close()
            end
            unistd._exit(0)
         end
         local done = wait(m, n, 10)
         local res, msg = nil, "never finished"
         if done then res, msg = m:result(n) end
         unistd.waitpid(pid)
         local f = io.open(out); local theirs = f and f:read("*a") or "no report"; if f then f:close() end
         os.remove(out)
         local made = 0
         for _, cu in ipairs(server:customers().customers) do
            if cu.email == email then made = made + 1 end
         end
         m:close(); c:close()
         print(("    parent: %s; child: %s; customers made: %d"):format(
            res and ("ok " .. tostring(res.id)) or tostring(msg), theirs, made))
         assert.are.equal(1, made)
      end)
   end)
end

-- The same with a call still queued (max_in_flight = 1): the child must not launch it either.
describe("fork with a write queued on a client:multi (max_in_flight = 1)", function()
   it("each write is applied once", function()
      local server = servers.http
      local c = client(server)
      local m = c:multi{ max_in_flight = 1 }
      local tag = math.random(1, 1e9)
      local emails = { ("first-%d@example.com"):format(tag), ("queued-%d@example.com"):format(tag) }
      local ids = { assert(m:start("create_customer", { email = emails[1] })),
                    assert(m:start("create_customer", { email = emails[2] })) }
      io.stdout:flush()
      local pid = assert(unistd.fork())
      if pid == 0 then
         unistd.alarm(30)
         pcall(function()
            for _, n in ipairs(ids) do wait(m, n, 10) end
         end)
         unistd._exit(0)
      end
      for _, n in ipairs(ids) do assert.is_true(wait(m, n, 10)) end
      local first = m:result(ids[1])
      local second = m:result(ids[2])
      unistd.waitpid(pid)
      local made = { 0, 0 }
      for _, cu in ipairs(server:customers().customers) do
         for i = 1, 2 do if cu.email == emails[i] then made[i] = made[i] + 1 end end
      end
      m:close(); c:close()
      assert.are.same({ 1, 1 }, made)
      assert.are.equal(emails[1], first.email)
      assert.are.equal(emails[2], second.email)
   end)
end)

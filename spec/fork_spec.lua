-- fork() after kept-alive calls: a client (and its batch and multi connection caches) used
-- before fork gives each process its own answers, over HTTP and HTTPS, and the child never
-- writes a byte to a connection the parent still uses. Parent and child call at once on the
-- inherited client, each for its own customer, so every answer names the request it is for.
-- fork, _exit, alarm and waitpid come from spec/support/forker. The child stops itself: alarm(60), every loop
-- bounded in count and time, and _exit (never busted's teardown).
local purse = require "calypso.purse"
local helpers = require "support.helpers"
local tcp_peers = require "support.tcp_peers"
local socket = require "socket"
local unistd = require "support.forker"
local pwait = unistd.waitpid

local N = 100          -- calls per process
local BUDGET = 30      -- seconds a process may spend on its N calls
local servers   -- helpers.mock_pair(): .http, .https, .options

-- A summary of `calls` answers; `one(i)` makes call i and returns the id it expected and
-- what came back (result or nil, msg).
local function tally(one)
   local ok, wrong, failed, first = 0, 0, 0, nil
   local stop = socket.gettime() + BUDGET
   for i = 1, N do
      if socket.gettime() > stop then break end
      local want, res, msg = one(i)
      if res == nil then
         failed = failed + 1
         first = first or tostring(msg)
      elseif res.id ~= want then
         wrong = wrong + 1
         first = first or ("got " .. tostring(res.id) .. " for " .. want)
      else
         ok = ok + 1
      end
   end
   return ("ok=%d wrong=%d failed=%d%s"):format(ok, wrong, failed, first and (" first: " .. first) or "")
end

-- Runs work(who) in this process and in a forked child at once; returns both summaries.
local function both(work)
   local out = os.tmpname()
   io.stdout:flush()
   local pid = assert(unistd.fork())
   if pid == 0 then
      unistd.alarm(60)
      local ok, res = pcall(work, "child")
      local f = io.open(out, "w")
      if f then
         f:write(ok and res or ("error: " .. tostring(res)))
         f:close()
      end
      unistd._exit(0)
   end
   local ok, mine = pcall(work, "parent")
   pwait(pid)
   local f = io.open(out, "r")
   local theirs = f and f:read("*a") or "no report"
   if f then f:close() end
   os.remove(out)
   return ok and mine or ("error: " .. tostring(mine)), theirs
end

local function client(server)
   return purse.new(servers.options(server))
end

-- Two customers: one for the parent, one for the child.
local function customers(c)
   local a = assert(c:create_customer{ email = "parent@example.com" }).id
   local b = assert(c:create_customer{ email = "child@example.com" }).id
   return { parent = a, child = b }
end

local function expect_own(mine, theirs)
   local want = ("ok=%d wrong=0 failed=0"):format(N)
   print(("    parent: %s\n    child:  %s"):format(mine, theirs))
   assert.are.equal(want, mine)
   assert.are.equal(want, theirs)
end

setup(function() servers = helpers.mock_pair() end)
teardown(function() servers.stop() end)

for _, scheme in ipairs({ "http", "https" }) do
   describe("fork over " .. scheme .. ":", function()
      it("parent and child calling on the inherited client each get their own answers", function()
         local c = client(servers[scheme])
         local ids = customers(c)   -- the connection is now kept alive
         local mine, theirs = both(function(who)
            return tally(function()
               local id = ids[who]
               return id, c:get_customer{ customerId = id }
            end)
         end)
         c:close()
         expect_own(mine, theirs)
      end)

      it("client:batch on both sides: each gets its own answers", function()
         local c = client(servers[scheme])
         local ids = customers(c)
         assert(c:batch({ { "get_customer", { customerId = ids.parent } },
                          { "get_customer", { customerId = ids.child } } })[2].value)
         local mine, theirs = both(function(who)
            local id, k, calls = ids[who], 0, {}
            for i = 1, 5 do calls[i] = { "get_customer", { customerId = id } } end
            return tally(function()
               k = k + 1
               if k > #calls then k = 1 end
               if k == 1 then calls.results = c:batch(calls) end
               local r = calls.results[k]
               return id, r.value, r.message
            end)
         end)
         c:close()
         expect_own(mine, theirs)
      end)

      it("client:multi on both sides: each gets its own answers", function()
         local c = client(servers[scheme])
         local ids = customers(c)
         local m = c:multi()
         local warm = assert(m:start("get_customer", { customerId = ids.parent }))
         local stop = socket.gettime() + 10
         while not m:done(warm) and socket.gettime() < stop do m:poll(0.05) end
         assert(m:result(warm))
         local mine, theirs = both(function(who)
            local id = ids[who]
            return tally(function()
               local call = assert(m:start("get_customer", { customerId = id }))
               local until_ = socket.gettime() + 10
               while not m:done(call) and socket.gettime() < until_ do m:poll(0.05) end
               if not m:done(call) then return id, nil, "never finished" end
               return id, m:result(call)
            end)
         end)
         m:close()
         c:close()
         expect_own(mine, theirs)
      end)

      it("a child that closes the inherited client writes nothing to the parent's connection", function()
         local server = servers[scheme]
         local earlier = tcp_peers.to(server.port)
         local c = client(server)
         local ids = customers(c)
         local before = tcp_peers.new_since(earlier, server.port)
         io.stdout:flush()
         local pid = assert(unistd.fork())
         if pid == 0 then
            unistd.alarm(20)
            pcall(function() c:close() end)
            collectgarbage()
            unistd._exit(0)
         end
         pwait(pid)
         socket.sleep(0.2)   -- a close_notify or FIN from the child would have reached the server
         for _ = 1, 5 do
            assert.are.equal(ids.parent, assert(c:get_customer{ customerId = ids.parent }).id)
         end
         local after = tcp_peers.new_since(earlier, server.port)
         c:close()
         -- still the one connection the parent had: the server never heard from the child
         print(("    parent's connections (local ports) before: %s, after: %s"):format(
            table.concat(before, ","), table.concat(after, ",")))
         assert.is_true(#before >= 1)   -- create_customer is a write: each had a fresh one
         assert.are.same(before, after)
      end)
   end)
end

-- Review: a client (plain calls, client:multi and client:batch) made and used in init_by_lua
-- over HTTP and HTTPS, then used by two workers under concurrent load; then one worker is
-- killed with SIGKILL and the master forks a new one from its own (never-cut) state, and the
-- load runs again. Every request must get its own answer. Run with scripts/test-nginx.sh
-- spec/nginx_fork_spec.lua's way: CALYPSO_NGINX_SPEC=1, busted under lua5.4, build/jit.
if os.getenv("CALYPSO_NGINX_SPEC") ~= "1" then
   return
end

local socket = require "socket"
local cjson = require "cjson"
local mock = require "calypso.mock"
local nginx = require "support.nginx"
local tls = require "support.tls"

local CALLS = 60
local certs, servers = nil, {}

setup(function()
   certs = tls.make()
   os.execute("chmod 755 " .. nginx.shell_quote(certs.dir) .. " && chmod 644 " .. nginx.shell_quote(certs.dir) .. "/*")
   servers.http = mock.start()
   servers.https = mock.start{ tls = certs.server }
end)

teardown(function()
   for _, s in pairs(servers) do s:stop() end
   tls.remove(certs)
end)

local function children(pid)
   local p = io.popen("ps -o pid= --ppid " .. tonumber(pid))
   local set = {}
   for line in p:lines() do
      local n = line:match("(%d+)")
      if n then set[#set + 1] = n end
   end
   p:close()
   table.sort(set)
   return set
end

local function load(w, ids, tag)
   local reqs = {}
   local paths = { "/own", "/own_multi", "/own_batch" }
   for i = 1, CALLS do reqs[i] = { "GET", paths[i % 3 + 1] .. "?id=" .. ids[(i - 1) % #ids + 1] } end
   local res = w:parallel(reqs, 90)
   local verdicts, pids = {}, {}
   for i = 1, CALLS do
      local verdict, pid = tostring(res[i].body):match("^(%S+) (%d+)")
      verdicts[verdict or ("noanswer:" .. tostring(res[i].body))] =
         (verdicts[verdict or ("noanswer:" .. tostring(res[i].body))] or 0) + 1
      if pid then pids[pid] = true end
   end
   local parts = {}
   for k, v in pairs(verdicts) do parts[#parts + 1] = k .. "=" .. v end
   table.sort(parts)
   local plist = {}
   for p in pairs(pids) do plist[#plist + 1] = p end
   print(("    %s: %s (workers %s)"):format(tag, table.concat(parts, " "), table.concat(plist, ",")))
   return verdicts, pids
end

for _, scheme in ipairs({ "http", "https" }) do
   describe("an init_by_lua client over " .. scheme .. ", two workers, one killed and respawned", function()
      local w, ids
      setup(function()
         local o = mock.client_options(servers[scheme])
         if scheme == "https" then o.ca_file = certs.ca end
         o.timeout = 10
         local setup_client = require("calypso.purse").new(o)
         ids = {}
         for i = 1, 12 do ids[i] = assert(setup_client:create_customer{ externalId = scheme .. "-rv-" .. i }).id end
         setup_client:close()
         w = nginx.start{
            workers = 2,
            http = ([[
  init_by_lua_block {
    local purse = require "calypso.purse"
    local c = purse.new(require("cjson").decode(%q))
    local ids = require("cjson").decode(%q)
    assert(c:get_customer{ customerId = ids[1] })
    local m = c:multi()
    local n = {}
    for i = 1, 4 do n[i] = assert(m:start("get_customer", { customerId = ids[i] })) end
    local stop = os.time() + 10
    while m:pending() > 0 and os.time() < stop do m:poll(0.05) end
    for i = 1, 4 do assert(m:result(n[i])) end
    local b = c:batch({ { "get_customer", { customerId = ids[1] } }, { "get_customer", { customerId = ids[2] } } })
    assert(b[1].value and b[2].value)
    package.loaded["rv_client"], package.loaded["rv_multi"] = c, m
  }]]):format(cjson.encode(o), cjson.encode(ids)),
            server = [[
    location /own {
      content_by_lua_block {
        local c = package.loaded["rv_client"]
        local id = ngx.var.arg_id
        local res, msg = c:get_customer{ customerId = id }
        ngx.say(res and (res.id == id and "own" or "other") or ("failed:" .. tostring(msg):gsub("%s", "_")), " ",
                ngx.worker.pid())
      }
    }
    location /own_multi {
      content_by_lua_block {
        local m = package.loaded["rv_multi"]
        local id = ngx.var.arg_id
        local n = assert(m:start("get_customer", { customerId = id }))
        local stop = ngx.now() + 10
        while not m:done(n) and ngx.now() < stop do m:poll(0.05); ngx.update_time() end
        local res, msg = nil, "never finished"
        if m:done(n) then res, msg = m:result(n) end
        ngx.say(res and (res.id == id and "own" or "other") or ("failed:" .. tostring(msg):gsub("%s", "_")), " ",
                ngx.worker.pid())
      }
    }
    location /own_batch {
      content_by_lua_block {
        local c = package.loaded["rv_client"]
        local id = ngx.var.arg_id
        local r = c:batch({ { "get_customer", { customerId = id } }, { "get_customer", { customerId = id } } })
        local ok = r[1].value and r[2].value
        ngx.say(ok and ((r[1].value.id == id and r[2].value.id == id) and "own" or "other")
          or ("failed:" .. tostring(r[1].message or r[2].message):gsub("%s", "_")), " ", ngx.worker.pid())
      }
    }]],
         }
      end)
      teardown(function() if w then w:stop() end end)

      it("every request gets its own answer, before and after a worker is killed -9 and respawned", function()
         local v1 = load(w, ids, "before")
         local before = children(w.pid)
         assert.are.equal(2, #before)
         os.execute("kill -9 " .. tonumber(before[1]))
         local after
         local stop = socket.gettime() + 10
         repeat
            socket.sleep(0.1)
            after = children(w.pid)
         until (#after == 2 and after[1] ~= before[1] and after[2] ~= before[1]) or socket.gettime() > stop
         print("    workers before: " .. table.concat(before, ",") .. " after: " .. table.concat(after, ","))
         local v2 = load(w, ids, "after")
         -- a reload: the master runs init_by_lua again in a new Lua VM (the old one is closed in
         -- the master: its client's __gc runs there) and forks new workers
         local old = children(w.pid)
         os.execute("kill -HUP " .. tonumber(w.pid))
         stop = socket.gettime() + 15
         local fresh
         repeat
            socket.sleep(0.2)
            fresh = children(w.pid)
            local overlap = false
            for _, a in ipairs(fresh) do for _, b in ipairs(old) do if a == b then overlap = true end end end
         until (#fresh == 2 and not overlap) or socket.gettime() > stop
         print("    workers after HUP: " .. table.concat(fresh, ","))
         local v3 = load(w, ids, "after HUP")
         local log = w:error_log() or ""
         assert.are.equal(CALLS, v1.own, log)
         assert.are.equal(CALLS, v2.own, log)
         assert.are.equal(CALLS, v3.own, log)
      end)
   end)
end

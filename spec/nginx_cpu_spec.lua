-- From a hostile review: spec/support/cpu_corpus.lua through nginx
-- (calypso.transport.ngx), as spec/hostile_spec.lua does for the hostile corpus.
-- Run: CALYPSO_NGINX_SPEC=1 LUA_CPATH="build/5.4/?.so;;" CALYPSO_MOCK_LUA=lua5.4 \
--   lua5.4 /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' spec/nginx_cpu_spec.lua
if os.getenv("CALYPSO_NGINX_SPEC") ~= "1" then
   return
end

local cjson = require("cjson")
local socket = require("socket")
local mock_state = require("calypso.mock.state")
local nginx = require("support.nginx")
local corpus = require("support.hostile_corpus")
local review = require("support.cpu_corpus")
local rserver = require("support.cpu_server")

local SLOW_MARGIN = 3
local PING_LIMIT = 1.0 -- seconds a /ping to the same worker may take while a case runs

local server, h

local function client_options(c)
   return {
      key = mock_state.DEFAULT_KEY, secret = mock_state.DEFAULT_SECRET, account = mock_state.DEFAULT_ACCOUNT,
      base_url = server:url(c.name, c.ipv6), timeout = c.timeout, connect_timeout = 2,
      max_response_size = c.max,
   }
end

setup(function()
   server = rserver.start()
   h = nginx.start{
      lifetime = 600,
      server = 'location = /call { content_by_lua_block { require("calypso_test").call() } }\n'
         .. 'location = /ping { content_by_lua_block { ngx.say("pong") } }',
   }
end)

teardown(function()
   if h then h:remove() end
   if server then server:stop() end
end)

describe("corpus over cosockets (nginx)", function()
   for _, c in ipairs(review.cases) do
      it(("%s: %s within timeout + %ds, worker responsive"):format(c.name, c.kind, SLOW_MARGIN), function()
         local body = cjson.encode{
            client = client_options(c), op = corpus.OP, payload = corpus.PAYLOAD, via = "ngx",
            transport = { pool = "review:" .. c.name },
         }
         local reqs = { { "POST", "/call", body } }
         if c.worker_stall then reqs[2] = { "GET", "/ping", nil, at = 0.3 } end
         local t0 = socket.gettime()
         local out = h:parallel(reqs, c.timeout + 30)
         local wall = socket.gettime() - t0
         local a = out[1].body and cjson.decode(out[1].body) or {}
         local kind = a.ngx and (a.ngx.res and "ok" or (a.ngx.err and a.ngx.err.kind)) or "no answer"
         local ping = out[2] and out[2].done and (out[2].done - out[2].sent) or nil
         io.stderr:write(("[review] %-30s expect=%-8s got=%-8s elapsed=%.2fs wall=%.2fs ping=%s detail=%s\n")
            :format(c.name, c.kind, kind, a.elapsed and a.elapsed.ngx or -1, wall,
               ping and ("%.2fs"):format(ping) or "-", a.ngx and a.ngx.err and a.ngx.err.message or ""))
         assert.are.equal(c.kind, kind)
         assert.is_true((a.elapsed.ngx or 1e9) < c.timeout + SLOW_MARGIN,
            ("%s took %.2f s (timeout %g)"):format(c.name, a.elapsed.ngx, c.timeout))
         if c.worker_stall then
            assert.is_true(ping ~= nil and ping < PING_LIMIT,
               ("%s: /ping on the same worker took %s s"):format(c.name, tostring(ping)))
         end
      end)
   end
end)

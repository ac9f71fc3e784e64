-- calypso.mock: how the mock process is started, and its documented HTTP control API.
local mock = require "calypso.mock"

-- The pid of this process: the first field of /proc/self/stat.
local function self_pid()
   local f = assert(io.open("/proc/self/stat", "rb"))
   local pid = tonumber(f:read("*a"):match("^(%d+)"))
   f:close()
   return pid
end

local function read_file(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("*a")
   f:close()
   return s
end

-- The processes whose parent is `pid`, as { pid = n, cmdline = "...", environ = "..." }.
local function children(pid)
   local list = {}
   local ls = assert(io.popen("ls /proc"))
   for name in ls:lines() do
      local stat = name:match("^%d+$") and read_file("/proc/" .. name .. "/stat")
      -- stat: "pid (comm) state ppid ..."; comm may hold spaces or parentheses
      local ppid = stat and tonumber(stat:match("%) %S+ (%d+)"))
      if ppid == pid then
         list[#list + 1] = { pid = tonumber(name), cmdline = read_file("/proc/" .. name .. "/cmdline") or "",
                             environ = read_file("/proc/" .. name .. "/environ") or "" }
      end
   end
   ls:close()
   return list
end

describe("the mock process", function()
   it("gets its secret through a pipe: never on its command line nor in its environment (issue 12)", function()
      local secret = "spec-secret-" .. tostring(os.time()) .. "-never-in-argv"
      local h = mock.start{ secret = secret, key = "spec-key-in-pipe-too" }
      local mine = {}
      for _, p in ipairs(children(self_pid())) do
         if p.cmdline:find("calypso", 1, true) then mine[#mine + 1] = p end
      end
      h:stop()
      assert.are.equal(1, #mine, "exactly one mock child process found")
      assert.is_nil(mine[1].cmdline:find(secret, 1, true), "the secret is on the command line")
      assert.is_nil(mine[1].environ:find(secret, 1, true), "the secret is in the environment")
      assert.is_nil(mine[1].cmdline:find("spec-key-in-pipe-too", 1, true))
   end)

   it("still serves with that secret: a request signed with it is answered", function()
      local secret = "another-spec-secret"
      local h = mock.start{ secret = secret }
      local o = mock.client_options(h)
      assert.are.equal(secret, o.secret)
      local client = require("calypso.purse").new(o)
      local customer, msg = client:create_customer{ externalId = "pipe-1" }
      client:close()
      h:stop()
      assert.is_truthy(customer, msg)
      assert.are.equal("pipe-1", customer.externalId)
   end)

   it("reports a failed start with the child's message, and leaves no process behind", function()
      local before = #children(self_pid())
      local ok, e = pcall(mock.start, { host = "192.0.2.1" })
      assert.is_false(ok)
      assert.are.equal("calypso.mock: the mock server did not start: calypso.mock.server: refusing to listen "
         .. "on non-loopback host 192.0.2.1 (set allow_non_loopback to override)", e)
      assert.are.equal(before, #children(self_pid()))
   end)
end)

-- One plain HTTP request to the mock: status and decoded body.
local function http(method, url, body)
   local chunks = {}
   local ltn12 = require "ltn12"
   local _, status = require("socket.http").request{
      url = url, method = method,
      headers = { ["content-length"] = tostring(#(body or "")), ["content-type"] = "application/json" },
      source = ltn12.source.string(body or ""), sink = ltn12.sink.table(chunks),
   }
   return status, require("calypso.mock.json").decode(table.concat(chunks))
end

local ALL_ENDPOINTS = {
   "/_mock/", "/_mock/config", "/_mock/customers", "/_mock/deposit", "/_mock/fault",
   "/_mock/health", "/_mock/requests", "/_mock/reset", "/_mock/shutdown",
   "/_mock/transaction/update", "/_mock/webhooks", "/_mock/webhooks/deliveries",
   "/_mock/webhooks/emit",
}

describe("the mock's control API (issue 15.4)", function()
   local server
   setup(function() server = mock.start() end)
   teardown(function() server:stop() end)
   before_each(function() server:reset() end)

   local function paths(list)
      local out = {}
      for i, e in ipairs(list) do out[i] = e.path end
      return out
   end

   it("GET /_mock/ lists every endpoint with its methods and a summary", function()
      local status, body = http("GET", server.url .. "/_mock/")
      assert.are.equal(200, status)
      assert.are.same(ALL_ENDPOINTS, paths(body.endpoints))
      for _, e in ipairs(body.endpoints) do
         assert.truthy(#e.summary > 0, e.path)
         assert.truthy(#e.methods >= 1, e.path)
      end
      local by = {}
      for _, e in ipairs(body.endpoints) do by[e.path] = e.methods end
      assert.are.same({ "POST" }, by["/_mock/deposit"])
      assert.are.same({ "GET", "POST" }, by["/_mock/requests"])
      assert.are.same(body, server:endpoints())
   end)

   it("an unknown control path answers 404 with that list", function()
      local status, body = http("POST", server.url .. "/_mock/depsoit", "{}")
      assert.are.equal(404, status)
      assert.are.equal("unknown control endpoint /_mock/depsoit; GET /_mock/ lists them", body.error)
      assert.are.same(ALL_ENDPOINTS, paths(body.endpoints))
   end)

   it("GET /_mock/customers lists every customer, oldest first, untouched by faults", function()
      local client = require("calypso.purse").new(mock.client_options(server))
      local a = assert(client:create_customer{ externalId = "a", email = "a@example.com" })
      local b = assert(client:create_customer{ externalId = "b" })
      client:close()
      server:fault{ mode = "html503" } -- strikes API requests only
      assert.are.same({ customers = { a, b } }, server:customers())
      local status = http("POST", server.url .. "/_mock/customers", "")
      assert.are.equal(200, status)
   end)

   it("the refuse fault answers, then refuses new connections for its seconds", function()
      local calypso = require "calypso"
      local o = mock.client_options(server)
      o.max_retries, o.timeout = 0, 2
      o.write_reuse_idle = 0   -- each write on a connection of its own: the refused one
      local client = calypso.new(o)
      server:fault{ mode = "refuse", seconds = 0.5 }
      assert(client:create_customer{ externalId = "first" })   -- answered
      local res, msg, err = client:create_customer{ externalId = "second" }  -- fresh connection: refused
      assert.is_nil(res)
      assert.are.same({ "connect", false, true }, { err.kind, err.sent, err.retryable })
      assert.truthy(msg:find("^calypso: create_customer: "), msg)
      local t0 = require("socket").gettime()
      local again
      repeat   -- listening again within about half a second (bounded: 3 s)
         require("socket").sleep(0.05)
         again = client:create_customer{ externalId = "third" }
      until again or require("socket").gettime() - t0 > 3
      client:close()
      assert.truthy(again)
      local ids = {}
      for i, c in ipairs(server:customers().customers) do ids[i] = c.externalId end
      assert.are.same({ "first", "third" }, ids)
   end)
end)

describe("the request log", function()
   local function make_requests(h, n)
      local client = require("calypso.purse").new(mock.client_options(h))
      for i = 1, n do assert(client:create_customer{ externalId = "r" .. i }) end
      client:close()
   end

   local function external_ids(h)
      local out = {}
      for i, r in ipairs(h:requests()) do out[i] = r.body:match('"externalId":"([^"]*)"') end
      return out
   end

   it("keeps the last request_log_size API requests, oldest first", function()
      local h = mock.start{ request_log_size = 3 }
      make_requests(h, 5)
      local got = external_ids(h)
      h:stop()
      assert.are.same({ "r3", "r4", "r5" }, got)
   end)

   it("keeps 200 by default, and none with request_log_size = 0", function()
      local h = mock.start()
      make_requests(h, 203)
      local got = external_ids(h)
      h:stop()
      assert.are.equal(200, #got)
      assert.are.same({ "r4", "r203" }, { got[1], got[200] })
      h = mock.start{ request_log_size = 0 }
      make_requests(h, 2)
      got = h:requests()
      h:stop()
      assert.are.same({}, got)
   end)

   it("refuses a size that is not an integer from 0 to 100000", function()
      for _, bad in ipairs({ -1, 1.5, 100001, "10" }) do
         assert.has_error(function() mock.start{ request_log_size = bad } end,
            "calypso.mock: request_log_size must be an integer from 0 to 100000")
      end
   end)
end)

describe("calypso-mock", function()
   it("prints base URL, key, secret and account at start, and takes --request-log-size", function()
      local helpers = require "support.helpers"
      local cmd = ("%s bin/calypso-mock --lifetime 30 --key k-1 --secret s-1 "
         .. "--account 0x00000000000000000000000000000000000000aa --request-log-size 1 2>&1")
         :format(helpers.lua())
      local p = assert(io.popen(cmd))
      local lines = {}
      for _ = 1, 7 do lines[#lines + 1] = p:read("*l") end -- LISTENING + 6 lines, then it serves
      local port = tonumber(lines[1]:match("^LISTENING (%d+)$"))
      local url = "http://127.0.0.1:" .. tostring(port)
      local h = setmetatable({ url = url, key = "k-1", secret = "s-1",
                               account = "0x00000000000000000000000000000000000000aa" },
                             { __index = function(_, k) return mock[k] end })
      local client = require("calypso.purse").new(mock.client_options(h))
      assert(client:create_customer{ externalId = "x1" })
      assert(client:create_customer{ externalId = "x2" })
      client:close()
      local _, requests = http("GET", url .. "/_mock/requests")
      http("POST", url .. "/_mock/shutdown", "")
      p:close()
      assert.are.same({
         "LISTENING " .. port,
         "calypso-mock: listening; a local test mock: its key and secret are test values, never real ones",
         "  CALYPSO_BASE_URL=" .. url,
         "  CALYPSO_API_KEY=k-1",
         "  CALYPSO_API_SECRET=s-1",
         "  CALYPSO_ACCOUNT=0x00000000000000000000000000000000000000aa",
         "  control API: GET " .. url .. "/_mock/ lists it (docs/mock.md); POST " .. url
            .. "/_mock/shutdown stops the mock",
      }, lines)
      assert.are.equal(1, #requests)
      assert.truthy(requests[1].body:find('"externalId":"x2"', 1, true))
   end)
end)

describe("docs/mock.md", function()
   it("documents every control endpoint under its own heading, and every fault mode", function()
      local f = assert(io.open("docs/mock.md", "rb"))
      local doc = f:read("*a")
      f:close()
      for _, path in ipairs(ALL_ENDPOINTS) do
         assert.truthy(doc:find("\n### `GET " .. path .. "`\n", 1, true)
                       or doc:find("\n### `POST " .. path .. "`\n", 1, true), path)
      end
      for _, mode in ipairs({ "delay", "stall", "close", "malformed", "html503", "raw", "error",
                              "accept_close", "partial", "trickle", "chunked", "huge", "wire", "refuse" }) do
         assert.truthy(doc:find("\n| `" .. mode .. "` |", 1, true), mode)
      end
   end)
end)

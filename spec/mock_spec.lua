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

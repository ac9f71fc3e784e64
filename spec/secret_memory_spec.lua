-- Where secrets could still leak without passing through a message: the keyed SHA-512
-- states in a core dump, credentials written into base_url, and server text that breaks a
-- log line with a Unicode line separator.
local purse = require "calypso.purse"
local mock = require "calypso.mock"

local SECRET = "sk-memory-7Hq2xV9pL4mZ8wR1tY6uN3bC"

local function options(extra)
   local o = { key = "pk-memory", secret = SECRET, account = "0x" .. ("ab"):rep(20),
               base_url = "http://127.0.0.1:9" }
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

-- KiB of this process's memory the kernel leaves out of core dumps (VmFlags "dd"). Counted
-- in KiB, not mappings: the kernel merges neighbouring mappings with the same flags.
local function dump_excluded()
   local f = assert(io.open("/proc/self/smaps", "r"))
   local kib, size = 0, 0
   for line in f:lines() do
      size = tonumber(line:match("^Size:%s+(%d+) kB")) or size
      local flags = line:match("^VmFlags:(.*)$")
      if flags and (" " .. flags .. " "):find(" dd ", 1, true) then
         kib = kib + size
      end
   end
   f:close()
   return kib
end

local PAGE_KIB = 4   -- one page a client (x86-64 and arm64 Linux)

describe("the keyed signing states", function()
   it("live in memory left out of core dumps, one page per open client", function()
      local before = dump_excluded()
      local a = purse.new(options())
      local b = purse.new(options())
      assert.are.equal(before + 2 * PAGE_KIB, dump_excluded())
      -- and they still sign: the documented HMAC of the body, from those states
      assert.are.equal(purse.sign(SECRET, "body"), a:sign("body"))
      a:close()
      assert.are.equal(before + PAGE_KIB, dump_excluded())
      b:close()
      assert.are.equal(before, dump_excluded())
   end)

   it("keep signing correctly for keys longer than a SHA-512 block", function()
      local long = ("k"):rep(300)
      local c = purse.new(options{ secret = long })
      assert.are.equal(purse.sign(long, "a body to sign"), c:sign("a body to sign"))
      c:close()
   end)
end)

describe("credentials in base_url", function()
   for _, url in ipairs{ "https://user:pa55word@api.example.test",
                         "http://pa55word@127.0.0.1:9/base",
                         "https://user:pa55word@[::1]:8443" } do
      it("are refused at construction without echoing them: " .. url, function()
         local ok, err = pcall(purse.new, options{ base_url = url })
         assert.is_false(ok)
         assert.are.equal("calypso.purse.new: option 'base_url' must not carry credentials " ..
                          "(user:password@); give the API key and secret as options", err:match("calypso.*"))
         assert.is_nil(err:find("pa55word", 1, true))
      end)
   end

   it("an @ after the host (in the path) is not userinfo", function()
      local c = purse.new(options{ base_url = "http://127.0.0.1:9/v@1" })
      assert.are.equal("http://127.0.0.1:9/v@1", c:info().base_url)
      c:close()
   end)
end)

describe("server text in messages", function()
   local server, client
   setup(function()
      server = mock.start()
      client = purse.new(mock.client_options(server))
   end)
   teardown(function()
      client:close()
      server:stop()
   end)

   it("loses U+2028, U+2029 and U+0085 like other line breaks", function()
      server:fault{ mode = "error", status = 400, code = "004",
                    message = "bad\226\128\168line\226\128\169two\194\133three\ndone" }
      local res, msg, err = client:get_customer{ customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }
      assert.is_nil(res)
      assert.are.equal("api", err.kind)
      assert.are.equal("bad line two three done", err.api_message or err.message:match("004: (.-) %("))
      assert.is_nil(msg:find("\226\128[\168\169]"))
      assert.is_nil(msg:find("\194\133"))
      assert.are.equal("calypso: get_customer: API error 004: bad line two three done (HTTP 400, trace "
                       .. err.trace_id .. ")", msg)
   end)

   it("keeps other multi-byte text intact", function()
      server:fault{ mode = "error", status = 400, code = "004", message = "caf\195\169 \226\130\172" }
      local _, msg, err = client:get_customer{ customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }
      assert.are.equal("calypso: get_customer: API error 004: caf\195\169 \226\130\172 (HTTP 400, trace "
                       .. err.trace_id .. ")", msg)
   end)
end)

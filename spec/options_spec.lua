-- purse.new: option checking (programmer errors raise) and what tostring shows.
local purse = require "calypso.purse"
local helpers = require "support.helpers"
local VERSION = require "support.version"

local SECRET = "s3cr3t-that-must-never-show"
local function opts(extra)
   local o = { key = "c529e14832b34b74972365cf7bf02430", secret = SECRET,
               account = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b",
               base_url = "http://127.0.0.1:9" }
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

describe("purse.new options", function()
   it("accepts every documented option", function()
      local c = purse.new(opts{ timeout = 1.5, connect_timeout = 0.5, ca_file = "/etc/ssl/certs/ca-certificates.crt",
                                proxy = "http://127.0.0.1:3128", user_agent = "shop/1.0",
                                max_response_size = 65536, insecure_skip_tls_verify = false })
      assert.are.equal("userdata", type(c))
      c:close()
   end)

   it("takes whole-number floats for integer options on every runtime (2^20 is a float on 5.3+)", function()
      local c = purse.new(opts{ max_response_size = 2 ^ 20 })
      assert.are.equal(1048576, c:info().max_response_size)
      assert.are.equal("1048576", tostring(c:info().max_response_size))
      c:close()
      assert.has_error(function() purse.new(opts{ max_response_size = 2 ^ 20 + 0.5 }) end)
   end)

   local raising = {
      { "no table", nil, "bad argument #1" },
      { "unknown option", opts{ secret_key = "x" }, "unknown option 'secret_key'" },
      { "missing key", opts{ key = false }, "option 'key' must be a string (got boolean)" },
      { "missing secret", (function() local o = opts() o.secret = nil return o end)(), "option 'secret' is required" },
      { "empty account", opts{ account = "" }, "option 'account' must not be empty" },
      { "numeric timeout as string", opts{ timeout = "30" },
        "option 'timeout' must be a number of seconds (got string)" },
      { "zero timeout", opts{ timeout = 0 }, "option 'timeout' must be between 0.001 and 86400 seconds" },
      { "NaN connect_timeout", opts{ connect_timeout = 0/0 }, "option 'connect_timeout' must be between" },
      { "base_url scheme", opts{ base_url = "ftp://127.0.0.1" },
        "option 'base_url' must be an http:// or https:// URL" },
      { "header injection in key", opts{ key = "k\r\nX-Evil: 1" }, "option 'key' must be printable ASCII" },
      { "header injection in user_agent", opts{ user_agent = "a\nb" }, "option 'user_agent' must be printable ASCII" },
      { "max_response_size too small", opts{ max_response_size = 10 },
        "option 'max_response_size' must be an integer" },
      { "insecure flag not boolean", opts{ insecure_skip_tls_verify = 1 }, "must be a boolean" },
      { "ca_file with NUL", opts{ ca_file = "a\0b" }, "must not contain NUL bytes" },
   }
   for _, case in ipairs(raising) do
      it("raises for " .. case[1], function()
         local ok, err = pcall(purse.new, case[2])
         assert.is_false(ok)
         assert.truthy(err:find(case[3], 1, true), err)
         assert.is_nil(err:find(SECRET, 1, true))
      end)
   end

   it("shows the key id and the base URL in tostring, never the secret", function()
      local c = purse.new(opts())
      local s = tostring(c)
      assert.truthy(s:find("^calypso%.purse client %(key c529e148%.%.%., http://127%.0%.0%.1:9%)"), s)
      assert.is_nil(s:find(SECRET, 1, true))
      c:close()
      assert.truthy(tostring(c):find("^calypso%.purse client %(closed%)"))
   end)

   it("exposes the operation table that drives the methods", function()
      local names = {}
      for name, op in pairs(purse.operations) do
         names[#names + 1] = name
         assert.are.equal("string", type(op.path))
      end
      table.sort(names)
      assert.are.same({ "block_customer", "create_customer", "find_transactions", "get_address",
                        "get_customer", "get_customers_by_external_id", "get_purses", "get_transaction",
                        "unblock_customer", "update_customer" }, names)
      assert.are.equal("purse/get-all", purse.operations.get_purses.path)
      assert.is_true(purse.operations.create_customer.writes)
      assert.is_false(purse.operations.get_customer.writes)
      assert.are.equal(VERSION, purse._VERSION)
   end)
end)

describe("client lifecycle", function()
   it("closes twice without harm and raises on use after close", function()
      local c = purse.new(opts())
      c:close()
      c:close()
      local ok, err = pcall(c.get_customer, c, { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" })
      assert.is_false(ok)
      assert.truthy(err:find("the client is closed", 1, true))
      ok, err = pcall(c.call, c, "customer/get", {})
      assert.is_false(ok)
      assert.truthy(err:find("the client is closed", 1, true))
   end)

   it("raises when a method is called on something that is not a client", function()
      local c = purse.new(opts())
      assert.has_error(function() c.get_customer({}, {}) end)
      assert.has_error(function() c.close("x") end)
      c:close()
   end)

   it("collects 10,000 clients and gives their C memory back", function()
      -- In a fresh interpreter (no test-runner heap noise): five rounds of
      -- 10,000 clients each, collected. One live client holds ~8 KiB of C
      -- memory (its curl handle), so a leak would add ~78 MiB per round.
      local out = helpers.run_lua([[
         local purse = require "calypso.purse"
         local function rss()
            local f = io.open("/proc/self/statm"); f:read("*n")
            local r = f:read("*n"); f:close(); return r * 4
         end
         local seen = {}
         for round = 1, 5 do
            local weak = setmetatable({}, { __mode = "v" })
            for i = 1, 10000 do
               weak[i] = purse.new{ key = "k", secret = "s", account = "a", base_url = "http://127.0.0.1:9" }
            end
            collectgarbage(); collectgarbage()
            local alive = 0
            for _ in pairs(weak) do alive = alive + 1 end
            seen[#seen + 1] = alive .. ":" .. rss()
         end
         print(table.concat(seen, " "))
      ]])
      local rounds = {}
      for alive, kib in out:gmatch("(%d+):(%d+)") do
         assert.are.equal("0", alive)
         rounds[#rounds + 1] = tonumber(kib)
      end
      assert.are.equal(5, #rounds, out)
      local growth = rounds[5] - rounds[2]
      assert.is_true(growth < 40 * 1024, ("RSS grew by %d KiB over three rounds"):format(growth))
   end)

   if _VERSION == "Lua 5.4" then
      it("closes a to-be-closed client at the end of its scope", function()
         local f = load([[
            local purse, opts = ...
            local keep
            do
               local c <close> = purse.new(opts)
               keep = c
            end
            return tostring(keep)
         ]])
         assert.truthy(f(purse, opts()):find("(closed)", 1, true))
      end)
   end
end)

describe("purse.new reads options raw", function()
   it("never runs an __index metamethod of the options table", function()
      local o = opts()
      setmetatable(o, { __index = function() error("metamethod ran") end })
      local c = purse.new(o)
      c:close()
      assert.has_error(function() purse.new(opts{ account = string.rep("0", 300) }) end,
                       "calypso.purse.new: option 'account' is too long")
   end)
end)

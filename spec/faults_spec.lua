-- The fault matrix (spec/support/fault_matrix.lua), row by row over real sockets: each fault
-- gives the exact err.kind (or a result, where the client should cope), the process goes on,
-- and the NEXT call on the same client succeeds. A crash would kill busted, and
-- scripts/run-specs.sh fails a run that prints no summary; the last test also replays the
-- quick rows in a child interpreter and checks that it exits normally.
local purse = require "calypso.purse"
local mock = require "calypso.mock"
local matrix = require "support.fault_matrix"
local helpers = require "support.helpers"

local TIMEOUT = 1   -- seconds; the `slow` rows wait this long
local server, client, customer, accepts_gzip

local function opts(extra)
   local o = mock.client_options(server)
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

local function free_port()
   local sock = assert(require("socket").bind("127.0.0.1", 0))
   local _, port = sock:getsockname()
   sock:close()
   return tonumber(port)
end

local function still_works(c)
   local got, msg = c:get_customer{ customerId = customer.id }
   assert.is_table(got, msg)
   assert.are.equal(customer.id, got.id)
end

-- Calls row.op on c and checks the outcome the row promises.
local function run_row(c, row)
   local op = row.op or "get_customer"
   local payload = op == "create_customer" and { email = "fault@example.com" } or { customerId = customer.id }
   local res, msg, err = c[op](c, payload)
   if row.ok then
      assert.is_table(res, msg)
      assert.is_nil(msg)
      row.check(res, customer)
      return
   end
   assert.is_nil(res)
   assert.is_table(err, "no err table for " .. row.name)
   assert.are.equal(row.kind, err.kind, msg)
   assert.are.equal(msg, err.message)
   assert.are.equal("calypso: " .. op .. ": ", msg:sub(1, #op + 11))
   assert.is_nil(msg:find("[\r\n%z]"))
   assert.are.equal(op, err.op)
   if row.status then assert.are.equal(row.status, err.status) end
   if row.retryable ~= nil then assert.are.equal(row.retryable, err.retryable) end
   if row.retry_after then assert.are.equal(row.retry_after, err.retry_after) end
   if row.sent ~= nil then assert.are.equal(row.sent, err.sent) end
end

setup(function()
   server = mock.start()
   -- write_reuse_idle = 0: the accept-time faults strike a write's own fresh connection
   client = purse.new(opts{ timeout = TIMEOUT, write_reuse_idle = 0 })
   customer = assert(client:create_customer{ email = "faults@example.com" })
   local seen = server:requests()
   accepts_gzip = seen[#seen].headers["accept-encoding"] ~= nil
end)

teardown(function()
   client:close()
   server:stop()
end)

describe("fault matrix", function()
   for _, row in ipairs(matrix.cases()) do
      it(row.name, function()
         row = matrix.expect(row, accepts_gzip)
         if row.refuse then
            -- nothing on the port: connect fails; then a mock starts there and the same
            -- client's next call goes through
            local port = free_port()
            local c = purse.new(opts{ base_url = "http://127.0.0.1:" .. port, timeout = TIMEOUT })
            run_row(c, row)
            local late = mock.start{ port = port }
            local ok, e = pcall(function()
               local id = assert(c:create_customer{ email = "late@example.com" }).id
               assert.are.equal(id, assert(c:get_customer{ customerId = id }).id)
            end)
            late:stop()
            c:close()
            assert(ok, e)
            return
         end
         still_works(client)   -- a kept-alive connection exists before the fault
         server:fault(matrix.fault(row, customer))
         run_row(client, row)
         still_works(client)
      end)
   end

   it("the quick rows in a child interpreter: it survives them all and exits normally", function()
      local out = helpers.run_lua([[
         local purse = require "calypso.purse"
         local mock = require "calypso.mock"
         local matrix = require "support.fault_matrix"
         assert = require "luassert"
         local server = mock.start()
         local c = purse.new(mock.client_options(server))
         local customer = assert(c:create_customer{ email = "child@example.com" })
         local seen = server:requests()
         local accepts_gzip = seen[#seen].headers["accept-encoding"] ~= nil
         local n = 0
         for _, row in ipairs(matrix.cases()) do
            row = matrix.expect(row, accepts_gzip)
            if row.quick then
               server:fault(matrix.fault(row, customer))
               local res, msg, err = c[row.op or "get_customer"](c, row.op and { email = "c@example.com" }
                                                                     or { customerId = customer.id })
               if row.ok then row.check(res, customer)
               elseif err.kind ~= row.kind then error(row.name .. ": " .. tostring(msg)) end
               assert(c:get_customer{ customerId = customer.id })
               n = n + 1
            end
         end
         c:close()
         server:stop()
         collectgarbage()
         print("SURVIVED " .. n)
         os.exit(0)
      ]])
      local n = out:match("SURVIVED (%d+)\n$")
      assert.truthy(n, out)
      local quick = 0
      for _, row in ipairs(matrix.cases()) do
         if row.quick then quick = quick + 1 end
      end
      assert.are.equal(quick, tonumber(n))
   end)
end)

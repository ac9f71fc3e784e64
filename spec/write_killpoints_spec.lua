-- From a hostile review: the write path (writes on kept-alive connections), libcurl side.
-- A scripted server (spec/support/killpoint_server.lua) kills the kept-alive connection under a
-- write at every point of its way in (before/after the head, mid-body, after the body, after
-- a 100 Continue, with an early answer) for small (create_customer) and large (client:call of
-- an unknown path, 64 KiB .. 5 MiB on the wire) bodies, and logs how many bytes of each copy
-- it read. The invariant: at most one COMPLETE copy of a write reaches the server, and a
-- failure says sent = false only if no complete copy did.
local purse = require "calypso.purse"
local calypso = require "calypso"
local mock_state = require "calypso.mock.state"
local review_server = require "support.killpoint_server"

local function options(url, extra)
   local o = { key = mock_state.DEFAULT_KEY, secret = mock_state.DEFAULT_SECRET,
               account = mock_state.DEFAULT_ACCOUNT, base_url = url, timeout = 4, connect_timeout = 2 }
   for k, v in pairs(extra or {}) do o[k] = v end
   return o
end

-- the write path in the server's log, and its copies: all, and those read to the last byte
local function copies(srv, needle)
   local all, complete, rows = 0, 0, {}
   for _, r in ipairs(srv:log()) do
      if r.path:find(needle, 1, true) then
         all = all + 1
         if r.got == r.cl then complete = complete + 1 end
         rows[#rows + 1] = ("conn %d %s cl=%d got=%d"):format(r.conn, r.step, r.cl, r.got)
      end
   end
   return all, complete, table.concat(rows, "; ")
end

local STEPS = { "head_close", "head_rst", "part_close:1000", "part_rst:1000", "part_close:70000",
                "full_close", "c100_close", "early_ok_close" }
local SIZES = {
   { name = "small", op = function(c) return c:create_customer{ email = "w@example.com" } end,
     needle = "customer/create" },
   { name = "100 KiB", op = function(c) return c:call("rv/unknown", { blob = ("x"):rep(100 * 1024) }) end,
     needle = "rv/unknown" },
   -- JSON escaping: 900 000 control bytes are 5.4 MB of body
   { name = "5 MiB", op = function(c) return c:call("rv/unknown", { blob = ("\1"):rep(900000) }) end,
     needle = "rv/unknown" },
}

describe("a write whose kept-alive connection dies (libcurl)", function()
   for _, size in ipairs(SIZES) do
      for _, step in ipairs(STEPS) do
         it(size.name .. " body, " .. step .. ": at most one complete copy; sent not false if one arrived", function()
            local srv = review_server.start{ plan_text = ('{ [1] = { "ok", %q } }'):format(step), lifetime = 20 }
            local ok, e = pcall(function()
               local c = purse.new(options(srv.url))
               assert(c:get_customers_by_external_id{ externalId = "warm" })
               local t0 = os.clock()
               local res, msg, err = size.op(c)
               local all, complete, rows = copies(srv, size.needle)
               print(("    [%s %s] res=%s sent=%s kind=%s copies=%d complete=%d (%s) %.2fs cpu; %s"):format(
                  size.name, step, tostring(res ~= nil), tostring(err and err.sent), tostring(err and err.kind),
                  all, complete, rows, os.clock() - t0, tostring(msg)))
               assert.is_true(complete <= 1, rows)
               if err and err.sent == false then assert.are.equal(0, complete, rows) end
               c:close()
            end)
            srv:stop()
            assert(ok, e)
         end)
      end
   end
end)

describe("the Lua layer with retries on", function()
   for _, step in ipairs({ "head_close", "head_rst", "c100_close" }) do
      it("create_customer, " .. step .. ": at most one complete copy", function()
         local srv = review_server.start{ plan_text = ('{ [1] = { "ok", %q } }'):format(step), lifetime = 20 }
         local ok, e = pcall(function()
            local c = calypso.new(options(srv.url, { max_retries = 3, backoff_base = 0.01 }))
            assert(c:get_customers_by_external_id{ externalId = "warm" })
            local res, msg, err = c:create_customer{ email = "w@example.com" }
            local all, complete, rows = copies(srv, "customer/create")
            print(("    [layer %s] res=%s sent=%s kind=%s copies=%d complete=%d (%s); %s"):format(step,
               tostring(res ~= nil), tostring(err and err.sent), tostring(err and err.kind), all, complete, rows,
               tostring(msg)))
            assert.is_true(complete <= 1, rows)
            c:close()
         end)
         srv:stop()
         assert(ok, e)
      end)
   end
end)

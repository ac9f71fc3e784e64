-- calypso.transport.ngx outside nginx, on every runtime: the module loads (it is written in
-- the common subset of Lua 5.1-5.4 and LuaJIT), says it is not available, and refuses to make
-- a transport. Its behaviour inside nginx is spec/nginx_spec.lua's (scripts/test-nginx.sh).
local transport = require "calypso.transport.ngx"
local purse = require "calypso.purse"
local mock_state = require "calypso.mock.state"

describe("calypso.transport.ngx outside nginx", function()
   it("is not available", function()
      assert.is_false(transport.available())
   end)

   it("refuses to make a transport", function()
      local core = purse.new{ key = mock_state.DEFAULT_KEY, secret = mock_state.DEFAULT_SECRET,
                              account = mock_state.DEFAULT_ACCOUNT, base_url = "http://127.0.0.1:9" }
      assert.has_error(function() transport.new(core) end,
                       "calypso.transport.ngx.new: not running inside nginx (no ngx.socket)")
      core:close()
   end)
end)

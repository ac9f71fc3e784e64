-- Proxy credentials: client:info() hides the proxy URL (it may carry credentials), and so must
-- failure messages: libcurl names a proxy it cannot use, userinfo included ("Unsupported proxy
-- syntax in '<proxy>'"), in its error buffer, which becomes err.message; the core replaces the
-- userinfo of any URL in it with ***.
local purse = require "calypso.purse"

local PASSWORD = "Pr0xyPassw0rd"

local function leaks(proxy)
   local c = purse.new{ key = "k", secret = "s", account = "0xabc",
                        base_url = "http://127.0.0.1:9", proxy = proxy, timeout = 2 }
   local seen = {}
   local _, msg, err = c:call("customer/get", {})
   seen[#seen + 1] = msg
   for _, v in pairs(err or {}) do seen[#seen + 1] = tostring(v) end
   local b = c:batch{ { "customer/get", {} } }
   seen[#seen + 1] = b[1].message
   seen[#seen + 1] = tostring(c)
   c:close()
   for _, s in ipairs(seen) do
      if tostring(s):find(PASSWORD, 1, true) then return s end
   end
   return nil
end

describe("proxy credentials", function()
   for _, proxy in ipairs{ "http://user:" .. PASSWORD .. "@[bad",
                           "ftp://user:" .. PASSWORD .. "@127.0.0.1:1",
                           "http://user:" .. PASSWORD .. "@127.0.0.1:99999" } do
      it("never show in messages or err fields (proxy " .. proxy:gsub(PASSWORD, "***") .. ")", function()
         local s = leaks(proxy)
         assert.is_nil(s, "the proxy password leaked: " .. tostring(s))
      end)
   end
end)

describe("proxy credentials in libcurl's own words", function()
   it("are replaced by *** while the rest of the reason stays", function()
      local c = purse.new{ key = "k", secret = "s", account = "0xabc",
                           base_url = "http://127.0.0.1:9", proxy = "http://user:" .. PASSWORD .. "@[bad" }
      local _, msg = c:call("customer/get", {})
      c:close()
      assert.are.equal("calypso: customer/get: resolve error: Unsupported proxy syntax in 'http://***@[bad'", msg)
   end)

   it("short userinfo is masked in place", function()
      local c = purse.new{ key = "k", secret = "s", account = "0xabc",
                           base_url = "http://127.0.0.1:9", proxy = "ftp://ab@127.0.0.1:1" }
      local _, msg = c:call("customer/get", {})
      c:close()
      assert.are.equal("calypso: customer/get: connect error: Unsupported proxy scheme for 'ftp://**@127.0.0.1:1'", msg)
   end)
end)

-- Review of the secrets change (d6dfe4d..): client:info() deliberately hides the proxy URL ("it
-- may carry credentials"), and base_url with userinfo is refused without echoing it, yet a proxy
-- URL with user:password@ that libcurl cannot use comes back whole in the failure message
-- (libcurl's "Unsupported proxy syntax in '<proxy>'" / "Unsupported proxy scheme for '<proxy>'"
-- reach err.message through the error buffer), and so into logs and on_event.
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

describe("review: proxy credentials", function()
   for _, proxy in ipairs{ "http://user:" .. PASSWORD .. "@[bad",
                           "ftp://user:" .. PASSWORD .. "@127.0.0.1:1",
                           "http://user:" .. PASSWORD .. "@127.0.0.1:99999" } do
      it("never show in messages or err fields (proxy " .. proxy:gsub(PASSWORD, "***") .. ")", function()
         local s = leaks(proxy)
         assert.is_nil(s, "the proxy password leaked: " .. tostring(s))
      end)
   end
end)

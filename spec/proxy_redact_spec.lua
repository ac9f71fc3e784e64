-- From a hostile review: proxy passwords a URL-shaped redaction alone would not hide. libcurl echoes the
-- whole proxy string ("Unsupported proxy syntax in '<proxy>'"); redact_userinfo only masks
-- text between "://" and an '@' reached before ' ', '\'', '"', '/' or the end of the line. So
-- the password shows when the proxy has no scheme (libcurl accepts "user:pw@host"), when the
-- password holds '/', a space or a quote unencoded, and (its first ~200 characters) when a
-- long userinfo is cut by the 256-byte error buffer / 240-byte reason before its '@'.
local purse = require "calypso.purse"

local PW = "S3cretPw"

local function message(proxy)
   local c = purse.new{ key = "k", secret = "s", account = "0xabc",
                        base_url = "http://127.0.0.1:9", proxy = proxy, timeout = 2 }
   local _, msg = c:call("customer/get", {})
   local b = c:batch{ { "customer/get", {} } }
   c:close()
   return msg .. "\n" .. tostring(b[1].message)
end

describe("proxy credentials in libcurl's error text", function()
   for name, proxy in pairs{
      no_scheme = "user:" .. PW .. "@[bad",
      slash = "http://user:" .. PW .. "/x@127.0.0.1:1",
      space = "http://user:" .. PW .. " x@[bad",
      quote = "http://user:ab'" .. PW .. "@[bad",
      dquote = "http://user:" .. PW .. "\"x@[bad",
   } do
      it("are hidden: " .. name, function()
         local msg = message(proxy)
         assert.is_nil(msg:find(PW, 1, true), "the proxy password leaked: " .. msg)
      end)
   end

   it("are hidden when the userinfo is longer than the error text", function()
      local long = PW .. string.rep("x", 300)
      local msg = message("http://user:" .. long .. "@[bad")
      assert.is_nil(msg:find(PW, 1, true), "the proxy password's start leaked: " .. msg)
   end)
end)

rockspec_format = "3.0"
package = "calypso-purse"
version = "0.2.0-1"

source = {
   url = "git+https://github.com/calypso-purse/calypso-purse.git",
   tag = "v0.2.0",
}

description = {
   summary = "Lua client for the Calypso Pay Customer Purse API (C core: libcurl + mbedTLS)",
   detailed = [[
      calypso.purse is a C module that signs every request with HMAC-SHA512
      (mbedTLS), sends it over a reused libcurl handle and returns Lua tables
      (JSON via lua-cjson). calypso is a thin Lua layer on top. The local
      Calypso mock for tests is a rock of its own, calypso-purse-mock.
   ]],
   license = "MIT",
   labels = { "payments", "crypto", "http", "openresty" },
}

dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1.0",
}

external_dependencies = {
   -- Only the library: Debian keeps curl/curl.h in the multiarch include dir
   -- (/usr/include/<triplet>), which the compiler searches by itself but luarocks
   -- does not. CURL_INCDIR=... still works as an override.
   CURL = { library = "curl" },
   MBEDTLS = { header = "mbedtls/md.h", library = "mbedcrypto" },
}

test_dependencies = { "busted >= 2.0", "calypso-purse-mock == 0.2.0" }
test = { type = "busted" }

-- build.type "make": the Makefile's rock-build target compiles the C core into
-- build/rock/purse.so, a path no runtime's package.cpath can reach. The builtin type
-- would leave calypso/purse.so in the source tree, where `./?.so` makes every other runtime
-- started there load this runtime's module (LuaJIT: "undefined symbol: lua_newuserdatauv").
build = {
   type = "make",
   build_target = "rock-build",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      CURL_INCDIR = "$(CURL_INCDIR)",
      CURL_LIBDIR = "$(CURL_LIBDIR)",
      MBEDTLS_INCDIR = "$(MBEDTLS_INCDIR)",
      MBEDTLS_LIBDIR = "$(MBEDTLS_LIBDIR)",
   },
   install_pass = false, -- everything is installed from the table below
   install = {
      lib = { ["calypso.purse"] = "build/rock/purse.so" },
      lua = {
         ["calypso"] = "lua/calypso/init.lua",
         ["calypso.retry"] = "lua/calypso/retry.lua",
         ["calypso.webhook"] = "lua/calypso/webhook.lua",
         ["calypso.http1"] = "lua/calypso/http1.lua",
         ["calypso.transport.ngx"] = "lua/calypso/transport/ngx.lua",
      },
      -- LuaCATS annotations for editors (docs/reference.md, "Editors")
      conf = {
         ["library/calypso.lua"] = "library/calypso.lua",
         ["library/calypso/purse.lua"] = "library/calypso/purse.lua",
         ["library/calypso/webhook.lua"] = "library/calypso/webhook.lua",
         ["library/calypso/retry.lua"] = "library/calypso/retry.lua",
         ["library/calypso/http1.lua"] = "library/calypso/http1.lua",
         ["library/calypso/transport/ngx.lua"] = "library/calypso/transport/ngx.lua",
      },
   },
}

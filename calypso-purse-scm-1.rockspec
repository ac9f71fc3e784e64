rockspec_format = "3.0"
package = "calypso-purse"
version = "scm-1"

source = {
   url = "git+https://github.com/calypso-purse/calypso-purse.git",
}

description = {
   summary = "Lua client for the Calypso Pay Customer Purse API (C core: libcurl + mbedTLS)",
   detailed = [[
      calypso.purse is a C module that signs every request with HMAC-SHA512
      (mbedTLS), sends it over a reused libcurl handle and returns Lua tables
      (JSON via lua-cjson). calypso is a thin Lua layer on top, and
      calypso.mock a stateful local Calypso server for offline tests.
   ]],
   license = "MIT",
   labels = { "payments", "crypto", "http", "openresty" },
}

dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1.0",
   "luasocket >= 3.0",   -- the bundled mock server only
}

external_dependencies = {
   -- Only the library: Debian keeps curl/curl.h in the multiarch include dir
   -- (/usr/include/<triplet>), which the compiler searches by itself but luarocks
   -- does not. CURL_INCDIR=... still works as an override.
   CURL = { library = "curl" },
   MBEDTLS = { header = "mbedtls/md.h", library = "mbedcrypto" },
}

test_dependencies = { "busted >= 2.0" }
test = { type = "busted" }

build = {
   type = "builtin",
   modules = {
      ["calypso.purse"] = {
         sources = {
            "src/purse.c", "src/client.c", "src/multi.c", "src/endpoints.c", "src/validate.c",
            "src/json.c", "src/numbers.c", "src/errors.c", "src/http.c", "src/sign.c", "src/buf.c",
         },
         defines = { "_POSIX_C_SOURCE=200809L" },
         incdirs = { "$(CURL_INCDIR)", "$(MBEDTLS_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)", "$(MBEDTLS_LIBDIR)" },
         libraries = { "curl", "mbedcrypto" },
      },
      ["calypso"] = "lua/calypso/init.lua",
      ["calypso.retry"] = "lua/calypso/retry.lua",
      ["calypso.webhook"] = "lua/calypso/webhook.lua",
      ["calypso.mock.webhooks"] = "lua/calypso/mock/webhooks.lua",
      ["calypso.mock"] = "lua/calypso/mock/init.lua",
      ["calypso.mock.server"] = "lua/calypso/mock/server.lua",
      ["calypso.mock.state"] = "lua/calypso/mock/state.lua",
      ["calypso.mock.json"] = "lua/calypso/mock/json.lua",
      ["calypso.http1"] = "lua/calypso/http1.lua",
      ["calypso.transport.ngx"] = "lua/calypso/transport/ngx.lua",
   },
   install = {
      bin = { ["calypso-mock"] = "bin/calypso-mock" },
   },
}

rockspec_format = "3.0"
package = "calypso-purse-mock"
version = "0.2.0-1"

source = {
   url = "git+https://github.com/calypso-purse/calypso-purse.git",
   tag = "v0.2.0",
}

description = {
   summary = "A local, stateful Calypso Pay Customer Purse server for tests (calypso-purse)",
   detailed = [[
      calypso.mock starts a mock of the Calypso Customer Purse API on 127.0.0.1
      in a child process and drives it: deposits, transaction updates, faults
      (delays, resets, truncated or trickled answers, refused connections),
      recorded requests and signed webhooks, through an unsigned /_mock/ control
      API. The calypso-mock-<interpreter> command runs it in the foreground.
   ]],
   license = "MIT",
   labels = { "payments", "testing", "mock" },
}

-- calypso-purse checks and makes signatures (calypso.purse.verify, .sign); luasocket is the
-- server's and the handle's I/O. calypso-purse is pinned to the same version.
dependencies = {
   "lua >= 5.1, < 5.5",
   "calypso-purse == 0.2.0",
   "lua-cjson >= 2.1.0",
   "luasocket >= 3.0",
}

-- build.type "make" with no build pass: the modules are plain Lua, installed from the table
-- below, and the Makefile's rock-install-mock target installs the command as
-- calypso-mock-<interpreter> (calypso-mock-lua5.4, calypso-mock-lua5.1, ...). luarocks binds
-- each command to the interpreter of its install, and one name shared by several runtimes
-- would be taken over by the last install (the previous one renamed calypso-mock~).
build = {
   type = "make",
   build_pass = false,
   build_variables = { CFLAGS = "$(CFLAGS)" }, -- unused; luarocks warns when it is missing
   install_target = "rock-install-mock",
   install_variables = { BINDIR = "$(BINDIR)", LUA = "$(LUA)" },
   install = {
      lua = {
         ["calypso.mock"] = "lua/calypso/mock/init.lua",
         ["calypso.mock.server"] = "lua/calypso/mock/server.lua",
         ["calypso.mock.http"] = "lua/calypso/mock/http.lua",
         ["calypso.mock.conn"] = "lua/calypso/mock/conn.lua",
         ["calypso.mock.loop"] = "lua/calypso/mock/loop.lua",
         ["calypso.mock.faults"] = "lua/calypso/mock/faults.lua",
         ["calypso.mock.request_log"] = "lua/calypso/mock/request_log.lua",
         ["calypso.mock.control"] = "lua/calypso/mock/control.lua",
         ["calypso.mock.check"] = "lua/calypso/mock/check.lua",
         ["calypso.mock.state"] = "lua/calypso/mock/state.lua",
         ["calypso.mock.json"] = "lua/calypso/mock/json.lua",
         ["calypso.mock.webhooks"] = "lua/calypso/mock/webhooks.lua",
      },
      -- LuaCATS annotations for editors (docs/reference.md, "Editors")
      conf = { ["library/calypso/mock.lua"] = "library/calypso/mock.lua" },
   },
}

-- Packaging: what each rock ships and needs, the release rockspecs against the dev ones, and the
-- one version (src/version.h) as the module and the Lua layer report it. scripts/check-release.sh
-- installs the release rocks for real; this spec checks the rockspecs' contents on every runtime.
local purse = require "calypso.purse"
local calypso = require "calypso"
local VERSION = require "support.version"

-- A rockspec's fields, as luarocks reads them (a Lua chunk of assignments).
local function rockspec(path)
   local f = assert(io.open(path, "r"))
   local src = f:read("*a")
   f:close()
   local env = {}
   local chunk
   if rawget(_G, "setfenv") then
      chunk = assert(loadstring(src, "@" .. path))
      setfenv(chunk, env)
   else
      chunk = assert(load(src, "@" .. path, "t", env))
   end
   chunk()
   return env
end

-- The Lua files under `dir`, as module name -> path ("lua/calypso/x/init.lua" -> "calypso.x").
local function modules_under(dir)
   local found = {}
   local p = assert(io.popen("find " .. dir .. " -name '*.lua' | sort"))
   for path in p:lines() do
      local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      found[name] = path
   end
   p:close()
   return found
end

local CLIENT, MOCK = "calypso-purse-scm-1.rockspec", "calypso-purse-mock-scm-1.rockspec"
local CLIENT_RELEASE = "rockspecs/calypso-purse-" .. VERSION .. "-1.rockspec"
local MOCK_RELEASE = "rockspecs/calypso-purse-mock-" .. VERSION .. "-1.rockspec"

describe("the client rock (calypso-purse)", function()
   it("needs only Lua and lua-cjson", function()
      assert.are.same({ "lua >= 5.1, < 5.5", "lua-cjson >= 2.1.0" }, rockspec(CLIENT).dependencies)
      assert.are.same({ "lua >= 5.1, < 5.5", "lua-cjson >= 2.1.0" },
         rockspec(CLIENT_RELEASE).dependencies)
   end)

   it("installs the C core and every module under lua/calypso but the mock", function()
      local expected = modules_under("lua/calypso")
      for name in pairs(expected) do
         if name == "calypso.mock" or name:find("^calypso%.mock%.") then
            expected[name] = nil
         end
      end
      local install = rockspec(CLIENT).build.install
      assert.are.same(expected, install.lua)
      assert.are.same({ ["calypso.purse"] = "build/rock/purse.so" }, install.lib)
      assert.is_nil(install.bin)
   end)

   it("ships no module that requires luasocket or luasec", function()
      local offenders = {}
      for name, path in pairs(rockspec(CLIENT).build.install.lua) do
         local f = assert(io.open(path, "r"))
         local src = f:read("*a")
         f:close()
         for lib in src:gmatch("require%s*%(?%s*[\"']([%w%.]+)[\"']") do
            if lib == "socket" or lib:find("^socket%.") or lib == "ssl" or lib:find("^ssl%.")
                  or lib == "ltn12" then
               offenders[#offenders + 1] = name .. " requires " .. lib
            end
         end
      end
      assert.are.same({}, offenders)
   end)
end)

describe("the C core's symbols", function()
   -- Both builds compile with BASE_CFLAGS: the warnings (WARN) and -fvisibility=hidden, whatever
   -- CFLAGS luarocks passes. The module under test comes from `make build`; the installed rocks
   -- are checked by scripts/test-nginx.sh (LuaJIT) and scripts/check-release.sh. The tools run
   -- without the sanitizer stage's LD_PRELOAD (it is for the module, not for make or nm).
   it("the rock's build target compiles with the Makefile's warning and visibility flags", function()
      local f = assert(io.open("Makefile", "r"))
      local warn = assert(f:read("*a"):match("\nWARN%s*:=%s*([^\n]-)%s*\n"), "Makefile: no WARN")
      f:close()
      local p = assert(io.popen("env -u LD_PRELOAD make -n -s rock-build LUA_INCDIR=/nonexistent "
                                  .. "CFLAGS=-O1 2>&1"))
      local cmd = p:read("*a")
      p:close()
      assert.is_truthy(cmd:find(warn, 1, true), "rock-build without WARN (" .. warn .. "): " .. cmd)
      assert.is_truthy(cmd:find("-fvisibility=hidden", 1, true), cmd)
   end)

   it("the module defines luaopen_calypso_purse and no other dynamic symbol", function()
      local so   -- package.searchpath is 5.2+ (and LuaJIT)
      for template in package.cpath:gmatch("[^;]+") do
         local path = template:gsub("%?", "calypso/purse")
         local f = io.open(path, "rb")
         if f then
            f:close()
            so = so or path
         end
      end
      assert.is_truthy(so, "calypso.purse not found on package.cpath")
      local p = assert(io.popen("env -u LD_PRELOAD sh scripts/check-exports.sh '" .. so
                                  .. "' 2>&1; echo \"rc=$?\""))
      local out = p:read("*a")
      p:close()
      assert.is_truthy(out:find("rc=0", 1, true), out)
   end)
end)

describe("the mock rock (calypso-purse-mock)", function()
   it("installs exactly the modules under lua/calypso/mock", function()
      assert.are.same(modules_under("lua/calypso/mock"), rockspec(MOCK).build.install.lua)
   end)

   it("needs calypso-purse, lua-cjson and luasocket; the release pins calypso-purse", function()
      assert.are.same({ "lua >= 5.1, < 5.5", "calypso-purse", "lua-cjson >= 2.1.0", "luasocket >= 3.0" },
         rockspec(MOCK).dependencies)
      assert.are.same({ "lua >= 5.1, < 5.5", "calypso-purse == " .. VERSION, "lua-cjson >= 2.1.0",
                        "luasocket >= 3.0" }, rockspec(MOCK_RELEASE).dependencies)
   end)

   it("installs the command per runtime with the Makefile's rock-install-mock", function()
      local build = rockspec(MOCK).build
      assert.are.equal("make", build.type)
      assert.is_false(build.build_pass)
      assert.are.equal("rock-install-mock", build.install_target)
      assert.are.same({ BINDIR = "$(BINDIR)", LUA = "$(LUA)" }, build.install_variables)
   end)
end)

describe("the release rockspecs", function()
   it("are the dev ones with the version, the tag and the pins of " .. VERSION, function()
      for _, pair in ipairs({ { CLIENT, CLIENT_RELEASE }, { MOCK, MOCK_RELEASE } }) do
         local dev, rel = rockspec(pair[1]), rockspec(pair[2])
         assert.are.equal("scm-1", dev.version)
         assert.are.equal(VERSION .. "-1", rel.version)
         assert.are.equal(dev.package, rel.package)
         assert.are.same({ url = dev.source.url, tag = "v" .. VERSION }, rel.source)
         assert.are.same(dev.build, rel.build)
         assert.are.same(dev.description, rel.description)
         assert.are.same(dev.external_dependencies, rel.external_dependencies)
      end
      assert.are.same({ "busted >= 2.0", "calypso-purse-mock == " .. VERSION },
         rockspec(CLIENT_RELEASE).test_dependencies)
   end)
end)

describe("the version", function()
   it("is src/version.h's in calypso.purse and calypso", function()
      assert.are.equal(VERSION, purse._VERSION)
      assert.are.equal(VERSION, calypso._VERSION)
   end)

   it("is the newest entry of CHANGELOG.md", function()
      local f = assert(io.open("CHANGELOG.md", "r"))
      local text = f:read("*a")
      f:close()
      assert.are.equal(VERSION, text:match("\n## %[(%d+%.%d+%.%d+)%]"))
   end)
end)

-- fork() for the specs: builds spec/support/forker.c once per run into a temporary directory
-- against the headers of the interpreter running the suite, and loads it.
--   local forker = require "support.forker"
--   local pid = forker.fork()   forker._exit(code)   forker.waitpid(pid)   forker.alarm(s)
local function headers()
   if type(rawget(_G, "jit")) == "table" then return "/usr/include/luajit-2.1" end
   return "/usr/include/lua" .. _VERSION:match("%d+%.%d+")
end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"
-- the compiler runs without a sanitizer runtime the suite may preload
local cmd = ("env -u LD_PRELOAD cc -std=c99 -D_POSIX_C_SOURCE=200809L -O1 -fPIC -shared "
             .. "-I%s -o %s/forker.so %s/forker.c 2>&1"):format(headers(), dir, here)
local p = assert(io.popen(cmd))
local out = p:read("*a")
p:close()
local loader, err = package.loadlib(dir .. "/forker.so", "luaopen_forker")
os.execute("rm -rf '" .. dir .. "'")   -- the loaded library stays mapped
if not loader then
   error("support.forker: cannot build or load the fork helper: " .. tostring(err) .. "\n" .. out)
end
return loader()

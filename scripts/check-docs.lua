-- scripts/check-docs.lua: every public function and method has a reference entry and an
-- annotation. Run from the repository root with the built core on LUA_CPATH:
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 scripts/check-docs.lua
--
-- The names come from the modules themselves, loaded here: the keys of each public module
-- table, the method tables behind the core client's and the multi's metatables (the luaL_Reg
-- arrays and the endpoint table of src/endpoints.c, as registered), the Lua layer's
-- calypso.Client, and the classes behind calypso.mock's handle and calypso.transport.ngx's
-- transport (upvalues of their constructors). As a second net, every name a luaL_Reg array or
-- the endpoint table in src/*.c registers must be among them.
--
-- For each name:
--   reference   docs/reference.md has, under the module's "## <section>", a "### " heading that
--               names it (`purse.new`, `client:get_customer`, ...) and a "syntax:" line under it
--   annotation  a file in library/ declares it on the module's LuaCATS class
--               (`function Class:name(`, `function mod.name(`, `mod.name =` or `---@field name`)
-- Also: every relative link in README.md and docs/*.md points to a file that exists, and a
-- link to a heading (`file.md#anchor`) to a heading that exists.
--
-- Prints one line per failure and ends with "lua docs: N passed, M failed"; exits 1 on any
-- failure.

local REFERENCE = "docs/reference.md"
local LIBRARY = "library"

local passed, failed = 0, 0
local function result(ok, what)
   if ok then
      passed = passed + 1
   else
      failed = failed + 1
      print("FAIL " .. what)
   end
end

local function read(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("*a")
   f:close()
   return s
end

local function lines(text)
   local out = {}
   for l in (text .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = (l:gsub("\r$", "")) end
   return out
end

local function sorted_keys(t, filter)
   local out = {}
   for k, v in pairs(t) do
      if type(k) == "string" and (not filter or filter(k, v)) then out[#out + 1] = k end
   end
   table.sort(out)
   return out
end

-- Methods only: functions whose name is not a metamethod.
local function is_method(k, v) return type(v) == "function" and k:sub(1, 2) ~= "__" end

local function upvalue(fn, name)
   local i = 1
   while true do
      local n, v = debug.getupvalue(fn, i)
      if n == nil then return nil end
      if n == name then return v end
      i = i + 1
   end
end

-- "function Var:name(" definitions in a source file, for a class variable name.
local function source_methods(path, var)
   local found = {}
   local text = read(path) or ""
   for name in text:gmatch("\nfunction%s+" .. var .. ":([%w_]+)%s*%(") do found[name] = true end
   return found
end

---------------------------------------------------------------------------------------------
-- What the modules expose
---------------------------------------------------------------------------------------------

local purse = require "calypso.purse"
local core = purse.new{ key = "check-docs", secret = "check-docs", account = "0x0" }
local core_index = getmetatable(core).__index
assert(type(core_index) == "table", "the core client's __index is not a method table")
local multi = core:multi()
local multi_index = getmetatable(multi).__index
assert(type(multi_index) == "table", "the multi's __index is not a method table")
multi:close()
core:close()

local calypso = require "calypso"
local webhook = require "calypso.webhook"
local transport = require "calypso.transport.ngx"
local http1 = require "calypso.http1"
local retry = require "calypso.retry"
local mock = require "calypso.mock"

local function class_of(fn, var, path)
   local methods = {}
   local t = upvalue(fn, var)
   if type(t) == "table" then
      for _, k in ipairs(sorted_keys(t, is_method)) do methods[k] = true end
   else
      result(false, ("%s: no upvalue %s in its constructor; update scripts/check-docs.lua"):format(path, var))
   end
   for k in pairs(source_methods(path, var)) do methods[k] = true end
   return sorted_keys(methods)
end

-- section: the "## " heading in docs/reference.md; prefix: how a "### " heading names a member;
-- class: the LuaCATS class in library/.
local targets = {
   { section = "calypso.purse", prefix = "purse.", class = "calypso.purse", names = sorted_keys(purse) },
   { section = "calypso.purse client", prefix = "client:", class = "calypso.purse.Client",
     names = sorted_keys(core_index, is_method) },
   { section = "calypso.purse multi", prefix = "m:", class = "calypso.purse.Multi",
     names = sorted_keys(multi_index, is_method) },
   { section = "calypso", prefix = "calypso.", class = "calypso", names = sorted_keys(calypso) },
   { section = "calypso client", prefix = "client:", class = "calypso.Client",
     names = sorted_keys(calypso.Client, is_method) },
   { section = "calypso.webhook", prefix = "webhook.", class = "calypso.webhook", names = sorted_keys(webhook) },
   { section = "calypso.transport.ngx", prefix = "transport.", class = "calypso.transport.ngx",
     names = sorted_keys(transport) },
   { section = "calypso.transport.ngx", prefix = "t:", class = "calypso.transport.ngx.Transport",
     names = class_of(transport.new, "Transport", "lua/calypso/transport/ngx.lua") },
   { section = "calypso.http1", prefix = "http1.", class = "calypso.http1", names = sorted_keys(http1) },
   { section = "calypso.retry", prefix = "retry.", class = "calypso.retry", names = sorted_keys(retry) },
   { section = "calypso.mock", prefix = "mock.", class = "calypso.mock", names = sorted_keys(mock) },
   { section = "calypso.mock", prefix = "server:", class = "calypso.mock.Server",
     names = class_of(mock.start, "Handle", "lua/calypso/mock/init.lua") },
}

---------------------------------------------------------------------------------------------
-- docs/reference.md: sections, entries
---------------------------------------------------------------------------------------------

local reference = read(REFERENCE)
if not reference then
   result(false, REFERENCE .. " is missing")
   reference = ""
end

local sections = {} -- "## " title -> { { heading =, body = }, ... }
do
   local section, entry, fence = nil, nil, false
   for _, l in ipairs(lines(reference)) do
      if l:match("^```") then fence = not fence end
      local h2 = not fence and l:match("^##%s+(.-)%s*$")
      local h3 = not fence and l:match("^###%s+(.-)%s*$")
      if h2 and not l:match("^###") then
         section = h2:gsub("`", "")
         sections[section] = sections[section] or {}
         entry = nil
      elseif h3 and not l:match("^####") and section then
         entry = { heading = h3:gsub("`", ""), body = {} }
         table.insert(sections[section], entry)
      elseif entry then
         entry.body[#entry.body + 1] = l
      end
   end
end

-- Whether `text` names `qualified` as a whole token.
local function names(text, qualified)
   local init = 1
   while true do
      local i, j = text:find(qualified, init, true)
      if not i then return false end
      local before, after = text:sub(i - 1, i - 1), text:sub(j + 1, j + 1)
      if not before:match("[%w_.:]") and not after:match("[%w_]") then return true end
      init = i + 1
   end
end

local function reference_entry(target, name)
   local qualified = target.prefix .. name
   local entries = sections[target.section]
   if not entries then return false, "no section \"## " .. target.section .. "\"" end
   for _, e in ipairs(entries) do
      if names(e.heading, qualified) then
         for _, l in ipairs(e.body) do
            if l:match("^syntax:") then return true end
         end
         return false, "its entry \"### " .. e.heading .. "\" has no syntax: line"
      end
   end
   return false, "no \"### " .. qualified .. "\" under \"## " .. target.section .. "\""
end

---------------------------------------------------------------------------------------------
-- library/: LuaCATS classes and their members
---------------------------------------------------------------------------------------------

local members = {} -- class -> { name = true }
do
   local p = io.popen("find " .. LIBRARY .. " -name '*.lua' 2>/dev/null | sort")
   local files = {}
   for f in p:lines() do files[#files + 1] = f end
   p:close()
   if #files == 0 then result(false, LIBRARY .. "/ holds no annotation files") end
   for _, path in ipairs(files) do
      local vars, pending, fields_of = {}, nil, nil
      for _, l in ipairs(lines(read(path) or "")) do
         local class = l:match("^%-%-%-%s*@class%s+([%w_.]+)")
         local field = l:match("^%-%-%-%s*@field%s+([%w_]+)")
         if class then
            pending, fields_of = class, class
            members[class] = members[class] or {}
         elseif field and fields_of then
            members[fields_of][field] = true
         elseif not l:match("^%-%-") then
            local var = l:match("^local%s+([%w_]+)%s*=")
            if var and pending then vars[var] = pending end
            if l:match("%S") then pending, fields_of = nil, nil end
            local v, name = l:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
            if not v then v, name = l:match("^([%w_]+)%.([%w_]+)%s*=") end
            if v and vars[v] then members[vars[v]][name] = true end
         end
      end
   end
end

---------------------------------------------------------------------------------------------
-- The checks
---------------------------------------------------------------------------------------------

local covered = {} -- names reached at run time, for the source cross-check
for _, t in ipairs(targets) do
   for _, name in ipairs(t.names) do
      covered[name] = true
      local ok, why = reference_entry(t, name)
      result(ok, ("%s%s: %s: %s"):format(t.prefix, name, REFERENCE, why or ""))
      local m = members[t.class]
      result(m and m[name], ("%s%s: %s/: no annotation of '%s' on class %s"):format(
         t.prefix, name, LIBRARY, name, t.class))
   end
end

-- Every name a luaL_Reg array or the endpoint table registers must have been reached above.
do
   local p = io.popen("ls src/*.c 2>/dev/null")
   for path in p:lines() do
      local text = read(path) or ""
      for body in text:gmatch("luaL_Reg%s+[%w_]+%[%]%s*=%s*(%b{})") do
         for name in body:gmatch('{%s*"([%w_]+)"') do
            if name:sub(1, 2) ~= "__" then
               result(covered[name], ("%s registers '%s', which no module or metatable "
                  .. "exposes: document it and teach scripts/check-docs.lua where it lives"):format(path, name))
            end
         end
      end
      for body in text:gmatch("calypso_endpoint%s+calypso_endpoints%[%]%s*=%s*(%b{})") do
         for name in body:gmatch('{%s*"([%w_]+)"%s*,%s*"') do
            result(covered[name], ("%s: endpoint '%s' is not a client method"):format(path, name))
         end
      end
   end
   p:close()
end

-- Relative links in README.md and docs/*.md: the file exists, and so does the heading.
local function slug(heading)
   return (heading:lower():gsub("[^%w%-_ ]", ""):gsub(" ", "-"))
end
local anchors_of = {}
local function anchors(path)
   if anchors_of[path] == nil then
      local text = read(path)
      local set = false
      if text then
         set = {}
         local fence = false
         for _, l in ipairs(lines(text)) do
            if l:match("^```") then fence = not fence end
            local h = not fence and l:match("^#+%s+(.-)%s*$")
            if h then
               local s = slug(h)
               local n, key = 0, s
               while set[key] do
                  n = n + 1
                  key = s .. "-" .. n
               end
               set[key] = true
            end
         end
      end
      anchors_of[path] = set
   end
   return anchors_of[path]
end

do
   local docs = { "README.md" }
   local p = io.popen("ls docs/*.md 2>/dev/null")
   for f in p:lines() do docs[#docs + 1] = f end
   p:close()
   for _, path in ipairs(docs) do
      local dir = path:match("^(.*)/") or "."
      local text, fence = read(path) or "", false
      for _, l in ipairs(lines(text)) do
         if l:match("^```") then fence = not fence end
         if not fence then
            for target in l:gmatch("%]%(([^)%s]+)%)") do
               if not target:match("^%a[%w+.-]*:") then -- not http:, https:, mailto:
                  local file, anchor = target:match("^([^#]*)#?(.*)$")
                  local full = file == "" and path or (dir == "." and file or dir .. "/" .. file)
                  while full:match("[^/]+/%.%./") do full = full:gsub("[^/]+/%.%./", "", 1) end
                  full = full:gsub("^%./", "")
                  local exists = read(full) ~= nil or os.rename(full, full) ~= nil
                  result(exists, ("%s: link (%s): no file %s"):format(path, target, full))
                  if exists and anchor ~= "" and full:match("%.md$") then
                     local set = anchors(full)
                     result(set and set[anchor], ("%s: link (%s): no heading #%s in %s"):format(
                        path, target, anchor, full))
                  end
               end
            end
         end
      end
   end
end

print(("lua docs: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)

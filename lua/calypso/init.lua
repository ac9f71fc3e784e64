-- calypso: the thin Lua layer over the C core `calypso.purse`.
-- calypso.new(opts) fills missing options from the environment and returns a
-- client with the same methods as purse.new(opts).
local purse = require "calypso.purse"

local getenv = os.getenv
local pairs = pairs
local type = type

local M = {
   _VERSION = purse._VERSION,
   null = purse.null,
   sign = purse.sign,
   verify = purse.verify,
   operations = purse.operations,
}

-- Option name -> environment variable that supplies it when it is absent.
local from_env = {
   key = "CALYPSO_API_KEY",
   secret = "CALYPSO_API_SECRET",
   account = "CALYPSO_ACCOUNT",
   base_url = "CALYPSO_BASE_URL",
}

--- Creates a client. Options given win over the environment; unknown names
-- and wrong types raise, exactly as in purse.new.
function M.new(opts)
   if opts ~= nil and type(opts) ~= "table" then
      error("calypso.new: options must be a table (got " .. type(opts) .. ")", 2)
   end
   local o = {}
   for k, v in pairs(opts or {}) do o[k] = v end
   for name, var in pairs(from_env) do
      if o[name] == nil then
         local v = getenv(var)
         if v ~= nil and v ~= "" then o[name] = v end
      end
   end
   return purse.new(o)
end

return M

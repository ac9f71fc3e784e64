-- calypso.mock.check: the argument checks that the control routes (calypso.mock.control) and
-- the fault modes (calypso.mock.faults) share. A control handler answers 400 with bad(msg).

local M = {}

local type, pairs = type, pairs
local floor = math.floor

--- The answer of a control handler to a bad argument: 400 and { error = msg }.
function M.bad(msg)
   return 400, { error = msg }
end

--- True when `v` is an integer number in lo..hi.
function M.is_int(v, lo, hi)
   return type(v) == "number" and v == floor(v) and v >= lo and v <= hi
end

--- True when `v` is a number in lo..hi.
function M.number_in(v, lo, hi)
   return type(v) == "number" and v >= lo and v <= hi
end

--- True when `t` is a table of string names to string or number values (HTTP headers).
function M.string_map(t)
   if type(t) ~= "table" then
      return false
   end
   for k, v in pairs(t) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
         return false
      end
   end
   return true
end

return M

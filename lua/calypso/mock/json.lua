-- calypso.mock.json: the JSON writer and reader used by the mock server and its handle.
--
-- Decoding is delegated to a private lua-cjson instance (so the caller's cjson settings are
-- never touched). Encoding is done here because Debian's lua-cjson 2.1.0 cannot do three things
-- the mock needs:
--   * write an empty array as `[]` (it has no empty_array_mt; `{}` would break typed clients);
--   * write a caller-supplied number token verbatim (exact-decimal amounts such as
--     "123456789012345678901234.567890123456"), see M.raw_number;
--   * keep a fixed key order, so responses look like the documented examples.
-- Numbers are written so that they round-trip: integral values without a fraction (`0`, not
-- `0.0`, also for Lua 5.1 doubles), other values with the shortest %.Ng that reads back equal.

local cjson = require("cjson")

local M = {}

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local getmetatable, setmetatable, rawget = getmetatable, setmetatable, rawget
local format, concat, sort = string.format, table.concat, table.sort
local floor, huge = math.floor, math.huge
local math_type = math.type -- nil before Lua 5.3

local decoder = cjson.new()
-- The API is strict JSON: no NaN, Infinity or hex numbers.
decoder.decode_invalid_numbers(false)

--- The JSON null value, as produced by decode and accepted by encode.
M.null = cjson.null

local MAX_DEPTH = 64
local MAX_TOKEN = 1024

local array_mt = {}
local raw_mt = {}

--- Marks table `t` (default a new table) as a JSON array, so that an empty one encodes as `[]`.
function M.array(t)
   return setmetatable(t or {}, array_mt)
end

--- Returns a constructor that marks a table as an object whose keys are written in `keys` order.
-- Keys that are nil in the table are omitted.
function M.shape(keys)
   local mt = { json_keys = keys }
   return function(t)
      return setmetatable(t, mt)
   end
end

--- True when `s` is a valid JSON number token (RFC 8259 grammar, bounded length).
function M.is_number_token(s)
   if type(s) ~= "string" or #s == 0 or #s > MAX_TOKEN then
      return false
   end
   local int, rest = s:match("^%-?(%d+)(.*)$")
   if not int or (#int > 1 and int:sub(1, 1) == "0") then
      return false
   end
   rest = rest:gsub("^%.%d+", "", 1)
   rest = rest:gsub("^[eE][+-]?%d+", "", 1)
   return rest == ""
end

--- Wraps a JSON number token so that encode writes it verbatim; nil if `s` is not one.
function M.raw_number(s)
   if not M.is_number_token(s) then
      return nil
   end
   return setmetatable({ token = s }, raw_mt)
end

--- True when `v` was made by M.raw_number.
function M.is_raw_number(v)
   return type(v) == "table" and getmetatable(v) == raw_mt
end

--- The numeric value of a number or raw number (approximate for long raw tokens).
function M.to_number(v)
   if M.is_raw_number(v) then
      return tonumber(v.token)
   end
   return v
end

-- Formats a Lua number as a JSON number token that reads back as the same value.
local function encode_number(n)
   if n ~= n or n == huge or n == -huge then
      error("calypso.mock.json: cannot encode a non-finite number", 0)
   end
   if math_type and math_type(n) == "integer" then
      return format("%d", n)
   end
   if floor(n) == n and n > -2 ^ 63 and n < 2 ^ 63 then
      return format("%.0f", n)
   end
   for digits = 15, 16 do
      local s = format("%." .. digits .. "g", n)
      if tonumber(s) == n then
         return s
      end
   end
   return format("%.17g", n)
end

local escapes = {
   ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

-- Bytes >= 0x80 pass through untouched: recorded request bodies must come back byte-exact.
local function encode_string(s)
   return '"' .. s:gsub('[%c"\\]', function(ch)
      return escapes[ch] or format("\\u%04x", ch:byte())
   end) .. '"'
end

local encode_value

local function encode_array(t, out, depth)
   out[#out + 1] = "["
   for i = 1, #t do
      if i > 1 then
         out[#out + 1] = ","
      end
      encode_value(t[i], out, depth)
   end
   out[#out + 1] = "]"
end

local function encode_pair(k, v, first, out, depth)
   if not first then
      out[#out + 1] = ","
   end
   out[#out + 1] = encode_string(k)
   out[#out + 1] = ":"
   encode_value(v, out, depth)
end

local function sorted_keys(t)
   local keys = {}
   for k in pairs(t) do
      if type(k) ~= "string" then
         error("calypso.mock.json: object keys must be strings, got " .. type(k), 0)
      end
      keys[#keys + 1] = k
   end
   sort(keys)
   return keys
end

local function encode_object(t, keys, out, depth)
   out[#out + 1] = "{"
   local first = true
   for _, k in ipairs(keys) do
      local v = t[k]
      if v ~= nil then
         encode_pair(k, v, first, out, depth)
         first = false
      end
   end
   out[#out + 1] = "}"
end

local function encode_table(t, out, depth)
   local mt = getmetatable(t)
   if mt == raw_mt then
      out[#out + 1] = t.token
   elseif mt == array_mt or (mt == nil and rawget(t, 1) ~= nil) then
      encode_array(t, out, depth)
   elseif mt and mt.json_keys then
      encode_object(t, mt.json_keys, out, depth)
   else
      encode_object(t, sorted_keys(t), out, depth)
   end
end

function encode_value(v, out, depth)
   local tv = type(v)
   if tv == "string" then
      out[#out + 1] = encode_string(v)
   elseif tv == "number" then
      out[#out + 1] = encode_number(v)
   elseif tv == "boolean" then
      out[#out + 1] = tostring(v)
   elseif v == M.null then
      out[#out + 1] = "null"
   elseif tv == "table" then
      if depth >= MAX_DEPTH then
         error("calypso.mock.json: nesting too deep (cycle?)", 0)
      end
      encode_table(v, out, depth + 1)
   else
      error("calypso.mock.json: cannot encode a " .. tv, 0)
   end
end

--- Encodes `v` to a JSON string; raises on values JSON cannot hold.
function M.encode(v)
   local out = {}
   encode_value(v, out, 0)
   return concat(out)
end

--- Decodes a JSON text; returns the value, or nil and a message.
function M.decode(s)
   local ok, v = pcall(decoder.decode, s)
   if not ok then
      return nil, tostring(v)
   end
   return v
end

return M

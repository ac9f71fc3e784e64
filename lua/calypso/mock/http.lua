-- calypso.mock.http: the HTTP/1.1 wire format of the mock, without any I/O: parsing a request
-- head strictly (a bare CR or LF, a folded or malformed header line, Transfer-Encoding or a
-- version other than 1.x is refused with a status) and formatting a response head.
-- calypso.mock.conn feeds it the bytes it reads and writes what it returns.

local json = require("calypso.mock.json")

local M = {}

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, concat = string.format, table.concat
local floor = math.floor

M.MAX_HEAD = 64 * 1024          -- request line + headers
local MAX_HEADERS = 100
M.MAX_BODY = 16 * 1024 * 1024   -- the largest request the client can build (~8 MiB) fits
local MAX_BODY = M.MAX_BODY

local REASONS = {
   [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
   [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
   [405] = "Method Not Allowed", [408] = "Request Timeout", [411] = "Length Required",
   [413] = "Payload Too Large", [429] = "Too Many Requests",
   [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
   [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

-- RFC 7231 IMF-fixdate; names are spelled out so the C locale is not assumed.
local function http_date(ms)
   local t = os.date("!*t", floor(ms / 1000))
   return format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[t.wday], t.day, MONTHS[t.month],
      t.year, t.hour, t.min, t.sec)
end
---------------------------------------------------------------------------------------------
-- Request parsing
---------------------------------------------------------------------------------------------

local TOKEN = "[%w!#$%%&'*+%-.^_`|~]+"

-- Parses header lines into a table with lowercased names (repeats joined with ", "), and
-- the names as sent, in order.
local function parse_header_lines(text)
   if text:gsub("\r\n", ""):find("[\r\n]") then
      return nil -- bare CR or LF: refuse rather than guess where lines end
   end
   local headers, names, count = {}, json.array(), 0
   for line in text:gmatch("([^\r\n]*)\r\n") do
      local name, value = line:match("^(" .. TOKEN .. "):[ \t]*(.-)[ \t]*$")
      count = count + 1
      if not name or count > MAX_HEADERS then
         return nil
      end
      names[count] = name
      name = name:lower()
      headers[name] = headers[name] and headers[name] .. ", " .. value or value
   end
   return headers, names
end

-- Framing and connection semantics of a parsed head; returns nil and an HTTP status on error.
local function check_framing(req)
   local h = req.headers
   if h["transfer-encoding"] then
      return nil, 411
   end
   local length = h["content-length"] or "0"
   if not length:match("^%d+$") then
      return nil, 400
   end
   if #length > 9 or tonumber(length) > MAX_BODY then
      return nil, 413
   end
   req.length = tonumber(length)
   local connection = (h["connection"] or ""):lower()
   if req.minor >= 1 then
      req.keep_alive = not connection:find("close", 1, true)
   else
      req.keep_alive = connection:find("keep-alive", 1, true) ~= nil
   end
   req.expect_continue = (h["expect"] or ""):lower() == "100-continue"
   return req
end

-- Parses the request head at the start of `buf`. Returns the request and the head length,
-- nothing when the head is incomplete, or nil, nil, status when it is invalid.
function M.parse_head(buf)
   local stop = buf:find("\r\n\r\n", 1, true)
   if not stop then
      return nil
   end
   local first_end = buf:find("\r\n", 1, true)
   local method, target, major, minor =
      buf:sub(1, first_end - 1):match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
   local headers, names
   if method then
      headers, names = parse_header_lines(buf:sub(first_end + 2, stop + 1))
   end
   if not headers or major ~= "1" then
      return nil, nil, 400
   end
   local req, status = check_framing({
      method = method, target = target, path = target:gsub("%?.*$", ""),
      minor = tonumber(minor), headers = headers, header_names = names,
   })
   if not req then
      return nil, nil, status
   end
   return req, stop + 3
end

---------------------------------------------------------------------------------------------
-- Response head
---------------------------------------------------------------------------------------------

-- Header names the caller of a "raw" fault may set that change message framing; if set, the
-- connection is closed after the answer because the byte stream can no longer be trusted.
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

--- Builds a response head dated `now_ms` (epoch milliseconds); `extra` (name -> value) overrides
-- the default headers. Returns the head and whether the connection stays open: `keep_alive`,
-- unless `extra` sets a header that changes the framing.
function M.response_head(status, length, content_type, extra, keep_alive, now_ms)
   local list = {
      { "Date", http_date(now_ms) },
      { "Content-Type", content_type },
      { "Content-Length", tostring(length) },
      { "Connection", "" }, -- filled below, once keep-alive is final
   }
   for name, value in pairs(extra or {}) do
      local lname = name:lower()
      if FRAMING[lname] then
         keep_alive = false
      end
      local replaced = false
      if type(value) == "number" then
         value = json.encode(value) -- 5 rather than 5.0 for numbers decoded on Lua 5.3+
      end
      for _, h in ipairs(list) do
         if h[1]:lower() == lname then
            h[1], h[2], replaced = name, tostring(value), true
         end
      end
      if not replaced then
         list[#list + 1] = { name, tostring(value) }
      end
   end
   local lines = { format("HTTP/1.1 %d %s", status, REASONS[status] or "Status") }
   for _, h in ipairs(list) do
      if h[1] == "Connection" and h[2] == "" then
         h[2] = keep_alive and "keep-alive" or "close"
      end
      lines[#lines + 1] = h[1] .. ": " .. h[2]
   end
   return concat(lines, "\r\n") .. "\r\n\r\n", keep_alive
end

return M

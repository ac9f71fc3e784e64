---@meta calypso.http1
-- LuaCATS annotations for calypso.http1 (docs/reference.md, "calypso.http1").

---@class calypso.http1.Response
---@field status integer
---@field body string
---@field close boolean? the connection must not be reused
---@field date string?
---@field retry_after string?

---@class calypso.http1.Failure
---@field kind "network"|"timeout"|"too_large"
---@field detail string
---@field nothing boolean? no byte arrived before the connection ended
---@field head table? status, date, retry_after once the head was read

---@class calypso.http1
local http1 = {}

--- Reads one HTTP/1.1 response from a cosocket-like object.
---@param sock any with receiveany(max) and settimeout(ms)
---@param deadline number
---@param now fun(): number
---@param max_body integer
---@param armed number?
---@return calypso.http1.Response? res
---@return calypso.http1.Failure? f
function http1.read(sock, deadline, now, max_body, armed) end

---@type integer
http1.MAX_HEAD_BYTES = 65536
---@type integer
http1.MAX_HEADERS = 100
---@type integer
http1.MAX_INTERIM = 10
---@type integer
http1.READ_SIZE = 65536

return http1

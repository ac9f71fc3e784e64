-- calypso.mock.request_log: the last API requests the mock received, for GET /_mock/requests:
-- a ring buffer of `size` entries { method, path, headers, header_names, body[, truncated] },
-- each body cut at 64 KiB. Control requests (/_mock/...) are never recorded.

local json = require("calypso.mock.json")

local M = {}

local setmetatable = setmetatable
local max = math.max

M.DEFAULT_SIZE = 200                -- API requests kept unless request_log_size says otherwise
M.MAX_SIZE = 100000
local RECORD_BODY_LIMIT = 64 * 1024 -- bytes of each recorded body

local Log = {}
Log.__index = Log

--- An empty log that keeps the last `size` requests (0 keeps none).
function M.new(size)
   return setmetatable({ size = size, records = {}, count = 0 }, Log)
end

--- Appends an API request (as calypso.mock.http parsed it, with its body).
function Log:add(req)
   local size = self.size
   if size == 0 then
      return
   end
   local body = req.body
   local rec = { method = req.method, path = req.target, headers = req.headers,
                 header_names = req.header_names, body = body }
   if #body > RECORD_BODY_LIMIT then
      rec.body, rec.truncated = body:sub(1, RECORD_BODY_LIMIT), true
   end
   self.count = self.count + 1
   self.records[(self.count - 1) % size + 1] = rec
end

--- The recorded requests, oldest first, as a JSON array.
function Log:list()
   local list = json.array()
   local size = self.size
   for n = max(1, self.count - size + 1), self.count do
      list[#list + 1] = self.records[(n - 1) % size + 1]
   end
   return list
end

return M

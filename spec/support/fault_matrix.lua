-- The fault matrix: every way a network or server misbehaves that the suite provokes over
-- real sockets, and what the caller must get. spec/faults_spec.lua asserts each row;
-- spec/secrets_spec.lua replays them all looking for the secret and the Sign value.
--
-- A row: name, how to provoke it (`fault` queued on the mock, or `refuse` for a port nobody
-- listens on), `op` (the method called: "get_customer", a read that rides on the kept-alive
-- connection, or "create_customer", a write that always opens a fresh one), and the outcome:
-- `kind` (the exact err.kind) or `ok = true` with a `check(res, customer)`.
-- `slow` rows wait for the client's timeout; `quick` rows run again in a child process;
-- `if_gzip` is the outcome when the client asks for compressed answers (see M.expect).
local M = {}

local rep = string.rep
local assert = require "luassert"

M.DEFAULT_MAX_RESPONSE = 8 * 1024 * 1024

--- gzip-compresses `s` with the system's gzip (always present on Debian); binary safe.
function M.gzip(s)
   local name = os.tmpname()
   local f = assert(io.open(name, "wb"))
   f:write(s)
   f:close()
   local p = assert(io.popen("gzip -c -n < '" .. name .. "'", "r"))
   local out = p:read("*a")
   p:close()
   os.remove(name)
   assert(out:sub(1, 2) == "\31\139", "gzip produced no gzip stream")
   return out
end

-- `depth` nested JSON objects around a customer-shaped leaf: {"a":{"a":...{"id":..}}}
local function nested_objects(depth, leaf)
   return rep('{"a":', depth - 1) .. leaf .. rep("}", depth - 1)
end

--- The row as expected from a client that does (true) or does not send Accept-Encoding.
-- The core sends none (an API body is a few hundred bytes), so libcurl hands compressed bytes
-- over as they came and never inflates them; `if_gzip` says what changes if that ever changes.
function M.expect(row, accepts_gzip)
   if not (accepts_gzip and row.if_gzip) then return row end
   local r = {}
   for k, v in pairs(row) do r[k] = v end
   r.ok, r.kind, r.check = row.if_gzip.ok, row.if_gzip.kind, row.if_gzip.check
   return r
end

--- The fault table of a row, for a customer the mock knows ({ id, email }).
function M.fault(row, customer)
   if type(row.fault) == "function" then return row.fault(customer) end
   return row.fault
end

local cjson = require "cjson"
local function customer_body(customer)
   return cjson.encode({ id = customer.id, email = customer.email, blocked = false })
end
local function is_customer(res, customer)
   assert.are.equal(customer.id, res.id)
   assert.are.equal(customer.email, res.email)
end
local function raw(b, extra)
   local f = { mode = "raw", status = 200, body = b }
   for k, v in pairs(extra or {}) do f[k] = v end
   return f
end
-- A raw fault whose body is made from the customer's JSON by `make` (identity by default).
local function raw_c(make, extra)
   return function(customer)
      local body = customer_body(customer)
      return raw(make and make(body, customer) or body, extra)
   end
end
local big_gzip
local function gzip_bomb()
   big_gzip = big_gzip or M.gzip('{"pad":"' .. rep("0", 9 * 1024 * 1024) .. '"}')
   return raw(big_gzip, { headers = { ["Content-Encoding"] = "gzip" } })
end

--- The rows (a new list each time: callers may annotate them).
function M.cases()
   return {
      -- connection level
      { name = "refused: nothing listens on the port", refuse = true, kind = "connect", sent = false },
      { name = "accept, then close before reading", op = "create_customer",
        fault = { mode = "accept_close" }, kind = "network" },
      { name = "accept, then reset before reading", op = "create_customer",
        fault = { mode = "accept_close", rst = true }, kind = "network" },
      { name = "a write read in full, then closed without an answer", op = "create_customer",
        fault = { mode = "close" }, kind = "network", sent = true, quick = true },
      { name = "a read whose kept-alive connection closes unanswered: libcurl resends it",
        fault = { mode = "close" }, ok = true, check = is_customer },
      { name = "reset mid-body (Content-Length promised, half sent, RST)",
        fault = { mode = "partial", after = "reset" }, kind = "network", sent = true, quick = true },
      { name = "closed mid-body (Content-Length promised, half sent, FIN)",
        fault = { mode = "partial", after = "close" }, kind = "network", sent = true, quick = true },
      { name = "closed mid-chunk (chunked, cut before the last chunk)",
        fault = { mode = "wire", after = "close",
                  data = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"id\":\"3fa85f64-" },
        kind = "network", quick = true },
      { name = "garbage instead of an HTTP answer", fault = { mode = "wire", data = "SSH-2.0-OpenSSH_9.2\r\n" },
        kind = "network", quick = true },
      { name = "response headers over libcurl's 100 KiB limit",
        fault = { mode = "wire", data = "HTTP/1.1 200 OK\r\nX-Pad: " .. rep("a", 200 * 1024) .. "\r\n\r\n" },
        kind = "network", quick = true },
      -- time
      { name = "stall before headers", fault = { mode = "stall" }, kind = "timeout", sent = true, slow = true },
      { name = "stall after headers", fault = { mode = "partial", bytes = 0, after = "stall" },
        kind = "timeout", slow = true },
      { name = "stall mid-body", fault = { mode = "partial", after = "stall" }, kind = "timeout", slow = true },
      { name = "body trickled slower than `timeout` (1 byte / 50 ms)",
        fault = { mode = "trickle", chunk = 1, interval = 0.05 }, kind = "timeout", slow = true },
      -- body shape
      { name = "truncated JSON", fault = { mode = "malformed" }, kind = "decode", status = 200, quick = true },
      { name = "truncated JSON, complete HTTP message", fault = raw_c(function(b) return b:sub(1, #b - 5) end),
        kind = "decode", status = 200, quick = true },
      { name = "a JSON array at top level", fault = raw_c(function(b) return "[" .. b .. "]" end),
        kind = "decode", quick = true },
      { name = "a JSON string at top level", fault = raw_c(function(_, c) return '"' .. c.id .. '"' end),
        kind = "decode", quick = true },
      { name = "a JSON number at top level", fault = raw("42"), kind = "decode", quick = true },
      { name = "JSON null at top level", fault = raw("null"), kind = "decode", quick = true },
      { name = "JSON true at top level", fault = raw("true"), kind = "decode", quick = true },
      { name = "an empty 200 body", fault = raw(""), kind = "decode", quick = true },
      { name = "objects nested 64 deep (the decoder's limit)",
        fault = raw_c(function(b) return nested_objects(64, b) end), ok = true, quick = true, check = function(res, c)
           local t = res
           for _ = 1, 63 do t = t.a end
           is_customer(t, c)
        end },
      { name = "objects nested 65 deep", fault = raw_c(function(b) return nested_objects(65, b) end),
        kind = "decode", quick = true },
      { name = "arrays nested 500000 deep", fault = raw(rep("[", 500000) .. rep("]", 500000)),
        kind = "decode", quick = true },
      { name = "invalid UTF-8 in a string",
        fault = raw_c(function(_, c) return '{"id":"' .. c.id .. '","email":"a\255\254b"}' end),
        kind = "decode", quick = true },
      { name = "invalid UTF-8 opening a string",
        fault = raw_c(function(_, c) return '{"id":"' .. c.id .. '","email":"\255a"}' end),
        kind = "decode", quick = true },
      { name = "a lone UTF-16 surrogate escape",
        fault = raw_c(function(_, c) return '{"id":"' .. c.id .. '","email":"\\ud800"}' end),
        kind = "decode", quick = true },
      { name = "a NUL byte, then more JSON, after the object",
        fault = raw_c(function(b) return b .. '\0{"id":"evil"}' end), kind = "decode", quick = true },
      { name = "duplicate keys: the last one wins",
        fault = raw_c(function(_, c) return '{"id":"x","email":"first@example.com","id":"' .. c.id
                                            .. '","email":"' .. c.email .. '"}' end),
        ok = true, check = is_customer, quick = true },
      -- size
      { name = "a body of exactly max_response_size (8 MiB)",
        fault = { mode = "huge", size = M.DEFAULT_MAX_RESPONSE }, ok = true, check = function(res)
           assert.are.equal(M.DEFAULT_MAX_RESPONSE - 10, #res.pad)
        end },
      { name = "a body one byte over max_response_size", fault = { mode = "huge", size = M.DEFAULT_MAX_RESPONSE + 1 },
        kind = "too_large", sent = true },
      { name = "a chunked 9 MiB body (no Content-Length to judge by)",
        fault = { mode = "huge", chunk = 65536 }, kind = "too_large" },
      { name = "a gzip bomb: 9 KiB that would inflate past 8 MiB",
        fault = gzip_bomb, kind = "decode", if_gzip = { kind = "too_large" } },
      -- status and headers
      { name = "an HTML 503 page", fault = { mode = "html503" },
        kind = "http", status = 503, retryable = true, quick = true },
      { name = "an HTML 500 page", fault = raw("<html><body>Internal Server Error</body></html>",
        { status = 500, content_type = "text/html" }), kind = "http", status = 500, retryable = false, quick = true },
      { name = "an HTML 502 page", fault = raw("<html><body>Bad Gateway</body></html>",
        { status = 502, content_type = "text/html" }), kind = "http", status = 502, retryable = true, quick = true },
      { name = "429 with Retry-After and no body",
        fault = raw("", { status = 429, headers = { ["Retry-After"] = "7" } }),
        kind = "http", status = 429, retryable = true, retry_after = "7", quick = true },
      { name = "429 with Retry-After and a Calypso error body",
        fault = raw('{"errorCode":"000","message":"Too many requests"}',
                    { status = 429, headers = { ["Retry-After"] = "30" } }),
        kind = "api", status = 429, retryable = true, retry_after = "30", quick = true },
      { name = "JSON labelled text/html (REFERENCE open question 19)",
        fault = raw_c(nil, { content_type = "text/html; charset=utf-8" }),
        ok = true, check = is_customer, quick = true },
      { name = "JSON labelled application/octet-stream",
        fault = raw_c(nil, { content_type = "application/octet-stream" }),
        ok = true, check = is_customer, quick = true },
      -- encodings
      { name = "chunked transfer encoding, 16-byte chunks", fault = { mode = "chunked" }, ok = true,
        check = is_customer, quick = true },
      { name = "chunked, one byte per chunk", fault = { mode = "chunked", chunk = 1 }, ok = true,
        check = is_customer, quick = true },
      { name = "gzip content encoding", fault = raw_c(M.gzip, { headers = { ["Content-Encoding"] = "gzip" } }),
        kind = "decode", quick = true, if_gzip = { ok = true, check = is_customer } },
      { name = "gzip and chunked together",
        fault = raw_c(M.gzip, { chunk = 7, headers = { ["Content-Encoding"] = "gzip" } }),
        kind = "decode", quick = true, if_gzip = { ok = true, check = is_customer } },
      { name = "a body trickled within `timeout` (20 bytes / 10 ms)",
        fault = { mode = "trickle", chunk = 20, interval = 0.01 }, ok = true, check = is_customer },
      { name = "Content-Encoding: gzip on a body that is not gzip",
        fault = raw_c(nil, { headers = { ["Content-Encoding"] = "gzip" } }), ok = true, check = is_customer,
        quick = true, if_gzip = { kind = "network" } },
   }
end

return M

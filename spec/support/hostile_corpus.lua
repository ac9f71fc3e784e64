-- The hostile corpus: malformed, slow and oversized HTTP/1.1 answers, one case per entry, each
-- with the err.kind the caller must get (or "ok": the result).
--
-- Replayed three ways:
--   spec/http1_reader_spec.lua  against calypso.http1 directly, through a fake socket with a
--                               virtual clock (plain busted, every runtime);
--   spec/hostile_spec.lua       through nginx (calypso.transport.ngx over cosockets) and through
--                               the libcurl path (calypso.purse), both against
--                               spec/support/hostile_server.lua on 127.0.0.1 / ::1.
--
-- A case: name, `steps` (what the server does once it has read the request), `kind`, and
-- optionally:
--   timeout   the client's timeout in seconds (default 5; the slow cases use 1)
--   max       the client's max_response_size (default 8 MiB)
--   curl      the kind the libcurl path gives when it differs, with `why` (README fault table)
--   memory    an endless or huge answer: the nginx stage measures the worker's peak RSS growth
--   slow      the case waits for the client's timeout
--   ipv6      the client's base_url is http://[::1]:port
--   status    for answers the reader accepts: the status it must give (default 200)
-- Steps: a string (sent as is), { sleep = s } (send nothing for s seconds, connection open),
-- { fill = text, bytes = n } (text repeated up to n bytes, sent as fast as the peer reads),
-- { trickle = text, every = s, forever = true|nil } (one byte every s seconds; forever: the
-- text again and again). After the last step the server closes the connection.
-- The reader-level expectation: kinds network / timeout / too_large are the reader's own
-- failures; "ok", "decode" and "http" are answers the reader hands over (the core decides).
local M = {}

M.OP = "get_customers_by_external_id"
M.PAYLOAD = { externalId = "hostile" }
M.BODY = '{"customers":[]}'
M.DEFAULT_TIMEOUT = 5
M.SLOW_TIMEOUT = 1
-- How much an endless answer sends at most (the server stops earlier when the client hangs
-- up). CALYPSO_HOSTILE_BYTES overrides it (e.g. a smaller figure to measure the old reader).
M.ENDLESS = tonumber(os.getenv("CALYPSO_HOSTILE_BYTES") or "") or 1024 * 1024 * 1024
M.TRICKLE = 0.2 -- seconds between two bytes of a trickle

local B = M.BODY
local function cl(status_line, body, extra)
   return status_line .. "\r\n" .. (extra or "") .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end
local OK = "HTTP/1.1 200 OK"
local CHUNKED = OK .. "\r\nTransfer-Encoding: chunked\r\n\r\n"
local function chunked_body(s) return ("%x\r\n%s\r\n0\r\n\r\n"):format(#s, s) end
local function endless(text) return { fill = text, bytes = M.ENDLESS } end
local function trickle(text, forever) return { trickle = text, every = M.TRICKLE, forever = forever } end

M.cases = {
   -- sanity: well-formed answers in every framing
   { name = "ok_content_length", steps = { cl(OK, B) }, kind = "ok" },
   { name = "ok_chunked", steps = { CHUNKED .. "5\r\n" .. B:sub(1, 5) .. "\r\nb\r\n" .. B:sub(6) .. "\r\n0\r\n\r\n" },
     kind = "ok" },
   { name = "ok_to_close_http10", steps = { "HTTP/1.0 200 OK\r\n\r\n" .. B }, kind = "ok" },
   { name = "ok_no_reason_phrase", steps = { cl("HTTP/1.1 200", B) }, kind = "ok" },
   { name = "ok_bare_lf", steps = { "HTTP/1.1 200 OK\nContent-Length: " .. #B .. "\n\n" .. B }, kind = "ok" },
   { name = "ok_ipv6_literal", steps = { cl(OK, B) }, kind = "ok", ipv6 = true },
   { name = "ok_in_packets", steps = { "HTTP/1.1 2", { sleep = 0.05 }, "00 OK\r\nContent-", { sleep = 0.05 },
     "Length: 16\r\n\r", { sleep = 0.05 }, "\n{\"customers\"", { sleep = 0.05 }, ":[]}" }, kind = "ok" },
   { name = "ok_trickle_within_timeout", steps = { { trickle = cl(OK, B), every = 0.02 } }, kind = "ok",
     timeout = 10 },
   { name = "http_503_page", steps = { cl("HTTP/1.1 503 Service Unavailable", "<html>busy</html>",
     "Retry-After: 7\r\n") }, kind = "http", status = 503 },

   -- the status line
   { name = "status_four_digits", steps = { cl("HTTP/1.1 2000 OK", B) }, kind = "network" },
   { name = "status_twenty_digits", steps = { cl("HTTP/1.1 12345678901234567890 OK", B) }, kind = "network" },
   { name = "status_two_digits", steps = { cl("HTTP/1.1 20 OK", B) }, kind = "network" },
   { name = "status_000", steps = { cl("HTTP/1.1 000 OK", B), { sleep = 3 } }, kind = "network" },
   { name = "status_099", steps = { cl("HTTP/1.1 099 OK", B), { sleep = 3 } }, kind = "network" },
   { name = "status_not_digits", steps = { cl("HTTP/1.1 2x0 OK", B) }, kind = "network" },
   { name = "status_two_spaces", curl = "ok", why = "libcurl skips any run of spaces after the version", steps = { cl("HTTP/1.1  200 OK", B) }, kind = "network" },
   { name = "status_tab", steps = { cl("HTTP/1.1\t200 OK", B) }, kind = "network" },
   { name = "status_http2", curl = "ok", why = "libcurl takes an HTTP/2.0 status line on an HTTP/1.1 connection", steps = { cl("HTTP/2.0 200 OK", B) }, kind = "network" },
   { name = "status_http12", steps = { cl("HTTP/1.2 200 OK", B) }, kind = "network" },
   { name = "status_http09_lowercase", curl = "ok", why = "libcurl matches the version case-insensitively", steps = { cl("http/1.1 200 OK", B) }, kind = "network" },
   { name = "status_leading_space", steps = { cl(" HTTP/1.1 200 OK", B) }, kind = "network" },
   { name = "not_http", steps = { "SSH-2.0-OpenSSH_9.2\r\n" }, kind = "network" },
   { name = "empty_reply", steps = {}, kind = "network" },
   { name = "closed_after_status_line", curl = "decode", why = "libcurl takes a connection closed after the status line as the end of an empty answer", steps = { OK .. "\r\n" }, kind = "network" },

   -- interim answers
   { name = "interim_100_then_200", steps = { "HTTP/1.1 100 Continue\r\n\r\n" .. cl(OK, B) }, kind = "ok" },
   { name = "interim_103_with_headers", steps = { "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
     .. cl(OK, B) }, kind = "ok" },
   { name = "interim_101_unasked", curl = "http", why = "libcurl returns the 101 as the answer (kind http)", steps = { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
     .. "Connection: Upgrade\r\n\r\n" .. cl(OK, B) }, kind = "network" },
   { name = "interim_too_many", curl = "ok", why = "libcurl skips any number of 1xx answers", steps = { ("HTTP/1.1 100 Continue\r\n\r\n"):rep(11) .. cl(OK, B) },
     kind = "network" },

   -- header lines
   { name = "header_without_colon", steps = { cl(OK, B, "Just a line\r\n") }, kind = "network" },
   { name = "header_space_before_colon", curl = "ok", why = "libcurl accepts whitespace before the colon", steps = { cl(OK, B, "X-Thing : 1\r\n") }, kind = "network" },
   { name = "header_empty_name", curl = "ok", why = "libcurl accepts a header line with an empty name", steps = { cl(OK, B, ": nothing\r\n") }, kind = "network" },
   { name = "header_fold_of_other", steps = { cl(OK, B, "X-Long: a\r\n  b\r\n") }, kind = "ok" },
   { name = "header_fold_first", steps = { OK .. "\r\n  folded\r\nContent-Length: 16\r\n\r\n" .. B },
     kind = "network" },
   { name = "header_fold_content_length", steps = { OK .. "\r\nContent-Length:\r\n 16\r\n\r\n" .. B },
     kind = "network" },
   { name = "header_line_70k", curl = "ok", why = "libcurl's head limit is 100 KiB, ours 64 KiB", steps = { cl(OK, B, "X-Big: " .. ("a"):rep(70 * 1024) .. "\r\n") },
     kind = "network" },
   { name = "headers_101", curl = "ok", why = "libcurl has no header line count limit, only its 100 KiB head limit", steps = { cl(OK, B, ("X-N: 1\r\n"):rep(101)) }, kind = "network" },
   { name = "head_over_64k", curl = "ok", why = "libcurl's head limit is 100 KiB, ours 64 KiB", steps = { cl(OK, B, ("X-Pad: " .. ("p"):rep(1000) .. "\r\n"):rep(70)) },
     kind = "network" },

   -- Content-Length
   { name = "content_length_differing", curl = "ok", why = "libcurl uses one of differing Content-Length values", steps = { OK .. "\r\nContent-Length: 16\r\nContent-Length: 17\r\n\r\n"
     .. B .. " " }, kind = "network" },
   { name = "content_length_list_same", steps = { OK .. "\r\nContent-Length: 16, 16\r\n\r\n" .. B },
     kind = "ok" },
   { name = "content_length_list_differing", curl = "ok", why = "libcurl reads the first number of a Content-Length list", steps = { OK .. "\r\nContent-Length: 16, 17\r\n\r\n" .. B .. " " },
     kind = "network" },
   { name = "content_length_plus", curl = "ok", why = "libcurl parses Content-Length with strtoll (a sign is accepted)", steps = { OK .. "\r\nContent-Length: +16\r\n\r\n" .. B }, kind = "network" },
   { name = "content_length_negative", steps = { OK .. "\r\nContent-Length: -1\r\n\r\n" .. B }, kind = "network" },
   { name = "content_length_hex", curl = "decode", why = "libcurl reads 0x10 as 0 (strtoll stops at x): an empty body", steps = { OK .. "\r\nContent-Length: 0x10\r\n\r\n" .. B }, kind = "network" },
   { name = "content_length_empty", steps = { OK .. "\r\nContent-Length: \r\n\r\n" .. B }, kind = "network" },
   { name = "content_length_short_body", steps = { OK .. "\r\nContent-Length: 100\r\n\r\n" .. B },
     kind = "network" },
   { name = "content_length_over_max", steps = { cl(OK, B .. (" "):rep(2000)) }, kind = "too_large", max = 1024 },
   { name = "content_length_huge", curl = "ok", why = "libcurl ignores an overflowing Content-Length and reads to the close", steps = { OK .. "\r\nContent-Length: 99999999999999999999999\r\n\r\n" .. B },
     kind = "too_large" },

   -- Transfer-Encoding
   { name = "te_xchunked", steps = { OK .. "\r\nTransfer-Encoding: xchunked\r\n\r\n" .. chunked_body(B) },
     kind = "network" },
   { name = "te_chunked_gzip", steps = { OK .. "\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" .. chunked_body(B) },
     kind = "network" },
   { name = "te_gzip_chunked", steps = { OK .. "\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" .. chunked_body(B) },
     kind = "network" },
   { name = "te_identity", curl = "ok", why = "libcurl ignores Transfer-Encoding: identity", steps = { OK .. "\r\nTransfer-Encoding: identity\r\n\r\n" .. B }, kind = "network" },
   { name = "te_chunked_uppercase", steps = { OK .. "\r\nTransfer-Encoding: CHUNKED\r\n\r\n" .. chunked_body(B) },
     kind = "ok" },
   { name = "te_chunked_and_content_length", steps = { OK .. "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     .. chunked_body(B) }, kind = "ok" },
   { name = "te_in_http10", curl = "ok", why = "libcurl decodes chunked in an HTTP/1.0 answer", steps = { "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunked_body(B) },
     kind = "network" },

   -- chunked framing
   { name = "chunk_size_0x", steps = { CHUNKED .. "0x10\r\n" .. B .. "\r\n0\r\n\r\n" }, kind = "network" },
   { name = "chunk_size_leading_space", steps = { CHUNKED .. " 10\r\n" .. B .. "\r\n0\r\n\r\n" }, kind = "network" },
   { name = "chunk_size_negative", steps = { CHUNKED .. "-10\r\n" .. B .. "\r\n0\r\n\r\n" }, kind = "network" },
   { name = "chunk_size_empty", steps = { CHUNKED .. "\r\n" .. B .. "\r\n0\r\n\r\n" }, kind = "network" },
   { name = "chunk_size_17_digits", steps = { CHUNKED .. "00000000000000010\r\n" .. B .. "\r\n0\r\n\r\n" },
     kind = "network" },
   { name = "chunk_size_huge", curl = "network", why = "libcurl reads the announced chunk until the connection ends, then reports it cut short", steps = { CHUNKED .. "ffffffffffffff\r\n" .. B .. "\r\n0\r\n\r\n" },
     kind = "too_large" },
   { name = "chunk_extension", steps = { CHUNKED .. "10;name=\"value\"\r\n" .. B .. "\r\n0;last\r\n\r\n" },
     kind = "ok" },
   { name = "chunk_without_crlf", steps = { CHUNKED .. "10\r\n" .. B .. "XX0\r\n\r\n" }, kind = "network" },
   { name = "chunk_trailer", steps = { CHUNKED .. "10\r\n" .. B .. "\r\n0\r\nX-Trailer: 1\r\n\r\n" }, kind = "ok" },
   { name = "chunked_cut_short", steps = { CHUNKED .. "10\r\n" .. B:sub(1, 8) }, kind = "network" },
   { name = "chunked_no_last_chunk", steps = { CHUNKED .. "10\r\n" .. B .. "\r\n" }, kind = "network" },
   { name = "chunked_over_max", steps = { CHUNKED .. ("400\r\n" .. (" "):rep(1024) .. "\r\n"):rep(3) .. "0\r\n\r\n" },
     kind = "too_large", max = 2048 },

   -- bodies and encodings
   { name = "gzip_body", steps = { cl(OK, "\31\139\8\0\0\0\0\0\0\3\171\174\5\0\67\191\166\163\2\0\0\0",
     "Content-Encoding: gzip\r\n") }, kind = "decode" },
   { name = "gzip_header_plain_body", steps = { cl(OK, B, "Content-Encoding: gzip\r\n") }, kind = "ok" },
   { name = "to_close_over_max", steps = { "HTTP/1.1 200 OK\r\n\r\n" .. B .. (" "):rep(4096) }, kind = "too_large",
     max = 1024 },
   { name = "extra_bytes_after_body", steps = { cl(OK, B) .. cl(OK, '{"customers":[{"id":"stale"}]}') }, kind = "ok" },

   -- endless answers (memory): the read must stop at a limit, not at the end of the line
   { name = "endless_status_line", steps = { "HTTP/1.1 200 OK", endless("a") }, kind = "network", memory = true },
   { name = "endless_header_line", steps = { OK .. "\r\nX-Big: ", endless("a") }, kind = "network", memory = true },
   { name = "endless_headers", steps = { OK .. "\r\n", endless("X-N: 1\r\n") }, kind = "network", memory = true },
   { name = "endless_interim", steps = { endless("HTTP/1.1 100 Continue\r\n\r\n") }, kind = "network",
     memory = true },
   { name = "endless_chunk_size", steps = { CHUNKED .. "1", endless("0") }, kind = "network", memory = true },
   { name = "endless_chunk_extension", steps = { CHUNKED .. "10;x=", endless("a") }, kind = "network",
     memory = true },
   { name = "endless_trailer_line", steps = { CHUNKED .. "10\r\n" .. B .. "\r\n0\r\nX-T: ", endless("a") },
     kind = "network", memory = true },
   { name = "endless_trailers", curl = "timeout", why = "libcurl reads any number of trailer lines, until the timeout", steps = { CHUNKED .. "10\r\n" .. B .. "\r\n0\r\n", endless("X-T: 1\r\n") },
     kind = "network", memory = true },
   { name = "endless_chunks", steps = { CHUNKED, endless("1\r\na\r\n") }, kind = "too_large", max = 65536,
     memory = true },
   { name = "endless_body_to_close", steps = { "HTTP/1.1 200 OK\r\n\r\n", endless("a") }, kind = "too_large",
     max = 65536, memory = true },

   -- trickles and stalls (time): `timeout` bounds the whole call
   { name = "trickle_status_line", steps = { trickle("HTTP/1.1 200 OK", true) }, kind = "timeout", slow = true },
   { name = "trickle_header_line", steps = { OK .. "\r\nX-Slow: ", trickle("a", true) }, kind = "timeout",
     slow = true },
   { name = "trickle_headers", steps = { OK .. "\r\n", trickle("X-N: 1\r\n", true) }, kind = "timeout",
     slow = true },
   { name = "trickle_interim", steps = { trickle("HTTP/1.1 100 Continue\r\n\r\n", true) }, kind = "timeout",
     slow = true },
   { name = "trickle_body", steps = { OK .. "\r\nContent-Length: 100000\r\n\r\n", trickle(" ", true) },
     kind = "timeout", slow = true },
   { name = "trickle_body_to_close", steps = { "HTTP/1.1 200 OK\r\n\r\n", trickle(" ", true) }, kind = "timeout",
     slow = true },
   { name = "trickle_chunks", steps = { CHUNKED, trickle("1\r\na\r\n", true) }, kind = "timeout", slow = true },
   { name = "trickle_chunk_extension", steps = { CHUNKED .. "10;", trickle("a", true) }, kind = "timeout",
     slow = true },
   { name = "trickle_trailer", steps = { CHUNKED .. "10\r\n" .. B .. "\r\n0\r\n", trickle("X-T: 1\r\n", true) },
     kind = "timeout", slow = true },
   { name = "stall_before_status", steps = { { sleep = 4 } }, kind = "timeout", slow = true },
   { name = "stall_after_head", steps = { OK .. "\r\nContent-Length: 16\r\n\r\n", { sleep = 4 } }, kind = "timeout",
     slow = true },
   { name = "stall_mid_chunk", steps = { CHUNKED .. "10\r\n{\"cus", { sleep = 4 } }, kind = "timeout", slow = true },
}

for _, c in ipairs(M.cases) do
   if c.slow then c.timeout = c.timeout or M.SLOW_TIMEOUT end
   c.timeout = c.timeout or M.DEFAULT_TIMEOUT
end

--- The case called `name`.
function M.get(name)
   for _, c in ipairs(M.cases) do
      if c.name == name then return c end
   end
   return nil
end

--- True when the reader itself must fail on this case (with c.kind).
function M.reader_fails(c)
   return c.kind == "network" or c.kind == "timeout" or c.kind == "too_large"
end

--- The bytes of a step list as a lazy source: returns an iterator over
-- { data = s } and { sleep = s } events (fill and trickle steps expanded lazily), so that a
-- 1 GiB answer is never held in memory. `block`: the largest piece of a fill (64 KiB).
function M.events(steps, block)
   block = block or 65536
   local i, pending = 0, nil
   return function()
      while true do
         if pending then
            local ev = pending()
            if ev then return ev end
            pending = nil
         end
         i = i + 1
         local s = steps[i]
         if s == nil then return nil end
         if type(s) == "string" then
            if #s > 0 then return { data = s } end
         elseif s.sleep then
            return { sleep = s.sleep }
         elseif s.fill then
            local unit = s.fill
            local piece = unit:rep(math.max(1, math.floor(block / #unit)))
            local left = s.bytes
            pending = function()
               if left <= 0 then return nil end
               local d = #piece <= left and piece or piece:sub(1, left)
               left = left - #d
               return { data = d }
            end
         elseif s.trickle then
            local text, pos, every, forever, slept = s.trickle, 0, s.every, s.forever, true
            pending = function()
               if slept then
                  pos = pos + 1
                  if pos > #text then
                     if not forever then return nil end
                     pos = 1
                  end
                  slept = false
                  return { data = text:sub(pos, pos) }
               end
               slept = true
               return { sleep = every }
            end
         end
      end
   end
end

return M

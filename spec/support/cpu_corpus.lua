-- Cases from a hostile review of the cosocket reader. These held (kept as regression guards), in the format of
-- spec/support/hostile_corpus.lua, replayed
-- through nginx by spec/nginx_cpu_spec.lua (and, where they are pure reader cases, through
-- the fake socket of spec/http1_edges_spec.lua). install() appends them to the hostile
-- corpus inside the hostile server's process, so that spec/support/hostile_server.lua can
-- serve them unchanged.
--
-- Extra field: `worker_stall` - the case is also run with a /ping sent to the same nginx
-- worker a moment after it started; the ping must be answered long before the case ends.
local corpus = require("support.hostile_corpus")

local M = {}

local OK = "HTTP/1.1 200 OK"
local CHUNKED = OK .. "\r\nTransfer-Encoding: chunked\r\n\r\n"

-- far more than any limit: the server stops after CASE_CAP (20 s) or when the client leaves
local HUGE = 64 * 1024 * 1024 * 1024

M.cases = {
   -- 1-byte chunks, each announced by a 64 KiB chunk-size line (a long chunk extension): every
   -- line is within the head limit and the body grows by one byte per 64 KiB of wire, so
   -- max_response_size (8 MiB) allows ~512 GiB. The only bound left is `timeout` (1 s).
   { name = "rv_chunk_ext_amplified", steps = { CHUNKED,
     { fill = "1;" .. ("x"):rep(65000) .. "\r\na\r\n", bytes = HUGE } },
     kind = "timeout", slow = true, timeout = 1, worker_stall = true },
   -- 1-byte chunks at line rate up to the default max (8 MiB body = 48 MiB of wire): CPU
   -- (held: too_large in ~0.75 s, the worker answers /ping meanwhile)
   { name = "rv_tiny_chunks_default_max", steps = { CHUNKED, { fill = "1\r\na\r\n", bytes = HUGE } },
     kind = "too_large", slow = true, timeout = 3, worker_stall = true },
}

for _, c in ipairs(M.cases) do
   c.timeout = c.timeout or (c.slow and corpus.SLOW_TIMEOUT or corpus.DEFAULT_TIMEOUT)
end

function M.get(name)
   for _, c in ipairs(M.cases) do
      if c.name == name then return c end
   end
end

--- Appends these cases to the hostile corpus (in the hostile server's process).
function M.install()
   for _, c in ipairs(M.cases) do
      if not corpus.get(c.name) then corpus.cases[#corpus.cases + 1] = c end
   end
end

return M

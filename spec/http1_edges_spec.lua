-- calypso.http1 at its edges, through a fake socket (plain busted, every
-- runtime): sh scripts/run-specs.sh jit spec/http1_edges_spec.lua (and 5.4).
-- From a hostile review: chunk sizes that wrap, bodies on 204/304, folded Connection, splits.
local http1 = require "calypso.http1"
local corpus = require "support.hostile_corpus"

local H_CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

-- A socket over fixed pieces: each receiveany returns at most one piece (and at most max and
-- 4096 bytes), then "closed". The clock advances 1 us per read.
local function pieces_sock(pieces)
   local s = { t = 0, reads = 0 }
   local i, rest = 0, nil
   function s.now() return s.t end
   function s.settimeout() end
   function s.receiveany(_, max)
      s.reads = s.reads + 1
      s.t = s.t + 1e-6
      if not rest or rest == "" then
         i = i + 1
         rest = pieces[i]
         if not rest then return nil, "closed" end
      end
      local n = math.min(max, 4096, #rest)
      local d = rest:sub(1, n)
      rest = rest:sub(n + 1)
      return d
   end
   return s
end

-- Runs http1.read with a CPU watchdog (a read that neither ends nor reads again within
-- `cpu` seconds of CPU is an error); returns ok, res, f.
local function guarded_read(sock, max, cpu)
   local t0 = os.clock()
   debug.sethook(function()
      if os.clock() - t0 > (cpu or 2) then
         debug.sethook()
         error(("http1.read still running after %.1f s of CPU, %d reads"):format(cpu or 2, sock.reads), 0)
      end
   end, "", 100000)
   local ok, res, f = pcall(http1.read, sock, 1e6, sock.now, max or 8 * 1024 * 1024)
   debug.sethook()
   return ok, res, f
end

describe("chunk sizes", function()
   -- Lua 5.3/5.4: tonumber("ffffffffffffffec", 16) wraps to -20 (LuaJIT/5.1: 1.8e19). take(r, -20)
   -- moves r.pos 20 bytes BACK, onto the head's final CRLF: line() reads it as the chunk end,
   -- then the same size line again, forever, without a read (so without a deadline check).
   it("rv_chunk_size_wraps_negative_loop: a 66-byte answer ends (no endless loop)", function()
      local sock = pieces_sock({ H_CHUNKED .. "ffffffffffffffec\r\n" })
      local ok, res, f = guarded_read(sock, 1024, 2)
      assert.is_true(ok, tostring(res))
      assert.is_nil(res)
      assert.is_truthy(f.kind == "network" or f.kind == "too_large", f.kind)
   end)

   -- Lua 5.3/5.4: each "ffffffffffffffff" chunk is -1 byte: accepted as an empty chunk, and it
   -- lowers the running total, so max_response_size no longer bounds the body.
   it("rv_chunk_size_wraps_negative_max_bypass: max_response_size holds", function()
      local body = ("A"):rep(3000)
      local sock = pieces_sock({ H_CHUNKED .. ("ffffffffffffffff\r\n"):rep(2000)
         .. ("%x\r\n%s\r\n0\r\n\r\n"):format(#body, body) })
      local ok, res, f = guarded_read(sock, 1024, 2)
      assert.is_true(ok, tostring(res))
      assert.is_nil(res, res and ("accepted a " .. #res.body .. "-byte body with max 1024"))
      assert.is_truthy(f.kind == "network" or f.kind == "too_large", f.kind)
   end)

   it("rv_chunk_size_16_hex_digits: a nonsense 16-digit size is never an answer", function()
      for _, size in ipairs({ "ffffffffffffffff", "8000000000000000", "fffffffffffffff0" }) do
         local sock = pieces_sock({ H_CHUNKED .. size .. "\r\n" .. corpus.BODY .. "\r\n0\r\n\r\n" })
         local ok, res = guarded_read(sock, 1024, 2)
         assert.is_true(ok, tostring(res))
         assert.is_nil(res, size)
      end
   end)
end)

describe("a connection that must not be reused", function()
   -- 204 and 304 have no body (RFC 9110 15.3.5, 15.4.5). A server that sends one anyway (with a
   -- Content-Length or chunked) leaves it on the connection: the reader marks the connection
   -- for closing only when those bytes happen to have arrived in the same read as the head.
   -- Written in two TCP segments, the connection goes back to the pool and the next call on it
   -- reads the stale body as its answer.
   for _, status in ipairs({ "204 No Content", "304 Not Modified" }) do
      for _, framing in ipairs({
         { "Content-Length: 16\r\n", corpus.BODY },
         { "Transfer-Encoding: chunked\r\n", "10\r\n" .. corpus.BODY .. "\r\n0\r\n\r\n" },
      }) do
         local name = ("rv_%s_with_body_in_next_segment (%s)"):format(status:sub(1, 3), framing[1]:match("^[^:]+"))
         it(name .. ": close = true", function()
            local sock = pieces_sock({ "HTTP/1.1 " .. status .. "\r\n" .. framing[1] .. "\r\n", framing[2] })
            local ok, res, f = guarded_read(sock)
            assert.is_true(ok, tostring(res))
            assert.is_nil(f)
            assert.is_true(res.close, name .. ": the connection would be pooled with the body unread")
         end)
      end
   end

   -- Same race for any answer followed by more bytes: whole, the reader sees them (close); one
   -- byte a read, it does not. In nginx, take() leaves Content-Length leftovers in ngx_lua's
   -- buffer (setkeepalive then refuses), but after a chunked body the line reader has consumed
   -- only up to the last LF: bytes in the kernel are not seen. This case documents the limit
   -- (not a reader bug by itself): it passes when the leftovers are in the same read.
   it("rv_extra_bytes_same_read_vs_split (documents the race)", function()
      local answer = H_CHUNKED .. "10\r\n" .. corpus.BODY .. "\r\n0\r\n\r\n"
      local stale = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
      local _, res = guarded_read(pieces_sock({ answer .. stale }))
      assert.is_true(res.close)
      _, res = guarded_read(pieces_sock({ answer, stale }))
      assert.is_false(res.close) -- cannot be seen without a non-blocking peek
   end)

   -- A "Connection: close" continued by an obs-fold is dropped: the connection is pooled
   -- although the server said close (a dead pooled connection: reads are resent, harmless).
   it("rv_connection_close_in_obs_fold: close = true", function()
      local sock = pieces_sock({ "HTTP/1.1 200 OK\r\nConnection: keep-alive,\r\n close\r\nContent-Length: 16\r\n\r\n"
         .. corpus.BODY })
      local ok, res = guarded_read(sock)
      assert.is_true(ok)
      assert.is_true(res.close)
   end)
end)

describe("every split of the corpus gives the same answer", function()
   -- every corpus case without sleeps/fills/trickles, delivered whole, 1 byte a read, 2, 3, random
   -- 1..7, and cut once at each of the first 64 offsets: same status/body/kind (close is
   -- compared only where no bytes follow the answer)
   local function flat(steps)
      local out = {}
      for _, s in ipairs(steps) do
         if type(s) == "string" then out[#out + 1] = s
         elseif not s.sleep then return nil end
      end
      return table.concat(out)
   end
   local function split_sock(data, size_at)
      local s, pos = { t = 0, reads = 0 }, 1
      function s.now() return s.t end
      function s.settimeout() end
      function s.receiveany(_, max)
         s.reads = s.reads + 1
         s.t = s.t + 1e-6
         if pos > #data then return nil, "closed" end
         local n = math.min(max, 4096, size_at(pos))
         local d = data:sub(pos, pos + n - 1)
         pos = pos + n
         return d
      end
      return s
   end
   local function sig(res, f, with_close)
      if res then
         return ("ok %d %q%s"):format(res.status, res.body, with_close and (" close=" .. tostring(res.close)) or "")
      end
      return "fail " .. f.kind
   end
   it("rv_split_everywhere", function()
      math.randomseed(7)
      local diffs = {}
      for _, c in ipairs(corpus.cases) do
         local data = flat(c.steps)
         if data then
            local with_close = c.name ~= "extra_bytes_after_body"
            local max = c.max or 8 * 1024 * 1024
            local _, r0, f0 = guarded_read(split_sock(data, function() return 1e9 end), max)
            local want = sig(r0, f0, with_close)
            local splits = { function() return 1 end, function() return 2 end, function() return 3 end,
                             function() return math.random(1, 7) end }
            for k = 1, math.min(64, #data) do
               splits[#splits + 1] = function(pos) return pos == 1 and k or 1e9 end
            end
            for i, sp in ipairs(splits) do
               local ok, r, f = guarded_read(split_sock(data, sp), max)
               local got = ok and sig(r, f, with_close) or ("error " .. tostring(r))
               if got ~= want then diffs[#diffs + 1] = ("%s split#%d: %s vs %s"):format(c.name, i, got, want) end
            end
         end
      end
      assert.are.same({}, diffs)
   end)
end)

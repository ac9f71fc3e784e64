-- calypso.http1 (the HTTP/1.1 response reader) against the hostile corpus
-- (spec/support/hostile_corpus.lua), one case per entry, through a fake socket with a virtual
-- clock: plain busted, every runtime, no network. The same corpus runs through nginx and
-- libcurl against a real loopback server in spec/hostile_spec.lua (the nginx stage).
local http1 = require "calypso.http1"
local corpus = require "support.hostile_corpus"

-- A cosocket look-alike replaying a case's steps: receiveany hands over at most 4096 bytes a
-- time (Debian's lua_socket_buffer_size), sleeps advance the virtual clock, and a sleep longer
-- than the timeout set gives "timeout" after that timeout. `delivered` counts the bytes read.
local function fake(steps)
   local events = corpus.events(steps)
   local s = { t = 0, delivered = 0, reads = 0 }
   local pending, timeout
   function s.now() return s.t end
   function s.settimeout(_, ms) timeout = ms / 1000 end
   function s.receiveany(_, max)
      assert(timeout, "read before a timeout was set")
      assert(type(max) == "number" and max >= 1, "receiveany needs a size")
      s.reads = s.reads + 1
      local waited = 0
      while not pending do
         local ev = events()
         if not ev then return nil, "closed" end
         if ev.data then
            pending = ev.data
         elseif waited + ev.sleep > timeout then
            s.t = s.t + (timeout - waited)
            return nil, "timeout"
         else
            waited = waited + ev.sleep
            s.t = s.t + ev.sleep
         end
      end
      local n = math.min(max, 4096)
      local d = pending:sub(1, n)
      pending = #pending > n and pending:sub(n + 1) or nil
      s.delivered = s.delivered + #d
      return d
   end
   return s
end

local function max_of(c) return c.max or 8 * 1024 * 1024 end

local function read_case(c)
   local sock = fake(c.steps)
   local res, f = http1.read(sock, c.timeout, sock.now, max_of(c))
   return sock, res, f
end

describe("calypso.http1 against the hostile corpus", function()
   for _, c in ipairs(corpus.cases) do
      local fails = corpus.reader_fails(c)
      it(("%s: %s"):format(c.name, fails and c.kind or ("an answer (" .. c.kind .. ")")), function()
         local sock, res, f = read_case(c)
         if fails then
            assert.is_nil(res, c.name)
            assert.are.equal(c.kind, f.kind, c.name .. ": " .. tostring(f.detail))
            assert.is_string(f.detail)
         else
            assert.is_nil(f, c.name .. ": " .. tostring(f and f.detail))
            assert.are.equal(c.status or 200, res.status)
            if c.kind == "ok" then assert.are.equal(corpus.BODY, res.body) end
         end
         -- bounded in time: never past the deadline on the virtual clock
         assert.is_true(sock.t <= c.timeout + 1e-9, ("%s: %.3f s"):format(c.name, sock.t))
         if c.slow then assert.are.equal("timeout", f.kind) end
         -- bounded in memory: an endless answer is read only up to a limit
         if c.memory then
            local limit = 2 * http1.MAX_HEAD_BYTES + 8 * max_of(c)
            assert.is_true(sock.delivered <= math.min(limit, 8 * 1024 * 1024),
               ("%s: read %d bytes"):format(c.name, sock.delivered))
         end
      end)
   end
end)

describe("calypso.http1", function()
   it("reads an endless line only up to the head limit", function()
      for _, name in ipairs({ "endless_status_line", "endless_header_line", "endless_chunk_size",
                              "endless_chunk_extension", "endless_trailer_line" }) do
         local sock = read_case(corpus.get(name))
         assert.is_true(sock.delivered <= http1.MAX_HEAD_BYTES + 2 * 4096, name .. ": " .. sock.delivered)
      end
   end)

   it("reads many tiny chunks and one-byte reads into the right body", function()
      local body = ("0123456789abcdef"):rep(4096) -- 64 KiB
      local chunks = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" }
      for i = 1, #body do chunks[#chunks + 1] = "1\r\n" .. body:sub(i, i) .. "\r\n" end
      chunks[#chunks + 1] = "0\r\n\r\n"
      local _, res = read_case({ timeout = 5, steps = { table.concat(chunks) } })
      assert.are.equal(body, res.body)
      -- the body one byte a read: with Content-Length, and ending at the close
      local steps = { "HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\n\r\n" }
      for i = 1, #body do steps[#steps + 1] = body:sub(i, i) end
      _, res = read_case({ timeout = 5, steps = steps })
      assert.are.equal(body, res.body)
      steps[1] = "HTTP/1.1 200 OK\r\n\r\n"
      _, res = read_case({ timeout = 5, steps = steps })
      assert.are.equal(body, res.body)
   end)

   it("says when nothing at all arrived (a dead kept-alive connection)", function()
      local _, _, f = read_case(corpus.get("empty_reply"))
      assert.is_true(f.nothing)
      _, _, f = read_case(corpus.get("closed_after_status_line"))
      assert.is_false(f.nothing)
      _, _, f = read_case(corpus.get("stall_before_status"))
      assert.are.equal("timeout", f.kind)
      assert.is_false(f.nothing)
   end)

   it("marks a connection that must not be reused", function()
      local function close_of(name) local _, res = read_case(corpus.get(name)) return res.close end
      assert.is_false(close_of("ok_content_length"))
      assert.is_false(close_of("ok_chunked"))
      assert.is_true(close_of("ok_to_close_http10"))
      assert.is_true(close_of("extra_bytes_after_body"))
      assert.is_true(close_of("te_chunked_and_content_length"))
      local _, res = read_case({ timeout = 5,
                                 steps = { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}" } })
      assert.is_true(res.close)
      _, res = read_case({ timeout = 5,
                           steps = { "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}" } })
      assert.is_false(res.close)
   end)

   it("gives Date, Retry-After and the status of a failed answer's head", function()
      local _, res = read_case({ timeout = 5, steps = {
         "HTTP/1.1 429 Too Many\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nRetry-After:  7 \r\n"
            .. "Content-Length: 2\r\n\r\n{}" } })
      assert.are.same({ 429, "Tue, 01 Dec 2026 10:00:00 GMT", "7", "{}" },
                      { res.status, res.date, res.retry_after, res.body })
      local _, _, f = read_case(corpus.get("content_length_short_body"))
      assert.are.equal(200, f.head.status)
   end)

   it("sets the socket timeout to the time left before reads that may wait", function()
      local sock = fake({ "HTTP/1.1 200 OK\r\n", { sleep = 0.25 }, "Content-Length: 2\r\n", { sleep = 0.25 },
                          "\r\n{}" })
      local seen = {}
      local set = sock.settimeout
      function sock:settimeout(ms) seen[#seen + 1] = ms return set(self, ms) end
      local res = http1.read(sock, 1, sock.now, 100)
      assert.are.equal("{}", res.body)
      assert.are.same({ 1000, 750 }, seen)
      -- armed by the caller at this clock time: the first read does not set it again
      sock = fake({ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" })
      sock:settimeout(1000)
      seen = {}
      local set2 = sock.settimeout
      function sock:settimeout(ms) seen[#seen + 1] = ms return set2(self, ms) end
      assert.are.equal("{}", http1.read(sock, 1, sock.now, 100, 0).body)
      assert.are.same({}, seen)
   end)
end)

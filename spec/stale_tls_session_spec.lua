-- From a hostile review: a stale OpenSSL SSL* reaches
-- SSL_has_pending (use after free).
--
-- calypso_http.tls is set by on_body (note_tls) and cleared only by calypso_http_collect.
-- A multi slot whose transfer is removed while running (reset_all after a batch that ended
-- by error; leave_inherited after fork) is never collected: its `tls` keeps the SSL* of a
-- connection libcurl then closes (SSL_free). calypso_http_setup clears tls_noted but not
-- tls, so the next transfer on that slot whose answer has no body (on_body never runs)
-- hands the freed SSL* to calypso_conns_note_tls for ITS socket, and the next idle check
-- (launch, running == 0) calls SSL_has_pending on freed memory.
--
-- The child: batch 1 = { STALL (head + 16 bytes of a 4096-byte body, then silence), SLOW }:
-- a finalizer raises while SLOW's result is built, so the batch ends by error with STALL
-- running. Batches 2-4 each make one call answered with an empty body. Run under valgrind:
-- "Invalid read ... SSL_has_pending ... calypso_conns_check ... launch"; the block was freed
-- by curl_multi_remove_handle from reset_all.
local tls = require "support.tls"
local S = require "support.stall_tls_server"

local function have(cmd)
   local p = io.popen("command -v " .. cmd .. " 2>/dev/null")
   local out = p:read("*a")
   p:close()
   return out ~= ""
end

describe("stale SSL* after a batch ended by error", function()
   it("SSL_has_pending is never called on a freed SSL (valgrind, child on lua5.1)", function()
      if not (have("valgrind") and have("lua5.1")) then
         pending("needs valgrind and lua5.1")
         return
      end
      -- without the sanitizer runtime the sanitize stage preloads (make and valgrind break under it)
      assert(os.execute("env -u LD_PRELOAD make -s build LUA_VERSION=5.1 >/dev/null 2>&1"))
      local certs = tls.make()
      local server = S.start(certs.server)   -- runs under CALYPSO_MOCK_LUA (the suite's runtime)
      local cmd = ("LUA_PATH='spec/?.lua;lua/?.lua;;' LUA_CPATH='build/5.1/?.so;;' "
                   .. "env -u LD_PRELOAD timeout 120 valgrind --error-exitcode=9 --num-callers=12 "
                   .. "--suppressions=scripts/valgrind.supp lua5.1 "
                   .. "spec/support/stale_tls_child.lua %s %s 2>&1")
         :format(server:base_url(), certs.ca)
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      server:stop()
      tls.remove(certs)
      assert.truthy(out:find("END", 1, true), "the child did not finish:\n" .. out)
      assert.truthy(out:find("batch1\tfalse", 1, true), "batch 1 was not interrupted:\n" .. out)
      local bad = out:match("(Invalid read[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*)")
      assert.is_nil(bad, "use after free:\n" .. tostring(bad))
      assert.is_nil(out:find("ERROR SUMMARY: [1-9]"), "valgrind errors:\n" .. out)
   end)
end)

-- Signing: the Calypso docs' vector, RFC 4231 HMAC-SHA512 vectors, verify().
local purse = require "calypso.purse"

local function unhex(h)
   return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

describe("purse.sign", function()
   it("matches the Calypso docs' test vector", function()
      assert.are.equal(
         "b16e9d45f49f2069becbc4f108b237bee588cfc353fe9501df103e692acbc68d482a10d34c12bea22fedde7e28e1b8e57a6a0a373b0e9a27c5257bd8b36e13b9",
         purse.sign("b823a6b9ea72408583cef9ec8d67fa52", '{"timestamp":1}'))
   end)

   it("matches the reference's full-envelope vector", function()
      local body = '{"account":"0xc195df92dd9db2a8f28e597981f113d6e7582f8b","timestamp":1700000000000,"payload":{"customerId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","currency":"USDT_TRX"}}'
      assert.are.equal(
         "148033a7433b6e4dc68ec9a464d595f30773819c88e2b10f074ff18791126a26b8a173d4253f17f4a9fb6b9d0e510ade319fec55afe03562eee90e41735b7a36",
         purse.sign("b823a6b9ea72408583cef9ec8d67fa52", body))
   end)

   -- RFC 4231 test cases 1-4, 6 and 7 (case 5 is a truncated MAC).
   local rfc4231 = {
      { key = string.rep("\11", 20), data = "Hi There",
        mac = "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854" },
      { key = "Jefe", data = "what do ya want for nothing?",
        mac = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737" },
      { key = string.rep("\170", 20), data = string.rep("\221", 50),
        mac = "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb" },
      { key = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), data = string.rep("\205", 50),
        mac = "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd" },
      { key = string.rep("\170", 131), data = "Test Using Larger Than Block-Size Key - Hash Key First",
        mac = "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598" },
      { key = string.rep("\170", 131),
        data = "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
        mac = "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58" },
   }
   for i, v in ipairs(rfc4231) do
      it("matches RFC 4231 vector #" .. i, function()
         assert.are.equal(v.mac, purse.sign(v.key, v.data))
      end)
   end

   it("is binary safe in key and body (NUL bytes count)", function()
      assert.are_not.equal(purse.sign("a\0b", "x"), purse.sign("a", "x"))
      assert.are_not.equal(purse.sign("k", "x\0y"), purse.sign("k", "x"))
      assert.are.equal(128, #purse.sign("", ""))
   end)

   it("raises on non-string arguments", function()
      assert.has_error(function() purse.sign(nil, "x") end)
      assert.has_error(function() purse.sign("k", {}) end)
   end)
end)

-- A client signs with SHA-512 states that absorbed the padded key once (sign.c), not with
-- mbedtls_md_hmac: every request's Sign must still equal the one-shot HMAC of its body
-- (itself pinned to RFC 4231 above), for keys on both sides of the 128-byte block.
describe("a client's signer (hash states precomputed per client)", function()
   local customer = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6" }
   local lengths = { 1, 20, 32, 64, 127, 128, 129, 131, 200, 1000 }
   for _, n in ipairs(lengths) do
      it("equals the one-shot HMAC for a " .. n .. "-byte binary secret, call after call", function()
         local secret = {}
         for i = 1, n do secret[i] = string.char((i * 37 + n) % 256) end
         secret = table.concat(secret)
         local c = purse.new{ key = "k", secret = secret, account = "0x1", base_url = "http://127.0.0.1:9" }
         for round = 1, 3 do
            local payload = round == 2 and { currency = "USDT_TRX", customerId = customer.customerId } or customer
            local body, sign = c:prepare(round == 2 and "get_address" or "get_customer", payload)
            assert.are.equal(purse.sign(secret, body), sign)
            assert.is_true(purse.verify(secret, body, sign))
            assert.is_false(purse.verify(secret .. "x", body, sign))
         end
         c:close()
      end)
   end

   it("client:sign(body) equals purse.sign(secret, body), binary bodies included", function()
      local secret = "b823a6b9ea72408583cef9ec8d67fa52"
      local c = purse.new{ key = "k", secret = secret, account = "0x1", base_url = "http://127.0.0.1:9" }
      local bodies = { "", '{"timestamp":1}', "a\0b", string.rep("\255", 127), string.rep("x", 128),
                       string.rep("y", 129), string.rep("z", 100000) }
      for _, body in ipairs(bodies) do
         assert.are.equal(purse.sign(secret, body), c:sign(body))
      end
      assert.are.equal("b16e9d45f49f2069becbc4f108b237bee588cfc353fe9501df103e692acbc68d482a10d34c12bea22fedde7e28e1b8e57a6a0a373b0e9a27c5257bd8b36e13b9",
                       c:sign('{"timestamp":1}'))   -- the docs' vector
      assert.has_error(function() c:sign() end)
      assert.has_error(function() c:sign({}) end)
      c:close()
      assert.has_error(function() c:sign("x") end, "calypso.purse: the client is closed")
   end)

   it("gives one client's secret's signatures, not another's, on interleaved calls", function()
      local a = purse.new{ key = "k", secret = string.rep("a", 129), account = "0x1", base_url = "http://127.0.0.1:9" }
      local b = purse.new{ key = "k", secret = "b", account = "0x1", base_url = "http://127.0.0.1:9" }
      for _ = 1, 3 do
         local body_a, sign_a = a:prepare("get_customer", customer)
         local body_b, sign_b = b:prepare("get_customer", customer)
         assert.are.equal(purse.sign(string.rep("a", 129), body_a), sign_a)
         assert.are.equal(purse.sign("b", body_b), sign_b)
      end
      a:close()
      b:close()
   end)
end)

describe("purse.verify", function()
   local secret, body = "b823a6b9ea72408583cef9ec8d67fa52", '{"timestamp":1}'
   local good = "b16e9d45f49f2069becbc4f108b237bee588cfc353fe9501df103e692acbc68d482a10d34c12bea22fedde7e28e1b8e57a6a0a373b0e9a27c5257bd8b36e13b9"

   it("accepts the right signature in lower and upper case", function()
      assert.is_true(purse.verify(secret, body, good))
      assert.is_true(purse.verify(secret, body, good:upper()))
   end)

   it("rejects a signature with one digit changed, in every position", function()
      for i = 1, #good do
         local c = good:sub(i, i)
         local bad = good:sub(1, i - 1) .. (c == "0" and "1" or "0") .. good:sub(i + 1)
         assert.is_false(purse.verify(secret, body, bad))
      end
   end)

   it("rejects wrong lengths, non-hex, another body and another secret", function()
      assert.is_false(purse.verify(secret, body, good:sub(1, 127)))
      assert.is_false(purse.verify(secret, body, good .. "0"))
      assert.is_false(purse.verify(secret, body, ""))
      assert.is_false(purse.verify(secret, body, good:sub(1, 126) .. "zz"))
      assert.is_false(purse.verify(secret, body .. " ", good))
      assert.is_false(purse.verify(secret .. "x", body, good))
   end)
end)

-- fuzz/webhook.lua: webhook verification and parsing. Bytes -> (secret, signature mode, body):
-- purse.verify must accept exactly the right signature (in either hex case) and nothing else
-- we make up; calypso.webhook.parse must return an event only for a correctly signed JSON
-- object, else nil, message, err with kind "signature" or "decode"; purse.decode never raises.
local common = require "common"
local purse = common.purse
local ok_webhook, webhook = pcall(require, "calypso.webhook")

function fuzz_one(s)
   local r = common.reader(s)
   local secret = r.bytes(r.byte() % 48)
   local mode = r.byte()
   local body = r.rest()
   local good = purse.sign(secret, body)
   assert(#good == 128 and good:match("^%x+$") and good == good:lower(), "sign is not lowercase hex")
   assert(purse.verify(secret, body, good), "verify refused its own signature")
   assert(purse.verify(secret, body, good:upper()), "verify refused the upper-case signature")
   local sig
   if mode % 4 == 0 then
      sig = good
   elseif mode % 4 == 1 then                          -- one hex digit changed
      local i = (mode >> 2) % 128 + 1
      local ch = good:sub(i, i) == "0" and "1" or "0"
      sig = good:sub(1, i - 1) .. ch .. good:sub(i + 1)
      assert(not purse.verify(secret, body, sig), "verify accepted a wrong signature")
   elseif mode % 4 == 2 then                          -- bytes from the input
      sig = body:sub(1, 128)
      assert(purse.verify(secret, body, sig) == (sig:lower() == good), "verify disagrees with sign")
   else
      sig = nil
   end
   if not ok_webhook then return end
   local ev, msg, err = webhook.parse(body, sig, secret, { exact_amounts = mode & 16 ~= 0 })
   if ev ~= nil then
      assert(sig ~= nil and sig:lower() == good, "an event from a body not correctly signed")
      assert(type(ev) == "table" and type(ev.eventType) == "string", "an event without eventType")
   else
      assert(type(msg) == "string" and type(err) == "table", "parse failure is not nil, msg, err")
      assert(err.kind == "signature" or err.kind == "decode", "parse failed as " .. tostring(err.kind))
      if not (sig and sig:lower() == good) then
         assert(err.kind == "signature", "a bad signature failed as " .. err.kind)
      end
      -- the message is one of parse's own, with at most the decoder's reason: nothing of the
      -- secret, the signature or the body can be in it
      local detail = msg:match("^calypso: webhook: (.*)$")
      assert(detail == "missing Sign header" or detail == "Sign header does not match the body"
             or detail == "body is not a JSON object" or detail == "event has no eventType string"
             or detail == "event has no data object"
             or (detail and detail:match("^body is not JSON: malformed JSON: [%w %(%)_%-%.,:']*$")),
             "unexpected parse message: " .. string.format("%q", msg))
   end
   local v, m, e = purse.decode(body, mode & 32 ~= 0)
   if v == nil then common.check_failure(v, m, e, { decode = true }, body) end
end

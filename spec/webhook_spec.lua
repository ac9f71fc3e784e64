-- calypso.webhook (verify, parse) and the mock's signed webhook delivery, end to end:
-- deposit -> webhook over a real socket -> verify -> parse -> get_transaction.
local calypso = require "calypso"
local webhook = require "calypso.webhook"
local purse = require "calypso.purse"
local mock = require "calypso.mock"
local socket = require "socket"

local SECRET = "whsec-3f1b2c"
local BODY = '{"requestId":"a381f753-3079-4214-9720-b416fc35ca10","id":1331293,'
   .. '"createdDate":"2025-10-30T14:08:39.96068","level":"INFO","service":"CUSTOMER_PURSE",'
   .. '"eventType":"CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE",'
   .. '"data":{"customerId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","customerBlocked":false,'
   .. '"purseId":"7b1c5e2a-0c1d-4f7e-9a55-2f0c2a6c9d10","address":"TXyz",'
   .. '"transactionId":"123e4567-e89b-12d3-a456-426614174000","amount":25.5,"currency":"USDT_TRX"}}'

describe("calypso.webhook.verify", function()
   local sign = purse.sign(SECRET, BODY)

   it("accepts the HMAC-SHA512 of the raw body, in either hex case", function()
      assert.is_true(webhook.verify(SECRET, BODY, sign))
      assert.is_true(webhook.verify(SECRET, BODY, sign:upper()))
   end)

   it("matches the docs' test vector", function()
      assert.is_true(webhook.verify("b823a6b9ea72408583cef9ec8d67fa52", '{"timestamp":1}',
         "b16e9d45f49f2069becbc4f108b237bee588cfc353fe9501df103e692acbc68d"
         .. "482a10d34c12bea22fedde7e28e1b8e57a6a0a373b0e9a27c5257bd8b36e13b9"))
   end)

   it("refuses a changed body, another secret, a truncated or missing signature", function()
      assert.is_false(webhook.verify(SECRET, BODY .. " ", sign))
      assert.is_false(webhook.verify(SECRET .. "x", BODY, sign))
      assert.is_false(webhook.verify(SECRET, BODY, sign:sub(1, 127)))
      assert.is_false(webhook.verify(SECRET, BODY, ""))
      assert.is_false(webhook.verify(SECRET, BODY, nil))
      assert.is_false(webhook.verify(SECRET, BODY, ("z"):rep(128)))
   end)

   it("raises on a secret or body that is not a string", function()
      assert.has_error(function() webhook.verify(nil, BODY, sign) end,
         "calypso.webhook.verify: secret must be a string (got nil)")
      assert.has_error(function() webhook.verify(SECRET, {}, sign) end,
         "calypso.webhook.verify: raw_body must be a string (got table)")
   end)
end)

describe("calypso.webhook.parse", function()
   local sign = purse.sign(SECRET, BODY)

   it("returns the verified event as sent, with integer id", function()
      local ev = assert(webhook.parse(BODY, sign, SECRET))
      assert.are.same({
         requestId = "a381f753-3079-4214-9720-b416fc35ca10", id = 1331293,
         createdDate = "2025-10-30T14:08:39.96068", level = "INFO", service = "CUSTOMER_PURSE",
         eventType = "CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE",
         data = { customerId = "3fa85f64-5717-4562-b3fc-2c963f66afa6", customerBlocked = false,
                  purseId = "7b1c5e2a-0c1d-4f7e-9a55-2f0c2a6c9d10", address = "TXyz",
                  transactionId = "123e4567-e89b-12d3-a456-426614174000", amount = 25.5,
                  currency = "USDT_TRX" },
      }, ev)
      assert.are.equal("1331293", tostring(ev.id))
      if math.type then assert.are.equal("integer", math.type(ev.id)) end
   end)

   it("keeps amounts exact on request", function()
      local body = BODY:gsub("25%.5", "123456789012345678901234.567890")
      local ev = assert(webhook.parse(body, purse.sign(SECRET, body), SECRET, { exact_amounts = true }))
      assert.are.equal("123456789012345678901234.567890", ev.data.amount)
      body = BODY:gsub("25%.5", "1e-8")
      ev = assert(webhook.parse(body, purse.sign(SECRET, body), SECRET, { exact_amounts = true }))
      assert.are.equal("1e-8", ev.data.amount)
      ev = assert(webhook.parse(body, purse.sign(SECRET, body), SECRET))
      assert.are.equal(1e-8, ev.data.amount)
   end)

   it("verifies before it parses: a bad signature never reaches the decoder", function()
      local res, msg, err = webhook.parse("{not json", "00", SECRET)
      assert.is_nil(res)
      assert.are.equal("calypso: webhook: Sign header does not match the body", msg)
      assert.are.same({ kind = "signature", message = msg }, err)
      res, msg, err = webhook.parse(BODY, nil, SECRET)
      assert.is_nil(res)
      assert.are.equal("calypso: webhook: missing Sign header", msg)
      assert.are.equal("signature", err.kind)
      res, msg = webhook.parse(BODY .. "\n", sign, SECRET)
      assert.is_nil(res)
      assert.are.equal("calypso: webhook: Sign header does not match the body", msg)
   end)

   it("refuses signed bodies that are not an event", function()
      local cases = {
         { "{not json", "^calypso: webhook: body is not JSON: malformed JSON" },
         { "[1,2]", "^calypso: webhook: body is not a JSON object$" },
         { '"text"', "^calypso: webhook: body is not a JSON object$" },
         { '{"id":1,"data":{}}', "^calypso: webhook: event has no eventType string$" },
         { '{"id":1,"eventType":"X"}', "^calypso: webhook: event has no data object$" },
      }
      for _, case in ipairs(cases) do
         local res, msg, err = webhook.parse(case[1], purse.sign(SECRET, case[1]), SECRET)
         assert.is_nil(res, case[1])
         assert.truthy(msg:find(case[2]), msg)
         assert.are.equal("decode", err.kind)
      end
   end)

   it("knows the six customer purse event types and passes unknown ones through intact", function()
      local names = {}
      for name in pairs(webhook.types) do names[#names + 1] = name end
      table.sort(names)
      assert.are.same({
         "CUSTOMER_PURSE_COMPLIANCE_DECLINED", "CUSTOMER_PURSE_EXPIRED",
         "CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE", "CUSTOMER_PURSE_MEM_POOL_FOUND",
         "CUSTOMER_PURSE_PENDING_COMPLIANCE", "CUSTOMER_PURSE_TRANSLATION_TO_ACCOUNT_COMPLETED",
      }, names)
      for _, name in ipairs(names) do
         local body = BODY:gsub("CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE", name)
         local ev = assert(webhook.parse(body, purse.sign(SECRET, body), SECRET))
         assert.are.equal(name, ev.eventType)
         assert.are.equal(webhook.types[name], webhook.known(ev))
      end
      assert.are.same({ state = "CONFIRMED", terminal = true },
                      webhook.known("CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE"))
      local body = '{"id":7,"eventType":"PAYOUT_SOMETHING_NEW","service":"PAYOUT",'
                   .. '"data":{"x":[1,{"y":null}]},"extra":true}'
      local ev = assert(webhook.parse(body, purse.sign(SECRET, body), SECRET))
      assert.are.same({ id = 7, eventType = "PAYOUT_SOMETHING_NEW", service = "PAYOUT",
                        data = { x = { 1, {} } }, extra = true }, ev)
      assert.is_nil(webhook.known(ev))
   end)
end)

---------------------------------------------------------------------------------------------
-- End to end with the mock's delivery
---------------------------------------------------------------------------------------------

describe("mock webhook delivery", function()
   local server, client, receiver, url

   -- Accepts one webhook POST on the receiver socket; answers `status`. Returns the request.
   local function receive(status)
      local s = assert(receiver:accept())
      s:settimeout(5)
      local line = assert(s:receive("*l"))
      local headers = {}
      while true do
         local l = assert(s:receive("*l"))
         if l == "" then break end
         local name, value = l:match("^([^:]+):%s*(.*)$")
         headers[name:lower()] = value
      end
      local body = assert(s:receive(tonumber(headers["content-length"])))
      s:send(("HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"):format(status or 200))
      s:close()
      return { line = line, headers = headers, body = body }
   end

   -- The mock's delivery log once no delivery is pending (bounded wait).
   local function settled()
      for _ = 1, 250 do
         local list = server:deliveries()
         local pending = false
         for _, d in ipairs(list) do pending = pending or d.state == "pending" end
         if not pending then return list end
         socket.sleep(0.02)
      end
      error("deliveries still pending after 5 s")
   end

   setup(function()
      server = mock.start()
      client = calypso.new(mock.client_options(server))
      receiver = assert(socket.bind("127.0.0.1", 0))
      receiver:settimeout(5)
      local _, port = receiver:getsockname()
      url = "http://127.0.0.1:" .. port .. "/calypso/webhook"
   end)
   teardown(function()
      client:close()
      server:stop()
      receiver:close()
   end)
   before_each(function()
      server:reset()
   end)

   local function subscribe(extra)
      local args = { url = url, key = "wh-key-1", secret = SECRET }
      for k, v in pairs(extra or {}) do args[k] = v end
      return server:webhooks(args)
   end

   it("deposit -> signed webhook -> verify -> parse -> get_transaction", function()
      local sub = subscribe()
      assert.are.equal(1, sub.subscriptions)
      local customer = assert(client:create_customer{ email = "hook@example.com" })
      local purse_info = assert(client:get_address(customer.id, "USDT_TRX"))
      local tx = server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = "25.5" }

      local req = receive(200)
      assert.are.equal("POST /calypso/webhook HTTP/1.1", req.line)
      assert.are.equal("wh-key-1", req.headers.key)
      assert.are.equal("application/json", req.headers["content-type"])
      assert.is_true(webhook.verify(SECRET, req.body, req.headers.sign))
      local ev = assert(webhook.parse(req.body, req.headers.sign, SECRET))
      assert.are.equal(sub.requestId, ev.requestId)
      assert.are.equal("CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE", ev.eventType)
      assert.are.equal("SUCCESS", ev.level)
      assert.are.equal("CUSTOMER_PURSE", ev.service)
      assert.truthy(ev.createdDate:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+$"), ev.createdDate)
      assert.are.same({ customerId = customer.id, customerBlocked = false, purseId = purse_info.id,
                        address = purse_info.address, transactionId = tx.id, amount = 25.5,
                        currency = "USDT_TRX" }, ev.data)
      -- the docs' advice after a terminal event: confirm with transaction/get
      assert.is_true(webhook.known(ev).terminal)
      local confirmed = assert(client:get_transaction(ev.data.transactionId))
      assert.are.same(tx, confirmed)
      assert.are.equal(webhook.known(ev).state, confirmed.transactionState)

      local log = settled()
      assert.are.equal(1, #log)
      assert.are.same({ id = ev.id, eventType = ev.eventType, requestId = sub.requestId, url = url,
                        state = "delivered", attempts = 1, status = 200 }, log[1])
   end)

   it("announces every state change in order, and the translation to the account", function()
      subscribe()
      local customer = assert(client:create_customer{})
      local tx = server:deposit{ customerId = customer.id, currency = "ETH", amount = 1, state = "MEM_POOL_FOUND" }
      server:update_transaction{ transactionId = tx.id, state = "PENDING_COMPLIANCE_CHECK" }
      server:update_transaction{ transactionId = tx.id, state = "PENDING_COMPLIANCE_CHECK" } -- no change
      server:update_transaction{ transactionId = tx.id, state = "CONFIRMED", translationToAccountCompleted = true }
      local other = server:deposit{ customerId = customer.id, currency = "ETH", amount = 2, state = "DECLINED" }
      local want = {
         { "CUSTOMER_PURSE_MEM_POOL_FOUND", tx.id, "INFO" },
         { "CUSTOMER_PURSE_PENDING_COMPLIANCE", tx.id, "INFO" },
         { "CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE", tx.id, "SUCCESS" },
         { "CUSTOMER_PURSE_TRANSLATION_TO_ACCOUNT_COMPLETED", tx.id, "SUCCESS" },
         { "CUSTOMER_PURSE_COMPLIANCE_DECLINED", other.id, "WARNING" },
      }
      local last_id
      for _, w in ipairs(want) do
         local req = receive(200)
         local ev = assert(webhook.parse(req.body, req.headers.sign, SECRET))
         assert.are.same(w, { ev.eventType, ev.data.transactionId, ev.level })
         assert.is_true(last_id == nil or ev.id == last_id + 1)
         last_id = ev.id
      end
      assert.are.equal(5, #settled())
   end)

   it("carries the blocked flag and exact amounts", function()
      subscribe()
      local customer = assert(client:create_customer{})
      assert(client:block_customer(customer.id))
      server:deposit{ customerId = customer.id, currency = "USDT_TRX", amount = "123456789012345678901234.567890" }
      local req = receive(200)
      local ev = assert(webhook.parse(req.body, req.headers.sign, SECRET, { exact_amounts = true }))
      assert.is_true(ev.data.customerBlocked)
      assert.are.equal("123456789012345678901234.567890", ev.data.amount)
   end)

   it("resends a webhook not answered 200, byte for byte, then records it delivered", function()
      subscribe{ retry_delays = { 0.05 } }
      local customer = assert(client:create_customer{})
      server:deposit{ customerId = customer.id, currency = "TRX", amount = 3 }
      local first = receive(500)
      local second = receive(200)
      assert.are.equal(first.body, second.body)
      assert.are.equal(first.headers.sign, second.headers.sign)
      local log = settled()
      assert.are.equal(1, #log)
      assert.are.same({ "delivered", 2, 200 }, { log[1].state, log[1].attempts, log[1].status })
   end)

   it("gives up after the last retry and records the failure", function()
      subscribe{ retry_delays = {} }
      local customer = assert(client:create_customer{})
      server:deposit{ customerId = customer.id, currency = "TRX", amount = 3 }
      receive(503)
      local log = settled()
      assert.are.same({ "failed", 1, 503, "HTTP 503" }, { log[1].state, log[1].attempts, log[1].status, log[1].error })
   end)

   it("emits CUSTOMER_PURSE_EXPIRED for a purse, and types the SDK does not know", function()
      subscribe()
      local customer = assert(client:create_customer{})
      local p = assert(client:get_address(customer.id, "USDT_TRX"))
      assert.are.same({ queued = 1 }, server:emit_webhook{ eventType = "CUSTOMER_PURSE_EXPIRED", purseId = p.id })
      local expired = receive(200)
      local ev = assert(webhook.parse(expired.body, expired.headers.sign, SECRET))
      assert.are.equal("CUSTOMER_PURSE_EXPIRED", ev.eventType)
      assert.are.equal("WARNING", ev.level)
      assert.are.same({ customerId = customer.id, customerBlocked = false, purseId = p.id, address = p.address },
                      ev.data)
      assert.is_false(webhook.known(ev).terminal)

      server:emit_webhook{ eventType = "CUSTOMER_PURSE_SOMETHING_NEW", data = { answer = 42, list = { "a" } } }
      local req = receive(200)
      ev = assert(webhook.parse(req.body, req.headers.sign, SECRET))
      assert.are.equal("CUSTOMER_PURSE_SOMETHING_NEW", ev.eventType)
      assert.are.same({ answer = 42, list = { "a" } }, ev.data)
      assert.is_nil(webhook.known(ev))
   end)

   it("signs with the subscription's secret, so another secret does not verify", function()
      subscribe{ secret = "another-secret" }
      server:emit_webhook{ eventType = "CUSTOMER_PURSE_EXPIRED", data = {} }
      local req = receive(200)
      local res, msg, err = webhook.parse(req.body, req.headers.sign, SECRET)
      assert.is_nil(res)
      assert.are.equal("signature", err.kind)
      assert.truthy(assert(webhook.parse(req.body, req.headers.sign, "another-secret")))
      assert.are.equal("calypso: webhook: Sign header does not match the body", msg)
   end)

   it("refuses a subscription outside the loopback interface", function()
      assert.has_error(function()
         server:webhooks{ url = "http://example.com/hook", key = "k", secret = "s" }
      end)
      assert.are.same({ subscriptions = 0 }, server:webhooks{ clear = true })
   end)
end)

describe("examples/webhook_receiver.lua", function()
   it("receives, verifies and confirms the three webhooks of a deposit against the mock", function()
      local out = require("support.helpers").run_lua('dofile("examples/webhook_receiver.lua")')
      local events = {}
      for name in out:gmatch("\nevent %d+: (CUSTOMER_PURSE_[%u_]+)") do events[#events + 1] = name end
      assert.are.same({ "CUSTOMER_PURSE_MEM_POOL_FOUND", "CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE",
                        "CUSTOMER_PURSE_TRANSLATION_TO_ACCOUNT_COMPLETED" }, events, out)
      local _, confirmed = out:gsub("confirmed: 25%.5 USDT_TRX, CONFIRMED, compliance CHECKED, credited=true", "")
      assert.are.equal(2, confirmed, out)
   end)
end)

-- prepare / finish / failure: what a transport other than libcurl (OpenResty
-- cosockets) uses. A request prepared in C, sent with luasocket and finished
-- in C must give exactly what the built-in libcurl path gives.
local purse = require "calypso.purse"
local mock = require "calypso.mock"
local http = require "socket.http"
local ltn12 = require "ltn12"

local server, client, customer

-- Sends a prepared request with luasocket; returns status, body, headers.
local function send(path, body, sign)
   local out = {}
   local _, status, headers = http.request{
      url = server.url .. path, method = "POST",
      headers = { ["Key"] = server.key, ["Sign"] = sign, ["Content-Type"] = "application/json",
                  ["Content-Length"] = tostring(#body) },
      source = ltn12.source.string(body), sink = ltn12.sink.table(out),
   }
   return status, table.concat(out), headers
end

local function via_prepare(op, payload)
   local body, sign, path = client:prepare(op, payload)
   if not body then return body, sign, path end
   local status, rbody, headers = send(path, body, sign)
   return client:finish(op, status, rbody, headers.date, headers["retry-after"])
end

setup(function()
   server = mock.start()
   client = purse.new(mock.client_options(server))
   customer = assert(client:create_customer{ email = "t@example.com" })
end)
teardown(function()
   client:close()
   server:stop()
end)

describe("client:prepare", function()
   it("returns the signed envelope, the path and whether it is a write", function()
      local body, sign, path, writes = client:prepare("get_customer", { customerId = customer.id })
      assert.are.equal("/api/v1/customer-purse/customer/get", path)
      assert.is_false(writes)
      assert.are.equal(purse.sign(server.secret, body), sign)
      local ts = body:match('^{"account":"0x%x+","timestamp":(%d+),"payload":')
      assert.truthy(ts, body)
      assert.are.equal('{"account":"' .. server.account .. '","timestamp":' .. ts ..
                       ',"payload":{"customerId":"' .. customer.id .. '"}}', body)
      local _, _, p2, w2 = client:prepare("customer/create", {})
      assert.are.equal("/api/v1/customer-purse/customer/create", p2)
      assert.is_true(w2)
      local _, _, p3 = client:prepare("/api/v2/other", {})
      assert.are.equal("/api/v2/other", p3)
   end)

   it("gives the same invalid failure as the method", function()
      local a = { client:prepare("get_customer", { customerId = "x" }) }
      local b = { client:get_customer{ customerId = "x" } }
      assert.are.same(b, a)
   end)
end)

-- Sends a whole prepared request over a plain TCP connection; returns status, body, date.
local function send_raw(request)
   local socket = require "socket"
   local host, port = server.url:match("^http://([^:/]+):(%d+)")
   local sock = assert(socket.tcp())
   sock:settimeout(10)
   assert(sock:connect(host, tonumber(port)))
   assert(sock:send(request))
   local status = tonumber(assert(sock:receive("*l")):match("^HTTP/1%.%d (%d%d%d)"))
   local len, date
   while true do
      local line = assert(sock:receive("*l"))
      if line == "" then break end
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
      date = line:match("^[Dd]ate:%s*(.-)%s*$") or date
   end
   local body = assert(sock:receive(len))
   sock:close()
   return status, body, date
end

describe("client:prepare_http", function()
   local HEAD = "Host: 127.0.0.1\r\nKey: %s\r\nContent-Type: application/json\r\nAccept: application/json"

   it("lays out the whole signed request: request line, Sign, the given head, length, body", function()
      local head = HEAD:format(server.key)
      local request, writes = client:prepare_http("get_customer", { customerId = customer.id }, head)
      assert.is_false(writes)
      local sign, rest = request:match("^POST /api/v1/customer%-purse/customer/get HTTP/1%.1\r\nSign: (%x+)\r\n(.*)$")
      assert.are.equal(128, #sign)
      local len, body = rest:match("^" .. head:gsub("%p", "%%%0") .. "\r\nContent%-Length: (%d+)\r\n\r\n(.*)$")
      assert.are.equal(#body, tonumber(len))
      assert.are.equal('{"account":"' .. server.account .. '","timestamp":' .. body:match('"timestamp":(%d+)') ..
                       ',"payload":{"customerId":"' .. customer.id .. '"}}', body)
      assert.are.equal(purse.sign(server.secret, body), sign)
      -- a write is laid out the same (no Connection: close: it may ride a kept-alive
      -- connection); `writes` tells the transport never to resend it
      local write, w = client:prepare_http("create_customer", {}, head)
      assert.is_true(w)
      assert.truthy(write:find("\r\nContent%-Length: %d+\r\n\r\n{"), write)
      assert.is_nil(write:lower():find("connection:", 1, true), write)
   end)

   it("is answered by the server like the method, and finishes into the same table", function()
      local request = client:prepare_http("get_customer", { customerId = customer.id }, HEAD:format(server.key))
      local status, body, date = send_raw(request)
      assert.are.equal(200, status)
      assert.are.same(assert(client:get_customer{ customerId = customer.id }),
                      assert(client:finish("get_customer", status, body, date)))
   end)

   it("keeps a path in base_url in the request target", function()
      local o = mock.client_options(server)
      o.base_url = "http://127.0.0.1:1/prefix/"
      local c = purse.new(o)
      local request = c:prepare_http("customer/get", { customerId = customer.id }, "Host: x")
      local line = "POST /prefix/api/v1/customer-purse/customer/get HTTP/1.1\r\n"
      assert.are.equal(line, request:sub(1, #line))
      c:close()
   end)

   it("gives the same invalid failure as the method, and refuses a head that is not header lines", function()
      assert.are.same({ client:get_customer{ customerId = "x" } },
                      { client:prepare_http("get_customer", { customerId = "x" }, "Host: x") })
      for _, bad in ipairs{ "Host: x\r\n\r\nGET / HTTP/1.1", "Host: x\nKey: y", "Host: x\r\n", "\r\nHost: x",
                            "Host: x\r\n folded", "Host: \0x", "Host: \127", ("x"):rep(16 * 1024 + 1) } do
         assert.has_error(function() client:prepare_http("get_customer", { customerId = customer.id }, bad) end,
                          "bad argument #3 to 'prepare_http' (head must be printable header lines separated by CRLF)")
      end
      assert.has_error(function() client:prepare_http("get_customer", { customerId = customer.id }) end)
   end)
end)

describe("client:finish", function()
   it("turns the same answer into the same table as the libcurl path", function()
      assert.are.same(assert(client:get_customer{ customerId = customer.id }),
                      assert(via_prepare("get_customer", { customerId = customer.id })))
      local p = assert(client:get_address{ customerId = customer.id, currency = "ETH" })
      assert.are.same(p, assert(via_prepare("get_address", { customerId = customer.id, currency = "ETH" })))
      assert.are.same(assert(client:get_purses{ customerId = customer.id }),
                      assert(via_prepare("get_purses", { customerId = customer.id })))
   end)

   it("turns the same error answer into the same failure", function()
      local unknown = "00000000-0000-4000-8000-000000000000"
      local _, m1, e1 = client:get_customer{ customerId = unknown }
      local _, m2, e2 = via_prepare("get_customer", { customerId = unknown })
      -- the trace id is random per answer; everything else is identical
      e1.trace_id, e2.trace_id = nil, nil
      assert.are.equal(m1:gsub("trace %S+", ""), (m2:gsub("trace %S+", "")))
      e1.message, e2.message = nil, nil
      assert.are.same(e1, e2)
      assert.are.equal("004", e2.code)
   end)

   it("classifies status and body exactly as the libcurl path", function()
      local res, msg, err = client:finish("get_customer", 503, "<html>busy</html>")
      assert.is_nil(res)
      assert.are.same({ "http", 503, true }, { err.kind, err.status, err.retryable })
      assert.are.equal("calypso: get_customer: HTTP 503 without a Calypso error body", msg)
      res, msg, err = client:finish("get_customer", 200, "[1]")
      assert.is_nil(res, msg)
      assert.are.equal("decode", err.kind, msg)
      res, msg, err = client:finish("get_customer", 200, string.rep(" ", 9 * 1024 * 1024))
      assert.is_nil(res, msg)
      assert.are.equal("too_large", err.kind, msg)
      assert.has_error(function() client:finish("get_customer", "OK", "{}") end)
      assert.has_error(function() client:finish("no such op!", 200, "{}") end)
   end)
end)

describe("client:failure", function()
   it("builds a transport failure in the libcurl path's shape", function()
      local res, msg, err = client:failure("get_customer", "timeout", "read timed out", true)
      assert.is_nil(res)
      assert.are.equal("calypso: get_customer: timeout error: read timed out", msg)
      assert.are.same({ kind = "timeout", message = msg, op = "get_customer", retryable = true, sent = true }, err)
      local _, _, e2 = client:failure("create_customer", "connect", "connection refused", false)
      assert.are.same({ "connect", false }, { e2.kind, e2.sent })
      assert.has_error(function() client:failure("get_customer", "bogus", "x", true) end)
      local _, _, e3 = client:failure("get_customer", "too_large", "", true, 200, "Tue, 24 Nov 2026 10:00:00 GMT", "5")
      assert.are.same({ "too_large", 200, "Tue, 24 Nov 2026 10:00:00 GMT", "5", false },
                      { e3.kind, e3.status, e3.date, e3.retry_after, e3.retryable })
   end)
end)

describe("client:info", function()
   it("tells another transport what it needs, never the secret", function()
      local info = client:info()
      assert.are.equal(server.url, info.base_url)
      assert.are.equal(server.key, info.key)
      assert.truthy(info.user_agent:find("^calypso%-purse/"))
      assert.are.equal(30, info.timeout)
      assert.are.equal(10, info.connect_timeout)
      assert.are.equal(8 * 1024 * 1024, info.max_response_size)
      for _, v in pairs(info) do
         assert.is_nil(tostring(v):find(server.secret, 1, true))
      end
   end)
end)

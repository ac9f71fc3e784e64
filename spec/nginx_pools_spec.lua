-- From a hostile review: TLS trust and keep-alive pools in calypso.transport.ngx.
-- A private nginx with a TLS server (self-signed certificate, NOT trusted by the client
-- location: no lua_ssl_trusted_certificate) in front of the bundled mock, on 127.0.0.1.
-- Run: CALYPSO_NGINX_SPEC=1 LUA_CPATH="build/5.4/?.so;;" CALYPSO_MOCK_LUA=lua5.4 \
--   lua5.4 /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' spec/nginx_pools_spec.lua
if os.getenv("CALYPSO_NGINX_SPEC") ~= "1" then
   return
end

local cjson = require("cjson")
local mock = require("calypso.mock")
local nginx = require("support.nginx")

local server, h, tls_port

local function sh(cmd)
   local ok = os.execute(cmd .. " >/dev/null 2>&1")
   assert(ok == true or ok == 0, "command failed: " .. cmd)
end

setup(function()
   server = mock.start()
   local prefix = nginx.tempdir("nginx")
   local q = nginx.shell_quote
   local dir = prefix .. "/certs"
   sh("mkdir -p " .. q(dir))
   sh(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem "
      .. "-out cert.pem -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"):format(q(dir)))
   sh("chmod 755 " .. q(dir) .. " && chmod 644 " .. q(dir) .. "/*")
   tls_port = nginx.free_port()
   h = nginx.start{
      prefix = prefix, lifetime = 300,
      server = 'location = /call { content_by_lua_block { require("calypso_test").call() } }',
      servers = table.concat({
         "server {",
         "  listen 127.0.0.1:" .. tls_port .. " ssl;",
         "  ssl_certificate " .. dir .. "/cert.pem;",
         "  ssl_certificate_key " .. dir .. "/key.pem;",
         "  location / { proxy_pass http://127.0.0.1:" .. server.port .. "; proxy_http_version 1.1;",
         '    proxy_set_header Connection ""; }',
         "}",
      }, "\n"),
   }
end)

teardown(function()
   if h then h:remove() end
   if server then server:stop() end
end)

local function call(transport)
   local client = mock.client_options(server)
   client.base_url = "https://127.0.0.1:" .. tls_port
   local status, body = h:request("POST", "/call", cjson.encode{
      client = client, op = "get_customers_by_external_id", payload = { externalId = "tls" }, via = "ngx",
      transport = transport })
   assert(status == 200, tostring(body))
   return cjson.decode(body)
end

describe("review: TLS verification and pools", function()
   it("rv_tls_untrusted_fails: a verifying client does not accept the untrusted server", function()
      local a = call({ pool = "rv-own" })
      assert.are.equal("tls", a.ngx.err and a.ngx.err.kind, cjson.encode(a.ngx))
   end)

   -- opts.pool is used as the pool name as is: unlike the default name, it does not carry
   -- ":noverify". An insecure_skip_tls_verify client pools its unverified connection under it,
   -- and a verifying client with the same pool name then sends its signed request (Key, Sign)
   -- over that unverified connection and trusts the answer.
   it("rv_tls_pool_shared_with_insecure_client: a verifying client never rides on an unverified connection", function()
      local a = call({ pool = "rv-shared", insecure_skip_tls_verify = true })
      assert.is_table(a.ngx.res, cjson.encode(a.ngx))
      local b = call({ pool = "rv-shared" })
      assert.are.equal("tls", b.ngx.err and b.ngx.err.kind,
         "verifying client got " .. cjson.encode(b.ngx) .. " stats " .. cjson.encode(b.stats))
   end)
end)

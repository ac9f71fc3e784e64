-- rtt_nginx.lua: content handler for the "module in nginx" column of the bench's RTT section.
--   GET /rtt?case=C&n=N&max=S&base=URL&control=P&route=R
-- runs one cell of bench/rtt_cases.lua from this nginx worker through calypso.new{ transport =
-- "ngx" } (calypso.transport.ngx over cosockets; batches: one light thread per call), timed inside
-- nginx with purse.now() (monotonic, microseconds), and answers the sample lines. TLS is verified
-- against lua_ssl_trusted_certificate. Each client gets a pool of its own (the cold batch is then
-- really cold; idle connections are dropped after 5 s), with the default pool size.
local calypso = require "calypso"
local purse = require "calypso.purse"

local KEY, SECRET = "c529e14832b34b74972365cf7bf02430", "b823a6b9ea72408583cef9ec8d67fa52"
local ACCOUNT = "0xc195df92dd9db2a8f28e597981f113d6e7582f8b"

local args = ngx.req.get_uri_args()
local case, n, max_seconds = args.case, tonumber(args.n), tonumber(args.max)
local base, control, route = args.base, tonumber(args.control), tonumber(args.route)

local function accepts()
   local s = ngx.socket.tcp()
   s:settimeouts(5000, 5000, 5000)
   assert(s:connect("127.0.0.1", control))
   local line = assert(s:receive("*l"))
   s:close()
   local i = 0
   for v in assert(line:match("accepts=([%d,]+)"), line):gmatch("%d+") do
      i = i + 1
      if i == route then return tonumber(v) end
   end
   error("no listener " .. route .. " in " .. line)
end

local pools = 0
local api = { now = purse.now, accepts = accepts }
function api.new()
   pools = pools + 1
   local client = calypso.new{ key = KEY, secret = SECRET, account = ACCOUNT, base_url = base, transport = "ngx",
                               ngx_options = { pool = ("rtt:%d:%d:%d"):format(ngx.worker.pid(),
                                                                             ngx.now() * 1000, pools),
                                               keepalive_timeout = 5 } }
   return require("bench.rtt_wrap")(client)
end

local ok, lines = pcall(require("bench.rtt_cases"), case, n, max_seconds, api)
if not ok then
   ngx.status = 500
   ngx.say("rtt_nginx: ", case, ": ", tostring(lines))
   return
end
ngx.say(table.concat(lines, "\n"))

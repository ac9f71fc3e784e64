-- Test certificates made with the openssl command line, for HTTPS against local servers
-- (the mock's `tls` option, nginx, benchmarks). One call makes a fresh set in a new
-- directory:
--
--   local tls = require "support.tls"
--   local certs = tls.make()             -- or tls.make("/some/empty/dir")
--   mock.start{ tls = certs.server }     -- { certificate = path, key = path }
--   purse.new{ ..., ca_file = certs.ca }
--   tls.remove(certs)
--
-- certs.ca          the test CA's certificate (PEM), to pass as ca_file
-- certs.other_ca    a second CA that signed nothing here (a CA bundle that does not fit)
-- certs.server      { certificate, key }: 127.0.0.1 and localhost, valid now, signed by ca
-- certs.expired     { certificate, key }: the same names, valid only in January 2020
-- certs.wrong_host  { certificate, key }: valid now, but for wrong.example only
-- certs.dir         the directory holding them
-- Keys are P-256 (fast to make and cheap to handshake, also under valgrind).
local M = {}

local function quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function write(path, text)
   local f = assert(io.open(path, "w"))
   f:write(text)
   f:close()
end

-- Runs an openssl command; raises with its output when it fails.
local function openssl(args)
   local p = assert(io.popen("openssl " .. args .. " 2>&1"))
   local out = p:read("*a")
   local ok, _, code = p:close()
   if ok == true or ok == 0 or code == 0 then   -- 5.2+ returns true; 5.1 returns the status
      return out
   end
   error("support.tls: openssl " .. args:match("^%S+") .. " failed: " .. out, 2)
end

-- A CA-signing configuration for `openssl ca`, which alone can set arbitrary dates.
local CA_CONFIG = [[
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = %s
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = %s
]]

-- A leaf certificate for `names` (a subjectAltName value), valid from `start` to `stop`
-- (YYYYMMDDHHMMSSZ), signed by the CA in `dir`.
local function leaf(dir, name, cn, names, start, stop)
   local cfg = dir .. "/" .. name .. ".cnf"
   write(cfg, CA_CONFIG:format(dir, names))
   local key, csr, crt = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".csr", dir .. "/" .. name .. ".pem"
   openssl(("req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -subj %s")
      :format(quote(key), quote(csr), quote("/CN=" .. cn)))
   openssl(("ca -batch -notext -config %s -cert %s -keyfile %s -in %s -out %s -extensions leaf "
            .. "-startdate %s -enddate %s")
      :format(quote(cfg), quote(dir .. "/ca.pem"), quote(dir .. "/ca.key"), quote(csr), quote(crt), start, stop))
   return { certificate = crt, key = key }
end

local function utc(offset_days)
   return os.date("!%Y%m%d%H%M%SZ", os.time() + offset_days * 86400)
end

-- A self-signed CA certificate and key named `name` in `dir`.
local function make_ca(dir, name, cn)
   openssl(("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -keyout %s -out %s -subj %s"
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
      :format(quote(dir .. "/" .. name .. ".key"), quote(dir .. "/" .. name .. ".pem"), quote("/CN=" .. cn)))
   return dir .. "/" .. name .. ".pem"
end

--- Makes a fresh set of certificates (see the header); `dir` defaults to a new temporary
-- directory.
function M.make(dir)
   if not dir then
      dir = os.tmpname()          -- a unique name; replace the file by a directory
      os.remove(dir)
   end
   assert(os.execute("mkdir -p " .. quote(dir)), "support.tls: cannot create " .. dir)
   write(dir .. "/index.txt", "")
   write(dir .. "/serial", "1000\n")
   local certs = { dir = dir }
   certs.ca = make_ca(dir, "ca", "calypso-purse test CA")
   certs.other_ca = make_ca(dir, "other_ca", "calypso-purse unrelated CA")
   certs.server = leaf(dir, "server", "127.0.0.1", "IP:127.0.0.1, DNS:localhost", utc(-1), utc(30))
   certs.expired = leaf(dir, "expired", "127.0.0.1", "IP:127.0.0.1, DNS:localhost",
                        "20200101000000Z", "20200201000000Z")
   certs.wrong_host = leaf(dir, "wrong_host", "wrong.example", "DNS:wrong.example", utc(-1), utc(30))
   return certs
end

--- Deletes the directory of a set made by M.make.
function M.remove(certs)
   if certs and certs.dir and certs.dir:match("^/tmp/") then
      os.execute("rm -rf " .. quote(certs.dir))
   end
end

return M

#!/bin/sh
# The release check of `make test` (and `make release-check`): scripts/check-release.sh [runtime]
# (runtime: 5.1, 5.2, 5.3, 5.4 or jit; default 5.4).
#   1. One version: src/version.h's CALYPSO_VERSION is the version of both release rockspecs
#      (rockspecs/calypso-purse-<v>-1.rockspec, rockspecs/calypso-purse-mock-<v>-1.rockspec,
#      their `version` and source tag v<v>, the mock pinning calypso-purse == <v>), and the
#      newest entry of CHANGELOG.md.
#   2. What a user installs: each release rockspec is packed into a source rock (luarocks pack)
#      from an archive of the committed tree (plus uncommitted changes to tracked files), as
#      the release tag's archive would be, then installed from that .src.rock OFFLINE
#      (--deps-mode=none; Debian's lua-cjson and lua-socket serve the dependencies) into a
#      temporary tree. From a directory outside the clone, calypso.purse and calypso must load
#      from that tree with _VERSION <v>, and a call through the installed calypso-mock command
#      must arrive with the User-Agent calypso-purse/<v>.
# Prints "release: ..." lines; exits non-zero on the first disagreement.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
runtime=${1:-5.4}
case "$runtime" in
  jit) lua=luajit; lv=5.1; incdir=/usr/include/luajit-2.1 ;;
  5.[1-4]) lua=lua$runtime; lv=$runtime; incdir=/usr/include/lua$runtime ;;
  *) echo "check-release: unknown runtime $runtime"; exit 2 ;;
esac

fail() { echo "check-release: $*"; exit 1; }

# ---- 1. one version
v=$(sed -n 's/^#define CALYPSO_VERSION "\(.*\)"$/\1/p' src/version.h)
echo "$v" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' || fail "src/version.h: no CALYPSO_VERSION \"x.y.z\" (got '$v')"
[ "$(make -s version)" = "$v" ] || fail "make version says '$(make -s version)', src/version.h '$v'"
client_spec=rockspecs/calypso-purse-$v-1.rockspec
mock_spec=rockspecs/calypso-purse-mock-$v-1.rockspec
for spec in "$client_spec" "$mock_spec"; do
  [ -f "$spec" ] || fail "$spec is missing (src/version.h says $v)"
  grep -qx "version = \"$v-1\"" "$spec" || fail "$spec: version is not \"$v-1\""
  grep -qx "   tag = \"v$v\"," "$spec" || fail "$spec: source tag is not v$v"
done
grep -qx "   \"calypso-purse == $v\"," "$mock_spec" || fail "$mock_spec: does not depend on calypso-purse == $v"
top=$(sed -n 's/^## \[\([0-9][0-9.]*\)\].*/\1/p' CHANGELOG.md | head -n 1)
[ "$top" = "$v" ] || fail "CHANGELOG.md: the newest entry is '$top', src/version.h says $v"
echo "release: version $v in src/version.h, make version, $client_spec, $mock_spec and CHANGELOG.md"

# ---- 2. pack, install offline, load
command -v "$lua" >/dev/null 2>&1 || fail "$lua is not installed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name=calypso-purse-$v
if git rev-parse --git-dir >/dev/null 2>&1; then
  rev=$(git stash create 2>/dev/null || true)
  git archive --format=tar.gz --prefix="$name/" -o "$tmp/$name.tar.gz" "${rev:-HEAD}"
else
  (cd .. && tar -czf "$tmp/$name.tar.gz" --exclude="$(basename "$root")/build" \
     --transform="s,^$(basename "$root"),$name," "$(basename "$root")")
fi
mkdir "$tmp/specs" "$tmp/run"
# A release rockspec as it is, but its source is the archive made above.
cat >"$tmp/rewrite.lua" <<'EOF'
local src, dst, url, dir = arg[1], arg[2], arg[3], arg[4]
local f = assert(io.open(src))
local s = f:read("*a")
f:close()
local n
s, n = s:gsub("\nsource = %b{}", function()
   return ("\nsource = { url = %q, dir = %q }"):format(url, dir)
end, 1)
assert(n == 1, src .. ": no source table")
f = assert(io.open(dst, "w"))
f:write(s)
f:close()
EOF
for spec in "$client_spec" "$mock_spec"; do
  "$lua" "$tmp/rewrite.lua" "$spec" "$tmp/specs/$(basename "$spec")" "file://$tmp/$name.tar.gz" "$name"
  (cd "$tmp/specs" && luarocks --lua-version "$lv" pack "$(basename "$spec")") >"$tmp/pack.log" 2>&1 \
    || { cat "$tmp/pack.log"; fail "luarocks pack $spec failed"; }
done
for rock in "calypso-purse-$v-1.src.rock" "calypso-purse-mock-$v-1.src.rock"; do
  [ -f "$tmp/specs/$rock" ] || fail "luarocks pack made no $rock"
  luarocks --lua-version "$lv" --tree "$tmp/tree" install --deps-mode=none \
    "$tmp/specs/$rock" LUA_INCDIR="$incdir" >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log"; fail "luarocks install $rock failed"; }
  echo "release: $rock ($(wc -c <"$tmp/specs/$rock") bytes) installed offline into a temporary tree"
done
[ ! -e calypso/purse.so ] || fail "calypso/purse.so left in the source tree"

cat >"$tmp/run/check.lua" <<'EOF'
local tree, lv, v, lua = arg[1], arg[2], arg[3], arg[4]
local function check(ok, msg) if not ok then io.stderr:write(msg, "\n") os.exit(1) end end
local so = package.searchpath and package.searchpath("calypso.purse", package.cpath)
  or tree .. "/lib/lua/" .. lv .. "/calypso/purse.so"
check(so == tree .. "/lib/lua/" .. lv .. "/calypso/purse.so", "calypso.purse would load from " .. tostring(so))
local purse = require("calypso.purse")
local calypso = require("calypso")
check(purse._VERSION == v, "calypso.purse._VERSION is " .. tostring(purse._VERSION))
check(calypso._VERSION == v, "calypso._VERSION is " .. tostring(calypso._VERSION))
local state = require("calypso.mock.state")
local json = require("cjson")
local http = require("socket.http")
-- the installed command, bound to this runtime, on a free loopback port for at most 60 s
local cmd = tree .. "/bin/calypso-mock-" .. lua
local p = assert(io.popen("'" .. cmd .. "' --port 0 --lifetime 60 --quiet", "r"))
local port = (p:read("*l") or ""):match("^LISTENING (%d+)$")
check(port, cmd .. " did not print LISTENING <port>")
local base = "http://127.0.0.1:" .. port
local client = purse.new({ key = state.DEFAULT_KEY, secret = state.DEFAULT_SECRET,
                           account = state.DEFAULT_ACCOUNT, base_url = base })
local customer, msg = client:create_customer({ externalId = "release-check" })
client:close()
local body = http.request(base .. "/_mock/requests")
http.request(base .. "/_mock/shutdown", "")
p:close()
check(customer and customer.externalId == "release-check", "create_customer: " .. tostring(msg))
local log = json.decode(body or "[]")
check(#log == 1, "the mock recorded " .. #log .. " requests, not 1")
local ua = log[1].headers["user-agent"]
check(ua == "calypso-purse/" .. v, "User-Agent " .. tostring(ua))
print(("release: calypso.purse %s loaded from %s; calypso._VERSION %s; %s saw User-Agent %s")
  :format(purse._VERSION, so, calypso._VERSION, "calypso-mock-" .. lua, ua))
EOF
# Outside the clone, with only the temporary tree and the system's paths.
(cd "$tmp/run" && \
  LUA_PATH="$tmp/tree/share/lua/$lv/?.lua;$tmp/tree/share/lua/$lv/?/init.lua;;" \
  LUA_CPATH="$tmp/tree/lib/lua/$lv/?.so;;" \
  "$lua" check.lua "$tmp/tree" "$lv" "$v" "$lua") || fail "the installed rocks do not work"
# The installed module exports luaopen_calypso_purse and nothing else.
sh scripts/check-exports.sh "$tmp/tree/lib/lua/$lv/calypso/purse.so" || fail "the installed module leaks symbols"
echo "release: ok"

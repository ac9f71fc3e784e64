-- The version of calypso-purse as src/version.h writes it (the one version source), for specs
-- that check what is derived from it.
local f = assert(io.open("src/version.h", "r"))
local text = f:read("*a")
f:close()
local version = text:match('\n#define CALYPSO_VERSION "(%d+%.%d+%.%d+)"\n')
assert(version, "src/version.h: no #define CALYPSO_VERSION \"x.y.z\"")
return version

-- luacheck configuration (Debian's lua-check): `make test` runs `luacheck .` and expects zero
-- warnings. Library code runs on Lua 5.1-5.4 and LuaJIT; nginx code sees ngx_lua's globals.
std = "max"
max_line_length = 120
exclude_files = { "build/", ".git/" }

-- Code that runs inside nginx (or checks for it).
files["lua/calypso/transport/ngx.lua"] = { std = "max+ngx_lua" }
files["lua/calypso/init.lua"] = { read_globals = { "ngx" } }
files["examples/openresty/"] = { std = "max+ngx_lua" }
-- (spec/nginx/ is under spec/ too: new_read_globals drops that entry's read-only `ngx`, which
-- would otherwise forbid the handlers' ngx.status and ngx.header writes the std allows.)
files["spec/nginx/"] = { std = "max+ngx_lua", new_read_globals = {} }
files["bench/"] = { read_globals = { "ngx", "jit" } }
files["bench/rtt_nginx.lua"] = { std = "max+ngx_lua", new_read_globals = {} }   -- runs in nginx

-- Specs: busted's globals; nginx handlers written inside spec strings are not Lua files.
files["spec/"] = { std = "max+busted", read_globals = { "jit", "ngx" } }

-- LuaCATS annotation files: stubs whose arguments and tables exist for the editor only.
files["library/"] = { unused = false }

-- Data: corpora and known-answer vectors, one case per line however long.
files["spec/support/hostile_corpus.lua"] = { max_line_length = false }
files["spec/sign_spec.lua"] = { max_line_length = false }

-- libFuzzer's Lua targets define the entry point the C driver calls.
files["fuzz/"] = { globals = { "fuzz_one" } }

#!/bin/sh
# The documentation check (a `make test` stage): every function and method the modules expose
# at run time has an entry in docs/reference.md and a LuaCATS annotation in library/, and the
# relative links in README.md and docs/ resolve. See scripts/check-docs.lua.
# Prints "lua docs: N passed, M failed"; exits non-zero on any failure.
set -eu
cd "$(dirname "$0")/.."
make -s build LUA_VERSION=5.4
LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' \
  exec lua5.4 scripts/check-docs.lua

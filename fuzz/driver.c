/* driver.c: the libFuzzer entry for every target under fuzz/. The C core is compiled into
 * the binary (no dlopen) and preloaded as calypso.purse into one Lua 5.4 state; the target's
 * Lua script (fuzz/<target>.lua, chosen at build time) defines fuzz_one(bytes), which drives
 * the C functions and checks their contract. An error raised by fuzz_one is a broken
 * contract: it is printed and the process aborts, so libFuzzer saves the input. Memory and
 * UB errors are caught by ASan/UBSan as usual. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef FUZZ_ROOT
#error "build with -DFUZZ_ROOT=\"/path/to/repo\" (fuzz/build.sh does)"
#endif
#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\" (fuzz/build.sh does)"
#endif

int luaopen_calypso_purse(lua_State *L);

static lua_State *L;
static unsigned long runs;

static void die(const char *what)
{
    fprintf(stderr, "fuzz %s: %s: %s\n", FUZZ_TARGET, what, lua_tostring(L, -1));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    /* package.preload["calypso.purse"] = luaopen_calypso_purse; package.path = repo's lua/ */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_calypso_purse);
    lua_setfield(L, -2, "calypso.purse");
    lua_pop(L, 1);
    lua_pushstring(L, FUZZ_ROOT "/lua/?.lua;" FUZZ_ROOT "/lua/?/init.lua;" FUZZ_ROOT "/fuzz/?.lua;");
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    if (luaL_dofile(L, FUZZ_ROOT "/fuzz/" FUZZ_TARGET ".lua") != 0)
        die("loading the target script");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_settop(L, 0);
    lua_getglobal(L, "fuzz_one");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != 0)
        die("contract broken");
    /* A full collection now and then runs the finalizers (client __gc) under the sanitizers. */
    if (++runs % 256 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

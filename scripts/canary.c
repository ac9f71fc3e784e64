/* canary.c: one memory bug of each kind, for scripts/sanitize.sh and scripts/valgrind.sh to
 * prove that their set-up catches findings (a green run with a blind checker proves nothing).
 * Never part of the module. */
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
static int overflow(lua_State *L) {
    char *p = malloc(8);
    memset(p, 0, 8);
    p[luaL_checkinteger(L, 1)] = 1;
    lua_pushinteger(L, p[0]);
    free(p);
    return 1;
}
/* Sixteen lost blocks: a stale copy of the last pointer in a register or on the stack can
 * hide one from a conservative leak scan, never all of them. */
static int leak(lua_State *L) {
    int i, ok = 1;
    for (i = 0; i < 16; i++) {
        char *volatile p = malloc(77);
        ok = ok && p != NULL;
        if (p != NULL)
            p[0] = (char)i;
    }
    lua_pushboolean(L, ok);
    return 1;
}
static int signed_overflow(lua_State *L) { int i = (int)luaL_checkinteger(L, 1); lua_pushinteger(L, i + 1); return 1; }
int luaopen_canary(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, overflow); lua_setfield(L, -2, "overflow");
    lua_pushcfunction(L, leak); lua_setfield(L, -2, "leak");
    lua_pushcfunction(L, signed_overflow); lua_setfield(L, -2, "signed_overflow");
    return 1;
}

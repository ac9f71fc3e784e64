/* compat.h: the only place that looks at LUA_VERSION_NUM.
 * The core is written against the Lua 5.3/5.4 API; these prefixed static shims
 * fill the gaps on 5.1, 5.2 and LuaJIT (static inline: unused ones cost nothing). They are prefixed because LuaJIT 2.1
 * already exports some of the unprefixed names and a second copy would clash. */
#ifndef CALYPSO_COMPAT_H
#define CALYPSO_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define calypso_rawlen(L, i) lua_objlen((L), (i))
#else
#define calypso_rawlen(L, i) lua_rawlen((L), (i))
#endif

#ifndef LUA_OK
#define LUA_OK 0
#endif

/* luaL_setfuncs for 5.1 (LuaJIT has one, but we never rely on it). */
static inline void calypso_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
#if LUA_VERSION_NUM >= 502
    luaL_setfuncs(L, l, nup);
#else
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
#endif
}

/* luaL_testudata for 5.1: the userdata at i if its metatable is tname's. */
static inline void *calypso_testudata(lua_State *L, int i, const char *tname)
{
#if LUA_VERSION_NUM >= 502
    return luaL_testudata(L, i, tname);
#else
    void *p = lua_touserdata(L, i);
    if (p != NULL && lua_getmetatable(L, i)) {
        lua_getfield(L, LUA_REGISTRYINDEX, tname);
        if (!lua_rawequal(L, -1, -2))
            p = NULL;
        lua_pop(L, 2);
        return p;
    }
    return NULL;
#endif
}

/* True when the value at i is a number with an integral value within +-2^53
 * (or any integer of the 5.3+ integer subtype): 5.0 counts as well as 5, on
 * every runtime alike. */
static inline int calypso_isinteger(lua_State *L, int i)
{
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER)
        return 0;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, i))
        return 1;
#endif
    n = lua_tonumber(L, i);
    /* range first: casting NaN, an infinity or anything past 2^63 to long long is UB */
    return n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == (lua_Number)(long long)n;
}

/* The value at i (a number for which calypso_isinteger holds) as an integer. */
static inline lua_Integer calypso_tointeger(lua_State *L, int i)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, i))
        return lua_tointeger(L, i);
#endif
    return (lua_Integer)lua_tonumber(L, i);
}

/* Pushes a 64-bit integer: an integer on 5.3+, an exact double before. */
static inline void calypso_pushint64(lua_State *L, long long v)
{
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}


#endif

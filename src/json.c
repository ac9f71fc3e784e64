/* json.c: lua-cjson bridge (see json.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "json.h"

/* Calls cjson_instance[name](arg) for its configuration side effect. */
static void configure(lua_State *L, const char *name, int arg)
{
    lua_getfield(L, -1, name);
    if (lua_isfunction(L, -1)) {
        lua_pushinteger(L, arg);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
}

void calypso_json_push_codec(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);                       /* cjson */
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);                       /* cjson, inst */
    configure(L, "decode_max_depth", CALYPSO_JSON_MAX_DEPTH);
    configure(L, "encode_max_depth", CALYPSO_JSON_MAX_DEPTH);
    /* Refuse NaN, Infinity and hex numbers in responses: not JSON. */
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode");           /* cjson, inst, encode */
    lua_getfield(L, -2, "decode");           /* cjson, inst, encode, decode */
    lua_remove(L, -3);
    lua_remove(L, -3);                       /* encode, decode */
}

/* Copies a cjson error into msg, keeping it on one short line. */
static void copy_reason(lua_State *L, const char *prefix, char *msg, size_t msglen)
{
    const char *e = lua_tostring(L, -1);
    size_t i;
    snprintf(msg, msglen, "%s%s", prefix, e ? e : "unknown error");
    for (i = 0; msg[i]; i++)
        if ((unsigned char)msg[i] < 0x20)
            msg[i] = ' ';
}

int calypso_json_encode(lua_State *L, int idx, char *msg, size_t msglen)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushvalue(L, CALYPSO_UV_ENCODE);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        copy_reason(L, "cannot encode payload: ", msg, msglen);
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

/* Integral doubles within +-2^53 are exact: make them integers on 5.3+. */
static void normalize_number(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 503
    lua_Number n = lua_tonumber(L, idx);
    if (!lua_isinteger(L, idx) && n == floor(n) && fabs(n) <= 9007199254740992.0) {
        lua_pushinteger(L, (lua_Integer)n);
        lua_replace(L, idx);
    }
#else
    (void)L; (void)idx;
#endif
}

/* Walks a decoded table in place: numbers to integers, null members removed. */
static void normalize_table(lua_State *L, int idx)
{
    int is_array = calypso_rawlen(L, idx) > 0;
    luaL_checkstack(L, 4, "calypso: response too deep");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int vt = lua_type(L, -1);
        if (vt == LUA_TNUMBER) {
            normalize_number(L, lua_gettop(L));
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, idx);              /* assigning an existing field is allowed during next */
        } else if (vt == LUA_TTABLE) {
            normalize_table(L, lua_gettop(L));
            lua_pop(L, 1);
        } else if (vt == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL && !is_array) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, idx);              /* clearing an existing field is allowed too */
        } else {
            lua_pop(L, 1);
        }
    }
}

int calypso_json_decode(lua_State *L, const char *s, size_t n, char *msg, size_t msglen)
{
    lua_pushvalue(L, CALYPSO_UV_DECODE);
    lua_pushlstring(L, s, n);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        copy_reason(L, "malformed JSON: ", msg, msglen);
        lua_pop(L, 1);
        return -1;
    }
    if (lua_type(L, -1) == LUA_TTABLE)
        normalize_table(L, lua_gettop(L));
    else if (lua_type(L, -1) == LUA_TNUMBER)
        normalize_number(L, lua_gettop(L));
    return 0;
}

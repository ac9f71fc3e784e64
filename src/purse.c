/* purse.c: module entry for calypso.purse: metatables, functions, version,
 * one-time global init. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <lauxlib.h>
#include "compat.h"
#include "client.h"
#include "endpoints.h"
#include "errors.h"
#include "json.h"
#include "multi.h"
#include "request.h"
#include "sign.h"

/* purse.sign(secret, body) -> lowercase hex HMAC-SHA512. */
static int purse_sign(lua_State *L)
{
    size_t kn, mn;
    const char *key = luaL_checklstring(L, 1, &kn);
    const char *msg = luaL_checklstring(L, 2, &mn);
    char hex[CALYPSO_SIGN_HEX];
    if (calypso_sign_oneshot((const unsigned char *)key, kn, (const unsigned char *)msg, mn, hex) != 0)
        return luaL_error(L, "calypso.purse.sign: HMAC-SHA512 failed");
    lua_pushlstring(L, hex, sizeof hex);
    return 1;
}

/* purse.verify(secret, body, signature) -> boolean, constant time, any hex case. */
static int purse_verify(lua_State *L)
{
    size_t kn, mn, sn;
    const char *key = luaL_checklstring(L, 1, &kn);
    const char *msg = luaL_checklstring(L, 2, &mn);
    const char *sig = luaL_checklstring(L, 3, &sn);
    lua_pushboolean(L, calypso_sign_verify((const unsigned char *)key, kn,
                                           (const unsigned char *)msg, mn, sig, sn));
    return 1;
}

#define SCRATCH_MT "calypso.purse.scratch"

static int scratch_gc(lua_State *L)
{
    calypso_buf_free(luaL_checkudata(L, 1, SCRATCH_MT));
    return 0;
}

/* purse.decode(text [, exact_amounts]) -> value | nil, message, err
 * The response decoder of the clients (integers, nulls, exact numbers), for
 * text that did not come through a client, such as webhook bodies. */
static int purse_decode(lua_State *L)
{
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    int exact = lua_toboolean(L, 2);
    char reason[240];
    /* The rewrite buffer is owned by a userdata, so a memory error raised
     * while decoding cannot leak it: __gc frees it then. */
    calypso_buf *scratch = lua_newuserdata(L, sizeof *scratch);
    int r;
    memset(scratch, 0, sizeof *scratch);
    luaL_getmetatable(L, SCRATCH_MT);
    lua_setmetatable(L, -2);
    scratch->limit = n + n / 2 + 64;   /* every rewritten token adds two or three bytes */
    r = calypso_json_decode(L, text, n, exact, scratch, reason, sizeof reason);
    calypso_buf_free(scratch);
    if (r != 0)
        return calypso_push_simple_failure(L, "decode", "decode", reason);
    return 1;
}

/* purse.now() -> seconds on a monotonic clock (for deadlines and durations). */
static int purse_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)calypso_monotonic());
    return 1;
}

/* purse.sleep(seconds): blocks the calling thread (outside nginx only; inside
 * OpenResty the Lua layer uses ngx.sleep, which yields instead). */
static int purse_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (!(s >= 0 && s <= 86400))
        return luaL_argerror(L, 1, "seconds must be from 0 to 86400");
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* purse.operations: name -> { path = "...", writes = bool }, from the one table. */
static void push_operations(lua_State *L)
{
    int i;
    lua_createtable(L, 0, calypso_endpoint_count);
    for (i = 0; i < calypso_endpoint_count; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, calypso_endpoints[i].path);
        lua_setfield(L, -2, "path");
        lua_pushboolean(L, calypso_endpoints[i].writes);
        lua_setfield(L, -2, "writes");
        lua_pushboolean(L, calypso_endpoints[i].shape == CALYPSO_RETURNS_LIST);
        lua_setfield(L, -2, "returns_list");
        lua_setfield(L, -2, calypso_endpoints[i].name);
    }
}

static const luaL_Reg purse_functions[] = {
    { "new", calypso_client_new },
    { "sign", purse_sign },
    { "verify", purse_verify },
    { "now", purse_now },
    { "decode", purse_decode },
    { "sleep", purse_sleep },
    { NULL, NULL }
};

__attribute__((visibility("default"))) int luaopen_calypso_purse(lua_State *L)
{
    /* curl_global_init is reference counted and cheap after the first call;
     * it is never undone from a finalizer, as other users may share libcurl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "calypso.purse: curl_global_init failed");
    calypso_json_push_codec(L);                      /* enc, dec, msgh */
    calypso_client_register(L);                      /* enc, dec, msgh, client methods */
    calypso_multi_register(L);                       /* adds multi and batch */
    lua_pop(L, 1);                                   /* enc, dec, msgh */
    luaL_newmetatable(L, SCRATCH_MT);
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_newtable(L);                                 /* enc, dec, msgh, M */
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    calypso_setfuncs(L, purse_functions, CALYPSO_JSON_UPVALUES);
    lua_pushliteral(L, CALYPSO_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushlightuserdata(L, NULL);                  /* the same value as cjson.null */
    lua_setfield(L, -2, "null");
    push_operations(L);
    lua_setfield(L, -2, "operations");
    return 1;
}

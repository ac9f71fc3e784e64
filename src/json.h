/* json.h: the bridge to lua-cjson. A private cjson instance (cjson.new()) is
 * kept as upvalues of every function that needs it, so the user's own cjson
 * settings are never touched and lookups cost nothing. */
#ifndef CALYPSO_JSON_H
#define CALYPSO_JSON_H

#include <stddef.h>
#include <lua.h>
#include "buf.h"

#define CALYPSO_UV_ENCODE lua_upvalueindex(1)
#define CALYPSO_UV_DECODE lua_upvalueindex(2)
#define CALYPSO_UV_MSGH lua_upvalueindex(3)
#define CALYPSO_JSON_UPVALUES 3

#define CALYPSO_JSON_MAX_DEPTH 64   /* deeper responses are a decode error */

/* Pushes a private, configured cjson's encode and decode functions and the
 * message handler the core calls them with (CALYPSO_JSON_UPVALUES values). */
void calypso_json_push_codec(lua_State *L);

/* Both calls run lua-cjson under lua_pcall, and only lua-cjson's own errors
 * (bad JSON, a value it cannot encode) become a failure: anything else that
 * happens inside (out of memory, an error in error handling, an error raised
 * by a finalizer or hook that ran there) is raised again as it came.
 * Encodes the value at idx; on success pushes the JSON string and returns 0,
 * else leaves the stack as it was, writes the reason to msg and returns -1. */
int calypso_json_encode(lua_State *L, int idx, char *msg, size_t msglen);

/* Decodes s; on success pushes the value, normalised (see below), and returns 0;
 * else leaves the stack as it was, writes the reason to msg and returns -1.
 * Normalised: integral numbers become integers (Lua 5.3+), integers too long
 * for a double are decoded exactly (numbers.h), JSON null members of objects
 * are removed, JSON null items of arrays stay as purse.null. With
 * exact_amounts, "amount" values are decimal strings as the server wrote them.
 * scratch is a buffer the rewrite may use (NULL: no rewriting at all). */
int calypso_json_decode(lua_State *L, const char *s, size_t n, int exact_amounts,
                        calypso_buf *scratch, char *msg, size_t msglen);

#endif

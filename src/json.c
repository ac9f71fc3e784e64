/* json.c: lua-cjson bridge (see json.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "json.h"
#include "numbers.h"
#include "validate.h"

/* The address that marks an error raised by something other than lua-cjson. */
static const char foreign_key = 0;

/* Message handler of the lua-cjson calls: an error raised by encode or decode
 * itself (the function running at level 1) passes unchanged; any other (a
 * finalizer or hook that ran inside) comes back wrapped, to be raised again. */
static int message_handler(lua_State *L)
{
    lua_Debug ar;
    int own = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "f", &ar)) {
        own = lua_rawequal(L, -1, lua_upvalueindex(1)) || lua_rawequal(L, -1, lua_upvalueindex(2));
        lua_pop(L, 1);
    }
    if (own)
        return 1;
    lua_createtable(L, 0, 1);
    lua_pushlightuserdata(L, (void *)&foreign_key);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);                       /* err, { [foreign_key] = err } */
    return 1;
}

/* Calls the cjson function at fn with the value on top as its argument, under
 * the message handler. Returns 0 with the value replaced by the result, or -1
 * with it replaced by lua-cjson's error; raises anything that is not
 * lua-cjson's own error. */
static int cjson_call(lua_State *L, int fn)
{
    int status;
    lua_pushvalue(L, CALYPSO_UV_MSGH);
    lua_insert(L, -2);                       /* msgh, arg */
    lua_pushvalue(L, fn);
    lua_insert(L, -2);                       /* msgh, fn, arg */
    status = lua_pcall(L, 1, 1, -3);         /* msgh, result */
    lua_remove(L, -2);
    if (status == LUA_OK)
        return 0;
    if (status == LUA_ERRRUN && lua_istable(L, -1)) {
        lua_pushlightuserdata(L, (void *)&foreign_key);
        lua_rawget(L, -2);
        if (!lua_isnil(L, -1))
            lua_error(L);                    /* what the finalizer or hook raised */
        lua_pop(L, 1);
    }
    if (status != LUA_ERRRUN)
        lua_error(L);                        /* out of memory, error in the handler, in __gc */
    return -1;
}

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
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, message_handler, 2); /* encode, decode, msgh */
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
    lua_pushvalue(L, idx);
    if (cjson_call(L, CALYPSO_UV_ENCODE) != 0) {
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

/* A marked string (numbers.h) back to an exact integer, or to its digits when
 * the runtime has no integer type wide enough. */
static void unmark_bigint(lua_State *L, int idx)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
#if LUA_VERSION_NUM >= 503
    if (n - 1 <= 20) {   /* sign + 19 digits: the widest lua_Integer */
        lua_Integer v = 0;
        size_t i;
        int neg = s[1] == '-', ok = 1;
        for (i = 1 + (size_t)neg; i < n && ok; i++) {
            int d = s[i] - '0';
            if (d < 0 || d > 9)
                ok = 0;
            else if (!neg && v > (LUA_MAXINTEGER - d) / 10)
                ok = 0;
            else if (neg && v < (LUA_MININTEGER + d) / 10)
                ok = 0;
            else
                v = v * 10 + (neg ? -d : d);
        }
        if (ok && n > 1 + (size_t)neg) {
            lua_pushinteger(L, v);
            lua_replace(L, idx);
            return;
        }
    }
#else
    /* Doubles hold every integer below 2^53 exactly (and strtod finds it). */
    if (n - 1 <= 17) {
        char tmp[24];
        double d;
        memcpy(tmp, s + 1, n - 1);
        tmp[n - 1] = '\0';
        d = strtod(tmp, NULL);
        if (fabs(d) < 9007199254740992.0) {
            lua_pushnumber(L, d);
            lua_replace(L, idx);
            return;
        }
    }
#endif
    lua_pushlstring(L, s + 1, n - 1);
    lua_replace(L, idx);
}

static int is_marked(lua_State *L, int idx)
{
    size_t n;
    const char *s;
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    s = lua_tolstring(L, idx, &n);
    return n > 1 && s[0] == CALYPSO_BIGINT_MARK;
}

/* Walks a decoded table in place: numbers to integers, null members removed.
 * Returns -1 when it met a number out of double range (1e999 decodes to inf),
 * which no Calypso field can hold. */
static int normalize_table(lua_State *L, int idx)
{
    int bad = 0;
    int is_array = calypso_rawlen(L, idx) > 0;
    luaL_checkstack(L, 4, "calypso: response too deep");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int vt = lua_type(L, -1);
        if (vt == LUA_TNUMBER || (vt == LUA_TSTRING && is_marked(L, -1))) {
            if (vt == LUA_TNUMBER && !isfinite((double)lua_tonumber(L, -1)))
                bad = -1;
            if (vt == LUA_TNUMBER)
                normalize_number(L, lua_gettop(L));
            else
                unmark_bigint(L, lua_gettop(L));
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, idx);              /* assigning an existing field is allowed during next */
        } else if (vt == LUA_TTABLE) {
            if (normalize_table(L, lua_gettop(L)) != 0)
                bad = -1;
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
    return bad;
}

int calypso_json_decode(lua_State *L, const char *s, size_t n, int exact_amounts,
                        calypso_buf *scratch, char *msg, size_t msglen)
{
    /* JSON text is UTF-8 (RFC 8259 section 8.1). lua-cjson copies string bytes
     * unchecked, so without this a bad byte would pass or fail depending on
     * where in a string it sits (the bigint marker check below sees only the
     * first byte). */
    if (!calypso_utf8_valid(s, n)) {
        snprintf(msg, msglen, "malformed JSON: invalid UTF-8");
        return -1;
    }
    /* A raw NUL is never valid JSON (in strings it must be escaped), and lua-cjson
     * 2.1 takes it for the end of the text: '{"a":1}\0anything' would decode. */
    if (memchr(s, '\0', n) != NULL) {
        snprintf(msg, msglen, "malformed JSON: NUL byte");
        return -1;
    }
    int seen = CALYPSO_SEEN_NUMBER | CALYPSO_SEEN_NULL;   /* unknown: normalise */
    if (scratch != NULL) {
        int r = calypso_numbers_protect(s, n, exact_amounts, scratch, &seen);
        if (r < 0) {
            snprintf(msg, msglen, "malformed JSON: invalid UTF-8 or too large");
            return -1;
        }
        if (r == 1) {
            s = scratch->data;
            n = scratch->len;
            seen |= CALYPSO_SEEN_NUMBER;   /* marked strings to turn back into integers */
        }
    }
    lua_pushlstring(L, s, n);
    if (cjson_call(L, CALYPSO_UV_DECODE) != 0) {
        copy_reason(L, "malformed JSON: ", msg, msglen);
        lua_pop(L, 1);
        return -1;
    }
    if (seen == 0)
        return 0;   /* only strings, booleans and containers: nothing to normalise */
    if ((lua_type(L, -1) == LUA_TTABLE && normalize_table(L, lua_gettop(L)) != 0) ||
        (lua_type(L, -1) == LUA_TNUMBER && !isfinite((double)lua_tonumber(L, -1)))) {
        lua_pop(L, 1);
        snprintf(msg, msglen, "malformed JSON: a number too large for a double");
        return -1;
    }
    if (lua_type(L, -1) == LUA_TNUMBER)
        normalize_number(L, lua_gettop(L));
    else if (is_marked(L, -1))
        unmark_bigint(L, lua_gettop(L));
    return 0;
}

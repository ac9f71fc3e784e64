/* errors.c: builds the (nil, message, err) failure triple. */
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "errors.h"

#define BODY_SNIPPET 256   /* enough to recognise an HTML error page */

static void set_string(lua_State *L, const char *name, const char *v)
{
    if (v != NULL) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, name);
    }
}

int calypso_push_failure(lua_State *L, const calypso_failure *f)
{
    luaL_checkstack(L, 6, "calypso: failure");
    lua_pushnil(L);
    if (f->op != NULL)
        lua_pushfstring(L, "calypso: %s: %s", f->op, f->message);
    else
        lua_pushfstring(L, "calypso: %s", f->message);
    lua_createtable(L, 0, 8);
    set_string(L, "kind", f->kind);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "message");
    set_string(L, "op", f->op);
    if (f->status > 0) {
        lua_pushinteger(L, (lua_Integer)f->status);
        lua_setfield(L, -2, "status");
    }
    set_string(L, "code", f->code);
    set_string(L, "api_message", f->api_message);
    set_string(L, "trace_id", f->trace_id);
    set_string(L, "retry_after", f->retry_after);
    set_string(L, "date", f->date);
    if (f->body != NULL) {
        lua_pushlstring(L, f->body, f->body_len > BODY_SNIPPET ? BODY_SNIPPET : f->body_len);
        lua_setfield(L, -2, "body");
    }
    lua_pushboolean(L, f->retryable);
    lua_setfield(L, -2, "retryable");
    lua_pushboolean(L, f->sent);
    lua_setfield(L, -2, "sent");
    return 3;
}

int calypso_push_simple_failure(lua_State *L, const char *kind, const char *op, const char *message)
{
    calypso_failure f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.op = op;
    f.message = message;
    return calypso_push_failure(L, &f);
}

int calypso_argerror(lua_State *L, int idx, const char *fname, const char *extramsg)
{
    if (idx <= 1)
        return luaL_error(L, "calling '%s' on bad self (%s)", fname, extramsg);
    return luaL_error(L, "bad argument #%d to '%s' (%s)", idx - 1, fname, extramsg);
}

static int type_error(lua_State *L, int idx, const char *fname, const char *tname)
{
    return calypso_argerror(L, idx, fname, lua_pushfstring(L, "%s expected, got %s", tname,
                                                           luaL_typename(L, idx)));
}

void *calypso_checkself(lua_State *L, const char *tname, const char *fname)
{
    void *p = calypso_testudata(L, 1, tname);
    if (p == NULL)
        type_error(L, 1, fname, tname);
    return p;
}

const char *calypso_checklstring(lua_State *L, int idx, const char *fname, size_t *len)
{
    const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, len) : NULL;
    if (s == NULL)
        type_error(L, idx, fname, "string");
    return s;
}

const char *calypso_optlstring(lua_State *L, int idx, const char *fname, size_t *len)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    return calypso_checklstring(L, idx, fname, len);
}

lua_Number calypso_checknumber(lua_State *L, int idx, const char *fname)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        type_error(L, idx, fname, "number");
    return lua_tonumber(L, idx);
}

lua_Integer calypso_checkinteger(lua_State *L, int idx, const char *fname)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        type_error(L, idx, fname, "number");
    if (!calypso_isinteger(L, idx))
        calypso_argerror(L, idx, fname, "number has no integer representation");
    return calypso_tointeger(L, idx);
}

/* errors.c: builds the (nil, message, err) failure triple. */
#include <string.h>
#include <lauxlib.h>
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

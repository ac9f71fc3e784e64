/* multi.c: many calls in flight at once over one libcurl multi handle.
 * Each call gets a slot: its own easy handle (signed headers differ per
 * call), response buffer and URL. Slots are reused, and the multi handle
 * keeps its connections alive between polls and batches.
 *
 * Two faces: client:multi() returns an object for game loops (start calls,
 * poll each frame without blocking, collect results by id), and
 * client:batch(calls) runs a list of calls concurrently and returns their
 * results in order. Lua values are only built in result/collect, never from
 * inside libcurl. */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <mbedtls/platform_util.h>
#include "compat.h"
#include "client.h"
#include "json.h"
#include "multi.h"

#define MULTI_MT "calypso.purse.multi"
#define MAX_SLOTS 1024              /* calls in flight in one multi */
#define DEFAULT_IN_FLIGHT 128       /* batch: calls started at once */

enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

typedef struct slot {
    calypso_http http;
    char *url;
    const calypso_endpoint *ep;     /* NULL for a client:call path */
    char op[CALYPSO_MAX_PATH + 1];  /* method name or path, for messages */
    lua_Integer id;                 /* handed to Lua; 0 when free */
    int index;                      /* batch: position in the calls list */
    int state;
    CURLcode rc;
} slot;

struct calypso_multi {
    CURLM *handle;
    slot **slots;                   /* pointers: curl keeps &slot->http */
    int count, cap;
    int running;
    lua_Integer next_id;
    calypso_conns conns;            /* the sockets of the handle's connection cache */
};

typedef struct multi_ud {
    calypso_multi *m;
    int client_ref;                 /* keeps the client alive while we live */
} multi_ud;

/* ------------------------------------------------------------------ C state */

static calypso_multi *multi_new(void)
{
    calypso_multi *m = calloc(1, sizeof *m);
    if (m != NULL && (m->handle = curl_multi_init()) == NULL) {
        free(m);
        m = NULL;
    }
    return m;
}

static void slot_reset(calypso_multi *m, slot *s)
{
    if (s->state == SLOT_RUNNING) {
        curl_multi_remove_handle(m->handle, s->http.easy);
        m->running--;
    }
    s->state = SLOT_FREE;
    s->id = 0;
}

void calypso_multi_free(calypso_multi *m)
{
    int i;
    if (m == NULL)
        return;
    for (i = 0; i < m->count; i++) {
        slot_reset(m, m->slots[i]);
        calypso_http_free(&m->slots[i]->http);
        free(m->slots[i]->url);
        free(m->slots[i]);
    }
    free(m->slots);
    calypso_http_multi_cleanup(m->handle, &m->conns);
    free(m);
}

/* A free slot, made with the client's settings when none is left; NULL when
 * out of memory or at MAX_SLOTS. */
static slot *take_slot(calypso_multi *m, calypso_client *c)
{
    slot *s;
    int i;
    for (i = 0; i < m->count; i++)
        if (m->slots[i]->state == SLOT_FREE)
            return m->slots[i];
    if (m->count == MAX_SLOTS)
        return NULL;
    if (m->count == m->cap) {
        int ncap = m->cap ? 2 * m->cap : 16;
        slot **n = realloc(m->slots, (size_t)ncap * sizeof *n);
        if (n == NULL)
            return NULL;
        m->slots = n;
        m->cap = ncap;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->url = malloc(c->base_len + sizeof CALYPSO_API_PREFIX + CALYPSO_MAX_PATH + 1);
    if (s->url == NULL || calypso_http_init(&s->http, &c->http_opts) != NULL ||
        calypso_http_track(&s->http, &m->conns) != 0) {
        calypso_http_free(&s->http);
        free(s->url);
        free(s);
        return NULL;
    }
    curl_easy_setopt(s->http.easy, CURLOPT_PRIVATE, (void *)s);
    m->slots[m->count++] = s;
    return s;
}

/* Starts the call (op at opidx, payload at pidx, the top of the stack).
 * Returns the slot, or NULL with nil, message, err pushed (invalid payload). */
static slot *start(lua_State *L, calypso_multi *m, calypso_client *c, int opidx, int pidx)
{
    char sign_hex[CALYPSO_SIGN_HEX];
    const char *path;
    size_t pathlen;
    const calypso_endpoint *ep = calypso_client_op(L, opidx, &path, &pathlen);
    const char *op = ep != NULL ? ep->name : path;
    slot *s;

    if (calypso_client_prepare(L, c, ep, op, pidx, sign_hex) != 0)
        return NULL;
    if ((s = take_slot(m, c)) == NULL)
        luaL_error(L, "calypso.purse: cannot start another call (out of memory or %d in flight)", MAX_SLOTS);
    strcpy(s->url, calypso_client_url(c, ep, path, pathlen));
    c->url[c->base_len] = '\0';
    /* libcurl copies the body: the client's request buffer is reused by the
     * next call. Writes go out on a fresh connection, as in client.c. */
    calypso_http_setup(&s->http, s->url, c->request.data, c->request.len, sign_hex,
                       ep == NULL || ep->writes, 1);
    mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
    calypso_conns_check(&m->conns, m->running == 0);   /* fork; idle: unasked-for bytes */
    if (curl_multi_add_handle(m->handle, s->http.easy) != CURLM_OK)
        luaL_error(L, "calypso.purse: curl_multi_add_handle failed");
    s->ep = ep;
    strcpy(s->op, op);
    s->id = ++m->next_id;
    s->state = SLOT_RUNNING;
    m->running++;
    return s;
}

/* Moves transfers forward, waiting up to timeout_ms for activity when nothing
 * finished; never longer. Returns how many calls finished. */
static int drive(calypso_multi *m, int timeout_ms)
{
    int still, finished = 0, left;
    CURLMsg *msg;
    calypso_conns_check(&m->conns, 0);   /* after fork(): the parent's transfers are not ours */
    curl_multi_perform(m->handle, &still);
    for (;;) {
        while ((msg = curl_multi_info_read(m->handle, &left)) != NULL) {
            slot *s = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            s->rc = msg->data.result;
            calypso_http_collect(&s->http, s->rc);
            curl_multi_remove_handle(m->handle, s->http.easy);
            s->state = SLOT_DONE;
            m->running--;
            finished++;
        }
        if (finished > 0 || m->running == 0 || timeout_ms <= 0)
            return finished;
        curl_multi_poll(m->handle, NULL, 0, timeout_ms, NULL);
        curl_multi_perform(m->handle, &still);
        timeout_ms = 0;   /* one wait at most: the caller's bound holds */
    }
}

/* Pushes the finished call's result (1 or 3 values) and frees the slot. */
static int collect(lua_State *L, calypso_multi *m, calypso_client *c, slot *s)
{
    calypso_response r;
    int n;
    calypso_client_response(&s->http, s->rc, &r);
    n = calypso_client_finish(L, c, s->ep, s->op, &r);
    slot_reset(m, s);
    return n;
}

/* ------------------------------------------------------------------ client:batch */

/* Stores the n values on top (a result or nil, message, err) as
 * { value = res } or { message = msg, err = err } at results[index]. */
static void store_result(lua_State *L, int results, int index, int n)
{
    lua_createtable(L, 0, 2);
    if (n == 1) {
        lua_insert(L, -2);
        lua_setfield(L, -2, "value");
    } else {                               /* nil, msg, err, t */
        lua_insert(L, -4);                 /* t, nil, msg, err */
        lua_setfield(L, -4, "err");
        lua_setfield(L, -3, "message");
        lua_pop(L, 1);
    }
    lua_rawseti(L, results, index);
}

int calypso_client_batch(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1);
    int n, i, next = 1, done = 0, results, max_in_flight = DEFAULT_IN_FLIGHT;
    calypso_multi *m;

    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer v = luaL_checkinteger(L, 3);
        luaL_argcheck(L, v >= 1 && v <= MAX_SLOTS, 3, "max_in_flight must be from 1 to 1024");
        max_in_flight = (int)v;
    }
    n = (int)calypso_rawlen(L, 2);
    for (i = 1; i <= n; i++) {   /* every entry checked before anything starts */
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_error(L, "calypso.purse: batch entry %d must be a table { op, payload }", i);
        lua_rawgeti(L, -1, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "calypso.purse: batch entry %d: op must be a method name or path", i);
        lua_pop(L, 2);
    }
    if (c->batch == NULL && (c->batch = multi_new()) == NULL)
        return luaL_error(L, "calypso.purse: out of memory");
    m = c->batch;
    for (i = 0; i < m->count; i++)   /* leftovers of a batch interrupted by an error */
        slot_reset(m, m->slots[i]);
    lua_settop(L, 2);
    lua_createtable(L, n, 0);
    results = 3;

    while (done < n) {
        while (next <= n && m->running < max_in_flight) {
            slot *s;
            lua_rawgeti(L, 2, next);               /* results, entry */
            lua_rawgeti(L, -1, 1);                 /* results, entry, op */
            lua_rawgeti(L, -2, 2);                 /* results, entry, op, payload */
            s = start(L, m, c, results + 2, results + 3);
            if (s == NULL) {                       /* results, entry, op, nil, msg, err */
                store_result(L, results, next, 3);
                done++;
            } else {
                s->index = next;
            }
            lua_settop(L, results);
            next++;
        }
        if (m->running > 0 && drive(m, 1000) > 0) {
            for (i = 0; i < m->count; i++) {
                slot *s = m->slots[i];
                if (s->state == SLOT_DONE) {
                    int index = s->index;
                    store_result(L, results, index, collect(L, m, c, s));
                    done++;
                }
            }
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ client:multi */

static multi_ud *check_multi(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    if (u->m == NULL)
        luaL_error(L, "calypso.purse: the multi is closed");
    return u;
}

/* Pushes the client this multi belongs to and returns it (raises if closed). */
static calypso_client *multi_client(lua_State *L, multi_ud *u)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->client_ref);
    return calypso_client_check(L, lua_gettop(L));
}

static slot *find_slot(lua_State *L, calypso_multi *m, int idx)
{
    lua_Integer id = luaL_checkinteger(L, idx);
    int i;
    for (i = 0; i < m->count; i++)
        if (m->slots[i]->id == id && id != 0)
            return m->slots[i];
    luaL_argerror(L, idx, "no such call (never started, or its result was already taken)");
    return NULL;
}

int calypso_client_multi(lua_State *L)
{
    multi_ud *u;
    calypso_client_check(L, 1);
    u = lua_newuserdata(L, sizeof *u);
    u->m = NULL;
    u->client_ref = LUA_NOREF;
    luaL_getmetatable(L, MULTI_MT);
    lua_setmetatable(L, -2);
    if ((u->m = multi_new()) == NULL)
        return luaL_error(L, "calypso.purse: out of memory");
    lua_pushvalue(L, 1);
    u->client_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* multi:start(op, payload) -> id | nil, message, err */
static int multi_start(lua_State *L)
{
    multi_ud *u = check_multi(L);
    calypso_client *c = multi_client(L, u);   /* 1 multi, 2 op, 3 payload, 4 client */
    slot *s;
    lua_insert(L, 2);                         /* multi, client, op, payload */
    lua_settop(L, 4);
    s = start(L, u->m, c, 3, 4);
    if (s == NULL)
        return 3;
    lua_pushinteger(L, s->id);
    return 1;
}

/* multi:poll([seconds]) -> number of calls that finished; waits at most
 * `seconds` (default 0: never blocks). */
static int multi_poll(lua_State *L)
{
    multi_ud *u = check_multi(L);
    lua_Number t = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, t >= 0 && t <= 3600, 2, "seconds must be from 0 to 3600");
    lua_pushinteger(L, u->m->running > 0 ? drive(u->m, (int)(t * 1000)) : 0);
    return 1;
}

/* multi:done(id) -> true when the call has finished and its result waits. */
static int multi_done(lua_State *L)
{
    multi_ud *u = check_multi(L);
    lua_pushboolean(L, find_slot(L, u->m, 2)->state == SLOT_DONE);
    return 1;
}

/* multi:result(id) -> what the method would have returned; frees the call. */
static int multi_result(lua_State *L)
{
    multi_ud *u = check_multi(L);
    slot *s = find_slot(L, u->m, 2);
    calypso_client *c;
    if (s->state != SLOT_DONE)
        return luaL_error(L, "calypso.purse: call %d is still running (poll until done)", (int)s->id);
    c = multi_client(L, u);
    return collect(L, u->m, c, s);
}

/* multi:pending() -> number of calls still running. */
static int multi_pending(lua_State *L)
{
    lua_pushinteger(L, check_multi(L)->m->running);
    return 1;
}

/* multi:close(): aborts running calls and frees everything; idempotent. */
static int multi_close(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    calypso_multi_free(u->m);
    u->m = NULL;
    if (u->client_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, u->client_ref);
        u->client_ref = LUA_NOREF;
    }
    return 0;
}

static int multi_tostring(lua_State *L)
{
    multi_ud *u = luaL_checkudata(L, 1, MULTI_MT);
    if (u->m == NULL)
        lua_pushfstring(L, "calypso.purse multi (closed): %p", (void *)u);
    else
        lua_pushfstring(L, "calypso.purse multi (%d running): %p", u->m->running, (void *)u);
    return 1;
}

static const luaL_Reg multi_methods[] = {
    { "start", multi_start },
    { "poll", multi_poll },
    { "done", multi_done },
    { "result", multi_result },
    { "pending", multi_pending },
    { "close", multi_close },
    { NULL, NULL }
};

static const luaL_Reg multi_meta[] = {
    { "__gc", multi_close },
    { "__close", multi_close },
    { "__tostring", multi_tostring },
    { NULL, NULL }
};

void calypso_multi_register(lua_State *L)
{
    luaL_newmetatable(L, MULTI_MT);                   /* enc, dec, mt */
    lua_pushliteral(L, MULTI_MT);
    lua_setfield(L, -2, "__name");
    calypso_setfuncs(L, multi_meta, 0);
    lua_newtable(L);                                  /* enc, dec, mt, methods */
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    calypso_setfuncs(L, multi_methods, CALYPSO_JSON_UPVALUES);   /* prepare and finish use the codec */
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

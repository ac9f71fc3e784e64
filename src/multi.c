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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <mbedtls/platform_util.h>
#include "compat.h"
#include "client.h"
#include "errors.h"
#include "json.h"
#include "multi.h"
#include "request.h"

/* What this file uses of the client: the functions of client.h (check, the busy
 * guard, the accessors, the batch attachment, method registration) and the
 * pipeline of request.h; never a field of the client struct. */

#define MULTI_MT "calypso.purse.multi"
#define MAX_SLOTS 1024              /* calls started and not yet taken, in one multi */
#define DEFAULT_IN_FLIGHT 128       /* batch: calls started at once */
#define MULTI_IN_FLIGHT 16          /* multi: calls on the wire at once (the rest wait) */

enum { SLOT_FREE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

typedef struct slot {
    calypso_http http;
    char *url;
    const calypso_endpoint *ep;     /* NULL for a client:call path */
    char op[CALYPSO_MAX_PATH + 1];  /* method name or path, for messages */
    lua_Integer id;                 /* handed to Lua; 0 when free */
    int index;                      /* batch: position in the calls list */
    int state;
    int expired;                    /* done without being sent: the deadline passed first */
    CURLcode rc;
    double deadline;                /* client:deadline() when started; 0: none */
    calypso_buf queued;             /* the envelope of a queued call (re-stamped at launch) */
    struct slot *next, *prev;       /* the queue (next only) or the done list */
} slot;

struct calypso_multi {
    pid_t pid;                      /* the process whose calls are in flight */
    CURLM *handle;
    slot **slots;                   /* pointers: curl keeps &slot->http */
    int count, cap;
    int running;                    /* on the wire */
    int queued;                     /* waiting for a place on the wire */
    int max_in_flight;
    slot *queue_head, *queue_tail;  /* queued slots, oldest first */
    slot *done_head, *done_tail;    /* finished slots whose results wait, oldest first */
    lua_Integer next_id;
    calypso_conns conns;            /* the sockets of the handle's connection cache */
};

typedef struct multi_ud {
    calypso_multi *m;
    int client_ref;                 /* keeps the client alive while we live */
    calypso_client *client;         /* that client (valid while client_ref holds it) */
    int busy;                       /* start/result in progress (see calypso_client_enter) */
    int closing;                    /* close asked while busy: done on leaving */
} multi_ud;

#define MULTI_BUSY \
    "calypso.purse: multi is busy (called from a finalizer or hook during another call on it)"

/* ------------------------------------------------------------------ C state */

static calypso_multi *multi_new(int max_in_flight)
{
    calypso_multi *m = calloc(1, sizeof *m);
    if (m != NULL && (m->handle = curl_multi_init()) == NULL) {
        free(m);
        m = NULL;
    }
    if (m != NULL) {
        m->pid = getpid();
        m->max_in_flight = max_in_flight;
    }
    return m;
}

static void done_push(calypso_multi *m, slot *s)
{
    s->state = SLOT_DONE;
    s->next = NULL;
    s->prev = m->done_tail;
    if (m->done_tail != NULL)
        m->done_tail->next = s;
    else
        m->done_head = s;
    m->done_tail = s;
}

static void done_unlink(calypso_multi *m, slot *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        m->done_head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        m->done_tail = s->prev;
    s->next = s->prev = NULL;
}

/* After fork(): the connections are cut (the parent's, conns.h), and calls
 * still in flight fail in this process without being driven further: a write
 * already on its way would otherwise be sent by both processes. Their outcome
 * is the other process's to know, so they count as sent (never resent). */
static void leave_inherited(calypso_multi *m)
{
    int i;
    pid_t pid = getpid();
    if (pid == m->pid)
        return;
    m->pid = pid;
    calypso_conns_check(&m->conns, 0);
    for (i = 0; i < m->count; i++) {
        slot *s = m->slots[i];
        if (s->state == SLOT_RUNNING) {
            curl_multi_remove_handle(m->handle, s->http.easy);
            m->running--;
        } else if (s->state == SLOT_QUEUED) {   /* the other process launches it too */
            m->queued--;
        } else {
            continue;
        }
        calypso_buf_clear(&s->queued);
        done_push(m, s);
        s->rc = CURLE_SEND_ERROR;   /* kind "network" */
        calypso_buf_clear(&s->http.body);
        s->http.status = 0;
        s->http.sent_bytes = 1;
        s->http.date[0] = s->http.retry_after[0] = '\0';
        snprintf(s->http.errbuf, sizeof s->http.errbuf, "%s",
                 "the call was in flight when this process was forked from the one that "
                 "started it: its outcome is that process's to know");
    }
    m->queue_head = m->queue_tail = NULL;   /* every queued call moved to the done list */
}

/* Frees the slot for reuse. Queued slots leave only from the head of the
 * queue or all at once (reset_all), so they are never unlinked one by one. */
static void slot_reset(calypso_multi *m, slot *s)
{
    if (s->state == SLOT_RUNNING) {
        curl_multi_remove_handle(m->handle, s->http.easy);
        m->running--;
    } else if (s->state == SLOT_DONE) {
        done_unlink(m, s);
    } else if (s->state == SLOT_QUEUED) {
        m->queued--;
    }
    calypso_buf_clear(&s->queued);
    s->state = SLOT_FREE;
    s->expired = 0;
    s->id = 0;
    s->next = s->prev = NULL;
}

/* Frees every call (leftovers of a batch interrupted by an error). */
static void reset_all(calypso_multi *m)
{
    int i;
    for (i = 0; i < m->count; i++)
        slot_reset(m, m->slots[i]);
    m->queue_head = m->queue_tail = NULL;
    m->done_head = m->done_tail = NULL;
    m->queued = 0;
}

/* Frees a multi state and every transfer in it; NULL is fine. */
static void multi_free(calypso_multi *m)
{
    int i;
    if (m == NULL)
        return;
    leave_inherited(m);   /* before any removal: a goodbye on the parent's connection */
    reset_all(m);
    for (i = 0; i < m->count; i++) {
        calypso_http_free(&m->slots[i]->http);
        calypso_buf_free(&m->slots[i]->queued);
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
    s->url = malloc(calypso_request_url_size(c));
    if (s->url == NULL || calypso_http_init(&s->http, calypso_client_http_opts(c)) != NULL ||
        calypso_http_track(&s->http, &m->conns) != 0) {
        calypso_http_free(&s->http);
        free(s->url);
        free(s);
        return NULL;
    }
    s->queued.limit = CALYPSO_MAX_ENVELOPE;   /* as the client's request buffer */
    curl_easy_setopt(s->http.easy, CURLOPT_PRIVATE, (void *)s);
    m->slots[m->count++] = s;
    return s;
}

/* Puts the call of slot s on the wire: body (len bytes) signed by sign_hex.
 * Its timeout is the client's, shortened to what is left of the deadline the
 * call was started under (calypso_request_timeout, as on the single-call path);
 * a call whose deadline has passed is done at once, unsent. No Lua here (it runs
 * inside poll too). */
static void launch(calypso_multi *m, calypso_client *c, slot *s, const char *body, size_t len,
                   const char sign_hex[CALYPSO_SIGN_HEX])
{
    long t = calypso_request_timeout(c, s->deadline);
    if (t == 0) {
        s->expired = 1;
        done_push(m, s);
        return;
    }
    curl_easy_setopt(s->http.easy, CURLOPT_TIMEOUT_MS, t);
    /* The body is copied (the client's request buffer is reused by the next
     * call); writes are never resent by libcurl, as on the single-call path
     * (calypso_http_setup). */
    calypso_http_setup(&s->http, s->url, body, len, sign_hex, s->ep == NULL || s->ep->writes, 1);
    calypso_conns_check(&m->conns, m->running == 0);   /* idle: unasked-for bytes (conns.h) */
    if (curl_multi_add_handle(m->handle, s->http.easy) != CURLM_OK) {
        s->rc = CURLE_OUT_OF_MEMORY;
        calypso_http_collect(&s->http, s->rc);
        done_push(m, s);
        return;
    }
    s->state = SLOT_RUNNING;
    m->running++;
}

/* Launches queued calls, oldest first, while there is room on the wire; each
 * gets a fresh timestamp and signature (it may have waited long). Not while
 * the client is closed or closing: its signer is gone (the calls stay queued;
 * start, result and finished raise on a closed client). */
static void launch_queued(calypso_multi *m, calypso_client *c)
{
    char sign_hex[CALYPSO_SIGN_HEX];
    while (m->queue_head != NULL && m->running < m->max_in_flight && calypso_client_usable(c)) {
        slot *s = m->queue_head;
        m->queue_head = s->next;
        if (m->queue_head == NULL)
            m->queue_tail = NULL;
        s->next = NULL;
        m->queued--;
        if (calypso_request_restamp(c, s->queued.data, s->queued.len, sign_hex) != 0) {
            s->rc = CURLE_OUT_OF_MEMORY;   /* HMAC failed: reported as the transfer failing */
            calypso_http_collect(&s->http, s->rc);
            done_push(m, s);
            continue;
        }
        launch(m, c, s, s->queued.data, s->queued.len, sign_hex);
        mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
        calypso_buf_clear(&s->queued);
    }
}

/* Starts the call (op at opidx, payload at pidx, the top of the stack): on the
 * wire at once when there is room, else queued. Returns the slot, or NULL with
 * nil, message, err pushed (invalid payload). */
static slot *start(lua_State *L, calypso_multi *m, calypso_client *c, int opidx, int pidx,
                   const char *fname)
{
    char sign_hex[CALYPSO_SIGN_HEX];
    const char *path;
    size_t pathlen;
    const calypso_endpoint *ep = calypso_request_op(L, opidx, fname, &path, &pathlen);
    const char *op = ep != NULL ? ep->name : path;
    const calypso_buf *env;
    slot *s;

    if (calypso_request_prepare(L, c, ep, op, pidx, sign_hex) != 0)
        return NULL;
    env = calypso_request_envelope(c);   /* valid until the next prepare: the client is busy */
    leave_inherited(m);   /* after fork(): before this process's own call joins */
    if ((s = take_slot(m, c)) == NULL) {
        mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
        luaL_error(L, "calypso.purse: cannot start another call (out of memory or %d calls not yet taken)", MAX_SLOTS);
    }
    calypso_request_url(c, ep, path, pathlen, s->url);
    s->ep = ep;
    strcpy(s->op, op);
    s->deadline = calypso_client_deadline(c);
    s->expired = 0;
    s->id = ++m->next_id;
    if (m->running < m->max_in_flight && m->queue_head == NULL) {
        launch(m, c, s, env->data, env->len, sign_hex);
    } else {
        calypso_buf_clear(&s->queued);
        if (calypso_buf_append(&s->queued, env->data, env->len) != 0) {
            s->id = 0;
            mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
            luaL_error(L, "calypso.purse: out of memory queueing the call");
        }
        s->state = SLOT_QUEUED;
        s->next = NULL;
        if (m->queue_tail != NULL)
            m->queue_tail->next = s;
        else
            m->queue_head = s;
        m->queue_tail = s;
        m->queued++;
    }
    mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
    return s;
}

/* Moves the finished transfers to the done list; returns how many finished. */
static int reap(calypso_multi *m)
{
    int finished = 0, left, still;
    CURLMsg *msg;
    leave_inherited(m);   /* after fork(): the parent's transfers are not ours */
    curl_multi_perform(m->handle, &still);
    while ((msg = curl_multi_info_read(m->handle, &left)) != NULL) {
        slot *s = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        s->rc = msg->data.result;
        calypso_http_collect(&s->http, s->rc);
        curl_multi_remove_handle(m->handle, s->http.easy);
        m->running--;
        done_push(m, s);
        finished++;
    }
    return finished;
}

/* Moves calls forward, launching queued ones into the places finished ones
 * leave, until at least one call has finished during this drive, nothing
 * runs, or timeout_ms has passed; never longer. Socket activity alone does
 * not end the wait. Returns how many calls finished during this drive (a queued call
 * whose deadline passed before it could be sent counts). */
static int drive(calypso_multi *m, calypso_client *c, int timeout_ms)
{
    double until = calypso_monotonic() + timeout_ms / 1000.0;
    int finished = 0;
    for (;;) {
        slot *before, *s;
        double left;
        finished += reap(m);
        before = m->done_tail;
        launch_queued(m, c);
        for (s = before != NULL ? before->next : m->done_head; s != NULL; s = s->next)
            finished++;                            /* done at launch: deadline passed */
        if (finished > 0 || m->running == 0)
            return finished;
        left = (until - calypso_monotonic()) * 1000.0;
        if (left <= 0.0)
            return finished;
        curl_multi_poll(m->handle, NULL, 0, left > 1000.0 ? 1000 : (int)left + 1, NULL);
    }
}

/* Pushes the finished call's result (1 or 3 values) and frees the slot. */
static int collect(lua_State *L, calypso_multi *m, calypso_client *c, slot *s)
{
    calypso_response r;
    int n;
    if (s->expired) {
        memset(&r, 0, sizeof r);
        r.kind = "timeout";
        r.detail = "the deadline passed before the request was sent";
    } else {
        calypso_request_response(&s->http, s->rc, &r);
    }
    n = calypso_request_finish(L, c, s->ep, s->op, &r);
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

/* client:batch(calls [, max_in_flight]): runs as a body of client_guarded
 * (the client checked and busy). */
static int client_batch(lua_State *L)
{
    calypso_client *c = lua_touserdata(L, 1);
    int n, i, next = 1, done = 0, results, max_in_flight = DEFAULT_IN_FLIGHT;
    calypso_multi *m;

    if (!lua_istable(L, 2))
        calypso_argerror(L, 2, "batch", lua_pushfstring(L, "table expected, got %s", luaL_typename(L, 2)));
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer v = calypso_checkinteger(L, 3, "batch");
        if (!(v >= 1 && v <= MAX_SLOTS))
            calypso_argerror(L, 3, "batch", "max_in_flight must be from 1 to 1024");
        max_in_flight = (int)v;
    }
    lua_settop(L, 2);
    n = (int)calypso_rawlen(L, 2);
    /* Every entry is checked before anything starts, and what was checked is
     * what runs: ops and payloads are copied into a plan no Lua code can reach
     * (a finalizer may rewrite `calls` while the batch runs). plan[2i-1] is
     * the op, plan[2i] the payload (false for none). */
    lua_createtable(L, 2 * n, 0);                  /* calls, plan */
    for (i = 1; i <= n; i++) {
        const char *why = NULL, *op;
        size_t len;
        lua_rawgeti(L, 2, i);                      /* calls, plan, entry */
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_error(L, "calypso.purse: batch entry %d must be a table { op, payload }", i);
        lua_rawgeti(L, 4, 1);                      /* calls, plan, entry, op */
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "calypso.purse: batch entry %d: op must be a method name or path", i);
        op = lua_tolstring(L, 5, &len);
        if (calypso_find_endpoint(L, 5) == NULL && (why = calypso_path_problem(op, len)) != NULL)
            luaL_error(L, "calypso.purse: batch entry %d: op is neither a method name nor a path (%s)", i, why);
        lua_rawseti(L, 3, 2 * i - 1);              /* calls, plan, entry */
        lua_rawgeti(L, 4, 2);                      /* calls, plan, entry, payload */
        if (!lua_isnil(L, -1) && !lua_istable(L, -1))
            luaL_error(L, "calypso.purse: batch entry %d: payload must be a table or nil (got %s)", i,
                       luaL_typename(L, -1));
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushboolean(L, 0);
        }
        lua_rawseti(L, 3, 2 * i);
        lua_settop(L, 3);
    }
    /* the client owns it (close frees it) but knows nothing of it */
    if ((m = calypso_client_batch(c)) == NULL) {
        if ((m = multi_new(MAX_SLOTS)) == NULL)
            return luaL_error(L, "calypso.purse: out of memory");
        calypso_client_set_batch(c, m, multi_free);
    }
    leave_inherited(m);   /* before removing anything (see there) */
    reset_all(m);         /* leftovers of a batch interrupted by an error */
    lua_createtable(L, n, 0);
    results = 4;                                   /* calls, plan, results */

    while (done < n) {
        /* a call whose deadline passed is done at once, without going on the wire: its
         * result is taken before the next starts, so finished calls never pile up past
         * the slots a multi has */
        while (next <= n && m->running < max_in_flight && m->done_head == NULL) {
            slot *s;
            lua_rawgeti(L, 3, 2 * next - 1);       /* results, op */
            lua_rawgeti(L, 3, 2 * next);           /* results, op, payload */
            if (lua_type(L, -1) == LUA_TBOOLEAN) {
                lua_pop(L, 1);
                lua_pushnil(L);
            }
            s = start(L, m, c, results + 1, results + 2, "batch");
            if (s == NULL) {                       /* results, op, nil, msg, err */
                store_result(L, results, next, 3);
                done++;
            } else {
                s->index = next;
            }
            lua_settop(L, results);
            next++;
        }
        if (m->running > 0 || m->done_head != NULL) {
            drive(m, c, 1000);
            while (m->done_head != NULL) {
                slot *s = m->done_head;
                int index = s->index;
                store_result(L, results, index, collect(L, m, c, s));
                done++;
            }
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ client:multi */

static multi_ud *check_multi(lua_State *L, const char *fname)
{
    multi_ud *u = calypso_checkself(L, MULTI_MT, fname);
    if (u->m == NULL || u->closing)
        luaL_error(L, "calypso.purse: the multi is closed");
    return u;
}

/* Pushes the client this multi belongs to and returns it (raises if closed). */
static calypso_client *multi_client(lua_State *L, multi_ud *u, const char *fname)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->client_ref);
    return calypso_client_check(L, lua_gettop(L), fname);
}

static slot *find_slot(lua_State *L, calypso_multi *m, int idx, const char *fname)
{
    lua_Integer id = calypso_checkinteger(L, idx, fname);
    int i;
    for (i = 0; i < m->count; i++)
        if (m->slots[i]->id == id && id != 0)
            return m->slots[i];
    calypso_argerror(L, idx, fname, "no such call (never started, or its result was already taken)");
    return NULL;
}

static void multi_release(lua_State *L, multi_ud *u)
{
    multi_free(u->m);
    u->m = NULL;
    if (u->client_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, u->client_ref);
        u->client_ref = LUA_NOREF;
    }
}

/* start and result: the body (upvalue 1) under lua_pcall with the multi and
 * its client busy (both: the body uses the client's request buffer and the
 * multi's slots across Lua API calls). The body gets multi, args... */
static int multi_guarded(lua_State *L)
{
    const char *fname = lua_tostring(L, lua_upvalueindex(2));
    multi_ud *u = check_multi(L, fname);
    calypso_client *c;
    int status;
    if (u->busy)
        return luaL_error(L, MULTI_BUSY);
    c = multi_client(L, u, fname);             /* multi, args..., client */
    calypso_client_enter(L, c);
    lua_insert(L, 1);                          /* client (held), multi, args... */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 2);                          /* client, body, multi, args... */
    u->busy = 1;
    status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
    u->busy = 0;
    calypso_client_leave(c);
    if (u->closing) {
        u->closing = 0;
        multi_release(L, u);
    }
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L) - 1;
}

/* client:multi([opts]): opts.max_in_flight (1 to 1024, default 16) calls on
 * the wire at once; later starts wait in a queue. */
static int client_multi(lua_State *L)
{
    multi_ud *u;
    int max_in_flight = MULTI_IN_FLIGHT;
    calypso_client_check(L, 1, "multi");
    if (!lua_isnoneornil(L, 2)) {
        if (!lua_istable(L, 2))
            calypso_argerror(L, 2, "multi", lua_pushfstring(L, "table expected, got %s", luaL_typename(L, 2)));
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "max_in_flight") != 0)
                calypso_argerror(L, 2, "multi", "unknown option (the one option is max_in_flight)");
        }
        lua_pushliteral(L, "max_in_flight");
        lua_rawget(L, 2);
        if (!lua_isnil(L, -1)) {
            lua_Number v = lua_tonumber(L, -1);
            if (!(calypso_isinteger(L, -1) && v >= 1 && v <= MAX_SLOTS))
                calypso_argerror(L, 2, "multi", "max_in_flight must be an integer from 1 to 1024");
            max_in_flight = (int)v;
        }
        lua_pop(L, 1);
    }
    u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->m = NULL;
    u->client_ref = LUA_NOREF;
    luaL_getmetatable(L, MULTI_MT);
    lua_setmetatable(L, -2);
    if ((u->m = multi_new(max_in_flight)) == NULL)
        return luaL_error(L, "calypso.purse: out of memory");
    lua_pushvalue(L, 1);
    u->client_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    u->client = lua_touserdata(L, 1);
    return 1;
}

/* multi:start(op, payload) -> id | nil, message, err (a multi_guarded body) */
static int multi_start(lua_State *L)
{
    multi_ud *u = lua_touserdata(L, 1);
    slot *s;
    lua_settop(L, 3);
    s = start(L, u->m, u->client, 2, 3, "start");
    if (s == NULL)
        return 3;
    lua_pushinteger(L, s->id);
    return 1;
}

/* multi:poll([seconds]) -> number of calls that finished during this poll.
 * Waits until at least one call finishes, nothing is left running, or
 * `seconds` (default 0: never blocks) have passed. */
static int multi_poll(lua_State *L)
{
    multi_ud *u = check_multi(L, "poll");
    lua_Number t = lua_isnoneornil(L, 2) ? 0 : calypso_checknumber(L, 2, "poll");
    if (!(t >= 0 && t <= 3600))
        calypso_argerror(L, 2, "poll", "seconds must be from 0 to 3600");
    if (u->busy)   /* a result is being built from one of the slots */
        return luaL_error(L, MULTI_BUSY);
    /* a closed client's calls can never be collected (finished and result raise): say so,
     * rather than let a `while m:pending() > 0 do m:poll(...) end` loop spin */
    if (!calypso_client_usable(u->client))
        return luaL_error(L, "calypso.purse: the client is closed");
    lua_pushinteger(L, drive(u->m, u->client, (int)(t * 1000)));
    return 1;
}

/* multi:done(id) -> true when the call has finished and its result waits. */
static int multi_done(lua_State *L)
{
    multi_ud *u = check_multi(L, "done");
    lua_pushboolean(L, find_slot(L, u->m, 2, "done")->state == SLOT_DONE);
    return 1;
}

/* multi:result(id) -> what the method would have returned; frees the call
 * (a multi_guarded body). */
static int multi_result(lua_State *L)
{
    multi_ud *u = lua_touserdata(L, 1);
    slot *s = find_slot(L, u->m, 2, "result");
    if (s->state != SLOT_DONE)
        return luaL_error(L, "calypso.purse: call %d is still running (poll until done)", (int)s->id);
    lua_settop(L, 2);
    return collect(L, u->m, u->client, s);
}

/* The step of `for id, res, msg, err, status in m:finished()` (a multi_guarded
 * body): the oldest finished call as id, res, msg, err, status (res or msg and
 * err nil; status the HTTP status, 0 when none), its slot freed; nothing when
 * no result waits. */
static int multi_finished_step(lua_State *L)
{
    multi_ud *u = lua_touserdata(L, 1);
    slot *s = u->m->done_head;
    lua_Integer id;
    long status;
    int n;
    if (s == NULL)
        return 0;
    id = s->id;
    status = s->expired ? 0 : s->http.status;
    lua_settop(L, 1);
    lua_pushinteger(L, id);
    n = collect(L, u->m, u->client, s);
    if (n == 1) {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    lua_pushinteger(L, (lua_Integer)status);
    return 5;
}

/* multi:finished() -> the iterator over finished calls, each handed back once. */
static int multi_finished(lua_State *L)
{
    check_multi(L, "finished");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    return 2;
}

/* multi:pending() -> number of calls not finished yet (running or queued). */
static int multi_pending(lua_State *L)
{
    multi_ud *u = check_multi(L, "pending");
    if (!calypso_client_usable(u->client))   /* see multi_poll */
        return luaL_error(L, "calypso.purse: the client is closed");
    lua_pushinteger(L, u->m->running + u->m->queued);
    return 1;
}

/* multi:close(): aborts running calls and frees everything; idempotent. */
static int multi_close(lua_State *L)
{
    multi_ud *u = calypso_checkself(L, MULTI_MT, "close");
    if (u->busy)
        u->closing = u->m != NULL;   /* from a finalizer inside start/result: done on leaving */
    else
        multi_release(L, u);
    return 0;
}

static int multi_tostring(lua_State *L)
{
    multi_ud *u = calypso_checkself(L, MULTI_MT, "__tostring");
    if (u->m == NULL)
        lua_pushfstring(L, "calypso.purse multi (closed): %p", (void *)u);
    else
        lua_pushfstring(L, "calypso.purse multi (%d running, %d queued): %p", u->m->running,
                        u->m->queued, (void *)u);
    return 1;
}

static const luaL_Reg multi_guarded_methods[] = {
    { "start", multi_start },
    { "result", multi_result },
    { NULL, NULL }
};

static const luaL_Reg multi_methods[] = {
    { "poll", multi_poll },
    { "done", multi_done },
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
    int i, client_methods = lua_gettop(L), codec = client_methods - CALYPSO_JSON_UPVALUES;
    const luaL_Reg *r;
    luaL_newmetatable(L, MULTI_MT);                   /* codec, cm, mt */
    lua_pushliteral(L, MULTI_MT);
    lua_setfield(L, -2, "__name");
    calypso_setfuncs(L, multi_meta, 0);
    lua_newtable(L);                                  /* codec, cm, mt, methods */
    calypso_setfuncs(L, multi_methods, 0);
    for (r = multi_guarded_methods; r->name != NULL; r++) {
        for (i = 0; i < CALYPSO_JSON_UPVALUES; i++)   /* prepare and finish use the codec */
            lua_pushvalue(L, codec + i);
        lua_pushcclosure(L, r->func, CALYPSO_JSON_UPVALUES);
        lua_pushstring(L, r->name);
        lua_pushcclosure(L, multi_guarded, 2);
        lua_setfield(L, -2, r->name);
    }
    for (i = 0; i < CALYPSO_JSON_UPVALUES; i++)
        lua_pushvalue(L, codec + i);
    lua_pushcclosure(L, multi_finished_step, CALYPSO_JSON_UPVALUES);
    lua_pushliteral(L, "finished");
    lua_pushcclosure(L, multi_guarded, 2);            /* codec, cm, mt, methods, step */
    lua_pushcclosure(L, multi_finished, 1);
    lua_setfield(L, -2, "finished");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);                                    /* codec, cm (client methods) */
    /* the client's methods this file implements: batch uses the client's buffers
     * across Lua API calls (the client's busy guard runs it); multi does not */
    lua_pushcfunction(L, client_multi);
    lua_setfield(L, client_methods, "multi");
    for (i = 0; i < CALYPSO_JSON_UPVALUES; i++)       /* prepare and finish use the codec */
        lua_pushvalue(L, codec + i);
    lua_pushcclosure(L, client_batch, CALYPSO_JSON_UPVALUES);
    calypso_client_set_guarded(L, "batch");
}

/* client.c: the client userdata: its lifecycle (new, the busy guard, close
 * and the deferred close) and its methods. The request path they run is
 * request.c's; options are read by options.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include <mbedtls/platform_util.h>
#include "compat.h"
#include "client.h"
#include "endpoints.h"
#include "errors.h"
#include "http.h"
#include "json.h"
#include "options.h"
#include "request.h"
#include "sign.h"
#include "validate.h"

#define MAX_BASE_URL CALYPSO_MAX_BASE_URL
#define MAX_CA_FILE CALYPSO_MAX_CA_FILE
#define MAX_HEAD (16u << 10)             /* header lines given to client:prepare_http */
#define UV_ENDPOINT lua_upvalueindex(CALYPSO_JSON_UPVALUES + 1)

/* ------------------------------------------------------------------ lifecycle */

calypso_client *calypso_client_check(lua_State *L, int idx, const char *fname)
{
    calypso_client *c = calypso_testudata(L, idx, CALYPSO_CLIENT_MT);
    if (c == NULL)
        calypso_argerror(L, idx, fname, lua_pushfstring(L, CALYPSO_CLIENT_MT " expected, got %s",
                                                        luaL_typename(L, idx)));
    if (!c->open || c->closing)
        luaL_error(L, "calypso.purse: the client is closed");
    return c;
}

/* The one release path, shared by close, __gc and __close; idempotent. */
static void client_release(calypso_client *c)
{
    calypso_http_free(&c->http);
    calypso_signer_free(&c->signer);
    calypso_buf_free(&c->scratch);
    calypso_buf_free(&c->request);
    calypso_buf_free(&c->wire);
    if (c->batch != NULL)
        c->batch_free(c->batch);
    c->batch = NULL;
    free(c->ca_file);
    free(c->proxy);
    c->ca_file = c->proxy = NULL;
    free(c->account_json);
    free(c->url);
    c->account_json = c->url = NULL;
    c->open = 0;
}

void calypso_client_enter(lua_State *L, calypso_client *c)
{
    if (c->busy)
        luaL_error(L, CALYPSO_CLIENT_BUSY);
    c->busy = 1;
}

void calypso_client_leave(calypso_client *c)
{
    c->busy = 0;
    if (c->closing) {
        c->closing = 0;
        client_release(c);
    }
}

/* close, __gc and __close: while a method is busy with the client (this runs
 * from a finalizer or hook inside it), only marks it; leave releases. */
static int client_close(lua_State *L)
{
    calypso_client *c = calypso_checkself(L, CALYPSO_CLIENT_MT, "close");
    if (c->busy)
        c->closing = c->open;
    else
        client_release(c);
    return 0;
}

/* The method that the guard in its upvalue 1 runs: the body (upvalue 1) under
 * lua_pcall, with the client (argument 1, checked, name in upvalue 2) busy. */
static int client_guarded(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1, lua_tostring(L, lua_upvalueindex(2)));
    int status;
    calypso_client_enter(L, c);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    calypso_client_leave(c);   /* the client is still referenced: the caller's argument */
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

/* ------------------------------------------------------------------ accessors
 * for multi.c, which reads no field of the client itself. */

const calypso_http_opts *calypso_client_http_opts(const calypso_client *c)
{
    return &c->http_opts;
}

int calypso_client_usable(const calypso_client *c)
{
    return c->open && !c->closing;
}

double calypso_client_deadline(const calypso_client *c)
{
    return c->deadline;
}

struct calypso_multi *calypso_client_batch(const calypso_client *c)
{
    return c->batch;
}

void calypso_client_set_batch(calypso_client *c, struct calypso_multi *m,
                              void (*free_fn)(struct calypso_multi *))
{
    c->batch = m;
    c->batch_free = free_fn;
}

static int client_tostring(lua_State *L)
{
    calypso_client *c = calypso_checkself(L, CALYPSO_CLIENT_MT, "__tostring");
    char base[MAX_BASE_URL + 1];
    if (!c->open || c->closing) {
        lua_pushfstring(L, "calypso.purse client (closed): %p", (void *)c);
        return 1;
    }
    /* the base URL copied first (lua_pushfstring may run a finalizer that
     * closes the client) */
    memcpy(base, c->url, c->base_len);
    base[c->base_len] = '\0';
    /* the key id and the host only: never the secret */
    lua_pushfstring(L, "calypso.purse client (key %s..., %s): %p", c->key_hint, base, (void *)c);
    return 1;
}

static char *dup_bytes(const char *s, size_t n, size_t extra)
{
    char *d = malloc(n + extra + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int calypso_client_new(lua_State *L)
{
    calypso_options o;
    calypso_http_opts ho;
    calypso_client *c;
    char ua[320], msg[200];
    const char *why;
    size_t aj_len;
    const char *aj;

    calypso_options_read(L, &o);
    lua_settop(L, 1);
    lua_pushlstring(L, o.account, o.account_len);   /* opts, account */
    if (calypso_json_encode(L, 2, msg, sizeof msg) != 0)
        luaL_error(L, "calypso.purse.new: option 'account' cannot be encoded (%s)", msg);
    aj = lua_tolstring(L, -1, &aj_len);               /* opts, account, account_json */
    /* libcurl formats the User-Agent into every request at ~85 instructions
     * a byte: keep it short (curl_version() alone is ~200 bytes). */
    snprintf(ua, sizeof ua, "calypso-purse/" CALYPSO_VERSION "%s%s",
             o.user_agent ? " " : "", o.user_agent ? o.user_agent : "");

    /* Everything is checked: now take resources, each owned by the userdata
     * so that __gc frees them even if a later step raises. */
    c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    luaL_getmetatable(L, CALYPSO_CLIENT_MT);
    lua_setmetatable(L, -2);
    c->account_json = dup_bytes(aj, aj_len, 0);
    c->account_json_len = aj_len;
    c->url = dup_bytes(o.base_url, o.base_len, 0);
    c->base_len = o.base_len;
    if (c->url != NULL) {   /* "https://host/base" keeps /base in the request target */
        const char *authority = strstr(c->url, "://") + 3;
        const char *base_path = memchr(authority, '/', (size_t)(c->url + c->base_len - authority));
        c->target_off = base_path != NULL ? (size_t)(base_path - c->url) : c->base_len;
    }
    c->exact_amounts = o.exact_amounts;
    c->scratch.limit = (size_t)o.max_response + (size_t)o.max_response / 4;   /* quotes added */
    c->request.limit = CALYPSO_MAX_ENVELOPE;
    c->wire.limit = c->request.limit + 2 * MAX_HEAD;
    c->open = 1;   /* release now has something to do */
    if (c->account_json == NULL || c->url == NULL)
        return luaL_error(L, "calypso.purse.new: out of memory");
    snprintf(c->key_hint, sizeof c->key_hint, "%.8s", o.key);
    snprintf(c->key, sizeof c->key, "%s", o.key);
    snprintf(c->user_agent, sizeof c->user_agent, "%s", ua);

    c->ca_file = o.ca_file != NULL ? dup_bytes(o.ca_file, strlen(o.ca_file), 0) : NULL;
    c->proxy = o.proxy != NULL ? dup_bytes(o.proxy, strlen(o.proxy), 0) : NULL;
    if ((o.ca_file != NULL && c->ca_file == NULL) || (o.proxy != NULL && c->proxy == NULL))
        return luaL_error(L, "calypso.purse.new: out of memory");
    ho.key = c->key;
    ho.user_agent = c->user_agent;
    ho.ca_file = c->ca_file;
    ho.proxy = c->proxy;
    ho.timeout_ms = c->timeout_ms = c->applied_timeout_ms = (long)(o.timeout * 1000.0 + 0.5);
    ho.connect_timeout_ms = c->connect_timeout_ms = (long)(o.connect_timeout * 1000.0 + 0.5);
    ho.max_response = (size_t)o.max_response;
    ho.insecure = o.insecure;
    ho.write_reuse_idle = o.write_reuse_idle;
    c->http_opts = ho;
    if ((why = calypso_http_init(&c->http, &ho)) != NULL)
        return luaL_error(L, "calypso.purse.new: %s", why);
    if (calypso_signer_init(&c->signer, (const unsigned char *)o.secret, o.secret_len) != 0)
        return luaL_error(L, "calypso.purse.new: cannot set up HMAC-SHA512");
    return 1;
}

/* client:prepare(op, payload) -> body, sign, path, writes | nil, message, err
 * For transports other than libcurl (OpenResty cosockets): op is a method
 * name ("get_customer") or a path as for client:call. */
static int client_prepare(lua_State *L)
{
    calypso_client *c = lua_touserdata(L, 1);   /* bodies: checked and busy (client_guarded) */
    char sign_hex[CALYPSO_SIGN_HEX], url[CALYPSO_URL_MAX];
    size_t pathlen;
    const char *path;
    const calypso_endpoint *ep = calypso_request_op(L, 2, "prepare", &path, &pathlen);
    if (calypso_request_prepare(L, c, ep, ep != NULL ? ep->name : path, 3, sign_hex) != 0)
        return 3;
    lua_pushlstring(L, c->request.data, c->request.len);
    lua_pushlstring(L, sign_hex, sizeof sign_hex);
    mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
    lua_pushstring(L, calypso_request_url(c, ep, path, pathlen, url) + c->base_len);
    lua_pushboolean(L, ep == NULL || ep->writes);
    return 4;
}

/* Header lines are printable ASCII separated by CRLF: nothing that could end
 * the head early, split a line, or smuggle a NUL. */
static int head_ok(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7F)
            continue;
        if (ch != '\r' || i + 1 >= n || s[i + 1] != '\n' || i == 0 || i + 2 >= n ||
            s[i + 2] == '\r' || s[i + 2] == ' ' || s[i + 2] == '\t')
            return 0;
        i++;   /* the LF of a CRLF between two lines */
    }
    return 1;
}

/* client:prepare_http(op, payload, head) -> request, writes | nil, message, err
 * The whole HTTP/1.1 request as one string, for cosocket transports: request
 * line, Sign, the caller's fixed header lines `head` (CRLF-separated, no
 * final CRLF: Host, Key, ...), Content-Length, then the signed body. `writes`
 * tells the transport never to resend it (it may ride a kept-alive connection). One string instead of four saves allocations, and
 * on LuaJIT it keeps the Sign where the string hash looks, so per-call
 * requests do not pile up in one hash chain as bodies differing only in
 * their timestamp do. */
static int client_prepare_http(lua_State *L)
{
    calypso_client *c = lua_touserdata(L, 1);
    char sign_hex[CALYPSO_SIGN_HEX], len[24], url[CALYPSO_URL_MAX];
    size_t pathlen, headlen, lenlen;
    const char *path, *head, *target;
    const calypso_endpoint *ep = calypso_request_op(L, 2, "prepare_http", &path, &pathlen);
    calypso_buf *w = &c->wire;
    int writes = ep == NULL || ep->writes;
    head = calypso_checklstring(L, 4, "prepare_http", &headlen);
    if (!(headlen <= MAX_HEAD && head_ok(head, headlen)))
        calypso_argerror(L, 4, "prepare_http", "head must be printable header lines separated by CRLF");
    lua_pushvalue(L, 4);   /* prepare settles the stack to the payload: keep head alive */
    lua_insert(L, 1);
    if (calypso_request_prepare(L, c, ep, ep != NULL ? ep->name : path, 4, sign_hex) != 0)
        return 3;
    /* the request target: any path of the base URL, then the operation's */
    target = calypso_request_url(c, ep, path, pathlen, url) + c->target_off;
    lenlen = calypso_format_int(len, (long long)c->request.len);
    calypso_buf_clear(w);
    if (calypso_buf_append(w, "POST ", 5) != 0 ||
        calypso_buf_append(w, target, strlen(target)) != 0 ||
        calypso_buf_append(w, " HTTP/1.1\r\nSign: ", 17) != 0 ||
        calypso_buf_append(w, sign_hex, sizeof sign_hex) != 0 ||
        calypso_buf_append(w, "\r\n", 2) != 0 ||
        calypso_buf_append(w, head, headlen) != 0 ||
        calypso_buf_append(w, "\r\nContent-Length: ", 18) != 0 ||
        calypso_buf_append(w, len, lenlen) != 0 ||
        calypso_buf_append(w, "\r\n\r\n", 4) != 0 ||
        calypso_buf_append(w, c->request.data, c->request.len) != 0) {
        mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
        return luaL_error(L, "calypso.purse: out of memory building the request");
    }
    mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
    lua_pushlstring(L, w->data, w->len);
    calypso_buf_clear(w);
    lua_pushboolean(L, writes);
    return 2;
}

/* An optional header argument, as one printable line no longer than the
 * libcurl path keeps (Date 63 bytes, Retry-After 31), or NULL. */
static const char *bounded_header(lua_State *L, int idx, const char *fname, char *dst, size_t dstlen)
{
    size_t n;
    const char *v = calypso_optlstring(L, idx, fname, &n);
    if (v == NULL)
        return NULL;
    calypso_clean_line(v, n, dst, dstlen);
    return dst;
}

/* client:finish(op, status, body [, date [, retry_after]]) -> result | nil, message, err */
static int client_finish(lua_State *L)
{
    calypso_client *c = lua_touserdata(L, 1);
    size_t pathlen;
    const char *path;
    const calypso_endpoint *ep = calypso_request_op(L, 2, "finish", &path, &pathlen);
    calypso_response r;
    char date[64], retry_after[32];
    lua_Integer status = calypso_checkinteger(L, 3, "finish");
    memset(&r, 0, sizeof r);
    r.sent = 1;
    r.status = status >= 0 && status <= 0x7fffffff ? (long)status : 0;   /* as given: err.status says what the transport saw */
    r.body = calypso_checklstring(L, 4, "finish", &r.len);
    r.date = bounded_header(L, 5, "finish", date, sizeof date);
    r.retry_after = bounded_header(L, 6, "finish", retry_after, sizeof retry_after);
    if (r.len > c->http.body.limit) {
        r.kind = "too_large";
        r.detail = "";
    }
    return calypso_request_finish(L, c, ep, ep != NULL ? ep->name : path, &r);
}

/* client:failure(op, kind, detail, sent [, status [, date [, retry_after]]])
 * -> nil, message, err: a transport failure in exactly the shape the libcurl
 * path gives. */
static int client_failure(lua_State *L)
{
    static const char *const kinds[] = {
        "timeout", "connect", "resolve", "tls", "network", "too_large", NULL
    };
    calypso_client *c = lua_touserdata(L, 1);
    size_t pathlen, n;
    const char *path, *kind;
    const calypso_endpoint *ep = calypso_request_op(L, 2, "failure", &path, &pathlen);
    calypso_response r;
    char date[64], retry_after[32];
    int i;
    memset(&r, 0, sizeof r);
    kind = calypso_checklstring(L, 3, "failure", &n);
    for (i = 0; kinds[i] != NULL && strcmp(kinds[i], kind) != 0; i++)
        ;
    if (kinds[i] == NULL)
        calypso_argerror(L, 3, "failure", lua_pushfstring(L, "invalid option '%s'", kind));
    r.kind = kinds[i];
    r.detail = calypso_checklstring(L, 4, "failure", &n);
    r.sent = lua_toboolean(L, 5);
    /* what arrived before the failure (a too_large body after its headers, say) */
    if (!lua_isnoneornil(L, 6)) {
        lua_Integer status = calypso_checkinteger(L, 6, "failure");
        r.status = status >= 0 && status <= 0x7fffffff ? (long)status : 0;   /* as given: err.status says what the transport saw */
    }
    r.date = bounded_header(L, 7, "failure", date, sizeof date);
    r.retry_after = bounded_header(L, 8, "failure", retry_after, sizeof retry_after);
    return calypso_request_finish(L, c, ep, ep != NULL ? ep->name : path, &r);
}

/* client:sign(body) -> lowercase hex HMAC-SHA512 of body with the client's
 * secret, as purse.sign(secret, body) but from the hash states the client
 * keyed once (3 SHA-512 blocks for a typical envelope instead of 5), and
 * without the caller holding the secret. For hand-built requests. */
static int client_sign(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1, "sign");
    size_t n;
    const char *body = calypso_checklstring(L, 2, "sign", &n);
    char sign_hex[CALYPSO_SIGN_HEX];
    if (calypso_signer_sign(&c->signer, (const unsigned char *)body, n, sign_hex) != 0)
        return luaL_error(L, "calypso.purse: HMAC-SHA512 failed");
    lua_pushlstring(L, sign_hex, sizeof sign_hex);
    mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
    return 1;
}

/* client:info() -> the settings another transport needs (never the secret). */
static int client_info(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1, "info");
    /* Copied first: any allocation below may run a finalizer that closes the
     * client, freeing url and ca_file (the rest lives in the userdata). */
    char base[MAX_BASE_URL + 1], ca[MAX_CA_FILE + 1];
    size_t base_len = c->base_len;
    int has_ca = c->ca_file != NULL, has_proxy = c->proxy != NULL;
    memcpy(base, c->url, base_len);
    if (has_ca)
        snprintf(ca, sizeof ca, "%s", c->ca_file);
    lua_createtable(L, 0, 6);
    lua_pushlstring(L, base, base_len);
    lua_setfield(L, -2, "base_url");
    lua_pushstring(L, c->key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, c->user_agent);
    lua_setfield(L, -2, "user_agent");
    lua_pushnumber(L, (lua_Number)c->timeout_ms / 1000.0);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, (lua_Number)c->connect_timeout_ms / 1000.0);
    lua_setfield(L, -2, "connect_timeout");
    lua_pushinteger(L, (lua_Integer)c->http.body.limit);
    lua_setfield(L, -2, "max_response_size");
    lua_pushboolean(L, c->exact_amounts);
    lua_setfield(L, -2, "exact_amounts");
    lua_pushboolean(L, c->http_opts.insecure);
    lua_setfield(L, -2, "insecure_skip_tls_verify");
    lua_pushnumber(L, (lua_Number)c->http_opts.write_reuse_idle);
    lua_setfield(L, -2, "write_reuse_idle");
    if (has_ca) {
        lua_pushstring(L, ca);
        lua_setfield(L, -2, "ca_file");
    }
    /* whether a proxy is set, not its URL: it may carry credentials */
    lua_pushboolean(L, has_proxy);
    lua_setfield(L, -2, "proxy");
    return 1;
}

/* client:<operation>(payload): one C function for all ten, driven by the
 * endpoint table entry in its upvalue. */
static int client_operation(lua_State *L)
{
    calypso_client *c = lua_touserdata(L, 1);
    const calypso_endpoint *ep = &calypso_endpoints[lua_tointeger(L, UV_ENDPOINT)];
    return calypso_request_call(L, c, ep, ep->path, strlen(ep->path), 2);
}

/* client:call(path, payload): any operation path, for forward compatibility. */
static int client_call(lua_State *L)
{
    calypso_client *c = lua_touserdata(L, 1);
    size_t n;
    const char *path = calypso_checklstring(L, 2, "call", &n);
    calypso_request_check_path(L, 2, "call", path, n);
    return calypso_request_call(L, c, NULL, path, n, 3);
}

/* client:deadline([t]): calls that follow must end by t (seconds on the
 * purse.now() clock): their timeout shrinks to what is left, and a call made
 * after t fails with kind "timeout" without being sent. nil clears it.
 * Returns the deadline in force (nil when none). */
static int client_deadline(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1, "deadline");
    if (lua_gettop(L) >= 2) {
        if (lua_isnil(L, 2)) {
            c->deadline = 0;
        } else {
            lua_Number t = calypso_checknumber(L, 2, "deadline");
            if (!(t > 0 && t < 1e12))
                calypso_argerror(L, 2, "deadline", "deadline must be a purse.now() time");
            c->deadline = (double)t;
        }
    }
    if (c->deadline > 0)
        lua_pushnumber(L, (lua_Number)c->deadline);
    else
        lua_pushnil(L);
    return 1;
}

/* client:last_status() -> the HTTP status of the last libcurl call (0: none). */
static int client_last_status(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1, "last_status");
    lua_pushinteger(L, (lua_Integer)c->http.status);
    return 1;
}

/* client:clock_offset([ms]): the offset added to the local clock for the
 * signed timestamp; returns the (new) value. */
static int client_clock_offset(lua_State *L)
{
    calypso_client *c = calypso_client_check(L, 1, "clock_offset");
    if (!lua_isnoneornil(L, 2)) {
        lua_Number v = calypso_checknumber(L, 2, "clock_offset");
        if (!(v >= -8.64e10 && v <= 8.64e10))   /* +-1000 days */
            calypso_argerror(L, 2, "clock_offset", "offset must be a number of milliseconds within +-1000 days");
        c->clock_offset_ms = (long long)v;
    }
    calypso_pushint64(L, c->clock_offset_ms);
    return 1;
}

/* Methods that use the client's buffers or handles across Lua API calls: each
 * runs as its body under client_guarded. */
static const luaL_Reg client_guarded_methods[] = {
    { "call", client_call },
    { "prepare", client_prepare },
    { "prepare_http", client_prepare_http },
    { "finish", client_finish },
    { "failure", client_failure },
    { NULL, NULL }
};

/* Methods that work on their own state (they may run while the client is busy).
 * multi.c adds multi and batch (calypso_multi_register). */
static const luaL_Reg client_methods[] = {
    { "sign", client_sign },
    { "info", client_info },
    { "clock_offset", client_clock_offset },
    { "deadline", client_deadline },
    { "last_status", client_last_status },
    { "close", client_close },
    { NULL, NULL }
};

static const luaL_Reg client_meta[] = {
    { "__gc", client_close },
    { "__close", client_close },
    { "__tostring", client_tostring },
    { NULL, NULL }
};

/* Pushes copies of the codec (CALYPSO_JSON_UPVALUES values from index codec). */
static void push_codec(lua_State *L, int codec)
{
    int i;
    for (i = 0; i < CALYPSO_JSON_UPVALUES; i++)
        lua_pushvalue(L, codec + i);
}

/* See client.h. */
void calypso_client_set_guarded(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_pushcclosure(L, client_guarded, 2);
    lua_setfield(L, -2, name);
}

void calypso_client_register(lua_State *L)
{
    int i, codec = lua_gettop(L) - CALYPSO_JSON_UPVALUES + 1;
    const luaL_Reg *r;
    luaL_newmetatable(L, CALYPSO_CLIENT_MT);          /* codec, mt */
    lua_pushliteral(L, CALYPSO_CLIENT_MT);
    lua_setfield(L, -2, "__name");                    /* 5.1/5.2 do not set it */
    calypso_setfuncs(L, client_meta, 0);
    lua_newtable(L);                                  /* codec, mt, methods */
    calypso_setfuncs(L, client_methods, 0);
    for (r = client_guarded_methods; r->name != NULL; r++) {
        push_codec(L, codec);
        lua_pushcclosure(L, r->func, CALYPSO_JSON_UPVALUES);
        calypso_client_set_guarded(L, r->name);
    }
    for (i = 0; i < calypso_endpoint_count; i++) {
        push_codec(L, codec);
        lua_pushinteger(L, i);
        lua_pushcclosure(L, client_operation, CALYPSO_JSON_UPVALUES + 1);
        calypso_client_set_guarded(L, calypso_endpoints[i].name);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");                   /* codec, mt, methods */
    lua_remove(L, -2);                                /* codec, methods: for other files' */
}

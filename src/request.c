/* request.c: the request pipeline, shared by the single-call methods
 * (client.c) and the multi handle (multi.c):
 *   prepare (validate, envelope, encode once, sign those bytes) ->
 *   perform (libcurl: the client's easy handle here, a multi's in multi.c) ->
 *   finish (status + body -> table or failure).
 * Functions here read the client's buffers and handles but never hold a pointer
 * into them across a Lua API call unless their caller made the client busy
 * (client.h, calypso_client_enter). */
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
#include "request.h"
#include "sign.h"
#include "validate.h"

/* ------------------------------------------------------------------ finish */

/* Copies server text into dst as one printable line, at most dstlen-1 bytes. */
void calypso_clean_line(const char *s, size_t n, char *dst, size_t dstlen)
{
    size_t i, k = 0;
    for (i = 0; i < n && k + 1 < dstlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* Unicode's line breaks too: U+2028, U+2029 (E2 80 A8/A9) and NEL
         * U+0085 (C2 85) end a line in many log viewers and JSON-lines tools */
        if (ch == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
            i += 2;
            ch = ' ';
        } else if (ch == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) {
            i += 1;
            ch = ' ';
        }
        dst[k++] = (ch < 0x20 || ch == 0x7F) ? ' ' : (char)ch;
    }
    if (i < n) {
        /* cut short: never end inside a multi-byte UTF-8 character */
        size_t lead = k;
        while (lead > 0 && ((unsigned char)dst[lead - 1] & 0xC0) == 0x80)
            lead--;
        if (lead > 0 && (unsigned char)dst[lead - 1] >= 0xC0) {
            unsigned char c0 = (unsigned char)dst[lead - 1];
            size_t need = c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : 2;
            if (k - (lead - 1) < need)
                k = lead - 1;
        }
    }
    dst[k] = '\0';
}

/* Replaces the userinfo of every URL in the line s ("scheme://user:pw@host")
 * with "***": libcurl names the proxy URL, credentials included, in some of
 * its error texts. */
static void redact_userinfo(char *s)
{
    char *p = s;
    while ((p = strstr(p, "://")) != NULL) {
        char *start = p + 3, *end = start, *at = NULL;
        for (; *end != '\0' && *end != ' ' && *end != '\'' && *end != '"' && *end != '/'; end++)
            if (*end == '@')
                at = end;
        if (at != NULL && at - start >= 3) {          /* shrinks the line: "***@host" */
            memcpy(start, "***", 3);
            memmove(start + 3, at, strlen(at) + 1);
            end = start + 3;
        } else if (at != NULL) {                      /* "a@host": never grow it */
            memset(start, '*', (size_t)(at - start));
        }
        p = end;
    }
}

/* Masks with '*' every copy of the proxy's credentials (what its URL holds
 * before the last '@', scheme aside) in the line s, and a copy the line cuts
 * short at its end: libcurl echoes a proxy it cannot use whole, and a
 * password may hold '/', quotes or spaces, or come without a scheme, where
 * redact_userinfo cannot tell where it ends. */
static void mask_proxy_credentials(char *s, const char *proxy)
{
    const char *cred, *at, *p;
    size_t n, len, i;
    if (proxy == NULL || (at = strrchr(proxy, '@')) == NULL)
        return;
    p = strstr(proxy, "://");
    cred = p != NULL && p < at ? p + 3 : proxy;
    n = (size_t)(at - cred);
    len = strlen(s);
    for (i = 0; n > 0 && i < len; i++) {
        size_t k = len - i < n ? len - i : n;   /* the whole copy, or the line's tail */
        if (memcmp(s + i, cred, k) == 0) {
            memset(s + i, '*', k);
            i += k - 1;
        }
    }
}

/* Reads a string field of the table on top into dst (cleaned); 1 if present. */
static int get_text(lua_State *L, const char *name, char *dst, size_t dstlen)
{
    int ok = 0;
    lua_getfield(L, -1, name);
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        calypso_clean_line(s, n, dst, dstlen);
        ok = 1;
    }
    lua_pop(L, 1);
    return ok;
}

static int first_char(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < n ? (unsigned char)s[i] : -1;
}

/* A list result may come bare or wrapped ({"purses": [...]}): find the list. */
static int unwrap_list(lua_State *L, const char *body, size_t len)
{
    static const char *const wrappers[] = { "purses", "result", "content", "items", "data", NULL };
    const char *const *w;
    if (first_char(body, len) == '[')
        return 1;
    for (w = wrappers; *w != NULL; w++) {
        lua_getfield(L, -1, *w);
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_remove(L, -2);
            return 1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* A 2xx answer that turns out to be a failure (bad JSON, wrong shape) still
 * reports the server's Date and Retry-After: on the libcurl path they are
 * read only now. */
static void late_headers(const calypso_response *r, calypso_failure *f)
{
    if (r->late == NULL)
        return;
    calypso_http_read_headers(r->late);
    f->date = r->late->date[0] ? r->late->date : NULL;
    f->retry_after = r->late->retry_after[0] ? r->late->retry_after : NULL;
}

int calypso_request_finish(lua_State *L, calypso_client *c, const calypso_endpoint *ep,
                          const char *op, const calypso_response *r)
{
    calypso_failure f;
    char msg[400], reason[240], code[16], api_msg[240], trace[80];
    const char *body = r->body ? r->body : "";
    size_t len = r->len;
    int top = lua_gettop(L);

    memset(&f, 0, sizeof f);
    f.op = op;
    f.message = msg;
    f.sent = r->sent;
    f.status = r->status;
    f.date = r->date;
    f.retry_after = r->retry_after;

    if (r->kind != NULL) {
        f.kind = r->kind;
        calypso_clean_line(r->detail, strlen(r->detail), reason, sizeof reason);
        mask_proxy_credentials(reason, c->proxy);
        redact_userinfo(reason);
        if (strcmp(r->kind, "too_large") == 0)
            snprintf(msg, sizeof msg, "response body larger than max_response_size (%zu bytes)",
                     c->http.body.limit);
        else
            snprintf(msg, sizeof msg, "%s error: %s", f.kind, reason);
        f.retryable = strcmp(r->kind, "too_large") != 0;
        return calypso_push_failure(L, &f);
    }

    if (r->status >= 200 && r->status < 300) {
        int fc = first_char(body, len);
        f.kind = "decode";
        if (calypso_json_decode(L, body, len, c->exact_amounts, &c->scratch, reason, sizeof reason) != 0) {
            snprintf(msg, sizeof msg, "HTTP %ld with a body that is not valid JSON (%s)", r->status, reason);
            f.body = body;
            f.body_len = len;
            late_headers(r, &f);
            return calypso_push_failure(L, &f);
        }
        if (ep != NULL && ep->shape == CALYPSO_RETURNS_LIST) {
            if (lua_type(L, -1) == LUA_TTABLE && unwrap_list(L, body, len))
                return 1;
        } else if (fc == '{' || (ep == NULL && fc == '[')) {
            return 1;
        }
        lua_settop(L, top);
        snprintf(msg, sizeof msg, "HTTP %ld with JSON of an unexpected shape (expected %s)", r->status,
                 ep != NULL && ep->shape == CALYPSO_RETURNS_LIST ? "a list" : "an object");
        f.body = body;
        f.body_len = len;
        late_headers(r, &f);
        return calypso_push_failure(L, &f);
    }

    /* Not 2xx: an API error when the body is JSON with an errorCode (whatever
     * the status: the docs only promise 400/500), otherwise a plain HTTP error. */
    f.retryable = r->status == 408 || r->status == 429 || r->status == 502 ||
                  r->status == 503 || r->status == 504;
    if (first_char(body, len) == '{' &&
        calypso_json_decode(L, body, len, 0, NULL, reason, sizeof reason) == 0) {
        if (lua_type(L, -1) == LUA_TTABLE && get_text(L, "errorCode", code, sizeof code)) {
            f.kind = "api";
            f.code = code;
            f.api_message = get_text(L, "message", api_msg, sizeof api_msg) ? api_msg : NULL;
            f.trace_id = get_text(L, "traceId", trace, sizeof trace) ? trace : NULL;
            f.retryable = f.retryable || strcmp(code, "000") == 0;
            snprintf(msg, sizeof msg, "API error %s: %s (HTTP %ld%s%s)", code,
                     f.api_message ? f.api_message : "no message", r->status,
                     f.trace_id ? ", trace " : "", f.trace_id ? f.trace_id : "");
            lua_settop(L, top);
            return calypso_push_failure(L, &f);
        }
        lua_settop(L, top);
    }
    f.kind = "http";
    f.body = body;
    f.body_len = len;
    snprintf(msg, sizeof msg, "HTTP %ld without a Calypso error body", r->status);
    return calypso_push_failure(L, &f);
}

/* ------------------------------------------------------------------ prepare + perform */

double calypso_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Checks a path for client:call(): "customer/get" (below the Customer Purse
 * prefix) or "/api/v1/..." (absolute on the API host). */
const char *calypso_path_problem(const char *p, size_t n)
{
    size_t i;
    if (n == 0 || n > CALYPSO_MAX_PATH)
        return "path must be 1 to 256 characters";
    for (i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '/' || ch == '-' || ch == '_' || ch == '.'))
            return "path may only hold letters, digits and / - _ .";
    }
    if (strstr(p, "..") != NULL)
        return "path must not contain '..'";
    return NULL;
}

void calypso_request_check_path(lua_State *L, int idx, const char *fname, const char *p, size_t n)
{
    const char *why = calypso_path_problem(p, n);
    if (why != NULL)
        calypso_argerror(L, idx, fname, why);
}

/* See request.h. The base URL is copied per call (a few dozen bytes) rather
 * than a path written after it in the client's own buffer, which every caller
 * then had to cut back. */
char *calypso_request_url(const calypso_client *c, const calypso_endpoint *ep,
                          const char *path, size_t pathlen, char *dst)
{
    char *p = dst + c->base_len;
    memcpy(dst, c->url, c->base_len);
    if (ep != NULL) {
        path = ep->path;
        pathlen = strlen(ep->path);
    }
    if (path[0] != '/') {
        memcpy(p, CALYPSO_API_PREFIX, sizeof CALYPSO_API_PREFIX - 1);
        p += sizeof CALYPSO_API_PREFIX - 1;
    }
    memcpy(p, path, pathlen + 1);
    return dst;
}

size_t calypso_request_url_size(const calypso_client *c)
{
    return CALYPSO_URL_SIZE(c->base_len);
}

void calypso_request_response(calypso_http *h, CURLcode rc, calypso_response *r)
{
    memset(r, 0, sizeof *r);
    r->late = h;
    r->sent = h->sent_bytes > 0;
    r->status = h->status;
    r->date = h->date[0] ? h->date : NULL;
    r->retry_after = h->retry_after[0] ? h->retry_after : NULL;
    if (rc != CURLE_OK) {
        r->kind = calypso_http_kind(rc);
        r->detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
    } else {
        r->body = h->body.data;
        r->len = h->body.len;
    }
}

/* prepare: validates the payload at pidx, writes it in the envelope into
 * c->request and signs those bytes. On success fills sign_hex and returns 0
 * (the stack is settled to pidx); otherwise pushes nil, message, err and
 * returns 3. */
int calypso_request_prepare(lua_State *L, calypso_client *c, const calypso_endpoint *ep,
                           const char *op, int pidx, char sign_hex[CALYPSO_SIGN_HEX])
{
    char msg[240], ts[24];
    calypso_buf *req = &c->request;
    size_t tslen;

    lua_settop(L, pidx);
    if (lua_isnil(L, pidx)) {
        lua_newtable(L);
        lua_replace(L, pidx);
    }
    if (!lua_istable(L, pidx)) {
        snprintf(msg, sizeof msg, "payload must be a table (got %s)", luaL_typename(L, pidx));
        return calypso_push_simple_failure(L, "invalid", op, msg);
    }

    /* The envelope is written in the documented order into a client-owned
     * buffer (no Lua string to allocate and collect per call); these exact
     * bytes are signed and sent. */
    tslen = calypso_format_int(ts, now_ms() + c->clock_offset_ms);
    calypso_buf_clear(req);
    if (calypso_buf_append(req, "{\"account\":", 11) != 0 ||
        calypso_buf_append(req, c->account_json, c->account_json_len) != 0 ||
        calypso_buf_append(req, ",\"timestamp\":", 13) != 0 ||
        calypso_buf_append(req, ts, tslen) != 0 ||
        calypso_buf_append(req, ",\"payload\":", 11) != 0)
        return luaL_error(L, "calypso.purse: out of memory building the request");
    if (ep != NULL) {
        /* a documented operation: checked and written in one walk */
        if (calypso_payload_write(L, pidx, ep->fields, CALYPSO_MAX_PAYLOAD, req, msg, sizeof msg) != 0) {
            calypso_buf_clear(req);
            return calypso_push_simple_failure(L, "invalid", op, msg);
        }
    } else {
        /* client:call(): any JSON-able table, through lua-cjson */
        const char *payload_json;
        size_t payload_len;
        if (calypso_validate(L, pidx, CALYPSO_MAX_PAYLOAD, msg, sizeof msg) != 0 ||
            calypso_json_encode(L, pidx, msg, sizeof msg) != 0) {
            calypso_buf_clear(req);
            return calypso_push_simple_failure(L, "invalid", op, msg);
        }
        payload_json = lua_tolstring(L, -1, &payload_len);
        if (calypso_buf_append(req, payload_json, payload_len) != 0)
            return luaL_error(L, "calypso.purse: out of memory building the request");
        lua_pop(L, 1);
    }
    if (calypso_buf_append(req, "}", 1) != 0)
        return luaL_error(L, "calypso.purse: out of memory building the request");
    if (calypso_signer_sign(&c->signer, (const unsigned char *)req->data, req->len, sign_hex) != 0)
        return luaL_error(L, "calypso.purse: HMAC-SHA512 failed");
    return 0;
}

/* Re-stamps an envelope that calypso_request_prepare built for this client
 * (a call that waited in a multi's queue) with the current time, then signs
 * it. A timestamp of another length (never before the year 2286) is left as
 * it was; the body is signed either way. Returns 0, or -1 when signing failed. */
int calypso_request_restamp(calypso_client *c, char *body, size_t len, char sign_hex[CALYPSO_SIGN_HEX])
{
    char ts[24];
    size_t off = 24 + c->account_json_len, n = 0, tslen = calypso_format_int(ts, now_ms() + c->clock_offset_ms);
    while (off + n < len && body[off + n] != ',')
        n++;
    if (n == tslen && off + n < len)
        memcpy(body + off, ts, tslen);
    return calypso_signer_sign(&c->signer, (const unsigned char *)body, len, sign_hex);
}

const calypso_buf *calypso_request_envelope(const calypso_client *c)
{
    return &c->request;
}

/* See request.h. Shared by the single-call path and multi.c's launch. */
long calypso_request_timeout(const calypso_client *c, double deadline)
{
    long t = c->timeout_ms;
    if (deadline > 0) {
        double left = (deadline - calypso_monotonic()) * 1000.0;
        if (left < 1.0)
            return 0;
        if (left < (double)t)
            t = (long)left;
    }
    return t;
}

/* See request.h: prepare, perform over the client's easy handle, finish. */
int calypso_request_call(lua_State *L, calypso_client *c, const calypso_endpoint *ep,
                         const char *path, size_t pathlen, int pidx)
{
    char sign_hex[CALYPSO_SIGN_HEX], url[CALYPSO_URL_MAX];
    const char *op = ep != NULL ? ep->name : path;
    calypso_http *h = &c->http;
    calypso_response r;
    CURLcode rc;

    if (calypso_request_prepare(L, c, ep, op, pidx, sign_hex) != 0)
        return 3;
    if (c->deadline > 0 || c->applied_timeout_ms != c->timeout_ms) {
        /* a deadline set by client:deadline() shortens this call's timeout */
        long t = calypso_request_timeout(c, c->deadline);
        if (t == 0) {
            mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);
            calypso_response dr;
            memset(&dr, 0, sizeof dr);
            dr.kind = "timeout";
            dr.detail = "the deadline passed before the request was sent";
            return calypso_request_finish(L, c, ep, op, &dr);
        }
        if (t != c->applied_timeout_ms) {
            curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, t);
            c->applied_timeout_ms = t;
        }
    }
    calypso_request_url(c, ep, path, pathlen, url);
    /* Writes, and paths we know nothing about, must reach the server at most
     * once: libcurl never resends their body (http.h). */
    rc = calypso_http_post(h, url, c->request.data, c->request.len, sign_hex, ep == NULL || ep->writes);
    mbedtls_platform_zeroize(sign_hex, sizeof sign_hex);

    calypso_request_response(h, rc, &r);
    return calypso_request_finish(L, c, ep, op, &r);
}

const calypso_endpoint *calypso_find_endpoint(lua_State *L, int idx)
{
    const char *name = lua_tostring(L, idx);
    int i;
    for (i = 0; name != NULL && i < calypso_endpoint_count; i++)
        if (strcmp(calypso_endpoints[i].name, name) == 0)
            return &calypso_endpoints[i];
    return NULL;
}

/* Reads an operation argument (method name or path) for prepare/finish. */
const calypso_endpoint *calypso_request_op(lua_State *L, int idx, const char *fname,
                                          const char **path, size_t *pathlen)
{
    const calypso_endpoint *ep;
    *path = calypso_checklstring(L, idx, fname, pathlen);
    ep = calypso_find_endpoint(L, idx);
    if (ep == NULL)
        calypso_request_check_path(L, idx, fname, *path, *pathlen);
    return ep;
}


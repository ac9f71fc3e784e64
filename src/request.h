/* request.h: the request pipeline (request.c), used by client.c for single
 * calls and by multi.c for concurrent ones:
 *   prepare: validate the payload, build the envelope into the client's
 *            request buffer, sign those bytes;
 *   url:     where the operation goes;
 *   perform: calypso_request_call for one call on the client's easy handle
 *            (multi.c performs over its own handles);
 *   response + finish: a finished transfer (or another transport's answer)
 *            into the result table or nil, message, err.
 * Every function taking a client reads its buffers: the caller keeps the
 * client busy (calypso_client_enter) across them. */
#ifndef CALYPSO_REQUEST_H
#define CALYPSO_REQUEST_H

#include <stddef.h>
#include <lua.h>
#include <curl/curl.h>
#include "buf.h"
#include "endpoints.h"
#include "http.h"
#include "options.h"
#include "sign.h"

struct calypso_client;

#define CALYPSO_MAX_PATH 256
#define CALYPSO_MAX_PAYLOAD (1u << 20)   /* 1 MiB of payload JSON (strings before escaping) */
/* The envelope's cap: JSON escaping can grow strings up to 6x. */
#define CALYPSO_MAX_ENVELOPE (8 * CALYPSO_MAX_PAYLOAD)
/* Bytes calypso_request_url writes at most after a base URL of base_len bytes,
 * NUL included; CALYPSO_URL_MAX for any client. */
#define CALYPSO_URL_SIZE(base_len) ((base_len) + sizeof CALYPSO_API_PREFIX + CALYPSO_MAX_PATH)
#define CALYPSO_URL_MAX CALYPSO_URL_SIZE(CALYPSO_MAX_BASE_URL)

/* What came back from a transport: a failure (kind set) or an HTTP response. */
typedef struct calypso_response {
    const char *kind;           /* transport failure kind, or NULL for a response */
    const char *detail;         /* transport failure text */
    int sent;                   /* 0: provably never reached a server */
    long status;
    const char *body;
    size_t len;
    const char *date;           /* Date header, or NULL */
    const char *retry_after;    /* Retry-After header, or NULL */
    calypso_http *late;         /* libcurl transfer whose headers a failing 2xx answer
                                   reads late (collect skips them for 2xx), or NULL */
} calypso_response;

/* ---- the operation */

/* Checks a client:call path; returns NULL or why it is not one. */
const char *calypso_path_problem(const char *p, size_t n);
/* Raises (an argument error naming fname) when p is not a client:call path. */
void calypso_request_check_path(lua_State *L, int idx, const char *fname, const char *p, size_t n);
/* The endpoint named by the string at idx (a method name), or NULL. */
const calypso_endpoint *calypso_find_endpoint(lua_State *L, int idx);
/* Reads an operation argument: a method name (returns its endpoint) or a
 * path for client:call (returns NULL; raises, naming fname, when it is not a path). */
const calypso_endpoint *calypso_request_op(lua_State *L, int idx, const char *fname,
                                           const char **path, size_t *pathlen);

/* ---- prepare */

/* Validates the payload at pidx, builds the envelope into the client's request
 * buffer (calypso_client_envelope) and signs it: returns 0 (the stack settled
 * to pidx), or pushes nil, message, err and returns 3. */
int calypso_request_prepare(lua_State *L, struct calypso_client *c, const calypso_endpoint *ep,
                            const char *op, int pidx, char sign_hex[CALYPSO_SIGN_HEX]);
/* Gives an envelope built by calypso_request_prepare a fresh timestamp and
 * signs it into sign_hex; returns 0 or -1. No Lua. */
int calypso_request_restamp(struct calypso_client *c, char *body, size_t len,
                            char sign_hex[CALYPSO_SIGN_HEX]);
/* Writes the operation's full URL (ep's path, else path) into dst, which holds
 * calypso_request_url_size(c) bytes: the base URL, then the operation's path
 * from dst + the base URL's length; returns dst. No allocation, no Lua. */
char *calypso_request_url(const struct calypso_client *c, const calypso_endpoint *ep,
                          const char *path, size_t pathlen, char *dst);
size_t calypso_request_url_size(const struct calypso_client *c);
/* The envelope the last calypso_request_prepare built and signed: valid (and
 * to be used) only while the client stays busy and until the next prepare. */
const calypso_buf *calypso_request_envelope(const struct calypso_client *c);

/* ---- perform */

/* client:<operation> and client:call: prepare, POST over the client's easy
 * handle (under its deadline), finish; returns the count pushed. */
int calypso_request_call(lua_State *L, struct calypso_client *c, const calypso_endpoint *ep,
                         const char *path, size_t pathlen, int pidx);
/* The timeout in ms of a call started now under deadline (a purse.now() time;
 * 0: none): the client's, shortened to what is left; 0 when the deadline has
 * passed (the call must fail unsent). */
long calypso_request_timeout(const struct calypso_client *c, double deadline);

/* ---- finish */

/* Fills r from a finished libcurl transfer (pointers into h). */
void calypso_request_response(calypso_http *h, CURLcode rc, calypso_response *r);
/* Turns a response into the result or nil, message, err; returns the count pushed. */
int calypso_request_finish(lua_State *L, struct calypso_client *c, const calypso_endpoint *ep,
                           const char *op, const calypso_response *r);
/* Copies server text into dst as one printable line, at most dstlen-1 bytes. */
void calypso_clean_line(const char *s, size_t n, char *dst, size_t dstlen);

/* Seconds on the monotonic clock (purse.now, deadlines). */
double calypso_monotonic(void);

#endif

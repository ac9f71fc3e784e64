/* errors.h: the runtime-failure triple `nil, message, err` (README, "Error handling").
 * message is one readable line; err is a table with at least `kind`. Nothing
 * here ever sees the secret: only kinds, statuses, codes and server text. */
#ifndef CALYPSO_ERRORS_H
#define CALYPSO_ERRORS_H

#include <stddef.h>
#include <lua.h>

typedef struct calypso_failure {
    const char *kind;       /* "api", "http", "decode", "connect", ... */
    const char *message;    /* the one-line text (without the "calypso: " prefix) */
    const char *op;         /* method or path the call was for, or NULL */
    long status;            /* HTTP status, 0 when there was none */
    const char *code;       /* Calypso errorCode, or NULL */
    const char *api_message;/* the server's own message, or NULL */
    const char *trace_id;   /* Calypso traceId, or NULL */
    const char *retry_after;/* Retry-After header as sent, or NULL */
    const char *date;       /* Date header as sent, or NULL */
    const char *body;       /* first bytes of a non-JSON body, or NULL */
    size_t body_len;
    int retryable;          /* transient by nature (network, 5xx, 429) */
    int sent;               /* 0: provably never reached the server; 1: may have */
} calypso_failure;

/* Pushes nil, message, err and returns 3 (so `return calypso_push_failure(...)`). */
int calypso_push_failure(lua_State *L, const calypso_failure *f);

/* Shorthand for a failure with only a kind and a message. */
int calypso_push_simple_failure(lua_State *L, const char *kind, const char *op, const char *message);

/* Argument checks of methods that name the method themselves: lauxlib finds
 * the name from the call site, which gives '?' when a method is reached
 * through a tail call, pcall or lua_pcall. idx is the stack index (self is 1);
 * messages count the arguments after self, as lauxlib does for obj:method(). */
int calypso_argerror(lua_State *L, int idx, const char *fname, const char *extramsg);
void *calypso_checkself(lua_State *L, const char *tname, const char *fname);
const char *calypso_checklstring(lua_State *L, int idx, const char *fname, size_t *len);
/* NULL when the argument is none or nil. */
const char *calypso_optlstring(lua_State *L, int idx, const char *fname, size_t *len);
lua_Number calypso_checknumber(lua_State *L, int idx, const char *fname);
/* A number with an integral value (5.0 as well as 5, on every runtime). */
lua_Integer calypso_checkinteger(lua_State *L, int idx, const char *fname);

#endif

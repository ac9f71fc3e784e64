/* client.h: the client userdata (options, signer, transport). */
#ifndef CALYPSO_CLIENT_H
#define CALYPSO_CLIENT_H

#include <lua.h>
#include "buf.h"
#include "endpoints.h"
#include "http.h"
#include "sign.h"

#include "version.h"
#define CALYPSO_CLIENT_MT "calypso.purse.client"

typedef struct calypso_client {
    calypso_http http;
    calypso_signer signer;
    char *account_json;         /* the account as a JSON string literal, quotes included */
    size_t account_json_len;
    char *url;                  /* base URL (no trailing slash), NUL-terminated */
    size_t base_len;
    size_t target_off;          /* where the HTTP request target starts in url: the base
                                   URL's own path, else the operation's (base_len) */
    char key_hint[16];          /* first chars of the public key, for tostring */
    char key[260];              /* the public key (not a secret), for other transports */
    char user_agent[320];
    long timeout_ms, connect_timeout_ms;
    double deadline;            /* purse.now() time the next calls must end by; 0: none */
    long applied_timeout_ms;    /* CURLOPT_TIMEOUT_MS as last set on the easy handle */
    long long clock_offset_ms;  /* added to the local clock for `timestamp` */
    calypso_buf scratch;        /* response text rewritten for exact numbers */
    calypso_buf request;        /* the envelope being sent: signed and posted from here */
    calypso_buf wire;           /* a whole HTTP request for client:prepare_http */
    calypso_http_opts http_opts;/* for more easy handles (batch, multi) */
    char *ca_file, *proxy;      /* owned copies behind http_opts */
    struct calypso_multi *batch;/* the multi handle behind client:batch, lazily made by
                                   multi.c (calypso_client_set_batch); NULL: none */
    void (*batch_free)(struct calypso_multi *);   /* how release frees it */
    int exact_amounts;          /* "amount" values as decimal strings */
    int open;
    int busy;                   /* a method is using the buffers and handles (see
                                   calypso_client_enter); nested ones raise */
    int closing;                /* close asked while busy: released on leaving */
} calypso_client;

#define CALYPSO_CLIENT_BUSY \
    "calypso.purse: client is busy (called from a finalizer or hook during another call on it)"

/* The open client at idx (raises, naming the method fname, when it is not a
 * client or is closed, a deferred close included). */
calypso_client *calypso_client_check(lua_State *L, int idx, const char *fname);
/* Re-entrancy. Any Lua API call can run Lua (a GC step runs finalizers; hooks),
 * and that Lua may call this client again. A method that uses the client's
 * buffers or handles across Lua API calls marks it busy for the whole time:
 * enter raises when the client is busy already; leave unmarks it and does a
 * close asked meanwhile. Methods run their body under lua_pcall between the
 * two, so a Lua error leaves through leave too. */
void calypso_client_enter(lua_State *L, calypso_client *c);
void calypso_client_leave(calypso_client *c);
/* Registers the client metatable; expects the json codec (2 values) on top of
 * the stack, leaves it there and pushes the method table above it, where other
 * files add their methods (purse.c pops it). */
void calypso_client_register(lua_State *L);
/* With the method table at -2 and a method body on top (popped): sets
 * methods[name] to the busy guard over the body. The body runs under lua_pcall
 * with the client (argument 1) checked and busy, so it may hold pointers into
 * the client's buffers across Lua API calls. */
void calypso_client_set_guarded(lua_State *L, const char *name);

/* Accessors, for files that need no more of the client (multi.c). */
const calypso_http_opts *calypso_client_http_opts(const calypso_client *c);
/* Open, and no close pending: its signer and buffers can be used. */
int calypso_client_usable(const calypso_client *c);
/* client:deadline()'s value (a purse.now() time; 0: none). */
double calypso_client_deadline(const calypso_client *c);
/* The state behind client:batch, owned by the client (release calls free_fn on
 * it) and made and used by multi.c: the client needs no multi.h. */
struct calypso_multi *calypso_client_batch(const calypso_client *c);
void calypso_client_set_batch(calypso_client *c, struct calypso_multi *m,
                              void (*free_fn)(struct calypso_multi *));
/* purse.new(opts): needs the json codec as upvalues. */
int calypso_client_new(lua_State *L);

#endif

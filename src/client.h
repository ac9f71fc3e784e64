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
    struct calypso_multi *batch;/* the multi handle behind client:batch, lazily made */
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
 * the stack and leaves it there. */
void calypso_client_register(lua_State *L);
/* purse.new(opts): needs the json codec as upvalues. */
int calypso_client_new(lua_State *L);

#endif

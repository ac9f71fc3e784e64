/* options.h: purse.new's options, checked. */
#ifndef CALYPSO_OPTIONS_H
#define CALYPSO_OPTIONS_H

#include <stddef.h>
#include <lua.h>

#define CALYPSO_MAX_BASE_URL 1024
#define CALYPSO_MAX_CA_FILE 4096

typedef struct calypso_options {
    const char *key, *secret, *account, *base_url, *ca_file, *proxy, *user_agent;
    size_t secret_len, account_len, base_len;   /* base_len: without trailing slashes */
    double timeout, connect_timeout, write_reuse_idle;
    lua_Integer max_response;
    int insecure, exact_amounts;
} calypso_options;

/* Reads purse.new's options table at index 1 into o, raising on an unknown,
 * mistyped or out-of-range option. Replaces index 1 by a private copy of the
 * table (a finalizer may empty the caller's): o's strings point into it, so
 * it must stay on the stack while they are used. */
void calypso_options_read(lua_State *L, calypso_options *o);

#endif

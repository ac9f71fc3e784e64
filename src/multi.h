/* multi.h: many calls in flight at once over one libcurl multi handle. */
#ifndef CALYPSO_MULTI_H
#define CALYPSO_MULTI_H

#include <lua.h>

typedef struct calypso_multi calypso_multi;

/* Frees a multi state and every transfer in it; NULL is fine. */
void calypso_multi_free(calypso_multi *m);
/* Registers the multi metatable; expects the json codec (2 values) on top and leaves it. */
void calypso_multi_register(lua_State *L);
/* client:multi() -> a multi object for non-blocking calls (game loops). */
int calypso_client_multi(lua_State *L);
/* client:batch(calls [, max_in_flight]) -> results, in order. */
int calypso_client_batch(lua_State *L);

#endif

/* multi.h: many calls in flight at once over one libcurl multi handle: the
 * multi object (client:multi) and client:batch. */
#ifndef CALYPSO_MULTI_H
#define CALYPSO_MULTI_H

#include <lua.h>

typedef struct calypso_multi calypso_multi;

/* Registers the multi metatable and adds multi and batch to the client's
 * methods; expects the json codec (2 values) then the client method table
 * (calypso_client_register) on top, and leaves them. */
void calypso_multi_register(lua_State *L);

#endif

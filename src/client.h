/* client.h: the client userdata (options, signer, transport). */
#ifndef CALYPSO_CLIENT_H
#define CALYPSO_CLIENT_H

#include <lua.h>

#define CALYPSO_VERSION "0.1.0"
#define CALYPSO_CLIENT_MT "calypso.purse.client"

/* Registers the client metatable; expects the json codec (2 values) on top of
 * the stack and leaves it there. */
void calypso_client_register(lua_State *L);
/* purse.new(opts): needs the json codec as upvalues. */
int calypso_client_new(lua_State *L);

#endif

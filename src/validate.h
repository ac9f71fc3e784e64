/* validate.h: checks a payload table before anything is encoded or sent.
 * Everything the server would reject, and everything lua-cjson would encode
 * lossily or refuse, is caught here and reported as one readable line. */
#ifndef CALYPSO_VALIDATE_H
#define CALYPSO_VALIDATE_H

#include <stddef.h>
#include <lua.h>
#include "endpoints.h"

#define CALYPSO_MAX_DEPTH 16   /* nesting of payload tables; the API needs 2 */

/* Checks the table at idx against fields (NULL: JSON-ability only) and a budget
 * of max_bytes of string data. Returns 0, or -1 with a reason in msg. Reads
 * tables raw, so metatables never run; never raises except on out-of-memory. */
int calypso_validate(lua_State *L, int idx, const calypso_field *fields,
                     size_t max_bytes, char *msg, size_t msglen);

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates, or > U+10FFFF). */
int calypso_utf8_valid(const char *s, size_t n);

/* 1 when s[0..n) is a UUID in 8-4-4-4-12 hex form (either case). */
int calypso_is_uuid(const char *s, size_t n);

#endif

/* validate.h: checks a payload table before anything is encoded or sent.
 * Everything the server would reject, and everything lua-cjson would encode
 * lossily or refuse, is caught here and reported as one readable line. */
#ifndef CALYPSO_VALIDATE_H
#define CALYPSO_VALIDATE_H

#include <stddef.h>
#include <lua.h>
#include "buf.h"
#include "endpoints.h"

#define CALYPSO_MAX_DEPTH 16   /* nesting of payload tables; the API needs 2 */

/* Checks that the table at idx can be sent as JSON by lua-cjson without loss
 * (client:call, whose payload has no field list), within a budget of
 * max_bytes of string data. Returns 0, or -1 with a reason in msg. Reads
 * tables raw, so metatables never run; never raises except on out-of-memory. */
int calypso_validate(lua_State *L, int idx, size_t max_bytes, char *msg, size_t msglen);

/* Checks the table at idx against a documented operation's fields and, in
 * the same walk, appends its JSON to out (fields in table order; no lua-cjson).
 * Returns 0, or -1 with a reason in msg (out then holds a partial text the
 * caller discards). Reads raw; raises only when out of memory. */
int calypso_payload_write(lua_State *L, int idx, const calypso_field *fields, size_t max_bytes,
                          calypso_buf *out, char *msg, size_t msglen);

/* Writes v in decimal into dst (NUL-terminated); returns its length. */
size_t calypso_format_int(char dst[24], long long v);

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates, or > U+10FFFF). */
int calypso_utf8_valid(const char *s, size_t n);

/* 1 when s[0..n) is a UUID in 8-4-4-4-12 hex form (either case). */
int calypso_is_uuid(const char *s, size_t n);

#endif

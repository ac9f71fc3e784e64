/* numbers.h: keeps numbers that must not pass through a C double away from
 * lua-cjson (which decodes every number with strtod). Before decoding, the
 * raw JSON is rewritten so that
 *   - with exact amounts on, every value of an "amount" member becomes a JSON
 *     string holding the token exactly as the server wrote it, and
 *   - every integer token longer than 15 digits (it may exceed 2^53) becomes a
 *     string marked with CALYPSO_BIGINT_MARK, turned back into an exact Lua
 *     integer (5.3+) or a digit string after decoding.
 * Everything else is copied byte for byte. */
#ifndef CALYPSO_NUMBERS_H
#define CALYPSO_NUMBERS_H

#include <stddef.h>
#include "buf.h"

/* A byte that never starts a JSON string from a well-formed UTF-8 body. */
#define CALYPSO_BIGINT_MARK '\xFF'

/* What the pass met outside strings (*seen): when neither, the decoded value
 * holds no number and no null, and needs no normalising walk. */
#define CALYPSO_SEEN_NUMBER 1
#define CALYPSO_SEEN_NULL 2

/* Rewrites in[0..n) into out when needed. Returns 1 when out holds the
 * rewritten text, 0 when the input needs no change (out untouched), -1 when
 * out cannot grow (or a string starts with the marker byte: invalid UTF-8).
 * Sets *seen to the CALYPSO_SEEN_* flags of what the text holds. */
int calypso_numbers_protect(const char *in, size_t n, int exact_amounts, calypso_buf *out,
                            int *seen);

#endif

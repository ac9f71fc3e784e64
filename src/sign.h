/* sign.h: HMAC-SHA512 request signing (mbedTLS), hex, constant-time verify.
 * Pure functions over bytes; no Lua state. */
#ifndef CALYPSO_SIGN_H
#define CALYPSO_SIGN_H

#include <stddef.h>

#define CALYPSO_SIGN_BYTES 64                        /* SHA-512 digest */
#define CALYPSO_SIGN_HEX (2 * CALYPSO_SIGN_BYTES)    /* 128 lowercase hex chars */

/* A keyed HMAC whose inner and outer hash states are computed once (per client):
 * SHA-512 after absorbing key^ipad and key^opad. Signing then clones them, so a
 * call hashes only the message and the inner digest (3 blocks for a 170-byte
 * envelope, where mbedtls_md_hmac_reset/finish re-hash both pads: 5 blocks).
 * The states are as good as the secret (they forge signatures), so they live in
 * a page of their own that is left out of core dumps and, where the process may,
 * locked out of swap. */
typedef struct calypso_signer {
    struct calypso_keyed *keyed;   /* that page; NULL when not keyed */
} calypso_signer;

/* Keys the signer; returns 0 or -1 (out of memory). The key itself is not kept:
 * only the two hash states, which calypso_signer_free wipes. */
int calypso_signer_init(calypso_signer *s, const unsigned char *key, size_t keylen);
/* Writes the lowercase hex HMAC of msg into hex (CALYPSO_SIGN_HEX bytes, no NUL). */
int calypso_signer_sign(calypso_signer *s, const unsigned char *msg, size_t len, char *hex);
/* Wipes and frees the keyed state; safe to call twice. */
void calypso_signer_free(calypso_signer *s);

/* One-shot: lowercase hex HMAC-SHA512(key, msg) into hex. Returns 0 or -1. */
int calypso_sign_oneshot(const unsigned char *key, size_t keylen,
                         const unsigned char *msg, size_t len, char *hex);
/* Constant-time check of a hex signature (either case) against msg; 1 if it matches. */
int calypso_sign_verify(const unsigned char *key, size_t keylen,
                        const unsigned char *msg, size_t len,
                        const char *sig, size_t siglen);

#endif

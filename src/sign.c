/* sign.c: HMAC-SHA512 with mbedTLS. The hot path is calypso_signer_sign, which
 * reuses the pad state derived from the key (mbedtls_md_hmac_reset) instead of
 * re-hashing the key on every request. */
#include <string.h>
#include <mbedtls/platform_util.h>
#include "sign.h"

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
}

int calypso_signer_init(calypso_signer *s, const unsigned char *key, size_t keylen)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA512);
    mbedtls_md_init(&s->md);
    s->ready = 0;
    if (mbedtls_md_setup(&s->md, info, 1) != 0)
        return -1;
    s->ready = 1;   /* from here on calypso_signer_free has something to wipe */
    if (mbedtls_md_hmac_starts(&s->md, key, keylen) != 0)
        return -1;
    return 0;
}

int calypso_signer_sign(calypso_signer *s, const unsigned char *msg, size_t len, char *hex)
{
    unsigned char mac[CALYPSO_SIGN_BYTES];
    if (mbedtls_md_hmac_reset(&s->md) != 0 ||
        mbedtls_md_hmac_update(&s->md, msg, len) != 0 ||
        mbedtls_md_hmac_finish(&s->md, mac) != 0)
        return -1;
    to_hex(mac, sizeof mac, hex);
    return 0;
}

void calypso_signer_free(calypso_signer *s)
{
    if (s->ready) {
        mbedtls_md_free(&s->md);   /* zeroizes the ipad/opad state before freeing */
        s->ready = 0;
    }
}

/* Raw one-shot HMAC into mac; the stack context is wiped by mbedtls_md_free. */
static int hmac_raw(const unsigned char *key, size_t keylen,
                    const unsigned char *msg, size_t len, unsigned char *mac)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA512);
    return mbedtls_md_hmac(info, key, keylen, msg, len, mac) == 0 ? 0 : -1;
}

int calypso_sign_oneshot(const unsigned char *key, size_t keylen,
                         const unsigned char *msg, size_t len, char *hex)
{
    unsigned char mac[CALYPSO_SIGN_BYTES];
    if (hmac_raw(key, keylen, msg, len, mac) != 0)
        return -1;
    to_hex(mac, sizeof mac, hex);
    return 0;
}

/* Value of one hex digit, or 0x100 (an error bit) for anything else; no branches
 * on the digit's value, so the time taken does not depend on the signature. */
static unsigned hexval(unsigned char c)
{
    unsigned lower = (unsigned)c | 0x20;   /* fold A-F onto a-f */
    unsigned isdig = ((unsigned)(c - '0') <= 9u);
    unsigned isalp = ((unsigned)(lower - 'a') <= 5u);
    unsigned v = (isdig * (unsigned)(c - '0')) + (isalp * (lower - 'a' + 10u));
    return v | ((1u - (isdig | isalp)) << 8);
}

int calypso_sign_verify(const unsigned char *key, size_t keylen,
                        const unsigned char *msg, size_t len,
                        const char *sig, size_t siglen)
{
    unsigned char mac[CALYPSO_SIGN_BYTES];
    unsigned diff = 0;
    size_t i;
    /* The length of a signature is public (always 128); only its content is secret. */
    if (siglen != CALYPSO_SIGN_HEX)
        return 0;
    if (hmac_raw(key, keylen, msg, len, mac) != 0)
        return 0;
    for (i = 0; i < CALYPSO_SIGN_BYTES; i++) {
        unsigned hi = hexval((unsigned char)sig[2 * i]);
        unsigned lo = hexval((unsigned char)sig[2 * i + 1]);
        diff |= (hi | lo) & 0x100;
        diff |= ((hi << 4) | (lo & 15)) ^ mac[i];
    }
    mbedtls_platform_zeroize(mac, sizeof mac);
    return diff == 0;
}

/* hmac_state.h: the HMAC-SHA512 a C programmer writes after profiling, shared
 * by bench/floor.c (--hmac-state) and bench/sign.c (the signing floor): two
 * SHA-512 states that absorbed key^ipad and key^opad once (RFC 2104), cloned
 * for every signature, so a call hashes only the message and the inner digest.
 * Written by hand with mbedTLS's digest API, apart from src/sign.c, which it is
 * measured against. Keys longer than a block are not handled (bench secrets are
 * 32 bytes). */
#ifndef BENCH_HMAC_STATE_H
#define BENCH_HMAC_STATE_H

#include <string.h>
#include <mbedtls/md.h>

typedef struct hmac_state {
    mbedtls_md_context_t inner, outer, work;
} hmac_state;

static int absorb_padded_key(mbedtls_md_context_t *ctx, const unsigned char *key, size_t keylen,
                             unsigned char pad)
{
    unsigned char block[128];
    size_t j;
    memset(block, pad, sizeof block);
    for (j = 0; j < keylen; j++)
        block[j] ^= key[j];
    return mbedtls_md_starts(ctx) != 0 || mbedtls_md_update(ctx, block, sizeof block) != 0 ? -1 : 0;
}

/* 0, or -1 (a key over 128 bytes, or mbedTLS failed); hmac_state_free either way. */
static int hmac_state_init(hmac_state *h, const unsigned char *key, size_t keylen)
{
    const mbedtls_md_info_t *sha512 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA512);
    mbedtls_md_init(&h->inner);
    mbedtls_md_init(&h->outer);
    mbedtls_md_init(&h->work);
    if (keylen > 128 || mbedtls_md_setup(&h->inner, sha512, 0) != 0 ||
        mbedtls_md_setup(&h->outer, sha512, 0) != 0 || mbedtls_md_setup(&h->work, sha512, 0) != 0)
        return -1;
    return absorb_padded_key(&h->inner, key, keylen, 0x36) != 0 ||
           absorb_padded_key(&h->outer, key, keylen, 0x5c) != 0 ? -1 : 0;
}

static void hmac_state_sign(hmac_state *h, const unsigned char *msg, size_t len, unsigned char mac[64])
{
    mbedtls_md_clone(&h->work, &h->inner);
    mbedtls_md_update(&h->work, msg, len);
    mbedtls_md_finish(&h->work, mac);
    mbedtls_md_clone(&h->work, &h->outer);
    mbedtls_md_update(&h->work, mac, 64);
    mbedtls_md_finish(&h->work, mac);
}

static void hmac_state_free(hmac_state *h)
{
    mbedtls_md_free(&h->inner);
    mbedtls_md_free(&h->outer);
    mbedtls_md_free(&h->work);
}

/* The Sign header's 128 lowercase hex digits of a 64-byte MAC. */
static void mac_hex(const unsigned char mac[64], char out[128])
{
    static const char digits[] = "0123456789abcdef";
    int k;
    for (k = 0; k < 64; k++) {
        out[2 * k] = digits[mac[k] >> 4];
        out[2 * k + 1] = digits[mac[k] & 15];
    }
}

#endif

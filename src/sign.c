/* sign.c: HMAC-SHA512 with mbedTLS. The hot path is calypso_signer_sign, which
 * starts from hash states that already absorbed the padded key (RFC 2104's
 * inner and outer pads), computed once per client. mbedtls_md_hmac_reset would
 * hash the 128-byte inner pad again on every request, and mbedtls_md_hmac_finish
 * the outer one: two SHA-512 blocks of five, for a typical envelope. */
/* madvise and MAP_ANONYMOUS are not POSIX: ask glibc for them here only. */
#define _DEFAULT_SOURCE 1
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha512.h>
#include <mbedtls/version.h>
#include "sign.h"

#define SHA512_BLOCK 128

/* "000102...feff": two hex digits per byte value, so each byte is one lookup. */
#define HEX_ROW(h) h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" \
                   h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"
static const char hexpairs[] = HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3")
                               HEX_ROW("4") HEX_ROW("5") HEX_ROW("6") HEX_ROW("7")
                               HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b")
                               HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++)
        memcpy(out + 2 * i, hexpairs + 2 * in[i], 2);
}

/* mbedTLS 3 dropped the _ret suffix that 2.x's int-returning SHA-512 functions carry. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define sha512_starts mbedtls_sha512_starts
#define sha512_update mbedtls_sha512_update
#define sha512_finish mbedtls_sha512_finish
#else
#define sha512_starts mbedtls_sha512_starts_ret
#define sha512_update mbedtls_sha512_update_ret
#define sha512_finish mbedtls_sha512_finish_ret
#endif

/* What a keyed signer holds, in a page of its own (see sign.h). */
struct calypso_keyed {
    mbedtls_sha512_context inner, outer, work;
    unsigned char digest[CALYPSO_SIGN_BYTES];   /* the inner digest, key-derived */
    size_t size;                                /* of the mapping */
};

/* A zeroed private mapping for the keyed states: excluded from core dumps
 * (MADV_DONTDUMP) and, best effort, locked out of swap (mlock fails without
 * CAP_IPC_LOCK past RLIMIT_MEMLOCK; the states still work, only swappable). */
static struct calypso_keyed *keyed_map(void)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = page > 0 && (size_t)page >= sizeof(struct calypso_keyed) ? (size_t)page
                                                                           : sizeof(struct calypso_keyed);
    struct calypso_keyed *k = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (k == MAP_FAILED)
        return NULL;
#ifdef MADV_DONTDUMP
    (void)madvise(k, size, MADV_DONTDUMP);
#endif
    (void)mlock(k, size);
    k->size = size;
    return k;
}

/* ctx <- SHA-512 state after absorbing one block: the key XOR pad. */
static int absorb_pad(mbedtls_sha512_context *ctx, const unsigned char *key, size_t keylen,
                      unsigned char pad, unsigned char *block)
{
    size_t i;
    memset(block, pad, SHA512_BLOCK);
    for (i = 0; i < keylen; i++)
        block[i] ^= key[i];
    mbedtls_sha512_init(ctx);
    return sha512_starts(ctx, 0) == 0 && sha512_update(ctx, block, SHA512_BLOCK) == 0 ? 0 : -1;
}

int calypso_signer_init(calypso_signer *s, const unsigned char *key, size_t keylen)
{
    unsigned char hashed[CALYPSO_SIGN_BYTES], block[SHA512_BLOCK];
    struct calypso_keyed *k;
    int rc = -1;
    if ((s->keyed = k = keyed_map()) == NULL)
        return -1;
    mbedtls_sha512_init(&k->work);
    if (keylen > SHA512_BLOCK) {   /* RFC 2104: a key longer than a block is hashed first */
        mbedtls_sha512_context *t = &k->work;
        if (sha512_starts(t, 0) != 0 || sha512_update(t, key, keylen) != 0 || sha512_finish(t, hashed) != 0)
            goto done;
        key = hashed;
        keylen = sizeof hashed;
    }
    if (absorb_pad(&k->inner, key, keylen, 0x36, block) == 0 &&
        absorb_pad(&k->outer, key, keylen, 0x5c, block) == 0)
        rc = 0;
done:
    mbedtls_platform_zeroize(hashed, sizeof hashed);
    mbedtls_platform_zeroize(block, sizeof block);
    return rc;
}

int calypso_signer_sign(calypso_signer *s, const unsigned char *msg, size_t len, char *hex)
{
    struct calypso_keyed *k = s->keyed;
    int ok;
    if (k == NULL)
        return -1;
    mbedtls_sha512_clone(&k->work, &k->inner);
    ok = sha512_update(&k->work, msg, len) == 0 && sha512_finish(&k->work, k->digest) == 0;
    mbedtls_sha512_clone(&k->work, &k->outer);
    ok = ok && sha512_update(&k->work, k->digest, sizeof k->digest) == 0 &&
         sha512_finish(&k->work, k->digest) == 0;
    if (ok)
        to_hex(k->digest, sizeof k->digest, hex);
    return ok ? 0 : -1;
}

void calypso_signer_free(calypso_signer *s)
{
    struct calypso_keyed *k = s->keyed;
    size_t size;
    if (k == NULL)
        return;
    s->keyed = NULL;
    size = k->size;
    mbedtls_platform_zeroize(k, size);   /* munmap does not wipe: the pages may be reused */
    (void)munlock(k, size);
    (void)munmap(k, size);
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

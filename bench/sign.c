/* sign.c: the signing micro-benchmark (issue 6: "signing <= 1.1x the mbedTLS
 * floor"). Each way of producing the Sign header for the same envelope (146 bytes)
 * runs for ROUNDS interleaved rounds of N signatures; a way's ratio is paired,
 * round by round, with the floor's, then the median and range are printed.
 *
 *   floor          SHA-512 states that absorbed key^ipad and key^opad once, by
 *                  hand with mbedtls_md_clone: 3 SHA-512 blocks per signature
 *                  (the "~1.0 us with the pad state computed once")
 *   sha512         SHA-512 of the envelope alone, no key (2 blocks): below any HMAC
 *   md_hmac_reset  mbedTLS's keyed HMAC, reset per call (5 blocks; bench/floor.c's
 *                  default signing)
 *   md_hmac        mbedTLS one-shot HMAC, key and pads per call (5 blocks + setup)
 *   calypso        the module's signer, src/sign.c, compiled in
 * Every row writes the 128-char lowercase hex the Sign header carries.
 *
 *   sign [ROUNDS [N]]        the table (defaults 9 rounds x 200,000)
 *   sign --only WAY N        N signatures the one way, for callgrind */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mbedtls/md.h>
#include "../src/sign.h"
#include "hmac_state.h"

#define SECRET "b823a6b9ea72408583cef9ec8d67fa52"
#define ENVELOPE "{\"account\":\"0xc195df92dd9db2a8f28e597981f113d6e7582f8b\",\"timestamp\":1764052517000," \
                 "\"payload\":{\"customerId\":\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"}}"

static const mbedtls_md_info_t *sha512;
static mbedtls_md_context_t keyed;
static hmac_state states;
static calypso_signer signer;
static unsigned char envelope[sizeof ENVELOPE];
static size_t envelope_len = sizeof ENVELOPE - 1;
static volatile unsigned char sink;   /* keeps the output observable */

static void way_floor(char *out)
{
    unsigned char mac[64];
    hmac_state_sign(&states, envelope, envelope_len, mac);
    mac_hex(mac, out);
}

static void way_sha512(char *out)
{
    unsigned char mac[64];
    mbedtls_md(sha512, envelope, envelope_len, mac);
    mac_hex(mac, out);
}

static void way_md_hmac_reset(char *out)
{
    unsigned char mac[64];
    mbedtls_md_hmac_reset(&keyed);
    mbedtls_md_hmac_update(&keyed, envelope, envelope_len);
    mbedtls_md_hmac_finish(&keyed, mac);
    mac_hex(mac, out);
}

static void way_md_hmac(char *out)
{
    unsigned char mac[64];
    mbedtls_md_hmac(sha512, (const unsigned char *)SECRET, sizeof SECRET - 1, envelope, envelope_len, mac);
    mac_hex(mac, out);
}

static void way_calypso(char *out)
{
    calypso_signer_sign(&signer, envelope, envelope_len, out);
}

static const struct way {
    const char *name, *label;
    void (*sign)(char *out);
} ways[] = {
    { "floor", "floor: precomputed SHA-512 states (mbedTLS)", way_floor },
    { "sha512", "SHA-512 of the envelope, no key", way_sha512 },
    { "md_hmac_reset", "mbedtls_md_hmac_reset per call", way_md_hmac_reset },
    { "md_hmac", "mbedtls_md_hmac one-shot", way_md_hmac },
    { "calypso", "calypso.purse signer (src/sign.c)", way_calypso },
};
#define NWAYS (sizeof ways / sizeof ways[0])

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const struct way *w, long n)
{
    char out[128];
    long i;
    for (i = 0; i < n; i++) {
        envelope[70] = (unsigned char)('0' + (i % 10));   /* the timestamp changes per call */
        w->sign(out);
        sink ^= (unsigned char)out[i & 127];
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n, double *lo, double *hi)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    *lo = v[0];
    *hi = v[n - 1];
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void setup(void)
{
    size_t keylen = sizeof SECRET - 1;
    memcpy(envelope, ENVELOPE, sizeof ENVELOPE);
    sha512 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA512);
    mbedtls_md_init(&keyed);
    if (mbedtls_md_setup(&keyed, sha512, 1) != 0 ||
        mbedtls_md_hmac_starts(&keyed, (const unsigned char *)SECRET, keylen) != 0 ||
        hmac_state_init(&states, (const unsigned char *)SECRET, keylen) != 0 ||
        calypso_signer_init(&signer, (const unsigned char *)SECRET, keylen) != 0) {
        fprintf(stderr, "sign: mbedTLS setup failed\n");
        exit(2);
    }
}

/* Every HMAC way must print the same Sign, or its figure means nothing. */
static void check_agreement(void)
{
    char want[128], got[128];
    size_t i;
    way_floor(want);
    for (i = 0; i < NWAYS; i++) {
        if (ways[i].sign == way_sha512)
            continue;
        ways[i].sign(got);
        if (memcmp(want, got, sizeof want) != 0) {
            fprintf(stderr, "sign: %s disagrees with the floor\n", ways[i].name);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    enum { MAX_ROUNDS = 99 };
    static double ns[NWAYS][MAX_ROUNDS], ratio[MAX_ROUNDS];
    int rounds = 9, r;
    long n = 200000;
    size_t i;

    setup();
    check_agreement();
    if (argc == 4 && strcmp(argv[1], "--only") == 0) {
        for (i = 0; i < NWAYS; i++)
            if (strcmp(argv[2], ways[i].name) == 0) {
                run(&ways[i], atol(argv[3]));
                calypso_signer_free(&signer);
                return 0;
            }
        fprintf(stderr, "sign: no way named %s\n", argv[2]);
        return 2;
    }
    if (argc > 1)
        rounds = atoi(argv[1]);
    if (argc > 2)
        n = atol(argv[2]);
    if (rounds < 1 || rounds > MAX_ROUNDS || n < 1 || n > 100000000) {
        fprintf(stderr, "usage: sign [ROUNDS (1-%d) [N]] | sign --only WAY N\n", MAX_ROUNDS);
        return 2;
    }
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < NWAYS; i++) {   /* every other round backwards: drift favours nobody */
            size_t k = r % 2 ? NWAYS - 1 - i : i;
            double t0 = now();
            run(&ways[k], n);
            ns[k][r] = (now() - t0) * 1e9 / (double)n;
        }
    }
    printf("signing one %zu-byte envelope, hex out: %d rounds x %ld signatures\n", envelope_len, rounds, n);
    printf("%-46s %8s %22s\n", "way", "ns/sign", "x floor, paired (range)");
    for (i = 0; i < NWAYS; i++) {
        double lo, hi, m, rlo, rhi, rm;
        for (r = 0; r < rounds; r++)
            ratio[r] = ns[i][r] / ns[0][r];
        rm = median(ratio, rounds, &rlo, &rhi);
        m = median(ns[i], rounds, &lo, &hi);
        printf("%-46s %8.0f %8.3f (%.2f-%.2f)\n", ways[i].label, m, rm, rlo, rhi);
    }
    calypso_signer_free(&signer);
    mbedtls_md_free(&keyed);
    hmac_state_free(&states);
    return 0;
}

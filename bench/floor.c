/* floor.c: the speed floor a Lua client is measured against. A plain C loop
 * with one reused libcurl handle (keep-alive), a per-call HMAC-SHA512 over a
 * freshly built envelope with mbedTLS's keyed-HMAC API (key set once, then
 * mbedtls_md_hmac_reset per call), and byte for byte the headers the module
 * sends (User-Agent included). No JSON decoding: the floor only checks the
 * status and keeps the body bytes.
 *
 * Three options give the floor a C programmer reaches after profiling, with
 * the fixes the module makes:
 *   --curlu       hands libcurl the URL parsed once (CURLOPT_CURLU) instead of
 *                 the plain CURLOPT_URL that libcurl parses and prints back on
 *                 every transfer;
 *   --hmac-state  starts each HMAC from SHA-512 states that absorbed the padded
 *                 key once (clone inner, hash, clone outer, hash): 3 SHA-512
 *                 blocks per call instead of the 5 that mbedtls_md_hmac_reset
 *                 and mbedtls_md_hmac_finish process (they re-hash both pads);
 *   --lean-headers  the same request bytes with less libcurl work per transfer:
 *                 the User-Agent as a header-list node (CURLOPT_USERAGENT is
 *                 formatted afresh every time), no "Expect:" node (this body is
 *                 under the 1024 bytes where libcurl would add the header), and
 *                 no proxy with an empty no-proxy list (no environment reads).
 *
 *   floor [--curlu] [--hmac-state] [--lean-headers] URL KEY SECRET COUNT [CA_FILE]
 * prints: calls=N seconds=S cpu=C  (wall time, process CPU time)
 * COUNT "-" runs in lockstep: one burst of N calls per line "N" read from
 * stdin, one result line per burst, until end of input. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <mbedtls/md.h>
#include "hmac_state.h"
#include "../src/version.h"

#define USER_AGENT "calypso-purse/" CALYPSO_VERSION

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    size_t *total = ud;
    (void)p;
    *total += size * n;
    return size * n;
}

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct floor_loop {
    CURL *easy;
    char *sign_hex;             /* the 128 hex digits inside the Sign header node */
    int use_states;
    mbedtls_md_context_t md;
    hmac_state states;
} floor_loop;

/* count sequential calls; prints their wall and CPU time. Returns 0 or 1. */
static int burst(floor_loop *f, long count)
{
    char body[512];
    unsigned char mac[64];
    long i, status = 0;
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (i = 0; i < count; i++) {
        struct timespec ts;
        int n;
        CURLcode rc;
        clock_gettime(CLOCK_REALTIME, &ts);
        n = snprintf(body, sizeof body,
                     "{\"account\":\"0xc195df92dd9db2a8f28e597981f113d6e7582f8b\",\"timestamp\":%lld,"
                     "\"payload\":{\"customerId\":\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"}}",
                     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (!f->use_states) {
            mbedtls_md_hmac_reset(&f->md);
            mbedtls_md_hmac_update(&f->md, (const unsigned char *)body, (size_t)n);
            mbedtls_md_hmac_finish(&f->md, mac);
        } else {
            hmac_state_sign(&f->states, (const unsigned char *)body, (size_t)n, mac);
        }
        mac_hex(mac, f->sign_hex);
        curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE, (long)n);
        rc = curl_easy_perform(f->easy);
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || status != 200) {
            fprintf(stderr, "floor: call %ld failed: %s (HTTP %ld)\n", i, curl_easy_strerror(rc), status);
            return 1;
        }
    }
    printf("calls=%ld seconds=%.6f cpu=%.6f\n", count, now(CLOCK_MONOTONIC) - t0,
           now(CLOCK_PROCESS_CPUTIME_ID) - c0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url, *key, *secret, *ca;
    char header[200];
    size_t received = 0;
    struct curl_slist *hdrs = NULL, *sign_node;
    floor_loop f;
    CURL *e;
    CURLU *parsed = NULL;
    int curlu = 0, lean = 0, failed;

    memset(&f, 0, sizeof f);
    for (; argc > 1 && strncmp(argv[1], "--", 2) == 0; argv++, argc--) {
        if (strcmp(argv[1], "--curlu") == 0)
            curlu = 1;
        else if (strcmp(argv[1], "--hmac-state") == 0)
            f.use_states = 1;
        else if (strcmp(argv[1], "--lean-headers") == 0)
            lean = 1;
        else
            argc = 0;   /* unknown option: usage */
    }
    if (argc < 5) {
        fprintf(stderr, "usage: floor [--curlu] [--hmac-state] [--lean-headers] URL KEY SECRET COUNT [CA_FILE]\n");
        return 2;
    }
    url = argv[1];
    key = argv[2];
    secret = argv[3];
    ca = argc > 5 ? argv[5] : NULL;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    mbedtls_md_init(&f.md);
    if (!f.use_states) {
        mbedtls_md_setup(&f.md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA512), 1);
        mbedtls_md_hmac_starts(&f.md, (const unsigned char *)secret, strlen(secret));
    } else if (hmac_state_init(&f.states, (const unsigned char *)secret, strlen(secret)) != 0) {
        fprintf(stderr, "floor: --hmac-state cannot key the HMAC (a secret over 128 bytes?)\n");
        return 2;
    }

    if (lean)
        hdrs = curl_slist_append(hdrs, "User-Agent: " USER_AGENT);
    snprintf(header, sizeof header, "Key: %s", key);
    hdrs = curl_slist_append(hdrs, header);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (!lean)
        hdrs = curl_slist_append(hdrs, "Expect:");
    memset(header, '0', sizeof header);
    memcpy(header, "Sign: ", 6);
    header[6 + 128] = '\0';
    hdrs = curl_slist_append(hdrs, header);
    for (sign_node = hdrs; sign_node->next; sign_node = sign_node->next)
        ;

    e = curl_easy_init();
    if (curlu) {
        parsed = curl_url();
        if (parsed == NULL || curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK) {
            fprintf(stderr, "floor: cannot parse %s\n", url);
            return 2;
        }
        curl_easy_setopt(e, CURLOPT_CURLU, parsed);
    } else {
        curl_easy_setopt(e, CURLOPT_URL, url);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (lean) {
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    } else {
        curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &received);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    if (ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);

    f.easy = e;
    f.sign_hex = sign_node->data + 6;
    if (strcmp(argv[4], "-") == 0) {
        /* lockstep: one burst per line read, one result line per burst */
        char line[32];
        failed = 0;
        while (!failed && fgets(line, sizeof line, stdin) != NULL) {
            failed = burst(&f, atol(line));
            fflush(stdout);
        }
    } else {
        failed = burst(&f, atol(argv[4]));
    }
    curl_easy_cleanup(e);
    curl_url_cleanup(parsed);
    curl_slist_free_all(hdrs);
    mbedtls_md_free(&f.md);
    if (f.use_states)
        hmac_state_free(&f.states);
    curl_global_cleanup();
    return failed;
}

/* http.c: libcurl transport (see http.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "http.h"

/* libcurl 7.84 made curl_easy_header() stable: headers are then read after
 * the transfer, and only when a failure needs them, instead of a callback
 * running for every header line of every response. Older libcurl: callback. */
#if LIBCURL_VERSION_NUM >= 0x075400
#define CALYPSO_HEADER_API 1
#else
#define CALYPSO_HEADER_API 0
#endif

/* Keeps the OpenSSL session of the transfer (read while it holds its
 * connection: libcurl gives it only then); calypso_http_collect pairs it with
 * the connection's socket, known only once the transfer is done. */
static void note_tls(calypso_http *h)
{
    struct curl_tlssessioninfo *ti = NULL;
    h->tls_noted = 1;
    if (h->tracker->tls_pending != NULL &&
        curl_easy_getinfo(h->easy, CURLINFO_TLS_SSL_PTR, &ti) == CURLE_OK && ti != NULL &&
        ti->backend == CURLSSLBACKEND_OPENSSL)
        h->tls = ti->internals;
}

/* Appends the chunk to the body buffer; returning less than asked makes
 * libcurl abort with CURLE_WRITE_ERROR, which is how the size cap bites. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    calypso_http *h = ud;
    size_t len = size * n;
    if (!h->tls_noted)
        note_tls(h);
    return calypso_buf_append(&h->body, p, len) == 0 ? len : 0;
}

/* Copies a header value into dst, up to the end of its line. */
static void header_value(const char *line, size_t len, size_t namelen, char *dst, size_t dstlen)
{
    size_t i = namelen, n = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    while (i < len && line[i] != '\r' && line[i] != '\n' && n + 1 < dstlen)
        dst[n++] = line[i++];
    dst[n] = '\0';
}

#if !CALYPSO_HEADER_API
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    calypso_http *h = ud;
    size_t len = size * n;
    char first = len > 0 ? (char)(p[0] | 0x20) : 0;
    if (first != 'h' && first != 'd' && first != 'r')   /* most lines: none of ours */
        return len;
    if (len >= 5 && strncasecmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue, say): forget older headers */
        h->date[0] = h->retry_after[0] = '\0';
    } else if (len > 5 && strncasecmp(p, "date:", 5) == 0) {
        header_value(p, len, 5, h->date, sizeof h->date);
    } else if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        header_value(p, len, 12, h->retry_after, sizeof h->retry_after);
    }
    return len;
}
#else
/* The final response's header `name` (not a 1xx one), or "". */
static void read_header(calypso_http *h, const char *name, char *dst, size_t dstlen)
{
    struct curl_header *hd;
    dst[0] = '\0';
    if (curl_easy_header(h->easy, name, 0, CURLH_HEADER, -1, &hd) == CURLHE_OK && hd->value != NULL)
        header_value(hd->value, strlen(hd->value), 0, dst, dstlen);
}
#endif

/* A write's body, given out once and never again (CURLOPT_READFUNCTION). */
static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    calypso_http *h = ud;
    size_t want = size * n, left = h->up_len - h->up_off;
    if (want > left)
        want = left;
    memcpy(p, h->up + h->up_off, want);
    h->up_off += want;
    return want;
}

/* CURLOPT_SEEKFUNCTION: libcurl asks to rewind a body it sent (to resend it on
 * another connection). A write is never resent behind the caller's back. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    (void)ud;
    (void)offset;
    (void)origin;
    return CURL_SEEKFUNC_CANTSEEK;
}

#if LIBCURL_VERSION_NUM >= 0x075000
/* CURLOPT_PREREQFUNCTION (7.80): a request is about to go out. libcurl
 * rewinds only a body whose bytes it wrote; one it read but had not written
 * yet (a full socket buffer) would go out again from where on_read stopped.
 * A second attempt of a write is let through only while on_read gave nothing. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    calypso_http *h = ud;
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    h->attempts++;
    if (h->writing && h->up_off > 0)
        return CURL_PREREQFUNC_ABORT;
    return CURL_PREREQFUNC_OK;
}
#endif

/* Origins ("https://host:port") whose last answer in this process came over
 * HTTP/2, as 64-bit hashes in a small table read and written atomically: it
 * only steers connection choice (CURLOPT_PIPEWAIT), so a collision or a lost
 * update costs time, never correctness. */
#define H2_ORIGINS 16
static unsigned long long h2_origins[H2_ORIGINS];

/* FNV-1a of the URL's scheme and authority; 0 when it has none. */
static unsigned long long origin_hash(const char *url, size_t n)
{
    const char *p = strstr(url, "://");
    unsigned long long x = 14695981039346656037ULL;
    size_t i, end;
    if (p == NULL)
        return 0;
    for (end = (size_t)(p - url) + 3; end < n && url[end] != '/' && url[end] != '?'; end++)
        ;
    for (i = 0; i < end; i++)
        x = (x ^ (unsigned char)url[i]) * 1099511628211ULL;
    return x != 0 ? x : 1;
}

static int h2_known(unsigned long long o)
{
    return o != 0 && __atomic_load_n(&h2_origins[o % H2_ORIGINS], __ATOMIC_RELAXED) == o;
}

static void h2_note(unsigned long long o, int h2)
{
    unsigned long long *slot = &h2_origins[o % H2_ORIGINS];
    if (o == 0)
        return;
    if (h2)
        __atomic_store_n(slot, o, __ATOMIC_RELAXED);
    else if (__atomic_load_n(slot, __ATOMIC_RELAXED) == o)
        __atomic_store_n(slot, 0ULL, __ATOMIC_RELAXED);
}

/* Appends one header line to the list; returns 0 or -1. */
static int add_header(calypso_http *h, const char *line)
{
    struct curl_slist *l = curl_slist_append(h->headers, line);
    if (l == NULL)
        return -1;
    h->headers = l;
    return 0;
}

const char *calypso_http_init(calypso_http *h, const calypso_http_opts *o)
{
    char line[512];
    struct curl_slist *last;
    CURL *e;
    memset(h, 0, sizeof *h);
    h->body.limit = o->max_response;
    h->write_reuse_idle = o->write_reuse_idle;
    h->up_copy.limit = (size_t)1 << 30;
    h->easy = e = curl_easy_init();
    if (e == NULL)
        return "curl_easy_init failed";
#if CALYPSO_URL_HANDLE
    if ((h->uh = curl_url()) == NULL)
        return "out of memory";
#endif
    /* One list for the life of the client, built so that a request of up to
     * CALYPSO_EXPECT_FROM bytes can skip its first node (see calypso_http_setup):
     *   Expect: -> User-Agent -> Key -> Content-Type -> Accept -> Sign
     * The User-Agent is a list node, not CURLOPT_USERAGENT, which libcurl
     * formats into a fresh string on every transfer; first in the list, it
     * still goes out right after Host, where libcurl puts its own. */
    if (add_header(h, "Expect:"))   /* never wait for 100-continue */
        return "out of memory";
    snprintf(line, sizeof line, "User-Agent: %s", o->user_agent);
    if (add_header(h, line))
        return "out of memory";
    snprintf(line, sizeof line, "Key: %s", o->key);
    if (add_header(h, line) || add_header(h, "Content-Type: application/json") ||
        add_header(h, "Accept: application/json") ||
        add_header(h, "Sign: 00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"))
        return "out of memory";
    for (last = h->headers; last->next != NULL; last = last->next)
        ;
    /* The Sign node is ours to rewrite in place before each call. */
    h->sign_value = last->data + 6;
    h->headers_set = h->headers;

    if (curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, h) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_READDATA, h) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SEEKDATA, h) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075000
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PREREQDATA, h) != CURLE_OK ||
#endif
#if !CALYPSO_HEADER_API
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, h) != CURLE_OK ||
#endif
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK ||
        /* signals and longjmp-based DNS timeouts are unsafe in embedded hosts (nginx, games) */
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        /* No Accept-Encoding: API bodies are a few hundred bytes, and building
         * and honouring that header costs more CPU per call than it saves. */
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L) != CURLE_OK ||
        calypso_conns_attach(e, h->tracker = &h->conns) != 0)
        return "cannot configure libcurl";
    if (o->ca_file != NULL && curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file) != CURLE_OK)
        return "cannot set ca_file";
    /* An explicit proxy, or none at all: a payment client should not silently
     * pick up http_proxy from the environment. */
    if (curl_easy_setopt(e, CURLOPT_PROXY, o->proxy != NULL ? o->proxy : "") != CURLE_OK)
        return "cannot set proxy";
    /* Nor a no_proxy list: an empty one of ours also spares libcurl reading
     * no_proxy and NO_PROXY from the environment on every transfer (two scans
     * of environ, ~25 cache misses a call). */
    if (curl_easy_setopt(e, CURLOPT_NOPROXY, "") != CURLE_OK)
        return "cannot set proxy";
    return NULL;
}

/* Points the handle at url. Given as text, libcurl parses the URL and prints
 * it back on every transfer (~14,000 instructions a call); a URL handle
 * parsed here once per distinct URL (CURLOPT_CURLU) spares it that. */
static void set_url(calypso_http *h, const char *url)
{
    size_t n = strlen(url);
    if (n == h->url_len && memcmp(h->url, url, n) == 0)
        return;
    h->url_len = 0;
#if CALYPSO_URL_HANDLE
    if (n < sizeof h->url && curl_url_set(h->uh, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_easy_setopt(h->easy, CURLOPT_CURLU, h->uh) == CURLE_OK) {
        memcpy(h->url, url, n);
        h->url_len = n;
        return;
    }
    /* a URL the parser refuses: give libcurl the text, and the transfer
     * fails with libcurl's own reason */
    curl_easy_setopt(h->easy, CURLOPT_CURLU, NULL);
#endif
    curl_easy_setopt(h->easy, CURLOPT_URL, url);
}

void calypso_http_setup(calypso_http *h, const char *url, const char *body, size_t len,
                        const char sign_hex[CALYPSO_SIGN_HEX], int writes, int copy)
{
    /* libcurl adds "Expect: 100-continue" only to a body over 1024 bytes
     * (over 1 MiB in later versions), and "Expect:" is there to stop it: a
     * smaller request goes out the same without that node, which libcurl
     * would otherwise compare against a dozen header names on every call. */
    struct curl_slist *want = len > CALYPSO_EXPECT_FROM ? h->headers : h->headers->next;
    int own = h->tracker == &h->conns;   /* driven alone: nothing else runs on its cache */
    long fresh = 0;
    if (want != h->headers_set && curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, want) == CURLE_OK)
        h->headers_set = want;
    memcpy(h->sign_value, sign_hex, CALYPSO_SIGN_HEX);
    calypso_buf_clear(&h->body);
    h->status = 0;
    h->sent_bytes = 0;
    h->tls_noted = 0;
    h->tls = NULL;   /* a session noted by a transfer that was never collected is gone */
    h->attempts = 0;
    h->errbuf[0] = h->date[0] = h->retry_after[0] = '\0';
    set_url(h, url);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    h->writing = writes;
    h->up_off = 0;
    if (writes) {
        /* no POSTFIELDS: libcurl reads the body through on_read, once */
        h->up = body;
        h->up_len = len;
        calypso_buf_clear(&h->up_copy);
        if (copy) {
            if (calypso_buf_append(&h->up_copy, body, len) == 0) {
                h->up = h->up_copy.data;
            } else {   /* out of memory: an empty body, which the server refuses unapplied */
                h->up = "";
                h->up_len = 0;
                curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
            }
        }
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, (char *)NULL);
        if (h->write_reuse_idle <= 0) {
            fresh = 1;
        } else if (calypso_conns_stale(h->tracker, h->write_reuse_idle, own) > 0 && !own) {
            /* others may be running on the cache: not cut now (one of them may be
             * on it), but at the next idle check; this write takes a new one */
            fresh = 1;
            h->tracker->expire_idle = h->write_reuse_idle;
        }
    } else {
        h->up = NULL;
        h->up_len = 0;
        curl_easy_setopt(h->easy, copy ? CURLOPT_COPYPOSTFIELDS : CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h->easy, CURLOPT_FRESH_CONNECT, fresh);
    if (!own)
        curl_easy_setopt(h->easy, CURLOPT_PIPEWAIT, h2_known(origin_hash(url, strlen(url))) ? 1L : 0L);
}

void calypso_http_collect(calypso_http *h, CURLcode rc)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    long version = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
    if (h->status > 0 && curl_easy_getinfo(h->easy, CURLINFO_HTTP_VERSION, &version) != CURLE_OK)
        version = 0;
    if (curl_easy_getinfo(h->easy, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD) {
        /* for the write freshness bound, and the idle check */
        calypso_conns_used(h->tracker, fd, version == CURL_HTTP_VERSION_2_0);
        if (h->tls != NULL)   /* the session and its socket, for the idle check (conns.h) */
            calypso_conns_note_tls(h->tracker, fd, h->tls);
    }
    h->tls = NULL;
    if (curl_easy_getinfo(h->easy, CURLINFO_REQUEST_SIZE, &h->sent_bytes) != CURLE_OK)
        h->sent_bytes = 1;   /* unknown: assume it may have reached the server */
    if (h->writing && h->up_off == 0)
        h->sent_bytes = 0;   /* no byte of the body left: the server cannot have applied it */
    else if (h->writing && h->sent_bytes <= 0)
        h->sent_bytes = 1;
    if (h->writing && h->up_off > 0 && (rc == CURLE_SEND_FAIL_REWIND || rc == CURLE_ABORTED_BY_CALLBACK))
        /* libcurl wanted to resend the write on another connection (seek or prereq refused) */
        snprintf(h->errbuf, sizeof h->errbuf, "%s",
                 "the kept-alive connection ended without an answer after the write was sent; "
                 "not resent (it may have been applied)");
    /* which protocol this origin answers in, for CURLOPT_PIPEWAIT (calypso_http_setup) */
    if (h->status > 0 && h->url_len > 0)
        h2_note(origin_hash(h->url, h->url_len), version == CURL_HTTP_VERSION_2_0);
    /* Date (clock skew) and Retry-After only matter to a failure; a 2xx answer
     * that fails to decode reads them later */
    if (rc != CURLE_OK || h->status < 200 || h->status >= 300)
        calypso_http_read_headers(h);
}

void calypso_http_read_headers(calypso_http *h)
{
#if CALYPSO_HEADER_API
    read_header(h, "Date", h->date, sizeof h->date);
    read_header(h, "Retry-After", h->retry_after, sizeof h->retry_after);
#else
    (void)h;   /* the header callback has filled them */
#endif
}

int calypso_http_track(calypso_http *h, calypso_conns *cs)
{
    h->tracker = cs;
    return calypso_conns_attach(h->easy, cs);
}

void calypso_http_multi_cleanup(CURLM *multi, calypso_conns *cs)
{
    calypso_conns_check(cs, 0);   /* after fork(): cut before libcurl says goodbye */
    curl_multi_cleanup(multi);
    calypso_conns_free(cs);
}

CURLcode calypso_http_post(calypso_http *h, const char *url, const char *body, size_t len,
                           const char sign_hex[CALYPSO_SIGN_HEX], int writes)
{
    CURLcode rc;
    /* Nothing runs on this handle's cache now: every connection in it is idle.
     * libcurl (7.88) reuses one that has bytes waiting, and reads them as the
     * answer; cut such ones so that its own check drops them. */
    calypso_conns_check(&h->conns, 1);
    calypso_http_setup(h, url, body, len, sign_hex, writes, 0);
    rc = curl_easy_perform(h->easy);
    calypso_http_collect(h, rc);
    return rc;
}

const char *calypso_http_kind(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "resolve";
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return "tls";
    case CURLE_WRITE_ERROR:
        return "too_large";   /* on_body refused: the body passed max_response_size */
    default:
        return "network";     /* reset, empty reply, partial body, ... */
    }
}

void calypso_http_free(calypso_http *h)
{
    if (h->easy != NULL) {
        calypso_conns_check(&h->conns, 0);   /* after fork(): cut before cleanup writes */
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    calypso_conns_free(&h->conns);   /* after the handle that closes its sockets */
#if CALYPSO_URL_HANDLE
    if (h->uh != NULL) {   /* after the easy handle that points at it */
        curl_url_cleanup(h->uh);
        h->uh = NULL;
    }
#endif
    h->url_len = 0;
    if (h->headers != NULL) {
        curl_slist_free_all(h->headers);
        h->headers = NULL;
        h->sign_value = NULL;
    }
    calypso_buf_free(&h->body);
    calypso_buf_free(&h->up_copy);
    h->up = NULL;
}

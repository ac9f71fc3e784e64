/* http.h: the libcurl transport. One easy handle per client, reused across
 * calls so connections (and TLS sessions) stay alive. Callbacks only fill C
 * buffers; Lua values are built after the transfer returns. */
#ifndef CALYPSO_HTTP_H
#define CALYPSO_HTTP_H

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"
#include "conns.h"
#include "sign.h"

/* CURLOPT_CURLU (a pre-parsed URL handle) exists since libcurl 7.63. */
#if LIBCURL_VERSION_NUM >= 0x073f00
#define CALYPSO_URL_HANDLE 1
#else
#define CALYPSO_URL_HANDLE 0
#endif

typedef struct calypso_http_opts {
    const char *key;            /* public API key, sent as the Key header */
    const char *user_agent;     /* full User-Agent value */
    const char *ca_file;        /* NULL: the system CA store */
    const char *proxy;          /* NULL: none (libcurl still honours no env proxy) */
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_response;        /* cap on the response body */
    int insecure;               /* 1: skip TLS verification (explicit opt-in only) */
    double write_reuse_idle;    /* seconds: a write rides a kept-alive connection only if it
                                   was used this recently; 0: a fresh connection per write */
} calypso_http_opts;

/* Request bodies longer than this carry the "Expect:" header node. */
#define CALYPSO_EXPECT_FROM 1024

typedef struct calypso_http {
    CURL *easy;
    struct curl_slist *headers;     /* owned; its first node is "Expect:" */
    struct curl_slist *headers_set; /* what libcurl holds: headers or headers->next */
    char *sign_value;           /* the 128 hex bytes inside the Sign header node */
    calypso_buf body;
    long status;
    long sent_bytes;            /* request bytes that left (0: provably never sent) */
    char date[64];              /* response headers we act on */
    char retry_after[32];
    char errbuf[CURL_ERROR_SIZE];
    char url[1400];             /* the URL libcurl holds (url_len 0: none yet) */
    size_t url_len;
#if CALYPSO_URL_HANDLE
    CURLU *uh;                  /* that URL, parsed once (CURLOPT_CURLU) */
#endif
    calypso_conns conns;        /* the sockets in this handle's own connection cache */
    calypso_conns *tracker;     /* where its sockets are tracked: &conns, or its multi's */
    double write_reuse_idle;    /* from the options */
    int writing;                /* this transfer is a write: its body goes through on_read */
    const char *up;             /* a write's body, handed to libcurl by on_read only, once */
    size_t up_len, up_off;      /* its length, and how much of it on_read gave out */
    calypso_buf up_copy;        /* the body when the caller's copy goes away (multi) */
    int attempts;               /* requests libcurl began for this transfer (PREREQFUNCTION) */
    int tls_noted;              /* this transfer's TLS session looked for */
    const void *tls;            /* that session (an SSL*), until collect hands it on */
} calypso_http;

/* Sets up the handle; returns NULL or a static reason. Safe to free after failure. */
const char *calypso_http_init(calypso_http *h, const calypso_http_opts *o);
/* Tracks the handle's sockets in cs instead of its own list: for an easy
 * handle driven by a multi handle, whose cache holds the connections. cs must
 * outlive the multi handle. Returns 0 or -1. */
int calypso_http_track(calypso_http *h, calypso_conns *cs);
/* curl_multi_cleanup for a multi handle whose sockets cs tracks, without a
 * byte written to a connection inherited across fork(); then frees cs. */
void calypso_http_multi_cleanup(CURLM *multi, calypso_conns *cs);
/* POSTs body to url with the given signature; fills status, body and headers.
 * libcurl silently resends a request whose reused keep-alive connection turns
 * out dead (no answer byte came). A read goes as CURLOPT_POSTFIELDS, which
 * libcurl resends. writes: the body goes through a read callback that gives
 * it out once and cannot seek: libcurl cannot resend a body it has read, so
 * a write that dies on a reused connection is an error (sent), never a second
 * copy; a resend before any body byte was read is left to libcurl (the server
 * cannot have applied a request without its body). A write rides a kept-alive
 * connection only while it was used within write_reuse_idle seconds (else a
 * fresh one). Connections inherited across fork(), and kept-alive ones with
 * unasked-for bytes waiting, are cut off first (conns.h). */
CURLcode calypso_http_post(calypso_http *h, const char *url, const char *body, size_t len,
                           const char sign_hex[CALYPSO_SIGN_HEX], int writes);
/* The two halves of calypso_http_post, for transfers driven by a multi
 * handle. copy: the body is copied (the caller's goes away). A transfer driven
 * by a multi waits for a connection being set up (CURLOPT_PIPEWAIT) when its
 * server is known to speak HTTP/2 (the last answer from that scheme, host and
 * port in this process came over HTTP/2), so that calls share one connection. */
void calypso_http_setup(calypso_http *h, const char *url, const char *body, size_t len,
                        const char sign_hex[CALYPSO_SIGN_HEX], int writes, int copy);
/* Reads status, bytes sent and (for a failure) the headers we act on once a
 * transfer that ended with rc has finished. */
void calypso_http_collect(calypso_http *h, CURLcode rc);
/* Fills date and retry_after from the last transfer's final response. */
void calypso_http_read_headers(calypso_http *h);
/* Maps a libcurl result to a failure kind ("connect", "timeout", ...). */
const char *calypso_http_kind(CURLcode rc);
/* Frees everything; idempotent. */
void calypso_http_free(calypso_http *h);

#endif

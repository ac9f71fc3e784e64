/* conns.h: the sockets libcurl opens for one connection cache (a client's easy
 * handle, or a multi handle), tracked through CURLOPT_OPENSOCKETFUNCTION and
 * CURLOPT_CLOSESOCKETFUNCTION so that a connection nobody may use any more is
 * cut off without a byte written to it or read from it:
 *   - after fork(), every inherited socket (it still carries the parent's calls);
 *   - before reuse, an idle socket with bytes or EOF waiting (nobody asked for them).
 * Cutting dup2()s a dead descriptor over the socket: it reads EOF and swallows
 * writes, so libcurl's own liveness check drops the connection at its next
 * look, and whatever libcurl or OpenSSL write on the way (a TLS close_notify)
 * goes nowhere. The tracker must outlive every handle that can close its
 * sockets (the easy handle, or the multi handle whose cache holds them). */
#ifndef CALYPSO_CONNS_H
#define CALYPSO_CONNS_H

#include <sys/types.h>
#include <curl/curl.h>

typedef struct calypso_sock {
    curl_socket_t fd;
    dev_t dev;                  /* what fd was when opened: an fd number that no */
    ino_t ino;                  /* longer names that socket is never touched */
    int cut;                    /* 1: the dead descriptor is in its place */
    const void *tls;            /* its OpenSSL SSL*, once a transfer noted it (or NULL) */
    double used;                /* monotonic seconds: opened, or a transfer on it last ended */
    int h2;                     /* 1: it speaks HTTP/2 (answers matched by stream id: frames
                                   the server sends unasked, PING, SETTINGS, are normal) */
} calypso_sock;

/* OpenSSL's SSL_has_pending (or SSL_pending): whether decrypted bytes wait in
 * the library's own buffer, where poll() cannot see them. */
typedef int (*calypso_tls_pending)(const void *ssl);

/* All zero is an empty tracker. */
typedef struct calypso_conns {
    calypso_sock *socks;
    int n, cap;
    pid_t pid;                  /* the process the sockets belong to */
    int dead[2];                /* valid when have_dead: [0] reads EOF, [1] takes its writes */
    int have_dead;
    calypso_tls_pending tls_pending;   /* NULL: no OpenSSL in this process */
    double expire_idle;         /* > 0: the next idle check also cuts sockets unused this long */
} calypso_conns;

/* Makes easy's connections tracked in cs; returns 0 or -1. */
int calypso_conns_attach(CURL *easy, calypso_conns *cs);
/* Call before a transfer (and before cleaning up the handle that holds the
 * cache): in a process other than the one that opened them, cuts every
 * socket; otherwise, when idle (no transfer is using any of them), cuts each
 * one with bytes or EOF waiting. Returns how many it cut. */
int calypso_conns_check(calypso_conns *cs, int idle);
/* Notes the TLS session of socket fd (during a transfer on it), so that the
 * idle check also looks inside OpenSSL's buffer: an answer and bytes nobody
 * asked for can arrive in one TLS record, and then only OpenSSL holds them. */
void calypso_conns_note_tls(calypso_conns *cs, curl_socket_t fd, const void *ssl);
/* Notes that a transfer on socket fd just ended: it was used now; h2: over HTTP/2,
 * which the idle check then leaves alone (its bytes are frames, never an answer). */
void calypso_conns_used(calypso_conns *cs, curl_socket_t fd, int h2);
/* How many sockets (not cut) were last used more than max_idle seconds ago; with
 * cut set (nothing runs on the cache), cuts them too, so libcurl drops them
 * instead of reusing them. A write rides a kept-alive connection only while it
 * was used recently: the longer it idled, the likelier the server closes it
 * just as the write arrives (a write is never resent: the caller gets an error). */
int calypso_conns_stale(calypso_conns *cs, double max_idle, int cut);
/* Monotonic seconds. */
double calypso_conns_now(void);
/* Frees the tracker; call after the handles that can close its sockets are gone. */
void calypso_conns_free(calypso_conns *cs);

#endif

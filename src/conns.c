/* conns.c: tracking and cutting off the sockets of one connection cache (see conns.h). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "conns.h"

#define POLL_BATCH 32

/* Makes the dead pair: [0] reads EOF at once (its peer shut its sending side)
 * and never blocks; what is written to it waits in [1] until drained. */
static int make_dead(int dead[2])
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    if (shutdown(sv[1], SHUT_WR) != 0 ||
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) != 0 ||
        fcntl(sv[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(sv[1], F_SETFD, FD_CLOEXEC) != 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    dead[0] = sv[0];
    dead[1] = sv[1];
    return 0;
}

/* Throws away what cut-off connections wrote (a close_notify each, say). */
static void drain_dead(calypso_conns *cs)
{
    char buf[512];
    int i;
    for (i = 0; i < 64 && recv(cs->dead[1], buf, sizeof buf, 0) > 0; i++)
        ;
}

/* CURLOPT_OPENSOCKETFUNCTION: opens the socket as libcurl would, and tracks it.
 * Room in the list and the dead pair come first: a socket that could not be
 * cut off later is never handed to libcurl. */
static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    calypso_conns *cs = ud;
    calypso_sock *s;
    struct stat st;
    curl_socket_t fd;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (cs->n == cs->cap) {
        int ncap = cs->cap ? 2 * cs->cap : 4;
        calypso_sock *ns = realloc(cs->socks, (size_t)ncap * sizeof *ns);
        if (ns == NULL)
            return CURL_SOCKET_BAD;
        cs->socks = ns;
        cs->cap = ncap;
    }
    if (!cs->have_dead) {
        if (make_dead(cs->dead) != 0)
            return CURL_SOCKET_BAD;
        cs->have_dead = 1;
    }
    fd = socket(a->family, a->socktype, a->protocol);
    if (fd == CURL_SOCKET_BAD)
        return fd;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    if (cs->n == 0)
        cs->pid = getpid();
    s = &cs->socks[cs->n++];
    s->fd = fd;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->cut = 0;
    s->tls = NULL;
    s->used = calypso_conns_now();
    s->h2 = 0;
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: forgets the socket and closes it (or, once cut
 * off, our copy of the dead descriptor in its place). */
static int on_close(void *ud, curl_socket_t fd)
{
    calypso_conns *cs = ud;
    int i;
    for (i = 0; i < cs->n; i++) {
        if (cs->socks[i].fd == fd) {
            cs->socks[i] = cs->socks[--cs->n];
            break;
        }
    }
    return close(fd);
}

/* OpenSSL's pending check, from the libssl libcurl already loaded (nothing is
 * loaded here, and a libcurl built on another TLS library gives NULL). */
static calypso_tls_pending find_tls_pending(void)
{
    static const char *const libs[] = { "libssl.so.3", "libssl.so.1.1", NULL };
    const char *const *l;
    for (l = libs; *l != NULL; l++) {
        void *lib = dlopen(*l, RTLD_LAZY | RTLD_NOLOAD);
        void *fn;
        if (lib == NULL)
            continue;
        fn = dlsym(lib, "SSL_has_pending");
        if (fn == NULL)
            fn = dlsym(lib, "SSL_pending");
        dlclose(lib);   /* only our reference: libcurl keeps it loaded */
        if (fn != NULL) {
            calypso_tls_pending f;
            memcpy(&f, &fn, sizeof f);   /* object to function pointer, without the cast C99 forbids */
            return f;
        }
    }
    return NULL;
}

int calypso_conns_attach(CURL *easy, calypso_conns *cs)
{
    if (cs->tls_pending == NULL)
        cs->tls_pending = find_tls_pending();
    if (curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, cs) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, cs) != CURLE_OK)
        return -1;
    return 0;
}

/* Puts the dead descriptor in the place of socket i. The fd number stays
 * libcurl's (it closes it through on_close); the socket behind it is no longer
 * reachable from this process. Nothing is written to or read from it. */
static void cut(calypso_conns *cs, int i)
{
    calypso_sock *s = &cs->socks[i];
    struct stat st;
    if (s->cut)
        return;
    if (fstat(s->fd, &st) != 0 || st.st_dev != s->dev || st.st_ino != s->ino) {
        s->cut = 1;   /* not the socket we opened any more: none of our business */
        return;
    }
    while (dup2(cs->dead[0], s->fd) < 0 && errno == EINTR)
        ;
    s->cut = 1;
}

/* After fork(): every socket is the parent's too. They are cut with a dead
 * pair of this process's own, or, if none can be made, with the inherited
 * one (it carries nothing either side reads, so sharing it is harmless). */
static int forked(calypso_conns *cs, pid_t pid)
{
    int i, dead[2];
    if (make_dead(dead) == 0) {
        close(cs->dead[0]);
        close(cs->dead[1]);
        cs->dead[0] = dead[0];
        cs->dead[1] = dead[1];
    }
    for (i = 0; i < cs->n; i++)
        cut(cs, i);
    cs->pid = pid;
    return cs->n;
}

void calypso_conns_note_tls(calypso_conns *cs, curl_socket_t fd, const void *ssl)
{
    int i;
    for (i = 0; i < cs->n; i++)
        if (cs->socks[i].fd == fd) {
            cs->socks[i].tls = ssl;
            return;
        }
}

double calypso_conns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void calypso_conns_used(calypso_conns *cs, curl_socket_t fd, int h2)
{
    int i;
    for (i = 0; i < cs->n; i++)
        if (cs->socks[i].fd == fd) {
            cs->socks[i].used = calypso_conns_now();
            cs->socks[i].h2 = h2;
            return;
        }
}

int calypso_conns_stale(calypso_conns *cs, double max_idle, int cut_them)
{
    double before = calypso_conns_now() - max_idle;
    int i, n = 0;
    for (i = 0; i < cs->n; i++) {
        if (cs->socks[i].cut || cs->socks[i].used >= before)
            continue;
        n++;
        if (cut_them)
            cut(cs, i);
    }
    if (n > 0 && cut_them)
        drain_dead(cs);
    return n;
}

int calypso_conns_check(calypso_conns *cs, int idle)
{
    struct pollfd pf[POLL_BATCH];
    int at[POLL_BATCH];
    int i, k, cuts = 0;
    pid_t pid;
    if (cs->n == 0)
        return 0;
    pid = getpid();
    if (pid != cs->pid)
        return forked(cs, pid);
    if (!idle)
        return 0;
    if (cs->expire_idle > 0) {   /* asked for by a write that found stale ones (http.c) */
        cuts += calypso_conns_stale(cs, cs->expire_idle, 1);
        cs->expire_idle = 0;
    }
    /* A connection at rest has nothing to say: a readable one holds bytes
     * nobody asked for (a second answer, a TLS alert) or its end (EOF). */
    for (i = 0; i < cs->n;) {
        int m = 0;
        for (; i < cs->n && m < POLL_BATCH; i++) {
            if (cs->socks[i].cut || cs->socks[i].h2)
                continue;
            if (cs->socks[i].tls != NULL && cs->tls_pending != NULL &&
                cs->tls_pending(cs->socks[i].tls) > 0) {
                cut(cs, i);   /* decrypted already: in OpenSSL, not in the kernel */
                cuts++;
                continue;
            }
            pf[m].fd = cs->socks[i].fd;
            pf[m].events = POLLIN | POLLPRI;
            pf[m].revents = 0;
            at[m++] = i;
        }
        if (m == 0 || poll(pf, (nfds_t)m, 0) <= 0)
            continue;
        for (k = 0; k < m; k++) {
            if (pf[k].revents != 0) {
                cut(cs, at[k]);
                cuts++;
            }
        }
    }
    if (cuts > 0)
        drain_dead(cs);
    return cuts;
}

void calypso_conns_free(calypso_conns *cs)
{
    /* sockets still listed belong to handles that are gone or never closed
     * them: libcurl's to close, not ours */
    free(cs->socks);
    cs->socks = NULL;
    cs->n = cs->cap = 0;
    if (cs->have_dead) {
        close(cs->dead[0]);
        close(cs->dead[1]);
        cs->have_dead = 0;
    }
}

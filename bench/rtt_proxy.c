/* rtt_proxy.c: a latency-injecting TCP proxy for the bench's RTT section (bench/rtt.lua).
 *
 *   rtt_proxy DELAY_MS LIFETIME_S WATCH_PID TARGET_PORT [TARGET_PORT...]
 *
 * Listens on 127.0.0.1 (ephemeral ports) and prints one line, then serves:
 *   control=C check=K listen=P1,P2,...
 * Pi forwards to 127.0.0.1:TARGET_PORTi; K forwards (the same way) to an echo server inside
 * this process, for validating the delay; connecting to C answers
 *   accepts=A1,A2,... check=AK
 * (connections accepted so far on each listener) and closes.
 *
 * Every chunk read in either direction is written out DELAY_MS/2 later, in order, without
 * any cap on bandwidth (a chunk is whatever one read() returned, up to 64 KiB). Connecting
 * costs one round trip too: a client's connect() to the proxy returns at once (loopback), so
 * the first bytes a client sends are held as if they had been sent DELAY_MS after it
 * connected (what a real TCP handshake costs before a client may send). So a new
 * connection's first request/response costs 2 x DELAY_MS, each later exchange DELAY_MS.
 * Client-speaks-first protocols only (HTTP, TLS): that is what the model assumes.
 *
 * Timers: one binary heap of pending chunks (due time, then arrival order) and a timerfd
 * armed at the earliest due time (CLOCK_MONOTONIC, nanoseconds), so the delay does not
 * round to epoll's milliseconds. Single-threaded, epoll.
 *
 * Stops by itself: after LIFETIME_S seconds, or when process WATCH_PID no longer exists
 * (checked twice a second). Binds and connects 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTES 8
#define CHUNK 65536
#define HIGH_WATER (8u << 20) /* bytes queued in one direction before reading from it pauses */

enum kind { K_LISTEN, K_CONTROL, K_ECHO_LISTEN, K_ECHO, K_END, K_TIMER };

struct pair;
struct end { /* one socket of a pair: 0 = client side, 1 = upstream side */
    enum kind kind;
    int fd;
    struct pair *p;
    int side;
};
struct dir { /* bytes read from end[src] and written to end[1 - src] */
    char *out;          /* due bytes not yet written */
    size_t out_len, out_cap;
    size_t queued;      /* bytes in the heap, not yet due */
    int eof_read;       /* src said EOF (an EOF marker is queued or delivered) */
    int eof_due;        /* the EOF marker came due: shut down the write side once out is empty */
    int shut;           /* done */
};
struct pair {
    struct end end[2];
    struct dir dir[2];  /* dir[s]: reads end[s], writes end[1 - s] */
    int connecting;     /* upstream connect() in progress */
    int dead;
    int broken[2];      /* end s failed (reset, write error): off epoll, nothing more to it */
    int refs;           /* chunks in the heap pointing at this pair */
    uint64_t open_at;   /* accept time + DELAY: the client "could send" from then on */
    uint32_t ev[2];     /* epoll events registered per end */
};
struct chunk {
    uint64_t due, seq;
    struct pair *p;
    int d;              /* direction */
    size_t len;         /* 0: EOF marker */
    char data[];
};
struct listener { enum kind kind; int fd; int route; unsigned long accepts; int target; };

static int ep, tfd;
static uint64_t delay_ns, half_ns, seq;
static struct chunk **heap;
static size_t heap_n, heap_cap;
static struct listener listeners[MAX_ROUTES + 3];
static int n_listeners;
static struct end timer_end = { K_TIMER, -1, NULL, 0 };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int before(const struct chunk *a, const struct chunk *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_push(struct chunk *c)
{
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = realloc(heap, heap_cap * sizeof *heap);
        if (!heap) die("realloc");
    }
    size_t i = heap_n++;
    while (i > 0 && before(c, heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = c;
}

static struct chunk *heap_pop(void)
{
    struct chunk *top = heap[0], *last = heap[--heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct chunk *mc = last;
        if (l < heap_n && before(heap[l], mc)) { m = l; mc = heap[l]; }
        if (r < heap_n && before(heap[r], mc)) { m = r; }
        if (m == i) break;
        heap[i] = heap[m];
        i = m;
    }
    if (heap_n > 0) heap[i] = last;
    return top;
}

static void arm_timer(void)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (heap_n > 0) {
        uint64_t due = heap[0]->due;
        if (due == 0) due = 1;
        its.it_value.tv_sec = (time_t)(due / 1000000000u);
        its.it_value.tv_nsec = (long)(due % 1000000000u);
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int loopback_listener(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 1024) < 0) die("listen");
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) die("getsockname");
    *port = ntohs(a.sin_port);
    return fd;
}

static void update_events(struct pair *p)
{
    for (int s = 0; s < 2; s++) {
        struct end *e = &p->end[s];
        if (e->fd < 0 || p->broken[s]) continue;
        struct dir *rd = &p->dir[s], *wr = &p->dir[1 - s];
        uint32_t ev = 0;
        if (s == 1 && p->connecting) {
            ev = EPOLLOUT;
        } else {
            if (!rd->eof_read && rd->out_len + rd->queued < HIGH_WATER) ev |= EPOLLIN;
            if (wr->out_len > 0) ev |= EPOLLOUT;
        }
        if (ev != p->ev[s]) {
            struct epoll_event eev = { .events = ev, .data.ptr = e };
            if (epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &eev) < 0) die("epoll_ctl mod");
            p->ev[s] = ev;
        }
    }
}

/* A dead pair with no chunk left in the heap is freed after the current batch of events
 * (another event of that batch may still point at one of its ends). */
static struct pair **graveyard;
static size_t grave_n, grave_cap;

static void maybe_free(struct pair *p)
{
    if (p->dead && p->refs == 0) {
        if (grave_n == grave_cap) {
            grave_cap = grave_cap ? grave_cap * 2 : 256;
            graveyard = realloc(graveyard, grave_cap * sizeof *graveyard);
            if (!graveyard) die("realloc");
        }
        graveyard[grave_n++] = p;
    }
}

static void bury(void)
{
    for (size_t i = 0; i < grave_n; i++) {
        free(graveyard[i]->dir[0].out);
        free(graveyard[i]->dir[1].out);
        free(graveyard[i]);
    }
    grave_n = 0;
}

static void kill_pair(struct pair *p)
{
    if (p->dead) return;
    p->dead = 1;
    for (int s = 0; s < 2; s++) {
        if (p->end[s].fd >= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, p->end[s].fd, NULL);
            close(p->end[s].fd);
            p->end[s].fd = -1;
        }
    }
    maybe_free(p);
}

static void check_done(struct pair *p)
{
    if (!p->dead && p->dir[0].shut && p->dir[1].shut) kill_pair(p);
}

static void enqueue(struct pair *p, int d, const char *data, size_t len);

/* End s failed: what it sent is still delivered (then EOF), what was due to it is dropped. */
static void broken(struct pair *p, int s)
{
    if (p->dead || p->broken[s]) return;
    p->broken[s] = 1;
    epoll_ctl(ep, EPOLL_CTL_DEL, p->end[s].fd, NULL);
    if (!p->dir[s].eof_read) {
        p->dir[s].eof_read = 1;
        enqueue(p, s, NULL, 0);
    }
    p->dir[1 - s].shut = 1;
    p->dir[1 - s].out_len = 0;
    check_done(p);
}

/* Writes what is due in direction d; returns -1 when the pair died. */
static int flush_dir(struct pair *p, int d)
{
    struct dir *dr = &p->dir[d];
    int fd = p->end[1 - d].fd;
    if (p->connecting || fd < 0 || dr->shut) {
        dr->out_len = dr->shut ? 0 : dr->out_len;
        return 0;
    }
    while (dr->out_len > 0) {
        ssize_t n = send(fd, dr->out, dr->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            broken(p, 1 - d);
            return p->dead ? -1 : 0;
        }
        memmove(dr->out, dr->out + n, dr->out_len - (size_t)n);
        dr->out_len -= (size_t)n;
    }
    if (dr->out_len == 0 && dr->eof_due && !dr->shut) {
        shutdown(fd, SHUT_WR);
        dr->shut = 1;
        check_done(p);
        if (p->dead) return -1;
    }
    return 0;
}

static void deliver(struct chunk *c)
{
    struct pair *p = c->p;
    struct dir *dr = &p->dir[c->d];
    p->refs--;
    if (p->dead) {
        maybe_free(p);
        return;
    }
    dr->queued -= c->len;
    if (c->len == 0) {
        dr->eof_due = 1;
    } else {
        if (dr->out_len + c->len > dr->out_cap) {
            size_t cap = dr->out_cap ? dr->out_cap : CHUNK;
            while (cap < dr->out_len + c->len) cap *= 2;
            dr->out = realloc(dr->out, cap);
            if (!dr->out) die("realloc");
            dr->out_cap = cap;
        }
        memcpy(dr->out + dr->out_len, c->data, c->len);
        dr->out_len += c->len;
    }
    if (flush_dir(p, c->d) == 0) update_events(p);
}

static void enqueue(struct pair *p, int d, const char *data, size_t len)
{
    struct chunk *c = malloc(sizeof *c + len);
    if (!c) die("malloc");
    uint64_t t = now_ns();
    if (d == 0 && t < p->open_at) t = p->open_at; /* the handshake round trip */
    c->due = t + half_ns;
    c->seq = seq++;
    c->p = p;
    c->d = d;
    c->len = len;
    if (len) memcpy(c->data, data, len);
    p->refs++;
    p->dir[d].queued += len;
    heap_push(c);
}

static void on_readable(struct pair *p, int s)
{
    static char buf[CHUNK];
    struct dir *dr = &p->dir[s];
    for (int i = 0; i < 16 && !dr->eof_read; i++) {
        ssize_t n = recv(p->end[s].fd, buf, sizeof buf, 0);
        if (n > 0) {
            enqueue(p, s, buf, (size_t)n);
            if ((size_t)n < sizeof buf) break;
        } else if (n == 0) {
            dr->eof_read = 1;
            enqueue(p, s, NULL, 0);
        } else {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            broken(p, s);
            return;
        }
    }
}

static void new_pair(int cfd, int target)
{
    struct pair *p = calloc(1, sizeof *p);
    if (!p) die("calloc");
    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ufd < 0) {
        close(cfd);
        free(p);
        return;
    }
    nodelay(cfd);
    nodelay(ufd);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)target);
    int r = connect(ufd, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno != EINPROGRESS) {
        close(cfd);
        close(ufd);
        free(p);
        return;
    }
    p->connecting = r < 0;
    p->open_at = now_ns() + delay_ns;
    for (int s = 0; s < 2; s++) {
        p->end[s] = (struct end){ K_END, s == 0 ? cfd : ufd, p, s };
        struct epoll_event ev = { .events = 0, .data.ptr = &p->end[s] };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, p->end[s].fd, &ev) < 0) die("epoll_ctl add");
    }
    update_events(p);
}

static void on_end(struct end *e, uint32_t events)
{
    struct pair *p = e->p;
    int s = e->side;
    if (s == 1 && p->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            kill_pair(p);
            return;
        }
        p->connecting = 0;
        if (flush_dir(p, 0) < 0) return;
        update_events(p);
        return;
    }
    if (events & EPOLLERR) {
        broken(p, s);
        if (!p->dead) update_events(p);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP)) {
        if (!p->dir[s].eof_read) on_readable(p, s);
        else if (events & EPOLLHUP) broken(p, s);
        if (p->dead || p->broken[s]) {
            if (!p->dead) update_events(p);
            return;
        }
    }
    if (events & EPOLLOUT) {
        if (flush_dir(p, 1 - s) < 0) return;
    }
    update_events(p);
}

static void on_echo(struct end *e)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(e->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (send(e->fd, buf, (size_t)n, MSG_NOSIGNAL) != n) goto drop; /* tiny probes only */
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            goto drop;
        }
    }
drop:
    epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
    close(e->fd);
    free(e);
}

static void on_listen(struct listener *l)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (l->kind == K_CONTROL) {
            char msg[512];
            size_t off = 0;
            off += (size_t)snprintf(msg + off, sizeof msg - off, "accepts=");
            for (int k = 0; k < n_listeners; k++)
                if (listeners[k].kind == K_LISTEN && listeners[k].route >= 0)
                    off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%lu",
                                            listeners[k].route ? "," : "", listeners[k].accepts);
            off += (size_t)snprintf(msg + off, sizeof msg - off, " check=%lu pending=%zu\n",
                                    listeners[1].accepts, heap_n);
            (void)!send(fd, msg, off, MSG_NOSIGNAL);
            close(fd);
        } else if (l->kind == K_ECHO_LISTEN) {
            struct end *e = malloc(sizeof *e);
            if (!e) die("malloc");
            *e = (struct end){ K_ECHO, fd, NULL, 0 };
            nodelay(fd);
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = e };
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add");
        } else {
            l->accepts++;
            new_pair(fd, l->target);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s DELAY_MS LIFETIME_S WATCH_PID TARGET_PORT...\n", argv[0]);
        return 2;
    }
    double delay_ms = atof(argv[1]);
    double lifetime = atof(argv[2]);
    pid_t watch = (pid_t)atol(argv[3]);
    if (delay_ms < 0 || delay_ms > 10000 || lifetime <= 0 || lifetime > 86400 || argc - 4 > MAX_ROUTES) {
        fprintf(stderr, "rtt_proxy: bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    delay_ns = (uint64_t)(delay_ms * 1e6);
    half_ns = delay_ns / 2;
    uint64_t deadline = now_ns() + (uint64_t)(lifetime * 1e9);

    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep < 0 || tfd < 0) die("epoll/timerfd");
    struct epoll_event tev = { .events = EPOLLIN, .data.ptr = &timer_end };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) < 0) die("epoll_ctl timer");

    /* listeners[0]: control; [1]: check (-> echo); [2]: echo itself; [3..]: routes */
    int port, echo_port, control_port, check_port;
    listeners[2] = (struct listener){ K_ECHO_LISTEN, loopback_listener(&echo_port), -1, 0, 0 };
    listeners[0] = (struct listener){ K_CONTROL, loopback_listener(&control_port), -1, 0, 0 };
    listeners[1] = (struct listener){ K_LISTEN, loopback_listener(&check_port), -1, 0, echo_port };
    n_listeners = 3;
    printf("control=%d check=%d listen=", control_port, check_port);
    for (int i = 4; i < argc; i++) {
        int target = atoi(argv[i]);
        if (target <= 0 || target > 65535) {
            fprintf(stderr, "rtt_proxy: bad port %s\n", argv[i]);
            return 2;
        }
        listeners[n_listeners] = (struct listener){ K_LISTEN, loopback_listener(&port), i - 4, 0, target };
        printf("%s%d", i > 4 ? "," : "", port);
        n_listeners++;
    }
    printf("\n");
    fflush(stdout);
    for (int k = 0; k < n_listeners; k++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listeners[k] };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, listeners[k].fd, &ev) < 0) die("epoll_ctl listen");
    }

    struct epoll_event evs[256];
    uint64_t next_watch = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= deadline) break;
        if (t >= next_watch) {
            if (watch > 0 && kill(watch, 0) < 0 && errno == ESRCH) break;
            next_watch = t + 500000000u;
        }
        int n = epoll_wait(ep, evs, 256, 500);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &timer_end) {
                uint64_t expirations;
                (void)!read(tfd, &expirations, sizeof expirations);
                continue;
            }
            if ((struct listener *)ptr >= listeners && (struct listener *)ptr < listeners + n_listeners) {
                on_listen((struct listener *)ptr);
                continue;
            }
            struct end *e = ptr;
            if (e->kind == K_ECHO) on_echo(e);
            else if (e->p && !e->p->dead && e->fd >= 0 && !e->p->broken[e->side]) on_end(e, evs[i].events);
        }
        /* deliver what is due (also after events: a chunk may have come due meanwhile) */
        t = now_ns();
        while (heap_n > 0 && heap[0]->due <= t) {
            struct chunk *c = heap_pop();
            deliver(c);
            free(c);
        }
        arm_timer();
        bury();
    }
    return 0;
}

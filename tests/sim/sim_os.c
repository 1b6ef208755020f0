/*
 * The simulated OS: see sim_os.h for the model. Layout of this file:
 * the world (fds, PRNG, clock), byte pipes with arrival times, sockets,
 * datagrams, epoll, the clock, and the table.
 *
 * Streams. Each connected socket owns its receive pipe: a ring of rcvbuf
 * bytes plus a queue of segment marks (end offset, arrival time). A send
 * appends bytes to the peer's pipe at once (that is the flow control: the
 * ring's free space is the window) and a mark that makes them visible at
 * now + latency; arrivals keep their order. Readers see bytes up to the
 * last arrived mark. FIN and RST are marks too.
 *
 * Edges. Like the kernel's epoll, a registration gets an event when its
 * state changes: bytes or FIN or RST arrive (IN), space frees after a
 * writer met a full window or a short write, a connect completes (OUT).
 * `edge` holds the directions changed since the last wait reported them.
 */
#include "sim_os.h"

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "platform/os_table.h"
#include "sched/runtime_int.h"

#define MAX_FDS 256
#define MAX_MARKS 64
#define MAX_BACKLOG 64
#define MAX_DGRAMS 256 /* a receive buffer of 256 datagrams */
#define DGRAM_MAX 1024
#define DGRAM_SOCKETS 16 /* datagram sockets open at once (their queues are a static pool) */
#define NO_TIME UINT64_MAX

typedef enum { K_FREE, K_EPOLL, K_EVENTFD, K_STREAM, K_DGRAM } kind;
typedef enum { S_NEW, S_LISTEN, S_CONNECTING, S_CONNECTED } sstate;

typedef struct mark {
    uint64_t end; /* stream offset after the segment */
    uint64_t at;  /* arrival, virtual ns */
} mark;

typedef struct pipe_buf {
    unsigned char *ring;
    uint64_t head, tail, visible; /* read offset, write offset, arrived up to */
    mark marks[MAX_MARKS];
    unsigned nmarks;
    uint64_t fin_at, rst_at; /* NO_TIME: none sent */
    bool fin, rst;           /* arrived */
} pipe_buf;

typedef struct dgram {
    uint64_t at;
    uint32_t ip;
    uint16_t port;
    size_t len;
    unsigned char data[DGRAM_MAX];
} dgram;

typedef struct vfd {
    kind k;
    /* epoll registration (one epoll per fd, as the library uses them) */
    int epfd;
    uint32_t interest;
    uint64_t data;
    uint32_t edge;
    bool armed;
    /* sockets */
    sstate st;
    uint32_t lip, rip;
    uint16_t lport, rport;
    int peer;            /* the connected peer's fd, -1 none */
    uint64_t connect_at; /* connecting: when it completes */
    int connect_err;
    int so_error;
    pipe_buf rx;
    bool wr_shut, want_out;
    int backlog[MAX_BACKLOG];
    unsigned nbacklog;
    dgram *dq;
    unsigned ndq;
    /* eventfd */
    uint64_t counter;
} vfd;

static vfd g_fd[MAX_FDS];
static dgram g_dq_pool[DGRAM_SOCKETS][MAX_DGRAMS];
static bool g_dq_used[DGRAM_SOCKETS];
static int g_hw; /* slots [0, g_hw) have been used this run: the loops stop there */
static sim_options g_o;
static uint64_t g_rng, g_now;
static uint16_t g_next_port;
static unsigned g_next_host;
static bool g_stalled;
/* one partition: between host a and b from start to end (ns) */
static uint32_t g_part_a, g_part_b;
static uint64_t g_part_start, g_part_end;

/* ------------------------------------------------------------------------ */
/* PRNG, clock, fds                                                          */

static uint64_t next_rand(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

uint64_t sim_rand(uint64_t n)
{
    return n == 0 ? 0 : next_rand() % n;
}

static bool chance(unsigned pct)
{
    return sim_rand(100) < pct;
}

uint64_t sim_now_ms(void)
{
    return g_now / 1000000u;
}

bool sim_stalled(void)
{
    return g_stalled;
}

static vfd *get(int fd, kind k)
{
    if (fd < SIM_FD_BASE || fd >= SIM_FD_BASE + MAX_FDS)
        return NULL;
    vfd *v = &g_fd[fd - SIM_FD_BASE];
    if (v->k == K_FREE || (k != K_FREE && v->k != k))
        return NULL;
    return v;
}

static int new_fd(kind k)
{
    for (int i = 0; i < MAX_FDS; i++) {
        if (g_fd[i].k == K_FREE) {
            vfd *v = &g_fd[i];
            memset(v, 0, offsetof(vfd, rx));
            memset(&v->rx, 0, offsetof(pipe_buf, marks));
            v->rx.nmarks = 0;
            v->rx.fin = v->rx.rst = false;
            v->wr_shut = v->want_out = false;
            v->nbacklog = 0;
            v->dq = NULL;
            v->ndq = 0;
            v->counter = 0;
            v->k = k;
            if (i >= g_hw)
                g_hw = i + 1;
            v->peer = -1;
            v->rx.fin_at = v->rx.rst_at = NO_TIME;
            return SIM_FD_BASE + i;
        }
    }
    errno = EMFILE;
    return -1;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

static uint64_t latency(uint32_t a, uint32_t b)
{
    uint64_t l = sim_rand((uint64_t)g_o.max_latency_ms * 1000000u + 1);
    /* A partitioned pair: nothing gets through until it heals (TCP retransmits). */
    bool pair = (a == g_part_a && b == g_part_b) || (a == g_part_b && b == g_part_a);
    if (pair && g_now >= g_part_start && g_now < g_part_end)
        l += g_part_end - g_now;
    return l;
}

static bool partitioned(uint32_t a, uint32_t b)
{
    bool pair = (a == g_part_a && b == g_part_b) || (a == g_part_b && b == g_part_a);
    return pair && g_now >= g_part_start && g_now < g_part_end;
}

static void raise_edge(vfd *v, uint32_t ev)
{
    v->edge |= ev;
}

/* ------------------------------------------------------------------------ */
/* Pipes                                                                     */

static size_t pipe_space(const pipe_buf *p)
{
    return g_o.rcvbuf - (size_t)(p->tail - p->head);
}

/* Copies n bytes into (in) or out of the ring at stream offset off: at most two memcpys. */
static void ring_copy(unsigned char *ring, uint64_t off, const void *data, size_t n, bool in)
{
    size_t at = (size_t)(off % g_o.rcvbuf), first = g_o.rcvbuf - at < n ? g_o.rcvbuf - at : n;
    if (in) {
        memcpy(ring + at, data, first);
        memcpy(ring, (const unsigned char *)data + first, n - first);
    } else {
        memcpy((void *)(uintptr_t)data, ring + at, first);
        memcpy((unsigned char *)(uintptr_t)data + first, ring, n - first);
    }
}

static void pipe_push(pipe_buf *p, const unsigned char *data, size_t n, uint64_t at)
{
    ring_copy(p->ring, p->tail, data, n, true);
    p->tail += n;
    if (p->nmarks > 0 && p->marks[p->nmarks - 1].at > at)
        at = p->marks[p->nmarks - 1].at; /* in order */
    if (p->nmarks == MAX_MARKS) {
        p->marks[p->nmarks - 1].end = p->tail;
        p->marks[p->nmarks - 1].at = at;
        return;
    }
    p->marks[p->nmarks++] = (mark){p->tail, at};
}

/* Arrival time of whatever is sent now on this pipe (after every earlier segment). */
static uint64_t pipe_last_at(const pipe_buf *p)
{
    return p->nmarks > 0 ? p->marks[p->nmarks - 1].at : 0;
}

/* Moves arrived marks to visible; true if anything arrived. */
static bool pipe_advance(pipe_buf *p)
{
    bool any = false;
    unsigned k = 0;
    while (k < p->nmarks && p->marks[k].at <= g_now) {
        p->visible = p->marks[k].end;
        k++;
        any = true;
    }
    if (k > 0) {
        memmove(p->marks, p->marks + k, (p->nmarks - k) * sizeof p->marks[0]);
        p->nmarks -= k;
    }
    if (!p->fin && p->fin_at <= g_now && p->nmarks == 0) {
        p->fin = true;
        any = true;
    }
    if (!p->rst && p->rst_at <= g_now) {
        p->rst = true;
        any = true;
    }
    return any;
}

static uint64_t pipe_next_at(const pipe_buf *p)
{
    uint64_t t = NO_TIME;
    if (p->nmarks > 0)
        t = p->marks[0].at;
    if (!p->fin && p->fin_at != NO_TIME && p->fin_at < t)
        t = p->fin_at;
    if (!p->rst && p->rst_at != NO_TIME && p->rst_at < t)
        t = p->rst_at;
    return t;
}

/* ------------------------------------------------------------------------ */
/* The world's clock: arrivals                                               */

static void advance_fd(vfd *v)
{
    switch (v->k) {
    case K_STREAM:
        if (v->st == S_CONNECTING && v->connect_at <= g_now) {
            v->st = v->connect_err == 0 ? S_CONNECTED : S_NEW;
            v->so_error = v->connect_err;
            raise_edge(v, EPOLLOUT | (v->connect_err ? EPOLLERR | EPOLLHUP | EPOLLIN : 0));
        }
        if (v->st == S_CONNECTED && pipe_advance(&v->rx))
            raise_edge(v, EPOLLIN | (v->rx.fin || v->rx.rst ? EPOLLRDHUP : 0) |
                              (v->rx.rst ? EPOLLOUT | EPOLLERR | EPOLLHUP : 0));
        break;
    case K_DGRAM:
        for (unsigned i = 0; i < v->ndq; i++)
            if (v->dq[i].at <= g_now) {
                raise_edge(v, EPOLLIN);
                break;
            }
        break;
    default:
        break;
    }
}

static void advance_all(void)
{
    for (int i = 0; i < g_hw; i++)
        if (g_fd[i].k != K_FREE)
            advance_fd(&g_fd[i]);
}

static uint64_t next_arrival(void)
{
    uint64_t t = NO_TIME;
    for (int i = 0; i < g_hw; i++) {
        vfd *v = &g_fd[i];
        uint64_t a = NO_TIME;
        if (v->k == K_STREAM && v->st == S_CONNECTING)
            a = v->connect_at;
        else if (v->k == K_STREAM && v->st == S_CONNECTED)
            a = pipe_next_at(&v->rx);
        else if (v->k == K_DGRAM)
            for (unsigned j = 0; j < v->ndq; j++)
                if (v->dq[j].at > g_now && v->dq[j].at < a)
                    a = v->dq[j].at;
        if (a < t)
            t = a;
    }
    return t;
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                   */

static int s_socket(int family, int type, int protocol)
{
    (void)protocol;
    if (family != AF_INET)
        return fail(EAFNOSUPPORT);
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (base != SOCK_STREAM && base != SOCK_DGRAM)
        return fail(EPROTONOSUPPORT);
    int slot = 0;
    if (base == SOCK_DGRAM) {
        while (slot < DGRAM_SOCKETS && g_dq_used[slot])
            slot++;
        if (slot == DGRAM_SOCKETS)
            return fail(ENOBUFS);
    }
    int fd = new_fd(base == SOCK_STREAM ? K_STREAM : K_DGRAM);
    if (fd >= 0 && base == SOCK_DGRAM) {
        g_dq_used[slot] = true;
        get(fd, K_DGRAM)->dq = g_dq_pool[slot];
    }
    return fd;
}

static int s_socketpair(int family, int type, int protocol, int fds[2])
{
    (void)family, (void)type, (void)protocol, (void)fds;
    return fail(EOPNOTSUPP);
}

static vfd *any_sock(int fd)
{
    vfd *v = get(fd, K_FREE);
    return v != NULL && (v->k == K_STREAM || v->k == K_DGRAM) ? v : NULL;
}

static void to_sin(uint32_t ip, uint16_t port, struct sockaddr *sa, socklen_t *len)
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(ip);
    in.sin_port = htons(port);
    size_t n = *len < sizeof in ? *len : sizeof in;
    memcpy(sa, &in, n);
    *len = sizeof in;
}

static bool from_sin(const struct sockaddr *sa, socklen_t len, uint32_t *ip, uint16_t *port)
{
    if (len < (socklen_t)sizeof(struct sockaddr_in) || sa->sa_family != AF_INET)
        return false;
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    *ip = ntohl(in->sin_addr.s_addr);
    *port = ntohs(in->sin_port);
    return true;
}

static bool port_taken(kind k, uint32_t ip, uint16_t port)
{
    for (int i = 0; i < g_hw; i++)
        if (g_fd[i].k == k && g_fd[i].lport == port && g_fd[i].lip == ip)
            return true;
    return false;
}

static int s_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    vfd *v = any_sock(fd);
    uint32_t ip;
    uint16_t port;
    if (v == NULL)
        return fail(EBADF);
    if (!from_sin(sa, len, &ip, &port))
        return fail(EINVAL);
    if (port == 0)
        port = g_next_port++;
    else if (port_taken(v->k, ip, port))
        return fail(EADDRINUSE);
    v->lip = ip;
    v->lport = port;
    return 0;
}

static int s_listen(int fd, int backlog)
{
    (void)backlog;
    vfd *v = get(fd, K_STREAM);
    if (v == NULL)
        return fail(EBADF);
    v->st = S_LISTEN;
    return 0;
}

static vfd *find_listener(uint32_t ip, uint16_t port)
{
    for (int i = 0; i < g_hw; i++) {
        vfd *v = &g_fd[i];
        if (v->k == K_STREAM && v->st == S_LISTEN && v->lport == port &&
            (v->lip == ip || v->lip == INADDR_ANY))
            return v;
    }
    return NULL;
}

static void alloc_rx(vfd *v)
{
    v->rx.ring = malloc(g_o.rcvbuf);
}

static int s_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    vfd *v = get(fd, K_STREAM);
    uint32_t ip;
    uint16_t port;
    if (v == NULL)
        return fail(EBADF);
    if (!from_sin(sa, len, &ip, &port))
        return fail(EINVAL);
    if (v->st != S_NEW)
        return fail(v->st == S_CONNECTING ? EALREADY : EISCONN);
    v->lip = 0x0a000002u + g_next_host++ % 10; /* clients live on 10.0.0.2 .. 10.0.0.11 */
    v->lport = g_next_port++;
    v->rip = ip;
    v->rport = port;
    v->st = S_CONNECTING;
    v->connect_at = g_now + 2 * latency(v->lip, ip); /* SYN, SYN-ACK */
    vfd *l = find_listener(ip, port);
    if (l == NULL || l->nbacklog == MAX_BACKLOG) {
        v->connect_err = ECONNREFUSED;
        return fail(EINPROGRESS);
    }
    int sfd = new_fd(K_STREAM);
    if (sfd < 0) {
        v->connect_err = ECONNREFUSED;
        return fail(EINPROGRESS);
    }
    vfd *s = get(sfd, K_STREAM);
    s->st = S_CONNECTED;
    s->lip = ip;
    s->lport = port;
    s->rip = v->lip;
    s->rport = v->lport;
    s->peer = fd;
    v->peer = sfd;
    alloc_rx(s);
    alloc_rx(v);
    l->backlog[l->nbacklog++] = sfd;
    raise_edge(l, EPOLLIN);
    if (chance(g_o.reset_pct)) { /* this connection dies at a random moment */
        uint64_t at = g_now + sim_rand(30u * 1000000u);
        v->rx.rst_at = at;
        s->rx.rst_at = at;
    }
    return fail(EINPROGRESS);
}

static int s_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    (void)flags;
    vfd *l = get(fd, K_STREAM);
    if (l == NULL || l->st != S_LISTEN)
        return fail(l == NULL ? EBADF : EINVAL);
    if (l->nbacklog == 0)
        return fail(EAGAIN);
    int sfd = l->backlog[0];
    memmove(l->backlog, l->backlog + 1, --l->nbacklog * sizeof l->backlog[0]);
    vfd *s = get(sfd, K_STREAM);
    if (sa != NULL && len != NULL)
        to_sin(s->rip, s->rport, sa, len);
    return sfd;
}

static int s_shutdown(int fd, int how)
{
    vfd *v = get(fd, K_STREAM);
    if (v == NULL)
        return fail(EBADF);
    if (v->st != S_CONNECTED)
        return fail(ENOTCONN);
    if ((how == SHUT_WR || how == SHUT_RDWR) && !v->wr_shut) {
        v->wr_shut = true;
        vfd *p = get(v->peer, K_STREAM);
        if (p != NULL) {
            uint64_t at = g_now + latency(v->lip, v->rip);
            p->rx.fin_at = at > pipe_last_at(&p->rx) ? at : pipe_last_at(&p->rx);
        }
    }
    return 0;
}

static void drop_stream(vfd *v)
{
    vfd *p = get(v->peer, K_STREAM);
    if (p != NULL && p->peer == (int)(v - g_fd) + SIM_FD_BASE) {
        /* Unread input or a plain close: the peer sees RST or FIN (like the kernel). */
        bool unread = v->rx.visible > v->rx.head || v->rx.nmarks > 0;
        uint64_t at = g_now + latency(v->lip, v->rip);
        if (at < pipe_last_at(&p->rx))
            at = pipe_last_at(&p->rx);
        if (unread) {
            if (p->rx.rst_at == NO_TIME || p->rx.rst_at > at)
                p->rx.rst_at = at;
        } else if (p->rx.fin_at == NO_TIME) {
            p->rx.fin_at = at;
        }
        p->peer = -1;
    }
    if (v->st == S_LISTEN) /* connections nobody accepted: reset */
        for (unsigned i = 0; i < v->nbacklog; i++) {
            vfd *s = get(v->backlog[i], K_STREAM);
            vfd *c = s != NULL ? get(s->peer, K_STREAM) : NULL;
            if (c != NULL) {
                c->rx.rst_at = g_now;
                c->peer = -1;
            }
            if (s != NULL) {
                free(s->rx.ring);
                s->k = K_FREE;
            }
        }
    free(v->rx.ring);
}

static int s_close(int fd)
{
    vfd *v = get(fd, K_FREE);
    if (v == NULL)
        return fail(EBADF);
    if (v->k == K_STREAM)
        drop_stream(v);
    if (v->k == K_DGRAM)
        g_dq_used[(v->dq - g_dq_pool[0]) / MAX_DGRAMS] = false;
    if (v->k == K_EPOLL)
        for (int i = 0; i < g_hw; i++)
            if (g_fd[i].epfd == fd)
                g_fd[i].epfd = 0;
    v->k = K_FREE;
    return 0;
}

/* Stream receive: bytes up to the last arrived mark; seeded short reads. */
static ssize_t stream_recv(vfd *v, void *buf, size_t len)
{
    if (v->st != S_CONNECTED)
        return fail(ENOTCONN);
    advance_fd(v);
    pipe_buf *p = &v->rx;
    if (p->rst) {
        p->rst_at = NO_TIME; /* reported once; then EOF, as the kernel does */
        p->rst = false;
        p->fin = true;
        p->visible = p->head = p->tail;
        p->nmarks = 0;
        return fail(ECONNRESET);
    }
    size_t avail = (size_t)(p->visible - p->head);
    if (avail == 0) {
        if (p->fin)
            return 0;
        return fail(EAGAIN);
    }
    size_t n = avail < len ? avail : len;
    if (n > 1 && chance(g_o.short_pct))
        n = 1 + (size_t)sim_rand(n - 1);
    ring_copy(p->ring, p->head, buf, n, false);
    p->head += n;
    if (p->visible > p->head)
        raise_edge(v, EPOLLIN); /* a short read: the rest "arrives" again */
    vfd *w = get(v->peer, K_STREAM);
    if (w != NULL && w->want_out) {
        w->want_out = false;
        raise_edge(w, EPOLLOUT);
    }
    return (ssize_t)n;
}

static ssize_t stream_send(vfd *v, const void *buf, size_t len)
{
    if (v->st == S_CONNECTING)
        return fail(EAGAIN);
    if (v->st != S_CONNECTED)
        return fail(ENOTCONN);
    advance_fd(v);
    if (v->wr_shut || v->rx.rst || v->rx.rst_at <= g_now)
        return fail(EPIPE);
    vfd *p = get(v->peer, K_STREAM);
    if (p == NULL)
        return fail(v->rx.fin ? EPIPE : ECONNRESET); /* the peer closed: RST comes back */
    size_t space = pipe_space(&p->rx);
    if (space == 0) {
        v->want_out = true;
        return fail(EAGAIN);
    }
    size_t n = space < len ? space : len;
    if (n > 1 && chance(g_o.short_pct)) {
        n = 1 + (size_t)sim_rand(n - 1);
        raise_edge(v, EPOLLOUT); /* room is left: writable again at once */
    } else if (n < len) {
        v->want_out = true;
    }
    pipe_push(&p->rx, buf, n, g_now + latency(v->lip, v->rip));
    return (ssize_t)n;
}

static ssize_t s_recv(int fd, void *buf, size_t len, int flags)
{
    (void)flags;
    vfd *v = get(fd, K_STREAM);
    return v == NULL ? fail(EBADF) : stream_recv(v, buf, len);
}

static ssize_t s_send(int fd, const void *buf, size_t len, int flags)
{
    (void)flags;
    vfd *v = get(fd, K_STREAM);
    return v == NULL ? fail(EBADF) : stream_send(v, buf, len);
}

static ssize_t s_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    (void)flags;
    vfd *v = get(fd, K_STREAM);
    if (v == NULL)
        return fail(EBADF);
    ssize_t total = 0;
    for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++) {
        if (msg->msg_iov[i].iov_len == 0)
            continue;
        ssize_t n = stream_send(v, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
        if (n < 0)
            return total > 0 ? total : n;
        total += n;
        if ((size_t)n < msg->msg_iov[i].iov_len)
            break;
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* Datagrams                                                                 */

static ssize_t s_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                        socklen_t tolen)
{
    (void)flags;
    vfd *v = get(fd, K_DGRAM);
    uint32_t ip;
    uint16_t port;
    if (v == NULL)
        return fail(EBADF);
    if (to == NULL ? (ip = v->rip, port = v->rport, port == 0) : !from_sin(to, tolen, &ip, &port))
        return fail(to == NULL ? EDESTADDRREQ : EINVAL);
    if (len > DGRAM_MAX)
        return fail(EMSGSIZE);
    if (v->lport == 0) {
        v->lip = 0x0a000002u + g_next_host++ % 10;
        v->lport = g_next_port++;
    }
    vfd *d = NULL;
    for (int i = 0; i < g_hw && d == NULL; i++)
        if (g_fd[i].k == K_DGRAM && g_fd[i].lport == port &&
            (g_fd[i].lip == ip || g_fd[i].lip == INADDR_ANY))
            d = &g_fd[i];
    /* Lost, partitioned or no receiver with room: gone without a trace (UDP). */
    if (d == NULL || d->ndq == MAX_DGRAMS || chance(g_o.udp_loss_pct) || partitioned(v->lip, ip))
        return (ssize_t)len;
    dgram *g = &d->dq[d->ndq++];
    g->at = g_now + latency(v->lip, ip); /* independent latencies: reordering */
    g->ip = v->lip;
    g->port = v->lport;
    g->len = len;
    memcpy(g->data, buf, len);
    return (ssize_t)len;
}

static ssize_t s_recvmsg(int fd, struct msghdr *msg, int flags)
{
    (void)flags;
    vfd *v = get(fd, K_DGRAM);
    if (v == NULL)
        return fail(EBADF);
    unsigned best = v->ndq;
    for (unsigned i = 0; i < v->ndq; i++)
        if (v->dq[i].at <= g_now && (best == v->ndq || v->dq[i].at < v->dq[best].at))
            best = i;
    if (best == v->ndq)
        return fail(EAGAIN);
    dgram *g = &v->dq[best];
    size_t off = 0;
    for (size_t i = 0; i < (size_t)msg->msg_iovlen && off < g->len; i++) {
        size_t n = g->len - off < msg->msg_iov[i].iov_len ? g->len - off : msg->msg_iov[i].iov_len;
        memcpy(msg->msg_iov[i].iov_base, g->data + off, n);
        off += n;
    }
    msg->msg_flags = off < g->len ? MSG_TRUNC : 0;
    if (msg->msg_name != NULL)
        to_sin(g->ip, g->port, msg->msg_name, &msg->msg_namelen);
    ssize_t n = (ssize_t)off;
    v->dq[best] = v->dq[--v->ndq];
    for (unsigned i = 0; i < v->ndq; i++)
        if (v->dq[i].at <= g_now)
            raise_edge(v, EPOLLIN); /* more queued */
    return n;
}

/* ------------------------------------------------------------------------ */
/* Options and names                                                         */

static int s_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    vfd *v = any_sock(fd);
    if (v == NULL)
        return fail(EBADF);
    int out = 0;
    if (level == SOL_SOCKET && name == SO_ERROR) {
        advance_fd(v);
        out = v->so_error;
        v->so_error = 0;
    } else if (level == SOL_SOCKET && name == SO_TYPE) {
        out = v->k == K_STREAM ? SOCK_STREAM : SOCK_DGRAM;
    }
    if (*len >= (socklen_t)sizeof out)
        memcpy(val, &out, sizeof out);
    *len = sizeof out;
    return 0;
}

static int s_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    (void)level, (void)name, (void)val, (void)len;
    return any_sock(fd) == NULL ? fail(EBADF) : 0; /* options do not change the model */
}

static int s_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    vfd *v = any_sock(fd);
    if (v == NULL)
        return fail(EBADF);
    to_sin(v->lip, v->lport, sa, len);
    return 0;
}

static int s_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    vfd *v = get(fd, K_STREAM);
    if (v == NULL)
        return fail(EBADF);
    if (v->st != S_CONNECTED)
        return fail(ENOTCONN);
    to_sin(v->rip, v->rport, sa, len);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* eventfd, read / write                                                     */

static int s_eventfd(unsigned initval, int flags)
{
    (void)flags;
    int fd = new_fd(K_EVENTFD);
    if (fd >= 0)
        get(fd, K_EVENTFD)->counter = initval;
    return fd;
}

static ssize_t s_read(int fd, void *buf, size_t len)
{
    vfd *v = get(fd, K_FREE);
    if (v == NULL)
        return fail(EBADF);
    if (v->k == K_STREAM)
        return stream_recv(v, buf, len);
    if (v->k != K_EVENTFD || len < 8)
        return fail(EINVAL);
    if (v->counter == 0)
        return fail(EAGAIN);
    memcpy(buf, &v->counter, 8);
    v->counter = 0;
    return 8;
}

static ssize_t s_write(int fd, const void *buf, size_t len)
{
    vfd *v = get(fd, K_FREE);
    if (v == NULL)
        return fail(EBADF);
    if (v->k == K_STREAM)
        return stream_send(v, buf, len);
    if (v->k != K_EVENTFD || len < 8)
        return fail(EINVAL);
    uint64_t add;
    memcpy(&add, buf, 8);
    v->counter += add;
    raise_edge(v, EPOLLIN); /* every write wakes eventfd waiters */
    return 8;
}

static int s_pipe(int fds[2])
{
    (void)fds;
    return fail(EMFILE); /* no pipes in the simulation */
}

static int s_pipe2(int fds[2], int flags)
{
    (void)flags;
    return s_pipe(fds);
}

/* ------------------------------------------------------------------------ */
/* epoll                                                                     */

static int s_epoll_create1(int flags)
{
    (void)flags;
    return new_fd(K_EPOLL);
}

static int s_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    vfd *e = get(epfd, K_EPOLL), *v = get(fd, K_FREE);
    if (e == NULL || v == NULL)
        return fail(EBADF);
    switch (op) {
    case EPOLL_CTL_ADD:
        if (v->epfd != 0)
            return fail(EEXIST);
        v->edge = EPOLLIN | EPOLLOUT; /* the kernel checks readiness at once */
        break;
    case EPOLL_CTL_MOD:
        if (v->epfd != epfd)
            return fail(ENOENT);
        v->edge |= EPOLLIN | EPOLLOUT;
        break;
    case EPOLL_CTL_DEL:
        if (v->epfd != epfd)
            return fail(ENOENT);
        v->epfd = 0;
        return 0;
    default:
        return fail(EINVAL);
    }
    v->epfd = epfd;
    v->interest = ev->events;
    v->data = ev->data.u64;
    v->armed = true;
    return 0;
}

/* The readiness the fd has now (for level mode and to filter edges). */
static uint32_t ready_now(vfd *v)
{
    uint32_t r = 0;
    switch (v->k) {
    case K_EVENTFD:
        return v->counter > 0 ? EPOLLIN : 0;
    case K_DGRAM:
        for (unsigned i = 0; i < v->ndq; i++)
            if (v->dq[i].at <= g_now)
                r |= EPOLLIN;
        return r | EPOLLOUT;
    case K_STREAM:
        if (v->st == S_LISTEN)
            return v->nbacklog > 0 ? EPOLLIN : 0;
        if (v->st == S_CONNECTING)
            return 0;
        if (v->st == S_NEW)
            return v->so_error ? EPOLLOUT | EPOLLERR | EPOLLHUP : EPOLLOUT | EPOLLHUP;
        if (v->rx.rst)
            return EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP;
        if (v->rx.visible > v->rx.head || v->rx.fin)
            r |= EPOLLIN;
        if (v->rx.fin)
            r |= EPOLLRDHUP;
        vfd *p = get(v->peer, K_STREAM);
        if (p == NULL || pipe_space(&p->rx) > 0)
            r |= EPOLLOUT;
        return r;
    default:
        return 0;
    }
}

static int collect(int epfd, struct epoll_event *evs, int max)
{
    int n = 0;
    for (int i = 0; i < g_hw && n < max; i++) {
        vfd *v = &g_fd[i];
        if (v->k == K_FREE || v->epfd != epfd || !v->armed)
            continue;
        uint32_t want = v->interest | EPOLLERR | EPOLLHUP;
        uint32_t now = ready_now(v) & want;
        uint32_t ev = (v->interest & EPOLLET) ? (v->edge & now) : now;
        if ((v->interest & EPOLLET) && (v->edge & (EPOLLERR | EPOLLHUP)))
            ev |= now & (EPOLLERR | EPOLLHUP);
        v->edge = 0;
        if (ev == 0)
            continue;
        evs[n].events = ev;
        evs[n].data.u64 = v->data;
        n++;
        if (v->interest & EPOLLONESHOT)
            v->armed = false;
    }
    /* Seeded order of the batch: the dispatch order varies between seeds. */
    for (int i = n - 1; i > 0; i--) {
        int j = (int)sim_rand((uint64_t)i + 1);
        struct epoll_event t = evs[i];
        evs[i] = evs[j];
        evs[j] = t;
    }
    return n;
}

static int s_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
    if (get(epfd, K_EPOLL) == NULL)
        return fail(EBADF);
    advance_all();
    int n = collect(epfd, evs, max);
    if (n > 0 || timeout_ms == 0)
        return n;
    /* Nothing ready: the clock jumps to the next arrival or the timeout. */
    uint64_t next = next_arrival();
    uint64_t deadline = timeout_ms < 0 ? NO_TIME : g_now + (uint64_t)timeout_ms * 1000000u;
    uint64_t t = next < deadline ? next : deadline;
    if (t == NO_TIME) {
        g_stalled = true; /* nothing will ever happen: report a deadlock */
        fprintf(stderr, "sim: stalled at %llu ms: a wait without timeout and nothing in flight\n",
                (unsigned long long)sim_now_ms());
        abort();
    }
    if (t > g_now)
        g_now = t;
    advance_all();
    return collect(epfd, evs, max);
}

static int s_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    (void)fds, (void)n, (void)timeout_ms;
    return fail(ENOSYS); /* the simulation runs the epoll backend */
}

/* ------------------------------------------------------------------------ */
/* Clock and install                                                         */

static int s_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id != CLOCK_MONOTONIC)
        return asyncio__os_libc.clock_gettime(id, ts);
    ts->tv_sec = (time_t)(g_now / 1000000000u);
    ts->tv_nsec = (long)(g_now % 1000000000u);
    return 0;
}

/* The scheduler's seeded pick (src/sched/runtime_int.h). */
static size_t pick(size_t ready)
{
    return (size_t)sim_rand(ready);
}

void sim_os_install(const sim_options *o)
{
    for (int i = 0; i < MAX_FDS; i++)
        g_fd[i].k = K_FREE;
    g_hw = 0;
    memset(g_dq_used, 0, sizeof g_dq_used);
    g_o = *o;
    if (g_o.rcvbuf == 0)
        g_o.rcvbuf = 4096;
    if (g_o.max_latency_ms == 0)
        g_o.max_latency_ms = 5;
    g_rng = o->seed;
    g_now = 1000000000u;
    g_next_port = 40000;
    g_next_host = 0;
    g_stalled = false;
    g_part_a = g_part_b = 0;
    g_part_start = g_part_end = 0;
    if (chance(g_o.partition_pct)) {
        g_part_a = 0x0a000001u;
        g_part_b = 0x0a000002u + (uint32_t)sim_rand(10);
        g_part_start = g_now + sim_rand(100u * 1000000u);
        g_part_end = g_part_start + (10 + sim_rand(490)) * 1000000u;
    }
    asyncio__os_table t = {
        .read = s_read,
        .write = s_write,
        .recv = s_recv,
        .send = s_send,
        .recvmsg = s_recvmsg,
        .sendmsg = s_sendmsg,
        .sendto = s_sendto,
        .socket = s_socket,
        .socketpair = s_socketpair,
        .accept4 = s_accept4,
        .connect = s_connect,
        .bind = s_bind,
        .listen = s_listen,
        .shutdown = s_shutdown,
        .getsockopt = s_getsockopt,
        .setsockopt = s_setsockopt,
        .getsockname = s_getsockname,
        .getpeername = s_getpeername,
        .close = s_close,
        .pipe = s_pipe,
        .pipe2 = s_pipe2,
        .eventfd = s_eventfd,
        .poll = s_poll,
        .epoll_create1 = s_epoll_create1,
        .epoll_ctl = s_epoll_ctl,
        .epoll_wait = s_epoll_wait,
        .clock_gettime = s_clock_gettime,
    };
    asyncio__os = t;
    asyncio__ct_pick_hook = pick;
}

int sim_os_uninstall(void)
{
    int open = 0;
    for (int i = 0; i < g_hw; i++)
        if (g_fd[i].k != K_FREE) {
            open++;
            free(g_fd[i].rx.ring);
            g_fd[i].k = K_FREE;
        }
    asyncio__os = asyncio__os_libc;
    asyncio__ct_pick_hook = NULL;
    return open;
}

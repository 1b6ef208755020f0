/*
 * The fault injector: see fault_inject.h for the faults and their rules.
 *
 * Every wrapper rolls its dice under g_lock first (so one seed draws the same
 * numbers in the same call order whatever the fds turn out to be), then
 * checks whether the fault is one the kernel could give for this fd (a
 * short transfer only on a stream socket, EAGAIN only on a non-blocking
 * socket, ...) and otherwise makes the real call through asyncio__os_libc.
 *
 * Spurious EAGAIN needs care with edge-triggered epoll: the library clears
 * the direction's readiness and waits for the next edge, which the kernel
 * will not send for data that was there all along. The injector keeps the
 * epoll registrations it saw (epoll_ctl) and queues a synthetic event for
 * that fd, delivered by the next epoll_wait on its epoll fd: the same
 * history as data arriving just after the EAGAIN. The poll backend re-arms
 * a cleared direction itself (poll_rearm), so nothing is queued for it.
 */
#include "fault_inject.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "platform/os_table.h"

#if !defined(__linux__)
/*
 * No epoll (macOS, the BSDs: compiled by make check-macos, not run): the
 * synthetic edge for a spurious EAGAIN needs epoll registrations, so the
 * directions below are only labels and nothing is queued.
 */
#define EPOLLIN 0x001u
#define EPOLLOUT 0x004u
#endif

#define MAX_FD 4096     /* fds above this are faulted but not tracked for epoll */
#define RING 64         /* injections remembered for the dump */
#define MAX_PENDING 256 /* synthetic epoll events waiting for a wait */
#define MAX_IOV 64

typedef struct epoll_reg {
    int epfd; /* 0: not registered (an epoll fd is never 0 in the test programs) */
    uint32_t events;
    uint64_t data;
} epoll_reg;

typedef struct pending_ev {
    int epfd, fd;
    uint32_t events;
    uint64_t data;
} pending_ev;

typedef struct record {
    const char *call, *fault;
    int fd;
} record;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static fault_plan g_plan;
static uint64_t g_rng;
static uint64_t g_count;
static uint64_t g_hostile; /* injections of reset, emfile, clock */
static int64_t g_clock_offset_ns;
static epoll_reg g_regs[MAX_FD];
static int g_max_fd;
static pending_ev g_pending[MAX_PENDING];
static size_t g_npending;
static record g_ring[RING];

/* ------------------------------------------------------------------------ */
/* Seeded randomness and the plan                                            */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Lock held: a number in [0, n). */
static uint64_t rnd(uint64_t n)
{
    return n == 0 ? 0 : splitmix(&g_rng) % n;
}

/* Lock held: true with probability pct %. Always draws, so the sequence does not depend on pct. */
static bool roll(unsigned pct)
{
    return rnd(100) < pct;
}

fault_plan fault_plan_from_seed(uint64_t seed, unsigned classes)
{
    uint64_t s = seed ^ 0x5eedf00dull;
    fault_plan p = {.seed = seed};
    /* Each allowed fault is on with probability 2/3, at 1..25 %. */
#define PICK(field, cls) p.field = (classes & (cls)) && splitmix(&s) % 3 != 0 ? 1 + splitmix(&s) % 25 : 0
    PICK(eintr, FAULT_INVISIBLE);
    PICK(eagain, FAULT_TRANSPARENT);
    PICK(short_io, FAULT_TRANSPARENT);
    PICK(wake, FAULT_INVISIBLE);
    PICK(reset, FAULT_HOSTILE);
    PICK(emfile, FAULT_HOSTILE);
    PICK(clock, FAULT_HOSTILE);
#undef PICK
    if (p.reset > 3)
        p.reset = 1 + p.reset % 3; /* a reset ends a connection: keep them rare */
    p.jump_ms = p.clock ? 1 + (unsigned)(splitmix(&s) % 2000) : 0;
    if (p.eintr + p.eagain + p.short_io + p.wake + p.reset + p.emfile + p.clock == 0 &&
        (classes & FAULT_INVISIBLE))
        p.eintr = 10; /* every plan injects something */
    return p;
}

void fault_plan_format(const fault_plan *p, char *buf, size_t len)
{
    snprintf(buf, len,
             "seed=%" PRIu64 " eintr=%u%% eagain=%u%% short=%u%% wake=%u%% reset=%u%% "
             "emfile=%u%% clock=%u%%o(+1..%ums)",
             p->seed, p->eintr, p->eagain, p->short_io, p->wake, p->reset, p->emfile, p->clock,
             p->jump_ms);
}

void fault_plan_override_from_env(fault_plan *p)
{
    const char *v = getenv("ASYNCIO_FAULT_PLAN");
    if (v == NULL)
        return;
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"eintr", offsetof(fault_plan, eintr)},   {"eagain", offsetof(fault_plan, eagain)},
        {"short", offsetof(fault_plan, short_io)}, {"wake", offsetof(fault_plan, wake)},
        {"reset", offsetof(fault_plan, reset)},   {"emfile", offsetof(fault_plan, emfile)},
        {"clock", offsetof(fault_plan, clock)},   {"jump", offsetof(fault_plan, jump_ms)},
    };
    while (*v != '\0') {
        size_t len = strcspn(v, "=, ");
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (v[len] == '=' && strlen(fields[i].name) == len &&
                strncmp(v, fields[i].name, len) == 0)
                *(unsigned *)(void *)((char *)p + fields[i].off) =
                    (unsigned)strtoul(v + len + 1, NULL, 10);
        v += strcspn(v, ", ");
        v += strspn(v, ", ");
    }
}

bool fault_seed_from_env(uint64_t *seed)
{
    const char *v = getenv("ASYNCIO_FAULT_SEED");
    if (v == NULL || *v == '\0')
        return false;
    *seed = strtoull(v, NULL, 0);
    return true;
}

/* Lock held. */
static void note(const char *call, int fd, const char *fault)
{
    g_ring[g_count % RING] = (record){call, fault, fd};
    g_count++;
    if (strcmp(fault, "reset") == 0 || strcmp(fault, "jump") == 0 ||
        strstr(fault, "MFILE") != NULL || strstr(fault, "NFILE") != NULL)
        g_hostile++;
}

/* ------------------------------------------------------------------------ */
/* Which faults this fd can really show                                      */

static int sock_type(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (asyncio__os_libc.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -1;
    return type;
}

static bool nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK) != 0;
}

static bool connected_stream(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return sock_type(fd) == SOCK_STREAM &&
           asyncio__os_libc.getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/*
 * After a spurious EAGAIN in direction ev (EPOLLIN / EPOLLOUT): an
 * edge-triggered epoll registration of fd gets a synthetic event.
 */
static void queue_resync(int fd, uint32_t ev)
{
#if !defined(__linux__)
    (void)fd;
    (void)ev;
    (void)g_pending;
    (void)g_regs;
#else
    pthread_mutex_lock(&g_lock);
    if (fd >= 0 && fd < MAX_FD && g_regs[fd].epfd != 0 && (g_regs[fd].events & EPOLLET) &&
        (g_regs[fd].events & ev) && g_npending < MAX_PENDING)
        g_pending[g_npending++] = (pending_ev){g_regs[fd].epfd, fd, ev, g_regs[fd].data};
    pthread_mutex_unlock(&g_lock);
#endif
}

/* ------------------------------------------------------------------------ */
/* Transfers                                                                 */

typedef enum { F_NONE, F_EINTR, F_EAGAIN, F_SHORT, F_RESET } xfer_fault;

/* Rolls the dice for one transfer; *cut gets a random draw for short transfers. */
static xfer_fault draw_xfer(const char *call, int fd, bool stream_call, uint64_t *cut)
{
    pthread_mutex_lock(&g_lock);
    xfer_fault f = F_NONE;
    bool eintr = roll(g_plan.eintr), eagain = roll(g_plan.eagain), shrt = roll(g_plan.short_io);
    bool reset = roll(g_plan.reset);
    *cut = splitmix(&g_rng);
    if (eintr)
        f = F_EINTR;
    else if (eagain)
        f = F_EAGAIN;
    else if (reset && stream_call)
        f = F_RESET;
    else if (shrt && stream_call)
        f = F_SHORT;
    if (f == F_EINTR)
        note(call, fd, "EINTR");
    pthread_mutex_unlock(&g_lock);
    if (f == F_EINTR)
        return f;
    /* The kernel's rules: EAGAIN only where the call could block; the rest on streams. */
    if (f == F_EAGAIN && (sock_type(fd) < 0 || !nonblocking(fd)))
        return F_NONE;
    if ((f == F_SHORT || f == F_RESET) && !connected_stream(fd))
        return F_NONE;
    if (f != F_NONE) {
        pthread_mutex_lock(&g_lock);
        note(call, fd, f == F_EAGAIN ? "EAGAIN" : f == F_SHORT ? "short" : "reset");
        pthread_mutex_unlock(&g_lock);
    }
    return f;
}

static size_t shorten(size_t len, uint64_t cut)
{
    return len <= 1 ? len : 1 + (size_t)(cut % (len - 1));
}

/*
 * A short transfer tells the library the socket buffer ran dry (read) or
 * full (write), and like Tokio it may clear that direction's readiness. So,
 * as with EAGAIN, the rest "arrives" (or space frees) right after: a fresh
 * edge for epoll.
 */
static ssize_t after_short(xfer_fault f, int fd, bool write_dir, ssize_t n)
{
    if (f == F_SHORT && n > 0)
        queue_resync(fd, write_dir ? EPOLLOUT : EPOLLIN);
    return n;
}

/* Common tail of a faulted transfer that does not reach the kernel; -1 + errno. */
static ssize_t fail_xfer(xfer_fault f, int fd, bool write_dir)
{
    switch (f) {
    case F_EINTR: /* interrupted before anything moved */
        errno = EINTR;
        return -1;
    case F_EAGAIN: /* "not ready": then data arrives / space frees at once */
        queue_resync(fd, write_dir ? EPOLLOUT : EPOLLIN);
        errno = EAGAIN;
        return -1;
    case F_RESET: /* the connection dies: shut it down for real, report it once */
        (void)asyncio__os_libc.shutdown(fd, SHUT_RDWR);
        errno = write_dir ? EPIPE : ECONNRESET;
        return -1;
    default:
        return 0; /* not reached: F_NONE and F_SHORT go to the kernel */
    }
}

static ssize_t fi_read(int fd, void *buf, size_t len)
{
    uint64_t cut;
    xfer_fault f = draw_xfer("read", fd, true, &cut);
    if (f == F_NONE || f == F_SHORT)
        return after_short(f, fd, false,
                           asyncio__os_libc.read(fd, buf, f == F_SHORT ? shorten(len, cut) : len));
    return fail_xfer(f, fd, false);
}

static ssize_t fi_write(int fd, const void *buf, size_t len)
{
    uint64_t cut;
    xfer_fault f = draw_xfer("write", fd, true, &cut);
    if (f == F_NONE || f == F_SHORT)
        return after_short(f, fd, true,
                           asyncio__os_libc.write(fd, buf, f == F_SHORT ? shorten(len, cut) : len));
    return fail_xfer(f, fd, true);
}

static ssize_t fi_recv(int fd, void *buf, size_t len, int flags)
{
    uint64_t cut;
    xfer_fault f = draw_xfer("recv", fd, true, &cut);
    if (f == F_NONE || f == F_SHORT)
        return after_short(
            f, fd, false,
            asyncio__os_libc.recv(fd, buf, f == F_SHORT ? shorten(len, cut) : len, flags));
    return fail_xfer(f, fd, false);
}

static ssize_t fi_send(int fd, const void *buf, size_t len, int flags)
{
    uint64_t cut;
    xfer_fault f = draw_xfer("send", fd, true, &cut);
    if (f == F_NONE || f == F_SHORT)
        return after_short(
            f, fd, true,
            asyncio__os_libc.send(fd, buf, f == F_SHORT ? shorten(len, cut) : len, flags));
    return fail_xfer(f, fd, true);
}

/* Datagrams: a short transfer or a reset would not be what a kernel does. */
static ssize_t fi_recvmsg(int fd, struct msghdr *msg, int flags)
{
    uint64_t cut;
    xfer_fault f = draw_xfer("recvmsg", fd, false, &cut);
    if (f == F_NONE)
        return asyncio__os_libc.recvmsg(fd, msg, flags);
    return fail_xfer(f, fd, false);
}

static ssize_t fi_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                         socklen_t tolen)
{
    uint64_t cut;
    xfer_fault f = draw_xfer("sendto", fd, false, &cut);
    if (f == F_NONE)
        return asyncio__os_libc.sendto(fd, buf, len, flags, to, tolen);
    return fail_xfer(f, fd, true);
}

/* Vectored stream writes: a short one sends a prefix of the iovecs. */
static ssize_t fi_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    uint64_t cut;
    bool stream = sock_type(fd) == SOCK_STREAM;
    xfer_fault f = draw_xfer("sendmsg", fd, stream, &cut);
    if (f == F_NONE)
        return asyncio__os_libc.sendmsg(fd, msg, flags);
    if (f != F_SHORT)
        return fail_xfer(f, fd, true);
    size_t total = 0, n = msg->msg_iovlen < MAX_IOV ? msg->msg_iovlen : MAX_IOV;
    for (size_t i = 0; i < n; i++)
        total += msg->msg_iov[i].iov_len;
    size_t want = shorten(total, cut), k = 0;
    struct iovec iov[MAX_IOV];
    for (; k < n && want > 0; k++) {
        iov[k] = msg->msg_iov[k];
        if (iov[k].iov_len > want)
            iov[k].iov_len = want;
        want -= iov[k].iov_len;
    }
    struct msghdr m = *msg;
    m.msg_iov = iov;
    m.msg_iovlen = k;
    return after_short(f, fd, true, asyncio__os_libc.sendmsg(fd, &m, flags));
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */

static int fi_socket(int family, int type, int protocol)
{
    pthread_mutex_lock(&g_lock);
    bool fail = roll(g_plan.emfile);
    int err = rnd(2) ? EMFILE : ENFILE;
    if (fail)
        note("socket", -1, err == EMFILE ? "EMFILE" : "ENFILE");
    pthread_mutex_unlock(&g_lock);
    if (fail) {
        errno = err;
        return -1;
    }
    return (asyncio__os_libc.socket)(family, type, protocol); /* () : no compat macro */
}

static int fi_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    pthread_mutex_lock(&g_lock);
    bool eintr = roll(g_plan.eintr), eagain = roll(g_plan.eagain), emfile = roll(g_plan.emfile);
    int err = rnd(2) ? EMFILE : ENFILE;
    const char *what = eintr ? "EINTR" : eagain ? "EAGAIN" : emfile ? "EMFILE/ENFILE" : NULL;
    if (what != NULL)
        note("accept4", fd, what);
    pthread_mutex_unlock(&g_lock);
    if (eintr) {
        errno = EINTR;
        return -1;
    }
    if (eagain) {
        queue_resync(fd, EPOLLIN);
        errno = EAGAIN;
        return -1;
    }
    if (emfile) {
        errno = err;
        return -1;
    }
    return asyncio__os_libc.accept4(fd, addr, len, flags);
}

static void forget_fd(int fd)
{
    if (fd < 0 || fd >= MAX_FD)
        return;
    pthread_mutex_lock(&g_lock);
    g_regs[fd].epfd = 0;
    for (size_t i = 0; i < g_npending;)
        if (g_pending[i].fd == fd || g_pending[i].epfd == fd)
            g_pending[i] = g_pending[--g_npending];
        else
            i++;
    pthread_mutex_unlock(&g_lock);
}

static int fi_close(int fd)
{
    pthread_mutex_lock(&g_lock);
    bool eintr = roll(g_plan.eintr);
    if (eintr)
        note("close", fd, "EINTR");
    pthread_mutex_unlock(&g_lock);
    forget_fd(fd);
    int rc = asyncio__os_libc.close(fd);
    if (eintr && rc == 0) { /* Linux: the fd is gone even when close says EINTR */
        errno = EINTR;
        return -1;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Pollers                                                                   */

#if defined(__linux__)
static int fi_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    int rc = asyncio__os_libc.epoll_ctl(epfd, op, fd, ev);
    if (rc == 0 && fd >= 0 && fd < MAX_FD) {
        if (op == EPOLL_CTL_DEL) {
            forget_fd(fd);
        } else {
            pthread_mutex_lock(&g_lock);
            g_regs[fd] = (epoll_reg){epfd, ev->events, ev->data.u64};
            if (fd > g_max_fd)
                g_max_fd = fd;
            pthread_mutex_unlock(&g_lock);
        }
    }
    return rc;
}

/* Lock held: moves queued synthetic events of epfd into evs[n..max). */
static int take_pending(int epfd, struct epoll_event *evs, int n, int max)
{
    for (size_t i = 0; i < g_npending && n < max;) {
        if (g_pending[i].epfd != epfd) {
            i++;
            continue;
        }
        evs[n].events = g_pending[i].events;
        evs[n].data.u64 = g_pending[i].data;
        n++;
        g_pending[i] = g_pending[--g_npending];
    }
    return n;
}

/* Lock held: a spurious event for a random edge-triggered registration of epfd. */
static int add_spurious(int epfd, struct epoll_event *evs, int n, int max)
{
    if (n >= max || g_max_fd == 0)
        return n;
    int start = (int)rnd((uint64_t)g_max_fd + 1);
    for (int i = 0; i <= g_max_fd; i++) {
        epoll_reg *r = &g_regs[(start + i) % (g_max_fd + 1)];
        uint32_t dirs = r->events & (EPOLLIN | EPOLLOUT);
        if (r->epfd == epfd && (r->events & EPOLLET) && dirs != 0) {
            evs[n].events = dirs;
            evs[n].data.u64 = r->data;
            note("epoll_wait", (start + i) % (g_max_fd + 1), "wake");
            return n + 1;
        }
    }
    return n;
}

static int fi_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
    pthread_mutex_lock(&g_lock);
    bool eintr = roll(g_plan.eintr), wake = roll(g_plan.wake);
    bool queued = false;
    for (size_t i = 0; i < g_npending && !queued; i++)
        queued = g_pending[i].epfd == epfd;
    if (eintr)
        note("epoll_wait", epfd, "EINTR");
    pthread_mutex_unlock(&g_lock);
    if (eintr) {
        errno = EINTR;
        return -1;
    }
    /*
     * A synthetic event may be queued by another thread while this one blocks (the
     * multi-thread runtime): the kernel would have woken the wait for real data, so wait
     * in slices of at most 5 ms and look for queued events between them.
     */
    int n, left = timeout_ms;
    for (;;) {
        int slice = queued || wake ? 0 : left < 0 || left > 5 ? 5 : left;
        n = asyncio__os_libc.epoll_wait(epfd, evs, max, slice);
        if (n != 0 || slice == 0)
            break;
        pthread_mutex_lock(&g_lock);
        for (size_t i = 0; i < g_npending && !queued; i++)
            queued = g_pending[i].epfd == epfd;
        pthread_mutex_unlock(&g_lock);
        if (left > 0)
            left -= slice;
        if (queued || left == 0)
            break;
    }
    if (n < 0)
        return n;
    pthread_mutex_lock(&g_lock);
    n = take_pending(epfd, evs, n, max);
    if (wake)
        n = add_spurious(epfd, evs, n, max);
    pthread_mutex_unlock(&g_lock);
    return n;
}
#endif

static int fi_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    pthread_mutex_lock(&g_lock);
    bool eintr = roll(g_plan.eintr), wake = roll(g_plan.wake);
    size_t pick = (size_t)rnd(nfds);
    if (eintr)
        note("poll", -1, "EINTR");
    pthread_mutex_unlock(&g_lock);
    if (eintr) {
        errno = EINTR;
        return -1;
    }
    int n = asyncio__os_libc.poll(fds, nfds, wake ? 0 : timeout_ms);
    if (n < 0 || !wake || nfds == 0)
        return n;
    struct pollfd *p = &fds[pick];
    short dirs = (short)(p->events & (POLLIN | POLLOUT));
    if (p->revents == 0 && dirs != 0 && p->fd >= 0) {
        p->revents = dirs;
        n++;
        pthread_mutex_lock(&g_lock);
        note("poll", p->fd, "wake");
        pthread_mutex_unlock(&g_lock);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Clock                                                                     */

static int fi_clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = asyncio__os_libc.clock_gettime(id, ts);
    if (rc < 0 || id != CLOCK_MONOTONIC)
        return rc;
    pthread_mutex_lock(&g_lock);
    /* Clocks are read often: the percentage is per mille of reads. */
    if (g_plan.clock != 0 && rnd(1000) < g_plan.clock) {
        g_clock_offset_ns += (int64_t)(1 + rnd(g_plan.jump_ms)) * 1000000;
        note("clock_gettime", -1, "jump");
    }
    int64_t off = g_clock_offset_ns;
    pthread_mutex_unlock(&g_lock);
    int64_t ns = (int64_t)ts->tv_nsec + off % 1000000000;
    ts->tv_sec += (time_t)(off / 1000000000 + ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Install                                                                   */

void fault_inject_install(const fault_plan *p)
{
    pthread_mutex_lock(&g_lock);
    g_plan = *p;
    g_rng = p->seed;
    g_count = 0;
    g_hostile = 0;
    g_clock_offset_ns = 0;
    memset(g_regs, 0, sizeof g_regs);
    g_max_fd = 0;
    g_npending = 0;
    pthread_mutex_unlock(&g_lock);
    asyncio__os_table t = asyncio__os_libc;
    t.read = fi_read;
    t.write = fi_write;
    t.recv = fi_recv;
    t.send = fi_send;
    t.recvmsg = fi_recvmsg;
    t.sendmsg = fi_sendmsg;
    t.sendto = fi_sendto;
    t.socket = fi_socket;
    t.accept4 = fi_accept4;
    t.close = fi_close;
    t.poll = fi_poll;
#if defined(__linux__)
    t.epoll_ctl = fi_epoll_ctl;
    t.epoll_wait = fi_epoll_wait;
#endif
    t.clock_gettime = fi_clock_gettime;
    asyncio__os = t;
}

void fault_inject_uninstall(void)
{
    if (asyncio__os.read == fi_read) /* installed: leave the table alone otherwise */
        asyncio__os = asyncio__os_libc;
}

uint64_t fault_inject_count(void)
{
    pthread_mutex_lock(&g_lock);
    uint64_t n = g_count;
    pthread_mutex_unlock(&g_lock);
    return n;
}

uint64_t fault_inject_hostile_count(void)
{
    pthread_mutex_lock(&g_lock);
    uint64_t n = g_hostile;
    pthread_mutex_unlock(&g_lock);
    return n;
}

void fault_inject_dump(FILE *f)
{
    char plan[256];
    pthread_mutex_lock(&g_lock);
    fault_plan_format(&g_plan, plan, sizeof plan);
    fprintf(f, "fault plan: %s; %" PRIu64 " injection(s)", plan, g_count);
    uint64_t first = g_count > RING ? g_count - RING : 0;
    if (g_count > 0)
        fprintf(f, ", the last %" PRIu64 ":", g_count - first);
    for (uint64_t i = first; i < g_count; i++) {
        const record *r = &g_ring[i % RING];
        fprintf(f, "%s %s(fd %d): %s", i == first ? "" : ",", r->call, r->fd, r->fault);
    }
    fprintf(f, "\n");
    pthread_mutex_unlock(&g_lock);
}

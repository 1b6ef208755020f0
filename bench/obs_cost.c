/*
 * obs_cost: what observability costs per operation, for callgrind
 * (instruction counts, not time: docs/observability.md "Cost").
 *
 *   obs_cost MODE OP N
 *     MODE  off     no observability option (also builds against headers
 *                   older than issue 17)
 *           names   task names at spawn only
 *           track   names + track_tasks
 *           detect  names + the stall detector (100 ms)
 *           on      names, track_tasks and the stall detector, as the
 *                   issue's target says
 *           hist    on + poll_time_histogram (two clock reads per poll)
 *     OP    yield   one task yields N times
 *           spawn   one task spawns N tasks that finish on their first poll
 *           echo    N 64-byte round trips over a loopback TCP connection
 *                   between two tasks (written with the await macros)
 *     on the current-thread runtime, or with OBS_COST_WORKERS=N in the
 *     environment on the multi-thread runtime with N workers (a process that
 *     has threads anyway: the observer thread then changes nothing in libc's
 *     own locking, which a single-threaded process would feel).
 *
 * Run it twice under `valgrind --tool=callgrind --fair-sched=yes` with two
 * values of N; (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one operation
 * without the set-up. Exit status 0, or 1 when a call fails.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asyncio/await.h"
#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "asyncio/task.h"

#ifdef ASYNCIO_POLL_HISTOGRAM_BUCKETS
#define HAVE_OBS 1
#else
#define HAVE_OBS 0
#endif

#define CHECK(expr)                                                              \
    do {                                                                         \
        int rc_ = (expr);                                                        \
        if (rc_ < 0) {                                                           \
            fprintf(stderr, "obs_cost: %s: %s\n", #expr, asyncio_strerror(rc_)); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static int g_named;

static int spawn_named(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init,
                       const char *name, asyncio_join_handle **jh)
{
    if (g_named) {
        asyncio_spawn_options o = {.name = name};
        return asyncio_spawn_with(rt, vt, init, &o, jh);
    }
    return asyncio_spawn(rt, vt, init, jh);
}

/* ---- yield --------------------------------------------------------------------- */

typedef struct yielder {
    long left;
} yielder;

static int yielder_poll(void *state, asyncio_context *cx, void *output)
{
    yielder *y = state;
    (void)output;
    if (y->left-- <= 0)
        return 0;
    asyncio_waker_wake_by_ref(cx->waker);
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable yielder_vt = {yielder_poll, NULL, NULL, sizeof(yielder), 0};

/* ---- spawn --------------------------------------------------------------------- */

static int nop_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    return 0;
}

static const asyncio_task_vtable nop_vt = {nop_poll, NULL, NULL, 0, 0};

typedef struct spawner {
    asyncio_runtime *rt;
    long left;
} spawner;

static int spawner_poll(void *state, asyncio_context *cx, void *output)
{
    spawner *s = state;
    (void)output;
    for (int i = 0; i < 64 && s->left > 0; i++, s->left--)
        CHECK(spawn_named(s->rt, &nop_vt, NULL, "child", NULL));
    if (s->left == 0)
        return 0;
    asyncio_waker_wake_by_ref(cx->waker); /* behind the children: they run first */
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable spawner_vt = {spawner_poll, NULL, NULL, sizeof(spawner), 0};

/* ---- echo ---------------------------------------------------------------------- */

typedef struct pinger {
    asyncio_coro co;
    asyncio_tcp_stream *s;
    long left;
    char buf[64];
    size_t off, n;
} pinger;

static int pinger_poll(void *state, asyncio_context *cx, void *output)
{
    pinger *p = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(p->co);
    for (; p->left > 0; p->left--) {
        ASYNCIO_AWAIT_OK(p->co, rc, asyncio_tcp_stream_poll_write(p->s, cx, p->buf, 64, &p->n));
        for (p->off = 0; p->off < 64; p->off += p->n) {
            ASYNCIO_AWAIT_OK(
                p->co, rc,
                asyncio_tcp_stream_poll_read(p->s, cx, p->buf + p->off, 64 - p->off, &p->n));
            if (p->n == 0)
                return ASYNCIO_ECONNRESET;
        }
    }
    ASYNCIO_END(p->co);
    return 0;
}

static const asyncio_task_vtable pinger_vt = {pinger_poll, NULL, NULL, sizeof(pinger), 0};

typedef struct ponger {
    asyncio_coro co;
    asyncio_tcp_stream *s;
    char buf[64];
    size_t len, off, n;
} ponger;

static int ponger_poll(void *state, asyncio_context *cx, void *output)
{
    ponger *p = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(p->co);
    for (;;) {
        ASYNCIO_AWAIT_OK(p->co, rc, asyncio_tcp_stream_poll_read(p->s, cx, p->buf, 64, &p->len));
        if (p->len == 0)
            break;
        for (p->off = 0; p->off < p->len; p->off += p->n)
            ASYNCIO_AWAIT_OK(
                p->co, rc,
                asyncio_tcp_stream_poll_write(p->s, cx, p->buf + p->off, p->len - p->off, &p->n));
    }
    ASYNCIO_END(p->co);
    return 0;
}

static const asyncio_task_vtable ponger_vt = {ponger_poll, NULL, NULL, sizeof(ponger), 0};

typedef struct echo_main {
    asyncio_runtime *rt;
    int fds[2];
    asyncio_tcp_stream a, b; /* registered on the first poll (from_fd wants a runtime thread) */
    long n;
    asyncio_join_handle *jh;
} echo_main;

static int echo_main_poll(void *state, asyncio_context *cx, void *output)
{
    echo_main *m = state;
    (void)output;
    if (m->jh == NULL) {
        CHECK(asyncio_tcp_stream_from_fd(&m->a, m->fds[0]));
        CHECK(asyncio_tcp_stream_from_fd(&m->b, m->fds[1]));
        ponger po = {ASYNCIO_CORO_INIT, &m->b, {0}, 0, 0, 0};
        CHECK(spawn_named(m->rt, &ponger_vt, &po, "pong", NULL));
        pinger pi = {ASYNCIO_CORO_INIT, &m->a, m->n, {0}, 0, 0};
        CHECK(spawn_named(m->rt, &pinger_vt, &pi, "ping", &m->jh));
    }
    int rc = asyncio_join_handle_poll(m->jh, cx, NULL);
    if (rc != ASYNCIO_PENDING) {
        asyncio_join_handle_drop(m->jh);
        asyncio_tcp_stream_close(&m->a); /* pong is never polled again: shutdown drops it */
        asyncio_tcp_stream_close(&m->b);
    }
    return rc;
}

static const asyncio_task_vtable echo_main_vt = {echo_main_poll, NULL, NULL, sizeof(echo_main), 0};

/* A connected loopback TCP pair, made with plain blocking calls before the runtime runs. */
static void tcp_pair(int fds[2])
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &len) < 0)
        exit(1);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&sa, sizeof sa) < 0)
        exit(1);
    fds[1] = accept(l, NULL, NULL);
    if (fds[1] < 0)
        exit(1);
    close(l);
    for (int i = 0; i < 2; i++) {
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: obs_cost off|names|track|detect|on|hist yield|spawn|echo N\n");
        return 2;
    }
    const char *mode = argv[1], *op = argv[2];
    long n = atol(argv[3]);
    asyncio_runtime_options o;
    memset(&o, 0, sizeof o);
    const char *workers = getenv("OBS_COST_WORKERS");
    if (workers != NULL && atoi(workers) > 0) {
        o.flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
        o.workers = (uint32_t)atoi(workers);
    }
    g_named = strcmp(mode, "off") != 0;
    if (g_named && strcmp(mode, "names") != 0) {
#if HAVE_OBS
        bool on = strcmp(mode, "on") == 0, hist = strcmp(mode, "hist") == 0;
        o.track_tasks = on || hist || strcmp(mode, "track") == 0;
        o.stall_threshold_ms = on || hist || strcmp(mode, "detect") == 0 ? 100 : 0;
        o.poll_time_histogram = hist;
#else
        fprintf(stderr, "obs_cost: built without observability\n");
        return 2;
#endif
    }
    asyncio_runtime *rt;
    CHECK(asyncio_runtime_new(&rt, &o));
    if (strcmp(op, "yield") == 0) {
        yielder y = {n};
        CHECK(asyncio_runtime_block_on(rt, &yielder_vt, &y, NULL));
    } else if (strcmp(op, "spawn") == 0) {
        spawner s = {rt, n};
        CHECK(asyncio_runtime_block_on(rt, &spawner_vt, &s, NULL));
    } else {
        echo_main m;
        memset(&m, 0, sizeof m);
        m.rt = rt;
        m.n = n;
        tcp_pair(m.fds);
        CHECK(asyncio_runtime_block_on(rt, &echo_main_vt, &m, NULL));
    }
    CHECK(asyncio_runtime_free(rt));
    return 0;
}

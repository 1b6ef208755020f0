/*
 * bench_sched: Tokio's scheduler benchmarks (tokio/benches/rt_multi_threaded.rs)
 * on libasyncio, the multi-thread runtime with 2 workers next to the
 * current-thread runtime, in one run:
 *
 *   spawn_many     one task spawns 1,000,000 trivial tasks (keeping their
 *                  JoinHandles), then joins them all: ns per task.
 *   yield_many     200 tasks each yield 1,000 times; joined: ns per yield.
 *   ping_pong      1,000 round trips between two tasks over a oneshot-like
 *                  hand-off (a slot + waker under a mutex): ns per round trip.
 *                  Repeated `--pp-reps` times per measurement (default 100)
 *                  so one measurement is long enough to time.
 *   chained_spawn  each task spawns the next, depth 1,000; the root waits for
 *                  the last: ns per spawn. Repeated like ping_pong.
 *   ping_pong_chan 100,000 sequential round trips between two tasks over two
 *                  bounded mpsc channels of capacity 1 (asyncio/channel.h):
 *                  ns per round trip. The workload of tokio_micro's
 *                  ping_pong_seq (bench/peers/tokio), which run_bench.sh
 *                  --only micro runs beside it; not one of Tokio's
 *                  rt_multi_threaded benchmarks. Sized 1,000 x --pp-reps.
 *
 * Each (benchmark, flavour) is measured `--reps` times (default 5), a fresh
 * runtime each time (creation and free excluded from the time); reported:
 * median ns/op and the spread (min..max). Options: --reps N, --scale P
 * (percent of every size, for a quick smoke run), --only NAME, --warmup:
 * one untimed run first and every rep on that same runtime, as tokio_micro
 * measures (its warm-up and reps share one runtime and one process heap;
 * run_bench.sh --only micro passes it, so both sides start warm).
 * Exit status 0, or 1 when any call fails.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asyncio/channel.h"
#include "asyncio/error.h"
#include "asyncio/runtime.h"
#include "asyncio/task.h"

static long g_scale = 100;
static int g_pp_reps = 100;

#define CHECK(expr)                                                                 \
    do {                                                                            \
        int rc_ = (expr);                                                           \
        if (rc_ < 0) {                                                              \
            fprintf(stderr, "bench_sched: %s: %s\n", #expr, asyncio_strerror(rc_)); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

static long scaled(long n)
{
    long v = n * g_scale / 100;
    return v > 0 ? v : 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- spawn_many ----------------------------------------------------------- */

static int trivial_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    *(int *)output = 1;
    return 0;
}

static const asyncio_task_vtable trivial_vt = {trivial_poll, NULL, NULL, 0, sizeof(int)};

typedef struct spawn_many {
    long n, next;
    asyncio_join_handle **jh;
    bool spawned;
} spawn_many;

static int spawn_many_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    spawn_many *s = state;
    if (!s->spawned) {
        for (long i = 0; i < s->n; i++)
            CHECK(asyncio_spawn(asyncio_runtime_current(), &trivial_vt, NULL, &s->jh[i]));
        s->spawned = true;
    }
    for (; s->next < s->n; s->next++) {
        int v;
        int rc = asyncio_join_handle_poll(s->jh[s->next], cx, &v);
        if (rc == ASYNCIO_PENDING)
            return rc;
        CHECK(rc);
        asyncio_join_handle_drop(s->jh[s->next]);
    }
    return 0;
}

static const asyncio_task_vtable spawn_many_vt = {spawn_many_poll, NULL, NULL, sizeof(spawn_many),
                                                  0};

static double run_spawn_many(asyncio_runtime *rt)
{
    spawn_many s = {.n = scaled(1000000)};
    s.jh = malloc((size_t)s.n * sizeof *s.jh);
    if (s.jh == NULL)
        exit(1);
    uint64_t t0 = now_ns();
    CHECK(asyncio_runtime_block_on(rt, &spawn_many_vt, &s, NULL));
    uint64_t t1 = now_ns();
    free(s.jh);
    return (double)(t1 - t0) / (double)s.n;
}

/* ---- yield_many ----------------------------------------------------------- */

typedef struct yielder {
    long left;
    asyncio_yield y;
} yielder;

static int yielder_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    yielder *y = state;
    while (y->left > 0) {
        if (asyncio_yield_poll(&y->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        y->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        y->left--;
    }
    return 0;
}

static const asyncio_task_vtable yielder_vt = {yielder_poll, NULL, NULL, sizeof(yielder), 0};

#define YIELD_TASKS 200

typedef struct yield_many {
    long yields;
    asyncio_join_handle *jh[YIELD_TASKS];
    int next;
    bool spawned;
} yield_many;

static int yield_many_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    yield_many *s = state;
    if (!s->spawned) {
        for (int i = 0; i < YIELD_TASKS; i++) {
            yielder y = {s->yields, ASYNCIO_YIELD_INIT};
            CHECK(asyncio_spawn(asyncio_runtime_current(), &yielder_vt, &y, &s->jh[i]));
        }
        s->spawned = true;
    }
    for (; s->next < YIELD_TASKS; s->next++) {
        int rc = asyncio_join_handle_poll(s->jh[s->next], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        CHECK(rc);
        asyncio_join_handle_drop(s->jh[s->next]);
    }
    return 0;
}

static const asyncio_task_vtable yield_many_vt = {yield_many_poll, NULL, NULL, sizeof(yield_many),
                                                  0};

static double run_yield_many(asyncio_runtime *rt)
{
    yield_many s = {.yields = scaled(1000)};
    uint64_t t0 = now_ns();
    CHECK(asyncio_runtime_block_on(rt, &yield_many_vt, &s, NULL));
    return (double)(now_ns() - t0) / (double)(YIELD_TASKS * s.yields);
}

/* ---- ping_pong: a oneshot-like hand-off in each direction ------------------- */

typedef struct handoff {
    pthread_mutex_t m;
    long value[2];      /* value[i]: message for player i, -1 = empty */
    asyncio_waker w[2]; /* player i's waker while it waits */
} handoff;

static void handoff_send(handoff *h, int to, long v)
{
    pthread_mutex_lock(&h->m);
    h->value[to] = v;
    asyncio_waker w = h->w[to];
    h->w[to] = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&h->m);
    asyncio_waker_wake(&w);
}

/* True with the message in *out, or false with cx's waker stored. */
static bool handoff_recv(handoff *h, int me, asyncio_context *cx, long *out)
{
    pthread_mutex_lock(&h->m);
    long v = h->value[me];
    if (v >= 0)
        h->value[me] = -1;
    else
        asyncio_waker_store(&h->w[me], cx->waker);
    pthread_mutex_unlock(&h->m);
    *out = v;
    return v >= 0;
}

typedef struct player {
    handoff *h;
    int me;
    long rounds;
} player;

static int player_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    player *p = state;
    for (;;) {
        long v;
        if (!handoff_recv(p->h, p->me, cx, &v))
            return ASYNCIO_PENDING;
        if (p->me == 0 && v >= p->rounds)
            return 0; /* the last round trip came back */
        handoff_send(p->h, 1 - p->me, p->me == 0 ? v + 1 : v);
        if (p->me == 1 && v >= p->rounds)
            return 0;
    }
}

static const asyncio_task_vtable player_vt = {player_poll, NULL, NULL, sizeof(player), 0};

typedef struct ping_pong {
    handoff h;
    asyncio_join_handle *jh[2];
    long rounds;
    int reps_left;
    bool spawned;
} ping_pong;

static int ping_pong_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    ping_pong *s = state;
    for (;;) {
        if (!s->spawned) {
            if (s->reps_left == 0)
                return 0;
            s->h.value[0] = 0; /* player 0 starts with round 0 */
            s->h.value[1] = -1;
            for (int i = 0; i < 2; i++) {
                player p = {&s->h, i, s->rounds};
                CHECK(asyncio_spawn(asyncio_runtime_current(), &player_vt, &p, &s->jh[i]));
            }
            s->spawned = true;
        }
        for (int i = 0; i < 2; i++) {
            if (s->jh[i] == NULL)
                continue;
            int rc = asyncio_join_handle_poll(s->jh[i], cx, NULL);
            if (rc == ASYNCIO_PENDING)
                return rc;
            CHECK(rc);
            asyncio_join_handle_drop(s->jh[i]);
            s->jh[i] = NULL;
        }
        s->spawned = false;
        s->reps_left--;
    }
}

static const asyncio_task_vtable ping_pong_vt = {ping_pong_poll, NULL, NULL, sizeof(ping_pong), 0};

static double run_ping_pong(asyncio_runtime *rt)
{
    ping_pong *s = calloc(1, sizeof *s);
    if (s == NULL)
        exit(1);
    pthread_mutex_init(&s->h.m, NULL);
    s->rounds = scaled(1000);
    s->reps_left = g_pp_reps;
    uint64_t t0 = now_ns();
    CHECK(asyncio_runtime_block_on(rt, &ping_pong_vt, s, NULL));
    double ns = (double)(now_ns() - t0) / (double)(s->rounds * g_pp_reps);
    pthread_mutex_destroy(&s->h.m);
    free(s);
    return ns;
}

/* ---- ping_pong_chan: two mpsc channels of capacity 1 ------------------------- */

/*
 * Player 0 receives v on its channel and sends v + 1 to player 1, which sends
 * it back; one round trip per value. Each player owns its receiver and the
 * sender to the other, and releases them in its drop.
 */
typedef struct chan_player {
    asyncio_mpsc_receiver *rx;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_recv recv;
    asyncio_mpsc_send send; /* stays put once polled: it lives in the task block */
    long msg;               /* the element `send` borrows */
    long rounds;
    int me;
    bool sending;
} chan_player;

static int chan_player_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    chan_player *p = state;
    for (;;) {
        if (p->sending) {
            int rc = asyncio_mpsc_send_poll(&p->send, cx);
            if (rc == ASYNCIO_PENDING)
                return rc;
            CHECK(rc);
            p->sending = false;
            if (p->me == 1 && p->msg >= p->rounds)
                return 0; /* echoed the last one */
        }
        long v;
        int rc = asyncio_mpsc_recv_poll(&p->recv, cx, &v);
        if (rc == ASYNCIO_PENDING)
            return rc;
        CHECK(rc);
        if (p->me == 0 && v >= p->rounds)
            return 0; /* the last round trip came back */
        p->msg = p->me == 0 ? v + 1 : v;
        asyncio_mpsc_send_init(&p->send, p->tx, &p->msg);
        p->sending = true;
    }
}

static void chan_player_drop(void *state)
{
    chan_player *p = state;
    if (p->sending)
        asyncio_mpsc_send_drop(&p->send);
    asyncio_mpsc_recv_drop(&p->recv);
    asyncio_mpsc_receiver_drop(p->rx);
    asyncio_mpsc_sender_drop(p->tx);
}

static const asyncio_task_vtable chan_player_vt = {chan_player_poll, chan_player_drop, NULL,
                                                   sizeof(chan_player), 0};

typedef struct chan_pp {
    long rounds;
    asyncio_join_handle *jh[2];
    bool spawned;
} chan_pp;

static int chan_pp_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    chan_pp *s = state;
    if (!s->spawned) {
        asyncio_mpsc_sender *tx[2];
        asyncio_mpsc_receiver *rx[2];
        for (int i = 0; i < 2; i++)
            CHECK(asyncio_mpsc_channel(&tx[i], &rx[i], sizeof(long), 1));
        long first = 0; /* player 0 starts with round 0 */
        CHECK(asyncio_mpsc_try_send(tx[0], &first));
        for (int i = 0; i < 2; i++) {
            chan_player p = {.rx = rx[i], .tx = tx[1 - i], .rounds = s->rounds, .me = i};
            asyncio_mpsc_recv_init(&p.recv, rx[i]);
            CHECK(asyncio_spawn(asyncio_runtime_current(), &chan_player_vt, &p, &s->jh[i]));
        }
        s->spawned = true;
    }
    for (int i = 0; i < 2; i++) {
        if (s->jh[i] == NULL)
            continue;
        int rc = asyncio_join_handle_poll(s->jh[i], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        CHECK(rc);
        asyncio_join_handle_drop(s->jh[i]);
        s->jh[i] = NULL;
    }
    return 0;
}

static const asyncio_task_vtable chan_pp_vt = {chan_pp_poll, NULL, NULL, sizeof(chan_pp), 0};

static double run_ping_pong_chan(asyncio_runtime *rt)
{
    chan_pp s = {.rounds = scaled(1000) * g_pp_reps};
    uint64_t t0 = now_ns();
    CHECK(asyncio_runtime_block_on(rt, &chan_pp_vt, &s, NULL));
    return (double)(now_ns() - t0) / (double)s.rounds;
}

/* ---- chained_spawn ------------------------------------------------------------ */

typedef struct chain {
    long depth;
    handoff *done; /* the last link sends to the root (slot 0) */
} chain;

static const asyncio_task_vtable chain_vt;

static int chain_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    (void)output;
    chain *c = state;
    if (c->depth == 0) {
        handoff_send(c->done, 0, 1);
        return 0;
    }
    chain next = {c->depth - 1, c->done};
    CHECK(asyncio_spawn(asyncio_runtime_current(), &chain_vt, &next, NULL));
    return 0;
}

static const asyncio_task_vtable chain_vt = {chain_poll, NULL, NULL, sizeof(chain), 0};

typedef struct chain_root {
    handoff h;
    long depth;
    int reps_left;
    bool started;
} chain_root;

static int chain_root_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    chain_root *r = state;
    for (;;) {
        if (!r->started) {
            if (r->reps_left == 0)
                return 0;
            r->h.value[0] = -1;
            chain c = {r->depth, &r->h};
            CHECK(asyncio_spawn(asyncio_runtime_current(), &chain_vt, &c, NULL));
            r->started = true;
        }
        long v;
        if (!handoff_recv(&r->h, 0, cx, &v))
            return ASYNCIO_PENDING;
        r->started = false;
        r->reps_left--;
    }
}

static const asyncio_task_vtable chain_root_vt = {chain_root_poll, NULL, NULL, sizeof(chain_root),
                                                  0};

static double run_chained_spawn(asyncio_runtime *rt)
{
    chain_root *r = calloc(1, sizeof *r);
    if (r == NULL)
        exit(1);
    pthread_mutex_init(&r->h.m, NULL);
    r->depth = scaled(1000);
    r->reps_left = g_pp_reps;
    uint64_t t0 = now_ns();
    CHECK(asyncio_runtime_block_on(rt, &chain_root_vt, r, NULL));
    double ns = (double)(now_ns() - t0) / (double)(r->depth * g_pp_reps);
    pthread_mutex_destroy(&r->h.m);
    free(r);
    return ns;
}

/* ---- driver ------------------------------------------------------------------------ */

typedef struct bench {
    const char *name;
    const char *unit;
    double (*run)(asyncio_runtime *rt);
} bench;

static const bench g_benches[] = {
    {"spawn_many", "ns/task", run_spawn_many},
    {"yield_many", "ns/yield", run_yield_many},
    {"ping_pong", "ns/round trip", run_ping_pong},
    {"chained_spawn", "ns/spawn", run_chained_spawn},
    {"ping_pong_chan", "ns/round trip", run_ping_pong_chan},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static asyncio_runtime *make_runtime(bool mt)
{
    asyncio_runtime_options o = {0};
    if (mt) {
        o.flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
        o.workers = 2;
    }
    asyncio_runtime *rt;
    CHECK(asyncio_runtime_new(&rt, &o));
    return rt;
}

#define MAX_REPS 101

int main(int argc, char **argv)
{
    int reps = 5;
    bool warmup = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            g_scale = atol(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--pp-reps") == 0 && i + 1 < argc)
            g_pp_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0)
            warmup = true;
        else {
            fprintf(stderr,
                    "usage: %s [--reps N] [--scale PERCENT] [--only NAME] [--pp-reps N] "
                    "[--warmup]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || g_scale < 1 || g_pp_reps < 1)
        return 2;
    printf("%-14s %-16s %14s %24s\n", "benchmark", "runtime", "median", "spread (min..max)");
    for (size_t b = 0; b < sizeof g_benches / sizeof g_benches[0]; b++) {
        if (only != NULL && strcmp(only, g_benches[b].name) != 0)
            continue;
        for (int mt = 1; mt >= 0; mt--) {
            double v[MAX_REPS];
            asyncio_runtime *shared = NULL;
            if (warmup) {
                shared = make_runtime(mt);
                (void)g_benches[b].run(shared);
            }
            for (int r = 0; r < reps; r++) {
                asyncio_runtime *rt = shared != NULL ? shared : make_runtime(mt);
                v[r] = g_benches[b].run(rt);
                if (shared == NULL)
                    CHECK(asyncio_runtime_free(rt));
            }
            if (shared != NULL)
                CHECK(asyncio_runtime_free(shared));
            qsort(v, (size_t)reps, sizeof v[0], cmp_double);
            printf("%-14s %-16s %10.1f %-3s %10.1f..%-10.1f %s\n", g_benches[b].name,
                   mt ? "multi-thread(2)" : "current-thread", v[reps / 2], "", v[0], v[reps - 1],
                   g_benches[b].unit);
            fflush(stdout);
        }
    }
    return 0;
}

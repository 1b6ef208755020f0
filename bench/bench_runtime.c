/*
 * bench_runtime: runtime micro-benchmarks, libasyncio against libuv's
 * nearest counterparts, in one process (timers: one fresh child process per
 * measurement).
 *
 *   spawn   N trivial tasks (poll returns 0 at once, output an int) spawned
 *           from a main task that keeps their JoinHandles, then joins each in
 *           order and drops it: ns per task.
 *           libuv has no tasks; its nearest "schedule a callback and run it"
 *           is a malloc'd uv_timer_t with timeout 0: malloc + init + start,
 *           uv_run until every callback ran, uv_close + free in the close
 *           callback: ns per callback.
 *   yield   T tasks each yielding Y times (asyncio_yield), main joins all:
 *           ns per yield. libuv: T uv_idle_t handles, each counting Y
 *           callbacks, then stopping (one idle callback = one yield).
 *   timers  N timers with deadlines uniformly random in [1, D] ms (seeded,
 *           the same sequence on both sides), real clock. libasyncio: one
 *           task per timer (asyncio_sleep_init_until(now + d)), which on
 *           completion records lateness = asyncio_time_now_ms() - deadline.
 *           libuv: N malloc'd uv_timer_t, uv_timer_start(d) after
 *           uv_update_time, lateness = uv_now() (after uv_update_time) -
 *           deadline in the callback. Reported: wall time, setup time,
 *           lateness (all timers, and "steady": deadline after setup ended),
 *           early fires (must be 0), peak RSS and bytes per timer. Each
 *           measurement runs in a fresh child (fork + exec of this binary
 *           with --child) so peak RSS never mixes between implementations.
 *   combinators  libasyncio only (no libuv peer): ns per poll of a pending
 *           read (a Unix stream with nothing to read) polled directly and
 *           through asyncio_timeout; of a "ping" future (pending, wakes its
 *           waker on every poll: one readiness event per poll) polled
 *           directly and as child 0 of an asyncio_select over 2 futures (the
 *           other a pending read, never woken, so never re-polled). The
 *           differences are what the combinators add per poll. Also the
 *           allocations during the polling loops (expected 0).
 *   allocs  libasyncio only, a separate run with a counting allocator
 *           (asyncio_set_allocator): allocations per spawned task (expected
 *           1: the task block), per yield (expected 0), per timer (expected
 *           1: its task block; the sleep allocates nothing).
 *
 * Reps are interleaved (asyncio, libuv, asyncio, ...); every call's result
 * is checked, and a watchdog (SIGALRM every 10 s) ends a run that stops
 * making progress with exit status 3.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "asyncio/adapt.h"
#include "asyncio/alloc.h"
#include "asyncio/error.h"
#include "asyncio/future.h"
#include "asyncio/runtime.h"
#include "asyncio/task.h"
#include "asyncio/time.h"
#include "asyncio/unix.h"

#define DEFAULT_SPAWN        1000000
#define DEFAULT_YIELD_TASKS  200
#define DEFAULT_YIELDS       1000
#define DEFAULT_TIMERS       1000000
#define DEFAULT_MAX_DEADLINE 1000
#define DEFAULT_REPS         5
#define DEFAULT_TIMER_REPS   3
#define DEFAULT_POLLS        2000000
#define ALLOC_SPAWN          100000 /* the counting run is smaller: counts, not time */
#define ALLOC_TIMERS         10000
#define ALLOC_MAX_DEADLINE   50
#define LAT_BUCKETS          65536 /* lateness histogram, 1 ms per bucket, last = overflow */
#define WATCHDOG_S           10

enum bench {
    B_SPAWN_ASYNCIO,
    B_SPAWN_LIBUV,
    B_YIELD_ASYNCIO,
    B_YIELD_LIBUV,
    B_TIMERS_ASYNCIO,
    B_TIMERS_LIBUV,
    B_ALLOCS,
    B_COMBINATORS,
    B_COUNT
};

static const char *const g_bench_opt[B_COUNT] = {"spawn-asyncio", "spawn-libuv",    "yield-asyncio",
                                                 "yield-libuv",   "timers-asyncio", "timers-libuv",
                                                 "allocs",        "combinators"};

typedef struct options {
    size_t spawn;
    size_t yield_tasks;
    size_t yields;
    size_t timers;
    size_t max_deadline;
    size_t reps;
    size_t timer_reps;
    size_t polls;
    uint64_t seed;
    bool run[B_COUNT];
    int child; /* -1, or B_TIMERS_ASYNCIO / B_TIMERS_LIBUV: run one measurement, print it */
} options;

/*
 * One timers measurement (a child prints it, the parent parses it). Lateness
 * is in ms of the implementation's clock (fire time - deadline). Window w
 * holds the timers whose deadline lies w * max_deadline / 10 ms or more
 * after the first timer was created (the last window: everything later).
 */
#define NWIN 12
enum timer_field {
    R_P50,                          /* lateness percentiles (ms), all timers: median */
    R_P99,                          /* 99th percentile */
    R_MAX,                          /* maximum */
    R_WITHIN1,                      /* timers fired at most 1 ms late */
    R_EARLY,                        /* timers fired before their deadline: must be 0 */
    R_BASE_KB,                      /* VmRSS before the first timer */
    R_PEAK_KB,                      /* VmHWM at the end */
    R_MAXRSS_KB,                    /* getrusage ru_maxrss at the end */
    R_WIN_MAX,                      /* NWIN maxima of lateness by deadline window (-1: empty) */
    R_WIN_COUNT = R_WIN_MAX + NWIN, /* NWIN timer counts by deadline window */
    R_COUNT = R_WIN_COUNT + NWIN
};

typedef struct timer_result {
    double wall_ms;  /* first timer created .. last one fired */
    double setup_ms; /* first timer created .. last one armed */
    long long v[R_COUNT];
} timer_result;

/* ------------------------------------------------------------------------ */
/* Errors and the watchdog                                                   */

static void die_errno(const char *what)
{
    fprintf(stderr, "bench_runtime: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void die_msg(const char *msg, long long a, long long b)
{
    fprintf(stderr, "bench_runtime: %s (%lld, %lld)\n", msg, a, b);
    exit(1);
}

static void check_asyncio(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_runtime: %s: %s (%s)\n", what, asyncio_strerror(rc),
                asyncio_err_name(rc));
        exit(1);
    }
}

static void check_uv(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_runtime: %s: %s (%s)\n", what, uv_strerror(rc), uv_err_name(rc));
        exit(1);
    }
}

/*
 * Every g_watchdog_s seconds (WATCHDOG_S; a timers child adds its longest
 * deadline, so sparse long timers are not mistaken for a hang) SIGALRM checks
 * that some task / callback made progress since the last tick (g_progress,
 * set by every side); if none did, a wake-up was lost, so it says so and
 * exits with status 3.
 */
static volatile sig_atomic_t g_progress = 1;
static unsigned g_watchdog_s = WATCHDOG_S;

static void on_watchdog(int sig)
{
    (void)sig;
    if (g_progress) {
        g_progress = 0;
        alarm(g_watchdog_s);
        return;
    }
    static const char msg[] =
        "bench_runtime: watchdog: no progress for a whole watchdog period (lost wake-up?)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

static void start_watchdog(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) < 0)
        die_errno("sigaction(SIGALRM)");
    g_progress = 1;
    alarm(g_watchdog_s);
}

static double now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        die_errno("clock_gettime");
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die_errno("calloc");
    return p;
}

/* Runs a task to completion on a fresh current-thread runtime. */
static void run_main_task(const asyncio_task_vtable *vt, const void *init)
{
    asyncio_runtime *rt = NULL;
    check_asyncio(asyncio_runtime_new(&rt, NULL), "asyncio_runtime_new");
    check_asyncio(asyncio_runtime_block_on(rt, vt, init, NULL), "asyncio_runtime_block_on");
    check_asyncio(asyncio_runtime_free(rt), "asyncio_runtime_free");
}

/* ------------------------------------------------------------------------ */
/* Counting allocator (the allocs run only)                                  */

typedef struct alloc_counts {
    atomic_size_t mallocs;  /* new blocks (malloc, realloc of NULL) */
    atomic_size_t reallocs; /* resizes of an existing block */
    atomic_size_t frees;
} alloc_counts;

static alloc_counts g_allocs;

static void *count_malloc(void *ctx, size_t size)
{
    (void)ctx;
    atomic_fetch_add_explicit(&g_allocs.mallocs, 1, memory_order_relaxed);
    return malloc(size);
}

static void *count_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    atomic_fetch_add_explicit(ptr == NULL ? &g_allocs.mallocs : &g_allocs.reallocs, 1,
                              memory_order_relaxed);
    return realloc(ptr, size);
}

static void count_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL)
        atomic_fetch_add_explicit(&g_allocs.frees, 1, memory_order_relaxed);
    free(ptr);
}

/* Allocation events so far (new blocks + resizes): what "no allocation" forbids. */
static size_t alloc_events(void)
{
    return atomic_load(&g_allocs.mallocs) + atomic_load(&g_allocs.reallocs);
}

/* ------------------------------------------------------------------------ */
/* spawn: libasyncio                                                         */

/* The trivial task: returns at once, its output is its index. */
static int trivial_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    memcpy(output, state, sizeof(size_t));
    return 0;
}

static const asyncio_task_vtable g_trivial_vt = {trivial_poll, NULL, NULL, sizeof(size_t),
                                                 sizeof(size_t)};

typedef struct spawn_main {
    size_t n;
    size_t next; /* the next handle to join */
    bool spawned;
    asyncio_join_handle **jh; /* n handles */
    double t0, t1;            /* ns */
    size_t allocs_spawn_join; /* allocation events during the timed part */
} spawn_main;

static int spawn_main_poll(void *state, asyncio_context *cx, void *output)
{
    spawn_main *m = *(spawn_main **)state;
    (void)output;
    if (!m->spawned) { /* spawn all, keep the handles */
        m->allocs_spawn_join = alloc_events();
        m->t0 = now_ns();
        asyncio_runtime *rt = asyncio_runtime_current();
        for (size_t i = 0; i < m->n; i++)
            check_asyncio(asyncio_spawn(rt, &g_trivial_vt, &i, &m->jh[i]), "asyncio_spawn");
        m->spawned = true;
    }
    for (; m->next < m->n; m->next++) { /* join in order */
        size_t out = SIZE_MAX;
        int rc = asyncio_join_handle_poll(m->jh[m->next], cx, &out);
        if (rc == ASYNCIO_PENDING)
            return rc;
        check_asyncio(rc, "asyncio_join_handle_poll(trivial)");
        if (out != m->next)
            die_msg("spawn: wrong output", (long long)out, (long long)m->next);
        asyncio_join_handle_drop(m->jh[m->next]);
        g_progress = 1;
    }
    m->t1 = now_ns();
    m->allocs_spawn_join = alloc_events() - m->allocs_spawn_join;
    return 0;
}

static const asyncio_task_vtable g_spawn_main_vt = {spawn_main_poll, NULL, NULL,
                                                    sizeof(spawn_main *), 0};

/* Runs the spawn benchmark; returns ns per task, *allocs the allocation events. */
static double run_spawn_asyncio(size_t n, size_t *allocs)
{
    spawn_main m = {.n = n, .jh = xcalloc(n, sizeof(asyncio_join_handle *))};
    spawn_main *p = &m;
    run_main_task(&g_spawn_main_vt, &p);
    free(m.jh);
    if (allocs != NULL)
        *allocs = m.allocs_spawn_join;
    return (m.t1 - m.t0) / (double)n;
}

/* ------------------------------------------------------------------------ */
/* spawn: libuv (a malloc'd uv_timer_t of timeout 0 per "task")              */

typedef struct uv_item {
    uv_timer_t timer;
    size_t index;
} uv_item;

static size_t g_uv_ran;

static void uv_item_closed(uv_handle_t *h)
{
    free(h->data);
}

static void uv_item_fired(uv_timer_t *t)
{
    uv_item *it = t->data;
    if (it->index != g_uv_ran)
        die_msg("libuv spawn: callbacks out of order", (long long)it->index, (long long)g_uv_ran);
    g_uv_ran++;
    g_progress = 1;
    uv_close((uv_handle_t *)t, uv_item_closed);
}

static double run_spawn_libuv(size_t n)
{
    uv_loop_t loop;
    check_uv(uv_loop_init(&loop), "uv_loop_init");
    g_uv_ran = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        uv_item *it = malloc(sizeof *it);
        if (it == NULL)
            die_errno("malloc(uv_item)");
        check_uv(uv_timer_init(&loop, &it->timer), "uv_timer_init");
        it->timer.data = it;
        it->index = i;
        check_uv(uv_timer_start(&it->timer, uv_item_fired, 0, 0), "uv_timer_start");
    }
    check_uv(uv_run(&loop, UV_RUN_DEFAULT), "uv_run");
    double t1 = now_ns();
    if (g_uv_ran != n)
        die_msg("libuv spawn: callbacks missing", (long long)g_uv_ran, (long long)n);
    check_uv(uv_loop_close(&loop), "uv_loop_close");
    return (t1 - t0) / (double)n;
}

/* ------------------------------------------------------------------------ */
/* yield: libasyncio                                                         */

typedef struct yielder {
    asyncio_yield y;
    size_t left;
} yielder;

static int yielder_poll(void *state, asyncio_context *cx, void *output)
{
    yielder *w = state;
    (void)output;
    while (w->left > 0) {
        int rc = asyncio_yield_poll(&w->y, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        check_asyncio(rc, "asyncio_yield_poll");
        w->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        w->left--;
    }
    g_progress = 1;
    return 0;
}

static const asyncio_task_vtable g_yielder_vt = {yielder_poll, NULL, NULL, sizeof(yielder), 0};

typedef struct yield_main {
    size_t tasks, yields;
    size_t next;
    bool spawned;
    asyncio_join_handle **jh;
    double t0, t1;
    size_t allocs_spawn; /* allocation events while spawning the workers */
    size_t allocs_run;   /* ... after that, until all joined: the yields */
} yield_main;

static void yield_spawn_all(yield_main *m)
{
    size_t a0 = alloc_events();
    m->t0 = now_ns();
    asyncio_runtime *rt = asyncio_runtime_current();
    yielder init = {ASYNCIO_YIELD_INIT, m->yields};
    for (size_t i = 0; i < m->tasks; i++)
        check_asyncio(asyncio_spawn(rt, &g_yielder_vt, &init, &m->jh[i]), "asyncio_spawn");
    m->allocs_spawn = alloc_events() - a0;
    m->allocs_run = alloc_events();
    m->spawned = true;
}

static int yield_main_poll(void *state, asyncio_context *cx, void *output)
{
    yield_main *m = *(yield_main **)state;
    (void)output;
    if (!m->spawned)
        yield_spawn_all(m);
    for (; m->next < m->tasks; m->next++) {
        int rc = asyncio_join_handle_poll(m->jh[m->next], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        check_asyncio(rc, "asyncio_join_handle_poll(yielder)");
        asyncio_join_handle_drop(m->jh[m->next]);
    }
    m->t1 = now_ns();
    m->allocs_run = alloc_events() - m->allocs_run;
    return 0;
}

static const asyncio_task_vtable g_yield_main_vt = {yield_main_poll, NULL, NULL,
                                                    sizeof(yield_main *), 0};

/* Returns ns per yield; *m_out (if non-NULL) gets the allocation counts. */
static double run_yield_asyncio(size_t tasks, size_t yields, yield_main *m_out)
{
    yield_main m = {
        .tasks = tasks, .yields = yields, .jh = xcalloc(tasks, sizeof(asyncio_join_handle *))};
    yield_main *p = &m;
    run_main_task(&g_yield_main_vt, &p);
    free(m.jh);
    if (m_out != NULL)
        *m_out = m;
    return (m.t1 - m.t0) / (double)(tasks * yields);
}

/* ------------------------------------------------------------------------ */
/* yield: libuv (uv_idle_t, one callback = one yield)                        */

typedef struct uv_yielder {
    uv_idle_t idle;
    size_t left;
} uv_yielder;

static void uv_yielder_cb(uv_idle_t *h)
{
    uv_yielder *w = (uv_yielder *)h;
    if (--w->left == 0) {
        check_uv(uv_idle_stop(h), "uv_idle_stop");
        g_progress = 1;
    }
}

static double run_yield_libuv(size_t tasks, size_t yields)
{
    uv_loop_t loop;
    uv_yielder *w = xcalloc(tasks, sizeof *w);
    check_uv(uv_loop_init(&loop), "uv_loop_init");
    double t0 = now_ns();
    for (size_t i = 0; i < tasks; i++) {
        check_uv(uv_idle_init(&loop, &w[i].idle), "uv_idle_init");
        w[i].left = yields;
        check_uv(uv_idle_start(&w[i].idle, uv_yielder_cb), "uv_idle_start");
    }
    check_uv(uv_run(&loop, UV_RUN_DEFAULT), "uv_run");
    double t1 = now_ns();
    for (size_t i = 0; i < tasks; i++) {
        if (w[i].left != 0)
            die_msg("libuv yield: idle handle stopped early", (long long)i, (long long)w[i].left);
        uv_close((uv_handle_t *)&w[i].idle, NULL);
    }
    check_uv(uv_run(&loop, UV_RUN_DEFAULT), "uv_run(close)");
    check_uv(uv_loop_close(&loop), "uv_loop_close");
    free(w);
    return (t1 - t0) / (double)(tasks * yields);
}

/* ------------------------------------------------------------------------ */
/* timers: shared bookkeeping                                                */

/* Deadlines in [1, max] ms: xorshift64, the same sequence on every side. */
static uint32_t next_deadline(uint64_t *s, size_t max)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (uint32_t)(1 + x % max);
}

typedef struct timer_stats {
    size_t n, fired;
    uint64_t t0_ms;  /* clock when the first timer was created */
    uint64_t win_ms; /* width of a deadline window */
    long long early;
    uint32_t *hist; /* lateness histogram (LAT_BUCKETS, 1 ms each, last = overflow) */
    long long win_max[NWIN], win_count[NWIN];
} timer_stats;

static timer_stats g_ts;

static void timer_stats_init(size_t n, size_t max_deadline)
{
    free(g_ts.hist);
    g_ts = (timer_stats){.n = n, .win_ms = max_deadline >= 10 ? max_deadline / 10 : 1};
    g_ts.hist = xcalloc(LAT_BUCKETS, sizeof(uint32_t));
    for (size_t w = 0; w < NWIN; w++)
        g_ts.win_max[w] = -1;
}

/* One timer fired at `now` (ms) for `deadline`. */
static void timer_record(uint64_t now, uint64_t deadline)
{
    if (now < deadline) {
        g_ts.early++;
        fprintf(stderr, "bench_runtime: EARLY timer: fired at %llu, deadline %llu\n",
                (unsigned long long)now, (unsigned long long)deadline);
    }
    long long late = now >= deadline ? (long long)(now - deadline) : 0;
    g_ts.hist[late < LAT_BUCKETS ? late : LAT_BUCKETS - 1]++;
    uint64_t w = deadline > g_ts.t0_ms ? (deadline - g_ts.t0_ms) / g_ts.win_ms : 0;
    w = w < NWIN ? w : NWIN - 1;
    g_ts.win_count[w]++;
    if (late > g_ts.win_max[w])
        g_ts.win_max[w] = late;
    g_ts.fired++;
    g_progress = 1;
}

/* Percentile q (0..1] of a histogram with `count` entries, in ms (-1 if empty). */
static long long hist_pct(const uint32_t *h, size_t count, double q)
{
    if (count == 0)
        return -1;
    size_t want = (size_t)(q * (double)count + 0.999999), seen = 0;
    if (want == 0)
        want = 1;
    for (size_t b = 0; b < LAT_BUCKETS; b++) {
        seen += h[b];
        if (seen >= want)
            return (long long)b;
    }
    return LAT_BUCKETS - 1;
}

/* Reads a "Key:   123 kB" line of /proc/self/status (kB), or -1. */
static long long proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoll(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static void timer_finish(timer_result *r, double t0, double t_setup, double t1, long long base_kb)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        die_errno("getrusage");
    if (g_ts.fired != g_ts.n)
        die_msg("timers: not all fired", (long long)g_ts.fired, (long long)g_ts.n);
    *r = (timer_result){.wall_ms = (t1 - t0) / 1e6, .setup_ms = (t_setup - t0) / 1e6};
    r->v[R_P50] = hist_pct(g_ts.hist, g_ts.n, 0.50);
    r->v[R_P99] = hist_pct(g_ts.hist, g_ts.n, 0.99);
    r->v[R_MAX] = hist_pct(g_ts.hist, g_ts.n, 1.0);
    r->v[R_WITHIN1] = (long long)g_ts.hist[0] + g_ts.hist[1];
    r->v[R_EARLY] = g_ts.early;
    r->v[R_BASE_KB] = base_kb;
    r->v[R_PEAK_KB] = proc_status_kb("VmHWM");
    r->v[R_MAXRSS_KB] = ru.ru_maxrss;
    for (size_t w = 0; w < NWIN; w++) {
        r->v[R_WIN_MAX + w] = g_ts.win_max[w];
        r->v[R_WIN_COUNT + w] = g_ts.win_count[w];
    }
}

/* ------------------------------------------------------------------------ */
/* timers: libasyncio (one task per timer)                                   */

typedef struct timer_task {
    asyncio_sleep sleep;
    uint64_t deadline; /* absolute, runtime clock (ms) */
    uint32_t delay;    /* ms after arming */
    bool armed;
    bool last; /* the last task spawned: its arming ends the setup phase */
} timer_task;

/* The main task waits on this; the last timer to fire wakes it. */
static asyncio_waker g_timers_main_waker;
static double g_setup_end_ns;

static void timer_task_arm(timer_task *t)
{
    uint64_t now = asyncio_time_now_ms();
    t->deadline = now + t->delay;
    asyncio_sleep_init_until(&t->sleep, t->deadline);
    t->armed = true;
    if (t->last) /* tasks run their first poll in spawn order */
        g_setup_end_ns = now_ns();
}

static int timer_task_poll(void *state, asyncio_context *cx, void *output)
{
    timer_task *t = state;
    (void)output;
    if (!t->armed)
        timer_task_arm(t);
    int rc = asyncio_sleep_poll(&t->sleep, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    check_asyncio(rc, "asyncio_sleep_poll");
    timer_record(asyncio_time_now_ms(), t->deadline);
    if (g_ts.fired == g_ts.n)
        asyncio_waker_wake(&g_timers_main_waker);
    return 0;
}

static void timer_task_drop(void *state)
{
    timer_task *t = state;
    asyncio_sleep_drop(&t->sleep);
}

static const asyncio_task_vtable g_timer_task_vt = {timer_task_poll, timer_task_drop, NULL,
                                                    sizeof(timer_task), 0};

typedef struct timers_main {
    size_t n, max_deadline;
    uint64_t seed;
    bool spawned;
    double t0, t1;
    long long base_kb;
    size_t allocs; /* allocation events from the first spawn to the last fire */
} timers_main;

static void timers_spawn_all(timers_main *m)
{
    asyncio_runtime *rt = asyncio_runtime_current();
    uint64_t s = m->seed;
    m->base_kb = proc_status_kb("VmRSS");
    m->allocs = alloc_events();
    g_ts.t0_ms = asyncio_time_now_ms();
    m->t0 = now_ns();
    for (size_t i = 0; i < m->n; i++) {
        timer_task init = {.delay = next_deadline(&s, m->max_deadline), .last = i + 1 == m->n};
        check_asyncio(asyncio_spawn(rt, &g_timer_task_vt, &init, NULL), "asyncio_spawn(timer)");
    }
    m->spawned = true;
}

static int timers_main_poll(void *state, asyncio_context *cx, void *output)
{
    timers_main *m = *(timers_main **)state;
    (void)output;
    if (!m->spawned)
        timers_spawn_all(m);
    if (g_ts.fired < g_ts.n) {
        asyncio_waker_store(&g_timers_main_waker, cx->waker);
        return ASYNCIO_PENDING;
    }
    m->t1 = now_ns();
    m->allocs = alloc_events() - m->allocs;
    asyncio_waker_drop(&g_timers_main_waker);
    return 0;
}

static const asyncio_task_vtable g_timers_main_vt = {timers_main_poll, NULL, NULL,
                                                     sizeof(timers_main *), 0};

static void run_timers_asyncio(const options *o, size_t n, size_t max_deadline, timer_result *r,
                               size_t *allocs)
{
    timer_stats_init(n, max_deadline);
    timers_main m = {.n = n, .max_deadline = max_deadline, .seed = o->seed};
    timers_main *p = &m;
    asyncio_runtime *rt = NULL;
    check_asyncio(asyncio_runtime_new(&rt, NULL), "asyncio_runtime_new");
    check_asyncio(asyncio_runtime_block_on(rt, &g_timers_main_vt, &p, NULL),
                  "asyncio_runtime_block_on(timers)");
    timer_finish(r, m.t0, g_setup_end_ns, m.t1, m.base_kb);
    check_asyncio(asyncio_runtime_free(rt), "asyncio_runtime_free");
    if (allocs != NULL)
        *allocs = m.allocs;
}

/* ------------------------------------------------------------------------ */
/* timers: libuv (one malloc'd uv_timer_t per timer)                         */

typedef struct uv_deadline_timer {
    uv_timer_t timer;
    uint64_t deadline; /* uv_now() clock (ms) */
} uv_deadline_timer;

static void uv_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void uv_deadline_fired(uv_timer_t *t)
{
    uv_deadline_timer *dt = (uv_deadline_timer *)t;
    uv_update_time(t->loop);
    timer_record(uv_now(t->loop), dt->deadline);
    uv_close((uv_handle_t *)t, uv_timer_closed);
}

static void run_timers_libuv(const options *o, timer_result *r)
{
    uv_loop_t loop;
    uint64_t s = o->seed;
    timer_stats_init(o->timers, o->max_deadline);
    check_uv(uv_loop_init(&loop), "uv_loop_init");
    long long base_kb = proc_status_kb("VmRSS");
    uv_update_time(&loop);
    g_ts.t0_ms = uv_now(&loop);
    double t0 = now_ns();
    for (size_t i = 0; i < o->timers; i++) {
        uv_deadline_timer *dt = malloc(sizeof *dt);
        if (dt == NULL)
            die_errno("malloc(uv_deadline_timer)");
        uint32_t d = next_deadline(&s, o->max_deadline);
        check_uv(uv_timer_init(&loop, &dt->timer), "uv_timer_init");
        uv_update_time(&loop); /* a fresh "now", as the asyncio side reads at arming */
        dt->deadline = uv_now(&loop) + d;
        check_uv(uv_timer_start(&dt->timer, uv_deadline_fired, d, 0), "uv_timer_start");
    }
    double t_setup = now_ns();
    check_uv(uv_run(&loop, UV_RUN_DEFAULT), "uv_run");
    double t1 = now_ns();
    timer_finish(r, t0, t_setup, t1, base_kb);
    check_uv(uv_loop_close(&loop), "uv_loop_close");
}

/* ------------------------------------------------------------------------ */
/* timers: child processes                                                   */

static void print_result(const timer_result *r)
{
    printf("timers-result %.3f %.3f", r->wall_ms, r->setup_ms);
    for (size_t k = 0; k < R_COUNT; k++)
        printf(" %lld", r->v[k]);
    printf("\n");
}

/* Parses print_result's line; false if it is malformed. */
static bool parse_result(const char *line, timer_result *r)
{
    const char *tag = "timers-result ";
    if (strncmp(line, tag, strlen(tag)) != 0)
        return false;
    char *p = (char *)line + strlen(tag), *end;
    r->wall_ms = strtod(p, &end);
    r->setup_ms = strtod(end, &p);
    if (p == end)
        return false;
    for (size_t k = 0; k < R_COUNT; k++, p = end) {
        r->v[k] = strtoll(p, &end, 10);
        if (end == p)
            return false;
    }
    return *p == '\n';
}

/* --child: one measurement in this (fresh) process, printed on stdout. */
static int child_main(const options *o)
{
    timer_result r;
    g_watchdog_s = WATCHDOG_S + (unsigned)((o->max_deadline + 999) / 1000);
    start_watchdog();
    if (o->child == B_TIMERS_ASYNCIO)
        run_timers_asyncio(o, o->timers, o->max_deadline, &r, NULL);
    else
        run_timers_libuv(o, &r);
    alarm(0);
    print_result(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Runs `exe --child <impl> ...` with stdout on a pipe; parses its result. */
static void run_timers_child(const options *o, int impl, timer_result *r)
{
    char timers[32], maxd[32], seed[32];
    snprintf(timers, sizeof timers, "%zu", o->timers);
    snprintf(maxd, sizeof maxd, "%zu", o->max_deadline);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    char *argv[] = {"/proc/self/exe",
                    "--child",
                    (char *)g_bench_opt[impl],
                    "--timers",
                    timers,
                    "--max-deadline",
                    maxd,
                    "--seed",
                    seed,
                    NULL};
    int fd[2];
    if (pipe(fd) < 0)
        die_errno("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die_errno("fork");
    if (pid == 0) {
        if (dup2(fd[1], STDOUT_FILENO) < 0)
            _exit(126);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    if (f == NULL)
        die_errno("fdopen");
    char line[512] = "";
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die_errno("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_runtime: child %s failed (status 0x%x)\n", g_bench_opt[impl],
                status);
        exit(WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 3 : 1);
    }
    if (got == NULL || !parse_result(line, r))
        die_msg("child printed no result", (long long)impl, 0);
}

/* ------------------------------------------------------------------------ */
/* Statistics and report                                                     */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place; median of an even count is the mean of the middle two. */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double print_row(const char *name, double *v, size_t n)
{
    double med = median(v, n);
    printf("%-40s %12.1f %10.1f %10.1f\n", name, med, v[0], v[n - 1]);
    return med;
}

static void report_pair(const char *what, const char *an, double *a, bool ra, const char *ln,
                        double *l, bool rl, size_t reps)
{
    double ma = 0, ml = 0;
    if (ra)
        ma = print_row(an, a, reps);
    if (rl)
        ml = print_row(ln, l, reps);
    if (ra && rl)
        printf("ratio %s asyncio/libuv (median): %.2f\n", what, ma / ml);
}

/* Median over the reps of f(result). */
static double timer_median(const timer_result *res, size_t reps, double (*f)(const timer_result *))
{
    double v[64];
    size_t n = reps < 64 ? reps : 64;
    for (size_t i = 0; i < n; i++)
        v[i] = f(&res[i]);
    return median(v, n);
}

static double tr_wall(const timer_result *r)
{
    return r->wall_ms;
}
static double tr_setup(const timer_result *r)
{
    return r->setup_ms;
}
static double tr_peak_mb(const timer_result *r)
{
    return (double)r->v[R_PEAK_KB] / 1024.0;
}
static double tr_p50(const timer_result *r)
{
    return (double)r->v[R_P50];
}

/* The largest value of field k over the reps. */
static long long worst(const timer_result *res, size_t reps, size_t k)
{
    long long w = LLONG_MIN;
    for (size_t i = 0; i < reps; i++)
        w = res[i].v[k] > w ? res[i].v[k] : w;
    return w;
}

static void print_timer_row(const char *name, const timer_result *res, size_t reps, size_t n)
{
    double wall[64], bytes[64], within[64];
    size_t k = reps < 64 ? reps : 64;
    for (size_t i = 0; i < k; i++) {
        wall[i] = res[i].wall_ms;
        bytes[i] = (double)(res[i].v[R_PEAK_KB] - res[i].v[R_BASE_KB]) * 1024.0 / (double)n;
        within[i] = 100.0 * (double)res[i].v[R_WITHIN1] / (double)n;
    }
    double med_wall = median(wall, k);
    median(within, k); /* sorts: within[0] is the lowest rep */
    double worst_within = within[0];
    printf("%-15s %7.0f %6.0f %6.0f %6.0f %4.0f %5lld %5lld %7.2f %5lld %7.1f %6.0f\n", name,
           med_wall, wall[0], wall[k - 1], timer_median(res, reps, tr_setup),
           timer_median(res, reps, tr_p50), worst(res, reps, R_P99), worst(res, reps, R_MAX),
           worst_within, worst(res, reps, R_EARLY), timer_median(res, reps, tr_peak_mb),
           median(bytes, k));
}

static void print_window_row(const char *name, const timer_result *res, size_t reps)
{
    printf("%-15s", name);
    for (size_t w = 0; w < NWIN; w++)
        printf(" %5lld", worst(res, reps, R_WIN_MAX + w));
    printf("\n");
}

static void report_timer_windows(const options *o, timer_result *res[2])
{
    size_t win = o->max_deadline >= 10 ? o->max_deadline / 10 : 1;
    printf("max lateness (ms, worst rep) by deadline window: deadline - creation of the first "
           "timer, in %zu ms windows\n%-15s",
           win, "window from");
    for (size_t w = 0; w < NWIN; w++)
        printf(" %5zu", w * win);
    printf("\n");
    if (o->run[B_TIMERS_ASYNCIO])
        print_window_row("asyncio-sleep", res[0], o->timer_reps);
    if (o->run[B_TIMERS_LIBUV])
        print_window_row("libuv-uv_timer", res[1], o->timer_reps);
    printf("%-15s", "timers (rep 1)");
    const timer_result *first = o->run[B_TIMERS_ASYNCIO] ? res[0] : res[1];
    for (size_t w = 0; w < NWIN; w++)
        printf(" %5lld", first->v[R_WIN_COUNT + w]);
    printf("\n");
}

static void report_timers(const options *o, timer_result *res[2])
{
    size_t reps = o->timer_reps;
    printf("\ntimers: %zu timers, deadlines uniform in [1, %zu] ms after arming (seed %llu), "
           "real clock, %zu reps (interleaved, one fresh child process each)\n"
           "  asyncio: one task per timer (spawned detached; first poll: "
           "asyncio_sleep_init_until(now + d))\n"
           "  libuv:   one malloc'd uv_timer_t per timer (uv_update_time, uv_timer_start(d))\n"
           "  wall, setup (create + arm all), p50, peak_MB, B/tmr: median; p99, max, early: worst "
           "rep; <=1ms%%: lowest rep\n"
           "  peak = VmHWM of the child; B/tmr = (VmHWM - VmRSS before the first timer) / N\n",
           o->timers, o->max_deadline, (unsigned long long)o->seed, reps);
    printf("%-15s %7s %6s %6s %6s %4s %5s %5s %7s %5s %7s %6s\n", "impl", "wall_ms", "min", "max",
           "setup", "p50", "p99", "max", "<=1ms%", "early", "peak_MB", "B/tmr");
    if (o->run[B_TIMERS_ASYNCIO])
        print_timer_row("asyncio-sleep", res[0], reps, o->timers);
    if (o->run[B_TIMERS_LIBUV])
        print_timer_row("libuv-uv_timer", res[1], reps, o->timers);
    if (o->run[B_TIMERS_ASYNCIO] && o->run[B_TIMERS_LIBUV])
        printf("ratio timers asyncio/libuv (median): wall %.2f, setup %.2f, peak RSS %.2f\n",
               timer_median(res[0], reps, tr_wall) / timer_median(res[1], reps, tr_wall),
               timer_median(res[0], reps, tr_setup) / timer_median(res[1], reps, tr_setup),
               timer_median(res[0], reps, tr_peak_mb) / timer_median(res[1], reps, tr_peak_mb));
    report_timer_windows(o, res);
    printf("ru_maxrss (KB) per rep, asyncio/libuv:");
    for (size_t i = 0; i < reps; i++)
        printf(" %lld/%lld", o->run[B_TIMERS_ASYNCIO] ? res[0][i].v[R_MAXRSS_KB] : 0,
               o->run[B_TIMERS_LIBUV] ? res[1][i].v[R_MAXRSS_KB] : 0);
    printf("\n");
}

/* ------------------------------------------------------------------------ */
/* combinators: select over 2 futures, timeout over a read (libasyncio only)  */

enum { C_READ, C_TIMEOUT_READ, C_PING, C_SELECT_PING, C_KINDS };

/* Pending forever; wakes its waker on every poll, as if a readiness event arrived each time. */
static int ping_poll(void *state, asyncio_context *cx, void *out)
{
    (void)out;
    ++*(size_t *)state;
    asyncio_waker_wake_by_ref(cx->waker);
    return ASYNCIO_PENDING;
}

static const asyncio_future_vtable g_ping_vt = {ping_poll, NULL};

typedef struct comb_task {
    size_t polls;
    int kind;
    double ns;     /* out: per poll */
    size_t allocs; /* out: allocation events during the loop */
} comb_task;

/*
 * Polls one future `polls` times by hand inside a task (the runtime is
 * current: the read registers, the sleep binds), with a context whose
 * waker is the task's own (the ping's wakes only mark the task notified).
 */
static double poll_loop(asyncio_future *f, asyncio_context *cx, size_t polls, size_t *allocs)
{
    size_t a0 = alloc_events();
    double t0 = now_ns();
    for (size_t i = 0; i < polls; i++)
        if (asyncio_future_poll(f, cx) != ASYNCIO_PENDING)
            die_msg("combinators: a pending future finished", (long long)i, 0);
    double t1 = now_ns();
    *allocs = alloc_events() - a0;
    return (t1 - t0) / (double)polls;
}

/* The task's output is its own state, measured (the state itself is a copy). */
static int comb_poll(void *state, asyncio_context *cx, void *output)
{
    comb_task *c = state;
    asyncio_unix_stream a, b;
    check_asyncio(asyncio_unix_stream_pair(&a, &b), "asyncio_unix_stream_pair");
    char buf[64];
    size_t n, pings = 0;
    asyncio_read_op op;
    asyncio_future read =
        asyncio_read_future(&op, asyncio_unix_stream_reader(&a), buf, sizeof buf, &n);
    asyncio_future ping = asyncio_future_make(&g_ping_vt, &pings, NULL);
    asyncio_context quiet = *cx; /* no budget: a benchmark loop is not a task's fair share */
    quiet.coop = false;
    asyncio_timeout to;
    asyncio_select sel;
    asyncio_future kids[2];
    switch (c->kind) {
    case C_READ:
        c->ns = poll_loop(&read, &quiet, c->polls, &c->allocs);
        break;
    case C_TIMEOUT_READ: {
        asyncio_timeout_init_future(&to, read, 3600u * 1000);
        asyncio_future f = asyncio_timeout_future(&to);
        c->ns = poll_loop(&f, &quiet, c->polls, &c->allocs);
        asyncio_timeout_drop(&to);
        break;
    }
    case C_PING:
        c->ns = poll_loop(&ping, &quiet, c->polls, &c->allocs);
        break;
    default: {
        kids[0] = ping;
        kids[1] = read;
        check_asyncio(asyncio_select_init(&sel, kids, 2), "asyncio_select_init");
        asyncio_future f = asyncio_select_future(&sel, NULL);
        c->ns = poll_loop(&f, &quiet, c->polls, &c->allocs);
        asyncio_select_drop(&sel);
        if (pings != c->polls)
            die_msg("combinators: select polled its woken child", (long long)pings,
                    (long long)c->polls);
        break;
    }
    }
    asyncio_unix_stream_close(&a);
    asyncio_unix_stream_close(&b);
    memcpy(output, c, sizeof *c);
    return 0;
}

static const asyncio_task_vtable g_comb_vt = {comb_poll, NULL, NULL, sizeof(comb_task),
                                              sizeof(comb_task)};

/* One measurement: ns per poll (allocation events during the loop in *allocs). */
static double run_combinator(int kind, size_t polls, size_t *allocs)
{
    comb_task c = {.polls = polls, .kind = kind};
    asyncio_runtime *rt = NULL;
    check_asyncio(asyncio_runtime_new(&rt, NULL), "asyncio_runtime_new");
    check_asyncio(asyncio_runtime_block_on(rt, &g_comb_vt, &c, &c), "block_on");
    check_asyncio(asyncio_runtime_free(rt), "asyncio_runtime_free");
    *allocs = c.allocs;
    return c.ns;
}

static void bench_combinators(const options *o)
{
    if (!o->run[B_COMBINATORS])
        return;
    static const char *const names[C_KINDS] = {
        "comb   read (pending) poll (ns/poll)", "comb   timeout(read) poll",
        "comb   ping (poll + wake)", "comb   select(ping, read) poll"};
    double *v[C_KINDS];
    size_t allocs[C_KINDS] = {0};
    asyncio_allocator a = {count_malloc, count_realloc, count_free, NULL};
    check_asyncio(asyncio_set_allocator(&a), "asyncio_set_allocator");
    for (int k = 0; k < C_KINDS; k++)
        v[k] = xcalloc(o->reps, sizeof(double));
    for (size_t r = 0; r < o->reps; r++) {
        for (int k = 0; k < C_KINDS; k++) {
            size_t al;
            v[k][r] = run_combinator(k, o->polls, &al);
            allocs[k] += al;
        }
    }
    check_asyncio(asyncio_set_allocator(NULL), "asyncio_set_allocator(NULL)");
    printf("\ncombinators: %zu polls per measurement, %zu reps (interleaved)\n", o->polls, o->reps);
    printf("%-40s %12s %10s %10s\n", "bench / impl", "median ns/op", "min", "max");
    double med[C_KINDS];
    for (int k = 0; k < C_KINDS; k++)
        med[k] = print_row(names[k], v[k], o->reps);
    printf("added per poll (median): timeout over a read %.1f ns, select over 2 futures %.1f ns\n",
           med[C_TIMEOUT_READ] - med[C_READ], med[C_SELECT_PING] - med[C_PING]);
    printf("allocations during the polling loops: read %zu, timeout %zu, ping %zu, select %zu "
           "(expected 0)\n",
           allocs[C_READ], allocs[C_TIMEOUT_READ], allocs[C_PING], allocs[C_SELECT_PING]);
    for (int k = 0; k < C_KINDS; k++)
        free(v[k]);
}

/* ------------------------------------------------------------------------ */
/* The benchmarks, interleaved                                               */

static void bench_spawn_yield(const options *o)
{
    bool any_spawn = o->run[B_SPAWN_ASYNCIO] || o->run[B_SPAWN_LIBUV];
    bool any_yield = o->run[B_YIELD_ASYNCIO] || o->run[B_YIELD_LIBUV];
    if (!any_spawn && !any_yield)
        return;
    double *v[4];
    for (int k = 0; k < 4; k++)
        v[k] = xcalloc(o->reps, sizeof(double));
    for (size_t r = 0; r < o->reps; r++) {
        if (o->run[B_SPAWN_ASYNCIO])
            v[0][r] = run_spawn_asyncio(o->spawn, NULL);
        if (o->run[B_SPAWN_LIBUV])
            v[1][r] = run_spawn_libuv(o->spawn);
        if (o->run[B_YIELD_ASYNCIO])
            v[2][r] = run_yield_asyncio(o->yield_tasks, o->yields, NULL);
        if (o->run[B_YIELD_LIBUV])
            v[3][r] = run_yield_libuv(o->yield_tasks, o->yields);
    }
    printf("runtime: spawn+join %zu tasks; %zu tasks x %zu yields; %zu reps (interleaved)\n",
           o->spawn, o->yield_tasks, o->yields, o->reps);
    printf("%-40s %12s %10s %10s\n", "bench / impl", "median ns/op", "min", "max");
    if (any_spawn)
        report_pair("spawn", "spawn  asyncio spawn+join (ns/task)", v[0], o->run[B_SPAWN_ASYNCIO],
                    "spawn  libuv timer(0) start+cb+close", v[1], o->run[B_SPAWN_LIBUV], o->reps);
    if (any_yield)
        report_pair("yield", "yield  asyncio_yield (ns/yield)", v[2], o->run[B_YIELD_ASYNCIO],
                    "yield  libuv uv_idle callback", v[3], o->run[B_YIELD_LIBUV], o->reps);
    for (int k = 0; k < 4; k++)
        free(v[k]);
}

/* Runs the timer reps in child processes; res[0] asyncio, res[1] libuv (o->timer_reps each). */
static void bench_timers(const options *o, timer_result *res[2])
{
    if (!o->run[B_TIMERS_ASYNCIO] && !o->run[B_TIMERS_LIBUV])
        return;
    for (size_t r = 0; r < o->timer_reps; r++) {
        if (o->run[B_TIMERS_ASYNCIO])
            run_timers_child(o, B_TIMERS_ASYNCIO, &res[0][r]);
        if (o->run[B_TIMERS_LIBUV])
            run_timers_child(o, B_TIMERS_LIBUV, &res[1][r]);
    }
}

static void print_count(const char *what, size_t events, size_t per, const char *expect)
{
    printf("  %-50s %7.3f  (%zu in %zu; expected %s)\n", what, (double)events / (double)per, events,
           per, expect);
}

/* Allocation counts with a counting allocator installed (no runtime alive around it). */
static void bench_allocs(const options *o)
{
    if (!o->run[B_ALLOCS])
        return;
    asyncio_allocator a = {count_malloc, count_realloc, count_free, NULL};
    check_asyncio(asyncio_set_allocator(&a), "asyncio_set_allocator");
    size_t n_spawn = o->spawn < ALLOC_SPAWN ? o->spawn : ALLOC_SPAWN;
    size_t n_timers = o->timers < ALLOC_TIMERS ? o->timers : ALLOC_TIMERS;
    size_t spawn_allocs, timer_allocs;
    yield_main ym;
    timer_result tr;
    run_spawn_asyncio(n_spawn, &spawn_allocs);
    run_yield_asyncio(o->yield_tasks, o->yields, &ym);
    run_timers_asyncio(o, n_timers, ALLOC_MAX_DEADLINE, &tr, &timer_allocs);
    check_asyncio(asyncio_set_allocator(NULL), "asyncio_set_allocator(NULL)");
    size_t live = atomic_load(&g_allocs.mallocs) - atomic_load(&g_allocs.frees);
    printf("\nallocations (libasyncio, counting allocator; malloc + realloc calls):\n");
    print_count("per spawned task (spawn + join)", spawn_allocs, n_spawn, "1, the task block");
    print_count("per yielder spawned", ym.allocs_spawn, ym.tasks, "1");
    print_count("per yield (wake + re-poll)", ym.allocs_run, ym.tasks * ym.yields, "0");
    print_count("per timer (task + sleep, first spawn..last fire)", timer_allocs, n_timers,
                "1, the task block");
    printf("  live blocks after every runtime was freed: %zu (expected 0)\n", live);
    if (tr.v[R_EARLY] != 0)
        printf("  EARLY timers in the counting run: %lld\n", tr.v[R_EARLY]);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_runtime [--spawn N] [--yield-tasks N] [--yields N] [--timers N]\n"
            "                     [--max-deadline MS] [--reps N] [--timer-reps N] [--seed N]\n"
            "                     [--polls N] [--only LIST]\n"
            "LIST: comma-separated among spawn, yield, timers (both sides), allocs,\n"
            "      combinators, or\n"
            "      spawn-asyncio, spawn-libuv, yield-asyncio, yield-libuv, timers-asyncio,\n"
            "      timers-libuv\n"
            "defaults: --spawn %d --yield-tasks %d --yields %d --timers %d --max-deadline %d\n"
            "          --reps %d --timer-reps %d --polls %d; everything\n",
            DEFAULT_SPAWN, DEFAULT_YIELD_TASKS, DEFAULT_YIELDS, DEFAULT_TIMERS,
            DEFAULT_MAX_DEADLINE, DEFAULT_REPS, DEFAULT_TIMER_REPS, DEFAULT_POLLS);
}

static size_t parse_size(const char *opt, const char *s, size_t min, size_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "bench_runtime: %s: bad value '%s' (integer in [%zu, %zu])\n", opt, s, min,
                max);
        exit(2);
    }
    return (size_t)v;
}

/* Index of a benchmark name, or -1. "spawn", "yield", "timers" name both sides. */
static int bench_index(const char *name)
{
    for (int k = 0; k < B_COUNT; k++)
        if (strcmp(name, g_bench_opt[k]) == 0)
            return k;
    return -1;
}

static void parse_only(options *o, const char *list)
{
    static const char *const groups[] = {"spawn", "yield", "timers"};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    memset(o->run, 0, sizeof o->run);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        int k = bench_index(tok);
        if (k >= 0) {
            o->run[k] = true;
            continue;
        }
        for (int g = 0; g < 3 && k < 0; g++)
            if (strcmp(tok, groups[g]) == 0)
                k = 2 * g;
        if (k < 0) {
            fprintf(stderr, "bench_runtime: --only: unknown benchmark '%s'\n", tok);
            exit(2);
        }
        o->run[k] = o->run[k + 1] = true;
    }
}

/* Applies one "--opt value" pair; returns false if `opt` is unknown. */
static bool parse_opt(options *o, const char *opt, const char *val)
{
    const size_t big = SIZE_MAX / 1024;
    if (strcmp(opt, "--spawn") == 0)
        o->spawn = parse_size(opt, val, 1, big);
    else if (strcmp(opt, "--yield-tasks") == 0)
        o->yield_tasks = parse_size(opt, val, 1, big);
    else if (strcmp(opt, "--yields") == 0)
        o->yields = parse_size(opt, val, 1, big);
    else if (strcmp(opt, "--timers") == 0)
        o->timers = parse_size(opt, val, 1, UINT32_MAX);
    else if (strcmp(opt, "--max-deadline") == 0)
        o->max_deadline = parse_size(opt, val, 1, 3600000);
    else if (strcmp(opt, "--reps") == 0)
        o->reps = parse_size(opt, val, 1, 1000);
    else if (strcmp(opt, "--timer-reps") == 0)
        o->timer_reps = parse_size(opt, val, 1, 64);
    else if (strcmp(opt, "--polls") == 0)
        o->polls = parse_size(opt, val, 1, big);
    else if (strcmp(opt, "--seed") == 0)
        o->seed = parse_size(opt, val, 1, SIZE_MAX);
    else if (strcmp(opt, "--only") == 0)
        parse_only(o, val);
    else if (strcmp(opt, "--child") == 0)
        return (o->child = bench_index(val)) == B_TIMERS_ASYNCIO || o->child == B_TIMERS_LIBUV;
    else
        return false;
    return true;
}

static void parse_args(options *o, int argc, char **argv)
{
    *o = (options){.spawn = DEFAULT_SPAWN,
                   .yield_tasks = DEFAULT_YIELD_TASKS,
                   .yields = DEFAULT_YIELDS,
                   .timers = DEFAULT_TIMERS,
                   .max_deadline = DEFAULT_MAX_DEADLINE,
                   .reps = DEFAULT_REPS,
                   .timer_reps = DEFAULT_TIMER_REPS,
                   .seed = 0x9e3779b97f4a7c15u,
                   .polls = DEFAULT_POLLS,
                   .run = {true, true, true, true, true, true, true, true},
                   .child = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc || !parse_opt(o, argv[i], argv[i + 1])) {
            usage(stderr);
            exit(2);
        }
        i++;
    }
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    options o;
    parse_args(&o, argc, argv);
    if (o.child >= 0)
        return child_main(&o);
    /*
     * Timers first: each runs in a child forked while this process is still
     * small (its ru_maxrss starts from our RSS at fork); reported last. Each
     * child runs its own watchdog.
     */
    timer_result *timers[2] = {xcalloc(o.timer_reps, sizeof(timer_result)),
                               xcalloc(o.timer_reps, sizeof(timer_result))};
    bench_timers(&o, timers);
    start_watchdog();
    bench_spawn_yield(&o);
    if (o.run[B_TIMERS_ASYNCIO] || o.run[B_TIMERS_LIBUV])
        report_timers(&o, timers);
    bench_allocs(&o);
    bench_combinators(&o);
    alarm(0);
    free(timers[0]);
    free(timers[1]);
    free(g_ts.hist);
    return 0;
}

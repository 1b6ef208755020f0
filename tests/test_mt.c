/*
 * The multi-thread runtime under stress, and its scheduler pitfalls
 * (known hazards of work-stealing runtimes): every task completes and is dropped exactly once,
 * wakes are never lost across workers, pinned tasks never move, shutdown
 * while busy cleans everything up, metrics add up. Every test is bounded by
 * its work (a lost wake-up shows as a ctest timeout), never by a clock.
 *
 * Sizes scale with ASYNCIO_TEST_SCALE (tests/support: 100 = full, sanitizer
 * builds run 10%): the million-task test spawns 1,000,000 tasks plain and
 * 100,000 under ASan/TSan.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asyncio/runtime.h"
#include "asyncio/sync.h"
#include "asyncio/time.h"
#include "platform/thread.h"
#include "support.h"

static asyncio_runtime *mt_new(uint32_t workers)
{
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_MULTI_THREAD, .workers = workers};
    asyncio_runtime *rt = NULL;
    assert_ok(asyncio_runtime_new(&rt, &o));
    return rt;
}

/* ---- a countdown latch the test thread waits on ----------------------- */

typedef struct latch {
    pthread_mutex_t m;
    pthread_cond_t c;
    _Atomic long left;
    bool done; /* guarded by m: set by the last count_down, which then no longer touches l */
} latch;

static void latch_init(latch *l, long n)
{
    pthread_mutex_init(&l->m, NULL);
    pthread_cond_init(&l->c, NULL);
    atomic_init(&l->left, n);
    l->done = false;
}

static void latch_count_down(latch *l)
{
    if (atomic_fetch_sub(&l->left, 1) != 1)
        return;
    pthread_mutex_lock(&l->m);
    l->done = true;
    pthread_cond_broadcast(&l->c); /* under the lock: the waiter may destroy l once it sees done */
    pthread_mutex_unlock(&l->m);
}

static void latch_wait(latch *l)
{
    pthread_mutex_lock(&l->m);
    while (!l->done)
        pthread_cond_wait(&l->c, &l->m);
    pthread_mutex_unlock(&l->m);
}

static void latch_destroy(latch *l)
{
    pthread_cond_destroy(&l->c);
    pthread_mutex_destroy(&l->m);
}

/* ---- 1,000,000 tasks spawned from several threads ---------------------- */

#define SPAWNERS 4

static _Atomic unsigned char *g_runs; /* per task: times it completed */
static latch g_done;
static _Atomic long g_drops;

typedef struct counted {
    long id;
} counted;

static int counted_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    (void)output;
    counted *c = state;
    atomic_fetch_add_explicit(&g_runs[c->id], 1, memory_order_relaxed);
    latch_count_down(&g_done);
    return 0;
}

static void count_drop(void *state)
{
    (void)state;
    atomic_fetch_add(&g_drops, 1);
}

static const asyncio_task_vtable counted_vt = {counted_poll, count_drop, NULL, sizeof(counted), 0};

typedef struct spawner_arg {
    asyncio_runtime *rt;
    long first, n;
} spawner_arg;

static void *spawner(void *p)
{
    spawner_arg *a = p;
    for (long i = 0; i < a->n; i++) {
        counted c = {a->first + i};
        assert_ok(asyncio_spawn(a->rt, &counted_vt, &c, NULL));
    }
    return NULL;
}

static void test_mt_million_tasks_from_several_threads_complete_exactly_once(void **state)
{
    (void)state;
    long n = (long)support_scale(1000000);
    g_runs = calloc((size_t)n, 1);
    assert_non_null(g_runs);
    latch_init(&g_done, n);
    atomic_store(&g_drops, 0);
    asyncio_runtime *rt = mt_new(4);
    pthread_t th[SPAWNERS];
    spawner_arg args[SPAWNERS];
    for (int i = 0; i < SPAWNERS; i++) {
        args[i] = (spawner_arg){rt, n / SPAWNERS * i,
                                i == SPAWNERS - 1 ? n - n / SPAWNERS * i : n / SPAWNERS};
        assert_int_equal(pthread_create(&th[i], NULL, spawner, &args[i]), 0);
    }
    for (int i = 0; i < SPAWNERS; i++)
        pthread_join(th[i], NULL);
    latch_wait(&g_done);
    assert_ok(asyncio_runtime_free(rt));
    for (long i = 0; i < n; i++)
        assert_int_equal(g_runs[i], 1);
    assert_int_equal(atomic_load(&g_drops), n);
    latch_destroy(&g_done);
    free((void *)g_runs);
}

/* ---- tasks spawned from inside tasks, joined by their spawner ------------ */

typedef struct fanout {
    long n, next;
    asyncio_join_handle **jh;
} fanout;

static int child_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    *(long *)output = *(long *)state * 2;
    return 0;
}

static const asyncio_task_vtable child_vt = {child_poll, NULL, NULL, sizeof(long), sizeof(long)};

static int fanout_poll(void *state, asyncio_context *cx, void *output)
{
    fanout *f = state;
    long *sum = output;
    if (f->jh == NULL) {
        f->jh = calloc((size_t)f->n, sizeof *f->jh);
        assert_non_null(f->jh);
        for (long i = 0; i < f->n; i++)
            assert_ok(asyncio_spawn(asyncio_runtime_current(), &child_vt, &i, &f->jh[i]));
        *sum = 0;
    }
    for (; f->next < f->n; f->next++) {
        long v;
        int rc = asyncio_join_handle_poll(f->jh[f->next], cx, &v);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        *sum += v;
        asyncio_join_handle_drop(f->jh[f->next]);
    }
    free(f->jh);
    f->jh = NULL;
    return 0;
}

static const asyncio_task_vtable fanout_vt = {fanout_poll, NULL, NULL, sizeof(fanout),
                                              sizeof(long)};

static void test_mt_spawn_inside_tasks_and_join_all(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_new(4);
    fanout f = {.n = (long)support_scale(100000)};
    long sum = -1;
    assert_ok(asyncio_runtime_block_on(rt, &fanout_vt, &f, &sum));
    assert_true(sum == f.n * (f.n - 1)); /* 2 * (0 + 1 + ... + n-1) */
    /* After shutdown: a worker counts a poll after it returns, so read once they are joined. */
    asyncio_runtime_shutdown(rt);
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m));
    assert_true(m.tasks_spawned == (uint64_t)f.n); /* every child spawned on a worker */
    assert_true(m.remote_spawned == 1);            /* block_on's task */
    assert_true(m.polls >= (uint64_t)f.n + 1);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- task blocks moving between workers' caches (src/task/block_cache.h) ---- */

#define PATTERN_WORDS 6

/* A child: its state is a pattern derived from its value, checked on every poll. */
typedef struct patterned {
    uint64_t value;
    uint64_t word[PATTERN_WORDS];
    bool yielded;
} patterned;

static uint64_t pattern_word(uint64_t value, int i)
{
    return (value + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)i;
}

static _Atomic long g_pattern_bad;

static void pattern_check(const patterned *p)
{
    for (int i = 0; i < PATTERN_WORDS; i++)
        if (p->word[i] != pattern_word(p->value, i))
            atomic_fetch_add(&g_pattern_bad, 1);
}

static int patterned_poll(void *state, asyncio_context *cx, void *output)
{
    patterned *p = state;
    pattern_check(p);
    if (!p->yielded) { /* once pending: it may be stolen and finish on another worker */
        p->yielded = true;
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    memcpy(output, &p->value, sizeof p->value);
    return 0;
}

static void patterned_drop(void *state)
{
    pattern_check(state);
}

static const asyncio_task_vtable patterned_vt = {patterned_poll, patterned_drop, NULL,
                                                 sizeof(patterned), sizeof(uint64_t)};

/* A generator keeps up to WINDOW children in flight, joining the oldest in order. */
#define WINDOW 16
typedef struct generator {
    uint64_t base;
    long n, spawned, joined;
    asyncio_join_handle *jh[WINDOW];
    long bad_outputs;
} generator;

static int generator_poll(void *state, asyncio_context *cx, void *output)
{
    generator *g = state;
    for (;;) {
        while (g->spawned < g->n && g->spawned - g->joined < WINDOW) {
            patterned c = {.value = g->base + (uint64_t)g->spawned};
            for (int i = 0; i < PATTERN_WORDS; i++)
                c.word[i] = pattern_word(c.value, i);
            assert_ok(asyncio_spawn(asyncio_runtime_current(), &patterned_vt, &c,
                                    &g->jh[g->spawned % WINDOW]));
            g->spawned++;
        }
        if (g->joined == g->n)
            break;
        uint64_t got = 0;
        asyncio_join_handle **jh = &g->jh[g->joined % WINDOW];
        int rc = asyncio_join_handle_poll(*jh, cx, &got);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        if (got != g->base + (uint64_t)g->joined)
            g->bad_outputs++;
        asyncio_join_handle_drop(*jh); /* frees the block here, often on another worker */
        g->joined++;
    }
    memcpy(output, &g->bad_outputs, sizeof g->bad_outputs);
    return 0;
}

static const asyncio_task_vtable generator_vt = {generator_poll, NULL, NULL, sizeof(generator),
                                                 sizeof(long)};

typedef struct generators {
    long per;
    asyncio_join_handle *jh[8];
    int next;
    long bad;
} generators;

/* block_on's task (through a box: the test reads the totals from its own struct). */
static int generators_poll(generators *m, asyncio_context *cx)
{
    if (m->next == 0 && m->jh[0] == NULL) {
        for (int i = 0; i < 8; i++) {
            generator g = {.base = (uint64_t)i << 40, .n = m->per};
            assert_ok(asyncio_spawn(asyncio_runtime_current(), &generator_vt, &g, &m->jh[i]));
        }
    }
    for (; m->next < 8; m->next++) {
        long bad = 0;
        int rc = asyncio_join_handle_poll(m->jh[m->next], cx, &bad);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        m->bad += bad;
        asyncio_join_handle_drop(m->jh[m->next]);
    }
    return 0;
}

typedef struct generators_box {
    generators *m;
} generators_box;

static int generators_box_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    return generators_poll(((generators_box *)state)->m, cx);
}

static const asyncio_task_vtable generators_box_vt = {generators_box_poll, NULL, NULL,
                                                      sizeof(generators_box), 0};

/*
 * The TSan stress of the task-block cache: eight generators on four
 * workers each keep 16 children in flight; children yield once (so they
 * are stolen and finish anywhere) and are freed by the generator's join,
 * wherever it runs, so blocks keep moving from one worker's cache into
 * another's spawns. Every child checks its state's pattern on each poll and
 * in its drop, and every output is checked: a block handed to two tasks at
 * once, or reused while still referenced, shows as a bad pattern or output
 * (and as a race under TSan).
 */
static void test_mt_task_blocks_reused_across_workers_keep_every_task_intact(void **state)
{
    (void)state;
    atomic_store(&g_pattern_bad, 0);
    asyncio_runtime *rt = mt_new(4);
    generators m = {.per = (long)support_scale(20000)};
    generators_box box = {&m};
    assert_ok(asyncio_runtime_block_on(rt, &generators_box_vt, &box, NULL));
    assert_int_equal(m.bad, 0);
    assert_int_equal(atomic_load(&g_pattern_bad), 0);
    assert_ok(asyncio_runtime_free(rt)); /* teardown: every cached block given back */
}

/* ---- blocks freed by foreign threads, during work and during free ---------- */

typedef struct handoff {
    asyncio_join_handle **jh;
    long n;
    _Atomic long published; /* handles the producer has stored */
    _Atomic long taken;     /* handles the droppers have claimed */
    _Atomic long dropped;
} handoff;

/* A foreign thread: drops handles as they are published, until all n are gone. */
static void *handoff_dropper(void *arg)
{
    handoff *h = arg;
    for (;;) {
        long i = atomic_fetch_add(&h->taken, 1);
        if (i >= h->n)
            return NULL;
        while (atomic_load_explicit(&h->published, memory_order_acquire) <= i)
            sched_yield();
        asyncio_join_handle_drop(h->jh[i]);
        atomic_fetch_add(&h->dropped, 1);
    }
}

static int handoff_child_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    memcpy(output, state, sizeof(long));
    return 0;
}

static const asyncio_task_vtable handoff_child_vt = {handoff_child_poll, NULL, NULL, sizeof(long),
                                                     sizeof(long)};

/* block_on's task: spawns the children 64 per poll, publishing each handle at once. */
static int handoff_producer_poll(void *state, asyncio_context *cx, void *output)
{
    handoff *h = *(handoff **)state;
    (void)output;
    long i = atomic_load_explicit(&h->published, memory_order_relaxed);
    for (long end = i + 64; i < h->n && i < end; i++) {
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &handoff_child_vt, &i, &h->jh[i]));
        atomic_store_explicit(&h->published, i + 1, memory_order_release);
    }
    if (i < h->n) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static const asyncio_task_vtable handoff_producer_vt = {handoff_producer_poll, NULL, NULL,
                                                        sizeof(handoff *), 0};

/*
 * The TSan stress of the slab's remote frees and orphans: two workers spawn
 * tasks while two foreign threads drop their JoinHandles as they come (the
 * last reference, and so the block's free, lands on whichever thread is
 * last: a worker finishing the task or a foreign thread, pushing to the
 * chunk's remote list while its owner takes lists back), and the runtime is
 * freed while the foreign threads are still dropping (chunks are orphaned
 * under their frees). Every block comes back: the teardown finds nothing live.
 */
static void test_mt_blocks_freed_by_foreign_threads_during_work_and_free_all_come_back(
    void **state)
{
    (void)state;
    handoff h = {.n = (long)support_scale(40000)};
    h.jh = calloc((size_t)h.n, sizeof *h.jh);
    assert_non_null(h.jh);
    atomic_init(&h.published, 0);
    atomic_init(&h.taken, 0);
    atomic_init(&h.dropped, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, handoff_dropper, &h), 0);
    asyncio_runtime *rt = mt_new(2);
    handoff *hp = &h;
    assert_ok(asyncio_runtime_block_on(rt, &handoff_producer_vt, &hp, NULL));
    assert_ok(asyncio_runtime_free(rt)); /* the droppers are still at it, as a rule */
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&h.dropped), h.n);
    free(h.jh);
}

/* ---- ping-pong across workers -------------------------------------------- */

/* Two tasks pass a turn back and forth through a mutex-guarded handoff. */
typedef struct pingpong {
    pthread_mutex_t m;
    int turn;
    long rounds_left;
    asyncio_waker w[2];
} pingpong;

typedef struct player {
    pingpong *pp;
    int me;
} player;

static int player_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    player *p = state;
    pingpong *pp = p->pp;
    for (;;) {
        pthread_mutex_lock(&pp->m);
        if (pp->rounds_left <= 0) {
            asyncio_waker other = pp->w[1 - p->me];
            pp->w[1 - p->me] = ASYNCIO_WAKER_EMPTY;
            pthread_mutex_unlock(&pp->m);
            asyncio_waker_wake(&other); /* let the other one see the end */
            return 0;
        }
        if (pp->turn != p->me) {
            asyncio_waker_store(&pp->w[p->me], cx->waker);
            pthread_mutex_unlock(&pp->m);
            return ASYNCIO_PENDING;
        }
        pp->turn = 1 - p->me;
        pp->rounds_left--;
        asyncio_waker other = pp->w[1 - p->me];
        pp->w[1 - p->me] = ASYNCIO_WAKER_EMPTY;
        pthread_mutex_unlock(&pp->m);
        asyncio_waker_wake(&other);
    }
}

static void player_drop(void *state)
{
    player *p = state;
    pthread_mutex_lock(&p->pp->m);
    asyncio_waker w = p->pp->w[p->me];
    p->pp->w[p->me] = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&p->pp->m);
    asyncio_waker_drop(&w);
}

static const asyncio_task_vtable player_vt = {player_poll, player_drop, NULL, sizeof(player), 0};

static void test_mt_ping_pong_across_workers_completes(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_new(4);
    pingpong pp = {.turn = 0, .rounds_left = (long)support_scale(100000)};
    pthread_mutex_init(&pp.m, NULL);
    asyncio_join_handle *a, *b;
    player pa = {&pp, 0}, pb = {&pp, 1};
    assert_ok(asyncio_spawn(rt, &player_vt, &pa, &a));
    assert_ok(asyncio_spawn(rt, &player_vt, &pb, &b));
    while (!asyncio_join_handle_is_finished(a) || !asyncio_join_handle_is_finished(b))
        sched_yield(); /* a lost hand-off hangs here */
    assert_true(pp.rounds_left <= 0);
    asyncio_join_handle_drop(a);
    asyncio_join_handle_drop(b);
    assert_ok(asyncio_runtime_free(rt));
    pthread_mutex_destroy(&pp.m);
}

/* ---- wake storms from several threads ---------------------------------- */

#define STORM_TASKS   64
#define STORM_THREADS 4

typedef struct storm {
    pthread_mutex_t m;
    asyncio_waker w[STORM_TASKS];
    _Atomic long gen;
    long target;
} storm;

typedef struct stormer {
    storm *s;
    int idx;
} stormer;

static int stormer_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    stormer *t = state;
    pthread_mutex_lock(&t->s->m);
    asyncio_waker_store(&t->s->w[t->idx], cx->waker);
    pthread_mutex_unlock(&t->s->m);
    /* Checked after the waker is stored: a bump after this wakes us. */
    if (atomic_load(&t->s->gen) >= t->s->target)
        return 0;
    return ASYNCIO_PENDING;
}

static void stormer_drop(void *state)
{
    stormer *t = state;
    pthread_mutex_lock(&t->s->m);
    asyncio_waker w = t->s->w[t->idx];
    t->s->w[t->idx] = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&t->s->m);
    asyncio_waker_drop(&w);
}

static const asyncio_task_vtable stormer_vt = {stormer_poll, stormer_drop, NULL, sizeof(stormer),
                                               0};

static void *storm_thread(void *p)
{
    storm *s = p;
    for (;;) {
        long g = atomic_fetch_add(&s->gen, 1) + 1;
        asyncio_waker taken[STORM_TASKS];
        pthread_mutex_lock(&s->m);
        for (int i = 0; i < STORM_TASKS; i++)
            taken[i] = asyncio_waker_clone(&s->w[i]);
        pthread_mutex_unlock(&s->m);
        for (int i = 0; i < STORM_TASKS; i++)
            asyncio_waker_wake(&taken[i]);
        if (g >= s->target)
            return NULL;
    }
}

static void test_mt_wake_storm_from_several_threads_loses_no_wake(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_new(4);
    storm s = {.target = (long)support_scale(20000)};
    pthread_mutex_init(&s.m, NULL);
    asyncio_join_handle *jh[STORM_TASKS];
    for (int i = 0; i < STORM_TASKS; i++)
        assert_ok(asyncio_spawn(rt, &stormer_vt, &(stormer){&s, i}, &jh[i]));
    pthread_t th[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, storm_thread, &s), 0);
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(th[i], NULL);
    /* The last bump came after every task stored a waker or finished: all finish. */
    for (int i = 0; i < STORM_TASKS; i++) {
        while (!asyncio_join_handle_is_finished(jh[i]))
            sched_yield();
        asyncio_join_handle_drop(jh[i]);
    }
    assert_ok(asyncio_runtime_free(rt));
    pthread_mutex_destroy(&s.m);
}

/* ---- abort racing completion ----------------------------------------------- */

typedef struct quick {
    int yields;
    asyncio_yield y;
} quick;

static int quick_poll(void *state, asyncio_context *cx, void *output)
{
    quick *q = state;
    while (q->yields > 0) {
        if (asyncio_yield_poll(&q->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        q->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        q->yields--;
    }
    *(int *)output = 7;
    return 0;
}

static _Atomic long g_output_drops;

static void count_output_drop(void *output)
{
    (void)output;
    atomic_fetch_add(&g_output_drops, 1);
}

static const asyncio_task_vtable quick_vt = {quick_poll, count_drop, count_output_drop,
                                             sizeof(quick), sizeof(int)};

typedef struct abort_arg {
    asyncio_join_handle **jh;
    long n;
} abort_arg;

static void *aborter(void *p)
{
    abort_arg *a = p;
    for (long i = 0; i < a->n; i++)
        assert_ok(asyncio_join_handle_abort(a->jh[i]));
    return NULL;
}

static void test_mt_abort_racing_completion_drops_once(void **state)
{
    (void)state;
    atomic_store(&g_drops, 0);
    atomic_store(&g_output_drops, 0);
    asyncio_runtime *rt = mt_new(4);
    long n = (long)support_scale(20000);
    asyncio_join_handle **jh = calloc((size_t)n, sizeof *jh);
    assert_non_null(jh);
    for (long i = 0; i < n; i++)
        assert_ok(asyncio_spawn(rt, &quick_vt, &(quick){.yields = (int)(i % 3)}, &jh[i]));
    pthread_t th;
    abort_arg a = {jh, n};
    assert_int_equal(pthread_create(&th, NULL, aborter, &a), 0);
    pthread_join(th, NULL);
    long done = 0, cancelled = 0;
    for (long i = 0; i < n; i++) {
        while (!asyncio_join_handle_is_finished(jh[i]))
            sched_yield();
        asyncio_waker none = ASYNCIO_WAKER_EMPTY;
        asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
        int out = 0;
        /* A finished handle never stores the waker, so an empty one is fine. */
        int rc = asyncio_join_handle_poll(jh[i], &cx, &out);
        if (rc == 0) {
            assert_int_equal(out, 7);
            done++;
        } else {
            assert_err(rc, ASYNCIO_ECANCELED);
            cancelled++;
        }
        asyncio_join_handle_drop(jh[i]);
    }
    assert_int_equal(done + cancelled, n);
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&g_drops), n);        /* every future dropped once */
    assert_int_equal(atomic_load(&g_output_drops), 0); /* every output was taken */
    free(jh);
}

/* ---- shutdown while busy ----------------------------------------------------- */

static int busy_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)output;
    asyncio_waker_wake_by_ref(cx->waker); /* always ready again */
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable busy_vt = {busy_poll, count_drop, NULL, 0, 0};

typedef struct sleeper {
    asyncio_sleep s;
    bool init;
} sleeper;

static int sleeper_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    sleeper *s = state;
    if (!s->init) {
        asyncio_sleep_init(&s->s, 3600 * 1000);
        s->init = true;
    }
    return asyncio_sleep_poll(&s->s, cx);
}

static void sleeper_drop(void *state)
{
    sleeper *s = state;
    if (s->init)
        asyncio_sleep_drop(&s->s);
    atomic_fetch_add(&g_drops, 1);
}

static const asyncio_task_vtable sleeper_vt = {sleeper_poll, sleeper_drop, NULL, sizeof(sleeper),
                                               0};

static void test_mt_shutdown_while_busy_drops_every_task_once(void **state)
{
    (void)state;
    atomic_store(&g_drops, 0);
    asyncio_runtime *rt = mt_new(4);
    long n = 200;
    for (long i = 0; i < n; i++) {
        assert_ok(asyncio_spawn(rt, i % 2 ? &busy_vt : &sleeper_vt, NULL, NULL));
        if (i % 10 == 0)
            assert_ok(asyncio_spawn_pinned(rt, &busy_vt, NULL, NULL));
    }
    asyncio_join_handle *held;
    assert_ok(asyncio_spawn(rt, &busy_vt, NULL, &held));
    sched_yield();
    asyncio_runtime_shutdown(rt);
    assert_int_equal(atomic_load(&g_drops), n + n / 10 + 1);
    assert_true(asyncio_join_handle_is_finished(held));
    assert_err(asyncio_spawn(rt, &busy_vt, NULL, NULL), ASYNCIO_ECANCELED);
    asyncio_join_handle_drop(held);
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m));
    assert_true(m.local_queue_depth == 0 && m.global_queue_depth == 0);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- pinned tasks ---------------------------------------------------------------- */

typedef struct pinned {
    pthread_t home;
    bool started;
    int yields;
    asyncio_yield y;
} pinned;

static _Atomic long g_moved;

static int pinned_poll(void *state, asyncio_context *cx, void *output)
{
    pinned *p = state;
    if (!p->started) {
        p->home = pthread_self();
        p->started = true;
    } else if (!pthread_equal(p->home, pthread_self())) {
        atomic_fetch_add(&g_moved, 1);
    }
    while (p->yields > 0) {
        if (asyncio_yield_poll(&p->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        p->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        p->yields--;
    }
    *(int *)output = 1;
    return 0;
}

static const asyncio_task_vtable pinned_vt = {pinned_poll, NULL, NULL, sizeof(pinned), sizeof(int)};

#define PINNED 16

/* Spawns pinned tasks (and busy stealable ones) from inside a task, joins the pinned ones. */
typedef struct pin_parent {
    asyncio_join_handle *jh[PINNED];
    asyncio_join_handle *noise[PINNED];
    int next;
    bool spawned;
} pin_parent;

static int pin_parent_poll(void *state, asyncio_context *cx, void *output)
{
    pin_parent *p = state;
    int *sum = output;
    asyncio_runtime *rt = asyncio_runtime_current();
    if (!p->spawned) {
        for (int i = 0; i < PINNED; i++) {
            assert_ok(asyncio_spawn_pinned(rt, &pinned_vt, &(pinned){.yields = 2000}, &p->jh[i]));
            assert_ok(asyncio_spawn(rt, &quick_vt, &(quick){.yields = 2000}, &p->noise[i]));
        }
        p->spawned = true;
        *sum = 0;
    }
    for (; p->next < PINNED; p->next++) {
        int v = 0;
        int rc = asyncio_join_handle_poll(p->jh[p->next], cx, &v);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        *sum += v;
        asyncio_join_handle_drop(p->jh[p->next]);
    }
    for (int i = 0; i < PINNED; i++)
        asyncio_join_handle_drop(p->noise[i]);
    return 0;
}

static const asyncio_task_vtable pin_parent_vt = {pin_parent_poll, NULL, NULL, sizeof(pin_parent),
                                                  sizeof(int)};

static void test_mt_pinned_tasks_never_move_between_workers(void **state)
{
    (void)state;
    atomic_store(&g_moved, 0);
    asyncio_runtime *rt = mt_new(4);
    /* Pinned from outside (round-robin) too, awaited from the test thread. */
    asyncio_join_handle *outside[PINNED];
    for (int i = 0; i < PINNED; i++)
        assert_ok(asyncio_spawn_pinned(rt, &pinned_vt, &(pinned){.yields = 2000}, &outside[i]));
    pin_parent p = {0};
    int sum = 0;
    assert_ok(asyncio_runtime_block_on(rt, &pin_parent_vt, &p, &sum));
    assert_int_equal(sum, PINNED);
    for (int i = 0; i < PINNED; i++) {
        while (!asyncio_join_handle_is_finished(outside[i]))
            sched_yield();
        asyncio_join_handle_drop(outside[i]);
    }
    assert_int_equal(atomic_load(&g_moved), 0);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_mt_spawn_pinned_on_current_thread_is_spawn(void **state)
{
    (void)state;
    asyncio_runtime *rt = NULL;
    assert_ok(asyncio_runtime_new(&rt, NULL));
    pin_parent p = {0};
    int sum = 0;
    assert_ok(asyncio_runtime_block_on(rt, &pin_parent_vt, &p, &sum));
    assert_int_equal(sum, PINNED);
    assert_err(asyncio_spawn_pinned(NULL, &pinned_vt, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_spawn_pinned(rt, NULL, NULL, NULL), ASYNCIO_EINVAL);
    assert_int_equal(asyncio_runtime_num_workers(rt), 1);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- Hazard: park/unpark race (tokio#6847, #6876) --------------------------------- */

static latch g_pair;

static int pair_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    latch_count_down(&g_pair);
    return 0;
}

static const asyncio_task_vtable pair_vt = {pair_poll, NULL, NULL, 0, 0};

static void spawns_from_outside_while_parking(uint32_t workers)
{
    asyncio_runtime *rt = mt_new(workers);
    long rounds = (long)support_scale(10000);
    for (long i = 0; i < rounds; i++) {
        latch_init(&g_pair, 2);
        assert_ok(asyncio_spawn(rt, &pair_vt, NULL, NULL));
        assert_ok(asyncio_spawn(rt, &pair_vt, NULL, NULL));
        latch_wait(&g_pair); /* a lost wake-up hangs here */
        latch_destroy(&g_pair);
    }
    asyncio_runtime_shutdown(rt); /* polls are counted after they return: join first */
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m));
    assert_true(m.remote_spawned == (uint64_t)(2 * rounds));
    assert_true(m.polls >= (uint64_t)(2 * rounds));
    assert_ok(asyncio_runtime_free(rt));
}

static void test_mt_two_spawns_from_outside_while_workers_park_both_run(void **state)
{
    (void)state;
    spawns_from_outside_while_parking(2);
}

/*
 * Regression: a single worker skipped the searching state, so it parked
 * without re-checking the inject queue after a spawn from outside had seen
 * it unparked (and so woke nobody): the entry was stranded.
 */
static _Atomic int g_flag_done;

static int flag_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    atomic_store(&g_flag_done, 1); /* the spinning test thread spawns the next one at once */
    return 0;
}

static const asyncio_task_vtable flag_vt = {flag_poll, NULL, NULL, 0, 0};

static void test_mt_single_worker_sees_spawn_from_outside_while_parking(void **state)
{
    (void)state;
    spawns_from_outside_while_parking(1);
    /* Spawn the moment the previous task returns: the worker is on its way to park. */
    asyncio_runtime *rt = mt_new(1);
    long rounds = (long)support_scale(20000);
    for (long i = 0; i < rounds; i++) {
        atomic_store(&g_flag_done, 0);
        assert_ok(asyncio_spawn(rt, &flag_vt, NULL, NULL));
        while (!atomic_load(&g_flag_done))
            ; /* spin: a lost wake-up hangs here */
    }
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- Hazard: LIFO ping-pong starves others (tokio#2349, #5712) -------------------- */

typedef struct lifo_pair {
    asyncio_waker other[2]; /* guarded by m */
    pthread_mutex_t m;
} lifo_pair;

typedef struct lifo_player {
    lifo_pair *lp;
    int me;
} lifo_player;

/* Wakes the other player, then waits to be woken: forever. */
static int lifo_player_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    lifo_player *p = state;
    pthread_mutex_lock(&p->lp->m);
    asyncio_waker_store(&p->lp->other[p->me], cx->waker);
    asyncio_waker peer = asyncio_waker_clone(&p->lp->other[1 - p->me]);
    pthread_mutex_unlock(&p->lp->m);
    asyncio_waker_wake(&peer);
    return ASYNCIO_PENDING;
}

static void lifo_player_drop(void *state)
{
    lifo_player *p = state;
    pthread_mutex_lock(&p->lp->m);
    asyncio_waker w = p->lp->other[p->me];
    p->lp->other[p->me] = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&p->lp->m);
    asyncio_waker_drop(&w);
}

static const asyncio_task_vtable lifo_player_vt = {lifo_player_poll, lifo_player_drop, NULL,
                                                   sizeof(lifo_player), 0};

typedef struct third {
    int polls;
} third;

static int third_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    third *t = state;
    if (++t->polls < 100) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static const asyncio_task_vtable third_vt = {third_poll, NULL, NULL, sizeof(third), 0};

static void lifo_ping_pong_leaves_room(uint32_t workers)
{
    asyncio_runtime *rt = mt_new(workers);
    /* Workers + 1 pairs: every worker can be caught in a ping-pong. */
    lifo_player players[2 * 5];
    lifo_pair pairs[5];
    for (uint32_t i = 0; i <= workers; i++) {
        pairs[i] = (lifo_pair){.other = {ASYNCIO_WAKER_EMPTY, ASYNCIO_WAKER_EMPTY}};
        pthread_mutex_init(&pairs[i].m, NULL);
        for (int k = 0; k < 2; k++) {
            players[2 * i + k] = (lifo_player){&pairs[i], k};
            assert_ok(asyncio_spawn(rt, &lifo_player_vt, &players[2 * i + k], NULL));
        }
    }
    /* block_on's task must still finish while the pairs ping-pong forever. */
    assert_ok(asyncio_runtime_block_on(rt, &third_vt, &(third){0}, NULL));
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m));
    assert_true(m.lifo_hits > 0); /* the pairs did use the LIFO slot */
    assert_ok(asyncio_runtime_free(rt));
    for (uint32_t i = 0; i <= workers; i++)
        pthread_mutex_destroy(&pairs[i].m);
}

static void test_mt_lifo_ping_pong_does_not_starve_a_third_task(void **state)
{
    (void)state;
    lifo_ping_pong_leaves_room(1);
    lifo_ping_pong_leaves_room(4);
}

/* ---- Hazard: destructor wakes another task during shutdown (tokio#2082) ----------- */

typedef struct waker_box {
    pthread_mutex_t m;
    asyncio_waker w;
} waker_box;

typedef struct waiter_task {
    waker_box *box;
} waiter_task;

static int waiter_task_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    waiter_task *t = state;
    pthread_mutex_lock(&t->box->m);
    asyncio_waker_store(&t->box->w, cx->waker);
    pthread_mutex_unlock(&t->box->m);
    return ASYNCIO_PENDING;
}

static void waiter_task_drop(void *state)
{
    waiter_task *t = state;
    pthread_mutex_lock(&t->box->m);
    asyncio_waker w = t->box->w;
    t->box->w = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&t->box->m);
    asyncio_waker_wake(&w); /* wakes the other task (or itself) while shutting down */
    atomic_fetch_add(&g_drops, 1);
}

static const asyncio_task_vtable waiter_task_vt = {waiter_task_poll, waiter_task_drop, NULL,
                                                   sizeof(waiter_task), 0};

static void test_mt_drop_that_wakes_another_task_during_shutdown(void **state)
{
    (void)state;
    atomic_store(&g_drops, 0);
    asyncio_runtime *rt = mt_new(4);
    waker_box box = {.w = ASYNCIO_WAKER_EMPTY};
    pthread_mutex_init(&box.m, NULL);
    for (int i = 0; i < 50; i++)
        assert_ok(asyncio_spawn(rt, &waiter_task_vt, &(waiter_task){&box}, NULL));
    asyncio_runtime_shutdown(rt);
    assert_int_equal(atomic_load(&g_drops), 50);
    assert_ok(asyncio_runtime_free(rt));
    pthread_mutex_destroy(&box.m);
}

/* ---- Hazard: join cycle leak (tokio#4724) ------------------------------------------- */

/* Each task awaits the other's JoinHandle (handed over through a cell it owns). */
static _Atomic(asyncio_join_handle *) g_cells[2];

static int cycle_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    int me = *(int *)state;
    asyncio_join_handle *peer = atomic_load(&g_cells[1 - me]);
    if (peer == NULL) {
        asyncio_waker_wake_by_ref(cx->waker); /* not handed over yet */
        return ASYNCIO_PENDING;
    }
    return asyncio_join_handle_poll(peer, cx, NULL);
}

static void cycle_drop(void *state)
{
    int me = *(int *)state;
    asyncio_join_handle_drop(atomic_exchange(&g_cells[1 - me], NULL));
}

static const asyncio_task_vtable cycle_vt = {cycle_poll, cycle_drop, NULL, sizeof(int), 0};

/* Neither can finish; shutdown cancels both and their drops release the handles. */
static void test_mt_join_cycle_cancelled_at_shutdown_leaks_nothing(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        asyncio_runtime *rt = mt_new(4);
        asyncio_join_handle *a, *b;
        atomic_store(&g_cells[0], NULL);
        atomic_store(&g_cells[1], NULL);
        assert_ok(asyncio_spawn(rt, &cycle_vt, &(int){0}, &a));
        assert_ok(asyncio_spawn(rt, &cycle_vt, &(int){1}, &b));
        atomic_store(&g_cells[0], a);        /* awaited by task 1 */
        atomic_store(&g_cells[1], b);        /* awaited by task 0 */
        assert_ok(asyncio_runtime_free(rt)); /* the allocator fixture checks nothing leaked */
        assert_null(atomic_load(&g_cells[0]));
        assert_null(atomic_load(&g_cells[1]));
    }
}

/* ---- timers across workers ------------------------------------------------------------ */

typedef struct napper {
    asyncio_sleep s;
    bool init;
    uint64_t ms;
} napper;

static int napper_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    napper *n = state;
    if (!n->init) {
        asyncio_sleep_init(&n->s, n->ms);
        n->init = true;
    }
    return asyncio_sleep_poll(&n->s, cx);
}

static void napper_drop(void *state)
{
    napper *n = state;
    if (n->init)
        asyncio_sleep_drop(&n->s);
}

static const asyncio_task_vtable napper_vt = {napper_poll, napper_drop, NULL, sizeof(napper), 0};

/*
 * A worker that registers a timer while another worker is blocked in the
 * poller without a timeout must unpark it (else the timer never fires).
 */
static void test_mt_timer_added_on_one_worker_wakes_driver_parked_on_another(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_new(2);
    for (int i = 0; i < 40; i++) {
        assert_ok(asyncio_runtime_block_on(rt, &napper_vt, &(napper){.ms = 1}, NULL));
        sched_yield(); /* let both workers park again */
    }
    assert_ok(asyncio_runtime_free(rt));
}

static void test_mt_many_sleeps_on_many_workers_all_fire(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_new(4);
    asyncio_join_handle *jh[500];
    for (int i = 0; i < 500; i++)
        assert_ok(asyncio_spawn(rt, &napper_vt, &(napper){.ms = (uint64_t)(i % 20)}, &jh[i]));
    for (int i = 0; i < 500; i++) {
        while (!asyncio_join_handle_is_finished(jh[i]))
            sched_yield();
        asyncio_join_handle_drop(jh[i]);
    }
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- a wake from another thread racing with runtime free ------------------------------ */

typedef struct remote_wait {
    pthread_mutex_t m;
    asyncio_waker w;
    bool fired;
} remote_wait;

static int remote_wait_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    remote_wait *r = *(remote_wait **)state;
    pthread_mutex_lock(&r->m);
    bool fired = r->fired;
    if (!fired)
        asyncio_waker_store(&r->w, cx->waker);
    pthread_mutex_unlock(&r->m);
    return fired ? 0 : ASYNCIO_PENDING;
}

static const asyncio_task_vtable remote_wait_vt = {remote_wait_poll, NULL, NULL,
                                                   sizeof(remote_wait *), 0};

static void *remote_waker(void *p)
{
    remote_wait *r = p;
    for (;;) {
        pthread_mutex_lock(&r->m);
        asyncio_waker w = r->w;
        r->w = ASYNCIO_WAKER_EMPTY;
        if (w.vtable != NULL)
            r->fired = true;
        pthread_mutex_unlock(&r->m);
        if (w.vtable != NULL) {
            asyncio_waker_wake(&w); /* the runtime may be freed while this runs */
            return NULL;
        }
        sched_yield();
    }
}

/*
 * Regression: a wake from a non-runtime thread published the entry, then
 * still unparked a worker (or the driver); the task could finish and the
 * owner free the runtime in between (TSan: cond_signal vs cond_destroy).
 * Free now waits for remote schedule calls in progress.
 */
static void test_runtime_free_right_after_a_remote_wake_is_safe(void **state)
{
    (void)state;
    for (int flavour = 0; flavour < 3; flavour++) {
        for (int i = 0; i < 100; i++) {
            asyncio_runtime *rt;
            if (flavour == 0)
                assert_ok(asyncio_runtime_new(&rt, NULL));
            else
                rt = mt_new(flavour == 1 ? 1 : 4);
            remote_wait r = {.w = ASYNCIO_WAKER_EMPTY};
            pthread_mutex_init(&r.m, NULL);
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, remote_waker, &r), 0);
            remote_wait *rp = &r;
            assert_ok(asyncio_runtime_block_on(rt, &remote_wait_vt, &rp, NULL));
            assert_ok(asyncio_runtime_free(rt));
            pthread_join(th, NULL);
            pthread_mutex_destroy(&r.m);
        }
    }
}

/* ---- API edges ---------------------------------------------------------------------------- */

typedef struct nested {
    asyncio_runtime *rt;
} nested;

static int nested_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    nested *n = state;
    *(int *)output = asyncio_runtime_block_on(n->rt, &third_vt, &(third){0}, NULL);
    return 0;
}

static const asyncio_task_vtable nested_vt = {nested_poll, NULL, NULL, sizeof(nested), sizeof(int)};

static void test_mt_block_on_inside_a_task_is_ebusy(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_new(2);
    int inner = 0;
    assert_ok(asyncio_runtime_block_on(rt, &nested_vt, &(nested){rt}, &inner));
    assert_err(inner, ASYNCIO_EBUSY);
    assert_int_equal(asyncio_runtime_num_workers(rt), 2);
    asyncio_worker_metrics m;
    assert_err(asyncio_runtime_metrics(rt, 2, &m), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_metrics(rt, 0, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_metrics(NULL, 0, &m), ASYNCIO_EINVAL);
    assert_ok(asyncio_runtime_metrics(rt, 1, &m));
    assert_ok(asyncio_runtime_free(rt));
    asyncio_runtime_options bad = {.flavor = ASYNCIO_RUNTIME_MULTI_THREAD, .workers = 100000};
    asyncio_runtime *other;
    assert_err(asyncio_runtime_new(&other, &bad), ASYNCIO_EINVAL);
    assert_int_equal(asyncio_runtime_num_workers(NULL), 0);
}

static void test_current_thread_metrics_report_worker_zero(void **state)
{
    (void)state;
    asyncio_runtime *rt = NULL;
    assert_ok(asyncio_runtime_new(&rt, NULL));
    fanout f = {.n = 1000};
    long sum = -1;
    assert_ok(asyncio_runtime_block_on(rt, &fanout_vt, &f, &sum));
    asyncio_worker_metrics m, all;
    assert_ok(asyncio_runtime_metrics(rt, 0, &m));
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &all));
    assert_err(asyncio_runtime_metrics(rt, 1, &m), ASYNCIO_EINVAL);
    assert_true(m.tasks_spawned == 1000 && all.tasks_spawned == 1000);
    assert_true(m.remote_spawned == 1); /* block_on's task, spawned before it ran */
    assert_true(m.polls >= 1001);
    assert_true(m.steals == 0 && m.tasks_stolen == 0 && m.lifo_hits == 0);
    assert_true(m.unparks <= m.parks);
    assert_true(m.global_queue_depth == 0);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_mt_default_workers_is_cpu_count(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_MULTI_THREAD};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(asyncio_runtime_num_workers(rt), cpus > 0 ? (uint32_t)cpus : 1);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- the spinlock (owned-task lists, registration waker slots) ---------- */

/*
 * Four threads (more than the cores: holders get preempted, so the yield
 * path runs too) increment a plain counter under the spinlock. A lock that
 * let two in at once loses increments, and under TSan (make tsan) the
 * plain counter would be reported as a data race.
 */
typedef struct spin_shared {
    asyncio__spinlock lock;
    long counter; /* plain: guarded by lock */
    long rounds;
} spin_shared;

static void *spin_worker(void *arg)
{
    spin_shared *sh = arg;
    for (long i = 0; i < sh->rounds; i++) {
        asyncio__spin_lock(&sh->lock);
        sh->counter++;
        asyncio__spin_unlock(&sh->lock);
    }
    return NULL;
}

static void test_spinlock_admits_one_holder_at_a_time(void **state)
{
    (void)state;
    spin_shared sh = {.counter = 0, .rounds = (long)support_scale(200000)};
    atomic_init(&sh.lock.held, false);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, spin_worker, &sh), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(sh.counter, 4 * sh.rounds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_mt_million_tasks_from_several_threads_complete_exactly_once, support_setup,
            support_teardown),
        cmocka_unit_test_setup_teardown(
            test_mt_task_blocks_reused_across_workers_keep_every_task_intact, support_setup,
            support_teardown),
        cmocka_unit_test_setup_teardown(
            test_mt_blocks_freed_by_foreign_threads_during_work_and_free_all_come_back,
            support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_spawn_inside_tasks_and_join_all, support_setup,
                                        support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_ping_pong_across_workers_completes, support_setup,
                                        support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_wake_storm_from_several_threads_loses_no_wake,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_abort_racing_completion_drops_once, support_setup,
                                        support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_shutdown_while_busy_drops_every_task_once,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_pinned_tasks_never_move_between_workers,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_spawn_pinned_on_current_thread_is_spawn,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_two_spawns_from_outside_while_workers_park_both_run,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_single_worker_sees_spawn_from_outside_while_parking,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_lifo_ping_pong_does_not_starve_a_third_task,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_drop_that_wakes_another_task_during_shutdown,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_join_cycle_cancelled_at_shutdown_leaks_nothing,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(
            test_mt_timer_added_on_one_worker_wakes_driver_parked_on_another, support_setup,
            support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_many_sleeps_on_many_workers_all_fire, support_setup,
                                        support_teardown),
        cmocka_unit_test_setup_teardown(test_runtime_free_right_after_a_remote_wake_is_safe,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_block_on_inside_a_task_is_ebusy, support_setup,
                                        support_teardown),
        cmocka_unit_test_setup_teardown(test_current_thread_metrics_report_worker_zero,
                                        support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(test_mt_default_workers_is_cpu_count, support_setup,
                                        support_teardown),
        cmocka_unit_test(test_spinlock_admits_one_holder_at_a_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

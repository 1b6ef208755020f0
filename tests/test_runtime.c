/*
 * Tasks, JoinHandles and the current-thread runtime: every lifecycle
 * combination proves that the output and the cleanup (drop) happen exactly
 * once, and the counting allocator proves that nothing leaks.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "asyncio/runtime.h"
#include "hand_waker.h"
#include "task/block_cache.h"
#include "support.h"

#include <stdlib.h>

/* Counters shared by the test tasks (reset by each test's runtime helper). */
static _Atomic int g_polls, g_drops, g_output_drops;

static void reset_counters(void)
{
    atomic_store(&g_polls, 0);
    atomic_store(&g_drops, 0);
    atomic_store(&g_output_drops, 0);
}

static asyncio_runtime *new_runtime(void)
{
    reset_counters();
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    return rt;
}

/*
 * Waits until `jh` has finished. On the current-thread runtime the tasks a
 * test relies on have finished inside the preceding block_on; on the
 * multi-thread runtime they may still be running on a worker.
 */
static void wait_finished(asyncio_join_handle *jh)
{
    while (!asyncio_join_handle_is_finished(jh))
        sched_yield();
}

static void count_drop(void *state)
{
    (void)state;
    atomic_fetch_add(&g_drops, 1);
}

static void count_output_drop(void *output)
{
    (void)output;
    atomic_fetch_add(&g_output_drops, 1);
}

/* ---- a task that yields `n` times, then outputs `value` ----------------- */

typedef struct yielder {
    int n;
    int value;
    asyncio_yield y;
} yielder;

static int yielder_poll(void *state, asyncio_context *cx, void *output)
{
    yielder *s = state;
    atomic_fetch_add(&g_polls, 1);
    while (s->n > 0) {
        if (asyncio_yield_poll(&s->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        s->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        s->n--;
    }
    memcpy(output, &s->value, sizeof s->value);
    return 0;
}

static const asyncio_task_vtable yielder_vt = {yielder_poll, count_drop, count_output_drop,
                                               sizeof(yielder), sizeof(int)};

/* ---- a task that never finishes (pending forever, no waker kept) ------- */

static int forever_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    atomic_fetch_add(&g_polls, 1);
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable forever_vt = {forever_poll, count_drop, count_output_drop, 0,
                                               sizeof(int)};

/* ---- a main task that awaits one JoinHandle ----------------------------- */

typedef struct joiner {
    asyncio_join_handle *jh;
    int yields_first; /* let the joined task run (and maybe finish) before joining */
    asyncio_yield y;
    int got;
} joiner;

static int joiner_poll(void *state, asyncio_context *cx, void *output)
{
    joiner *s = state;
    while (s->yields_first > 0) {
        if (asyncio_yield_poll(&s->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        s->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        s->yields_first--;
    }
    int rc = asyncio_join_handle_poll(s->jh, cx, &s->got);
    if (rc == ASYNCIO_PENDING)
        return rc;
    memcpy(output, &s->got, sizeof s->got);
    asyncio_join_handle_drop(s->jh);
    s->jh = NULL;
    return rc;
}

static const asyncio_task_vtable joiner_vt = {joiner_poll, NULL, NULL, sizeof(joiner),
                                              sizeof(int)};

/* ------------------------------------------------------------------------ */

static void test_runtime_block_on_returns_result_and_output(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    yielder y = {.n = 3, .value = 42};
    int out = 0;
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &y, &out));
    assert_int_equal(out, 42);
    assert_int_equal(atomic_load(&g_polls), 4);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_int_equal(atomic_load(&g_output_drops), 0); /* moved out, not dropped */
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_completes_before_join(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    yielder y = {.n = 0, .value = 7};
    joiner j = {.yields_first = 3};
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &j.jh));
    int out = 0;
    assert_ok(asyncio_runtime_block_on(rt, &joiner_vt, &j, &out));
    assert_int_equal(out, 7);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_int_equal(atomic_load(&g_output_drops), 0);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_completes_after_join(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    yielder y = {.n = 20, .value = 9};
    joiner j = {.yields_first = 0};
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &j.jh));
    int out = 0;
    assert_ok(asyncio_runtime_block_on(rt, &joiner_vt, &j, &out));
    assert_int_equal(out, 9);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_abort_before_first_poll_cancels_without_polling(void **state)
{
    (void)state;
    /*
     * Current-thread only: it relies on a task spawned outside block_on not
     * being polled before block_on runs; multi-thread workers poll it at
     * once (the abort-while-running paths are covered by the other tests
     * and tests/test_mt.c).
     */
    if (support_runtime_is_mt())
        skip();
    asyncio_runtime *rt = new_runtime();
    joiner j = {0};
    assert_ok(asyncio_spawn(rt, &forever_vt, NULL, &j.jh));
    assert_ok(asyncio_join_handle_abort(j.jh));
    int out = -1;
    assert_err(asyncio_runtime_block_on(rt, &joiner_vt, &j, &out), ASYNCIO_ECANCELED);
    assert_int_equal(atomic_load(&g_polls), 0);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_int_equal(atomic_load(&g_output_drops), 0); /* a cancelled task has no output */
    assert_ok(asyncio_runtime_free(rt));
}

/* Aborts a sibling that is idle (pending forever) from inside another task. */
typedef struct aborter {
    asyncio_join_handle *victim;
    int phase;
    asyncio_yield y;
} aborter;

static int aborter_poll(void *state, asyncio_context *cx, void *output)
{
    aborter *s = state;
    (void)output;
    if (s->phase == 0) {
        /*
         * Let the victim run once (and park), then abort it while idle. On
         * the multi-thread runtime the victim may not have run yet after one
         * yield: wait for its first poll.
         */
        if (asyncio_yield_poll(&s->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        if (atomic_load(&g_polls) == 0) {
            s->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        asyncio_join_handle_abort(s->victim);
        asyncio_join_handle_abort(s->victim); /* twice: still once */
        s->phase = 1;
    }
    int rc = asyncio_join_handle_poll(s->victim, cx, NULL);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_join_handle_drop(s->victim);
    return rc;
}

static const asyncio_task_vtable aborter_vt = {aborter_poll, NULL, NULL, sizeof(aborter), 0};

static void test_task_abort_while_idle_runs_drop_once(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    aborter a = {0};
    assert_ok(asyncio_spawn(rt, &forever_vt, NULL, &a.victim));
    assert_err(asyncio_runtime_block_on(rt, &aborter_vt, &a, NULL), ASYNCIO_ECANCELED);
    assert_int_equal(atomic_load(&g_polls), 1);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_ok(asyncio_runtime_free(rt));
}

/* A task that aborts itself while it is being polled. */
typedef struct self_abort {
    asyncio_join_handle *self;
} self_abort;

static _Atomic(asyncio_join_handle *) g_self_handle;

static int self_abort_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)output;
    if (atomic_load(&g_self_handle) == NULL) {
        /* Multi-thread: polled before the test published the handle; not counted. */
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    atomic_fetch_add(&g_polls, 1);
    asyncio_join_handle_abort(atomic_load(&g_self_handle));
    asyncio_waker_wake_by_ref(cx->waker); /* even woken, the cancel wins */
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable self_abort_vt = {self_abort_poll, count_drop, NULL, 0, 0};

static void test_task_abort_during_poll_cancels_after_poll_returns(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    joiner j = {0};
    atomic_store(&g_self_handle, NULL);
    assert_ok(asyncio_spawn(rt, &self_abort_vt, NULL, &j.jh));
    atomic_store(&g_self_handle, j.jh);
    assert_err(asyncio_runtime_block_on(rt, &joiner_vt, &j, NULL), ASYNCIO_ECANCELED);
    assert_int_equal(atomic_load(&g_polls), 1);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_abort_after_completion_keeps_result(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    yielder y = {.n = 0, .value = 5};
    joiner j = {.yields_first = 2};
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &j.jh));
    yielder main = {.n = 2, .value = 0};
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, NULL)); /* lets it finish */
    wait_finished(j.jh);
    assert_ok(asyncio_join_handle_abort(j.jh));
    int out = 0;
    assert_ok(asyncio_runtime_block_on(rt, &joiner_vt, &j, &out));
    assert_int_equal(out, 5);
    assert_int_equal(atomic_load(&g_drops), 2); /* the task and the main yielder */
    assert_int_equal(atomic_load(&g_output_drops), 1); /* main's output was not collected */
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_join_handle_dropped_early_drops_output_once(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    yielder y = {.n = 5, .value = 1};
    asyncio_join_handle *jh;
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &jh));
    asyncio_join_handle_drop(jh); /* detached before it finishes */
    yielder main = {.n = 10, .value = 0};
    int out;
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, &out));
    while (atomic_load(&g_output_drops) == 0)
        sched_yield(); /* multi-thread: the detached task may still run on a worker */
    assert_int_equal(atomic_load(&g_drops), 2);
    assert_int_equal(atomic_load(&g_output_drops), 1); /* the detached task's */
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_join_handle_dropped_after_completion_drops_output_once(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    yielder y = {.n = 0, .value = 1};
    asyncio_join_handle *jh;
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &jh));
    yielder main = {.n = 3, .value = 0};
    int out;
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, &out));
    wait_finished(jh);
    assert_int_equal(atomic_load(&g_output_drops), 0);
    asyncio_join_handle_drop(jh);
    assert_int_equal(atomic_load(&g_output_drops), 1);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- wakers kept past completion, and woken from another thread -------- */

static asyncio_waker g_kept;
static pthread_mutex_t g_kept_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_flag;

typedef struct waiter {
    bool registered;
} waiter;

/* Pending until g_flag is set; registers its waker in g_kept (under a mutex). */
static int waiter_poll(void *state, asyncio_context *cx, void *output)
{
    waiter *s = state;
    (void)output;
    atomic_fetch_add(&g_polls, 1);
    if (atomic_load(&g_flag))
        return 0;
    pthread_mutex_lock(&g_kept_mu);
    asyncio_waker_store(&g_kept, cx->waker);
    pthread_mutex_unlock(&g_kept_mu);
    s->registered = true;
    /* Re-check after publishing the waker, so a flag set in between is not missed. */
    return atomic_load(&g_flag) ? 0 : ASYNCIO_PENDING;
}

static const asyncio_task_vtable waiter_vt = {waiter_poll, count_drop, NULL, sizeof(waiter), 0};

static void *wake_later(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_kept_mu);
        bool ready = g_kept.vtable != NULL;
        pthread_mutex_unlock(&g_kept_mu);
        if (ready)
            break;
        sched_yield();
    }
    atomic_store(&g_flag, 1);
    pthread_mutex_lock(&g_kept_mu);
    asyncio_waker w = g_kept;
    g_kept = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&g_kept_mu);
    asyncio_waker_wake(&w); /* by value, from a non-runtime thread */
    return NULL;
}

static void test_task_woken_from_another_thread_completes(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    atomic_store(&g_flag, 0);
    g_kept = ASYNCIO_WAKER_EMPTY;
    pthread_t th;
    pthread_create(&th, NULL, wake_later, NULL);
    waiter w = {0};
    assert_ok(asyncio_runtime_block_on(rt, &waiter_vt, &w, NULL));
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&g_drops), 1);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_task_wake_after_completion_is_harmless(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    atomic_store(&g_flag, 0);
    g_kept = ASYNCIO_WAKER_EMPTY;
    /* The waiter registers a waker, then completes once the flag is set by main. */
    asyncio_join_handle *jh;
    waiter w = {0};
    assert_ok(asyncio_spawn(rt, &waiter_vt, &w, &jh));
    yielder main = {.n = 2};
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, NULL));
    /* Registered by now on current-thread; a worker may still be on it (multi-thread). */
    asyncio_waker kept = ASYNCIO_WAKER_EMPTY;
    while (kept.vtable == NULL) {
        pthread_mutex_lock(&g_kept_mu);
        kept = asyncio_waker_clone(&g_kept); /* survives the task's completion */
        pthread_mutex_unlock(&g_kept_mu);
        if (kept.vtable == NULL)
            sched_yield();
    }
    atomic_store(&g_flag, 1);
    pthread_mutex_lock(&g_kept_mu);
    asyncio_waker again = asyncio_waker_clone(&g_kept);
    pthread_mutex_unlock(&g_kept_mu);
    asyncio_waker_wake(&again);
    joiner j = {.jh = jh}; /* waits for the waiter's completion, then drops jh */
    assert_ok(asyncio_runtime_block_on(rt, &joiner_vt, &j, NULL));
    asyncio_waker_wake_by_ref(&kept); /* complete: nothing happens */
    asyncio_waker_wake(&kept);        /* by value: releases the reference */
    pthread_mutex_lock(&g_kept_mu);
    asyncio_waker last = g_kept;
    g_kept = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&g_kept_mu);
    asyncio_waker_drop(&last);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- shutdown ------------------------------------------------------------ */

static void test_runtime_shutdown_cancels_pending_tasks_once(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    asyncio_join_handle *jh[5];
    for (int i = 0; i < 5; i++)
        assert_ok(asyncio_spawn(rt, &forever_vt, NULL, &jh[i]));
    assert_ok(asyncio_spawn(rt, &forever_vt, NULL, NULL)); /* detached */
    yielder main = {.n = 3};
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, NULL));
    asyncio_runtime_shutdown(rt);
    assert_int_equal(atomic_load(&g_drops), 7); /* 6 + main */
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    for (int i = 0; i < 5; i++) {
        assert_err(asyncio_join_handle_poll(jh[i], &cx, NULL), ASYNCIO_ECANCELED);
        asyncio_join_handle_drop(jh[i]);
    }
    assert_err(asyncio_spawn(rt, &forever_vt, NULL, NULL), ASYNCIO_ECANCELED);
    asyncio_runtime_shutdown(rt); /* idempotent */
    assert_int_equal(atomic_load(&g_drops), 7);
    assert_ok(asyncio_runtime_free(rt));
}

/* A drop that wakes another task and tries to spawn, during shutdown (tokio#2082). */
static asyncio_waker g_other;
/* Guards g_other: on the multi-thread runtime both parked tasks may run at once. */
static pthread_mutex_t g_other_lock = PTHREAD_MUTEX_INITIALIZER;

static int parked_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)output;
    pthread_mutex_lock(&g_other_lock);
    asyncio_waker old = g_other;
    g_other = asyncio_waker_clone(cx->waker);
    pthread_mutex_unlock(&g_other_lock);
    asyncio_waker_drop(&old); /* outside the lock: it may free a task */
    return ASYNCIO_PENDING;
}

static asyncio_runtime *g_rt;
static _Atomic int g_spawn_failures;

static void waking_drop(void *state)
{
    (void)state;
    atomic_fetch_add(&g_drops, 1);
    pthread_mutex_lock(&g_other_lock);
    asyncio_waker other = g_other;
    g_other = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&g_other_lock);
    asyncio_waker_wake(&other); /* the other task may already be cancelled: harmless */
    int rc = asyncio_spawn(g_rt, &forever_vt, NULL, NULL);
    if (rc != ASYNCIO_ECANCELED)
        atomic_fetch_add(&g_spawn_failures, 1); /* checked on the main thread */
}

static const asyncio_task_vtable parked_vt = {parked_poll, waking_drop, NULL, 0, 0};

static void test_runtime_shutdown_with_drop_that_wakes_and_spawns_does_not_deadlock(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    g_rt = rt;
    g_other = ASYNCIO_WAKER_EMPTY;
    assert_ok(asyncio_spawn(rt, &parked_vt, NULL, NULL));
    assert_ok(asyncio_spawn(rt, &parked_vt, NULL, NULL));
    yielder main = {.n = 2};
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, NULL));
    asyncio_runtime_shutdown(rt);
    assert_int_equal(atomic_load(&g_spawn_failures), 0);
    assert_int_equal(atomic_load(&g_drops), 3); /* two parked tasks + main */
    asyncio_waker_drop(&g_other);
    assert_ok(asyncio_runtime_free(rt));
}

/* Two tasks awaiting each other's JoinHandle, then aborted (tokio#4724): no leak. */
typedef struct cyclic {
    asyncio_join_handle **slot; /* the other task's handle, filled in after both exist */
} cyclic;

static asyncio_join_handle *g_cycle[2];
/* Set (release) once both slots are filled: on the multi-thread runtime the tasks may run first. */
static _Atomic bool g_cycle_ready;

static int cyclic_poll(void *state, asyncio_context *cx, void *output)
{
    cyclic *s = state;
    (void)output;
    if (!atomic_load_explicit(&g_cycle_ready, memory_order_acquire)) {
        asyncio_waker_wake_by_ref(cx->waker); /* try again later */
        return ASYNCIO_PENDING;
    }
    return asyncio_join_handle_poll(*s->slot, cx, NULL);
}

static void cyclic_drop(void *state)
{
    cyclic *s = state;
    atomic_fetch_add(&g_drops, 1);
    asyncio_join_handle_drop(*s->slot);
}

static const asyncio_task_vtable cyclic_vt = {cyclic_poll, cyclic_drop, NULL, sizeof(cyclic), 0};

/*
 * Lets both run (and wait on each other), then aborts A. Only A: B's
 * handle belongs to A, which drops it when cancelled, and B then finishes
 * (its await of A fails) and may be freed at once on another worker, so
 * touching B's handle after aborting A would be a use-after-free on the
 * multi-thread runtime. A cannot finish before the abort (it waits on B,
 * which waits on A), so its handle is still alive here.
 */
static int cycle_main_poll(void *state, asyncio_context *cx, void *output)
{
    asyncio_yield *y = state;
    (void)output;
    if (asyncio_yield_poll(y, cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    asyncio_join_handle_abort(g_cycle[0]);
    return 0;
}

static const asyncio_task_vtable cycle_main_vt = {cycle_main_poll, NULL, NULL,
                                                  sizeof(asyncio_yield), 0};

static void test_task_join_cycle_aborted_does_not_leak(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    asyncio_join_handle *slot_a = NULL, *slot_b = NULL, *ha, *hb;
    cyclic sa = {&slot_a}, sb = {&slot_b};
    atomic_store(&g_cycle_ready, false);
    assert_ok(asyncio_spawn(rt, &cyclic_vt, &sa, &ha));
    assert_ok(asyncio_spawn(rt, &cyclic_vt, &sb, &hb));
    slot_a = hb; /* A owns B's handle */
    slot_b = ha; /* B owns A's handle */
    g_cycle[0] = ha;
    g_cycle[1] = hb;
    atomic_store_explicit(&g_cycle_ready, true, memory_order_release);
    asyncio_yield y = ASYNCIO_YIELD_INIT;
    assert_ok(asyncio_runtime_block_on(rt, &cycle_main_vt, &y, NULL));
    /* block_on returns when main is done; the queued cancellations run at shutdown. */
    asyncio_runtime_shutdown(rt);
    assert_int_equal(atomic_load(&g_drops), 2);
    assert_ok(asyncio_runtime_free(rt)); /* the fixture checks that no block is left */
}

/* ---- cooperative budget -------------------------------------------------- */

static _Atomic long g_spins;

/* Always finds its "resource" ready: without the budget it would never return. */
static int spinner_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)output;
    for (;;) {
        if (atomic_load(&g_flag))
            return 0;
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        atomic_fetch_add(&g_spins, 1);
    }
}

static const asyncio_task_vtable spinner_vt = {spinner_poll, NULL, NULL, 0, 0};

static int flag_setter_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    atomic_store(&g_flag, 1);
    return 0;
}

static const asyncio_task_vtable flag_setter_vt = {flag_setter_poll, NULL, NULL, 0, 0};

static void test_runtime_budget_keeps_a_never_pending_task_from_starving_others(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    atomic_store(&g_flag, 0);
    atomic_store(&g_spins, 0);
    /* The spinner runs as the main task; the setter is queued behind it. */
    assert_ok(asyncio_spawn(rt, &flag_setter_vt, NULL, NULL));
    assert_ok(asyncio_runtime_block_on(rt, &spinner_vt, NULL, NULL));
    assert_true(atomic_load(&g_flag));
    /*
     * The spin bound holds where the two tasks share one thread. With 4
     * workers the setter runs in parallel on another one and the spinner
     * keeps spinning until it sees the flag: there, termination is the test.
     */
    if (support_runtime_kind_get() != SUPPORT_RT_MT4)
        assert_true(atomic_load(&g_spins) <= 2 * ASYNCIO_COOP_BUDGET);
    assert_ok(asyncio_runtime_free(rt));
}

/* A busy task must not starve I/O: a reader waiting on a socketpair still gets its data. */
#include "asyncio/async_fd.h"

typedef struct reader {
    asyncio_async_fd *afd;
    char buf[8];
} reader;

static int reader_poll(void *state, asyncio_context *cx, void *output)
{
    reader *r = state;
    (void)output;
    size_t n;
    int rc = asyncio_async_fd_poll_read(r->afd, cx, r->buf, sizeof r->buf, &n);
    if (rc != 0)
        return rc;
    atomic_store(&g_flag, 1);
    return 0;
}

static void reader_drop(void *state)
{
    asyncio_async_fd_free(((reader *)state)->afd);
}

static const asyncio_task_vtable reader_vt = {reader_poll, reader_drop, NULL, sizeof(reader), 0};

/* Main: registers the reader, then spins (cooperatively) until it has read. */
typedef struct io_main {
    int fd;
    bool started;
} io_main;

static int io_main_poll(void *state, asyncio_context *cx, void *output)
{
    io_main *m = state;
    (void)output;
    if (!m->started) {
        reader r = {0};
        int rc = asyncio_async_fd_new(&r.afd, m->fd, ASYNCIO_READABLE);
        if (rc < 0)
            return rc;
        if ((rc = asyncio_spawn(asyncio_runtime_current(), &reader_vt, &r, NULL)) < 0)
            return rc;
        m->started = true;
    }
    return spinner_poll(NULL, cx, NULL);
}

static const asyncio_task_vtable io_main_vt = {io_main_poll, NULL, NULL, sizeof(io_main), 0};

static void test_runtime_busy_task_cannot_starve_io(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    atomic_store(&g_flag, 0);
    int sv[2];
    support_socketpair(sv);
    support_write_n(sv[1], 4); /* ready before anyone waits: only a driver turn can tell */
    io_main m = {.fd = sv[0]};
    assert_ok(asyncio_runtime_block_on(rt, &io_main_vt, &m, NULL));
    assert_true(atomic_load(&g_flag));
    assert_ok(asyncio_runtime_free(rt));
    close(sv[0]);
    close(sv[1]);
}

/* Leaks its async fd on purpose: the runtime must refuse to be freed while it lives. */
typedef struct leaker {
    int fd;
    asyncio_async_fd **out;
} leaker;

static int leaker_poll(void *state, asyncio_context *cx, void *output)
{
    leaker *l = state;
    (void)cx;
    (void)output;
    return asyncio_async_fd_new(l->out, l->fd, ASYNCIO_READABLE);
}

static const asyncio_task_vtable leaker_vt = {leaker_poll, NULL, NULL, sizeof(leaker), 0};

static void test_runtime_free_with_live_registration_is_ebusy(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    int sv[2];
    support_socketpair(sv);
    asyncio_async_fd *afd = NULL;
    leaker l = {sv[0], &afd};
    assert_ok(asyncio_runtime_block_on(rt, &leaker_vt, &l, NULL));
    assert_err(asyncio_runtime_free(rt), ASYNCIO_EBUSY);
    assert_ok(asyncio_async_fd_free(afd));
    assert_ok(asyncio_runtime_free(rt));
    close(sv[0]);
    close(sv[1]);
}

/* ---- errors ---------------------------------------------------------------- */

static void test_runtime_invalid_arguments(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    assert_err(asyncio_runtime_new(NULL, NULL), ASYNCIO_EINVAL);
    asyncio_runtime_options bad = {.flavor = (asyncio_runtime_flavor)9};
    asyncio_runtime *other;
    assert_err(asyncio_runtime_new(&other, &bad), ASYNCIO_EINVAL);
    assert_err(asyncio_spawn(NULL, &forever_vt, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_spawn(rt, NULL, NULL, NULL), ASYNCIO_EINVAL);
    asyncio_task_vtable no_poll = {NULL, NULL, NULL, 0, 0};
    assert_err(asyncio_spawn(rt, &no_poll, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_block_on(NULL, &forever_vt, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_join_handle_poll(NULL, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_join_handle_abort(NULL), ASYNCIO_EINVAL);
    asyncio_join_handle_drop(NULL);
    assert_null(asyncio_runtime_current());
    assert_ok(asyncio_runtime_free(NULL));
    assert_ok(asyncio_runtime_free(rt));
}

/* block_on from inside a task is refused. */
static int nested_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    int *out = output;
    asyncio_runtime *rt = asyncio_runtime_current();
    *out = rt != NULL ? asyncio_runtime_block_on(rt, &flag_setter_vt, NULL, NULL) : -1;
    return 0;
}

static const asyncio_task_vtable nested_vt = {nested_poll, NULL, NULL, 0, sizeof(int)};

static void test_runtime_block_on_inside_a_task_is_ebusy(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    int out = 0;
    assert_ok(asyncio_runtime_block_on(rt, &nested_vt, NULL, &out));
    assert_err(out, ASYNCIO_EBUSY);
    assert_ok(asyncio_runtime_free(rt));
}

/* The backend in use, by query and in the metrics: the one asked for, or its fallback. */
static void test_runtime_reports_the_backend_in_use(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    const char *expect = getenv("ASYNCIO_TEST_EXPECT_BACKEND"); /* ctest's fallback entries */
    const char *asked = getenv("ASYNCIO_BACKEND");
    if (expect == NULL)
        expect = asked != NULL && asked[0] != '\0' ? asked : "epoll";
    assert_string_equal(asyncio_runtime_backend(rt), expect);
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m));
    assert_string_equal(m.backend, expect);
    assert_ok(asyncio_runtime_metrics(rt, 0, &m));
    assert_string_equal(m.backend, expect);
    assert_string_equal(asyncio_runtime_backend(NULL), "none");
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- task-block reuse (src/task/block_cache.h) --------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static int value_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    memcpy(output, state, sizeof(int));
    return 0;
}

static const asyncio_task_vtable value_vt = {value_poll, NULL, NULL, sizeof(int), sizeof(int)};

typedef struct reuse_main {
    asyncio_runtime *rt;
    int step;
    asyncio_join_handle *jh;
    const void *first_block; /* the first task's JoinHandle, dropped: compared, never used */
    uint64_t first_id;
    bool poisoned; /* ASan builds: the dropped block was poisoned while cached */
    asyncio_task_info info[4];
    size_t ntasks;
    int got;
} reuse_main;

static int reuse_main_poll(void *state, asyncio_context *cx, void *output)
{
    reuse_main *m = *(reuse_main **)state; /* the test's own struct: it reads the results */
    (void)output;
    int rc;
    switch (m->step) {
    case 0: { /* spawn the first task, named, and collect it */
        int v = 7;
        asyncio_spawn_options o = {.name = "first"};
        assert_ok(asyncio_spawn_with(m->rt, &value_vt, &v, &o, &m->jh));
        m->step = 1;
    } /* fall through */
    case 1:
        if ((rc = asyncio_join_handle_poll(m->jh, cx, &m->got)) == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        assert_int_equal(m->got, 7);
        m->first_block = m->jh;
        m->first_id = asyncio_join_handle_id(m->jh);
        asyncio_join_handle_drop(m->jh); /* the last reference: the block goes to the cache */
#ifdef TEST_ASAN
        m->poisoned = __asan_address_is_poisoned(m->first_block) != 0;
#else
        m->poisoned = true;
#endif
        { /* a task of the same size class, from the same thread: it gets that block */
            int v = 9;
            asyncio_spawn_options o = {.name = "again"};
            assert_ok(asyncio_spawn_with(m->rt, &value_vt, &v, &o, &m->jh));
        }
        assert_ok(asyncio_runtime_tasks(m->rt, m->info, 4, &m->ntasks));
        m->step = 2;
        /* fall through */
    case 2:
        if ((rc = asyncio_join_handle_poll(m->jh, cx, &m->got)) == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static const asyncio_task_vtable reuse_main_vt = {reuse_main_poll, NULL, NULL, sizeof(reuse_main *),
                                                  0};

/*
 * A finished task's block is reused by the next spawn on the same thread,
 * and the new task is new in every respect: its own id, name, output, join
 * state and (tracked) record; nothing of the first task shows through its
 * handle or the task list. Under ASan the block was poisoned while cached,
 * so a stale JoinHandle touching it would have been reported.
 */
static void test_task_block_reused_from_the_cache_is_a_fresh_task(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_CURRENT_THREAD, .track_tasks = true};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    reuse_main m;
    memset(&m, 0, sizeof m);
    m.rt = rt;
    reuse_main *mp = &m;
    assert_ok(asyncio_runtime_block_on(rt, &reuse_main_vt, &mp, NULL));
    assert_true(m.poisoned);
    assert_ptr_equal((const void *)m.jh, m.first_block); /* the block was reused */
    assert_int_equal(m.got, 9);                          /* its own output */
    assert_int_not_equal(asyncio_join_handle_id(m.jh), m.first_id);
    assert_string_equal(asyncio_join_handle_name(m.jh), "again");
    assert_true(asyncio_join_handle_is_finished(m.jh));
    /* The list taken right after the spawn: the new task, never polled, fresh record. */
    bool seen = false;
    for (size_t i = 0; i < m.ntasks; i++) {
        assert_int_not_equal(m.info[i].id, m.first_id);
        if (m.info[i].id != asyncio_join_handle_id(m.jh))
            continue;
        seen = true;
        assert_string_equal(m.info[i].name, "again");
        assert_int_equal(m.info[i].state, ASYNCIO_TASK_SCHEDULED);
        assert_true(m.info[i].tracked);
        assert_int_equal(m.info[i].polls, 0);
        assert_int_equal(m.info[i].longest_poll_us, 0);
        assert_string_equal(m.info[i].waiting_on, "");
    }
    assert_true(seen);
    asyncio_join_handle_drop(m.jh);
    assert_ok(asyncio_runtime_free(rt)); /* the teardown checks the cache gave every block back */
}

/*
 * Spawns n value tasks (task i outputs i) once, all alive at once, then joins
 * them in order, checking each output; drops each handle after its join when
 * `drop`, else leaves them in jh[]. 0 when all are joined, else ASYNCIO_PENDING.
 */
static int spawn_values_and_join(asyncio_runtime *rt, asyncio_context *cx,
                                 asyncio_join_handle **jh, int n, bool *spawned, int *joined,
                                 bool drop)
{
    if (!*spawned) {
        for (int i = 0; i < n; i++)
            assert_ok(asyncio_spawn(rt, &value_vt, &i, &jh[i]));
        *spawned = true;
    }
    for (; *joined < n; (*joined)++) {
        int got;
        int rc = asyncio_join_handle_poll(jh[*joined], cx, &got);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        assert_int_equal(got, *joined);
        if (drop)
            asyncio_join_handle_drop(jh[*joined]);
    }
    return 0;
}

/* A burst of BURST tasks alive at once, then all joined: how many blocks stay live after. */
#define BURST 3000

typedef struct burst_main {
    asyncio_runtime *rt;
    asyncio_join_handle **jh;
    int joined;
    bool spawned;
    long live_before, live_after, allocs_respawn;
} burst_main;

static int burst_main_poll(void *state, asyncio_context *cx, void *output)
{
    burst_main *m = *(burst_main **)state;
    (void)output;
    if (!m->spawned)
        m->live_before = support_alloc_live();
    if (spawn_values_and_join(m->rt, cx, m->jh, BURST, &m->spawned, &m->joined, true) ==
        ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    m->live_after = support_alloc_live();
    /* The next spawns of the class are served from the slab: no allocation. */
    long total = support_alloc_total();
    for (int i = 0; i < 8; i++) {
        asyncio_join_handle *jh;
        assert_ok(asyncio_spawn(m->rt, &value_vt, &i, &jh));
        asyncio_join_handle_drop(jh);
    }
    m->allocs_respawn = support_alloc_total() - total;
    return 0;
}

static const asyncio_task_vtable burst_main_vt = {burst_main_poll, NULL, NULL, sizeof(burst_main *),
                                                  0};

/*
 * The task-block slab gives memory back: after a burst of 3,000 tasks alive
 * at once has finished (six chunks of blocks), it keeps the chunk it
 * allocates from and one spare; the others went back to the allocator as
 * they emptied. The blocks it keeps serve the next spawns without
 * allocating. The teardown checks the runtime's free gave those back too.
 */
static void test_task_slab_keeps_two_chunks_after_a_burst(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_CURRENT_THREAD};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    burst_main m = {.rt = rt, .jh = calloc(BURST, sizeof(asyncio_join_handle *))};
    assert_non_null(m.jh);
    burst_main *mp = &m;
    assert_ok(asyncio_runtime_block_on(rt, &burst_main_vt, &mp, NULL));
    free(m.jh);
    long kept = m.live_after - m.live_before;
    assert_true(kept > 0);  /* the slab kept some: the next spawns reuse them */
    assert_true(kept <= 2); /* the current chunk and a spare, of the six */
    assert_int_equal(m.allocs_respawn, 0);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- blocks freed on other threads; blocks outliving their runtime ------- */

#define XFREE_N 2000

/* block_on's task: spawns XFREE_N tasks and joins them all, keeping the handles. */
typedef struct xfree_main {
    asyncio_runtime *rt;
    asyncio_join_handle *jh[XFREE_N];
    int joined;
    bool spawned;
} xfree_main;

static int xfree_main_poll(void *state, asyncio_context *cx, void *output)
{
    xfree_main *m = *(xfree_main **)state;
    (void)output;
    return spawn_values_and_join(m->rt, cx, m->jh, XFREE_N, &m->spawned, &m->joined, false);
}

static const asyncio_task_vtable xfree_main_vt = {xfree_main_poll, NULL, NULL,
                                                  sizeof(xfree_main *), 0};

/* Runs xfree_main on rt: XFREE_N finished tasks whose handles m->jh holds. */
static void xfree_round(asyncio_runtime *rt, xfree_main *m)
{
    memset(m, 0, sizeof *m);
    m->rt = rt;
    assert_ok(asyncio_runtime_block_on(rt, &xfree_main_vt, &m, NULL));
}

typedef struct dropper {
    asyncio_join_handle **jh;
    int n;
} dropper;

/* A thread that is no runtime's: every block it frees goes to its chunk's remote list. */
static void *drop_handles(void *arg)
{
    dropper *d = arg;
    for (int i = 0; i < d->n; i++)
        asyncio_join_handle_drop(d->jh[i]);
    return NULL;
}

static void drop_on_another_thread(asyncio_join_handle **jh, int n)
{
    dropper d = {jh, n};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drop_handles, &d), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

/*
 * Blocks freed on a thread that does not own their chunk (here, a plain
 * thread dropping the last JoinHandles) are taken back by the owner and
 * reused: twelve rounds of 2,000 tasks whose blocks are all freed that way
 * need no more memory than the second round did. (Without the owner's
 * sweep of its chunks' remote lists every round would add four chunks.)
 */
static void test_task_blocks_freed_on_another_thread_are_reused(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_CURRENT_THREAD};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    xfree_main *m = malloc(sizeof *m);
    assert_non_null(m);
    long live_second = 0;
    for (int round = 0; round < 12; round++) {
        xfree_round(rt, m);
        drop_on_another_thread(m->jh, XFREE_N);
        if (round == 1)
            live_second = support_alloc_live();
    }
    assert_true(support_alloc_live() <= live_second);
    free(m);
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * JoinHandles kept past asyncio_runtime_free keep their blocks, and so the
 * chunks holding them (orphaned: their slab is gone); the last block of a
 * chunk freed, from whichever thread, frees the chunk. Half the handles are
 * dropped here, half on another thread: every allocation is given back.
 */
static void test_task_blocks_outliving_their_runtime_go_with_their_last_handle(void **state)
{
    (void)state;
    long live0 = support_alloc_live();
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_CURRENT_THREAD};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    xfree_main *m = malloc(sizeof *m);
    assert_non_null(m);
    xfree_round(rt, m);
    assert_ok(asyncio_runtime_free(rt));
    assert_true(support_alloc_live() > live0); /* the blocks the handles hold */
    int half = XFREE_N / 2;
    for (int i = 0; i < half; i++) {
        assert_int_equal(asyncio_join_handle_id(m->jh[i]) != 0, true); /* still readable */
        asyncio_join_handle_drop(m->jh[i]);
    }
    assert_true(support_alloc_live() > live0);
    drop_on_another_thread(m->jh + half, XFREE_N - half);
    assert_int_equal(support_alloc_live(), live0);
    free(m);
}

/* The orphan hook's work: drop every handle, once, on this (now foreign) thread. */
static xfree_main *g_orphan_m;
static int g_orphan_hook_runs;

static void drop_all_in_orphan(void)
{
    if (g_orphan_hook_runs++ > 0)
        return;
    for (int i = 0; i < XFREE_N; i++)
        asyncio_join_handle_drop(g_orphan_m->jh[i]);
}

/*
 * The last blocks of a chunk freed between the ORPHAN mark and the
 * orphaning's own subtraction (the test hook runs there, at the first chunk,
 * whose remote stack is empty): the chunk is freed exactly once and nothing
 * touches it after. The first version of chunk_orphan took no hold of its
 * own, so these frees took the live count to zero and freed the chunk, and
 * the orphaning then read and freed it again (ASan: heap-use-after-free;
 * found by tests/model/slab.pml, BUG4). Every allocation comes back.
 */
static void test_task_blocks_freed_while_their_chunk_is_orphaned_free_it_once(void **state)
{
    (void)state;
    long live0 = support_alloc_live();
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_CURRENT_THREAD};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    xfree_main *m = malloc(sizeof *m);
    assert_non_null(m);
    xfree_round(rt, m);
    g_orphan_m = m;
    g_orphan_hook_runs = 0;
    asyncio__slab_orphan_hook = drop_all_in_orphan;
    int rc = asyncio_runtime_free(rt);
    asyncio__slab_orphan_hook = NULL;
    assert_ok(rc);
    assert_true(g_orphan_hook_runs > 0);
    assert_int_equal(support_alloc_live(), live0);
    free(m);
}

/*
 * Dropping the JoinHandle of a finished task (the one-RMW path of
 * asyncio_join_handle_drop): the output nobody collected is dropped once,
 * the waker the runtime left in the slot after waking it is released, and
 * the block goes (counting allocator). Also a handle never polled.
 */
static void test_join_handle_dropped_after_completion_releases_output_and_waker(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    hand *h = hand_new();
    yielder y = {.n = 3, .value = 7};
    asyncio_join_handle *polled, *unpolled;
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &polled));
    assert_ok(asyncio_spawn(rt, &yielder_vt, &y, &unpolled));
    int rc = asyncio_join_handle_poll(polled, &h->cx, NULL);
    if (rc == ASYNCIO_PENDING)
        assert_int_equal(hand_refs(h), 1); /* the slot holds a clone */
    else
        assert_ok(rc); /* a worker finished it already: nothing stored */
    yielder main = {.n = 8, .value = 0};
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, NULL)); /* lets them finish */
    wait_finished(polled);
    wait_finished(unpolled);
    asyncio_join_handle_drop(polled);
    asyncio_join_handle_drop(unpolled);
    assert_ok(asyncio_runtime_free(rt)); /* every task finished: no waker use after this */
    assert_int_equal(hand_refs(h), 0);   /* the slot's clone was released, by whichever side */
    assert_int_equal(hand_wakes(h), rc == ASYNCIO_PENDING ? 1 : 0);
    /* main's output and both tasks' (not collected: polled with a NULL output buffer) */
    assert_int_equal(atomic_load(&g_output_drops), 3);
    free(h);
}

/* ---- task ids: unique across threads (per-worker ranges) ------------------- */

#define ID_SPAWNERS 16
#define ID_CHILDREN 40

static uint64_t g_ids[ID_SPAWNERS * (ID_CHILDREN + 1)];
static _Atomic int g_id_n;

static int id_child_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state, (void)cx, (void)output;
    return 0;
}

static const asyncio_task_vtable id_child_vt = {id_child_poll, NULL, NULL, 0, 0};

/* Records its own id and spawns (and records) ID_CHILDREN children, yielding between. */
static int id_spawner_poll(void *state, asyncio_context *cx, void *output)
{
    int *left = state;
    (void)output;
    if (*left == ID_CHILDREN)
        g_ids[atomic_fetch_add(&g_id_n, 1)] = asyncio_task_id();
    while (*left > 0) {
        asyncio_join_handle *jh;
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &id_child_vt, NULL, &jh));
        g_ids[atomic_fetch_add(&g_id_n, 1)] = asyncio_join_handle_id(jh);
        asyncio_join_handle_drop(jh);
        if (--*left % 8 == 0 && *left > 0) {
            asyncio_waker_wake_by_ref(cx->waker); /* let other workers spawn meanwhile */
            return ASYNCIO_PENDING;
        }
    }
    return 0;
}

static const asyncio_task_vtable id_spawner_vt = {id_spawner_poll, NULL, NULL, sizeof(int), 0};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Spawned from outside (one id each) and from tasks on every worker (a range each). */
static void test_task_ids_are_unique_across_threads_and_never_zero(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    atomic_store(&g_id_n, 0);
    asyncio_join_handle *jh[ID_SPAWNERS];
    for (int i = 0; i < ID_SPAWNERS; i++) {
        int left = ID_CHILDREN;
        assert_ok(asyncio_spawn(rt, &id_spawner_vt, &left, &jh[i]));
    }
    yielder main = {.n = 50, .value = 0}; /* current-thread: the spawners run meanwhile */
    assert_ok(asyncio_runtime_block_on(rt, &yielder_vt, &main, NULL));
    for (int i = 0; i < ID_SPAWNERS; i++) {
        wait_finished(jh[i]);
        asyncio_join_handle_drop(jh[i]);
    }
    assert_ok(asyncio_runtime_free(rt));
    int n = atomic_load(&g_id_n);
    assert_int_equal(n, ID_SPAWNERS * (ID_CHILDREN + 1));
    qsort(g_ids, (size_t)n, sizeof g_ids[0], cmp_u64);
    assert_true(g_ids[0] != 0);
    for (int i = 1; i < n; i++)
        assert_true(g_ids[i] != g_ids[i - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_runtime_block_on_returns_result_and_output),
        support_test(test_join_handle_dropped_after_completion_releases_output_and_waker),
        support_test(test_task_ids_are_unique_across_threads_and_never_zero),
        support_test(test_runtime_reports_the_backend_in_use),
        support_test(test_task_completes_before_join),
        support_test(test_task_completes_after_join),
        support_test(test_task_abort_before_first_poll_cancels_without_polling),
        support_test(test_task_abort_while_idle_runs_drop_once),
        support_test(test_task_abort_during_poll_cancels_after_poll_returns),
        support_test(test_task_abort_after_completion_keeps_result),
        support_test(test_task_join_handle_dropped_early_drops_output_once),
        support_test(test_task_join_handle_dropped_after_completion_drops_output_once),
        support_test(test_task_woken_from_another_thread_completes),
        support_test(test_task_wake_after_completion_is_harmless),
        support_test(test_runtime_shutdown_cancels_pending_tasks_once),
        support_test(test_runtime_shutdown_with_drop_that_wakes_and_spawns_does_not_deadlock),
        support_test(test_task_join_cycle_aborted_does_not_leak),
        support_test(test_runtime_budget_keeps_a_never_pending_task_from_starving_others),
        support_test(test_runtime_busy_task_cannot_starve_io),
        support_test(test_runtime_free_with_live_registration_is_ebusy),
        support_test(test_runtime_invalid_arguments),
        support_test(test_runtime_block_on_inside_a_task_is_ebusy),
        support_test(test_task_block_reused_from_the_cache_is_a_fresh_task),
        support_test(test_task_slab_keeps_two_chunks_after_a_burst),
        support_test(test_task_blocks_freed_on_another_thread_are_reused),
        support_test(test_task_blocks_outliving_their_runtime_go_with_their_last_handle),
        support_test(test_task_blocks_freed_while_their_chunk_is_orphaned_free_it_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

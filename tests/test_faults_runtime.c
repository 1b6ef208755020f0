/*
 * Allocation-failure sweep over the runtime (tests/support/alloc_sweep.h;
 * docs/testing.md): spawn and join, abort, JoinSet, the blocking pool,
 * timers, timeout and select. Every allocation each scenario reaches is
 * failed once: the failure reaches the caller as ASYNCIO_ENOMEM, nothing
 * leaks, nothing hangs, and runs that complete have the right outputs.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_sweep.h"
#include "asyncio.h"
#include "platform/os_table.h"
#include "support.h"

#include <errno.h>

/* A child: yields twice, then outputs 10 * its input. */
typedef struct child {
    asyncio_coro co;
    int in;
} child;

static int child_poll(void *state, asyncio_context *cx, void *out)
{
    child *c = state;
    ASYNCIO_BEGIN(c->co);
    ASYNCIO_YIELD(c->co, cx);
    ASYNCIO_YIELD(c->co, cx);
    ASYNCIO_END(c->co);
    *(int *)out = 10 * c->in;
    return 0;
}

static const asyncio_task_vtable child_vt = {child_poll, NULL, NULL, sizeof(child), sizeof(int)};

/* A task that sleeps far longer than any scenario runs: it is aborted. */
typedef struct sleeper {
    asyncio_sleep s;
    bool init;
} sleeper;

static int sleeper_poll(void *state, asyncio_context *cx, void *out)
{
    sleeper *z = state;
    (void)out;
    if (!z->init) {
        asyncio_sleep_init(&z->s, 60000);
        z->init = true;
    }
    return asyncio_sleep_poll(&z->s, cx);
}

static void sleeper_drop(void *state)
{
    sleeper *z = state;
    if (z->init)
        asyncio_sleep_drop(&z->s);
}

static const asyncio_task_vtable sleeper_vt = {sleeper_poll, sleeper_drop, NULL, sizeof(sleeper),
                                               0};

/* ------------------------------------------------------------------------ */
/* spawn / join / abort                                                       */

#define CHILDREN 3

typedef struct spawn_main {
    asyncio_coro co;
    asyncio_join_handle *jh[CHILDREN];
    asyncio_join_handle *sleeper;
    int i, out;
} spawn_main;

static int spawn_main_poll(void *state, asyncio_context *cx, void *out)
{
    spawn_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    for (m->i = 0; m->i < CHILDREN; m->i++) {
        child init = {ASYNCIO_CORO_INIT, m->i + 1};
        rc = asyncio_spawn(asyncio_runtime_current(), &child_vt, &init, &m->jh[m->i]);
        if (rc != 0)
            return rc;
    }
    rc = asyncio_spawn(asyncio_runtime_current(), &sleeper_vt, NULL, &m->sleeper);
    if (rc != 0)
        return rc;
    for (m->i = 0; m->i < CHILDREN; m->i++) {
        ASYNCIO_AWAIT_OK(m->co, rc, asyncio_join_handle_poll(m->jh[m->i], cx, &m->out));
        SWEEP_EXPECT_EQ(m->out, 10 * (m->i + 1));
    }
    SWEEP_EXPECT_EQ(asyncio_join_handle_abort(m->sleeper), 0);
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->sleeper, cx, NULL));
    SWEEP_EXPECT_EQ(rc, ASYNCIO_ECANCELED);
    ASYNCIO_END(m->co);
    return 0;
}

static void spawn_main_drop(void *state)
{
    spawn_main *m = state;
    for (int i = 0; i < CHILDREN; i++)
        if (m->jh[i] != NULL)
            asyncio_join_handle_drop(m->jh[i]);
    if (m->sleeper != NULL)
        asyncio_join_handle_drop(m->sleeper);
}

static int scenario_spawn_join(void)
{
    static const asyncio_task_vtable vt = {spawn_main_poll, spawn_main_drop, NULL,
                                           sizeof(spawn_main), 0};
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_spawn_join_abort_survive_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"spawn_join_abort", scenario_spawn_join, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* JoinSet                                                                    */

typedef struct set_main {
    asyncio_coro co;
    asyncio_join_set *js;
    int i, result, out, sum;
} set_main;

static int set_main_poll(void *state, asyncio_context *cx, void *out)
{
    set_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = asyncio_join_set_new(&m->js);
    if (rc != 0)
        return rc;
    for (m->i = 0; m->i < CHILDREN; m->i++) {
        child init = {ASYNCIO_CORO_INIT, m->i + 1};
        rc = asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &child_vt, &init, NULL,
                                    NULL);
        if (rc != 0)
            return rc;
    }
    for (;;) {
        ASYNCIO_AWAIT(m->co, rc,
                      asyncio_join_set_poll_join_next(m->js, cx, &m->result, &m->out, NULL));
        if (rc == ASYNCIO_ENOENT)
            break;
        SWEEP_EXPECT_EQ(rc, 0);
        SWEEP_EXPECT_EQ(m->result, 0);
        m->sum += m->out;
    }
    SWEEP_EXPECT_EQ(m->sum, 10 * (1 + 2 + 3));
    ASYNCIO_END(m->co);
    return 0;
}

static void set_main_drop(void *state)
{
    set_main *m = state;
    if (m->js != NULL)
        asyncio_join_set_free(m->js);
}

static int scenario_join_set(void)
{
    static const asyncio_task_vtable vt = {set_main_poll, set_main_drop, NULL, sizeof(set_main),
                                           0};
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_join_set_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"join_set", scenario_join_set, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* The blocking pool                                                         */

static int blocking_job(void *arg)
{
    int *x = arg;
    *x += 1;
    return 0;
}

/*
 * The jobs' counters live outside the task: after an early error the task ends while a
 * job it started may still run (its handle's drop detaches it). The runtime's free waits
 * for running jobs, so the counters outlive every job.
 */
static int g_counters[2];

typedef struct blocking_main {
    asyncio_coro co;
    asyncio_blocking_handle *h[2];
    int i;
} blocking_main;

static int blocking_main_poll(void *state, asyncio_context *cx, void *out)
{
    blocking_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    for (m->i = 0; m->i < 2; m->i++) {
        rc = asyncio_spawn_blocking(asyncio_runtime_current(), blocking_job, &g_counters[m->i],
                                    &m->h[m->i]);
        if (rc != 0)
            return rc;
    }
    for (m->i = 0; m->i < 2; m->i++) {
        ASYNCIO_AWAIT_OK(m->co, rc, asyncio_blocking_handle_poll(m->h[m->i], cx));
        SWEEP_EXPECT_EQ(g_counters[m->i], 1);
    }
    ASYNCIO_END(m->co);
    return 0;
}

static void blocking_main_drop(void *state)
{
    blocking_main *m = state;
    for (int i = 0; i < 2; i++)
        if (m->h[i] != NULL)
            asyncio_blocking_handle_drop(m->h[i]);
}

static int scenario_blocking(void)
{
    static const asyncio_task_vtable vt = {blocking_main_poll, blocking_main_drop, NULL,
                                           sizeof(blocking_main), 0};
    memset(g_counters, 0, sizeof g_counters);
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_blocking_pool_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"blocking_pool", scenario_blocking, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* Timers, timeout and select                                                 */

typedef struct timer_main {
    asyncio_coro co;
    asyncio_sleep short_sleep, long_sleep, a, b;
    asyncio_timeout t;
    asyncio_select sel;
    asyncio_future futs[2];
    bool t_init, sel_init;
    size_t winner;
} timer_main;

static int timer_main_poll(void *state, asyncio_context *cx, void *out)
{
    timer_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    asyncio_sleep_init(&m->short_sleep, 1);
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_sleep_poll(&m->short_sleep, cx));
    asyncio_sleep_init(&m->long_sleep, 60000);
    asyncio_timeout_init_future(&m->t, asyncio_sleep_future(&m->long_sleep), 2);
    m->t_init = true;
    ASYNCIO_AWAIT(m->co, rc, asyncio_timeout_poll(&m->t, cx));
    if (rc != ASYNCIO_ETIMEDOUT)
        return rc < 0 ? rc : ASYNCIO_EINVAL; /* a sleep of 60 s never wins */
    asyncio_sleep_init(&m->a, 1);
    asyncio_sleep_init(&m->b, 60000);
    m->futs[0] = asyncio_sleep_future(&m->a);
    m->futs[1] = asyncio_sleep_future(&m->b);
    m->sel_init = true;
    rc = asyncio_select_init(&m->sel, m->futs, 2);
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_select_poll(&m->sel, cx, &m->winner));
    SWEEP_EXPECT_EQ(m->winner, 0);
    ASYNCIO_END(m->co);
    return 0;
}

static void timer_main_drop(void *state)
{
    timer_main *m = state;
    if (m->co.resume != 0)
        asyncio_sleep_drop(&m->short_sleep);
    if (m->t_init)
        asyncio_timeout_drop(&m->t);
    if (m->sel_init)
        asyncio_select_drop(&m->sel);
}

static int scenario_timers(void)
{
    static const asyncio_task_vtable vt = {timer_main_poll, timer_main_drop, NULL,
                                           sizeof(timer_main), 0};
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_timers_timeout_select_survive_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"timers_timeout_select", scenario_timers, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* A poller wait needs no allocation. With the poll backend, a wait used to   */
/* (epoll: a wait asking for more than 256 events grew its batch the same way) */
/* grow its poll-set scratch once more than 64 fds were registered and fail   */
/* with ASYNCIO_ENOMEM when it could not: the multi-thread runtime's driver   */
/* retried at once forever (no I/O, no timers: the sweep's tcp_many hung on    */
/* poll + mt4). Now the scratch starts at 64 entries and a wait that cannot   */
/* grow it polls the registrations that fit, in turn.                         */

static atomic_bool g_refuse_all;

static void *refusing_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return atomic_load(&g_refuse_all) ? NULL : malloc(size);
}

static void *refusing_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return atomic_load(&g_refuse_all) ? NULL : realloc(ptr, size);
}

static void refusing_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

#define WAIT_PIPES 100

static void test_poller_wait_with_memory_exhausted_still_delivers_events(void **state)
{
    (void)state;
    static const asyncio_allocator a = {refusing_malloc, refusing_realloc, refusing_free, NULL};
    int pipes[WAIT_PIPES][2];
    asyncio_poller *p;
    atomic_store(&g_refuse_all, false);
    assert_ok(asyncio_set_allocator(&a));
    assert_ok(asyncio_poller_new(&p));
    for (int i = 0; i < WAIT_PIPES; i++) {
        support_pipe(pipes[i]);
        assert_ok(asyncio_poller_register_fd(p, pipes[i][0], (uintptr_t)i + 1, ASYNCIO_READABLE,
                                             ASYNCIO_LEVEL));
    }
    support_write_n(pipes[WAIT_PIPES - 1][1], 1); /* the last one registered */
    atomic_store(&g_refuse_all, true);
    bool seen = false;
    for (int turn = 0; turn < 4 && !seen; turn++) { /* 100 fds, at least 64 per wait */
        static asyncio_event ev[1024]; /* more than epoll's first batch: it would grow */
        size_t n = 0;
        assert_ok(asyncio_poller_wait(p, ev, 1024, 0, &n));
        for (size_t i = 0; i < n; i++)
            seen |= ev[i].token == WAIT_PIPES;
    }
    atomic_store(&g_refuse_all, false);
    assert_true(seen);
    for (int i = 0; i < WAIT_PIPES; i++) {
        assert_ok(asyncio_poller_deregister_fd(p, pipes[i][0]));
        support_close(pipes[i][0]);
        support_close(pipes[i][1]);
    }
    assert_ok(asyncio_poller_free(p));
    assert_ok(asyncio_set_allocator(NULL));
}

/* ------------------------------------------------------------------------ */
/* A poller whose wait fails                                                  */

static atomic_int g_wait_fail_left; /* waits still to fail with ENOMEM */
static atomic_int g_wait_failed;

static bool take_wait_failure(void)
{
    int left = atomic_load(&g_wait_fail_left);
    while (left > 0)
        if (atomic_compare_exchange_weak(&g_wait_fail_left, &left, left - 1)) {
            atomic_fetch_add(&g_wait_failed, 1);
            errno = ENOMEM;
            return true;
        }
    return false;
}

#if defined(__linux__)
static int failing_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
    return take_wait_failure() ? -1 : asyncio__os_libc.epoll_wait(epfd, evs, max, timeout_ms);
}
#endif

static int failing_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    return take_wait_failure() ? -1 : asyncio__os_libc.poll(fds, n, timeout_ms);
}

typedef struct nap {
    asyncio_sleep s;
    bool init;
} nap;

static int nap_poll(void *state, asyncio_context *cx, void *out)
{
    nap *z = state;
    if (!z->init) {
        asyncio_sleep_init(&z->s, 5);
        z->init = true;
    }
    int rc = asyncio_sleep_poll(&z->s, cx);
    if (rc == 0)
        *(int *)out = 42;
    return rc;
}

static void nap_drop(void *state)
{
    nap *z = state;
    if (z->init)
        asyncio_sleep_drop(&z->s);
}

static const asyncio_task_vtable nap_vt = {nap_poll, nap_drop, NULL, sizeof(nap), sizeof(int)};

/*
 * poll(2) may fail with ENOMEM (epoll_wait is given the same failure here): the
 * runtime backs off and turns again, timers still fire, and block_on gives the
 * task's result, not the poller's passing shortage (it returned ASYNCIO_ENOMEM).
 */
static void test_runtime_rides_out_poller_waits_failing_with_enomem(void **state)
{
    (void)state;
#if defined(__linux__)
    asyncio__os.epoll_wait = failing_epoll_wait;
#endif
    asyncio__os.poll = failing_poll;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *backend = asyncio_runtime_backend(rt);
    bool table_backend = strcmp(backend, "epoll") == 0 || strcmp(backend, "poll") == 0;
    atomic_store(&g_wait_failed, 0);
    atomic_store(&g_wait_fail_left, 6);
    int out = 0;
    assert_int_equal(asyncio_runtime_block_on(rt, &nap_vt, NULL, &out), 0);
    assert_int_equal(out, 42);
    atomic_store(&g_wait_fail_left, 0);
    assert_ok(asyncio_runtime_free(rt));
#if defined(__linux__)
    asyncio__os.epoll_wait = asyncio__os_libc.epoll_wait;
#endif
    asyncio__os.poll = asyncio__os_libc.poll;
    if (table_backend)
        assert_true(atomic_load(&g_wait_failed) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poller_wait_with_memory_exhausted_still_delivers_events),
        cmocka_unit_test(test_runtime_rides_out_poller_waits_failing_with_enomem),
        cmocka_unit_test(test_faults_spawn_join_abort_survive_every_failed_allocation),
        cmocka_unit_test(test_faults_join_set_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_blocking_pool_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_timers_timeout_select_survive_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

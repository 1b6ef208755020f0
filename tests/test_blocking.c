/*
 * The blocking pool: results reach the awaiting task, jobs beyond the
 * thread limit queue up and all run, idle threads exit, shutdown cancels
 * queued jobs, and handles dropped early leak nothing.
 */
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "asyncio/blocking.h"
#include "sched/blocking.h"
#include "support.h"

static _Atomic int g_ran;

static int add_one(void *arg)
{
    atomic_fetch_add(&g_ran, 1);
    return (int)(intptr_t)arg;
}

/* Awaits `n` jobs, each returning its index; sums the results. */
typedef struct fan_out {
    int n;
    int spawned;
    asyncio_blocking_handle *h[64];
    int done;
    int sum;
} fan_out;

static int fan_out_poll(void *state, asyncio_context *cx, void *output)
{
    fan_out *s = state;
    asyncio_runtime *rt = asyncio_runtime_current();
    for (; s->spawned < s->n; s->spawned++) {
        int rc = asyncio_spawn_blocking(rt, add_one, (void *)(intptr_t)-s->spawned,
                                        &s->h[s->spawned]);
        if (rc < 0)
            return rc;
    }
    for (; s->done < s->n; s->done++) {
        int rc = asyncio_blocking_handle_poll(s->h[s->done], cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        s->sum += -rc;
        asyncio_blocking_handle_drop(s->h[s->done]);
    }
    *(int *)output = s->sum;
    return 0;
}

static const asyncio_task_vtable fan_out_vt = {fan_out_poll, NULL, NULL, sizeof(fan_out),
                                               sizeof(int)};

static void test_blocking_results_reach_the_awaiting_task(void **state)
{
    (void)state;
    atomic_store(&g_ran, 0);
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    fan_out f = {.n = 10};
    int sum = -1;
    assert_ok(asyncio_runtime_block_on(rt, &fan_out_vt, &f, &sum));
    assert_int_equal(sum, 45); /* 0 + 1 + ... + 9 */
    assert_int_equal(atomic_load(&g_ran), 10);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_blocking_jobs_beyond_thread_limit_queue_and_all_run(void **state)
{
    (void)state;
    atomic_store(&g_ran, 0);
    asyncio_runtime_options o = {.blocking_max_threads = 2};
    asyncio_runtime *rt;
    rt = support_runtime_new(&o);
    fan_out f = {.n = 64};
    int sum = -1;
    assert_ok(asyncio_runtime_block_on(rt, &fan_out_vt, &f, &sum));
    assert_int_equal(sum, 63 * 64 / 2);
    assert_true(asyncio__blocking_pool_threads(asyncio__runtime_blocking_pool(rt)) <= 2);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_blocking_idle_threads_exit_after_keep_alive(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.blocking_max_threads = 4, .blocking_keep_alive_ms = 1};
    asyncio_runtime *rt;
    rt = support_runtime_new(&o);
    fan_out f = {.n = 8};
    int sum;
    assert_ok(asyncio_runtime_block_on(rt, &fan_out_vt, &f, &sum));
    asyncio__blocking_pool *bp = asyncio__runtime_blocking_pool(rt);
    /* Bounded wait for the idle threads to leave (no timing assertion). */
    for (int i = 0; i < 5000 && asyncio__blocking_pool_threads(bp) > 0; i++)
        usleep(1000);
    assert_int_equal(asyncio__blocking_pool_threads(bp), 0);
    assert_ok(asyncio_runtime_free(rt));
}

/* A job that blocks until released, so others stay queued. */
static _Atomic int g_release, g_started;

static int wait_for_release(void *arg)
{
    (void)arg;
    atomic_store(&g_started, 1);
    while (!atomic_load(&g_release))
        sched_yield();
    return 0;
}

static void test_blocking_shutdown_cancels_queued_jobs_and_waits_for_running(void **state)
{
    (void)state;
    atomic_store(&g_release, 0);
    atomic_store(&g_started, 0);
    atomic_store(&g_ran, 0);
    asyncio_runtime_options o = {.blocking_max_threads = 1};
    asyncio_runtime *rt;
    rt = support_runtime_new(&o);
    asyncio_blocking_handle *running, *queued;
    assert_ok(asyncio_spawn_blocking(rt, wait_for_release, NULL, &running));
    assert_ok(asyncio_spawn_blocking(rt, add_one, NULL, &queued));
    /* Let the running one start; then release it from here after shutdown begins. */
    while (!atomic_load(&g_started))
        sched_yield();
    atomic_store(&g_release, 1);
    asyncio_runtime_shutdown(rt);
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    int r = asyncio_blocking_handle_poll(queued, &cx);
    /* The queued job either ran before shutdown took the queue, or was cancelled. */
    assert_true(r == ASYNCIO_ECANCELED || (r == 0 && atomic_load(&g_ran) == 1));
    assert_int_equal(asyncio_blocking_handle_poll(running, &cx), 0);
    asyncio_blocking_handle *late;
    assert_err(asyncio_spawn_blocking(rt, add_one, NULL, &late), ASYNCIO_ECANCELED);
    asyncio_blocking_handle_drop(running);
    asyncio_blocking_handle_drop(queued);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_blocking_handle_dropped_before_the_job_runs_leaks_nothing(void **state)
{
    (void)state;
    atomic_store(&g_ran, 0);
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    for (int i = 0; i < 16; i++) {
        asyncio_blocking_handle *h;
        assert_ok(asyncio_spawn_blocking(rt, add_one, NULL, &h));
        asyncio_blocking_handle_drop(h);
    }
    asyncio_runtime_shutdown(rt); /* waits for every thread: the jobs ran or were cancelled */
    assert_ok(asyncio_runtime_free(rt));
}

/* The cleanup hook: exactly one of fn and on_cancel runs for an accepted job. */
static _Atomic int g_cancelled;

static void count_cancel(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_cancelled, 1);
}

static void test_blocking_cleanup_hook_runs_instead_of_a_job_cancelled_at_shutdown(void **state)
{
    (void)state;
    atomic_store(&g_release, 0);
    atomic_store(&g_started, 0);
    atomic_store(&g_ran, 0);
    atomic_store(&g_cancelled, 0);
    asyncio_runtime_options o = {.blocking_max_threads = 1};
    asyncio_runtime *rt;
    rt = support_runtime_new(&o);
    asyncio_blocking_handle *running, *queued[4];
    assert_ok(asyncio_spawn_blocking_with_cleanup(rt, wait_for_release, count_cancel, NULL,
                                                  &running));
    while (!atomic_load(&g_started))
        sched_yield();
    for (int i = 0; i < 4; i++) {
        assert_ok(asyncio_spawn_blocking_with_cleanup(rt, add_one, count_cancel, NULL, &queued[i]));
        if (i % 2 == 0)
            asyncio_blocking_handle_drop(queued[i]); /* dropped handles are cancelled too */
    }
    atomic_store(&g_release, 1);
    asyncio_runtime_shutdown(rt);
    /* The running job ran (no hook); each queued one either ran or got the hook, never both. */
    assert_int_equal(atomic_load(&g_ran) + atomic_load(&g_cancelled), 4);
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    assert_int_equal(asyncio_blocking_handle_poll(running, &cx), 0);
    for (int i = 1; i < 4; i += 2) {
        int r = asyncio_blocking_handle_poll(queued[i], &cx);
        assert_true(r == ASYNCIO_ECANCELED || r == 0);
        asyncio_blocking_handle_drop(queued[i]);
    }
    asyncio_blocking_handle_drop(running);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- two spawns in a row while one thread is idle ------------------------ */

static _Atomic int g_second_ran;

static int note_second(void *arg)
{
    (void)arg;
    atomic_store(&g_second_ran, 1);
    return 0;
}

/* Waits for the second job (bounded: 10 s): 0 if it ran meanwhile, else ETIMEDOUT. */
static int wait_for_second(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000 && !atomic_load(&g_second_ran); i++)
        usleep(1000);
    return atomic_load(&g_second_ran) ? 0 : ASYNCIO_ETIMEDOUT;
}

static int wait_handle(asyncio_blocking_handle *h)
{
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    int rc;
    while ((rc = asyncio_blocking_handle_poll(h, &cx)) == ASYNCIO_PENDING)
        sched_yield();
    return rc;
}

/*
 * One thread is idle; job 1 waits for job 2. Both spawns saw `idle == 1`
 * before the fix, so neither started a thread and job 2 queued behind job 1
 * (which then waited its full 10 s). Now the first spawn claims the idle
 * thread and the second starts one of its own.
 */
static void test_blocking_two_spawns_with_one_idle_thread_each_get_a_thread(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio__blocking_pool *bp = asyncio__runtime_blocking_pool(rt);
    asyncio_blocking_handle *h0, *h1, *h2;
    assert_ok(asyncio_spawn_blocking(rt, add_one, NULL, &h0));
    assert_ok(wait_handle(h0));
    asyncio_blocking_handle_drop(h0);
    while (asyncio__blocking_pool_idle(bp) != 1) /* the only thread waits for work */
        sched_yield();
    atomic_store(&g_second_ran, 0);
    assert_ok(asyncio_spawn_blocking(rt, wait_for_second, NULL, &h1));
    assert_ok(asyncio_spawn_blocking(rt, note_second, NULL, &h2));
    assert_ok(wait_handle(h1)); /* job 2 ran while job 1 waited */
    assert_ok(wait_handle(h2));
    assert_int_equal(asyncio__blocking_pool_threads(bp), 2);
    asyncio_blocking_handle_drop(h1);
    asyncio_blocking_handle_drop(h2);
    assert_ok(asyncio_runtime_free(rt));
}

/* The same, many rounds, with the pool's threads idle or busy in any mix (TSan). */
static void test_blocking_job_waiting_for_the_next_one_never_starves(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    int rounds = support_scale(300);
    for (int r = 0; r < rounds; r++) {
        asyncio_blocking_handle *h1, *h2;
        atomic_store(&g_second_ran, 0);
        assert_ok(asyncio_spawn_blocking(rt, wait_for_second, NULL, &h1));
        assert_ok(asyncio_spawn_blocking(rt, note_second, NULL, &h2));
        assert_ok(wait_handle(h1));
        assert_ok(wait_handle(h2));
        asyncio_blocking_handle_drop(h1);
        asyncio_blocking_handle_drop(h2);
    }
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * Threads the library starts get at least 2 MiB of stack (platform/thread.h), whatever the
 * C library's default: musl's is 128 KiB, where this test crashed. A task (on a worker of
 * the multi-thread runtime, or the caller's thread) and a blocking job each use 1 MiB.
 */
enum { BIG_FRAME = 1 << 20 };

static int touch_big_frame(int seed)
{
    volatile char buf[BIG_FRAME];
    for (size_t i = 0; i < sizeof buf; i += 4096)
        buf[i] = (char)seed;
    buf[sizeof buf - 1] = (char)seed;
    return buf[0] + buf[sizeof buf - 1];
}

static int big_frame_job(void *arg)
{
    return -touch_big_frame((int)(intptr_t)arg);
}

typedef struct big_frame_task {
    asyncio_blocking_handle *h;
} big_frame_task;

static int big_frame_poll(void *state, asyncio_context *cx, void *output)
{
    big_frame_task *t = state;
    if (t->h == NULL) {
        if (touch_big_frame(3) != 6)
            return ASYNCIO_EINVAL;
        int rc = asyncio_spawn_blocking(asyncio_runtime_current(), big_frame_job,
                                        (void *)(intptr_t)5, &t->h);
        if (rc < 0)
            return rc;
    }
    int rc = asyncio_blocking_handle_poll(t->h, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_blocking_handle_drop(t->h);
    *(int *)output = -rc;
    return 0;
}

static const asyncio_task_vtable big_frame_vt = {big_frame_poll, NULL, NULL, sizeof(big_frame_task),
                                                 sizeof(int)};

static void test_blocking_job_and_task_may_use_a_megabyte_of_stack(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    big_frame_task t = {0};
    int out = -1;
    assert_ok(asyncio_runtime_block_on(rt, &big_frame_vt, &t, &out));
    assert_int_equal(out, 10);
    assert_ok(asyncio_runtime_free(rt));
}

static int return_positive(void *arg)
{
    return (int)(intptr_t)arg;
}

/* Awaits one job returning a positive value; output is what the handle
 * reported. A second poll that still says PENDING means the finished job's
 * result was read as ASYNCIO_PENDING (the wake has already come: nothing
 * would ever wake the task again), reported as 999 instead of hanging. */
typedef struct await_positive {
    asyncio_blocking_handle *h;
    int value;
    int polls;
} await_positive;

static int await_positive_poll(void *state, asyncio_context *cx, void *output)
{
    await_positive *s = state;
    if (s->h == NULL) {
        int rc = asyncio_spawn_blocking(asyncio_runtime_current(), return_positive,
                                        (void *)(intptr_t)s->value, &s->h);
        if (rc < 0)
            return rc;
    }
    int rc = asyncio_blocking_handle_poll(s->h, cx);
    if (rc == ASYNCIO_PENDING && ++s->polls < 2)
        return ASYNCIO_PENDING;
    asyncio_blocking_handle_drop(s->h);
    *(int *)output = rc == ASYNCIO_PENDING ? 999 : rc;
    return 0;
}

static const asyncio_task_vtable await_positive_vt = {await_positive_poll, NULL, NULL,
                                                      sizeof(await_positive), sizeof(int)};

static void test_blocking_job_returning_a_positive_value_reports_erange_not_pending(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    for (int value = 1; value <= 2; value++) {
        await_positive a = {.value = value == 1 ? ASYNCIO_PENDING : 42};
        int out = 0;
        assert_ok(asyncio_runtime_block_on(rt, &await_positive_vt, &a, &out));
        assert_int_equal(out, ASYNCIO_ERANGE);
    }
    assert_ok(asyncio_runtime_free(rt));
}

static void test_blocking_invalid_arguments(void **state)
{
    (void)state;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    asyncio_blocking_handle *h;
    assert_err(asyncio_spawn_blocking(NULL, add_one, NULL, &h), ASYNCIO_EINVAL);
    assert_err(asyncio_spawn_blocking(rt, NULL, NULL, &h), ASYNCIO_EINVAL);
    assert_err(asyncio_spawn_blocking(rt, add_one, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_blocking_handle_poll(NULL, NULL), ASYNCIO_EINVAL);
    asyncio_blocking_handle_drop(NULL);
    assert_ok(asyncio_runtime_free(rt));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_blocking_results_reach_the_awaiting_task),
        support_test(test_blocking_jobs_beyond_thread_limit_queue_and_all_run),
        support_test(test_blocking_idle_threads_exit_after_keep_alive),
        support_test(test_blocking_shutdown_cancels_queued_jobs_and_waits_for_running),
        support_test(test_blocking_handle_dropped_before_the_job_runs_leaks_nothing),
        support_test(test_blocking_cleanup_hook_runs_instead_of_a_job_cancelled_at_shutdown),
        support_test(test_blocking_two_spawns_with_one_idle_thread_each_get_a_thread),
        support_test(test_blocking_job_waiting_for_the_next_one_never_starves),
        support_test(test_blocking_invalid_arguments),
        support_test(test_blocking_job_returning_a_positive_value_reports_erange_not_pending),
        support_test(test_blocking_job_and_task_may_use_a_megabyte_of_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Futures are movable until their first poll (docs/writing-tasks.md,
 * "Moving futures").
 *
 * Every future a user may initialise before spawn is initialised here in a
 * block of its own, copied into a task the way asyncio_spawn copies an
 * initial state, and the original block is then filled with a poison
 * pattern and kept: nothing may read it as a future again, and nothing may
 * write to it. The task is then dropped either before its first poll or
 * after one poll that left the future pending (registered with its
 * runtime, primitive or channel). Afterwards the original must still hold
 * only the poison, and the primitive must hold no reference to the copy
 * (its _free succeeds). Two more tests run a copied sleep and a copied
 * timeout to completion on the paused clock, with a watchdog timer that
 * must not fire first (no wall-clock assertion).
 */
#include "support.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/channel.h"
#include "asyncio/retry.h"
#include "asyncio/runtime.h"
#include "asyncio/signal.h"
#include "asyncio/sync.h"
#include "asyncio/task.h"
#include "asyncio/time.h"

#define POISON 0xA5

/* ---- the primitives the futures wait on ------------------------------------ */

typedef struct fixture {
    asyncio_semaphore *sem; /* no permits: an acquire waits */
    asyncio_notify *notify; /* nobody notifies */
    asyncio_mutex *mutex;   /* held by the test: a lock waits */
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx; /* capacity 1, filled: a send waits */
    asyncio_mpsc_sender *utx;
    asyncio_mpsc_receiver *urx; /* unbounded, empty: a recv waits */
    int elem;
} fixture;

static fixture g_fx;

static void fixture_new(void)
{
    int one = 1;
    memset(&g_fx, 0, sizeof g_fx);
    assert_ok(asyncio_semaphore_new(&g_fx.sem, 0));
    assert_ok(asyncio_notify_new(&g_fx.notify));
    assert_ok(asyncio_mutex_new(&g_fx.mutex));
    assert_ok(asyncio_mutex_try_lock(g_fx.mutex));
    assert_ok(asyncio_mpsc_channel(&g_fx.tx, &g_fx.rx, sizeof(int), 1));
    assert_ok(asyncio_mpsc_try_send(g_fx.tx, &one));
    assert_ok(asyncio_mpsc_unbounded_channel(&g_fx.utx, &g_fx.urx, sizeof(int)));
    g_fx.elem = 2;
}

/* _free returns ASYNCIO_EBUSY while a waiter is queued: each must be unlinked. */
static void fixture_free(void)
{
    assert_ok(asyncio_semaphore_free(g_fx.sem));
    assert_ok(asyncio_notify_free(g_fx.notify));
    asyncio_mutex_unlock(g_fx.mutex);
    assert_ok(asyncio_mutex_free(g_fx.mutex));
    asyncio_mpsc_sender_drop(g_fx.tx);
    asyncio_mpsc_receiver_drop(g_fx.rx);
    asyncio_mpsc_sender_drop(g_fx.utx);
    asyncio_mpsc_receiver_drop(g_fx.urx);
}

/* An inner future that never completes (and never wakes anyone). */
static int never_poll(void *fut, asyncio_context *cx)
{
    (void)fut;
    (void)cx;
    return ASYNCIO_PENDING;
}

/* An operation that fails with a transient error, so the retry waits on its sleep. */
static int refused_poll(void *fut, asyncio_context *cx)
{
    (void)fut;
    (void)cx;
    return ASYNCIO_ECONNREFUSED;
}

static int refused_reset(void *op, uint32_t attempt)
{
    (void)op;
    (void)attempt;
    return 0;
}

/* ---- one entry per future type ----------------------------------------------- */

typedef struct move_kind {
    void (*init)(void *fut);
    int (*poll)(void *fut, asyncio_context *cx); /* until it waits: ASYNCIO_PENDING */
    void (*drop)(void *fut);
} move_kind;

static void sleep_init(void *f)
{
    asyncio_sleep_init(f, 100000);
}
static int sleep_poll(void *f, asyncio_context *cx)
{
    return asyncio_sleep_poll(f, cx);
}
static void sleep_drop(void *f)
{
    asyncio_sleep_drop(f);
}
static const move_kind k_sleep = {sleep_init, sleep_poll, sleep_drop};

static void sleep_until_init(void *f)
{
    asyncio_sleep_init_until(f, 100000);
}
static const move_kind k_sleep_until = {sleep_until_init, sleep_poll, sleep_drop};

static void interval_init(void *f)
{
    assert_ok(asyncio_interval_init(f, 100000, ASYNCIO_MISSED_TICK_BURST));
}
static int interval_poll(void *f, asyncio_context *cx)
{
    int rc;
    while ((rc = asyncio_interval_poll_tick(f, cx, NULL)) == 0)
        ; /* the first tick is immediate; the second one waits */
    return rc;
}
static void interval_drop(void *f)
{
    asyncio_interval_drop(f);
}
static const move_kind k_interval = {interval_init, interval_poll, interval_drop};

static void timeout_init(void *f)
{
    asyncio_timeout_init(f, never_poll, NULL, 100000);
}
static int timeout_poll(void *f, asyncio_context *cx)
{
    return asyncio_timeout_poll(f, cx);
}
static void timeout_drop(void *f)
{
    asyncio_timeout_drop(f);
}
static const move_kind k_timeout = {timeout_init, timeout_poll, timeout_drop};

static void retry_init(void *f)
{
    asyncio_backoff policy = {.base_ms = 100000, .max_attempts = 3};
    assert_ok(asyncio_retry_init(f, &policy, refused_poll, refused_reset, NULL));
}
static int retry_poll(void *f, asyncio_context *cx)
{
    return asyncio_retry_poll(f, cx);
}
static void retry_drop(void *f)
{
    asyncio_retry_drop(f);
}
static const move_kind k_retry = {retry_init, retry_poll, retry_drop};

static void acquire_init(void *f)
{
    asyncio_semaphore_acquire_init(f, g_fx.sem, 1);
}
static int acquire_poll(void *f, asyncio_context *cx)
{
    return asyncio_semaphore_acquire_poll(f, cx);
}
static void acquire_drop(void *f)
{
    asyncio_semaphore_acquire_drop(f);
}
static const move_kind k_acquire = {acquire_init, acquire_poll, acquire_drop};

static void notified_init(void *f)
{
    asyncio_notified_init(f, g_fx.notify);
}
static int notified_poll(void *f, asyncio_context *cx)
{
    return asyncio_notified_poll(f, cx);
}
static void notified_drop(void *f)
{
    asyncio_notified_drop(f);
}
static const move_kind k_notified = {notified_init, notified_poll, notified_drop};

static void mutex_lock_init(void *f)
{
    asyncio_mutex_lock_init(f, g_fx.mutex);
}
static int mutex_lock_poll(void *f, asyncio_context *cx)
{
    return asyncio_mutex_lock_poll(f, cx);
}
static void mutex_lock_drop(void *f)
{
    asyncio_mutex_lock_drop(f);
}
static const move_kind k_mutex_lock = {mutex_lock_init, mutex_lock_poll, mutex_lock_drop};

static void send_init(void *f)
{
    asyncio_mpsc_send_init(f, g_fx.tx, &g_fx.elem);
}
static int send_poll(void *f, asyncio_context *cx)
{
    return asyncio_mpsc_send_poll(f, cx);
}
static void send_drop(void *f)
{
    asyncio_mpsc_send_drop(f);
}
static const move_kind k_send = {send_init, send_poll, send_drop};

static void recv_init(void *f)
{
    asyncio_mpsc_recv_init(f, g_fx.urx);
}
static int recv_poll(void *f, asyncio_context *cx)
{
    int out;
    return asyncio_mpsc_recv_poll(f, cx, &out);
}
static void recv_drop(void *f)
{
    asyncio_mpsc_recv_drop(f);
}
static const move_kind k_recv = {recv_init, recv_poll, recv_drop};

/* A signal the platform lets a program catch (the Windows test shim says SIGTERM). */
#ifndef ASYNCIO_TEST_CATCHABLE_SIGNAL
#define ASYNCIO_TEST_CATCHABLE_SIGNAL SIGUSR2
#endif

static void signal_init(void *f)
{
    int sig = ASYNCIO_TEST_CATCHABLE_SIGNAL;
    assert_ok(asyncio_signal_init(f, &sig, 1));
}
static int signal_poll(void *f, asyncio_context *cx)
{
    int signo;
    return asyncio_signal_poll(f, cx, &signo);
}
static void signal_drop(void *f)
{
    asyncio_signal_drop(f);
}
static const move_kind k_signal = {signal_init, signal_poll, signal_drop};

/* ---- the moved task ------------------------------------------------------------ */

#define FUT_MAX 512

/* What the moved task saw (written by the task, read by the test after block_on). */
static struct {
    _Atomic int first_rc; /* the future's first poll, or 0 if it was never polled */
    _Atomic bool polled;
    _Atomic bool dropped;
} g_seen;

typedef struct mover {
    const move_kind *k;
    bool poll_once; /* poll the future once before being aborted */
    bool done;      /* the one poll happened */
    alignas(max_align_t) unsigned char fut[FUT_MAX];
} mover;

static int mover_poll(void *state, asyncio_context *cx, void *output)
{
    mover *m = state;
    (void)output;
    if (m->poll_once && !m->done) {
        m->done = true;
        g_seen.first_rc = m->k->poll(m->fut, cx);
        g_seen.polled = true;
    }
    return ASYNCIO_PENDING; /* stays pending until aborted */
}

static void mover_drop(void *state)
{
    mover *m = state;
    m->k->drop(m->fut);
    g_seen.dropped = true;
}

static const asyncio_task_vtable mover_vt = {mover_poll, mover_drop, NULL, sizeof(mover), 0};

/* The test's main future: spawn the copy, let it poll once (or not), abort it. */
typedef struct driver {
    mover *original;
    asyncio_join_handle *jh;
    asyncio_yield yield;
    bool poll_once; /* the copy polls once before the abort */
    int step;
} driver;

static int driver_poll(void *fut, asyncio_context *cx)
{
    driver *d = fut;
    int rc;
    for (;;) {
        switch (d->step) {
        case 0: /* spawn copies the state; the original is then poisoned, not freed */
            assert_ok(asyncio_spawn(asyncio_runtime_current(), &mover_vt, d->original, &d->jh));
            memset(d->original, POISON, sizeof *d->original);
            if (!d->poll_once)
                assert_ok(asyncio_join_handle_abort(d->jh)); /* before its first poll */
            d->step = 1;
            break;
        case 1: /* wait until the copy polled its future once */
            if (d->poll_once && !g_seen.polled) {
                d->yield = (asyncio_yield)ASYNCIO_YIELD_INIT;
                if (asyncio_yield_poll(&d->yield, cx) == ASYNCIO_PENDING)
                    return ASYNCIO_PENDING;
                break;
            }
            assert_ok(asyncio_join_handle_abort(d->jh));
            d->step = 2;
            break;
        case 2: /* the abort completes the handle once the drop ran */
            rc = asyncio_join_handle_poll(d->jh, cx, NULL);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_err(rc, ASYNCIO_ECANCELED);
            asyncio_join_handle_drop(d->jh);
            return 0;
        }
    }
}

static void check_original_untouched(const mover *original)
{
    const unsigned char *p = (const unsigned char *)original;
    for (size_t i = 0; i < sizeof *original; i++)
        if (p[i] != POISON)
            fail_msg("byte %zu of the original (moved-from) future was written", i);
}

/* Initialise in one block, move to a task, drop there; with and without a first poll. */
static void run_moved(const move_kind *k, int expect_first)
{
    for (int poll_once = 0; poll_once <= 1; poll_once++) {
        asyncio_runtime_options opts = {.start_paused = true};
        asyncio_runtime *rt = support_runtime_new(&opts);
        mover *original = malloc(sizeof *original);
        assert_non_null(original);
        memset(original, 0, sizeof *original);
        original->k = k;
        original->poll_once = poll_once;
        fixture_new();
        k->init(original->fut);
        atomic_store(&g_seen.first_rc, 0);
        atomic_store(&g_seen.polled, false);
        atomic_store(&g_seen.dropped, false);

        driver d = {.original = original, .poll_once = poll_once};
        assert_ok(support_run_future(rt, driver_poll, &d));
        assert_true(g_seen.dropped);
        if (poll_once)
            assert_int_equal(g_seen.first_rc, expect_first);
        check_original_untouched(original);
        assert_ok(asyncio_runtime_free(rt));
        fixture_free();
        free(original);
    }
}

static void test_sleep_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_sleep, ASYNCIO_PENDING);
    run_moved(&k_sleep_until, ASYNCIO_PENDING);
}

static void test_interval_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_interval, ASYNCIO_PENDING);
}

static void test_timeout_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_timeout, ASYNCIO_PENDING);
}

static void test_retry_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_retry, ASYNCIO_PENDING);
}

static void test_semaphore_acquire_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_acquire, ASYNCIO_PENDING);
}

static void test_notified_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_notified, ASYNCIO_PENDING);
}

static void test_mutex_lock_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_mutex_lock, ASYNCIO_PENDING);
}

static void test_mpsc_send_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_send, ASYNCIO_PENDING);
}

static void test_mpsc_recv_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_recv, ASYNCIO_PENDING);
}

static void test_signal_initialised_then_copied_is_dropped_cleanly(void **state)
{
    (void)state;
    run_moved(&k_signal, ASYNCIO_PENDING);
}

/* ---- copied timers run to completion ---------------------------------------------- */

/* A task that polls one copied future until it finishes; its result is the output. */
typedef struct runner {
    const move_kind *k;
    alignas(max_align_t) unsigned char fut[FUT_MAX];
} runner;

static int runner_poll(void *state, asyncio_context *cx, void *output)
{
    runner *r = state;
    int rc = r->k->poll(r->fut, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    *(int *)output = rc;
    return 0;
}

static void runner_drop(void *state)
{
    runner *r = state;
    r->k->drop(r->fut);
}

static const asyncio_task_vtable runner_vt = {runner_poll, runner_drop, NULL, sizeof(runner),
                                              sizeof(int)};

/* Awaits the copied task; ASYNCIO_ECANCELED if the watchdog (paused clock) fires first. */
typedef struct race {
    runner *original;
    asyncio_join_handle *jh;
    asyncio_sleep watchdog;
    int result;
    bool spawned;
} race;

static int race_poll(void *fut, asyncio_context *cx)
{
    race *r = fut;
    int rc;
    if (!r->spawned) {
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &runner_vt, r->original, &r->jh));
        memset(r->original, POISON, sizeof *r->original);
        r->spawned = true;
    }
    rc = asyncio_join_handle_poll(r->jh, cx, &r->result);
    if (rc != ASYNCIO_PENDING) {
        assert_ok(rc);
        asyncio_join_handle_drop(r->jh);
        asyncio_sleep_drop(&r->watchdog);
        return 0;
    }
    if (asyncio_sleep_poll(&r->watchdog, cx) == 0) {
        asyncio_join_handle_drop(r->jh); /* detached: runtime_free drops it */
        asyncio_sleep_drop(&r->watchdog);
        return ASYNCIO_ECANCELED; /* the copied timer never completed */
    }
    return ASYNCIO_PENDING;
}

/*
 * Runs the copied timer (duration 100 ms) against a 1,000,000 ms watchdog: the
 * task's result, or ASYNCIO_ECANCELED if the watchdog fired first.
 */
static int race_copied(const move_kind *k, void (*init)(void *))
{
    asyncio_runtime_options opts = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&opts);
    runner *original = malloc(sizeof *original);
    assert_non_null(original);
    memset(original, 0, sizeof *original);
    original->k = k;
    init(original->fut);

    race r = {.original = original};
    asyncio_sleep_init(&r.watchdog, 1000000);
    int rc = support_run_future(rt, race_poll, &r);
    assert_ok(asyncio_runtime_free(rt));
    free(original);
    return rc == 0 ? r.result : rc;
}

static void short_sleep_init(void *f)
{
    asyncio_sleep_init(f, 100);
}

static void short_timeout_init(void *f)
{
    asyncio_timeout_init(f, never_poll, NULL, 100);
}

static void test_sleep_initialised_then_copied_fires(void **state)
{
    (void)state;
    assert_ok(race_copied(&k_sleep, short_sleep_init));
}

static void test_timeout_initialised_then_copied_times_out(void **state)
{
    (void)state;
    assert_err(race_copied(&k_timeout, short_timeout_init), ASYNCIO_ETIMEDOUT);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]); /* e.g. '*notified*' */
    /* The signal self-pipe lives as long as the process: create it before the fd-leak checks. */
    int sig = ASYNCIO_TEST_CATCHABLE_SIGNAL;
    asyncio_signal warm;
    if (asyncio_signal_init(&warm, &sig, 1) != 0)
        return 1;
    asyncio_signal_drop(&warm);
    const struct CMUnitTest tests[] = {
        support_test(test_sleep_initialised_then_copied_is_dropped_cleanly),
        support_test(test_interval_initialised_then_copied_is_dropped_cleanly),
        support_test(test_timeout_initialised_then_copied_is_dropped_cleanly),
        support_test(test_retry_initialised_then_copied_is_dropped_cleanly),
        support_test(test_semaphore_acquire_initialised_then_copied_is_dropped_cleanly),
        support_test(test_notified_initialised_then_copied_is_dropped_cleanly),
        support_test(test_mutex_lock_initialised_then_copied_is_dropped_cleanly),
        support_test(test_mpsc_send_initialised_then_copied_is_dropped_cleanly),
        support_test(test_mpsc_recv_initialised_then_copied_is_dropped_cleanly),
        support_test(test_signal_initialised_then_copied_is_dropped_cleanly),
        support_test(test_sleep_initialised_then_copied_fires),
        support_test(test_timeout_initialised_then_copied_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Semaphore, notify and async mutex: fairness (FIFO, no starvation of large
 * requests), cancellation (unlink at once, partial grants handed on), close
 * (a release during close's wake-ups grants nobody), the notify
 * creation-to-poll window, and thread stress (permits conserved; the
 * lock-free fast paths order the critical section: run under TSan). Most tests poll futures by hand
 * with a counting waker so the interleavings are exact; the stress tests run real tasks on several
 * current-thread runtimes, one per thread, next to plain threads.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/runtime.h"
#include "asyncio/sync.h"
#include "hand_waker.h"
#include "support.h"

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                 */

static void test_semaphore_try_acquire_and_release_count_permits(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 3));
    assert_int_equal(asyncio_semaphore_available_permits(sem), 3);
    assert_ok(asyncio_semaphore_try_acquire(sem, 2));
    assert_err(asyncio_semaphore_try_acquire(sem, 2), ASYNCIO_EAGAIN);
    assert_ok(asyncio_semaphore_try_acquire(sem, 1));
    assert_int_equal(asyncio_semaphore_available_permits(sem), 0);
    assert_ok(asyncio_semaphore_release(sem, 3));
    assert_ok(asyncio_semaphore_add_permits(sem, 2));
    assert_int_equal(asyncio_semaphore_available_permits(sem), 5);
    assert_ok(asyncio_semaphore_try_acquire(sem, 0));
    assert_err(asyncio_semaphore_release(sem, ASYNCIO_SEMAPHORE_MAX_PERMITS), ASYNCIO_EOVERFLOW);
    assert_int_equal(asyncio_semaphore_available_permits(sem), 5);
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_invalid_arguments(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_err(asyncio_semaphore_new(NULL, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_semaphore_new(&sem, ASYNCIO_SEMAPHORE_MAX_PERMITS + 1), ASYNCIO_EINVAL);
    assert_ok(asyncio_semaphore_new(&sem, 1));
    assert_err(asyncio_semaphore_try_acquire(NULL, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_semaphore_try_acquire(sem, ASYNCIO_SEMAPHORE_MAX_PERMITS + 1),
               ASYNCIO_EINVAL);
    assert_err(asyncio_semaphore_release(NULL, 1), ASYNCIO_EINVAL);
    hand h;
    hand_init(&h);
    asyncio_semaphore_acquire a;
    asyncio_semaphore_acquire_init(&a, sem, ASYNCIO_SEMAPHORE_MAX_PERMITS + 1);
    assert_err(asyncio_semaphore_acquire_poll(&a, &h.cx), ASYNCIO_EINVAL);
    asyncio_semaphore_acquire_drop(&a);
    assert_err(asyncio_semaphore_acquire_poll(NULL, &h.cx), ASYNCIO_EINVAL);
    assert_ok(asyncio_semaphore_free(sem));
    assert_ok(asyncio_semaphore_free(NULL));
}

static void test_semaphore_acquire_with_permits_completes_at_first_poll(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 2));
    hand h;
    hand_init(&h);
    asyncio_semaphore_acquire a;
    asyncio_semaphore_acquire_init(&a, sem, 2);
    assert_ok(asyncio_semaphore_acquire_poll(&a, &h.cx));
    assert_ok(asyncio_semaphore_acquire_poll(&a, &h.cx)); /* the result again */
    asyncio_semaphore_acquire_drop(&a);                   /* permits stay the caller's */
    assert_int_equal(asyncio_semaphore_available_permits(sem), 0);
    assert_int_equal(hand_refs(&h), 0);
    assert_ok(asyncio_semaphore_release(sem, 2));
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_waiters_are_granted_in_fifo_order(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 0));
    hand h[3];
    asyncio_semaphore_acquire a[3];
    for (int i = 0; i < 3; i++) {
        hand_init(&h[i]);
        asyncio_semaphore_acquire_init(&a[i], sem, 1);
        assert_int_equal(asyncio_semaphore_acquire_poll(&a[i], &h[i].cx), ASYNCIO_PENDING);
    }
    assert_err(asyncio_semaphore_free(sem), ASYNCIO_EBUSY);
    for (int i = 0; i < 3; i++) {
        assert_ok(asyncio_semaphore_release(sem, 1));
        for (int j = 0; j < 3; j++)
            assert_int_equal(hand_wakes(&h[j]), j <= i ? 1 : 0);
        assert_ok(asyncio_semaphore_acquire_poll(&a[i], &h[i].cx));
        for (int j = i + 1; j < 3; j++)
            assert_int_equal(asyncio_semaphore_acquire_poll(&a[j], &h[j].cx), ASYNCIO_PENDING);
    }
    for (int i = 0; i < 3; i++) {
        asyncio_semaphore_acquire_drop(&a[i]);
        assert_int_equal(hand_refs(&h[i]), 0);
    }
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_large_request_is_not_starved_by_later_small_ones(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 1));
    hand hb, hs;
    hand_init(&hb);
    hand_init(&hs);
    asyncio_semaphore_acquire big, small;
    asyncio_semaphore_acquire_init(&big, sem, 3);
    asyncio_semaphore_acquire_init(&small, sem, 1);
    assert_int_equal(asyncio_semaphore_acquire_poll(&big, &hb.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_semaphore_available_permits(sem), 0); /* partial grant: 1 of 3 */
    assert_int_equal(asyncio_semaphore_acquire_poll(&small, &hs.cx), ASYNCIO_PENDING);
    asyncio_semaphore_acquire zero; /* asks for nothing: never waits, even behind others */
    asyncio_semaphore_acquire_init(&zero, sem, 0);
    assert_ok(asyncio_semaphore_acquire_poll(&zero, &hs.cx));
    asyncio_semaphore_acquire_drop(&zero);
    assert_ok(asyncio_semaphore_release(sem, 1));
    assert_err(asyncio_semaphore_try_acquire(sem, 1), ASYNCIO_EAGAIN); /* no overtaking */
    assert_int_equal(hand_wakes(&hb), 0);
    assert_int_equal(hand_wakes(&hs), 0);
    assert_ok(asyncio_semaphore_release(sem, 1));
    assert_int_equal(hand_wakes(&hb), 1);
    assert_int_equal(hand_wakes(&hs), 0);
    assert_ok(asyncio_semaphore_acquire_poll(&big, &hb.cx));
    assert_ok(asyncio_semaphore_release(sem, 3)); /* big is done: small goes, 2 are left */
    assert_int_equal(hand_wakes(&hs), 1);
    assert_ok(asyncio_semaphore_acquire_poll(&small, &hs.cx));
    assert_int_equal(asyncio_semaphore_available_permits(sem), 2);
    asyncio_semaphore_acquire_drop(&big);
    asyncio_semaphore_acquire_drop(&small);
    assert_int_equal(hand_refs(&hb) + hand_refs(&hs), 0);
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_cancel_while_waiting_unlinks_at_once(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 0));
    hand ha, hb;
    hand_init(&ha);
    hand_init(&hb);
    asyncio_semaphore_acquire a, b;
    asyncio_semaphore_acquire_init(&a, sem, 2);
    asyncio_semaphore_acquire_init(&b, sem, 1);
    assert_int_equal(asyncio_semaphore_acquire_poll(&a, &ha.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_semaphore_acquire_poll(&b, &hb.cx), ASYNCIO_PENDING);
    asyncio_semaphore_acquire_drop(&a); /* no grant yet: nothing to hand on */
    assert_int_equal(hand_refs(&ha), 0);
    assert_int_equal(hand_wakes(&hb), 0);
    memset(&a, 0xA5, sizeof a); /* its memory is reused: the semaphore must not touch it */
    assert_ok(asyncio_semaphore_release(sem, 1));
    assert_int_equal(hand_wakes(&hb), 1); /* a no longer blocks the queue */
    assert_ok(asyncio_semaphore_acquire_poll(&b, &hb.cx));
    asyncio_semaphore_acquire_drop(&b);
    assert_int_equal(asyncio_semaphore_available_permits(sem), 0);
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_cancel_with_partial_grant_hands_permits_on(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 2));
    hand ha, hb, hc;
    hand_init(&ha);
    hand_init(&hb);
    hand_init(&hc);
    asyncio_semaphore_acquire a, b, c;
    asyncio_semaphore_acquire_init(&a, sem, 3);
    asyncio_semaphore_acquire_init(&b, sem, 1);
    asyncio_semaphore_acquire_init(&c, sem, 2);
    assert_int_equal(asyncio_semaphore_acquire_poll(&a, &ha.cx), ASYNCIO_PENDING); /* has 2 */
    assert_int_equal(asyncio_semaphore_acquire_poll(&b, &hb.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_semaphore_acquire_poll(&c, &hc.cx), ASYNCIO_PENDING);
    asyncio_semaphore_acquire_drop(&a); /* its 2: 1 to b (done), 1 to c (partial) */
    assert_int_equal(hand_wakes(&hb), 1);
    assert_int_equal(hand_wakes(&hc), 0);
    assert_int_equal(asyncio_semaphore_available_permits(sem), 0);
    assert_ok(asyncio_semaphore_acquire_poll(&b, &hb.cx));
    assert_ok(asyncio_semaphore_release(sem, 1));
    assert_int_equal(hand_wakes(&hc), 1);
    assert_ok(asyncio_semaphore_acquire_poll(&c, &hc.cx));
    asyncio_semaphore_acquire_drop(&b);
    asyncio_semaphore_acquire_drop(&c);
    assert_ok(asyncio_semaphore_release(sem, 3)); /* b's 1 + c's 2 */
    assert_int_equal(asyncio_semaphore_available_permits(sem), 3);
    assert_int_equal(hand_refs(&ha) + hand_refs(&hb) + hand_refs(&hc), 0);
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_grant_dropped_before_poll_goes_back(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 0));
    hand ha, hb;
    hand_init(&ha);
    hand_init(&hb);
    asyncio_semaphore_acquire a, b;
    asyncio_semaphore_acquire_init(&a, sem, 2);
    asyncio_semaphore_acquire_init(&b, sem, 3);
    assert_int_equal(asyncio_semaphore_acquire_poll(&a, &ha.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_semaphore_acquire_poll(&b, &hb.cx), ASYNCIO_PENDING);
    assert_ok(asyncio_semaphore_release(sem, 3)); /* a granted (2), b partial (1) */
    assert_int_equal(hand_wakes(&ha), 1);
    asyncio_semaphore_acquire_drop(&a); /* never observed: its 2 go on to b */
    assert_int_equal(hand_wakes(&hb), 1);
    assert_ok(asyncio_semaphore_acquire_poll(&b, &hb.cx));
    asyncio_semaphore_acquire_drop(&b);
    assert_ok(asyncio_semaphore_release(sem, 3));
    assert_int_equal(asyncio_semaphore_available_permits(sem), 3);
    assert_int_equal(hand_refs(&ha) + hand_refs(&hb), 0);
    assert_ok(asyncio_semaphore_free(sem));
}

static void test_semaphore_close_wakes_every_waiter_with_closed(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 1));
    enum { N = 40 }; /* more than one wake batch */
    hand *h = calloc(N, sizeof *h);
    asyncio_semaphore_acquire *a = calloc(N, sizeof *a);
    assert_non_null(h);
    assert_non_null(a);
    for (int i = 0; i < N; i++) {
        hand_init(&h[i]);
        asyncio_semaphore_acquire_init(&a[i], sem, i == 0 ? 2 : 1); /* a[0] holds 1 of 2 */
        assert_int_equal(asyncio_semaphore_acquire_poll(&a[i], &h[i].cx), ASYNCIO_PENDING);
    }
    asyncio_semaphore_close(sem);
    asyncio_semaphore_close(sem); /* idempotent */
    assert_true(asyncio_semaphore_is_closed(sem));
    for (int i = 0; i < N; i++) {
        assert_int_equal(hand_wakes(&h[i]), 1);
        assert_err(asyncio_semaphore_acquire_poll(&a[i], &h[i].cx), ASYNCIO_ECLOSED);
        asyncio_semaphore_acquire_drop(&a[i]);
        assert_int_equal(hand_refs(&h[i]), 0);
    }
    assert_int_equal(asyncio_semaphore_available_permits(sem), 1); /* the partial grant is back */
    assert_err(asyncio_semaphore_try_acquire(sem, 1), ASYNCIO_ECLOSED);
    asyncio_semaphore_acquire later;
    asyncio_semaphore_acquire_init(&later, sem, 1);
    assert_err(asyncio_semaphore_acquire_poll(&later, &h[0].cx), ASYNCIO_ECLOSED);
    assert_ok(asyncio_semaphore_release(sem, 1)); /* held permits may still be released */
    free(h);
    free(a);
    assert_ok(asyncio_semaphore_free(sem));
}

/*
 * A waker that releases permits from inside its wake call: it runs while
 * close has dropped the lock between two batches of wake-ups.
 */
typedef struct releasing_waker {
    asyncio_semaphore *sem;
    size_t n;
    _Atomic int wakes;
} releasing_waker;

static asyncio_waker rw_clone(const void *d);

static void rw_wake(const void *d)
{
    releasing_waker *rw = (releasing_waker *)d;
    if (atomic_fetch_add(&rw->wakes, 1) == 0)
        assert_ok(asyncio_semaphore_release(rw->sem, rw->n));
}

static void rw_drop(const void *d)
{
    (void)d;
}

static const asyncio_waker_vtable rw_vt = {rw_clone, rw_wake, rw_wake, rw_drop};

static asyncio_waker rw_clone(const void *d)
{
    return (asyncio_waker){&rw_vt, d};
}

/*
 * Regression: close wakes in batches and drops the lock in between; a
 * release in that gap handed permits to the waiters close had not failed
 * yet, so some of them completed with 0 after the close.
 */
static void test_semaphore_release_during_close_grants_no_waiter(void **state)
{
    (void)state;
    enum { N = 40 }; /* more than one wake batch */
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, 0));
    releasing_waker rw = {.sem = sem, .n = N};
    atomic_init(&rw.wakes, 0);
    asyncio_waker w0 = {&rw_vt, &rw};
    asyncio_context cx0 = ASYNCIO_CONTEXT_INIT(&w0);
    hand *h = calloc(N, sizeof *h);
    asyncio_semaphore_acquire *a = calloc(N, sizeof *a);
    assert_non_null(h);
    assert_non_null(a);
    for (int i = 0; i < N; i++) {
        hand_init(&h[i]);
        asyncio_semaphore_acquire_init(&a[i], sem, 1);
        assert_int_equal(asyncio_semaphore_acquire_poll(&a[i], i == 0 ? &cx0 : &h[i].cx),
                         ASYNCIO_PENDING);
    }
    asyncio_semaphore_close(sem); /* the first batch's wake of a[0] releases N permits */
    assert_int_equal(atomic_load(&rw.wakes), 1);
    for (int i = 0; i < N; i++) {
        assert_err(asyncio_semaphore_acquire_poll(&a[i], i == 0 ? &cx0 : &h[i].cx),
                   ASYNCIO_ECLOSED);
        asyncio_semaphore_acquire_drop(&a[i]);
        assert_int_equal(hand_refs(&h[i]), 0);
    }
    assert_int_equal(asyncio_semaphore_available_permits(sem), N); /* all in the count */
    free(h);
    free(a);
    assert_ok(asyncio_semaphore_free(sem));
}

/* ---- stress: the lock-free fast paths order the critical section -------- */

#define FAST_THREADS 4
#define FAST_ITERS   20000

typedef struct fast_arg {
    asyncio_semaphore *sem; /* one permit: a lock */
    asyncio_mutex *m;
    long *counter;  /* plain memory: TSan reports a missing acquire / release */
    long *counter2; /* the same under the mutex */
    unsigned long iters;
} fast_arg;

static void *fast_path_thread(void *p)
{
    fast_arg *a = p;
    for (unsigned long i = 0; i < a->iters; i++) {
        while (asyncio_semaphore_try_acquire(a->sem, 1) != 0)
            sched_yield();
        ++*a->counter;
        assert_ok(asyncio_semaphore_release(a->sem, 1));
        while (asyncio_mutex_try_lock(a->m) != 0)
            sched_yield();
        ++*a->counter2;
        asyncio_mutex_unlock(a->m);
    }
    return NULL;
}

static void test_semaphore_fast_path_orders_the_critical_section_across_threads(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    asyncio_mutex *m;
    assert_ok(asyncio_semaphore_new(&sem, 1));
    assert_ok(asyncio_mutex_new(&m));
    long counter = 0, counter2 = 0;
    fast_arg arg = {sem, m, &counter, &counter2, support_scale(FAST_ITERS)};
    pthread_t th[FAST_THREADS];
    for (int i = 0; i < FAST_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fast_path_thread, &arg), 0);
    for (int i = 0; i < FAST_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(counter, (long)(FAST_THREADS * arg.iters));
    assert_int_equal(counter2, (long)(FAST_THREADS * arg.iters));
    assert_int_equal(asyncio_semaphore_available_permits(sem), 1);
    assert_err(asyncio_semaphore_release(sem, SIZE_MAX >> 3), ASYNCIO_EOVERFLOW); /* capped */
    assert_ok(asyncio_semaphore_free(sem));
    assert_ok(asyncio_mutex_free(m));
}

/* ---- stress: runtimes on threads awaiting acquires, plus plain threads --- */

#define STRESS_PERMITS 5
#define STRESS_ITERS   3000

typedef struct sem_worker {
    asyncio_semaphore *sem;
    asyncio_join_handle *other; /* a sibling to await at the end, or NULL */
    unsigned rng;
    int iters;
    int step;
    size_t n;
    asyncio_semaphore_acquire acq;
    asyncio_yield y;
} sem_worker;

static _Atomic long g_held; /* permits held right now, by everyone */

/* Awaits a sibling task (if any) and releases its handle. */
static int join_other(asyncio_join_handle **jh, asyncio_context *cx)
{
    if (*jh == NULL)
        return 0;
    int rc = asyncio_join_handle_poll(*jh, cx, NULL);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_join_handle_drop(*jh);
    *jh = NULL;
    return rc;
}

static int sem_worker_poll(void *state, asyncio_context *cx, void *output)
{
    sem_worker *w = state;
    (void)output;
    for (;;) {
        switch (w->step) {
        case 0: /* start an acquire of 1..3 permits */
            if (w->iters == 0)
                return join_other(&w->other, cx);
            w->rng = w->rng * 1103515245u + 12345u;
            w->n = 1 + (w->rng >> 16) % 3;
            asyncio_semaphore_acquire_init(&w->acq, w->sem, w->n);
            w->step = 1;
            break;
        case 1: { /* wait for it (sometimes give up after one pending poll) */
            int rc = asyncio_semaphore_acquire_poll(&w->acq, cx);
            if (rc == ASYNCIO_PENDING && (w->rng >> 20) % 4 == 0) {
                asyncio_semaphore_acquire_drop(&w->acq); /* cancel, maybe with a partial grant */
                w->step = 0;
                w->iters--;
                break;
            }
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            long held = atomic_fetch_add(&g_held, (long)w->n) + (long)w->n;
            assert_true(held <= STRESS_PERMITS);
            w->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            w->step = 2;
            break;
        }
        case 2: /* hold across a yield, then release */
            if (asyncio_yield_poll(&w->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            atomic_fetch_sub(&g_held, (long)w->n);
            assert_ok(asyncio_semaphore_release(w->sem, w->n));
            asyncio_semaphore_acquire_drop(&w->acq);
            w->step = 0;
            w->iters--;
            break;
        }
    }
}

static void sem_worker_drop(void *state)
{
    sem_worker *w = state;
    if (w->step == 1)
        asyncio_semaphore_acquire_drop(&w->acq);
}

static const asyncio_task_vtable sem_worker_vt = {sem_worker_poll, sem_worker_drop, NULL,
                                                  sizeof(sem_worker), 0};

typedef struct stress_arg {
    asyncio_semaphore *sem;
    unsigned seed;
} stress_arg;

static void *runtime_thread(void *p)
{
    stress_arg *a = p;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    /* Two tasks per runtime so they also contend with each other. */
    sem_worker w2 = {.sem = a->sem, .rng = a->seed * 7u, .iters = STRESS_ITERS};
    sem_worker w = {.sem = a->sem, .rng = a->seed, .iters = STRESS_ITERS};
    assert_ok(asyncio_spawn(rt, &sem_worker_vt, &w2, &w.other));
    assert_ok(asyncio_runtime_block_on(rt, &sem_worker_vt, &w, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void *plain_thread(void *p)
{
    stress_arg *a = p;
    for (int i = 0; i < STRESS_ITERS * 4; i++) {
        size_t n = 1 + (size_t)(i % 2);
        if (asyncio_semaphore_try_acquire(a->sem, n) != 0) {
            sched_yield();
            continue;
        }
        long held = atomic_fetch_add(&g_held, (long)n) + (long)n;
        assert_true(held <= STRESS_PERMITS);
        atomic_fetch_sub(&g_held, (long)n);
        assert_ok(asyncio_semaphore_release(a->sem, n));
    }
    return NULL;
}

static void test_semaphore_permits_conserved_under_thread_stress(void **state)
{
    (void)state;
    enum { RUNTIMES = 4, PLAIN = 2 };
    asyncio_semaphore *sem;
    assert_ok(asyncio_semaphore_new(&sem, STRESS_PERMITS));
    atomic_store(&g_held, 0);
    pthread_t th[RUNTIMES + PLAIN];
    stress_arg args[RUNTIMES + PLAIN];
    for (int i = 0; i < RUNTIMES + PLAIN; i++) {
        args[i] = (stress_arg){sem, 12345u + (unsigned)i * 977u};
        assert_int_equal(
            pthread_create(&th[i], NULL, i < RUNTIMES ? runtime_thread : plain_thread, &args[i]),
            0);
    }
    for (int i = 0; i < RUNTIMES + PLAIN; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&g_held), 0);
    assert_int_equal(asyncio_semaphore_available_permits(sem), STRESS_PERMITS);
    assert_ok(asyncio_semaphore_free(sem));
}

/* ------------------------------------------------------------------------ */
/* Notify                                                                    */

static void test_notify_one_without_waiter_is_kept_as_one_permit(void **state)
{
    (void)state;
    asyncio_notify *n;
    assert_ok(asyncio_notify_new(&n));
    asyncio_notify_one(n);
    asyncio_notify_one(n); /* at most one permit */
    hand h;
    hand_init(&h);
    asyncio_notified a, b;
    asyncio_notified_init(&a, n);
    asyncio_notified_init(&b, n);
    assert_ok(asyncio_notified_poll(&a, &h.cx));
    assert_int_equal(asyncio_notified_poll(&b, &h.cx), ASYNCIO_PENDING);
    asyncio_notified_drop(&a);
    asyncio_notified_drop(&b);
    assert_int_equal(hand_refs(&h), 0);
    assert_ok(asyncio_notify_free(n));
}

static void test_notify_waiters_between_init_and_first_poll_is_not_lost(void **state)
{
    (void)state;
    asyncio_notify *n;
    assert_ok(asyncio_notify_new(&n));
    hand h;
    hand_init(&h);
    asyncio_notified before, after;
    asyncio_notified_init(&before, n);
    asyncio_notify_waiters(n); /* before its first poll */
    asyncio_notified_init(&after, n);
    assert_ok(asyncio_notified_poll(&before, &h.cx));
    assert_int_equal(asyncio_notified_poll(&after, &h.cx), ASYNCIO_PENDING); /* no permit */
    asyncio_notified_drop(&before);
    asyncio_notified_drop(&after);
    assert_int_equal(hand_refs(&h), 0);
    assert_ok(asyncio_notify_free(n));
}

static void test_notify_one_wakes_waiters_in_fifo_order(void **state)
{
    (void)state;
    asyncio_notify *n;
    assert_ok(asyncio_notify_new(&n));
    hand h[3];
    asyncio_notified f[3];
    for (int i = 0; i < 3; i++) {
        hand_init(&h[i]);
        asyncio_notified_init(&f[i], n);
        assert_int_equal(asyncio_notified_poll(&f[i], &h[i].cx), ASYNCIO_PENDING);
    }
    assert_err(asyncio_notify_free(n), ASYNCIO_EBUSY);
    for (int i = 0; i < 3; i++) {
        asyncio_notify_one(n);
        for (int j = 0; j < 3; j++)
            assert_int_equal(hand_wakes(&h[j]), j <= i ? 1 : 0);
        assert_ok(asyncio_notified_poll(&f[i], &h[i].cx));
    }
    for (int i = 0; i < 3; i++) {
        asyncio_notified_drop(&f[i]);
        assert_int_equal(hand_refs(&h[i]), 0);
    }
    assert_ok(asyncio_notify_free(n));
}

static void test_notify_waiters_wakes_every_queued_waiter(void **state)
{
    (void)state;
    asyncio_notify *n;
    assert_ok(asyncio_notify_new(&n));
    enum { N = 70 }; /* several wake batches */
    hand *h = calloc(N, sizeof *h);
    asyncio_notified *f = calloc(N, sizeof *f);
    assert_non_null(h);
    assert_non_null(f);
    for (int i = 0; i < N; i++) {
        hand_init(&h[i]);
        asyncio_notified_init(&f[i], n);
        assert_int_equal(asyncio_notified_poll(&f[i], &h[i].cx), ASYNCIO_PENDING);
    }
    asyncio_notify_waiters(n);
    for (int i = 0; i < N; i++) {
        assert_int_equal(hand_wakes(&h[i]), 1);
        assert_ok(asyncio_notified_poll(&f[i], &h[i].cx));
        asyncio_notified_drop(&f[i]);
        assert_int_equal(hand_refs(&h[i]), 0);
    }
    free(h);
    free(f);
    assert_ok(asyncio_notify_free(n));
}

static void test_notified_dropped_after_notify_one_passes_it_on(void **state)
{
    (void)state;
    asyncio_notify *n;
    assert_ok(asyncio_notify_new(&n));
    hand ha, hb;
    hand_init(&ha);
    hand_init(&hb);
    asyncio_notified a, b;
    asyncio_notified_init(&a, n);
    asyncio_notified_init(&b, n);
    assert_int_equal(asyncio_notified_poll(&a, &ha.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_notified_poll(&b, &hb.cx), ASYNCIO_PENDING);
    asyncio_notify_one(n); /* picks a */
    assert_int_equal(hand_wakes(&ha), 1);
    asyncio_notified_drop(&a); /* never observed: b gets it */
    assert_int_equal(hand_wakes(&hb), 1);
    assert_ok(asyncio_notified_poll(&b, &hb.cx));
    asyncio_notified_drop(&b);
    /* With nobody left, a dropped pick becomes the stored permit. */
    asyncio_notified_init(&a, n);
    assert_int_equal(asyncio_notified_poll(&a, &ha.cx), ASYNCIO_PENDING);
    asyncio_notify_one(n);
    asyncio_notified_drop(&a);
    asyncio_notified_init(&b, n);
    assert_ok(asyncio_notified_poll(&b, &hb.cx));
    asyncio_notified_drop(&b);
    /* A queued waiter dropped without a notification just leaves. */
    asyncio_notified_init(&a, n);
    assert_int_equal(asyncio_notified_poll(&a, &ha.cx), ASYNCIO_PENDING);
    asyncio_notified_drop(&a);
    assert_int_equal(hand_refs(&ha) + hand_refs(&hb), 0);
    assert_ok(asyncio_notify_free(n));
}

/* ---- the creation-to-poll window across threads ------------------------ */

#define WINDOW_ROUNDS 2000

typedef struct window_task {
    asyncio_notify *n;
    int round;
    bool armed;
    asyncio_notified f;
} window_task;

static _Atomic int g_window_round; /* the round whose notified future exists (-1: none) */
static _Atomic int g_window_done;

static int window_poll(void *state, asyncio_context *cx, void *output)
{
    window_task *t = state;
    (void)output;
    while (t->round < WINDOW_ROUNDS) {
        if (!t->armed) {
            asyncio_notified_init(&t->f, t->n);
            t->armed = true;
            atomic_store(&g_window_round, t->round); /* the notifier may fire from now on */
            for (int spin = 0; spin < t->round % 7; spin++)
                sched_yield(); /* vary where the notify lands: before or after the poll */
        }
        int rc = asyncio_notified_poll(&t->f, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        asyncio_notified_drop(&t->f);
        t->armed = false;
        t->round++;
    }
    atomic_store(&g_window_done, 1);
    return 0;
}

static const asyncio_task_vtable window_vt = {window_poll, NULL, NULL, sizeof(window_task), 0};

static void *window_notifier(void *p)
{
    asyncio_notify *n = p;
    int next = 0;
    while (next < WINDOW_ROUNDS && !atomic_load(&g_window_done)) {
        if (atomic_load(&g_window_round) != next) {
            sched_yield();
            continue;
        }
        if (next % 2 == 0)
            asyncio_notify_waiters(n);
        else
            asyncio_notify_one(n);
        next++;
    }
    return NULL;
}

static void test_notify_not_lost_between_creation_and_first_poll_across_threads(void **state)
{
    (void)state;
    asyncio_notify *n;
    assert_ok(asyncio_notify_new(&n));
    atomic_store(&g_window_round, -1);
    atomic_store(&g_window_done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, window_notifier, n), 0);
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    window_task t = {.n = n};
    assert_ok(asyncio_runtime_block_on(rt, &window_vt, &t, NULL)); /* hangs if one is lost */
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_ok(asyncio_notify_free(n));
}

/* ------------------------------------------------------------------------ */
/* Async mutex                                                               */

static void test_mutex_waiters_get_the_lock_in_fifo_order(void **state)
{
    (void)state;
    asyncio_mutex *m;
    assert_ok(asyncio_mutex_new(&m));
    assert_ok(asyncio_mutex_try_lock(m));
    assert_err(asyncio_mutex_try_lock(m), ASYNCIO_EAGAIN);
    hand h[4];
    asyncio_mutex_lock l[4];
    for (int i = 0; i < 4; i++) {
        hand_init(&h[i]);
        asyncio_mutex_lock_init(&l[i], m);
        assert_int_equal(asyncio_mutex_lock_poll(&l[i], &h[i].cx), ASYNCIO_PENDING);
    }
    assert_err(asyncio_mutex_free(m), ASYNCIO_EBUSY);
    for (int i = 0; i < 4; i++) {
        asyncio_mutex_unlock(m);
        for (int j = 0; j < 4; j++)
            assert_int_equal(hand_wakes(&h[j]), j <= i ? 1 : 0);
        assert_err(asyncio_mutex_try_lock(m), ASYNCIO_EAGAIN);
        assert_ok(asyncio_mutex_lock_poll(&l[i], &h[i].cx));
    }
    asyncio_mutex_unlock(m);
    assert_ok(asyncio_mutex_try_lock(m));
    asyncio_mutex_unlock(m);
    for (int i = 0; i < 4; i++) {
        asyncio_mutex_lock_drop(&l[i]);
        assert_int_equal(hand_refs(&h[i]), 0);
    }
    assert_ok(asyncio_mutex_free(m));
}

static void test_mutex_cancelled_waiter_passes_the_lock_on(void **state)
{
    (void)state;
    asyncio_mutex *m;
    assert_ok(asyncio_mutex_new(&m));
    assert_ok(asyncio_mutex_try_lock(m));
    hand ha, hb, hc;
    hand_init(&ha);
    hand_init(&hb);
    hand_init(&hc);
    asyncio_mutex_lock a, b, c;
    asyncio_mutex_lock_init(&a, m);
    asyncio_mutex_lock_init(&b, m);
    asyncio_mutex_lock_init(&c, m);
    assert_int_equal(asyncio_mutex_lock_poll(&a, &ha.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_mutex_lock_poll(&b, &hb.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_mutex_lock_poll(&c, &hc.cx), ASYNCIO_PENDING);
    asyncio_mutex_lock_drop(&b); /* cancelled while queued */
    asyncio_mutex_unlock(m);     /* to a */
    assert_int_equal(hand_wakes(&ha), 1);
    asyncio_mutex_lock_drop(&a); /* handed the lock, never observed it: to c */
    assert_int_equal(hand_wakes(&hc), 1);
    assert_ok(asyncio_mutex_lock_poll(&c, &hc.cx));
    asyncio_mutex_unlock(m);
    asyncio_mutex_lock_drop(&c);
    assert_int_equal(hand_refs(&ha) + hand_refs(&hb) + hand_refs(&hc), 0);
    assert_ok(asyncio_mutex_try_lock(m));
    assert_ok(asyncio_mutex_free(m)); /* freeing a held mutex nobody waits for is allowed */
}

/* ---- tasks on several runtime threads share a counter under the mutex --- */

#define MUTEX_ITERS 2000

typedef struct counter_task {
    asyncio_mutex *m;
    asyncio_join_handle *other; /* a sibling to await at the end, or NULL */
    long *counter;
    int iters;
    int step;
    long seen;
    asyncio_mutex_lock l;
    asyncio_yield y;
} counter_task;

static int counter_poll(void *state, asyncio_context *cx, void *output)
{
    counter_task *t = state;
    (void)output;
    for (;;) {
        switch (t->step) {
        case 0: /* lock */
            if (t->iters == 0)
                return join_other(&t->other, cx);
            asyncio_mutex_lock_init(&t->l, t->m);
            t->step = 1;
            break;
        case 1: { /* wait for it, read, then hold it across a yield */
            int rc = asyncio_mutex_lock_poll(&t->l, cx);
            if (rc != 0)
                return rc;
            t->seen = *t->counter;
            t->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            t->step = 2;
            break;
        }
        case 2: /* write back, unlock */
            if (asyncio_yield_poll(&t->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            *t->counter = t->seen + 1;
            asyncio_mutex_unlock(t->m);
            asyncio_mutex_lock_drop(&t->l);
            t->iters--;
            t->step = 0;
            break;
        }
    }
}

static const asyncio_task_vtable counter_vt = {counter_poll, NULL, NULL, sizeof(counter_task), 0};

typedef struct counter_arg {
    asyncio_mutex *m;
    long *counter;
} counter_arg;

static void *counter_thread(void *p)
{
    counter_arg *a = p;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    counter_task other = {.m = a->m, .counter = a->counter, .iters = MUTEX_ITERS};
    counter_task t = {.m = a->m, .counter = a->counter, .iters = MUTEX_ITERS};
    assert_ok(asyncio_spawn(rt, &counter_vt, &other, &t.other));
    assert_ok(asyncio_runtime_block_on(rt, &counter_vt, &t, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void test_mutex_serialises_tasks_on_several_runtime_threads(void **state)
{
    (void)state;
    enum { THREADS = 3 };
    asyncio_mutex *m;
    assert_ok(asyncio_mutex_new(&m));
    long counter = 0;
    counter_arg arg = {m, &counter};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, counter_thread, &arg), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(counter, THREADS * 2 * MUTEX_ITERS);
    assert_ok(asyncio_mutex_try_lock(m));
    asyncio_mutex_unlock(m);
    assert_ok(asyncio_mutex_free(m));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_semaphore_try_acquire_and_release_count_permits),
        support_test(test_semaphore_invalid_arguments),
        support_test(test_semaphore_acquire_with_permits_completes_at_first_poll),
        support_test(test_semaphore_waiters_are_granted_in_fifo_order),
        support_test(test_semaphore_large_request_is_not_starved_by_later_small_ones),
        support_test(test_semaphore_cancel_while_waiting_unlinks_at_once),
        support_test(test_semaphore_cancel_with_partial_grant_hands_permits_on),
        support_test(test_semaphore_grant_dropped_before_poll_goes_back),
        support_test(test_semaphore_close_wakes_every_waiter_with_closed),
        support_test(test_semaphore_permits_conserved_under_thread_stress),
        support_test(test_semaphore_release_during_close_grants_no_waiter),
        support_test(test_semaphore_fast_path_orders_the_critical_section_across_threads),
        support_test(test_notify_one_without_waiter_is_kept_as_one_permit),
        support_test(test_notify_waiters_between_init_and_first_poll_is_not_lost),
        support_test(test_notify_one_wakes_waiters_in_fifo_order),
        support_test(test_notify_waiters_wakes_every_queued_waiter),
        support_test(test_notified_dropped_after_notify_one_passes_it_on),
        support_test(test_notify_not_lost_between_creation_and_first_poll_across_threads),
        support_test(test_mutex_waiters_get_the_lock_in_fifo_order),
        support_test(test_mutex_cancelled_waiter_passes_the_lock_on),
        support_test(test_mutex_serialises_tasks_on_several_runtime_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Task state word: every transition of src/task/state.c, single-threaded
 * lifecycles first, then a threaded stress test (run under TSan by
 * `make tsan`) proving a task is never queued twice and its references end
 * at zero exactly once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "task/state.h"

#define REFS(st) asyncio__st_refs(asyncio__task_state_load(st))
#define HAS(st, bit) ((asyncio__task_state_load(st) & (bit)) != 0)


/* Consumes a transition's result the test does not examine (warn_unused_result ignores (void)). */
static void discard(uint64_t v)
{
    (void)v;
}

static void test_task_state_starts_notified_with_three_refs(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_int_equal(REFS(&st), 3);
    assert_true(HAS(&st, ASYNCIO__ST_NOTIFIED));
    assert_true(HAS(&st, ASYNCIO__ST_JOIN_INTEREST));
    assert_false(HAS(&st, ASYNCIO__ST_RUNNING | ASYNCIO__ST_COMPLETE | ASYNCIO__ST_CANCELLED));
}

static void test_task_state_run_complete_join_frees_once(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    assert_true(HAS(&st, ASYNCIO__ST_RUNNING));
    assert_false(HAS(&st, ASYNCIO__ST_NOTIFIED));
    uint64_t s = asyncio__task_state_to_complete(&st);
    assert_true(s & ASYNCIO__ST_COMPLETE);
    assert_false(s & ASYNCIO__ST_RUNNING);
    /* Handle takes the output; then owner + polling refs + handle ref go. */
    unsigned f = asyncio__task_state_join_handle_dropped(&st);
    assert_true(f & ASYNCIO__JH_DROP_OUTPUT);
    assert_false(asyncio__task_state_ref_dec_n(&st, 2)); /* polling + owner */
    assert_true(asyncio__task_state_ref_dec(&st));       /* handle: last */
}

static void test_task_state_detached_starts_with_two_refs_and_no_join_interest(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, true);
    assert_int_equal(REFS(&st), 2); /* owner + first queue entry: no JoinHandle */
    assert_true(HAS(&st, ASYNCIO__ST_NOTIFIED));
    assert_false(HAS(&st, ASYNCIO__ST_JOIN_INTEREST | ASYNCIO__ST_JOIN_WAKER));
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    uint64_t s = asyncio__task_state_to_complete(&st);
    assert_false(s & ASYNCIO__ST_JOIN_INTEREST);        /* complete() drops the output itself */
    assert_true(asyncio__task_state_ref_dec_n(&st, 2)); /* polling + owner: the last two */
}

/* A joined handle's drop: interest and reference in one RMW, the last one frees. */
static void test_task_state_joined_handle_drop_clears_interest_and_ref_at_once(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    discard(asyncio__task_state_to_complete(&st));
    assert_false(asyncio__task_state_ref_dec_n(&st, 2)); /* polling + owner */
    assert_true(asyncio__task_state_join_handle_drop_complete(&st));
    assert_int_equal(REFS(&st), 0);
    assert_false(HAS(&st, ASYNCIO__ST_JOIN_INTEREST));
    assert_true(HAS(&st, ASYNCIO__ST_COMPLETE));
}

static void test_task_state_wake_while_running_requeues_once(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    asyncio__task_state_ref_inc(&st); /* a waker clone */
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    assert_int_equal(asyncio__task_state_notify_by_ref(&st), ASYNCIO__NOTIFY_NOTHING);
    assert_int_equal(asyncio__task_state_notify_by_ref(&st), ASYNCIO__NOTIFY_NOTHING);
    uint64_t refs = REFS(&st);
    assert_int_equal(asyncio__task_state_to_idle(&st), ASYNCIO__IDLE_OK_NOTIFIED);
    assert_int_equal(REFS(&st), refs); /* polling ref moved to the new entry */
    assert_true(HAS(&st, ASYNCIO__ST_NOTIFIED));
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
}

static void test_task_state_idle_then_wake_by_ref_submits_and_adds_ref(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    asyncio__task_state_ref_inc(&st); /* waker */
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    assert_int_equal(asyncio__task_state_to_idle(&st), ASYNCIO__IDLE_OK);
    assert_int_equal(REFS(&st), 3); /* owner, handle, waker */
    assert_int_equal(asyncio__task_state_notify_by_ref(&st), ASYNCIO__NOTIFY_SUBMIT);
    assert_int_equal(REFS(&st), 4);
    /* A second wake while queued does nothing. */
    assert_int_equal(asyncio__task_state_notify_by_ref(&st), ASYNCIO__NOTIFY_NOTHING);
    assert_int_equal(REFS(&st), 4);
}

static void test_task_state_wake_by_val_moves_or_drops_the_waker_ref(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    asyncio__task_state_ref_inc(&st);
    asyncio__task_state_ref_inc(&st); /* two wakers */
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    assert_int_equal(asyncio__task_state_to_idle(&st), ASYNCIO__IDLE_OK);
    assert_int_equal(REFS(&st), 4);
    assert_int_equal(asyncio__task_state_notify_by_val(&st), ASYNCIO__NOTIFY_SUBMIT);
    assert_int_equal(REFS(&st), 4); /* moved to the queue entry */
    assert_int_equal(asyncio__task_state_notify_by_val(&st), ASYNCIO__NOTIFY_NOTHING);
    assert_int_equal(REFS(&st), 3); /* already queued: released */
}

static void test_task_state_wake_by_val_after_complete_can_dealloc(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    asyncio__task_state_ref_inc(&st); /* waker outlives everything */
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    discard(asyncio__task_state_to_complete(&st));
    discard(asyncio__task_state_join_handle_dropped(&st));
    assert_false(asyncio__task_state_ref_dec_n(&st, 3)); /* polling, owner, handle */
    assert_int_equal(asyncio__task_state_notify_by_val(&st), ASYNCIO__NOTIFY_DEALLOC);
}

static void test_task_state_stale_queue_entry_fails_to_run(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    asyncio__task_state_ref_inc(&st);
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    /* Abort while running marks NOTIFIED; the task then completes via cancel. */
    assert_false(asyncio__task_state_notify_and_cancel(&st));
    assert_int_equal(asyncio__task_state_to_idle(&st), ASYNCIO__IDLE_CANCELLED);
    discard(asyncio__task_state_to_complete(&st));
    /* Someone pops a queue entry of the complete task: it just lets go. */
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_FAILED);
}

static void test_task_state_abort_idle_submits_cancelled(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_SUCCESS);
    assert_int_equal(asyncio__task_state_to_idle(&st), ASYNCIO__IDLE_OK);
    assert_true(asyncio__task_state_notify_and_cancel(&st));
    assert_false(asyncio__task_state_notify_and_cancel(&st)); /* once */
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_CANCELLED);
}

static void test_task_state_abort_queued_does_not_submit_again(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false); /* queued from spawn */
    assert_false(asyncio__task_state_notify_and_cancel(&st));
    assert_true(HAS(&st, ASYNCIO__ST_CANCELLED));
    assert_int_equal(asyncio__task_state_to_running(&st), ASYNCIO__RUN_CANCELLED);
}

static void test_task_state_abort_after_complete_is_noop(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    discard(asyncio__task_state_to_running(&st));
    discard(asyncio__task_state_to_complete(&st));
    assert_false(asyncio__task_state_notify_and_cancel(&st));
    assert_false(HAS(&st, ASYNCIO__ST_CANCELLED));
}

static void test_task_state_shutdown_claims_only_idle_tasks(void **ctx)
{
    (void)ctx;
    asyncio__task_state idle, running;
    asyncio__task_state_init(&idle, false);
    discard(asyncio__task_state_to_running(&idle));
    discard(asyncio__task_state_to_idle(&idle));
    assert_true(asyncio__task_state_to_shutdown(&idle));
    assert_true(HAS(&idle, ASYNCIO__ST_RUNNING | ASYNCIO__ST_CANCELLED));

    asyncio__task_state_init(&running, false);
    discard(asyncio__task_state_to_running(&running));
    assert_false(asyncio__task_state_to_shutdown(&running));
    assert_int_equal(asyncio__task_state_to_idle(&running), ASYNCIO__IDLE_CANCELLED);
}

static void test_task_state_join_waker_handshake(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_true(asyncio__task_state_set_join_waker(&st));
    assert_true(asyncio__task_state_unset_join_waker(&st)); /* replace it */
    assert_true(asyncio__task_state_set_join_waker(&st));
    discard(asyncio__task_state_to_running(&st));
    uint64_t s = asyncio__task_state_to_complete(&st);
    assert_true(s & ASYNCIO__ST_JOIN_WAKER); /* runtime wakes the handle */
    s = asyncio__task_state_unset_waker_after_complete(&st);
    assert_true(s & ASYNCIO__ST_JOIN_INTEREST); /* handle alive: it drops the waker */
    unsigned f = asyncio__task_state_join_handle_dropped(&st);
    assert_int_equal(f, ASYNCIO__JH_DROP_OUTPUT | ASYNCIO__JH_DROP_WAKER);
}

/* Found by tests/model/task_state.pml (now its BUG5): a JoinHandle replacing
 * its waker after the task completed on another thread, and after the
 * runtime already took the waker back, must see "complete", not abort. */
static void test_unset_join_waker_after_runtime_took_waker_reports_complete(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_true(asyncio__task_state_set_join_waker(&st));
    discard(asyncio__task_state_to_running(&st));
    discard(asyncio__task_state_to_complete(&st));
    uint64_t s = asyncio__task_state_unset_waker_after_complete(&st);
    assert_true(s & ASYNCIO__ST_JOIN_INTEREST);
    assert_false(HAS(&st, ASYNCIO__ST_JOIN_WAKER));
    assert_false(asyncio__task_state_unset_join_waker(&st));
}

static void test_task_state_join_waker_refused_after_complete(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    discard(asyncio__task_state_to_running(&st));
    discard(asyncio__task_state_to_complete(&st));
    assert_false(asyncio__task_state_set_join_waker(&st));
    assert_false(HAS(&st, ASYNCIO__ST_JOIN_WAKER));
}

static void test_task_state_handle_dropped_before_complete_keeps_output_with_task(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_true(asyncio__task_state_set_join_waker(&st));
    unsigned f = asyncio__task_state_join_handle_dropped(&st);
    assert_int_equal(f, ASYNCIO__JH_DROP_WAKER); /* no output yet; waker is the handle's */
    discard(asyncio__task_state_to_running(&st));
    uint64_t s = asyncio__task_state_to_complete(&st);
    assert_false(s & ASYNCIO__ST_JOIN_INTEREST); /* runtime drops the output itself */
    assert_false(s & ASYNCIO__ST_JOIN_WAKER);
}

static void test_task_state_refcount_reaches_zero_exactly_once(void **ctx)
{
    (void)ctx;
    asyncio__task_state st;
    asyncio__task_state_init(&st, false);
    assert_false(asyncio__task_state_ref_dec(&st));
    assert_false(asyncio__task_state_ref_dec(&st));
    assert_true(asyncio__task_state_ref_dec(&st));
    assert_int_equal(REFS(&st), 0);
}

/* ---- threaded stress ---------------------------------------------------- */

#define WAKERS 4
#define WAKES_PER_THREAD 20000

typedef struct stress {
    asyncio__task_state st;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int queued;    /* entries in the "run queue" */
    int max_queued;
    _Atomic int final; /* set by the main thread before its last wake */
    long polls;
    int failures; /* worker-side checks (cmocka asserts only on the main thread) */
} stress;

static void stress_submit(stress *s)
{
    pthread_mutex_lock(&s->mu);
    s->queued++;
    if (s->queued > s->max_queued)
        s->max_queued = s->queued;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *stress_waker(void *arg)
{
    stress *s = arg;
    for (int i = 0; i < WAKES_PER_THREAD; i++) {
        if (asyncio__task_state_notify_by_ref(&s->st) == ASYNCIO__NOTIFY_SUBMIT)
            stress_submit(s);
    }
    discard(asyncio__task_state_ref_dec(&s->st)); /* drop this thread's waker */
    return NULL;
}

/* The "worker": pops entries and polls; the task completes on the first poll after `final`. */
static void *stress_worker(void *arg)
{
    stress *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->queued == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        s->queued--;
        pthread_mutex_unlock(&s->mu);
        if (asyncio__task_state_to_running(&s->st) != ASYNCIO__RUN_SUCCESS)
            s->failures++;
        s->polls++;
        if (atomic_load(&s->final)) {
            discard(asyncio__task_state_to_complete(&s->st));
            discard(asyncio__task_state_join_handle_dropped(&s->st));
            /* polling ref + owner + handle: the last one must free. */
            if (!asyncio__task_state_ref_dec_n(&s->st, 3))
                s->failures++;
            return NULL;
        }
        asyncio__to_idle r = asyncio__task_state_to_idle(&s->st);
        if (r == ASYNCIO__IDLE_OK_NOTIFIED)
            stress_submit(s);
        else if (r != ASYNCIO__IDLE_OK)
            s->failures++;
    }
}

static void test_task_state_concurrent_wakes_queue_task_at_most_once(void **ctx)
{
    (void)ctx;
    stress s = {.queued = 0};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    atomic_init(&s.final, 0);
    asyncio__task_state_init(&s.st, false);
    s.queued = 1; /* the spawn entry */
    s.max_queued = 1;
    for (int i = 0; i < WAKERS; i++)
        asyncio__task_state_ref_inc(&s.st);
    pthread_t w, t[WAKERS];
    pthread_create(&w, NULL, stress_worker, &s);
    for (int i = 0; i < WAKERS; i++)
        pthread_create(&t[i], NULL, stress_waker, &s);
    for (int i = 0; i < WAKERS; i++)
        pthread_join(t[i], NULL);
    /* Last wake, by value: whatever state the task is in, one more poll follows and sees final. */
    atomic_store(&s.final, 1);
    asyncio__task_state_ref_inc(&s.st);
    if (asyncio__task_state_notify_by_val(&s.st) == ASYNCIO__NOTIFY_SUBMIT)
        stress_submit(&s);
    pthread_join(w, NULL);
    assert_int_equal(s.failures, 0);
    assert_int_equal(s.max_queued, 1);
    assert_true(s.polls >= 1);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_state_starts_notified_with_three_refs),
        cmocka_unit_test(test_task_state_run_complete_join_frees_once),
        cmocka_unit_test(test_task_state_detached_starts_with_two_refs_and_no_join_interest),
        cmocka_unit_test(test_task_state_joined_handle_drop_clears_interest_and_ref_at_once),
        cmocka_unit_test(test_task_state_wake_while_running_requeues_once),
        cmocka_unit_test(test_task_state_idle_then_wake_by_ref_submits_and_adds_ref),
        cmocka_unit_test(test_task_state_wake_by_val_moves_or_drops_the_waker_ref),
        cmocka_unit_test(test_task_state_wake_by_val_after_complete_can_dealloc),
        cmocka_unit_test(test_task_state_stale_queue_entry_fails_to_run),
        cmocka_unit_test(test_task_state_abort_idle_submits_cancelled),
        cmocka_unit_test(test_task_state_abort_queued_does_not_submit_again),
        cmocka_unit_test(test_task_state_abort_after_complete_is_noop),
        cmocka_unit_test(test_task_state_shutdown_claims_only_idle_tasks),
        cmocka_unit_test(test_task_state_join_waker_handshake),
        cmocka_unit_test(test_task_state_join_waker_refused_after_complete),
        cmocka_unit_test(test_unset_join_waker_after_runtime_took_waker_reports_complete),
        cmocka_unit_test(test_task_state_handle_dropped_before_complete_keeps_output_with_task),
        cmocka_unit_test(test_task_state_refcount_reaches_zero_exactly_once),
        cmocka_unit_test(test_task_state_concurrent_wakes_queue_task_at_most_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The runtime's lifetime against wakes from other threads (issue 12,
 * bug 2): a wake, wake-by-ref or abort made on a thread that is not the
 * runtime's may be half done -- its task's transition said "queue it" but
 * the push and the unpark have not happened -- when the owner shuts the
 * runtime down and frees it. Free must wait for such a call, and whatever a
 * later call touches must still be allocated (src/task/task.h, "The
 * scheduler's lifetime").
 *
 * The window is forced with a test hook (asyncio__task_remote_hook)
 * that pauses the waking thread inside it while the test frees the runtime:
 * free must not return while the hook is paused. Runs on every flavour
 * (ASYNCIO_TEST_RUNTIME); ASan sees any access to freed memory.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "asyncio/runtime.h"
#include "support.h"
#include "task/task.h"

/* ---- a task that parks with its waker given away ----------------------------------------- */

typedef struct parked {
    asyncio_waker w;
    _Atomic int polled;
    _Atomic int drops;
} parked;

static int parked_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    parked *p = *(parked **)state;
    if (atomic_load(&p->polled))
        return 0; /* woken: done */
    p->w = asyncio_waker_clone(cx->waker);
    atomic_store(&p->polled, 1); /* release: w is written */
    return ASYNCIO_PENDING;
}

static void parked_drop(void *state)
{
    atomic_fetch_add(&(*(parked **)state)->drops, 1);
}

static const asyncio_task_vtable parked_vt = {parked_poll, parked_drop, NULL, sizeof(parked *), 0};

/* block_on of a task that yields once: a current-thread runtime polls the spawned task. */
typedef struct once {
    asyncio_yield y;
} once;

static int once_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    return asyncio_yield_poll(&((once *)state)->y, cx);
}

static const asyncio_task_vtable once_vt = {once_poll, NULL, NULL, sizeof(once), 0};

/* Spawns the parked task and returns once it has been polled (its waker is in p->w). */
static void spawn_parked(asyncio_runtime *rt, parked *p, asyncio_join_handle **jh)
{
    assert_ok(asyncio_spawn(rt, &parked_vt, &p, jh));
    if (!support_runtime_is_mt())
        assert_ok(asyncio_runtime_block_on(rt, &once_vt, &(once){{0}}, NULL));
    while (!atomic_load(&p->polled))
        sched_yield();
}

/* ---- the hook: hold the waking thread inside the window ---------------------------------- */

static _Atomic int g_in_window;
static _Atomic int g_free_returned;
static _Atomic int g_free_returned_in_window;

static void hold_in_window(void)
{
    atomic_store(&g_in_window, 1);
    /* Long enough for an unguarded free to finish; a guarded one waits for us. */
    for (int i = 0; i < 300 && !atomic_load(&g_free_returned); i++)
        usleep(1000);
    if (atomic_load(&g_free_returned))
        atomic_store(&g_free_returned_in_window, 1);
}

typedef enum remote_op { OP_WAKE, OP_WAKE_BY_REF, OP_ABORT } remote_op;

typedef struct remote_call {
    remote_op op;
    parked *p;
    asyncio_join_handle *jh;
} remote_call;

static void *remote_thread(void *arg)
{
    remote_call *c = arg;
    switch (c->op) {
    case OP_WAKE:
        asyncio_waker_wake(&c->p->w); /* by value: the waker is gone afterwards */
        break;
    case OP_WAKE_BY_REF:
        asyncio_waker_wake_by_ref(&c->p->w);
        asyncio_waker_drop(&c->p->w);
        break;
    case OP_ABORT:
        asyncio_join_handle_abort(c->jh);
        asyncio_waker_drop(&c->p->w);
        break;
    }
    return NULL;
}

/*
 * The thread's call has passed its transition (the task is NOTIFIED and the
 * entry is the caller's to push) and pauses; the test frees the runtime.
 * Free must wait for the call: it returns only after the hook let go.
 */
static void free_while_a_remote_call_is_in_its_window(remote_op op)
{
    atomic_store(&g_in_window, 0);
    atomic_store(&g_free_returned, 0);
    atomic_store(&g_free_returned_in_window, 0);
    asyncio_runtime *rt = support_runtime_new(NULL);
    parked p = {.w = ASYNCIO_WAKER_EMPTY};
    asyncio_join_handle *jh = NULL;
    spawn_parked(rt, &p, op == OP_ABORT ? &jh : NULL);

    asyncio__task_remote_hook = hold_in_window;
    remote_call c = {op, &p, jh};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, remote_thread, &c), 0);
    while (!atomic_load(&g_in_window))
        sched_yield();
    assert_ok(asyncio_runtime_free(rt));
    atomic_store(&g_free_returned, 1);
    pthread_join(th, NULL);
    asyncio__task_remote_hook = NULL;

    assert_int_equal(atomic_load(&g_free_returned_in_window), 0);
    assert_int_equal(atomic_load(&p.drops), 1); /* cancelled by shutdown, dropped once */
    if (jh != NULL) {
        asyncio_waker none = ASYNCIO_WAKER_EMPTY;
        asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
        assert_err(asyncio_join_handle_poll(jh, &cx, NULL), ASYNCIO_ECANCELED);
        asyncio_join_handle_drop(jh); /* the last reference: the runtime's memory goes too */
    }
    /* support_teardown: no block left (task, entry, runtime). */
}

static void test_runtime_free_waits_for_a_wake_from_another_thread_in_progress(void **state)
{
    (void)state;
    free_while_a_remote_call_is_in_its_window(OP_WAKE);
}

static void test_runtime_free_waits_for_a_wake_by_ref_from_another_thread_in_progress(void **state)
{
    (void)state;
    free_while_a_remote_call_is_in_its_window(OP_WAKE_BY_REF);
}

static void test_runtime_free_waits_for_an_abort_from_another_thread_in_progress(void **state)
{
    (void)state;
    free_while_a_remote_call_is_in_its_window(OP_ABORT);
}

/*
 * A waker kept past free: the task is cancelled and complete, the waker
 * still holds it, and the task holds the runtime's memory. Waking it (from
 * a thread that is no runtime's) does nothing; dropping it frees the task
 * and then the runtime's memory. Nothing leaks, nothing is touched after free.
 */
static void test_waker_kept_past_runtime_free_is_safe_to_wake_and_drop(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    parked p = {.w = ASYNCIO_WAKER_EMPTY};
    spawn_parked(rt, &p, NULL);
    long live_with_runtime = support_alloc_live();
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&p.drops), 1);
    assert_true(support_alloc_live() > 0); /* the task block and the runtime's memory */
    assert_true(support_alloc_live() < live_with_runtime);
    asyncio_waker_wake_by_ref(&p.w);
    asyncio_waker w2 = asyncio_waker_clone(&p.w);
    asyncio_waker_wake(&w2);
    asyncio_waker_drop(&p.w);
    assert_int_equal(support_alloc_live(), 0);
}

/*
 * A waker kept past free is woken by value on another thread while the
 * JoinHandle, the task's only other reference, is dropped here. The wake's
 * transition must not give its reference away before its bracket ends: if
 * it did, this drop would free the task and the runtime's memory while the
 * waking thread is paused in the window, and its leave would write into it
 * (tests/model/lifetime.pml BUG4).
 */
static _Atomic int g_paused;
static _Atomic int g_resume;

static void pause_in_window(void)
{
    atomic_store(&g_paused, 1);
    while (!atomic_load(&g_resume))
        sched_yield();
}

static void *wake_by_value(void *arg)
{
    asyncio_waker_wake((asyncio_waker *)arg);
    return NULL;
}

static void test_wake_by_value_after_free_keeps_its_task_until_its_bracket_ends(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    parked p = {.w = ASYNCIO_WAKER_EMPTY};
    asyncio_join_handle *jh;
    spawn_parked(rt, &p, &jh);
    assert_ok(asyncio_runtime_free(rt));
    atomic_store(&g_paused, 0);
    atomic_store(&g_resume, 0);
    asyncio__task_remote_hook = pause_in_window;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wake_by_value, &p.w), 0);
    while (!atomic_load(&g_paused))
        sched_yield();
    asyncio_join_handle_drop(jh);
    /* The waking thread still holds the task, and the task the runtime's memory. */
    long live_in_window = support_alloc_live();
    atomic_store(&g_resume, 1);
    pthread_join(th, NULL);
    asyncio__task_remote_hook = NULL;
    assert_true(live_in_window >= 2);
    assert_int_equal(support_alloc_live(), 0);
}

/* ---- the same race, unforced, many times (ASan / TSan) ---------------------------------- */

static void *wake_soon(void *arg)
{
    parked *p = arg;
    for (int i = 0, n = rand() % 50; i < n; i++)
        sched_yield();
    asyncio_waker_wake(&p->w);
    return NULL;
}

static void test_runtime_free_racing_wakes_from_another_thread_is_safe(void **state)
{
    (void)state;
    unsigned long rounds = support_scale(500);
    for (unsigned long r = 0; r < rounds; r++) {
        asyncio_runtime *rt = support_runtime_new(NULL);
        parked p = {.w = ASYNCIO_WAKER_EMPTY};
        spawn_parked(rt, &p, NULL);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, wake_soon, &p), 0);
        for (int i = 0, n = rand() % 50; i < n; i++)
            sched_yield();
        assert_ok(asyncio_runtime_free(rt));
        pthread_join(th, NULL);
        assert_int_equal(atomic_load(&p.drops), 1);
        assert_int_equal(support_alloc_live(), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_runtime_free_waits_for_a_wake_from_another_thread_in_progress),
        support_test(test_runtime_free_waits_for_a_wake_by_ref_from_another_thread_in_progress),
        support_test(test_runtime_free_waits_for_an_abort_from_another_thread_in_progress),
        support_test(test_waker_kept_past_runtime_free_is_safe_to_wake_and_drop),
        support_test(test_wake_by_value_after_free_keeps_its_task_until_its_bracket_ends),
        support_test(test_runtime_free_racing_wakes_from_another_thread_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

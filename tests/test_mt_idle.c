/*
 * The multi-thread runtime's idle protocol (src/sched/mt_idle.c), driven
 * call by call on one thread, so that the interleavings which matter are
 * forced rather than hoped for. The counters it keeps (searching, unparked)
 * must always come back to what the workers believe; a leaked "searching"
 * count means no sleeper is ever woken again (issue 12, bug 1).
 * tests/model/idle.pml checks the same protocol over every interleaving.
 */
#include <stdlib.h>

#include "sched/mt.h"
#include "support.h"

#define NWORKERS 2

typedef struct fixture {
    mt_runtime rt;
    mt_worker workers[NWORKERS];
} fixture;

static fixture *fixture_new(void)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->rt.nworkers = NWORKERS;
    f->rt.workers = f->workers;
    for (uint32_t i = 0; i < NWORKERS; i++) {
        f->workers[i].rt = &f->rt;
        f->workers[i].index = i;
    }
    assert_ok(asyncio__idle_init(&f->rt.idle, NWORKERS));
    return f;
}

static void fixture_free(fixture *f)
{
    asyncio__idle_destroy(&f->rt.idle);
    free(f);
}

static uint32_t searching_count(fixture *f)
{
    return atomic_load(&f->rt.idle.state) & 0xffff;
}

static uint32_t unparked_count(fixture *f)
{
    return atomic_load(&f->rt.idle.state) >> 16;
}

/* The hook plays a notifier on another thread that runs at the worst moment. */
static int32_t g_hook_popped;
static int g_hook_calls;

static void notify_from_hook(mt_runtime *rt, mt_worker *w)
{
    (void)w;
    g_hook_calls++;
    g_hook_popped = asyncio__idle_worker_to_notify(rt);
}

/*
 * w0 parks; its own driver turn queued a task for it, so its park returns
 * with local work although nobody unparked it. While it leaves the park,
 * another thread pushes work and its notify pops w0 off the sleepers stack,
 * counting it searching. w0 must come out searching, so that the count
 * returns to 0 when it finds its task (before the fix it came out not
 * searching and the count stayed at 1 forever).
 */
static void test_idle_worker_popped_while_leaving_park_comes_out_searching(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    mt_worker *w0 = &f->workers[0], *w1 = &f->workers[1];

    /* w1 is busy running a long task; w0 finds nothing and parks. */
    assert_false(asyncio__idle_to_parked(&f->rt, w0)); /* not a searcher */
    assert_int_equal(unparked_count(f), 1);

    g_hook_calls = 0;
    g_hook_popped = -2;
    asyncio__idle_leave_park_hook = notify_from_hook;
    bool searching = false;
    bool left = asyncio__idle_leave_park(&f->rt, w0, true, &searching);
    asyncio__idle_leave_park_hook = NULL;
    assert_int_equal(g_hook_calls, 1);
    assert_int_equal(g_hook_popped, 0); /* the notifier chose w0 */
    assert_true(left);
    assert_true(searching); /* the notifier's count is w0's to give back */
    w0->searching = searching;
    assert_int_equal(unparked_count(f), 2);

    /* w0 finds its task: the last searcher leaves, the count is 0 again. */
    assert_true(asyncio__idle_from_searching(&f->rt.idle));
    w0->searching = false;
    assert_int_equal(searching_count(f), 0);

    /* Both run out of work and park: new work from outside wakes one of them. */
    assert_false(asyncio__idle_to_parked(&f->rt, w0)); /* not a searcher */
    assert_false(asyncio__idle_to_parked(&f->rt, w1)); /* not a searcher */
    assert_int_equal(searching_count(f), 0);
    assert_int_equal(unparked_count(f), 0);
    int32_t idx = asyncio__idle_worker_to_notify(&f->rt);
    assert_true(idx == 0 || idx == 1);
    assert_int_equal(searching_count(f), 1);
    fixture_free(f);
}

/* A park that returns with nothing to do and nobody waking it stays parked. */
static void test_idle_spurious_return_from_park_stays_a_sleeper(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    mt_worker *w0 = &f->workers[0];
    assert_false(asyncio__idle_to_parked(&f->rt, w0)); /* not a searcher */
    bool searching = true;
    assert_false(asyncio__idle_leave_park(&f->rt, w0, false, &searching));
    assert_int_equal(unparked_count(f), 1);
    assert_int_equal(f->rt.idle.nsleepers, 1);
    /* ...and a notifier still finds it there. */
    assert_int_equal(asyncio__idle_worker_to_notify(&f->rt), 0);
    assert_true(asyncio__idle_leave_park(&f->rt, w0, false, &searching));
    assert_true(searching);
    assert_true(asyncio__idle_from_searching(&f->rt.idle));
    assert_int_equal(searching_count(f), 0);
    fixture_free(f);
}

/* Leaving on its own (local work): counted unparked, not searching, off the stack. */
static void test_idle_leaving_park_with_local_work_is_unparked_not_searching(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    mt_worker *w0 = &f->workers[0];
    assert_false(asyncio__idle_to_parked(&f->rt, w0)); /* not a searcher */
    bool searching = true;
    assert_true(asyncio__idle_leave_park(&f->rt, w0, true, &searching));
    assert_false(searching);
    assert_int_equal(unparked_count(f), 2);
    assert_int_equal(searching_count(f), 0);
    assert_int_equal(f->rt.idle.nsleepers, 0);
    /* Nobody is on the stack: a notifier has no one to wake. */
    assert_int_equal(asyncio__idle_worker_to_notify(&f->rt), -1);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_worker_popped_while_leaving_park_comes_out_searching),
        cmocka_unit_test(test_idle_spurious_return_from_park_stays_a_sleeper),
        cmocka_unit_test(test_idle_leaving_park_with_local_work_is_unparked_not_searching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

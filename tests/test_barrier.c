/*
 * Async Barrier: the n-th arrival releases a generation with exactly one
 * leader, the barrier is reusable, a cancelled waiter withdraws its
 * arrival (at every step of a script: nothing kept, nobody stranded), and
 * tasks on several runtime threads pass through many generations in step
 * (TSan checks the plain-memory hand-over between phases).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/barrier.h"
#include "asyncio/runtime.h"
#include "failing_alloc.h"
#include "hand_waker.h"
#include "support.h"

static void test_barrier_invalid_arguments_and_busy_free(void **state)
{
    (void)state;
    asyncio_barrier *b;
    assert_err(asyncio_barrier_new(NULL, 2), ASYNCIO_EINVAL);
    assert_err(asyncio_barrier_new(&b, 0), ASYNCIO_EINVAL);
    assert_ok(asyncio_barrier_new(&b, 2));
    hand *h = hand_new();
    assert_err(asyncio_barrier_wait_poll(NULL, &h->cx, NULL), ASYNCIO_EINVAL);
    asyncio_barrier_wait w0;
    asyncio_barrier_wait_init(&w0, NULL);
    assert_err(asyncio_barrier_wait_poll(&w0, &h->cx, NULL), ASYNCIO_EINVAL);
    asyncio_barrier_wait w;
    asyncio_barrier_wait_init(&w, b);
    assert_int_equal(asyncio_barrier_wait_poll(&w, &h->cx, NULL), ASYNCIO_PENDING);
    assert_int_equal(asyncio_barrier_waiting(b), 1);
    assert_err(asyncio_barrier_free(b), ASYNCIO_EBUSY);
    asyncio_barrier_wait_drop(&w);
    asyncio_barrier_wait_drop(&w); /* idempotent */
    assert_int_equal(asyncio_barrier_waiting(b), 0);
    hand_free(h);
    assert_ok(asyncio_barrier_free(b));
    assert_ok(asyncio_barrier_free(NULL));
}

static void test_barrier_last_arrival_releases_everyone_and_leads(void **state)
{
    (void)state;
    enum { N = 40 }; /* more than one wake batch */
    asyncio_barrier *b;
    assert_ok(asyncio_barrier_new(&b, N));
    hand *h[N];
    asyncio_barrier_wait *w = calloc(N, sizeof *w);
    assert_non_null(w);
    for (int round = 0; round < 3; round++) { /* reusable */
        for (int i = 0; i < N - 1; i++) {
            h[i] = hand_new();
            asyncio_barrier_wait_init(&w[i], b);
            assert_int_equal(asyncio_barrier_wait_poll(&w[i], &h[i]->cx, NULL), ASYNCIO_PENDING);
            assert_int_equal(hand_wakes(h[i]), 0);
        }
        h[N - 1] = hand_new();
        asyncio_barrier_wait_init(&w[N - 1], b);
        bool leader = false;
        assert_ok(asyncio_barrier_wait_poll(&w[N - 1], &h[N - 1]->cx, &leader));
        assert_true(leader);
        int leaders = 1;
        for (int i = 0; i < N - 1; i++) {
            assert_int_equal(hand_wakes(h[i]), 1);
            assert_ok(asyncio_barrier_wait_poll(&w[i], &h[i]->cx, &leader));
            leaders += leader;
            assert_ok(asyncio_barrier_wait_poll(&w[i], &h[i]->cx, &leader)); /* again */
            assert_false(leader);
        }
        assert_int_equal(leaders, 1);
        for (int i = 0; i < N; i++) {
            asyncio_barrier_wait_drop(&w[i]);
            hand_free(h[i]);
        }
        assert_int_equal(asyncio_barrier_waiting(b), 0);
    }
    free(w);
    assert_ok(asyncio_barrier_free(b));
}

static void test_barrier_of_one_never_waits(void **state)
{
    (void)state;
    asyncio_barrier *b;
    assert_ok(asyncio_barrier_new(&b, 1));
    hand *h = hand_new();
    for (int i = 0; i < 3; i++) {
        asyncio_barrier_wait w;
        asyncio_barrier_wait_init(&w, b);
        bool leader = false;
        assert_ok(asyncio_barrier_wait_poll(&w, &h->cx, &leader));
        assert_true(leader);
        asyncio_barrier_wait_drop(&w);
    }
    hand_free(h);
    assert_ok(asyncio_barrier_free(b));
}

/*
 * Three parties A, B, C; the subject (A or B) is dropped after `cut` of the
 * script's steps (A arrives, B arrives, C arrives: the generation trips,
 * A observes, B observes). A dropped waiter that had not been released
 * withdraws: the generation then needs a replacement party D, and the
 * others must complete exactly when it arrives. Afterwards no clone is
 * left (hands freed: ASan catches a later wake).
 */
static void run_cut(int subject, int cut)
{
    asyncio_barrier *b;
    assert_ok(asyncio_barrier_new(&b, 3));
    hand *h[4];
    asyncio_barrier_wait w[4];
    bool done[4] = {false}, polled[4] = {false}, leader = false;
    for (int i = 0; i < 4; i++) {
        h[i] = hand_new();
        asyncio_barrier_wait_init(&w[i], b);
    }
    int leaders = 0;
    for (int step = 0; step < cut; step++) {
        if (step < 3) { /* arrivals of A, B, C */
            int rc = asyncio_barrier_wait_poll(&w[step], &h[step]->cx, &leader);
            polled[step] = true;
            assert_int_equal(rc, step == 2 ? 0 : ASYNCIO_PENDING);
            if (rc == 0) {
                done[step] = true;
                leaders += leader;
            }
        } else { /* A, then B observe the release */
            int i = step - 3;
            assert_ok(asyncio_barrier_wait_poll(&w[i], &h[i]->cx, &leader));
            done[i] = true;
            leaders += leader;
        }
    }
    asyncio_barrier_wait_drop(&w[subject]);
    memset(&w[subject], 0xA5, sizeof w[subject]);
    /*
     * Not tripped yet: the others who have not arrived arrive now, and D
     * replaces the subject (withdrawn, or never arrived): three parties.
     */
    if (cut < 3) {
        for (int i = 0; i < 4; i++) {
            if (i == subject || polled[i])
                continue;
            int rc = asyncio_barrier_wait_poll(&w[i], &h[i]->cx, &leader);
            polled[i] = true;
            assert_int_equal(rc, i == 3 ? 0 : ASYNCIO_PENDING); /* D trips it */
            if (rc == 0) {
                done[i] = true;
                leaders += leader;
            }
        }
    }
    /* Everyone left is released now: woken if waiting, done at the next poll. */
    for (int i = 0; i < 4; i++) {
        if (i == subject || !polled[i] || done[i])
            continue;
        assert_int_equal(hand_wakes(h[i]), 1);
        assert_ok(asyncio_barrier_wait_poll(&w[i], &h[i]->cx, &leader));
        done[i] = true;
        leaders += leader;
    }
    assert_int_equal(leaders, 1);
    assert_int_equal(asyncio_barrier_waiting(b), 0);
    for (int i = 0; i < 4; i++) {
        if (i != subject)
            asyncio_barrier_wait_drop(&w[i]);
        hand_free(h[i]);
    }
    assert_ok(asyncio_barrier_free(b));
}

static void test_barrier_dropping_a_waiter_at_every_step_strands_nobody(void **state)
{
    (void)state;
    for (int subject = 0; subject < 2; subject++)
        for (int cut = 0; cut <= 5; cut++)
            run_cut(subject, cut);
}

/* ---- stress: tasks on several runtime threads, many generations --------- */

#define PARTIES_PER_THREAD 2
#define THREADS            3
#define PARTIES            (PARTIES_PER_THREAD * THREADS)
#define PHASES             400

static long g_slots[PARTIES]; /* plain memory: written in a phase, read in the next */
static _Atomic int g_leaders;

typedef struct lockstep {
    asyncio_barrier *b;
    int id;
    int round; /* barrier crossings so far: even ones end a write phase, odd ones a check */
    int rounds;
    bool waiting;
    asyncio_barrier_wait w;
} lockstep;

static int lockstep_poll(void *state, asyncio_context *cx, void *output)
{
    lockstep *p = state;
    (void)output;
    while (p->round < p->rounds) {
        if (!p->waiting) {
            long phase = p->round / 2;
            if (p->round % 2 == 0) { /* write phase: publish this phase's value */
                assert_int_equal(g_slots[p->id], phase);
                g_slots[p->id] = phase + 1;
            } else { /* check phase: everyone's write of this phase is visible */
                for (int i = 0; i < PARTIES; i++)
                    assert_int_equal(g_slots[i], phase + 1);
            }
            asyncio_barrier_wait_init(&p->w, p->b);
            p->waiting = true;
        }
        bool leader = false;
        int rc = asyncio_barrier_wait_poll(&p->w, cx, &leader);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        if (leader)
            atomic_fetch_add(&g_leaders, 1);
        asyncio_barrier_wait_drop(&p->w);
        p->waiting = false;
        p->round++;
    }
    return 0;
}

static void lockstep_drop(void *state)
{
    lockstep *p = state;
    if (p->waiting)
        asyncio_barrier_wait_drop(&p->w);
}

static const asyncio_task_vtable lockstep_vt = {lockstep_poll, lockstep_drop, NULL,
                                                sizeof(lockstep), 0};

typedef struct ls_arg {
    asyncio_barrier *b;
    int first_id;
    int rounds;
} ls_arg;

static int join_two(void *state, asyncio_context *cx, void *output)
{
    asyncio_join_handle **jh = state;
    (void)output;
    for (int i = 0; i < PARTIES_PER_THREAD; i++) {
        if (jh[i] == NULL)
            continue;
        int rc = asyncio_join_handle_poll(jh[i], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        asyncio_join_handle_drop(jh[i]);
        jh[i] = NULL;
    }
    return 0;
}

static const asyncio_task_vtable join_two_vt = {
    join_two, NULL, NULL, sizeof(asyncio_join_handle *) * PARTIES_PER_THREAD, 0};

static void *ls_thread(void *p)
{
    ls_arg *a = p;
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_join_handle *jh[PARTIES_PER_THREAD];
    for (int i = 0; i < PARTIES_PER_THREAD; i++) {
        lockstep t = {.b = a->b, .id = a->first_id + i, .rounds = a->rounds};
        assert_ok(asyncio_spawn(rt, &lockstep_vt, &t, &jh[i]));
    }
    assert_ok(asyncio_runtime_block_on(rt, &join_two_vt, jh, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void test_barrier_tasks_on_several_threads_cross_many_generations_in_step(void **state)
{
    (void)state;
    asyncio_barrier *b;
    assert_ok(asyncio_barrier_new(&b, PARTIES));
    memset(g_slots, 0, sizeof g_slots);
    atomic_store(&g_leaders, 0);
    int rounds = 2 * (int)support_scale(PHASES);
    pthread_t th[THREADS];
    ls_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (ls_arg){b, i * PARTIES_PER_THREAD, rounds};
        assert_int_equal(pthread_create(&th[i], NULL, ls_thread, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&g_leaders), rounds); /* one per generation */
    for (int i = 0; i < PARTIES; i++)
        assert_int_equal(g_slots[i], rounds / 2);
    assert_ok(asyncio_barrier_free(b));
}

static void test_barrier_out_of_memory_at_creation_is_enomem(void **state)
{
    (void)state;
    failing_alloc_begin(0);
    asyncio_barrier *b;
    assert_err(asyncio_barrier_new(&b, 2), ASYNCIO_ENOMEM);
    failing_alloc_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_barrier_invalid_arguments_and_busy_free),
        support_test(test_barrier_out_of_memory_at_creation_is_enomem),
        support_test(test_barrier_last_arrival_releases_everyone_and_leads),
        support_test(test_barrier_of_one_never_waits),
        support_test(test_barrier_dropping_a_waiter_at_every_step_strands_nobody),
        support_test(test_barrier_tasks_on_several_threads_cross_many_generations_in_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

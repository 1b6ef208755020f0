/*
 * Async OnceCell: one initialiser at a time while the others wait, the
 * value published to everyone, a cancelled initialiser handing its turn to
 * the oldest waiter (at every step of a script: nobody stranded, no waker
 * kept), set / get without waiting, and a stress of tasks on several
 * runtime threads racing to initialise cells whose first initialisers give
 * up (exactly one value wins; TSan checks the lock-free read path).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/once_cell.h"
#include "asyncio/runtime.h"
#include "failing_alloc.h"
#include "hand_waker.h"
#include "support.h"

typedef struct value {
    uint64_t a, b; /* two words: a torn read would show */
} value;

static void test_once_cell_invalid_arguments(void **state)
{
    (void)state;
    asyncio_once_cell *c;
    assert_err(asyncio_once_cell_new(NULL, 8), ASYNCIO_EINVAL);
    assert_err(asyncio_once_cell_new(&c, 0), ASYNCIO_EINVAL);
    assert_err(asyncio_once_cell_new(&c, SIZE_MAX), ASYNCIO_EINVAL);
    assert_ok(asyncio_once_cell_new(&c, sizeof(value)));
    value v = {1, 2};
    assert_err(asyncio_once_cell_get(NULL, &v), ASYNCIO_EINVAL);
    assert_err(asyncio_once_cell_get(c, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_once_cell_set(c, NULL), ASYNCIO_EINVAL);
    assert_false(asyncio_once_cell_is_set(NULL));
    hand *h = hand_new();
    asyncio_once_cell_get_or_init f;
    asyncio_once_cell_get_or_init_init(&f, c);
    assert_err(asyncio_once_cell_get_or_init_poll(&f, &h->cx, &v, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_once_cell_init_finish(&f, &v), ASYNCIO_EINVAL); /* holds no turn */
    asyncio_once_cell_get_or_init_drop(&f);
    bool turn;
    assert_err(asyncio_once_cell_get_or_init_poll(&f, &h->cx, &v, &turn), ASYNCIO_ECANCELED);
    hand_free(h);
    assert_ok(asyncio_once_cell_free(c));
    assert_ok(asyncio_once_cell_free(NULL));
}

static void test_once_cell_set_once_then_get_without_waiting(void **state)
{
    (void)state;
    asyncio_once_cell *c;
    assert_ok(asyncio_once_cell_new(&c, sizeof(value)));
    value v = {0, 0}, one = {1, 11}, two = {2, 22};
    assert_err(asyncio_once_cell_get(c, &v), ASYNCIO_EAGAIN);
    assert_false(asyncio_once_cell_is_set(c));
    assert_ok(asyncio_once_cell_set(c, &one));
    assert_err(asyncio_once_cell_set(c, &two), ASYNCIO_EEXIST);
    assert_true(asyncio_once_cell_is_set(c));
    assert_ok(asyncio_once_cell_get(c, &v));
    assert_memory_equal(&v, &one, sizeof v);
    hand *h = hand_new();
    asyncio_once_cell_get_or_init f;
    asyncio_once_cell_get_or_init_init(&f, c);
    bool turn = true;
    memset(&v, 0, sizeof v);
    assert_ok(asyncio_once_cell_get_or_init_poll(&f, &h->cx, &v, &turn));
    assert_false(turn);
    assert_memory_equal(&v, &one, sizeof v);
    asyncio_once_cell_get_or_init_drop(&f);
    hand_free(h);
    assert_ok(asyncio_once_cell_free(c));
}

static void test_once_cell_one_initialiser_and_every_waiter_gets_its_value(void **state)
{
    (void)state;
    enum { N = 40 }; /* more than one wake batch */
    asyncio_once_cell *c;
    assert_ok(asyncio_once_cell_new(&c, sizeof(value)));
    hand *h[N];
    asyncio_once_cell_get_or_init *f = calloc(N, sizeof *f);
    assert_non_null(f);
    value v, mine = {7, 77};
    bool turn = false;
    for (int i = 0; i < N; i++) {
        h[i] = hand_new();
        asyncio_once_cell_get_or_init_init(&f[i], c);
        int rc = asyncio_once_cell_get_or_init_poll(&f[i], &h[i]->cx, &v, &turn);
        if (i == 0) {
            assert_ok(rc);
            assert_true(turn); /* the first caller initialises */
        } else {
            assert_int_equal(rc, ASYNCIO_PENDING);
        }
    }
    value other = {9, 99};
    assert_err(asyncio_once_cell_set(c, &other), ASYNCIO_EBUSY); /* owned by the initialiser */
    assert_err(asyncio_once_cell_free(c), ASYNCIO_EBUSY);
    assert_ok(asyncio_once_cell_get_or_init_poll(&f[0], &h[0]->cx, &v, &turn)); /* again */
    assert_true(turn);
    assert_ok(asyncio_once_cell_init_finish(&f[0], &mine));
    assert_err(asyncio_once_cell_init_finish(&f[0], &mine), ASYNCIO_EINVAL); /* turn over */
    for (int i = 1; i < N; i++) {
        assert_int_equal(hand_wakes(h[i]), 1);
        memset(&v, 0, sizeof v);
        assert_ok(asyncio_once_cell_get_or_init_poll(&f[i], &h[i]->cx, &v, &turn));
        assert_false(turn);
        assert_memory_equal(&v, &mine, sizeof v);
    }
    for (int i = 0; i < N; i++) {
        asyncio_once_cell_get_or_init_drop(&f[i]);
        hand_free(h[i]);
    }
    free(f);
    assert_err(asyncio_once_cell_set(c, &other), ASYNCIO_EEXIST);
    assert_ok(asyncio_once_cell_free(c));
}

static void
test_once_cell_abandoned_turn_goes_to_the_oldest_waiter_then_to_the_next_caller(void **state)
{
    (void)state;
    asyncio_once_cell *c;
    assert_ok(asyncio_once_cell_new(&c, sizeof(value)));
    hand *h[3];
    asyncio_once_cell_get_or_init f[3];
    value v;
    bool turn;
    for (int i = 0; i < 3; i++) {
        h[i] = hand_new();
        asyncio_once_cell_get_or_init_init(&f[i], c);
        int rc = asyncio_once_cell_get_or_init_poll(&f[i], &h[i]->cx, &v, &turn);
        assert_int_equal(rc, i == 0 ? 0 : ASYNCIO_PENDING);
    }
    asyncio_once_cell_get_or_init_drop(&f[0]); /* the initialiser gives up */
    assert_int_equal(hand_wakes(h[1]), 1);     /* the oldest waiter is next */
    assert_int_equal(hand_wakes(h[2]), 0);
    assert_ok(asyncio_once_cell_get_or_init_poll(&f[1], &h[1]->cx, &v, &turn));
    assert_true(turn);
    asyncio_once_cell_get_or_init_drop(&f[1]); /* gives up too: f[2] */
    assert_int_equal(hand_wakes(h[2]), 1);
    asyncio_once_cell_get_or_init_drop(&f[2]); /* handed the turn, never observed it: nobody left */
    assert_false(asyncio_once_cell_is_set(c));
    /* The cell is empty and free again: the next caller initialises. */
    asyncio_once_cell_get_or_init g;
    asyncio_once_cell_get_or_init_init(&g, c);
    assert_ok(asyncio_once_cell_get_or_init_poll(&g, &h[0]->cx, &v, &turn));
    assert_true(turn);
    value mine = {3, 33};
    assert_ok(asyncio_once_cell_init_finish(&g, &mine));
    asyncio_once_cell_get_or_init_drop(&g);
    assert_ok(asyncio_once_cell_get(c, &v));
    assert_memory_equal(&v, &mine, sizeof v);
    for (int i = 0; i < 3; i++)
        hand_free(h[i]);
    assert_ok(asyncio_once_cell_free(c));
}

/*
 * The script: I polls (takes the turn), W1 and W2 queue, I finishes, W1
 * and W2 observe the value. The subject (I or W1) is dropped after `cut`
 * steps; then the survivors are driven: whoever gets the turn finishes
 * with its own value, and every survivor must end with the one value that
 * was published (nobody stranded: each waiting survivor was woken).
 */
static void run_cut(int subject, int cut)
{
    enum { I, W1, W2, N };
    asyncio_once_cell *c;
    assert_ok(asyncio_once_cell_new(&c, sizeof(value)));
    hand *h[N];
    asyncio_once_cell_get_or_init f[N];
    bool polled[N] = {false}, has_value[N] = {false}, turn;
    value got[N], v;
    for (int i = 0; i < N; i++) {
        h[i] = hand_new();
        asyncio_once_cell_get_or_init_init(&f[i], c);
    }
    for (int step = 0; step < cut; step++) {
        switch (step) {
        case 0:
            assert_ok(asyncio_once_cell_get_or_init_poll(&f[I], &h[I]->cx, &v, &turn));
            assert_true(turn);
            polled[I] = true;
            break;
        case 1:
        case 2:
            assert_int_equal(asyncio_once_cell_get_or_init_poll(&f[step], &h[step]->cx, &v, &turn),
                             ASYNCIO_PENDING);
            polled[step] = true;
            break;
        case 3: {
            value mine = {100, 1000};
            assert_ok(asyncio_once_cell_init_finish(&f[I], &mine));
            got[I] = mine;
            has_value[I] = true;
            break;
        }
        default:
            assert_ok(asyncio_once_cell_get_or_init_poll(&f[step - 3], &h[step - 3]->cx,
                                                         &got[step - 3], &turn));
            assert_false(turn);
            has_value[step - 3] = true;
            break;
        }
    }
    asyncio_once_cell_get_or_init_drop(&f[subject]);
    memset(&f[subject], 0xA5, sizeof f[subject]);
    has_value[subject] = true; /* out of the game */
    /*
     * Drive the survivors like a runtime would: a future that returned
     * PENDING is polled again only once it was woken. Each must end with
     * the value, so every one that waited was woken.
     */
    bool pending[N] = {false};
    int wakes_seen[N] = {0};
    for (int i = W1; i < N; i++) /* queued in the script and not finished */
        pending[i] = polled[i] && !has_value[i];
    for (int round = 0; round < 2 * N; round++) {
        for (int i = 0; i < N; i++) {
            if (has_value[i] || (pending[i] && hand_wakes(h[i]) == wakes_seen[i]))
                continue;
            int rc = asyncio_once_cell_get_or_init_poll(&f[i], &h[i]->cx, &got[i], &turn);
            if (rc == ASYNCIO_PENDING) {
                pending[i] = true;
                wakes_seen[i] = hand_wakes(h[i]);
                continue;
            }
            assert_ok(rc);
            if (turn) {
                value mine = {200 + (uint64_t)i, 2000};
                assert_ok(asyncio_once_cell_init_finish(&f[i], &mine));
                got[i] = mine;
            }
            has_value[i] = true;
        }
    }
    assert_ok(asyncio_once_cell_get(c, &v));
    for (int i = 0; i < N; i++) {
        if (i == subject)
            continue;
        assert_true(has_value[i]);
        assert_memory_equal(&got[i], &v, sizeof v); /* one value for everyone */
        asyncio_once_cell_get_or_init_drop(&f[i]);
    }
    for (int i = 0; i < N; i++)
        hand_free(h[i]);
    assert_ok(asyncio_once_cell_free(c));
}

static void test_once_cell_dropping_a_future_at_every_step_strands_nobody(void **state)
{
    (void)state;
    for (int subject = 0; subject < 2; subject++)
        for (int cut = 0; cut <= 5; cut++)
            run_cut(subject, cut);
}

/* ---- a real task holding the turn is aborted: a waiting task takes over -- */

static _Atomic int g_a_has_turn, g_b_queued;

typedef struct cell_task {
    asyncio_once_cell *c;
    bool publish; /* false: hold the turn forever (until aborted) */
    bool started;
    asyncio_once_cell_get_or_init f;
} cell_task;

static int cell_task_poll(void *state, asyncio_context *cx, void *output)
{
    cell_task *t = state;
    (void)output;
    if (!t->started) {
        asyncio_once_cell_get_or_init_init(&t->f, t->c);
        t->started = true;
    }
    value v;
    bool turn;
    int rc = asyncio_once_cell_get_or_init_poll(&t->f, cx, &v, &turn);
    if (rc == ASYNCIO_PENDING) {
        atomic_store(&g_b_queued, 1);
        return rc;
    }
    assert_ok(rc);
    if (!turn)
        return 0;
    if (!t->publish) {
        atomic_store(&g_a_has_turn, 1);
        return ASYNCIO_PENDING; /* a long initialisation nobody will wake: only abort ends it */
    }
    value mine = {5, 55};
    return asyncio_once_cell_init_finish(&t->f, &mine);
}

static void cell_task_drop(void *state)
{
    cell_task *t = state;
    if (t->started)
        asyncio_once_cell_get_or_init_drop(&t->f); /* abandons the turn if held */
}

static const asyncio_task_vtable cell_task_vt = {cell_task_poll, cell_task_drop, NULL,
                                                 sizeof(cell_task), 0};

typedef struct abort_main {
    asyncio_runtime *rt;
    asyncio_once_cell *c;
    asyncio_join_handle *a, *b;
    int step;
    asyncio_yield y;
} abort_main;

static int abort_main_poll(void *state, asyncio_context *cx, void *output)
{
    abort_main *m = state;
    (void)output;
    for (;;) {
        switch (m->step) {
        case 0: { /* A takes the turn and never finishes */
            cell_task a = {.c = m->c, .publish = false};
            assert_ok(asyncio_spawn(m->rt, &cell_task_vt, &a, &m->a));
            m->step = 1;
            break;
        }
        case 1:
        case 3: /* wait (yielding) until A holds the turn / B is queued */
            if ((m->step == 1 && atomic_load(&g_a_has_turn)) ||
                (m->step == 3 && atomic_load(&g_b_queued))) {
                m->step++;
                break;
            }
            m->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            if (asyncio_yield_poll(&m->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING; /* polled again at once: look again */
            break;
        case 2: { /* B queues behind A */
            cell_task b = {.c = m->c, .publish = true};
            assert_ok(asyncio_spawn(m->rt, &cell_task_vt, &b, &m->b));
            m->step = 3;
            break;
        }
        case 4: /* abort A: its drop abandons the turn, B gets it and publishes */
            assert_ok(asyncio_join_handle_abort(m->a));
            m->step = 5;
            break;
        case 5: {
            int rc = asyncio_join_handle_poll(m->b, cx, NULL);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            m->step = 6;
            break;
        }
        default: {
            int rc = asyncio_join_handle_poll(m->a, cx, NULL);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_err(rc, ASYNCIO_ECANCELED);
            asyncio_join_handle_drop(m->a);
            asyncio_join_handle_drop(m->b);
            return 0;
        }
        }
    }
}

static const asyncio_task_vtable abort_main_vt = {abort_main_poll, NULL, NULL, sizeof(abort_main),
                                                  0};

static void test_once_cell_aborted_initialiser_task_hands_the_turn_to_a_waiting_task(void **state)
{
    (void)state;
    atomic_store(&g_a_has_turn, 0);
    atomic_store(&g_b_queued, 0);
    asyncio_once_cell *c;
    assert_ok(asyncio_once_cell_new(&c, sizeof(value)));
    asyncio_runtime *rt = support_runtime_new(NULL);
    abort_main m = {.rt = rt, .c = c};
    assert_ok(asyncio_runtime_block_on(rt, &abort_main_vt, &m, NULL)); /* hangs if stranded */
    assert_ok(asyncio_runtime_free(rt));
    value v;
    assert_ok(asyncio_once_cell_get(c, &v));
    assert_int_equal(v.a, 5);
    assert_ok(asyncio_once_cell_free(c));
}

/* ---- stress: tasks on several runtime threads race to initialise -------- */

#define CELLS    200
#define THREADS  3
#define TASKS    2 /* per thread */
#define GIVE_UPS 2 /* the first initialisers of each cell abandon */

static _Atomic int g_turns[CELLS];
static _Atomic int g_finished[CELLS];

typedef struct racer {
    asyncio_once_cell **cells;
    int id;
    int cell;
    int cells_n;
    int step;
    int yields;
    value want; /* what every cell must end up holding, checked against others' reads */
    asyncio_once_cell_get_or_init f;
    asyncio_yield y;
} racer;

static int racer_poll(void *state, asyncio_context *cx, void *output)
{
    racer *r = state;
    (void)output;
    for (;;) {
        if (r->cell == r->cells_n)
            return 0;
        asyncio_once_cell *c = r->cells[r->cell];
        switch (r->step) {
        case 0:
            asyncio_once_cell_get_or_init_init(&r->f, c);
            r->step = 1;
            break;
        case 1: {
            value v;
            bool turn;
            int rc = asyncio_once_cell_get_or_init_poll(&r->f, cx, &v, &turn);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            if (!turn) {
                assert_int_equal(v.b, v.a * 3); /* the one published value, never torn */
                assert_int_equal(v.a, (uint64_t)r->cell + 1);
                asyncio_once_cell_get_or_init_drop(&r->f);
                r->cell++;
                r->step = 0;
                break;
            }
            atomic_fetch_add(&g_turns[r->cell], 1);
            r->yields = 0;
            r->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            r->step = 2;
            break;
        }
        default: /* initialising: yield twice (others queue), then give up or publish */
            if (asyncio_yield_poll(&r->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            if (++r->yields < 2) {
                r->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
                break;
            }
            if (atomic_load(&g_turns[r->cell]) <= GIVE_UPS) {
                asyncio_once_cell_get_or_init_drop(&r->f); /* abandon: the next one tries */
                r->step = 0;                               /* and we wait for the value */
                break;
            }
            value v = {(uint64_t)r->cell + 1, ((uint64_t)r->cell + 1) * 3};
            assert_ok(asyncio_once_cell_init_finish(&r->f, &v));
            atomic_fetch_add(&g_finished[r->cell], 1);
            asyncio_once_cell_get_or_init_drop(&r->f);
            r->cell++;
            r->step = 0;
            break;
        }
    }
}

static void racer_drop(void *state)
{
    racer *r = state;
    if (r->step != 0)
        asyncio_once_cell_get_or_init_drop(&r->f);
}

static const asyncio_task_vtable racer_vt = {racer_poll, racer_drop, NULL, sizeof(racer), 0};

typedef struct race_arg {
    asyncio_once_cell **cells;
    int cells_n;
    int first_id;
} race_arg;

static int join_tasks(void *state, asyncio_context *cx, void *output)
{
    asyncio_join_handle **jh = state;
    (void)output;
    for (int i = 0; i < TASKS; i++) {
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

static const asyncio_task_vtable join_tasks_vt = {join_tasks, NULL, NULL,
                                                  sizeof(asyncio_join_handle *) * TASKS, 0};

static void *race_thread(void *p)
{
    race_arg *a = p;
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_join_handle *jh[TASKS];
    for (int i = 0; i < TASKS; i++) {
        racer r = {.cells = a->cells, .id = a->first_id + i, .cells_n = a->cells_n};
        assert_ok(asyncio_spawn(rt, &racer_vt, &r, &jh[i]));
    }
    assert_ok(asyncio_runtime_block_on(rt, &join_tasks_vt, jh, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void test_once_cell_racing_tasks_on_threads_publish_exactly_one_value(void **state)
{
    (void)state;
    int n = (int)support_scale(CELLS);
    asyncio_once_cell **cells = calloc((size_t)n, sizeof *cells);
    assert_non_null(cells);
    for (int i = 0; i < n; i++) {
        assert_ok(asyncio_once_cell_new(&cells[i], sizeof(value)));
        atomic_store(&g_turns[i], 0);
        atomic_store(&g_finished[i], 0);
    }
    pthread_t th[THREADS];
    race_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (race_arg){cells, n, i * TASKS};
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < n; i++) {
        value v;
        assert_ok(asyncio_once_cell_get(cells[i], &v));
        assert_int_equal(v.a, (uint64_t)i + 1);
        assert_int_equal(atomic_load(&g_finished[i]), 1);
        assert_int_equal(atomic_load(&g_turns[i]), GIVE_UPS + 1);
        assert_ok(asyncio_once_cell_free(cells[i]));
    }
    free(cells);
}

static void test_once_cell_out_of_memory_at_creation_is_enomem(void **state)
{
    (void)state;
    failing_alloc_begin(0);
    asyncio_once_cell *c;
    assert_err(asyncio_once_cell_new(&c, 8), ASYNCIO_ENOMEM);
    failing_alloc_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_once_cell_invalid_arguments),
        support_test(test_once_cell_out_of_memory_at_creation_is_enomem),
        support_test(test_once_cell_set_once_then_get_without_waiting),
        support_test(test_once_cell_one_initialiser_and_every_waiter_gets_its_value),
        support_test(
            test_once_cell_abandoned_turn_goes_to_the_oldest_waiter_then_to_the_next_caller),
        support_test(test_once_cell_dropping_a_future_at_every_step_strands_nobody),
        support_test(test_once_cell_aborted_initialiser_task_hands_the_turn_to_a_waiting_task),
        support_test(test_once_cell_racing_tasks_on_threads_publish_exactly_one_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

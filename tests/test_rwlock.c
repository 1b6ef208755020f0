/*
 * Async RwLock: sharing and exclusion, FIFO fairness with writer
 * preference (a queued writer blocks later readers), downgrade,
 * cancellation at every step of a contended script (nothing lost, nobody
 * stranded, no waker kept), and a thread stress of tasks on several
 * runtimes whose plain-memory critical sections TSan checks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/runtime.h"
#include "failing_alloc.h"
#include "asyncio/rwlock.h"
#include "hand_waker.h"
#include "support.h"

static void test_rwlock_readers_share_it_and_a_writer_excludes_everyone(void **state)
{
    (void)state;
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    assert_ok(asyncio_rwlock_try_read(rw));
    assert_ok(asyncio_rwlock_try_read(rw));
    assert_err(asyncio_rwlock_try_write(rw), ASYNCIO_EAGAIN);
    asyncio_rwlock_read_unlock(rw);
    assert_err(asyncio_rwlock_try_write(rw), ASYNCIO_EAGAIN);
    asyncio_rwlock_read_unlock(rw);
    assert_ok(asyncio_rwlock_try_write(rw));
    assert_err(asyncio_rwlock_try_read(rw), ASYNCIO_EAGAIN);
    assert_err(asyncio_rwlock_try_write(rw), ASYNCIO_EAGAIN);
    asyncio_rwlock_write_unlock(rw);
    assert_ok(asyncio_rwlock_try_read(rw));
    asyncio_rwlock_read_unlock(rw);
    assert_ok(asyncio_rwlock_free(rw));
}

static void test_rwlock_invalid_arguments_and_busy_free(void **state)
{
    (void)state;
    assert_err(asyncio_rwlock_new(NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_rwlock_try_read(NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_rwlock_try_write(NULL), ASYNCIO_EINVAL);
    hand *h = hand_new();
    assert_err(asyncio_rwlock_read_poll(NULL, &h->cx), ASYNCIO_EINVAL);
    assert_err(asyncio_rwlock_write_poll(NULL, &h->cx), ASYNCIO_EINVAL);
    asyncio_rwlock_read r0;
    asyncio_rwlock_read_init(&r0, NULL);
    assert_err(asyncio_rwlock_read_poll(&r0, &h->cx), ASYNCIO_EINVAL);
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    assert_ok(asyncio_rwlock_try_write(rw));
    asyncio_rwlock_read r;
    asyncio_rwlock_read_init(&r, rw);
    assert_int_equal(asyncio_rwlock_read_poll(&r, &h->cx), ASYNCIO_PENDING);
    assert_err(asyncio_rwlock_free(rw), ASYNCIO_EBUSY); /* nothing freed */
    asyncio_rwlock_read_drop(&r);
    asyncio_rwlock_read_drop(&r); /* idempotent */
    hand_free(h);
    assert_ok(asyncio_rwlock_free(rw)); /* write-held, nobody waits: allowed */
    assert_ok(asyncio_rwlock_free(NULL));
}

static void test_rwlock_queued_writer_blocks_later_readers(void **state)
{
    (void)state;
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    assert_ok(asyncio_rwlock_try_read(rw)); /* a reader holds it */
    hand *hw = hand_new(), *hr = hand_new();
    asyncio_rwlock_write w;
    asyncio_rwlock_read r;
    asyncio_rwlock_write_init(&w, rw);
    asyncio_rwlock_read_init(&r, rw);
    assert_int_equal(asyncio_rwlock_write_poll(&w, &hw->cx), ASYNCIO_PENDING);
    /* A reader arriving now does not overtake the writer, although only readers hold it. */
    assert_err(asyncio_rwlock_try_read(rw), ASYNCIO_EAGAIN);
    assert_int_equal(asyncio_rwlock_read_poll(&r, &hr->cx), ASYNCIO_PENDING);
    asyncio_rwlock_read_unlock(rw); /* the last reader leaves: the writer gets it */
    assert_int_equal(hand_wakes(hw), 1);
    assert_int_equal(hand_wakes(hr), 0);
    assert_ok(asyncio_rwlock_write_poll(&w, &hw->cx));
    assert_int_equal(asyncio_rwlock_read_poll(&r, &hr->cx), ASYNCIO_PENDING);
    asyncio_rwlock_write_unlock(rw);
    assert_int_equal(hand_wakes(hr), 1);
    assert_ok(asyncio_rwlock_read_poll(&r, &hr->cx));
    asyncio_rwlock_read_unlock(rw);
    asyncio_rwlock_write_drop(&w);
    asyncio_rwlock_read_drop(&r);
    hand_free(hw);
    hand_free(hr);
    assert_ok(asyncio_rwlock_free(rw));
}

static void test_rwlock_requests_are_served_in_arrival_order(void **state)
{
    (void)state;
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    assert_ok(asyncio_rwlock_try_write(rw));
    enum { R1, R2, W, R3, N };
    hand *h[N];
    asyncio_rwlock_read r[N];
    asyncio_rwlock_write w;
    for (int i = 0; i < N; i++)
        h[i] = hand_new();
    asyncio_rwlock_read_init(&r[R1], rw);
    asyncio_rwlock_read_init(&r[R2], rw);
    asyncio_rwlock_write_init(&w, rw);
    asyncio_rwlock_read_init(&r[R3], rw);
    assert_int_equal(asyncio_rwlock_read_poll(&r[R1], &h[R1]->cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_rwlock_read_poll(&r[R2], &h[R2]->cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_rwlock_write_poll(&w, &h[W]->cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_rwlock_read_poll(&r[R3], &h[R3]->cx), ASYNCIO_PENDING);
    asyncio_rwlock_write_unlock(rw); /* R1 and R2 together; W and R3 (behind W) wait */
    assert_int_equal(hand_wakes(h[R1]), 1);
    assert_int_equal(hand_wakes(h[R2]), 1);
    assert_int_equal(hand_wakes(h[W]), 0);
    assert_int_equal(hand_wakes(h[R3]), 0);
    assert_ok(asyncio_rwlock_read_poll(&r[R1], &h[R1]->cx));
    assert_ok(asyncio_rwlock_read_poll(&r[R2], &h[R2]->cx));
    asyncio_rwlock_read_unlock(rw);
    assert_int_equal(hand_wakes(h[W]), 0); /* one reader still holds it */
    asyncio_rwlock_read_unlock(rw);
    assert_int_equal(hand_wakes(h[W]), 1);
    assert_ok(asyncio_rwlock_write_poll(&w, &h[W]->cx));
    assert_int_equal(hand_wakes(h[R3]), 0);
    asyncio_rwlock_write_unlock(rw);
    assert_int_equal(hand_wakes(h[R3]), 1);
    assert_ok(asyncio_rwlock_read_poll(&r[R3], &h[R3]->cx));
    asyncio_rwlock_read_unlock(rw);
    asyncio_rwlock_read_drop(&r[R1]);
    asyncio_rwlock_read_drop(&r[R2]);
    asyncio_rwlock_write_drop(&w);
    asyncio_rwlock_read_drop(&r[R3]);
    for (int i = 0; i < N; i++)
        hand_free(h[i]);
    assert_ok(asyncio_rwlock_try_write(rw)); /* everything came back */
    asyncio_rwlock_write_unlock(rw);
    assert_ok(asyncio_rwlock_free(rw));
}

static void test_rwlock_downgrade_admits_queued_readers_but_not_a_writer(void **state)
{
    (void)state;
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    assert_ok(asyncio_rwlock_try_write(rw));
    hand *ha = hand_new(), *hb = hand_new(), *hw = hand_new();
    asyncio_rwlock_read a, b;
    asyncio_rwlock_write w;
    asyncio_rwlock_read_init(&a, rw);
    asyncio_rwlock_read_init(&b, rw);
    asyncio_rwlock_write_init(&w, rw);
    assert_int_equal(asyncio_rwlock_read_poll(&a, &ha->cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_rwlock_read_poll(&b, &hb->cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_rwlock_write_poll(&w, &hw->cx), ASYNCIO_PENDING);
    asyncio_rwlock_downgrade(rw); /* now a reader: a and b join, w still waits */
    assert_int_equal(hand_wakes(ha), 1);
    assert_int_equal(hand_wakes(hb), 1);
    assert_int_equal(hand_wakes(hw), 0);
    assert_ok(asyncio_rwlock_read_poll(&a, &ha->cx));
    assert_ok(asyncio_rwlock_read_poll(&b, &hb->cx));
    asyncio_rwlock_read_unlock(rw); /* the downgraded one */
    asyncio_rwlock_read_unlock(rw);
    assert_int_equal(hand_wakes(hw), 0);
    asyncio_rwlock_read_unlock(rw);
    assert_int_equal(hand_wakes(hw), 1);
    assert_ok(asyncio_rwlock_write_poll(&w, &hw->cx));
    asyncio_rwlock_write_unlock(rw);
    asyncio_rwlock_read_drop(&a);
    asyncio_rwlock_read_drop(&b);
    asyncio_rwlock_write_drop(&w);
    hand_free(ha);
    hand_free(hb);
    hand_free(hw);
    assert_ok(asyncio_rwlock_free(rw));
}

/* ---- cancellation at every step of a contended script ------------------- */

/*
 * The script: reader A holds the lock; writer W queues (collecting what is
 * free); reader R queues behind W; A leaves (W is granted); W observes it;
 * W unlocks (R is granted); R observes it; R unlocks. The subject (W or R)
 * is dropped after `cut` steps. Then everything still held is released,
 * and the other future must complete at its next poll (it was woken if it
 * had been waiting): nothing was lost and nobody is stranded. Finally the
 * whole lock must be free, and the hands are freed (ASan catches a waker
 * kept and fired later).
 */
enum { STEPS = 8 };

typedef struct script {
    asyncio_rwlock *rw;
    asyncio_rwlock_write w;
    asyncio_rwlock_read r;
    hand *hw, *hr;
    bool a_held, w_held, r_held, w_live, r_live;
    bool w_done, r_done; /* a poll returned 0: the lock was observed */
} script;

static void script_step(script *s, int step)
{
    switch (step) {
    case 0:
        assert_ok(asyncio_rwlock_try_read(s->rw));
        s->a_held = true;
        break;
    case 1:
        if (s->w_live)
            assert_int_equal(asyncio_rwlock_write_poll(&s->w, &s->hw->cx), ASYNCIO_PENDING);
        break;
    case 2:
        if (s->r_live)
            assert_int_equal(asyncio_rwlock_read_poll(&s->r, &s->hr->cx),
                             s->w_live ? ASYNCIO_PENDING : 0);
        s->r_held = s->r_done = s->r_live && !s->w_live;
        break;
    case 3:
        asyncio_rwlock_read_unlock(s->rw);
        s->a_held = false;
        break;
    case 4:
        if (s->w_live) {
            assert_ok(asyncio_rwlock_write_poll(&s->w, &s->hw->cx));
            s->w_held = s->w_done = true;
        }
        break;
    case 5:
        if (s->w_held) {
            asyncio_rwlock_write_unlock(s->rw);
            s->w_held = false;
        }
        break;
    case 6:
        if (s->r_live && !s->r_held) {
            assert_ok(asyncio_rwlock_read_poll(&s->r, &s->hr->cx));
            s->r_held = s->r_done = true;
        }
        break;
    default:
        if (s->r_held) {
            asyncio_rwlock_read_unlock(s->rw);
            s->r_held = false;
        }
        break;
    }
}

static void run_cut(bool drop_writer, int cut)
{
    script s = {0};
    assert_ok(asyncio_rwlock_new(&s.rw));
    s.hw = hand_new();
    s.hr = hand_new();
    asyncio_rwlock_write_init(&s.w, s.rw);
    asyncio_rwlock_read_init(&s.r, s.rw);
    s.w_live = s.r_live = true;
    for (int i = 0; i < cut; i++)
        script_step(&s, i);
    if (drop_writer) {
        asyncio_rwlock_write_drop(&s.w);
        s.w_live = false;
        memset(&s.w, 0xA5, sizeof s.w); /* its memory is reused at once */
    } else {
        asyncio_rwlock_read_drop(&s.r);
        s.r_live = false;
        memset(&s.r, 0xA5, sizeof s.r);
    }
    /* Release what the script holds (a dropped future's observed lock is the caller's). */
    if (s.a_held)
        asyncio_rwlock_read_unlock(s.rw);
    if (s.w_held)
        asyncio_rwlock_write_unlock(s.rw);
    if (s.r_held)
        asyncio_rwlock_read_unlock(s.rw);
    /* The survivor completes now (if it had not yet); if it was queued, it was woken. */
    if (s.w_live && s.w_done) {
        asyncio_rwlock_write_drop(&s.w);
    } else if (s.r_live && s.r_done) {
        asyncio_rwlock_read_drop(&s.r);
    } else if (s.w_live) {
        int was_queued = cut >= 2 && cut <= 4;
        if (was_queued)
            assert_true(hand_wakes(s.hw) >= 1);
        assert_ok(asyncio_rwlock_write_poll(&s.w, &s.hw->cx));
        asyncio_rwlock_write_unlock(s.rw);
        asyncio_rwlock_write_drop(&s.w);
    } else {
        int was_queued = cut >= 3 && cut <= 6;
        if (was_queued)
            assert_true(hand_wakes(s.hr) >= 1);
        assert_ok(asyncio_rwlock_read_poll(&s.r, &s.hr->cx));
        asyncio_rwlock_read_unlock(s.rw);
        asyncio_rwlock_read_drop(&s.r);
    }
    assert_ok(asyncio_rwlock_try_write(s.rw)); /* every permit is back */
    asyncio_rwlock_write_unlock(s.rw);
    hand_free(s.hw);
    hand_free(s.hr);
    assert_ok(asyncio_rwlock_free(s.rw));
}

static void test_rwlock_dropping_the_writer_at_every_step_loses_nothing(void **state)
{
    (void)state;
    for (int cut = 0; cut <= STEPS; cut++)
        run_cut(true, cut);
}

static void test_rwlock_dropping_the_reader_at_every_step_loses_nothing(void **state)
{
    (void)state;
    for (int cut = 0; cut <= STEPS; cut++)
        run_cut(false, cut);
}

/* ---- a real task queued for the write lock is aborted ------------------- */

static _Atomic int g_w_queued, g_r_queued;

typedef struct lock_task {
    asyncio_rwlock *rw;
    bool writer;
    bool started;
    asyncio_rwlock_read r;
    asyncio_rwlock_write w;
} lock_task;

static int lock_task_poll(void *state, asyncio_context *cx, void *output)
{
    lock_task *t = state;
    (void)output;
    if (!t->started) {
        if (t->writer)
            asyncio_rwlock_write_init(&t->w, t->rw);
        else
            asyncio_rwlock_read_init(&t->r, t->rw);
        t->started = true;
    }
    int rc = t->writer ? asyncio_rwlock_write_poll(&t->w, cx) : asyncio_rwlock_read_poll(&t->r, cx);
    if (rc == ASYNCIO_PENDING) {
        atomic_store(t->writer ? &g_w_queued : &g_r_queued, 1);
        return rc;
    }
    assert_ok(rc);
    if (t->writer)
        asyncio_rwlock_write_unlock(t->rw);
    else
        asyncio_rwlock_read_unlock(t->rw);
    return 0;
}

static void lock_task_drop(void *state)
{
    lock_task *t = state;
    if (t->started && t->writer)
        asyncio_rwlock_write_drop(&t->w);
    else if (t->started)
        asyncio_rwlock_read_drop(&t->r);
}

static const asyncio_task_vtable lock_task_vt = {lock_task_poll, lock_task_drop, NULL,
                                                 sizeof(lock_task), 0};

typedef struct abort_main {
    asyncio_runtime *rt;
    asyncio_rwlock *rw;
    asyncio_join_handle *w, *r;
    int step;
    asyncio_yield y;
} abort_main;

static int abort_main_poll(void *state, asyncio_context *cx, void *output)
{
    abort_main *m = state;
    (void)output;
    for (;;) {
        switch (m->step) {
        case 0: { /* we hold a read lock; a writer queues */
            assert_ok(asyncio_rwlock_try_read(m->rw));
            lock_task w = {.rw = m->rw, .writer = true};
            assert_ok(asyncio_spawn(m->rt, &lock_task_vt, &w, &m->w));
            m->step = 1;
            break;
        }
        case 1:
        case 3: /* wait (yielding) until the writer / the reader behind it is queued */
            if ((m->step == 1 && atomic_load(&g_w_queued)) ||
                (m->step == 3 && atomic_load(&g_r_queued))) {
                m->step++;
                break;
            }
            m->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            if (asyncio_yield_poll(&m->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            break;
        case 2: { /* a reader queues behind the writer (writer preference) */
            lock_task r = {.rw = m->rw, .writer = false};
            assert_ok(asyncio_spawn(m->rt, &lock_task_vt, &r, &m->r));
            m->step = 3;
            break;
        }
        case 4: /* abort the writer: the reader joins our read lock at once */
            assert_ok(asyncio_join_handle_abort(m->w));
            m->step = 5;
            break;
        case 5: {
            int rc = asyncio_join_handle_poll(m->r, cx, NULL);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc); /* it got the lock while we still hold ours */
            asyncio_rwlock_read_unlock(m->rw);
            m->step = 6;
            break;
        }
        default: {
            int rc = asyncio_join_handle_poll(m->w, cx, NULL);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_err(rc, ASYNCIO_ECANCELED);
            asyncio_join_handle_drop(m->w);
            asyncio_join_handle_drop(m->r);
            return 0;
        }
        }
    }
}

static const asyncio_task_vtable abort_main_vt = {abort_main_poll, NULL, NULL, sizeof(abort_main),
                                                  0};

static void test_rwlock_aborted_writer_task_lets_the_readers_behind_it_in(void **state)
{
    (void)state;
    atomic_store(&g_w_queued, 0);
    atomic_store(&g_r_queued, 0);
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    asyncio_runtime *rt = support_runtime_new(NULL);
    abort_main m = {.rt = rt, .rw = rw};
    assert_ok(asyncio_runtime_block_on(rt, &abort_main_vt, &m, NULL)); /* hangs if stranded */
    assert_ok(asyncio_runtime_free(rt));
    assert_ok(asyncio_rwlock_try_write(rw)); /* every permit is back */
    asyncio_rwlock_write_unlock(rw);
    assert_ok(asyncio_rwlock_free(rw));
}

/* ---- stress: tasks on several runtime threads --------------------------- */

#define STRESS_TASKS_PER_THREAD 3
#define STRESS_THREADS          3
#define STRESS_ITERS            1500

static _Atomic int g_readers_in;
static _Atomic int g_writers_in;

typedef struct rw_task {
    asyncio_rwlock *rw;
    long *data; /* plain memory: written under the write lock, read under read locks */
    unsigned rng;
    int iters;
    int step;
    bool writing;
    long seen;
    asyncio_rwlock_read r;
    asyncio_rwlock_write w;
    asyncio_yield y;
} rw_task;

static void enter(rw_task *t)
{
    if (t->writing) {
        assert_int_equal(atomic_fetch_add(&g_writers_in, 1), 0);
        assert_int_equal(atomic_load(&g_readers_in), 0);
        t->seen = *t->data;
    } else {
        atomic_fetch_add(&g_readers_in, 1);
        assert_int_equal(atomic_load(&g_writers_in), 0);
        t->seen = *t->data;
    }
}

static void leave(rw_task *t)
{
    if (t->writing) {
        assert_int_equal(*t->data, t->seen); /* nobody wrote while we held it */
        *t->data = t->seen + 1;
        atomic_fetch_sub(&g_writers_in, 1);
        asyncio_rwlock_write_unlock(t->rw);
    } else {
        assert_int_equal(*t->data, t->seen);
        atomic_fetch_sub(&g_readers_in, 1);
        asyncio_rwlock_read_unlock(t->rw);
    }
}

static int rw_task_poll(void *state, asyncio_context *cx, void *output)
{
    rw_task *t = state;
    (void)output;
    for (;;) {
        switch (t->step) {
        case 0: /* choose: 1 in 4 is a write */
            if (t->iters == 0)
                return 0;
            t->rng = t->rng * 1103515245u + 12345u;
            t->writing = (t->rng >> 16) % 4 == 0;
            if (t->writing)
                asyncio_rwlock_write_init(&t->w, t->rw);
            else
                asyncio_rwlock_read_init(&t->r, t->rw);
            t->step = 1;
            break;
        case 1: { /* wait (sometimes give up after a pending poll: cancellation) */
            int rc = t->writing ? asyncio_rwlock_write_poll(&t->w, cx)
                                : asyncio_rwlock_read_poll(&t->r, cx);
            if (rc == ASYNCIO_PENDING && (t->rng >> 20) % 5 == 0) {
                if (t->writing)
                    asyncio_rwlock_write_drop(&t->w);
                else
                    asyncio_rwlock_read_drop(&t->r);
                t->iters--;
                t->step = 0;
                break;
            }
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            enter(t);
            t->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            t->step = 2;
            break;
        }
        case 2: /* hold it across a yield */
            if (asyncio_yield_poll(&t->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            leave(t);
            if (t->writing)
                asyncio_rwlock_write_drop(&t->w);
            else
                asyncio_rwlock_read_drop(&t->r);
            t->iters--;
            t->step = 0;
            break;
        }
    }
}

static void rw_task_drop(void *state)
{
    rw_task *t = state;
    if (t->step == 1) {
        if (t->writing)
            asyncio_rwlock_write_drop(&t->w);
        else
            asyncio_rwlock_read_drop(&t->r);
    }
}

static const asyncio_task_vtable rw_task_vt = {rw_task_poll, rw_task_drop, NULL, sizeof(rw_task),
                                               0};

typedef struct rw_arg {
    asyncio_rwlock *rw;
    long *data;
    unsigned seed;
} rw_arg;

typedef struct join_all {
    asyncio_join_handle *jh[STRESS_TASKS_PER_THREAD];
    int next;
} join_all;

static int join_all_poll(void *state, asyncio_context *cx, void *output)
{
    join_all *j = state;
    (void)output;
    while (j->next < STRESS_TASKS_PER_THREAD) {
        int rc = asyncio_join_handle_poll(j->jh[j->next], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        asyncio_join_handle_drop(j->jh[j->next]);
        j->next++;
    }
    return 0;
}

static const asyncio_task_vtable join_all_vt = {join_all_poll, NULL, NULL, sizeof(join_all), 0};

static void *rw_thread(void *p)
{
    rw_arg *a = p;
    asyncio_runtime *rt = support_runtime_new(NULL);
    join_all j = {.next = 0};
    for (int i = 0; i < STRESS_TASKS_PER_THREAD; i++) {
        rw_task t = {.rw = a->rw,
                     .data = a->data,
                     .rng = a->seed + 31u * (unsigned)i,
                     .iters = (int)support_scale(STRESS_ITERS)};
        assert_ok(asyncio_spawn(rt, &rw_task_vt, &t, &j.jh[i]));
    }
    assert_ok(asyncio_runtime_block_on(rt, &join_all_vt, &j, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void test_rwlock_tasks_on_several_runtime_threads_never_overlap_a_writer(void **state)
{
    (void)state;
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    long data = 0;
    atomic_store(&g_readers_in, 0);
    atomic_store(&g_writers_in, 0);
    pthread_t th[STRESS_THREADS];
    rw_arg args[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        args[i] = (rw_arg){rw, &data, 777u + 1013u * (unsigned)i};
        assert_int_equal(pthread_create(&th[i], NULL, rw_thread, &args[i]), 0);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&g_readers_in), 0);
    assert_int_equal(atomic_load(&g_writers_in), 0);
    assert_true(data > 0);
    assert_ok(asyncio_rwlock_try_write(rw)); /* every permit came back */
    asyncio_rwlock_write_unlock(rw);
    assert_ok(asyncio_rwlock_free(rw));
}

static void test_rwlock_out_of_memory_at_creation_is_enomem(void **state)
{
    (void)state;
    failing_alloc_begin(0);
    asyncio_rwlock *rw;
    assert_err(asyncio_rwlock_new(&rw), ASYNCIO_ENOMEM);
    failing_alloc_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_rwlock_readers_share_it_and_a_writer_excludes_everyone),
        support_test(test_rwlock_invalid_arguments_and_busy_free),
        support_test(test_rwlock_out_of_memory_at_creation_is_enomem),
        support_test(test_rwlock_queued_writer_blocks_later_readers),
        support_test(test_rwlock_requests_are_served_in_arrival_order),
        support_test(test_rwlock_downgrade_admits_queued_readers_but_not_a_writer),
        support_test(test_rwlock_dropping_the_writer_at_every_step_loses_nothing),
        support_test(test_rwlock_dropping_the_reader_at_every_step_loses_nothing),
        support_test(test_rwlock_aborted_writer_task_lets_the_readers_behind_it_in),
        support_test(test_rwlock_tasks_on_several_runtime_threads_never_overlap_a_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

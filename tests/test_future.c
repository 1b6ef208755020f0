/*
 * The future interface and its combinators (future.h, adapt.h, time.h's
 * timeout) and the await macros (await.h).
 *
 * Most tests poll by hand with a counting waker and "probe" futures that
 * behave like leaves (they keep a clone of the waker they were polled with
 * and complete after a set number of wakes), so which child is polled, when
 * each is dropped and which wakers are still alive are exact. Every test
 * runs under the counting allocator (support_setup / support_teardown: no
 * block may outlive a test). The runtime-level tests (timeout over a read,
 * select of a sleep and a cancelled token, the await macros driving real
 * leaves) run under the scheduler matrix (ct, mt1, mt4).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asyncio.h"
#include "failing_alloc.h"
#include "hand_waker.h"
#include "support.h"

/* ---- probe: a leaf-like future ---------------------------------------------- */

/*
 * Pending until it has been woken `steps` times, then `result` (and `value`
 * written to its output). Keeps a clone of the last waker, like a leaf;
 * `stale`, when set, receives one more clone its drop does not release (a
 * registration that outlives the future: the hazard of wakes into freed
 * memory).
 */
typedef struct probe {
    int steps, result, value;
    int polls, drops, woken;
    asyncio_waker held;
    asyncio_waker *stale;
} probe;

static int probe_poll(void *state, asyncio_context *cx, void *out)
{
    probe *p = state;
    p->polls++;
    if (p->woken >= p->steps) {
        if (out != NULL)
            *(int *)out = p->value;
        return p->result;
    }
    asyncio_waker_store(&p->held, cx->waker);
    if (p->stale != NULL && p->stale->vtable == NULL)
        *p->stale = asyncio_waker_clone(cx->waker);
    return ASYNCIO_PENDING;
}

static void probe_drop(void *state)
{
    probe *p = state;
    p->drops++;
    asyncio_waker_drop(&p->held);
}

static const asyncio_future_vtable probe_vt = {probe_poll, probe_drop};

/* Wakes the probe as its event source would (through the waker it kept). */
static void fire(probe *p)
{
    if (p->held.vtable == NULL)
        return;
    p->woken++;
    asyncio_waker_wake(&p->held);
}

static asyncio_future probe_future(probe *p, int steps, int result, int *out)
{
    memset(p, 0, sizeof *p);
    p->steps = steps;
    p->result = result;
    p->value = 100 + steps;
    return asyncio_future_make(&probe_vt, p, out);
}

/* ------------------------------------------------------------------------ */
/* select / race                                                             */

static void test_select_first_ready_wins_and_losers_are_dropped(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[3];
    int outs[3] = {0, 0, 0};
    asyncio_future f[3] = {probe_future(&p[0], 3, 0, &outs[0]), probe_future(&p[1], 1, 0, &outs[1]),
                           probe_future(&p[2], 2, 0, &outs[2])};
    asyncio_select s;
    assert_ok(asyncio_select_init(&s, f, 3));
    assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
    for (int i = 0; i < 3; i++)
        fire(&p[i]);
    size_t winner = 99;
    assert_ok(asyncio_select_poll(&s, &h.cx, &winner));
    assert_int_equal(winner, 1);
    assert_int_equal(asyncio_select_winner(&s), 1);
    assert_int_equal(outs[1], 101);
    assert_int_equal(outs[0], 0); /* losers write nothing */
    for (int i = 0; i < 3; i++)
        assert_int_equal(p[i].drops, 1);
    assert_err(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_EINVAL); /* finished */
    asyncio_select_drop(&s);
    for (int i = 0; i < 3; i++)
        assert_int_equal(p[i].drops, 1); /* not twice */
    assert_int_equal(atomic_load(&h.refs), 0);
}

static void test_select_polls_only_the_woken_child(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[4];
    asyncio_future f[4];
    for (int i = 0; i < 4; i++)
        f[i] = probe_future(&p[i], 5, 0, NULL);
    asyncio_select s;
    assert_ok(asyncio_select_init(&s, f, 4));
    assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p[i].polls, 1); /* the first poll polls every child */
    fire(&p[2]);
    assert_int_equal(atomic_load(&h.wakes), 1); /* the child's wake reached the task */
    assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
    assert_int_equal(p[2].polls, 2);
    assert_int_equal(p[0].polls + p[1].polls + p[3].polls, 3);
    assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING); /* nobody woken */
    assert_int_equal(p[0].polls + p[1].polls + p[2].polls + p[3].polls, 5);
    asyncio_select_drop(&s);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p[i].drops, 1);
    assert_int_equal(atomic_load(&h.refs), 0);
}

static void test_select_error_of_the_first_child_is_the_result(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[2];
    asyncio_future f[2] = {probe_future(&p[0], 0, ASYNCIO_ECONNRESET, NULL),
                           probe_future(&p[1], 0, 0, NULL)};
    asyncio_select s;
    assert_ok(asyncio_select_init(&s, f, 2));
    size_t winner;
    assert_err(asyncio_select_poll(&s, &h.cx, &winner), ASYNCIO_ECONNRESET);
    assert_int_equal(winner, 0);
    assert_int_equal(p[1].polls, 0); /* in index order: the first result ends it */
    assert_int_equal(p[1].drops, 1);
    asyncio_select_drop(&s);
}

static void test_race_skips_failures_until_one_succeeds(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[3];
    asyncio_future f[3] = {probe_future(&p[0], 0, ASYNCIO_ECONNREFUSED, NULL),
                           probe_future(&p[1], 1, 0, NULL), probe_future(&p[2], 2, 0, NULL)};
    asyncio_select s;
    assert_ok(asyncio_race_init(&s, f, 3));
    assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
    assert_int_equal(p[0].drops, 1); /* failed: dropped, the race goes on */
    fire(&p[1]);
    size_t winner;
    assert_ok(asyncio_select_poll(&s, &h.cx, &winner));
    assert_int_equal(winner, 1);
    assert_int_equal(p[2].drops, 1);
    asyncio_select_drop(&s);
    assert_int_equal(atomic_load(&h.refs), 0);
}

static void test_race_where_all_fail_returns_the_last_error(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[2];
    asyncio_future f[2] = {probe_future(&p[0], 0, ASYNCIO_ECONNREFUSED, NULL),
                           probe_future(&p[1], 1, ASYNCIO_ETIMEDOUT, NULL)};
    asyncio_select s;
    assert_ok(asyncio_race_init(&s, f, 2));
    assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
    fire(&p[1]);
    size_t winner = 7;
    assert_err(asyncio_select_poll(&s, &h.cx, &winner), ASYNCIO_ETIMEDOUT);
    assert_int_equal(winner, 7); /* no winner: untouched */
    assert_int_equal(asyncio_select_winner(&s), SIZE_MAX);
    asyncio_select_drop(&s);
}

static void test_select_init_rejects_bad_input_and_drops_the_children(void **state)
{
    (void)state;
    probe p[2];
    asyncio_future f[2] = {probe_future(&p[0], 1, 0, NULL), ASYNCIO_FUTURE_EMPTY};
    asyncio_select s;
    assert_err(asyncio_select_init(&s, f, 2), ASYNCIO_EINVAL);
    assert_int_equal(p[0].drops, 1); /* owned from init: dropped on failure */
    asyncio_select_drop(&s);         /* safe after a failed init */
    assert_int_equal(p[0].drops, 1);
    assert_err(asyncio_select_init(&s, NULL, 1), ASYNCIO_EINVAL);
    f[0] = probe_future(&p[0], 1, 0, NULL);
    assert_err(asyncio_select_init(&s, f, 0), ASYNCIO_EINVAL);
    assert_err(asyncio_select_init(NULL, f, 1), ASYNCIO_EINVAL);
    assert_int_equal(p[0].drops, 1);
}

/* ------------------------------------------------------------------------ */
/* join_all / try_join                                                       */

static void test_join_all_collects_every_result(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[3];
    int outs[3] = {0}, results[3];
    asyncio_future f[3] = {probe_future(&p[0], 2, 0, &outs[0]),
                           probe_future(&p[1], 0, ASYNCIO_EPIPE, &outs[1]),
                           probe_future(&p[2], 1, 0, &outs[2])};
    asyncio_join j;
    assert_ok(asyncio_join_all_init(&j, f, 3, results));
    assert_int_equal(asyncio_join_poll(&j, &h.cx, NULL), ASYNCIO_PENDING);
    assert_int_equal(results[1], ASYNCIO_EPIPE); /* finished, dropped at once */
    assert_int_equal(p[1].drops, 1);
    assert_int_equal(results[0], ASYNCIO_PENDING);
    fire(&p[0]);
    fire(&p[2]);
    assert_int_equal(asyncio_join_poll(&j, &h.cx, NULL), ASYNCIO_PENDING);
    assert_ok(results[2]);
    fire(&p[0]);
    assert_ok(asyncio_join_poll(&j, &h.cx, NULL));
    assert_ok(results[0]);
    assert_int_equal(outs[0], 102);
    assert_int_equal(outs[2], 101);
    for (int i = 0; i < 3; i++)
        assert_int_equal(p[i].drops, 1);
    asyncio_join_drop(&j);
    assert_int_equal(atomic_load(&h.refs), 0);
}

static void test_try_join_first_error_drops_the_rest(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[3];
    int results[3];
    asyncio_future f[3] = {probe_future(&p[0], 1, 0, NULL),
                           probe_future(&p[1], 2, ASYNCIO_ECONNRESET, NULL),
                           probe_future(&p[2], 5, 0, NULL)};
    asyncio_join j;
    assert_ok(asyncio_try_join_init(&j, f, 3, results));
    assert_int_equal(asyncio_join_poll(&j, &h.cx, NULL), ASYNCIO_PENDING);
    fire(&p[0]);
    fire(&p[1]);
    assert_int_equal(asyncio_join_poll(&j, &h.cx, NULL), ASYNCIO_PENDING);
    assert_ok(results[0]);
    fire(&p[1]);
    size_t failed = 9;
    assert_err(asyncio_join_poll(&j, &h.cx, &failed), ASYNCIO_ECONNRESET);
    assert_int_equal(failed, 1);
    assert_int_equal(p[2].drops, 1); /* cancelled */
    assert_int_equal(results[2], ASYNCIO_PENDING);
    asyncio_join_drop(&j);
    assert_int_equal(atomic_load(&h.refs), 0);
}

/* ------------------------------------------------------------------------ */
/* The parent waker changes (the combinator moves to another task)           */

/* Pending until `ready`; keeps no waker (so no clone of a child waker is out). */
static int idle_poll(void *state, asyncio_context *cx, void *out)
{
    (void)cx, (void)out;
    return *(bool *)state ? 0 : ASYNCIO_PENDING;
}

static const asyncio_future_vtable idle_vt = {idle_poll, NULL};

static void test_combinator_moved_to_another_waker_wakes_only_the_new_one(void **state)
{
    (void)state;
    hand h[4];
    for (int i = 0; i < 4; i++)
        hand_init(&h[i]);
    probe p;
    asyncio_waker stale = ASYNCIO_WAKER_EMPTY;
    bool idle_ready = false;
    int results[2];
    asyncio_future f[2] = {probe_future(&p, 3, 0, NULL),
                           asyncio_future_make(&idle_vt, &idle_ready, NULL)};
    p.stale = &stale; /* a registration that keeps a clone of the child waker out */
    asyncio_join j;
    assert_ok(asyncio_join_all_init(&j, f, 2, results));
    long base = support_alloc_live(); /* the wake set */
    /* Each poll moves it. The first store needs no cell; then, with a clone out, every old
     * parent is retired (kept, still readable), the inline spare cell first, then an
     * allocated one. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(asyncio_join_poll(&j, &h[i].cx, NULL), ASYNCIO_PENDING);
        fire(&p);
        for (int k = 0; k < 4; k++)
            assert_int_equal(hand_wakes(&h[k]), k == i); /* the current one only */
        atomic_store(&h[i].wakes, 0);
        for (int k = 0; k <= i; k++)
            assert_int_equal(hand_refs(&h[k]), 1); /* retired, not released yet */
    }
    assert_int_equal(support_alloc_live(), base + 1); /* the third parent's cell */
    /* The probe completes; the stray clone goes: no clone is out any more, so the next
     * change rewrites the parent in place and gives every retired waker back. */
    assert_int_equal(asyncio_join_poll(&j, &h[2].cx, NULL), ASYNCIO_PENDING);
    assert_int_equal(results[0], 0);
    asyncio_waker_drop(&stale);
    assert_int_equal(asyncio_join_poll(&j, &h[3].cx, NULL), ASYNCIO_PENDING);
    for (int k = 0; k < 3; k++)
        assert_int_equal(hand_refs(&h[k]), 0);
    assert_int_equal(hand_refs(&h[3]), 1);
    asyncio_join_drop(&j); /* the idle child is never woken: dropped pending */
    for (int k = 0; k < 4; k++)
        assert_int_equal(hand_refs(&h[k]), 0);
    assert_int_equal(support_alloc_live(), 0);
}

static void test_combinator_moved_without_memory_for_the_new_waker_polls_itself_again(void **state)
{
    (void)state;
    hand h[3];
    for (int i = 0; i < 3; i++)
        hand_init(&h[i]);
    probe p, q;
    asyncio_future f[2] = {probe_future(&p, 1, 0, NULL), probe_future(&q, 9, 0, NULL)};
    asyncio_select s;
    failing_alloc_begin(1); /* 0: the wake set; 1: the third parent's cell (the second: inline) */
    assert_ok(asyncio_select_init(&s, f, 2));
    assert_int_equal(asyncio_select_poll(&s, &h[0].cx, NULL), ASYNCIO_PENDING);
    assert_int_equal(asyncio_select_poll(&s, &h[1].cx, NULL), ASYNCIO_PENDING); /* spare cell */
    assert_false(failing_alloc_failed());
    assert_int_equal(asyncio_select_poll(&s, &h[2].cx, NULL), ASYNCIO_PENDING);
    assert_true(failing_alloc_failed());
    /* Not published: it woke the new waker itself, so the task polls again (never a lost wake). */
    assert_int_equal(atomic_load(&h[2].wakes), 1);
    assert_int_equal(atomic_load(&h[2].refs), 0);
    fire(&p); /* reaches the old parent (a spurious wake there); the bit is what counts */
    assert_int_equal(atomic_load(&h[1].wakes), 1);
    size_t winner = 9;
    assert_ok(asyncio_select_poll(&s, &h[2].cx, &winner)); /* the cell is made now; p wins */
    assert_int_equal(winner, 0);
    asyncio_select_drop(&s);
    failing_alloc_end(); /* the wake set and the allocated cell are freed */
    for (int k = 0; k < 3; k++)
        assert_int_equal(atomic_load(&h[k].refs), 0);
}

/*
 * TSan stress: a leaf's event fires on another thread while the owner moves
 * the combinator between two wakers on every poll. The owner waits for the
 * waker it polled with last; a wake lost to the old parent hangs the test.
 */
typedef struct xleaf {
    pthread_mutex_t mu;
    bool ready;
    asyncio_waker w;
} xleaf;

static int xleaf_poll(void *state, asyncio_context *cx, void *out)
{
    xleaf *l = state;
    (void)out;
    pthread_mutex_lock(&l->mu);
    bool ready = l->ready;
    if (!ready)
        asyncio_waker_store(&l->w, cx->waker);
    pthread_mutex_unlock(&l->mu);
    return ready ? 0 : ASYNCIO_PENDING;
}

static void xleaf_drop(void *state)
{
    xleaf *l = state;
    pthread_mutex_lock(&l->mu);
    asyncio_waker w = l->w;
    l->w = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&l->mu);
    asyncio_waker_drop(&w);
}

static const asyncio_future_vtable xleaf_vt = {xleaf_poll, xleaf_drop};

static void *xleaf_fire(void *arg)
{
    xleaf *l = arg;
    for (int spin = 0; spin < 50; spin++)
        sched_yield(); /* let the owner get a few polls in */
    pthread_mutex_lock(&l->mu);
    l->ready = true;
    asyncio_waker w = l->w;
    l->w = ASYNCIO_WAKER_EMPTY;
    pthread_mutex_unlock(&l->mu);
    asyncio_waker_wake(&w); /* outside the leaf's lock, through the child's own waker */
    return NULL;
}

static void
test_select_moved_between_wakers_while_woken_from_another_thread_loses_no_wake(void **state)
{
    (void)state;
    for (unsigned long r = 0; r < support_scale(2000); r++) {
        hand h[2];
        hand_init(&h[0]);
        hand_init(&h[1]);
        xleaf l = {.ready = false, .w = ASYNCIO_WAKER_EMPTY};
        pthread_mutex_init(&l.mu, NULL);
        probe never;
        asyncio_future f[2] = {asyncio_future_make(&xleaf_vt, &l, NULL),
                               probe_future(&never, 1, 0, NULL)};
        asyncio_select s;
        assert_ok(asyncio_select_init(&s, f, 2));
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, xleaf_fire, &l), 0);
        int rc, cur = 0;
        for (unsigned long moves = 0;; moves++) {
            int seen = atomic_load(&h[cur].wakes); /* before the poll: no wake slips by */
            if ((rc = asyncio_select_poll(&s, &h[cur].cx, NULL)) != ASYNCIO_PENDING)
                break;
            if (moves >= r % 4) /* the first few moves race the event; then wait for it */
                while (atomic_load(&h[cur].wakes) == seen)
                    sched_yield();
            cur ^= 1; /* the next poll moves the select to the other waker */
        }
        assert_ok(rc);
        assert_int_equal(pthread_join(th, NULL), 0);
        asyncio_select_drop(&s);
        assert_int_equal(atomic_load(&h[0].refs) + atomic_load(&h[1].refs), 0);
        pthread_mutex_destroy(&l.mu);
    }
}

/* ------------------------------------------------------------------------ */
/* Cancellation: drop every combinator at every step                        */

enum kind { K_SELECT, K_RACE, K_JOIN_ALL, K_TRY_JOIN, K_TIMEOUT_OWNED, K_NESTED, K_KINDS };

#define NCHILD 3
#define STEPS  4

typedef struct rig {
    probe p[NCHILD];
    asyncio_future f[NCHILD];
    int results[NCHILD];
    asyncio_waker stale[NCHILD];
    asyncio_select sel, inner;
    asyncio_future inner_f[NCHILD];
    probe ip[NCHILD];
    asyncio_join join;
    asyncio_timeout to;
} rig;

/* Initialises combinator `k` over probes that need 1..NCHILD+1 wakes. */
static void rig_init(rig *r, enum kind k)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < NCHILD; i++) {
        r->f[i] = probe_future(&r->p[i], STEPS - 1 + i, i == 1 ? ASYNCIO_EIO : 0, NULL);
        r->p[i].stale = &r->stale[i];
    }
    switch (k) {
    case K_SELECT:
        assert_ok(asyncio_select_init(&r->sel, r->f, NCHILD));
        break;
    case K_RACE:
        assert_ok(asyncio_race_init(&r->sel, r->f, NCHILD));
        break;
    case K_JOIN_ALL:
        assert_ok(asyncio_join_all_init(&r->join, r->f, NCHILD, r->results));
        break;
    case K_TRY_JOIN:
        assert_ok(asyncio_try_join_init(&r->join, r->f, NCHILD, r->results));
        break;
    case K_TIMEOUT_OWNED: /* a timeout that never fires (never polled on a runtime) */
        for (int i = 1; i < NCHILD; i++)
            asyncio_future_drop(&r->f[i]);
        asyncio_timeout_at_init(&r->to, r->f[0], UINT64_MAX);
        break;
    case K_NESTED: /* select(select(probes), probe) */
        for (int i = 0; i < NCHILD; i++)
            r->inner_f[i] = probe_future(&r->ip[i], STEPS + i, 0, NULL);
        assert_ok(asyncio_select_init(&r->inner, r->inner_f, NCHILD));
        asyncio_future_drop(&r->f[1]);
        r->f[1] = asyncio_select_future(&r->inner, NULL);
        assert_ok(asyncio_select_init(&r->sel, r->f, NCHILD));
        break;
    default:
        fail();
    }
}

static int rig_poll(rig *r, enum kind k, asyncio_context *cx)
{
    switch (k) {
    case K_SELECT:
    case K_RACE:
    case K_NESTED:
        return asyncio_select_poll(&r->sel, cx, NULL);
    case K_JOIN_ALL:
    case K_TRY_JOIN:
        return asyncio_join_poll(&r->join, cx, NULL);
    case K_TIMEOUT_OWNED: {
        /* Outside a runtime the timer cannot register: poll the inner future alone. */
        int rc = asyncio_future_poll(&r->to.inner, cx);
        return rc == ASYNCIO_PENDING ? rc : (asyncio_future_drop(&r->to.inner), rc);
    }
    default:
        return ASYNCIO_EINVAL;
    }
}

static void rig_drop(rig *r, enum kind k)
{
    if (k == K_JOIN_ALL || k == K_TRY_JOIN)
        asyncio_join_drop(&r->join);
    else if (k == K_TIMEOUT_OWNED)
        asyncio_timeout_drop(&r->to);
    else
        asyncio_select_drop(&r->sel);
}

static void test_every_combinator_dropped_at_every_step_releases_everything(void **state)
{
    (void)state;
    long base = support_alloc_live();
    for (int k = 0; k < K_KINDS; k++) {
        for (int stop = 0; stop <= STEPS + NCHILD; stop++) {
            hand h;
            hand_init(&h);
            rig *r = calloc(1, sizeof *r);
            assert_non_null(r);
            rig_init(r, (enum kind)k);
            int rc = ASYNCIO_PENDING;
            for (int step = 0; step < stop && rc == ASYNCIO_PENDING; step++) {
                rc = rig_poll(r, (enum kind)k, &h.cx);
                for (int i = 0; i < NCHILD; i++) {
                    fire(&r->p[i]);
                    fire(&r->ip[i]);
                }
            }
            rig_drop(r, (enum kind)k);
            for (int i = 0; i < NCHILD; i++) {
                assert_int_equal(r->p[i].drops, 1); /* exactly once, whatever the step */
                if (k == K_NESTED)
                    assert_int_equal(r->ip[i].drops, 1);
                /* A registration that outlived its future wakes into live memory ... */
                asyncio_waker_wake_by_ref(&r->stale[i]);
                /* ... and releasing it frees the wake set (checked below). */
                asyncio_waker_drop(&r->stale[i]);
            }
            free(r);
            assert_int_equal(atomic_load(&h.refs), 0);
            assert_int_equal(support_alloc_live(), base);
        }
    }
}

/* Real leaves dropped by a combinator mid-flight: no permit, no message is lost. */
static void test_select_dropped_mid_flight_loses_no_permit_and_no_message(void **state)
{
    (void)state;
    asyncio_semaphore *sem;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_semaphore_new(&sem, 3));
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 4));
    for (int step = 0; step < 3; step++) {
        hand h;
        hand_init(&h);
        asyncio_semaphore_acquire acq;
        asyncio_mpsc_recv recv;
        int got = -1;
        asyncio_semaphore_acquire_init(&acq, sem, 5); /* more than there are: partial grant */
        asyncio_mpsc_recv_init(&recv, rx);
        asyncio_future f[2] = {asyncio_semaphore_acquire_future(&acq),
                               asyncio_mpsc_recv_future(&recv, &got)};
        asyncio_select s;
        assert_ok(asyncio_select_init(&s, f, 2));
        for (int i = 0; i < step; i++)
            assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
        asyncio_select_drop(&s); /* the acquire hands its partial grant back */
        assert_int_equal(asyncio_semaphore_available_permits(sem), 3);
        int msg = 40 + step;
        assert_ok(asyncio_mpsc_try_send(tx, &msg)); /* sent after the receive was dropped */
        assert_ok(asyncio_mpsc_try_recv(rx, &got)); /* ... and still there */
        assert_int_equal(got, msg);
        assert_int_equal(atomic_load(&h.refs), 0);
    }
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
    assert_ok(asyncio_semaphore_free(sem));
}

/* ------------------------------------------------------------------------ */
/* Zero allocations per poll                                                 */

static void test_select_and_timeout_allocate_nothing_per_poll(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p[2];
    asyncio_future f[2] = {probe_future(&p[0], 1000000, 0, NULL),
                           probe_future(&p[1], 1000000, 0, NULL)};
    asyncio_select s;
    assert_ok(asyncio_select_init(&s, f, 2)); /* the wake set: the one allocation */
    probe tp;
    asyncio_timeout to;
    asyncio_timeout_at_init(&to, probe_future(&tp, 1000000, 0, NULL), UINT64_MAX);
    long before = support_alloc_total();
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
        fire(&p[i & 1]);
        assert_int_equal(asyncio_future_poll(&to.inner, &h.cx), ASYNCIO_PENDING);
        fire(&tp);
    }
    assert_int_equal(support_alloc_total(), before);
    asyncio_select_drop(&s);
    asyncio_timeout_drop(&to);
    assert_int_equal(tp.drops, 1);
}

/* ------------------------------------------------------------------------ */
/* Runtime level: timeout over a read, select with a token, await macros      */

typedef struct read_timeout_task {
    bool started;
    asyncio_unix_stream a, b;
    char buf[16];
    size_t n;
    asyncio_read_op op;
    asyncio_timeout to;
} read_timeout_task;

static int read_timeout_poll(void *state, asyncio_context *cx, void *output)
{
    read_timeout_task *t = state;
    (void)output;
    if (!t->started) {
        assert_ok(asyncio_unix_stream_pair(&t->a, &t->b));
        asyncio_timeout_init_future(&t->to,
                                    asyncio_read_future(&t->op, asyncio_unix_stream_reader(&t->a),
                                                        t->buf, sizeof t->buf, &t->n),
                                    50);
        t->started = true;
    }
    return asyncio_timeout_poll(&t->to, cx);
}

static void read_timeout_drop(void *state)
{
    read_timeout_task *t = state;
    asyncio_timeout_drop(&t->to);
    asyncio_unix_stream_close(&t->a);
    asyncio_unix_stream_close(&t->b);
}

static const asyncio_task_vtable read_timeout_vt = {read_timeout_poll, read_timeout_drop, NULL,
                                                    sizeof(read_timeout_task), 0};

static void test_timeout_over_a_read_times_out_when_nothing_arrives(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    read_timeout_task init = {0};
    assert_err(asyncio_runtime_block_on(rt, &read_timeout_vt, &init, NULL), ASYNCIO_ETIMEDOUT);
    assert_ok(asyncio_runtime_free(rt));
}

/* A task: read 5 bytes the peer writes, within a deadline (the read wins). */
typedef struct read_wins_task {
    asyncio_coro co;
    asyncio_unix_stream a, b;
    char buf[16];
    size_t n;
    asyncio_read_op op;
    asyncio_timeout to;
    bool pair;
} read_wins_task;

static int read_wins_poll(void *state, asyncio_context *cx, void *output)
{
    read_wins_task *t = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(t->co);
    assert_ok(asyncio_unix_stream_pair(&t->a, &t->b));
    t->pair = true;
    asyncio_timeout_init_future(&t->to,
                                asyncio_read_future(&t->op, asyncio_unix_stream_reader(&t->a),
                                                    t->buf, sizeof t->buf, &t->n),
                                60000);
    ASYNCIO_YIELD(t->co, cx); /* the read is not polled yet: write, then await */
    assert_int_equal(write(t->b.fd, "hello", 5), 5);
    ASYNCIO_AWAIT_OK(t->co, rc, asyncio_timeout_poll(&t->to, cx));
    assert_int_equal(t->n, 5);
    assert_memory_equal(t->buf, "hello", 5);
    ASYNCIO_END(t->co);
    return 0;
}

static void read_wins_drop(void *state)
{
    read_wins_task *t = state;
    asyncio_timeout_drop(&t->to);
    if (t->pair) {
        asyncio_unix_stream_close(&t->a);
        asyncio_unix_stream_close(&t->b);
    }
}

static const asyncio_task_vtable read_wins_vt = {read_wins_poll, read_wins_drop, NULL,
                                                 sizeof(read_wins_task), 0};

static void test_timeout_over_a_read_returns_the_read_when_it_comes_first(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    read_wins_task init = {.co = ASYNCIO_CORO_INIT};
    assert_ok(asyncio_runtime_block_on(rt, &read_wins_vt, &init, NULL));
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * On a runtime, with the timer armed and the read registered: a timeout
 * over a read, and a select of that read and an hour's sleep, dropped after
 * every step (not polled; polled once; the peer wrote; polled again). A
 * read dropped before it completed consumed nothing: a fresh read gets
 * the byte. Nothing stays registered (runtime_free is not EBUSY).
 */
typedef struct drop_step_task {
    asyncio_coro co;
    int stop, rc;
    bool use_select;
    asyncio_unix_stream a, b;
    char buf[4];
    size_t n;
    asyncio_read_op op;
    asyncio_timeout to;
    asyncio_sleep hour;
    asyncio_future kids[2];
    asyncio_select sel;
} drop_step_task;

static int drop_step_poll_once(drop_step_task *t, asyncio_context *cx)
{
    return t->use_select ? asyncio_select_poll(&t->sel, cx, NULL)
                         : asyncio_timeout_poll(&t->to, cx);
}

static int drop_step_poll(void *state, asyncio_context *cx, void *output)
{
    drop_step_task *t = state;
    (void)output;
    ASYNCIO_BEGIN(t->co);
    assert_ok(asyncio_unix_stream_pair(&t->a, &t->b));
    asyncio_future rd = asyncio_read_future(&t->op, asyncio_unix_stream_reader(&t->a), t->buf,
                                            sizeof t->buf, &t->n);
    if (t->use_select) {
        asyncio_sleep_init(&t->hour, 3600u * 1000);
        t->kids[0] = asyncio_sleep_future(&t->hour);
        t->kids[1] = rd;
        assert_ok(asyncio_select_init(&t->sel, t->kids, 2));
    } else {
        asyncio_timeout_init_future(&t->to, rd, 3600u * 1000);
    }
    if (t->stop >= 1)
        assert_int_equal(drop_step_poll_once(t, cx), ASYNCIO_PENDING);
    if (t->stop >= 2)
        assert_int_equal(write(t->b.fd, "x", 1), 1);
    if (t->stop >= 3) {
        ASYNCIO_AWAIT(t->co, t->rc, drop_step_poll_once(t, cx));
        assert_ok(t->rc);
        assert_int_equal(t->n, 1);
    }
    if (t->use_select)
        asyncio_select_drop(&t->sel);
    else
        asyncio_timeout_drop(&t->to);
    if (t->stop == 2) {
        /*
         * Dropped pending: the byte is still there for a fresh read of the stream. (Not
         * read(2) on the fd: on io_uring's completion path the stream's receive may
         * already hold it in the stream's queue, which is the stream's, not lost.)
         */
        t->buf[0] = 0;
        ASYNCIO_AWAIT(t->co, t->rc,
                      asyncio_unix_stream_poll_read(&t->a, cx, t->buf, 1, &t->n));
        assert_ok(t->rc);
        assert_int_equal(t->n, 1);
        assert_int_equal(t->buf[0], 'x');
    }
    asyncio_unix_stream_close(&t->a);
    asyncio_unix_stream_close(&t->b);
    ASYNCIO_END(t->co);
    return 0;
}

static const asyncio_task_vtable drop_step_vt = {drop_step_poll, NULL, NULL, sizeof(drop_step_task),
                                                 0};

static void test_timeout_and_select_over_a_read_dropped_at_every_step_lose_no_byte(void **state)
{
    (void)state;
    for (int sel = 0; sel < 2; sel++) {
        for (int stop = 0; stop <= 3; stop++) {
            asyncio_runtime *rt = support_runtime_new(NULL);
            drop_step_task init = {.co = ASYNCIO_CORO_INIT, .stop = stop, .use_select = sel == 1};
            assert_ok(asyncio_runtime_block_on(rt, &drop_step_vt, &init, NULL));
            assert_ok(asyncio_runtime_free(rt));
        }
    }
}

/* select(sleep 1 h, cancelled(token)) where another task cancels the token. */
typedef struct canceller {
    asyncio_cancel_token *tok;
    asyncio_sleep sleep;
    bool slept;
} canceller;

static int canceller_poll(void *state, asyncio_context *cx, void *output)
{
    canceller *c = state;
    (void)output;
    int rc = asyncio_sleep_poll(&c->sleep, cx);
    if (rc != 0)
        return rc;
    asyncio_cancel_token_cancel(c->tok);
    return 0;
}

static void canceller_drop(void *state)
{
    canceller *c = state;
    asyncio_sleep_drop(&c->sleep);
    asyncio_cancel_token_drop(c->tok);
}

static const asyncio_task_vtable canceller_vt = {canceller_poll, canceller_drop, NULL,
                                                 sizeof(canceller), 0};

typedef struct select_main {
    asyncio_coro co;
    asyncio_cancel_token *tok;
    asyncio_sleep hour;
    asyncio_cancelled stop;
    asyncio_future f[2];
    asyncio_select sel;
    size_t winner;
} select_main;

static int select_main_poll(void *state, asyncio_context *cx, void *output)
{
    select_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    {
        canceller c = {.tok = asyncio_cancel_token_clone(m->tok)};
        asyncio_sleep_init(&c.sleep, 10);
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &canceller_vt, &c, NULL));
    }
    asyncio_sleep_init(&m->hour, 3600 * 1000);
    asyncio_cancelled_init(&m->stop, m->tok);
    m->f[0] = asyncio_sleep_future(&m->hour);
    m->f[1] = asyncio_cancelled_future(&m->stop);
    assert_ok(asyncio_select_init(&m->sel, m->f, 2));
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_select_poll(&m->sel, cx, &m->winner));
    assert_int_equal(m->winner, 1);
    ASYNCIO_END(m->co);
    return 0;
}

static void select_main_drop(void *state)
{
    select_main *m = state;
    asyncio_select_drop(&m->sel);
}

static const asyncio_task_vtable select_main_vt = {select_main_poll, select_main_drop, NULL,
                                                   sizeof(select_main), 0};

static void test_select_of_a_sleep_and_a_cancelled_token_wakes_on_cancel(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    select_main init = {.co = ASYNCIO_CORO_INIT};
    assert_ok(asyncio_cancel_token_new(&init.tok));
    assert_ok(asyncio_runtime_block_on(rt, &select_main_vt, &init, NULL));
    assert_true(asyncio_cancel_token_is_cancelled(init.tok));
    asyncio_cancel_token_drop(init.tok);
    assert_ok(asyncio_runtime_free(rt));
}

/* join_all over oneshot receives whose senders are other threads (TSan: the wake set). */
#define XT_CHILDREN 16

typedef struct xt_main {
    asyncio_coro co;
    asyncio_oneshot_receiver *rx[XT_CHILDREN];
    asyncio_oneshot_sender *tx[XT_CHILDREN];
    int values[XT_CHILDREN], results[XT_CHILDREN];
    asyncio_future f[XT_CHILDREN];
    asyncio_join join;
    pthread_t th[2];
    bool started;
} xt_main;

static void *xt_sender(void *arg)
{
    asyncio_oneshot_sender **tx = arg;
    for (int i = 0; i < XT_CHILDREN / 2; i++) {
        int v = 1000 + i;
        assert_ok(asyncio_oneshot_send(tx[i], &v));
    }
    return NULL;
}

static int xt_main_poll(void *state, asyncio_context *cx, void *output)
{
    xt_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    for (int i = 0; i < XT_CHILDREN; i++) {
        assert_ok(asyncio_oneshot_channel(&m->tx[i], &m->rx[i], sizeof(int)));
        m->f[i] = asyncio_oneshot_recv_future(m->rx[i], &m->values[i]);
    }
    assert_ok(asyncio_join_all_init(&m->join, m->f, XT_CHILDREN, m->results));
    assert_int_equal(asyncio_join_poll(&m->join, cx, NULL), ASYNCIO_PENDING);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&m->th[k], NULL, xt_sender, &m->tx[k * XT_CHILDREN / 2]),
                         0);
    m->started = true;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_join_poll(&m->join, cx, NULL));
    for (int i = 0; i < XT_CHILDREN; i++) {
        assert_ok(m->results[i]);
        assert_int_equal(m->values[i], 1000 + i % (XT_CHILDREN / 2));
    }
    ASYNCIO_END(m->co);
    return 0;
}

static void xt_main_drop(void *state)
{
    xt_main *m = state;
    asyncio_join_drop(&m->join);
    if (m->started)
        for (int k = 0; k < 2; k++)
            pthread_join(m->th[k], NULL);
}

static const asyncio_task_vtable xt_main_vt = {xt_main_poll, xt_main_drop, NULL, sizeof(xt_main),
                                               0};

static void test_join_all_woken_from_other_threads_collects_every_value(void **state)
{
    (void)state;
    for (unsigned long r = 0; r < support_scale(50); r++) {
        asyncio_runtime *rt = support_runtime_new(NULL);
        xt_main init = {.co = ASYNCIO_CORO_INIT};
        assert_ok(asyncio_runtime_block_on(rt, &xt_main_vt, &init, NULL));
        assert_ok(asyncio_runtime_free(rt));
    }
}

/* ------------------------------------------------------------------------ */
/* Await macros                                                              */

/* Counts through awaits, yields and a failing await; locals are reset on re-entry. */
typedef struct coro_task {
    asyncio_coro co;
    int i, trace;
    asyncio_sleep s;
    bool fail;
} coro_task;

static int coro_poll(void *state, asyncio_context *cx, void *output)
{
    coro_task *t = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(t->co);
    for (t->i = 0; t->i < 3; t->i++) {
        asyncio_sleep_init(&t->s, 5);
        ASYNCIO_AWAIT(t->co, rc, asyncio_sleep_poll(&t->s, cx));
        assert_ok(rc);
        asyncio_sleep_drop(&t->s);
        t->trace = t->trace * 10 + t->i + 1;
        ASYNCIO_YIELD(t->co, cx);
    }
    if (t->fail)
        ASYNCIO_AWAIT_OK(t->co, rc, ASYNCIO_ECONNRESET);
    ASYNCIO_END(t->co);
    return t->trace;
}

static void coro_drop(void *state)
{
    coro_task *t = state;
    asyncio_sleep_drop(&t->s);
}

static const asyncio_task_vtable coro_vt = {coro_poll, coro_drop, NULL, sizeof(coro_task), 0};

static void test_await_macros_resume_after_each_await_and_yield(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    coro_task init = {.co = ASYNCIO_CORO_INIT};
    assert_int_equal(asyncio_runtime_block_on(rt, &coro_vt, &init, NULL), 123);
    init.fail = true;
    assert_err(asyncio_runtime_block_on(rt, &coro_vt, &init, NULL), ASYNCIO_ECONNRESET);
    assert_ok(asyncio_runtime_free(rt));
}

/* A coroutine with no context: its await expression is given from outside. */
typedef struct fail_coro {
    asyncio_coro co;
    int next_rc; /* what the awaited expression evaluates to at the next poll */
    int reached; /* times the code after the await ran */
} fail_coro;

static int fail_coro_poll(fail_coro *f)
{
    int rc;
    ASYNCIO_BEGIN(f->co);
    ASYNCIO_AWAIT_OK(f->co, rc, f->next_rc);
    f->reached++;
    ASYNCIO_END(f->co);
    return 7;
}

/* Polls a probe by hand; on its PENDING, suspends without waking itself. */
typedef struct suspender {
    asyncio_coro co;
    probe *p;
    int trace;
} suspender;

static int suspender_poll(suspender *t, asyncio_context *cx)
{
    ASYNCIO_BEGIN(t->co);
    for (;;) {
        t->trace++;
        asyncio_future f = asyncio_future_make(&probe_vt, t->p, NULL);
        if (asyncio_future_poll(&f, cx) != ASYNCIO_PENDING)
            break;
        ASYNCIO_SUSPEND(t->co);
        t->trace += 10; /* resumed after the suspend, not at the top */
    }
    ASYNCIO_END(t->co);
    return 0;
}

static void test_await_suspend_sleeps_until_the_hand_polled_leaf_wakes_it(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    probe p;
    (void)probe_future(&p, 2, 0, NULL);
    suspender t = {.co = ASYNCIO_CORO_INIT, .p = &p};
    assert_int_equal(suspender_poll(&t, &h.cx), ASYNCIO_PENDING);
    assert_int_equal(hand_wakes(&h), 0); /* no self-wake, unlike ASYNCIO_YIELD */
    assert_int_equal(t.trace, 1);
    fire(&p);
    assert_int_equal(hand_wakes(&h), 1); /* the leaf's own wake */
    assert_int_equal(suspender_poll(&t, &h.cx), ASYNCIO_PENDING);
    assert_int_equal(t.trace, 12);
    fire(&p);
    assert_ok(suspender_poll(&t, &h.cx));
    assert_int_equal(t.trace, 23);
    assert_int_equal(p.polls, 3);
    probe_drop(&p);
    assert_int_equal(hand_refs(&h), 0);
}

static void test_await_ok_ends_the_coroutine_on_an_error(void **state)
{
    (void)state;
    fail_coro f = {ASYNCIO_CORO_INIT, ASYNCIO_PENDING, 0};
    assert_int_equal(fail_coro_poll(&f), ASYNCIO_PENDING);
    assert_false(ASYNCIO_CORO_IS_DONE(f.co));
    assert_int_equal(fail_coro_poll(&f), ASYNCIO_PENDING); /* re-evaluated on re-entry */
    f.next_rc = ASYNCIO_ECONNRESET;
    assert_err(fail_coro_poll(&f), ASYNCIO_ECONNRESET);
    assert_true(ASYNCIO_CORO_IS_DONE(f.co));
    assert_int_equal(f.reached, 0);
    assert_int_equal(fail_coro_poll(&f), 7); /* polled after the end: falls through */
    assert_int_equal(f.reached, 0);
    fail_coro g = {ASYNCIO_CORO_INIT, 0, 0};
    assert_int_equal(fail_coro_poll(&g), 7);
    assert_int_equal(g.reached, 1);
    assert_true(ASYNCIO_CORO_IS_DONE(g.co));
}

/* ------------------------------------------------------------------------ */
/* The coordination primitives as futures (adapt.h)                          */

/*
 * Each primitive's future next to a probe that never finishes, in a
 * select: polled `step` times (0: never), then the select is dropped. The
 * primitive must be exactly as before (nothing queued, nothing lost, no
 * waker left) and the adapter's future must complete normally afterwards.
 */

static void test_rwlock_futures_complete_and_dropped_mid_flight_hand_the_lock_on(void **state)
{
    (void)state;
    asyncio_rwlock *rw;
    assert_ok(asyncio_rwlock_new(&rw));
    for (int step = 0; step < 3; step++) {
        for (int writer = 0; writer < 2; writer++) {
            hand h;
            hand_init(&h);
            assert_ok(asyncio_rwlock_try_write(rw)); /* held: the future must queue */
            asyncio_rwlock_read rd;
            asyncio_rwlock_write wr;
            asyncio_rwlock_read_init(&rd, rw);
            asyncio_rwlock_write_init(&wr, rw);
            probe p;
            asyncio_future f[2] = {writer ? asyncio_rwlock_write_future(&wr)
                                          : asyncio_rwlock_read_future(&rd),
                                   probe_future(&p, 1000, 0, NULL)};
            asyncio_select s;
            assert_ok(asyncio_select_init(&s, f, 2));
            for (int i = 0; i < step; i++)
                assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
            asyncio_select_drop(&s); /* the queued request leaves */
            assert_int_equal(p.drops, 1);
            asyncio_rwlock_write_unlock(rw);
            assert_ok(asyncio_rwlock_try_write(rw)); /* nobody queued, nobody holds it */
            asyncio_rwlock_write_unlock(rw);
            assert_int_equal(atomic_load(&h.refs), 0);
        }
    }
    /* Granted through the select: the lock is the caller's after the future was dropped. */
    hand h;
    hand_init(&h);
    assert_ok(asyncio_rwlock_try_read(rw));
    asyncio_rwlock_write wr;
    asyncio_rwlock_write_init(&wr, rw);
    probe p;
    asyncio_future f[2] = {asyncio_rwlock_write_future(&wr), probe_future(&p, 1000, 0, NULL)};
    asyncio_select s;
    size_t winner = 9;
    assert_ok(asyncio_select_init(&s, f, 2));
    assert_int_equal(asyncio_select_poll(&s, &h.cx, &winner), ASYNCIO_PENDING);
    assert_err(asyncio_rwlock_try_read(rw), ASYNCIO_EAGAIN); /* a queued writer blocks readers */
    asyncio_rwlock_read_unlock(rw);
    assert_int_equal(atomic_load(&h.wakes), 1);
    assert_ok(asyncio_select_poll(&s, &h.cx, &winner));
    assert_int_equal(winner, 0);
    assert_int_equal(p.drops, 1);
    assert_err(asyncio_rwlock_try_read(rw), ASYNCIO_EAGAIN); /* still write-held by us */
    asyncio_rwlock_write_unlock(rw);
    asyncio_select_drop(&s);
    assert_int_equal(atomic_load(&h.refs), 0);
    assert_ok(asyncio_rwlock_free(rw));
}

static void
test_barrier_wait_future_elects_one_leader_and_dropped_withdraws_its_arrival(void **state)
{
    (void)state;
    asyncio_barrier *b;
    assert_ok(asyncio_barrier_new(&b, 2));
    for (int step = 0; step < 3; step++) {
        hand h;
        hand_init(&h);
        asyncio_barrier_wait w;
        asyncio_barrier_wait_init(&w, b);
        bool leader = true;
        probe p;
        asyncio_future f[2] = {asyncio_barrier_wait_future(&w, &leader),
                               probe_future(&p, 1000, 0, NULL)};
        asyncio_select s;
        assert_ok(asyncio_select_init(&s, f, 2));
        for (int i = 0; i < step; i++)
            assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
        assert_int_equal(asyncio_barrier_waiting(b), step > 0 ? 1 : 0);
        asyncio_select_drop(&s);
        assert_int_equal(asyncio_barrier_waiting(b), 0); /* the arrival was withdrawn */
        assert_int_equal(atomic_load(&h.refs), 0);
    }
    /* Two parties joined on one task: both complete, exactly one leads. */
    hand h;
    hand_init(&h);
    asyncio_barrier_wait w[2];
    bool leader[2] = {false, false};
    asyncio_future f[2];
    for (int i = 0; i < 2; i++) {
        asyncio_barrier_wait_init(&w[i], b);
        f[i] = asyncio_barrier_wait_future(&w[i], &leader[i]);
    }
    asyncio_join j;
    int results[2] = {-1, -1};
    assert_ok(asyncio_join_all_init(&j, f, 2, results));
    int rc = asyncio_join_poll(&j, &h.cx, NULL); /* the second arrival completes both ... */
    if (rc == ASYNCIO_PENDING) {                 /* ... waking the first one's child waker */
        assert_int_equal(atomic_load(&h.wakes), 1);
        rc = asyncio_join_poll(&j, &h.cx, NULL);
    }
    assert_ok(rc);
    assert_ok(results[0]);
    assert_ok(results[1]);
    assert_int_equal(leader[0] + leader[1], 1);
    asyncio_join_drop(&j);
    assert_int_equal(atomic_load(&h.refs), 0);
    assert_ok(asyncio_barrier_free(b));
}

static void test_broadcast_recv_future_dropped_mid_flight_loses_no_message(void **state)
{
    (void)state;
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx;
    assert_ok(asyncio_broadcast_channel(&tx, &rx, sizeof(int), 4));
    for (int step = 0; step < 3; step++) {
        hand h;
        hand_init(&h);
        asyncio_broadcast_recv r;
        asyncio_broadcast_recv_init(&r, rx);
        int got = -1;
        probe p;
        asyncio_future f[2] = {asyncio_broadcast_recv_future(&r, &got),
                               probe_future(&p, 1000, 0, NULL)};
        asyncio_select s;
        assert_ok(asyncio_select_init(&s, f, 2));
        for (int i = 0; i < step; i++)
            assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
        asyncio_select_drop(&s);
        int msg = 70 + step;
        assert_ok(asyncio_broadcast_send(tx, &msg)); /* wakes no dropped waker (ASan) */
        assert_int_equal(atomic_load(&h.wakes), 0);
        assert_ok(asyncio_broadcast_try_recv(rx, &got)); /* still there */
        assert_int_equal(got, msg);
        assert_int_equal(atomic_load(&h.refs), 0);
    }
    /* A send wakes the select, whose winner is the receive with the message. */
    hand h;
    hand_init(&h);
    asyncio_broadcast_recv r;
    asyncio_broadcast_recv_init(&r, rx);
    int got = -1;
    probe p;
    asyncio_future f[2] = {asyncio_broadcast_recv_future(&r, &got),
                           probe_future(&p, 1000, 0, NULL)};
    asyncio_select s;
    size_t winner = 9;
    assert_ok(asyncio_select_init(&s, f, 2));
    assert_int_equal(asyncio_select_poll(&s, &h.cx, &winner), ASYNCIO_PENDING);
    int msg = 99;
    assert_ok(asyncio_broadcast_send(tx, &msg));
    assert_int_equal(atomic_load(&h.wakes), 1);
    assert_ok(asyncio_select_poll(&s, &h.cx, &winner));
    assert_int_equal(winner, 0);
    assert_int_equal(got, 99);
    asyncio_select_drop(&s);
    /* Lagged and closed are the future's errors. */
    for (int i = 0; i < 6; i++)
        assert_ok(asyncio_broadcast_send(tx, &i));
    asyncio_broadcast_recv_init(&r, rx);
    asyncio_future lag = asyncio_broadcast_recv_future(&r, &got);
    assert_err(asyncio_future_poll(&lag, &h.cx), ASYNCIO_EOVERFLOW);
    assert_int_equal(asyncio_broadcast_receiver_lagged(rx), 2);
    for (int i = 2; i < 6; i++) {
        assert_ok(asyncio_future_poll(&lag, &h.cx));
        assert_int_equal(got, i);
    }
    asyncio_broadcast_sender_drop(tx);
    assert_err(asyncio_future_poll(&lag, &h.cx), ASYNCIO_ECLOSED);
    asyncio_future_drop(&lag);
    assert_int_equal(atomic_load(&h.refs), 0);
    asyncio_broadcast_receiver_drop(rx);
}

static void test_watch_changed_future_dropped_mid_flight_marks_nothing_seen(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx;
    int v = 0;
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof(int), &v));
    for (int step = 0; step < 3; step++) {
        hand h;
        hand_init(&h);
        asyncio_watch_changed c;
        asyncio_watch_changed_init(&c, rx);
        probe p;
        asyncio_future f[2] = {asyncio_watch_changed_future(&c), probe_future(&p, 1000, 0, NULL)};
        asyncio_select s;
        assert_ok(asyncio_select_init(&s, f, 2));
        for (int i = 0; i < step; i++)
            assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
        asyncio_select_drop(&s);
        v = 10 + step;
        assert_ok(asyncio_watch_send(tx, &v));
        assert_int_equal(atomic_load(&h.wakes), 0);
        assert_int_equal(asyncio_watch_has_changed(rx), 1); /* the change is still unseen */
        asyncio_watch_mark_seen(rx);
        assert_int_equal(atomic_load(&h.refs), 0);
    }
    hand h;
    hand_init(&h);
    asyncio_watch_changed c;
    asyncio_watch_changed_init(&c, rx);
    asyncio_future f = asyncio_watch_changed_future(&c);
    assert_int_equal(asyncio_future_poll(&f, &h.cx), ASYNCIO_PENDING);
    v = 42;
    assert_ok(asyncio_watch_send(tx, &v));
    assert_int_equal(atomic_load(&h.wakes), 1);
    assert_ok(asyncio_future_poll(&f, &h.cx));
    int seen = 0;
    assert_ok(asyncio_watch_borrow(rx, &seen));
    assert_int_equal(seen, 42);
    asyncio_watch_sender_drop(tx);
    assert_err(asyncio_future_poll(&f, &h.cx), ASYNCIO_ECLOSED);
    asyncio_future_drop(&f);
    assert_int_equal(atomic_load(&h.refs), 0);
    asyncio_watch_receiver_drop(rx);
}

/* The turn survives the combinator's drop of a finished child; waiters get the value. */
static void
test_once_cell_future_keeps_the_turn_past_the_combinator_and_waiters_get_the_value(void **state)
{
    (void)state;
    asyncio_once_cell *cell;
    assert_ok(asyncio_once_cell_new(&cell, sizeof(int)));
    hand h;
    hand_init(&h);
    asyncio_once_cell_get_or_init g[2];
    asyncio_once_cell_op op[2];
    int value[2] = {-1, -1};
    bool turn[2] = {false, true};
    asyncio_future f[2];
    for (int i = 0; i < 2; i++) {
        asyncio_once_cell_get_or_init_init(&g[i], cell);
        f[i] = asyncio_once_cell_get_or_init_future(&op[i], &g[i], &value[i], &turn[i]);
    }
    asyncio_join j;
    int results[2] = {-1, -1};
    assert_ok(asyncio_join_all_init(&j, f, 2, results));
    assert_int_equal(asyncio_join_poll(&j, &h.cx, NULL), ASYNCIO_PENDING);
    assert_ok(results[0]); /* child 0 got the turn and was dropped by the join ... */
    assert_true(turn[0]);
    assert_false(asyncio_once_cell_is_set(cell));
    int computed = 314;
    assert_ok(asyncio_once_cell_init_finish(&g[0], &computed)); /* ... but still holds it */
    assert_int_equal(atomic_load(&h.wakes), 1);
    assert_ok(asyncio_join_poll(&j, &h.cx, NULL));
    assert_ok(results[1]);
    assert_false(turn[1]);
    assert_int_equal(value[1], 314);
    asyncio_join_drop(&j);
    asyncio_once_cell_get_or_init_drop(&g[0]);
    assert_int_equal(atomic_load(&h.refs), 0);
    assert_ok(asyncio_once_cell_free(cell));
}

/* A waiting future dropped at every step; a turn handed to it and never observed moves on. */
static void test_once_cell_future_dropped_at_every_step_passes_the_turn_on(void **state)
{
    (void)state;
    for (int step = 0; step < 4; step++) {
        asyncio_once_cell *cell;
        assert_ok(asyncio_once_cell_new(&cell, sizeof(int)));
        hand h;
        hand_init(&h);
        asyncio_once_cell_get_or_init holder, g, next;
        bool turn = false;
        asyncio_once_cell_get_or_init_init(&holder, cell);
        assert_ok(asyncio_once_cell_get_or_init_poll(&holder, &h.cx, NULL, &turn));
        assert_true(turn);
        asyncio_once_cell_get_or_init_init(&g, cell);
        asyncio_once_cell_op op;
        int value = -1;
        probe p;
        asyncio_future f[2] = {asyncio_once_cell_get_or_init_future(&op, &g, &value, NULL),
                               probe_future(&p, 1000, 0, NULL)};
        asyncio_select s;
        assert_ok(asyncio_select_init(&s, f, 2));
        for (int i = 0; i < step && i < 2; i++)
            assert_int_equal(asyncio_select_poll(&s, &h.cx, NULL), ASYNCIO_PENDING);
        if (step == 3)
            asyncio_once_cell_get_or_init_drop(&holder); /* the turn goes to g, unobserved */
        asyncio_select_drop(&s);                         /* g passes it on (or just leaves) */
        if (step != 3)
            asyncio_once_cell_get_or_init_drop(&holder);
        /* Nobody holds the turn now: the next caller gets it at once. */
        asyncio_once_cell_get_or_init_init(&next, cell);
        turn = false;
        assert_ok(asyncio_once_cell_get_or_init_poll(&next, &h.cx, NULL, &turn));
        assert_true(turn);
        asyncio_once_cell_get_or_init_drop(&next);
        assert_int_equal(atomic_load(&h.refs), 0);
        assert_ok(asyncio_once_cell_free(cell));
    }
}

/* The primitives' adapters, pending and re-polled: no allocation per poll. */
static void test_primitive_futures_allocate_nothing_per_poll(void **state)
{
    (void)state;
    hand h;
    hand_init(&h);
    asyncio_rwlock *rw;
    asyncio_barrier *b;
    asyncio_once_cell *cell;
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx;
    asyncio_watch_sender *wtx;
    asyncio_watch_receiver *wrx;
    int v = 0;
    bool turn = false;
    assert_ok(asyncio_rwlock_new(&rw));
    assert_ok(asyncio_barrier_new(&b, 2));
    assert_ok(asyncio_once_cell_new(&cell, sizeof(int)));
    assert_ok(asyncio_broadcast_channel(&tx, &rx, sizeof(int), 4));
    assert_ok(asyncio_watch_channel(&wtx, &wrx, sizeof(int), &v));
    assert_ok(asyncio_rwlock_try_write(rw));
    asyncio_once_cell_get_or_init holder, g;
    asyncio_once_cell_get_or_init_init(&holder, cell);
    assert_ok(asyncio_once_cell_get_or_init_poll(&holder, &h.cx, NULL, &turn));
    asyncio_rwlock_read rd;
    asyncio_barrier_wait bw;
    asyncio_broadcast_recv br;
    asyncio_watch_changed wc;
    asyncio_once_cell_op op;
    asyncio_rwlock_read_init(&rd, rw);
    asyncio_barrier_wait_init(&bw, b);
    asyncio_broadcast_recv_init(&br, rx);
    asyncio_watch_changed_init(&wc, wrx);
    asyncio_once_cell_get_or_init_init(&g, cell);
    asyncio_future f[5] = {asyncio_rwlock_read_future(&rd), asyncio_barrier_wait_future(&bw, NULL),
                           asyncio_broadcast_recv_future(&br, &v),
                           asyncio_watch_changed_future(&wc),
                           asyncio_once_cell_get_or_init_future(&op, &g, &v, NULL)};
    long before = support_alloc_total();
    for (int i = 0; i < 1000; i++)
        for (int k = 0; k < 5; k++)
            assert_int_equal(asyncio_future_poll(&f[k], &h.cx), ASYNCIO_PENDING);
    assert_int_equal(support_alloc_total(), before);
    for (int k = 0; k < 5; k++)
        asyncio_future_drop(&f[k]);
    asyncio_once_cell_get_or_init_drop(&holder);
    asyncio_rwlock_write_unlock(rw);
    assert_int_equal(atomic_load(&h.refs), 0);
    asyncio_broadcast_sender_drop(tx);
    asyncio_broadcast_receiver_drop(rx);
    asyncio_watch_sender_drop(wtx);
    asyncio_watch_receiver_drop(wrx);
    assert_ok(asyncio_once_cell_free(cell));
    assert_ok(asyncio_barrier_free(b));
    assert_ok(asyncio_rwlock_free(rw));
}

/*
 * Under the runtime: CONSUMERS tasks each select over a broadcast receive
 * and a watch changed() (the stop flag) until the broadcast closes, then
 * meet at a barrier through its future and read a once-cell initialised
 * by one of them. Every consumer must see every message in order.
 */
#define CONSUMERS  4
#define BCAST_MSGS 200

typedef struct prim_shared {
    asyncio_barrier *barrier;
    asyncio_once_cell *cell;
    _Atomic int leaders, inits;
} prim_shared;

typedef struct consumer {
    asyncio_coro co;
    prim_shared *sh;
    asyncio_broadcast_receiver *rx;
    asyncio_watch_receiver *wrx;
    asyncio_broadcast_recv recv;
    asyncio_watch_changed changed;
    asyncio_barrier_wait bw;
    asyncio_once_cell_get_or_init get;
    asyncio_once_cell_op op;
    asyncio_future f[2];
    asyncio_select sel;
    bool sel_live, watch_closed, get_live, leader, turn;
    int msg, expect, cell_value;
    size_t winner;
} consumer;

static int consumer_poll(void *state, asyncio_context *cx, void *output)
{
    consumer *c = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(c->co);
    asyncio_broadcast_recv_init(&c->recv, c->rx);
    asyncio_watch_changed_init(&c->changed, c->wrx);
    for (;;) {
        c->f[0] = asyncio_broadcast_recv_future(&c->recv, &c->msg);
        c->f[1] = asyncio_watch_changed_future(&c->changed);
        assert_ok(asyncio_select_init(&c->sel, c->f, c->watch_closed ? 1 : 2));
        c->sel_live = true;
        ASYNCIO_AWAIT(c->co, rc, asyncio_select_poll(&c->sel, cx, &c->winner));
        asyncio_select_drop(&c->sel);
        c->sel_live = false;
        if (rc == ASYNCIO_ECLOSED && c->winner == 0)
            break;
        if (c->winner == 1) { /* the watch: a progress value only; keep receiving */
            assert_true(rc == 0 || rc == ASYNCIO_ECLOSED);
            c->watch_closed = rc == ASYNCIO_ECLOSED; /* from now on: the broadcast only */
            continue;
        }
        assert_ok(rc);
        assert_int_equal(c->msg, c->expect++);
    }
    assert_int_equal(c->expect, BCAST_MSGS);
    asyncio_barrier_wait_init(&c->bw, c->sh->barrier);
    c->f[0] = asyncio_barrier_wait_future(&c->bw, &c->leader);
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_future_poll(&c->f[0], cx));
    asyncio_future_drop(&c->f[0]);
    if (c->leader)
        atomic_fetch_add(&c->sh->leaders, 1);
    asyncio_once_cell_get_or_init_init(&c->get, c->sh->cell);
    c->get_live = true;
    c->f[0] = asyncio_once_cell_get_or_init_future(&c->op, &c->get, &c->cell_value, &c->turn);
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_future_poll(&c->f[0], cx));
    asyncio_future_drop(&c->f[0]);
    if (c->turn) {
        atomic_fetch_add(&c->sh->inits, 1);
        c->cell_value = 77;
        assert_ok(asyncio_once_cell_init_finish(&c->get, &c->cell_value));
    }
    assert_int_equal(c->cell_value, 77);
    ASYNCIO_END(c->co);
    return 0;
}

static void consumer_drop(void *state)
{
    consumer *c = state;
    if (c->sel_live)
        asyncio_select_drop(&c->sel);
    asyncio_future_drop(&c->f[0]);
    if (c->get_live)
        asyncio_once_cell_get_or_init_drop(&c->get);
    asyncio_broadcast_receiver_drop(c->rx);
    asyncio_watch_receiver_drop(c->wrx);
}

static const asyncio_task_vtable consumer_vt = {consumer_poll, consumer_drop, NULL,
                                                sizeof(consumer), 0};

typedef struct producer {
    asyncio_coro co;
    prim_shared *sh;
    asyncio_broadcast_sender *tx;
    asyncio_watch_sender *wtx;
    asyncio_join_handle *jh[CONSUMERS];
    int i;
} producer;

static int producer_poll(void *state, asyncio_context *cx, void *output)
{
    producer *p = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(p->co);
    for (int k = 0; k < CONSUMERS; k++) {
        consumer c = {.co = ASYNCIO_CORO_INIT, .sh = p->sh};
        assert_ok(asyncio_broadcast_subscribe(p->tx, &c.rx));
        assert_ok(asyncio_watch_subscribe(p->wtx, &c.wrx));
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &consumer_vt, &c, &p->jh[k]));
    }
    for (p->i = 0; p->i < BCAST_MSGS; p->i++) {
        assert_ok(asyncio_broadcast_send(p->tx, &p->i));
        if (p->i % 16 == 15) { /* wake the watch side too, and let the consumers run */
            assert_ok(asyncio_watch_send(p->wtx, &p->i));
            ASYNCIO_YIELD(p->co, cx);
        }
    }
    asyncio_broadcast_sender_drop(p->tx);
    p->tx = NULL;
    asyncio_watch_sender_drop(p->wtx);
    p->wtx = NULL;
    for (p->i = 0; p->i < CONSUMERS; p->i++)
        ASYNCIO_AWAIT_OK(p->co, rc, asyncio_join_handle_poll(p->jh[p->i], cx, NULL));
    ASYNCIO_END(p->co);
    return 0;
}

static void producer_drop(void *state)
{
    producer *p = state;
    for (int k = 0; k < CONSUMERS; k++)
        if (p->jh[k] != NULL)
            asyncio_join_handle_drop(p->jh[k]);
    asyncio_broadcast_sender_drop(p->tx);
    asyncio_watch_sender_drop(p->wtx);
}

static const asyncio_task_vtable producer_vt = {producer_poll, producer_drop, NULL,
                                                sizeof(producer), 0};

static void test_primitive_futures_under_the_runtime_deliver_everything_in_order(void **state)
{
    (void)state;
    for (unsigned long r = 0; r < support_scale(20); r++) {
        prim_shared sh = {0};
        assert_ok(asyncio_barrier_new(&sh.barrier, CONSUMERS));
        assert_ok(asyncio_once_cell_new(&sh.cell, sizeof(int)));
        producer init = {.co = ASYNCIO_CORO_INIT, .sh = &sh};
        asyncio_broadcast_receiver *rx0;
        asyncio_watch_receiver *wrx0;
        int zero = 0;
        /* capacity >= the messages: no consumer can lag, so each must see all of them */
        assert_ok(asyncio_broadcast_channel(&init.tx, &rx0, sizeof(int), 256));
        assert_ok(asyncio_watch_channel(&init.wtx, &wrx0, sizeof(int), &zero));
        asyncio_runtime *rt = support_runtime_new(NULL);
        assert_ok(asyncio_runtime_block_on(rt, &producer_vt, &init, NULL));
        assert_ok(asyncio_runtime_free(rt));
        asyncio_broadcast_receiver_drop(rx0);
        asyncio_watch_receiver_drop(wrx0);
        assert_int_equal(atomic_load(&sh.leaders), 1);
        assert_int_equal(atomic_load(&sh.inits), 1);
        assert_ok(asyncio_barrier_free(sh.barrier));
        assert_ok(asyncio_once_cell_free(sh.cell));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_select_first_ready_wins_and_losers_are_dropped),
        support_test(test_select_polls_only_the_woken_child),
        support_test(test_select_error_of_the_first_child_is_the_result),
        support_test(test_race_skips_failures_until_one_succeeds),
        support_test(test_race_where_all_fail_returns_the_last_error),
        support_test(test_select_init_rejects_bad_input_and_drops_the_children),
        support_test(test_join_all_collects_every_result),
        support_test(test_try_join_first_error_drops_the_rest),
        support_test(test_combinator_moved_to_another_waker_wakes_only_the_new_one),
        support_test(test_combinator_moved_without_memory_for_the_new_waker_polls_itself_again),
        support_test(
            test_select_moved_between_wakers_while_woken_from_another_thread_loses_no_wake),
        support_test(test_every_combinator_dropped_at_every_step_releases_everything),
        support_test(test_select_and_timeout_allocate_nothing_per_poll),
        support_test(test_select_dropped_mid_flight_loses_no_permit_and_no_message),
        support_test(test_join_all_woken_from_other_threads_collects_every_value),
        support_test(test_timeout_over_a_read_times_out_when_nothing_arrives),
        support_test(test_timeout_over_a_read_returns_the_read_when_it_comes_first),
        support_test(test_timeout_and_select_over_a_read_dropped_at_every_step_lose_no_byte),
        support_test(test_select_of_a_sleep_and_a_cancelled_token_wakes_on_cancel),
        support_test(test_await_macros_resume_after_each_await_and_yield),
        support_test(test_await_ok_ends_the_coroutine_on_an_error),
        support_test(test_await_suspend_sleeps_until_the_hand_polled_leaf_wakes_it),
        support_test(test_rwlock_futures_complete_and_dropped_mid_flight_hand_the_lock_on),
        support_test(test_barrier_wait_future_elects_one_leader_and_dropped_withdraws_its_arrival),
        support_test(test_broadcast_recv_future_dropped_mid_flight_loses_no_message),
        support_test(test_watch_changed_future_dropped_mid_flight_marks_nothing_seen),
        support_test(
            test_once_cell_future_keeps_the_turn_past_the_combinator_and_waiters_get_the_value),
        support_test(test_once_cell_future_dropped_at_every_step_passes_the_turn_on),
        support_test(test_primitive_futures_allocate_nothing_per_poll),
        support_test(test_primitive_futures_under_the_runtime_deliver_everything_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

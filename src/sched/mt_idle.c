/*
 * Multi-thread runtime: the idle protocol (who searches, who sleeps, whom
 * to wake) and the per-worker parker. The protocols are stated in
 * sched/mt.h; docs/scheduler.md walks through them.
 */
#include "internal.h"
#include "sched/mt.h"
#include "util/alloc.h"

#define SEARCH_ONE  ((uint32_t)1)
#define UNPARK_ONE  ((uint32_t)1 << 16)
#define SEARCH_MASK (UNPARK_ONE - 1)

static uint32_t num_searching(uint32_t s)
{
    return s & SEARCH_MASK;
}

static uint32_t num_unparked(uint32_t s)
{
    return s >> 16;
}

/* ---- idle protocol --------------------------------------------------------- */

int asyncio__idle_init(asyncio__idle *idle, uint32_t workers)
{
    idle->workers = workers;
    idle->nsleepers = 0;
    /* Every worker starts unparked (it parks on its own when it finds nothing). */
    atomic_init(&idle->state, workers * UNPARK_ONE);
    idle->sleepers = asyncio__calloc(workers, sizeof *idle->sleepers);
    if (idle->sleepers == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&idle->lock);
    if (rc < 0)
        asyncio__free(idle->sleepers);
    return rc;
}

void asyncio__idle_destroy(asyncio__idle *idle)
{
    asyncio__mutex_destroy(&idle->lock);
    asyncio__free(idle->sleepers);
}

bool asyncio__idle_to_searching(asyncio__idle *idle)
{
    /*
     * At most half the workers search, so a burst of work does not wake
     * every thread. The check and the increment are separate: a race may
     * let one extra searcher through, which is harmless (Tokio's bound).
     */
    uint32_t s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
    if (2 * num_searching(s) >= idle->workers)
        return false;
    atomic_fetch_add_explicit(&idle->state, SEARCH_ONE, memory_order_seq_cst);
    return true;
}

bool asyncio__idle_from_searching(asyncio__idle *idle)
{
    /* seq_cst RMW: see "Idle protocol" in mt.h; a notify (seq_cst load) may follow. */
    uint32_t prev = atomic_fetch_sub_explicit(&idle->state, SEARCH_ONE, memory_order_seq_cst);
    ASYNCIO_CHECK(num_searching(prev) > 0);
    return num_searching(prev) == 1;
}

/* Nobody is searching and someone sleeps: a sleeper should be woken for new work. */
static bool should_notify(uint32_t s, uint32_t workers)
{
    return num_searching(s) == 0 && num_unparked(s) < workers;
}

int32_t asyncio__idle_worker_to_notify(mt_runtime *rt)
{
    asyncio__idle *idle = &rt->idle;
    /*
     * A seq_cst load, after the push's seq_cst store (mt.h "Idle protocol"):
     * the push just made and a concurrent park cannot both miss each other.
     * A load, not an RMW, keeps the line shared between busy workers.
     */
    uint32_t s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
    if (!should_notify(s, idle->workers))
        return -1;
    asyncio__mutex_lock(&idle->lock);
    s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
    int32_t idx = -1;
    if (should_notify(s, idle->workers) && idle->nsleepers > 0) {
        /* The woken worker starts out searching: it was counted for it here. */
        atomic_fetch_add_explicit(&idle->state, SEARCH_ONE | UNPARK_ONE, memory_order_seq_cst);
        idx = (int32_t)idle->sleepers[--idle->nsleepers];
        mt_worker *w = &rt->workers[idx];
        w->sleeping = false;
        w->woke_searching = true;
    }
    asyncio__mutex_unlock(&idle->lock);
    return idx;
}

bool asyncio__idle_to_parked(mt_runtime *rt, mt_worker *w)
{
    asyncio__idle *idle = &rt->idle;
    asyncio__mutex_lock(&idle->lock);
    uint32_t dec = UNPARK_ONE | (w->searching ? SEARCH_ONE : 0);
    uint32_t prev = atomic_fetch_sub_explicit(&idle->state, dec, memory_order_seq_cst);
    ASYNCIO_CHECK(num_unparked(prev) > 0);
    ASYNCIO_CHECK(!w->sleeping && idle->nsleepers < idle->workers);
    idle->sleepers[idle->nsleepers++] = w->index;
    w->sleeping = true;
    w->woke_searching = false;
    asyncio__mutex_unlock(&idle->lock);
    bool last = w->searching && num_searching(prev) == 1;
    w->searching = false;
    /* The caller's queue checks are seq_cst loads after this seq_cst RMW (mt.h). */
    return last;
}

/* Removes `w` from the sleepers stack (lock held). */
static void remove_sleeper(asyncio__idle *idle, mt_worker *w)
{
    for (uint32_t i = 0; i < idle->nsleepers; i++) {
        if (idle->sleepers[i] == w->index) {
            idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
            return;
        }
    }
    ASYNCIO_CHECK(!"a sleeping worker is on the sleepers stack");
}

bool asyncio__idle_unpark_worker(mt_runtime *rt, mt_worker *w)
{
    asyncio__idle *idle = &rt->idle;
    asyncio__mutex_lock(&idle->lock);
    bool was = w->sleeping;
    if (was) {
        remove_sleeper(idle, w);
        w->sleeping = false;
        w->woke_searching = false;
        atomic_fetch_add_explicit(&idle->state, UNPARK_ONE, memory_order_seq_cst);
    }
    asyncio__mutex_unlock(&idle->lock);
    return was;
}

/* Test hook (tests/test_mt.c): runs just before leave_park's locked section. */
void (*asyncio__idle_leave_park_hook)(mt_runtime *rt, mt_worker *w);

bool asyncio__idle_leave_park(mt_runtime *rt, mt_worker *w, bool must_leave, bool *searching)
{
    if (ASYNCIO_UNLIKELY(asyncio__idle_leave_park_hook != NULL))
        asyncio__idle_leave_park_hook(rt, w);
    /*
     * One locked section decides both "was I woken?" and "take me off the
     * sleepers": between two such sections a notifier could pop `w` and
     * count it searching, and a worker that then failed to unpark itself
     * would never give that count back (no sleeper woken again: a hang).
     * Tokio's transition_from_parked: is_searching = !unpark_worker_by_id.
     */
    asyncio__idle *idle = &rt->idle;
    asyncio__mutex_lock(&idle->lock);
    bool left = true;
    if (!w->sleeping) {
        /* A notifier (or a pinned push) took us off the stack and counted us. */
        *searching = w->woke_searching;
    } else if (must_leave) {
        remove_sleeper(idle, w);
        w->sleeping = false;
        *searching = false;
        atomic_fetch_add_explicit(&idle->state, UNPARK_ONE, memory_order_seq_cst);
    } else {
        left = false; /* spurious: still a sleeper, park again */
    }
    w->woke_searching = false;
    asyncio__mutex_unlock(&idle->lock);
    return left;
}

uint32_t asyncio__idle_num_unparked(asyncio__idle *idle)
{
    return num_unparked(atomic_load_explicit(&idle->state, memory_order_seq_cst));
}

/* ---- parker ---------------------------------------------------------------- */

int asyncio__parker_init(asyncio__parker *p)
{
    atomic_init(&p->state, PARK_EMPTY);
    int rc = asyncio__mutex_init(&p->lock);
    if (rc < 0)
        return rc;
    if ((rc = asyncio__cond_init(&p->cond)) < 0)
        asyncio__mutex_destroy(&p->lock);
    return rc;
}

void asyncio__parker_destroy(asyncio__parker *p)
{
    asyncio__cond_destroy(&p->cond);
    asyncio__mutex_destroy(&p->lock);
}

/* Consumes a pending NOTIFIED; true if there was one. */
static bool take_notified(asyncio__parker *p)
{
    int expected = PARK_NOTIFIED;
    /* acq_rel: pairs with unpark's exchange (its pushes are visible after we return). */
    return atomic_compare_exchange_strong_explicit(&p->state, &expected, PARK_EMPTY,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* EMPTY -> `to`; false if an unpark came first (consumed: the park returns). */
static bool enter_sleep(asyncio__parker *p, int to)
{
    int expected = PARK_EMPTY;
    if (atomic_compare_exchange_strong_explicit(&p->state, &expected, to, memory_order_acq_rel,
                                                memory_order_acquire))
        return true;
    ASYNCIO_CHECK(expected == PARK_NOTIFIED);
    atomic_store_explicit(&p->state, PARK_EMPTY, memory_order_release);
    return false;
}

/*
 * We hold the driver flag: sleep in the poller. idle: every worker is
 * parked, so a paused clock may jump to the next timer.
 */
static void park_driver(mt_runtime *rt, mt_worker *w)
{
    asyncio__parker *p = &w->parker;
    if (!enter_sleep(p, PARK_DRIVER))
        return;
    bool idle = asyncio__idle_num_unparked(&rt->idle) == 0;
    /*
     * Our own ring's completions must reach ring 0 while we sleep there (its
     * eventfd: a park on our ring before this one turned it off); with work
     * already there, the turn must not block.
     */
    bool ring_work = asyncio__comp_worker_watch(&rt->base.driver.comp);
    asyncio__mt_turn_driver(rt, w, ring_work ? 0 : -1, idle && !ring_work);
    /* acq_rel: consumes an unpark that came while we slept (or none). */
    atomic_exchange_explicit(&p->state, PARK_EMPTY, memory_order_acq_rel);
}

static void park_cond(asyncio__parker *p)
{
    asyncio__mutex_lock(&p->lock);
    if (enter_sleep(p, PARK_COND)) {
        do
            asyncio__cond_wait(&p->cond, &p->lock);
        while (!take_notified(p)); /* spurious wake-ups go back to sleep */
    }
    asyncio__mutex_unlock(&p->lock);
}

/*
 * A worker with a ring of its own sleeps on it: its completions end the
 * sleep at once (one wake-up, where the condition variable needed ring 0's
 * holder to hear of them and wake us), and so does unpark.
 */
static void park_ring(mt_runtime *rt, asyncio__parker *p)
{
    if (!enter_sleep(p, PARK_RING))
        return;
    asyncio__comp_driver *cd = &rt->base.driver.comp;
    while (atomic_load_explicit(&p->state, memory_order_acquire) != PARK_NOTIFIED &&
           !asyncio__comp_worker_pending(cd))
        asyncio__comp_worker_wait(cd);
    /* acq_rel: consumes an unpark that came while we slept (or none). */
    atomic_exchange_explicit(&p->state, PARK_EMPTY, memory_order_acq_rel);
}

void asyncio__parker_park(mt_runtime *rt, mt_worker *w)
{
    asyncio__parker *p = &w->parker;
    if (take_notified(p))
        return;
    /* acquire: pairs with the release when the last holder gave the driver back. */
    if (!atomic_exchange_explicit(&rt->driver_busy, true, memory_order_acquire)) {
        park_driver(rt, w);
        atomic_store_explicit(&rt->driver_busy, false, memory_order_release);
        return;
    }
    if (asyncio__comp_worker_can_wait(&rt->base.driver.comp))
        park_ring(rt, p);
    else
        park_cond(p);
}

void asyncio__parker_unpark(mt_runtime *rt, mt_worker *w)
{
    asyncio__parker *p = &w->parker;
    /* acq_rel: our queue pushes happen-before the woken worker's take_notified. */
    switch (atomic_exchange_explicit(&p->state, PARK_NOTIFIED, memory_order_acq_rel)) {
    case PARK_EMPTY:    /* running or about to park: its next park returns at once */
    case PARK_NOTIFIED: /* already told */
        return;
    case PARK_COND:
        /* Lock/unlock: the sleeper is inside cond_wait (or will see NOTIFIED first). */
        asyncio__mutex_lock(&p->lock);
        asyncio__mutex_unlock(&p->lock);
        asyncio__cond_signal(&p->cond);
        return;
    case PARK_DRIVER:
        asyncio__driver_unpark(&rt->base.driver);
        return;
    case PARK_RING:
        asyncio__comp_ring_wake(&rt->base.driver.comp, w->index);
        return;
    }
}

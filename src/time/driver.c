/*
 * Time driver (see driver.h for the clock and firing protocol) and the
 * public clock controls of include/asyncio/time.h: asyncio_time_now_ms,
 * pause, resume, advance.
 *
 * One driver turn, as the runtime's driver (src/reactor/driver.c) runs it:
 *   1. park_timeout  how long the poller may block: until the next
 *                    expiration (real clock), 0 (paused clock, timers
 *                    pending), or as requested (no timers).
 *   2. (the poller waits and I/O is dispatched)
 *   3. process       auto-advance a paused, idle clock; advance the wheel
 *                    to now; fire what came due.
 */
#include "time/driver.h"

#include <limits.h>

#include "asyncio/time.h"
#include "internal.h"
#include "platform/platform.h"
#include "reactor/driver.h"

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The lock is logically mutable: const readers of the clock still take it. */
static void lock(const asyncio__time_driver *t)
{
    asyncio__mutex_lock(&((asyncio__time_driver *)t)->lock);
}

static void unlock(const asyncio__time_driver *t)
{
    asyncio__mutex_unlock(&((asyncio__time_driver *)t)->lock);
}

/* ---- clock -------------------------------------------------------------- */

static uint64_t now_locked(const asyncio__time_driver *t)
{
    uint64_t real;

    if (t->paused)
        return t->base_ms;
    real = asyncio__clock_now_ms();
    /* CLOCK_MONOTONIC never goes back; the guard only keeps this total. */
    return real >= t->origin_ms ? sat_add(t->base_ms, real - t->origin_ms) : t->base_ms;
}

uint64_t asyncio__time_now(const asyncio__time_driver *t)
{
    lock(t);
    uint64_t now = now_locked(t);
    unlock(t);
    return now;
}

uint64_t asyncio__time_deadline_after(const asyncio__time_driver *t, uint64_t duration_ms)
{
    lock(t);
    uint64_t now = now_locked(t);
    uint64_t d = sat_add(t->paused ? now : sat_add(now, 1), duration_ms);
    unlock(t);
    return d;
}

/* Publishes wheel.elapsed (lock held). Release: pairs with asyncio__sleep_armed_not_due. */
static void publish_elapsed(asyncio__time_driver *t)
{
    atomic_store_explicit(&t->elapsed_pub, t->wheel.elapsed, memory_order_release);
}

int asyncio__time_driver_init(asyncio__time_driver *t, bool start_paused)
{
    int rc = asyncio__mutex_init(&t->lock);
    if (rc < 0)
        return rc;
    asyncio__wheel_init(&t->wheel, 0);
    atomic_init(&t->elapsed_pub, 0);
    t->base_ms = 0;
    t->origin_ms = asyncio__clock_now_ms();
    t->paused = start_paused;
    t->wake_if_before = 0;
    t->active = 0;
    t->fired = 0;
    t->unpark = NULL;
    return 0;
}

/* ---- firing --------------------------------------------------------------- */

/*
 * Pops fired timers one at a time and wakes each. No saved `next` pointer:
 * a wake may cancel a timer that is still on `fired` (another worker's
 * cancel unlinks it under the lock). Each timer is unlinked and its waker
 * taken out under the lock; the wake runs unlocked.
 */
static void fire_all(asyncio__time_driver *t, asyncio__list *fired, bool wake)
{
    asyncio__list *node;

    for (;;) {
        lock(t);
        node = asyncio__list_first(fired);
        if (node == NULL) {
            unlock(t);
            return;
        }
        asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
        asyncio__timer *tm = ASYNCIO_CONTAINER_OF(e, asyncio__timer, entry);
        asyncio__list_remove(node); /* unregistered before anyone can see it fire */
        t->active--;
        if (wake)
            t->fired++;
        asyncio_waker w = tm->waker;
        tm->waker = ASYNCIO_WAKER_EMPTY; /* the timer gives its waker up */
        unlock(t);
        if (wake)
            asyncio_waker_wake(&w); /* by value */
        else
            asyncio_waker_drop(&w);
    }
}

void asyncio__time_driver_close(asyncio__time_driver *t)
{
    asyncio__list left;

    /* Every deadline is <= UINT64_MAX: this unlinks every remaining timer. */
    asyncio__list_init(&left);
    lock(t);
    asyncio__wheel_advance(&t->wheel, UINT64_MAX, &left);
    publish_elapsed(t);
    unlock(t);
    /* Nothing else runs now (teardown): no lock needed to orphan them. */
    asyncio__list *node;
    while ((node = asyncio__list_first(&left)) != NULL) {
        asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
        asyncio__timer *tm = ASYNCIO_CONTAINER_OF(e, asyncio__timer, entry);
        asyncio__list_remove(node);
        asyncio_waker_drop(&tm->waker);
        asyncio__sleep_orphan(tm); /* its sleep forgets this driver */
    }
    ASYNCIO_ASSERT(asyncio__wheel_is_empty(&t->wheel));
    asyncio__mutex_destroy(&t->lock);
}

/* The poller timeout for a turn (lock held); see driver.h. */
static int park_timeout_locked(asyncio__time_driver *t, int requested_ms)
{
    uint64_t next = asyncio__wheel_next_expiration(&t->wheel);
    uint64_t now, wait;

    if (next == UINT64_MAX)
        return requested_ms; /* no timers */
    if (t->paused)
        return 0; /* the paused clock moves in process(), never by waiting */
    now = now_locked(t);
    /*
     * Whole ms are enough to never wake early: the clock truncates, so the
     * real time is already >= now, and now + (next - now) ms reaches next.
     */
    wait = next > now ? next - now : 0;
    if (wait > (uint64_t)INT_MAX)
        wait = (uint64_t)INT_MAX;
    if (requested_ms >= 0 && (uint64_t)requested_ms < wait)
        return requested_ms;
    return (int)wait;
}

int asyncio__time_park_timeout(asyncio__time_driver *t, int requested_ms)
{
    return asyncio__time_park_timeout_ex(t, requested_ms, true);
}

bool asyncio__time_is_paused(const asyncio__time_driver *t)
{
    lock(t);
    bool paused = t->paused;
    unlock(t);
    return paused;
}

int asyncio__time_park_timeout_ex(asyncio__time_driver *t, int requested_ms, bool runtime_idle)
{
    lock(t);
    int timeout = park_timeout_locked(t, requested_ms);
    if (timeout == 0 && requested_ms != 0 && t->paused && !runtime_idle)
        timeout = requested_ms; /* paused, others busy: wait for them (they unpark us) */
    /*
     * Record when this turn wakes by itself, so a timer registered meanwhile
     * with an earlier deadline unparks it (a relative timeout counts from
     * now; the paused clock and "no timeout" wake for any new timer).
     */
    if (timeout == 0)
        t->wake_if_before = 0;
    else if (timeout < 0 || t->paused)
        t->wake_if_before = UINT64_MAX;
    else
        t->wake_if_before = sat_add(now_locked(t), (uint64_t)timeout);
    unlock(t);
    return timeout;
}

/*
 * Auto-advance: a paused clock with nothing else to do jumps to the next
 * expiration. The wheel's next expiration may be a cascade point before any
 * deadline, so keep jumping until something fires (at most a few cascades
 * per level). Appends the fired entries to `fired`.
 */
static void auto_advance(asyncio__time_driver *t, asyncio__list *fired)
{
    while (asyncio__list_empty(fired) && !asyncio__wheel_is_empty(&t->wheel)) {
        uint64_t next = asyncio__wheel_next_expiration(&t->wheel);
        if (next > t->base_ms)
            t->base_ms = next;
        asyncio__wheel_advance(&t->wheel, t->base_ms, fired);
    }
    publish_elapsed(t);
}

void asyncio__time_process(asyncio__time_driver *t, bool idle)
{
    asyncio__list fired;

    asyncio__list_init(&fired);
    lock(t);
    t->wake_if_before = 0; /* the turn no longer blocks */
    asyncio__wheel_advance(&t->wheel, now_locked(t), &fired);
    publish_elapsed(t);
    if (t->paused && idle)
        auto_advance(t, &fired);
    unlock(t);
    fire_all(t, &fired, true);
}

/* ---- timers ----------------------------------------------------------------- */

void asyncio__time_counts(asyncio__time_driver *t, uint64_t *active, uint64_t *fired)
{
    lock(t);
    *active = t->active;
    *fired = t->fired;
    unlock(t);
}

void asyncio__timer_init(asyncio__timer *tm)
{
    asyncio__timer_entry_init(&tm->entry);
    tm->waker = ASYNCIO_WAKER_EMPTY;
}

void asyncio__timer_cancel(asyncio__time_driver *t, asyncio__timer *tm)
{
    lock(t);
    if (asyncio__timer_entry_linked(&tm->entry)) {
        asyncio__wheel_cancel(&t->wheel, &tm->entry);
        t->active--;
    }
    asyncio_waker w = tm->waker;
    tm->waker = ASYNCIO_WAKER_EMPTY;
    unlock(t);
    asyncio_waker_drop(&w); /* outside the lock: a drop may run arbitrary code */
}

bool asyncio__timer_elapsed(asyncio__time_driver *t, uint64_t deadline)
{
    lock(t);
    bool elapsed = deadline <= t->wheel.elapsed;
    unlock(t);
    return elapsed;
}

bool asyncio__timer_register(asyncio__time_driver *t, asyncio__timer *tm, uint64_t deadline,
                             const asyncio_waker *w)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    lock(t);
    if (deadline <= t->wheel.elapsed) {
        unlock(t);
        return true;
    }
    if (!asyncio__timer_entry_linked(&tm->entry)) {
        asyncio__wheel_insert(&t->wheel, &tm->entry, deadline);
        t->active++;
    }
    if (!asyncio_waker_will_wake(&tm->waker, w)) {
        old = tm->waker;
        tm->waker = asyncio_waker_clone(w);
    }
    bool unpark = deadline < t->wake_if_before && t->unpark != NULL;
    if (unpark)
        t->wake_if_before = 0; /* one unpark is enough */
    unlock(t);
    asyncio_waker_drop(&old);
    if (unpark)
        asyncio_poller_waker_wake(t->unpark); /* the blocked turn would wake too late */
    return false;
}

void asyncio__timer_reset(asyncio__time_driver *t, asyncio__timer *tm, uint64_t deadline)
{
    lock(t);
    bool waiting = asyncio__timer_entry_linked(&tm->entry);
    if (waiting) {
        asyncio__wheel_cancel(&t->wheel, &tm->entry);
        asyncio__wheel_insert(&t->wheel, &tm->entry, deadline);
    }
    bool unpark = waiting && deadline < t->wake_if_before && t->unpark != NULL;
    if (unpark)
        t->wake_if_before = 0;
    unlock(t);
    if (unpark)
        asyncio_poller_waker_wake(t->unpark);
}

asyncio__time_driver *asyncio__time_current(void)
{
    asyncio__driver *d = asyncio__driver_current();
    return d != NULL ? &d->time : NULL;
}

/* ---- public clock controls ------------------------------------------------- */

uint64_t asyncio_time_now_ms(void)
{
    asyncio__time_driver *t = asyncio__time_current();
    return t != NULL ? asyncio__time_now(t) : 0;
}

int asyncio_time_pause(void)
{
    asyncio__time_driver *t = asyncio__time_current();

    if (t == NULL)
        return ASYNCIO_EINVAL;
    lock(t);
    bool was_paused = t->paused;
    if (!was_paused) {
        t->base_ms = now_locked(t);
        t->paused = true;
    }
    unlock(t);
    return was_paused ? ASYNCIO_EINVAL : 0;
}

int asyncio_time_resume(void)
{
    asyncio__time_driver *t = asyncio__time_current();

    if (t == NULL)
        return ASYNCIO_EINVAL;
    lock(t);
    bool was_paused = t->paused;
    if (was_paused) {
        /* Continue from the paused time: base_ms now maps to this clock reading. */
        t->origin_ms = asyncio__clock_now_ms();
        t->paused = false;
    }
    unlock(t);
    return was_paused ? 0 : ASYNCIO_EINVAL;
}

int asyncio_time_advance(uint64_t ms)
{
    asyncio__time_driver *t = asyncio__time_current();

    if (t == NULL)
        return ASYNCIO_EINVAL;
    lock(t);
    bool paused = t->paused;
    if (paused)
        t->base_ms = sat_add(t->base_ms, ms);
    unlock(t);
    return paused ? 0 : ASYNCIO_EINVAL;
}

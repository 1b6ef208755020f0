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

/* ---- clock -------------------------------------------------------------- */

uint64_t asyncio__time_now(const asyncio__time_driver *t)
{
    uint64_t real;

    if (t->paused)
        return t->base_ms;
    real = asyncio__clock_now_ms();
    /* CLOCK_MONOTONIC never goes back; the guard only keeps this total. */
    return real >= t->origin_ms ? sat_add(t->base_ms, real - t->origin_ms) : t->base_ms;
}

uint64_t asyncio__time_deadline_after(const asyncio__time_driver *t, uint64_t duration_ms)
{
    uint64_t now = asyncio__time_now(t);
    return sat_add(t->paused ? now : sat_add(now, 1), duration_ms);
}

int asyncio__time_driver_init(asyncio__time_driver *t, bool start_paused)
{
    asyncio__wheel_init(&t->wheel, 0);
    t->base_ms = 0;
    t->origin_ms = asyncio__clock_now_ms();
    t->paused = start_paused;
    return 0;
}

/* ---- firing --------------------------------------------------------------- */

/*
 * Pops fired timers one at a time and wakes each. No saved `next` pointer:
 * a wake may cancel a timer that is still on `fired`.
 */
static void fire_all(asyncio__list *fired, bool wake)
{
    asyncio__list *node;

    while ((node = asyncio__list_first(fired)) != NULL) {
        asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
        asyncio__timer *tm = ASYNCIO_CONTAINER_OF(e, asyncio__timer, entry);
        asyncio__list_remove(node); /* unregistered before anyone can see it fire */
        if (wake)
            asyncio_waker_wake(&tm->waker); /* by value: the timer gives its waker up */
        else
            asyncio_waker_drop(&tm->waker);
    }
}

void asyncio__time_driver_close(asyncio__time_driver *t)
{
    asyncio__list left;

    /* Every deadline is <= UINT64_MAX: this unlinks every remaining timer. */
    asyncio__list_init(&left);
    asyncio__wheel_advance(&t->wheel, UINT64_MAX, &left);
    fire_all(&left, false);
    ASYNCIO_ASSERT(asyncio__wheel_is_empty(&t->wheel));
}

int asyncio__time_park_timeout(asyncio__time_driver *t, int requested_ms)
{
    uint64_t next = asyncio__wheel_next_expiration(&t->wheel);
    uint64_t now, wait;

    if (next == UINT64_MAX)
        return requested_ms; /* no timers */
    if (t->paused)
        return 0; /* the paused clock moves in process(), never by waiting */
    now = asyncio__time_now(t);
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
}

void asyncio__time_process(asyncio__time_driver *t, bool idle)
{
    asyncio__list fired;

    asyncio__list_init(&fired);
    asyncio__wheel_advance(&t->wheel, asyncio__time_now(t), &fired);
    if (t->paused && idle)
        auto_advance(t, &fired);
    fire_all(&fired, true);
}

/* ---- timers ----------------------------------------------------------------- */

void asyncio__timer_init(asyncio__timer *tm)
{
    asyncio__timer_entry_init(&tm->entry);
    tm->waker = ASYNCIO_WAKER_EMPTY;
}

void asyncio__timer_cancel(asyncio__time_driver *t, asyncio__timer *tm)
{
    if (asyncio__timer_entry_linked(&tm->entry))
        asyncio__wheel_cancel(&t->wheel, &tm->entry);
    asyncio_waker_drop(&tm->waker);
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

    if (t == NULL || t->paused)
        return ASYNCIO_EINVAL;
    t->base_ms = asyncio__time_now(t);
    t->paused = true;
    return 0;
}

int asyncio_time_resume(void)
{
    asyncio__time_driver *t = asyncio__time_current();

    if (t == NULL || !t->paused)
        return ASYNCIO_EINVAL;
    /* Continue from the paused time: base_ms now maps to this clock reading. */
    t->origin_ms = asyncio__clock_now_ms();
    t->paused = false;
    return 0;
}

int asyncio_time_advance(uint64_t ms)
{
    asyncio__time_driver *t = asyncio__time_current();

    if (t == NULL || !t->paused)
        return ASYNCIO_EINVAL;
    t->base_ms = sat_add(t->base_ms, ms);
    return 0;
}

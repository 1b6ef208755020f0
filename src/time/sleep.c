/*
 * asyncio_sleep: the leaf timer future (interval and timeout are built on
 * it).
 *
 * States (asyncio_sleep.state):
 *   NEW_RELATIVE  initialised with a duration (in `deadline`), never polled:
 *                 not bound to any driver.
 *   NEW_ABSOLUTE  initialised with (or reset to) an absolute deadline, never
 *                 polled: not bound.
 *   BOUND         polled at least once: `driver` is the time driver of the
 *                 runtime of the first poll and `deadline` is absolute. The
 *                 timer is registered (entry linked, waker stored) exactly
 *                 while a poll returned PENDING and the driver has not fired
 *                 it yet; it is elapsed once the driver's processed time
 *                 (wheel.elapsed) reaches the deadline.
 *   ORPHANED      its driver was closed while it was registered
 *                 (asyncio__sleep_orphan): polls return EINVAL, drop and
 *                 reset touch nothing.
 *
 * The sleep embeds its timer as the public asyncio_timer_record, which is
 * the driver's asyncio__timer itself (a typedef), so no conversion is needed.
 */
#include "asyncio/time.h"

#include "internal.h"
#include "time/driver.h"

enum sleep_state {
    SLEEP_NEW_RELATIVE = 0,
    SLEEP_NEW_ABSOLUTE = 1,
    SLEEP_BOUND = 2,
    SLEEP_ORPHANED = 3,
};

static asyncio__timer *timer_of(asyncio_sleep *s)
{
    return &s->timer;
}

void asyncio_sleep_init(asyncio_sleep *s, uint64_t duration_ms)
{
    asyncio__timer_init(timer_of(s));
    s->driver = NULL;
    s->deadline = duration_ms;
    s->state = SLEEP_NEW_RELATIVE;
}

void asyncio_sleep_init_until(asyncio_sleep *s, uint64_t deadline_ms)
{
    asyncio_sleep_init(s, deadline_ms);
    s->state = SLEEP_NEW_ABSOLUTE;
}

/*
 * Binds the sleep to the driver `t` at its first poll (fixing a relative
 * deadline); later polls must come from the same runtime.
 */
static int bind(asyncio_sleep *s, asyncio__time_driver *t)
{
    if (t == NULL)
        return ASYNCIO_EINVAL; /* polled outside a runtime */
    ASYNCIO_CHECK(s->state <= SLEEP_ORPHANED && "asyncio_sleep initialised");
    switch ((enum sleep_state)s->state) {
    case SLEEP_ORPHANED:
        return ASYNCIO_EINVAL; /* its runtime is gone */
    case SLEEP_BOUND:
        /* Registered (or was) in `driver`: a different runtime cannot take it over. */
        return s->driver == t ? 0 : ASYNCIO_EINVAL;
    case SLEEP_NEW_RELATIVE:
        /* The duration counts from the first poll. */
        s->deadline = asyncio__time_deadline_after(t, s->deadline);
        break;
    case SLEEP_NEW_ABSOLUTE:
        /* Already absolute. */
        break;
    }
    s->driver = t;
    s->state = SLEEP_BOUND;
    return 0;
}

int asyncio_sleep_poll(asyncio_sleep *s, asyncio_context *cx)
{
    asyncio__time_driver *t = asyncio__time_current();
    asyncio__timer *tm = timer_of(s);
    int rc;

    if (cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    if ((rc = bind(s, t)) < 0)
        return rc;
    /* Waiting: register once, and keep the latest task's waker. */
    if (!asyncio__timer_register(t, tm, s->deadline, cx->waker))
        return ASYNCIO_PENDING;
    /*
     * Elapsed. The timer may still be on the due list or the driver's fired
     * list (not woken yet): unregister it so that no stale wake follows.
     */
    asyncio__timer_cancel(t, tm);
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING; /* out of budget: the task was woken, next poll is ready */
    return 0;
}

bool asyncio__sleep_armed_not_due(const asyncio_sleep *s)
{
    const asyncio__time_driver *t = s->driver;
    /* Acquire: pairs with publish_elapsed; a timer fires only after elapsed passed it. */
    return s->state == SLEEP_BOUND && t != NULL &&
           atomic_load_explicit(&t->elapsed_pub, memory_order_acquire) < s->deadline;
}

void asyncio_sleep_reset(asyncio_sleep *s, uint64_t deadline_ms)
{
    if (s->state != SLEEP_BOUND) {
        s->deadline = deadline_ms;
        s->state = SLEEP_NEW_ABSOLUTE;
        return;
    }
    /* Registered <=> a task is waiting; it keeps its waker and moves with the deadline. */
    s->deadline = deadline_ms;
    asyncio__timer_reset(s->driver, timer_of(s), deadline_ms);
}

void asyncio__sleep_orphan(asyncio__timer *tm)
{
    asyncio_sleep *s = ASYNCIO_CONTAINER_OF(tm, asyncio_sleep, timer);
    s->state = SLEEP_ORPHANED;
    s->driver = NULL;
}

void asyncio_sleep_drop(asyncio_sleep *s)
{
    asyncio__timer *tm = timer_of(s);

    if (s->state == SLEEP_BOUND)
        asyncio__timer_cancel(s->driver, tm);
    else
        asyncio_waker_drop(&tm->waker); /* never registered: nothing else to undo */
}

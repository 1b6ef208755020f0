/*
 * asyncio_interval: ticks every period, built on an embedded asyncio_sleep
 * (Tokio's Interval and MissedTickBehavior, in C).
 *
 * The first tick completes at the first poll, at S = the runtime's now; the
 * sleep then waits for S + P. Each time the sleep completes, its deadline is
 * the tick's scheduled time D; the next deadline is chosen from D, the
 * clock's now and the policy (next_tick below), and the sleep is reset to
 * it. Nothing is registered between two polls unless a task is waiting.
 */
#include "asyncio/time.h"

#include "internal.h"
#include "time/driver.h"

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int asyncio_interval_init(asyncio_interval *iv, uint64_t period_ms, asyncio_missed_tick policy)
{
    asyncio_sleep_init_until(&iv->sleep, 0);
    iv->period = 0; /* 0 marks a failed init: every poll returns EINVAL */
    iv->policy = ASYNCIO_MISSED_TICK_BURST;
    iv->started = false;
    if (period_ms == 0 || (unsigned)policy > ASYNCIO_MISSED_TICK_SKIP)
        return ASYNCIO_EINVAL;
    iv->period = period_ms;
    iv->policy = (uint8_t)policy;
    return 0;
}

/* The deadline after the tick scheduled at `due`, seen at `now` (>= due). */
static uint64_t next_tick(const asyncio_interval *iv, uint64_t due, uint64_t now)
{
    uint64_t p = iv->period;

    ASYNCIO_CHECK(iv->policy <= ASYNCIO_MISSED_TICK_SKIP);
    /* On time (or late by no more than wake-up latency): stay on schedule. */
    if (now <= sat_add(due, ASYNCIO_INTERVAL_LATE_MS))
        return sat_add(due, p);
    switch ((asyncio_missed_tick)iv->policy) {
    case ASYNCIO_MISSED_TICK_BURST:
        /* The missed ticks are due already: they complete back to back. */
        return sat_add(due, p);
    case ASYNCIO_MISSED_TICK_DELAY:
        /* A new schedule starting now. */
        return sat_add(now, p);
    case ASYNCIO_MISSED_TICK_SKIP:
        /* The first point of the original schedule (due + k * p) after now. */
        return sat_add(now, p - (now - due) % p);
    }
    return sat_add(due, p); /* unreachable: checked above */
}

/* The first tick: immediate (budget permitting), at the runtime's now. */
static int first_tick(asyncio_interval *iv, asyncio_context *cx, uint64_t *tick_ms)
{
    asyncio__time_driver *t = asyncio__time_current();
    uint64_t now;

    if (t == NULL)
        return ASYNCIO_EINVAL; /* polled outside a runtime */
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    now = asyncio__time_now(t);
    asyncio_sleep_init_until(&iv->sleep, sat_add(now, iv->period));
    iv->started = true;
    if (tick_ms != NULL)
        *tick_ms = now;
    return 0;
}

int asyncio_interval_poll_tick(asyncio_interval *iv, asyncio_context *cx, uint64_t *tick_ms)
{
    uint64_t due, now;
    int rc;

    if (iv->period == 0 || cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    if (!iv->started)
        return first_tick(iv, cx, tick_ms);
    if ((rc = asyncio_sleep_poll(&iv->sleep, cx)) != 0)
        return rc; /* PENDING, or EINVAL (outside / another runtime) */
    /* The sleep completed: it is bound and its deadline is this tick's time. */
    due = iv->sleep.deadline;
    now = asyncio__time_now((const asyncio__time_driver *)iv->sleep.driver);
    asyncio_sleep_reset(&iv->sleep, next_tick(iv, due, now));
    if (tick_ms != NULL)
        *tick_ms = due;
    return 0;
}

void asyncio_interval_drop(asyncio_interval *iv)
{
    asyncio_sleep_drop(&iv->sleep);
}

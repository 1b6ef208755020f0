/*
 * asyncio_timeout: a future with a time limit, built on an embedded
 * asyncio_sleep (Tokio's Timeout, in C).
 *
 * Each poll polls the inner future first, so a result that is ready wins
 * over a deadline that passed at the same time; only then the sleep.
 * Cooperative budget: if the inner future used up the task's budget during
 * this poll (it had some before and has none after), the sleep is polled
 * without a budget, so a busy inner future cannot keep the timeout from
 * firing (the same rule as Tokio).
 *
 * Per poll, the sleep is only polled when it may have something to say:
 * at the first poll, when the task's waker changed, or once the driver's
 * processed time reached the deadline (asyncio__sleep_armed_not_due: one
 * atomic load). Otherwise the timer is still registered with this very
 * waker, and polling it would take the time driver's lock for nothing.
 * `armed` records that waker (a copy of its two words, not a reference).
 *
 * The inner future is an asyncio_future the timeout owns, or (the older
 * asyncio_timeout_init form) a borrowed poll function with inner.state as
 * its future: `fn` is then set and the timeout never drops it. Finished:
 * inner is empty and fn NULL.
 */
#include "asyncio/time.h"

#include "internal.h"
#include "time/driver.h"

void asyncio_timeout_init_future(asyncio_timeout *t, asyncio_future inner, uint64_t duration_ms)
{
    asyncio_sleep_init(&t->sleep, duration_ms);
    t->inner = inner;
    t->fn = NULL;
    t->armed = ASYNCIO_WAKER_EMPTY;
}

void asyncio_timeout_at_init(asyncio_timeout *t, asyncio_future inner, uint64_t deadline_ms)
{
    asyncio_sleep_init_until(&t->sleep, deadline_ms);
    t->inner = inner;
    t->fn = NULL;
    t->armed = ASYNCIO_WAKER_EMPTY;
}

void asyncio_timeout_init(asyncio_timeout *t, asyncio_future_poll_fn poll, void *fut,
                          uint64_t duration_ms)
{
    asyncio_sleep_init(&t->sleep, duration_ms);
    t->inner = ASYNCIO_FUTURE_EMPTY;
    t->inner.state = fut;
    t->fn = poll;
    t->armed = ASYNCIO_WAKER_EMPTY;
}

/* True if a runtime-made context has no budget left (see asyncio_coop_proceed). */
static bool budget_spent(const asyncio_context *cx)
{
    return cx->coop && cx->budget == 0;
}

/* The timeout has its result: the inner future goes (if it is ours), the timer too. */
static void finish(asyncio_timeout *t)
{
    t->fn = NULL;
    t->armed = ASYNCIO_WAKER_EMPTY;
    asyncio_future_drop(&t->inner);
    t->inner = ASYNCIO_FUTURE_EMPTY;
    asyncio_sleep_drop(&t->sleep);
}

int asyncio_timeout_poll(asyncio_timeout *t, asyncio_context *cx)
{
    bool had_budget;
    int rc;

    if (t == NULL || cx == NULL || cx->waker == NULL ||
        (t->fn == NULL && asyncio_future_is_empty(&t->inner)))
        return ASYNCIO_EINVAL;
    had_budget = !budget_spent(cx);
    rc = t->fn != NULL ? t->fn(t->inner.state, cx) : asyncio_future_poll(&t->inner, cx);
    if (rc != ASYNCIO_PENDING) {
        finish(t);
        return rc; /* the inner future finished first */
    }
    if (t->armed.vtable != NULL && asyncio_waker_will_wake(&t->armed, cx->waker) &&
        asyncio__sleep_armed_not_due(&t->sleep))
        return ASYNCIO_PENDING; /* registered with this waker, not due: nothing to do */
    if (had_budget && budget_spent(cx)) {
        asyncio_context unconstrained = *cx;
        unconstrained.coop = false;
        rc = asyncio_sleep_poll(&t->sleep, &unconstrained);
    } else {
        rc = asyncio_sleep_poll(&t->sleep, cx);
    }
    if (rc == ASYNCIO_PENDING) {
        t->armed = *cx->waker; /* the sleep stored a clone of it (or had one) */
        return rc;
    }
    finish(t);
    return rc == 0 ? ASYNCIO_ETIMEDOUT : rc;
}

void asyncio_timeout_drop(asyncio_timeout *t)
{
    if (t == NULL)
        return;
    t->fn = NULL;
    t->armed = ASYNCIO_WAKER_EMPTY;
    asyncio_future_drop(&t->inner); /* empty for the borrowed form: nothing happens */
    asyncio_sleep_drop(&t->sleep);
}

static int timeout_future_poll(void *state, asyncio_context *cx, void *out)
{
    (void)out;
    return asyncio_timeout_poll(state, cx);
}

static void timeout_future_drop(void *state)
{
    asyncio_timeout_drop(state);
}

static const asyncio_future_vtable g_timeout_vt = {timeout_future_poll, timeout_future_drop};

asyncio_future asyncio_timeout_future(asyncio_timeout *t)
{
    return asyncio_future_make(&g_timeout_vt, t, NULL);
}

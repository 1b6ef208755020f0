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
 */
#include "asyncio/time.h"

#include "internal.h"

void asyncio_timeout_init(asyncio_timeout *t, asyncio_future_poll_fn poll, void *fut,
                          uint64_t duration_ms)
{
    asyncio_sleep_init(&t->sleep, duration_ms);
    t->poll = poll;
    t->fut = fut;
}

/* True if a runtime-made context has no budget left (see asyncio_coop_proceed). */
static bool budget_spent(const asyncio_context *cx)
{
    return cx->coop && cx->budget == 0;
}

int asyncio_timeout_poll(asyncio_timeout *t, asyncio_context *cx)
{
    bool had_budget;
    int rc;

    if (t->poll == NULL || cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    had_budget = !budget_spent(cx);
    rc = t->poll(t->fut, cx);
    if (rc != ASYNCIO_PENDING)
        return rc; /* the inner future finished first */
    if (had_budget && budget_spent(cx)) {
        asyncio_context unconstrained = *cx;
        unconstrained.coop = false;
        rc = asyncio_sleep_poll(&t->sleep, &unconstrained);
    } else {
        rc = asyncio_sleep_poll(&t->sleep, cx);
    }
    return rc == 0 ? ASYNCIO_ETIMEDOUT : rc;
}

void asyncio_timeout_drop(asyncio_timeout *t)
{
    asyncio_sleep_drop(&t->sleep);
}

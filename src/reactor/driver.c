/*
 * Driver glue: one park turn over the poller, the I/O driver, the signal
 * self-pipe and the time driver (see driver.h for the phases).
 */
#include "reactor/driver.h"

#include "internal.h"
#include "platform/thread.h"
#include "platform/zero_copy.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

#include <limits.h>

#define SPARE_EMPTY ((int64_t)-1)

/* Takes the spare splice pipe into fds; false if there is none. */
static bool spare_take(asyncio__driver *d, int fds[2])
{
    int64_t v = atomic_exchange_explicit(&d->spare_pipe, SPARE_EMPTY, memory_order_acquire);
    if (v == SPARE_EMPTY)
        return false;
    fds[0] = (int)(v >> 32);
    fds[1] = (int)(uint32_t)v;
    return true;
}

#define DEFAULT_EVENT_CAPACITY 256

int asyncio__driver_init(asyncio__driver *d, const asyncio_runtime_options *opts, bool coop)
{
    size_t cap = opts != NULL && opts->event_capacity ? opts->event_capacity
                                                      : DEFAULT_EVENT_CAPACITY;
    *d = (asyncio__driver){0};
    atomic_init(&d->spare_pipe, SPARE_EMPTY);
    d->capacity = cap;
    int rc = ASYNCIO_ENOMEM;
    d->events = asyncio__calloc(cap, sizeof *d->events);
    if (d->events == NULL)
        return rc;
    if ((rc = asyncio__poller_new_hinted(&d->poller, coop ? ASYNCIO__POLLER_COOP : 0)) < 0)
        goto fail_events;
    if ((rc = asyncio_poller_waker_new(d->poller, ASYNCIO__UNPARK_TOKEN, &d->unpark)) < 0)
        goto fail_poller;
    if ((rc = asyncio__io_driver_init(&d->io, d->poller)) < 0)
        goto fail_waker;
    if ((rc = asyncio__comp_driver_init(&d->comp, d->poller, ASYNCIO__UNPARK_TOKEN)) < 0)
        goto fail_io;
    if ((rc = asyncio__time_driver_init(&d->time, opts != NULL && opts->start_paused)) < 0)
        goto fail_comp;
    d->time.unpark = d->unpark; /* a timer added on another thread can end a blocked turn */
    return 0;

fail_comp:
    asyncio__comp_driver_close(&d->comp);
fail_io:
    asyncio__io_driver_close(&d->io);
fail_waker:
    asyncio_poller_waker_free(d->unpark);
fail_poller:
    asyncio_poller_free(d->poller);
fail_events:
    asyncio__free(d->events);
    return rc;
}

int asyncio__driver_close(asyncio__driver *d)
{
    int rc = asyncio__io_driver_close(&d->io);
    if (rc < 0)
        return rc;
    asyncio__comp_driver_close(&d->comp); /* cancels and reaps what closed streams left in flight */
    asyncio__signal_driver_detach(d);
    int spare[2];
    if (spare_take(d, spare))
        asyncio__zc_pipe_close(spare);
    asyncio__time_driver_close(&d->time);
    asyncio_poller_waker_free(d->unpark);
    rc = asyncio_poller_free(d->poller);
    ASYNCIO_CHECK(rc == 0); /* every user source of ours was released above */
    asyncio__free(d->events);
    return 0;
}

int asyncio__driver_pipe_take(asyncio__driver *d, int fds[2])
{
    if (d != NULL && spare_take(d, fds))
        return 0;
    return asyncio__zc_pipe_open(fds);
}

void asyncio__driver_pipe_give(asyncio__driver *d, int fds[2])
{
    if (fds[0] < 0)
        return;
    int64_t expect = SPARE_EMPTY;
    int64_t v = (int64_t)((uint64_t)(uint32_t)fds[0] << 32 | (uint32_t)fds[1]);
    if (d != NULL && atomic_compare_exchange_strong_explicit(&d->spare_pipe, &expect, v,
                                                             memory_order_release,
                                                             memory_order_relaxed)) {
        fds[0] = fds[1] = -1;
        return;
    }
    asyncio__zc_pipe_close(fds);
}

int asyncio__driver_park(asyncio__driver *d, int timeout_ms)
{
    return asyncio__driver_park_ex(d, timeout_ms, timeout_ms != 0);
}

/*
 * The poller's wait failed. Whatever the error, the thread backs off (1, 2,
 * 4 ... 64 ms in a row of failures, never longer than the wait it asked
 * for) so a persistent failure cannot spin a worker at 100% CPU, and timers
 * that fell due meanwhile still fire. A shortage that passes (ENOMEM,
 * ENOBUFS, EAGAIN, EBUSY: the kernel or allocator had no room this time)
 * is reported as a turn with no event, so the scheduler simply turns again;
 * any other error is returned (current-thread block_on gives it to its
 * caller: docs/io-driver.md).
 */
static int wait_failed(asyncio__driver *d, int rc, int timeout)
{
    unsigned shift = d->wait_failures < 6 ? d->wait_failures : 6;
    if (d->wait_failures < UINT_MAX)
        d->wait_failures++;
    uint32_t backoff = 1u << shift;
    if (timeout >= 0 && (uint32_t)timeout < backoff)
        backoff = (uint32_t)timeout;
    if (backoff > 0)
        asyncio__sleep_ms(backoff);
    asyncio__time_process(&d->time, false);
    bool transient = rc == ASYNCIO_ENOMEM || rc == ASYNCIO_ENOBUFS || rc == ASYNCIO_EAGAIN ||
                     rc == ASYNCIO_EBUSY;
    return transient ? 0 : rc;
}

int asyncio__driver_park_ex(asyncio__driver *d, int timeout_ms, bool runtime_idle)
{
    int timeout = asyncio__time_park_timeout_ex(&d->time, timeout_ms, runtime_idle);
    size_t n = 0;
    int rc = asyncio_poller_wait(d->poller, d->events, d->capacity, timeout, &n);
    if (rc < 0)
        return wait_failed(d, rc, timeout);
    d->wait_failures = 0;
    bool io_woke = false;
    int dispatched = 0;
    /* Completions (comp.h) first: the wait that took them also reported the unpark token. */
    if (asyncio__comp_enabled(&d->comp))
        dispatched += (int)asyncio__comp_dispatch(&d->comp);
    for (size_t i = 0; i < n; i++) {
        if (d->events[i].token == ASYNCIO__UNPARK_TOKEN) {
            io_woke = true; /* its only job was to end the wait */
            continue;
        }
        if (d->events[i].token == ASYNCIO__SIGNAL_TOKEN) {
            asyncio__signal_dispatch(d);
            io_woke = true;
            continue;
        }
        if (d->events[i].token < ASYNCIO__COMP_RING_TOKEN(ASYNCIO__COMP_MAX_RINGS)) {
            /* A worker's ring has completion work: that worker turns it (comp.h "Rings"). */
            asyncio__comp_ring_event(&d->comp, (uint32_t)(d->events[i].token -
                                                          ASYNCIO__COMP_RING_TOKEN(0)));
            io_woke = true;
            continue;
        }
        asyncio__io_dispatch(&d->io, &d->events[i]);
        io_woke = true;
        dispatched++;
    }
    asyncio__io_maintain(&d->io);
    /*
     * A paused clock jumps to the next timer only when the scheduler had
     * nothing to run (it says so: runtime_idle) and no event arrived. The
     * effective timeout is 0 whenever a paused clock has timers, so the
     * caller tests its request, not the effective timeout.
     */
    asyncio__time_process(&d->time, runtime_idle && !io_woke);
    return dispatched;
}

void asyncio__driver_flush(asyncio__driver *d)
{
    if (asyncio__comp_enabled(&d->comp))
        (void)asyncio__poller_comp_flush(d->poller);
}

void asyncio__driver_unpark(asyncio__driver *d)
{
    asyncio_poller_waker_wake(d->unpark);
}

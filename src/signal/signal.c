/*
 * Signal listeners (include/asyncio/signal.h).
 *
 * Global state, guarded by g_lock: how many listeners each signal has (the
 * first installs the handler, the last restores the old disposition) and
 * the list of listeners currently waiting. Delivery counts live in the
 * platform layer (written by the handler).
 *
 * Wake-up path: handler -> count++ and a byte in the self-pipe -> every
 * runtime's poller has the pipe registered (edge, token
 * ASYNCIO__SIGNAL_TOKEN) through an fd source -> the driver that sees it
 * calls asyncio__signal_dispatch: drain, rearm, and wake *every* waiting
 * listener (each re-checks its own counts). Waking all is what makes one
 * drain serve listeners in every runtime.
 *
 * A listener that is about to wait links itself, then re-checks the counts,
 * so a delivery that lands between its first check and the link is never
 * lost: either the re-check sees it, or the dispatch (which runs after the
 * byte is written, i.e. after the count was bumped) finds it linked.
 */
#include "asyncio/signal.h"

#include "internal.h"
#include "platform/signal_os.h"
#include "platform/thread.h"
#include "reactor/driver.h"
#include "util/list.h"

#define SIG_SLOTS 65

static asyncio__mutex g_lock = ASYNCIO__MUTEX_INIT;
static asyncio__list g_waiters = {&g_waiters, &g_waiters};
static int g_listeners[SIG_SLOTS];

static asyncio_signal *signal_of(asyncio__list *n)
{
    return ASYNCIO_CONTAINER_OF(n, asyncio_signal, node);
}

/* Lock held: undoes the first `n` listener registrations of s. */
static void unlisten_locked(asyncio_signal *s, int n)
{
    for (int i = 0; i < n; i++) {
        int sig = s->signals[i];
        ASYNCIO_CHECK(g_listeners[sig] > 0);
        if (--g_listeners[sig] == 0)
            asyncio__signal_restore(sig);
    }
}

int asyncio_signal_init(asyncio_signal *s, const int *signals, int count)
{
    if (s == NULL || signals == NULL || count <= 0 || count > ASYNCIO_SIGNAL_MAX)
        return ASYNCIO_EINVAL;
    *s = (asyncio_signal){.count = count, .waker = ASYNCIO_WAKER_EMPTY};
    for (int i = 0; i < count; i++) {
        if (!asyncio__signal_catchable(signals[i]))
            return ASYNCIO_EINVAL;
        s->signals[i] = signals[i];
    }
    int rc = asyncio__signal_pipe();
    if (rc < 0)
        return rc;
    asyncio__mutex_lock(&g_lock);
    int done = 0;
    for (; done < count; done++) {
        int sig = s->signals[done];
        if (g_listeners[sig] == 0 && (rc = asyncio__signal_install(sig)) < 0)
            break;
        g_listeners[sig]++;
        s->seen[done] = asyncio__signal_deliveries(sig);
    }
    if (rc < 0)
        unlisten_locked(s, done);
    asyncio__mutex_unlock(&g_lock);
    if (rc < 0)
        return rc;
    s->listening = true;
    return 0;
}

/* Returns a signal delivered since it was last reported, or 0. */
static int take_delivery(asyncio_signal *s)
{
    for (int i = 0; i < s->count; i++) {
        uint64_t n = asyncio__signal_deliveries(s->signals[i]);
        if (n != s->seen[i]) {
            s->seen[i] = n; /* several deliveries coalesce into one report */
            return s->signals[i];
        }
    }
    return 0;
}

/* A delivery was taken: report it. */
static int delivered(int sig, int *signo)
{
    if (signo != NULL)
        *signo = sig;
    return 0;
}

int asyncio_signal_poll(asyncio_signal *s, asyncio_context *cx, int *signo)
{
    if (s == NULL || cx == NULL || cx->waker == NULL || !s->listening)
        return ASYNCIO_EINVAL;
    asyncio__driver *d = asyncio__driver_current();
    if (d == NULL)
        return ASYNCIO_EINVAL;
    int sig = take_delivery(s);
    if (sig != 0)
        return delivered(sig, signo);
    int rc = asyncio__signal_driver_attach(d);
    if (rc < 0)
        return rc;
    asyncio__mutex_lock(&g_lock);
    asyncio_waker_store(&s->waker, cx->waker);
    if (!asyncio__list_linked(&s->node)) /* a listener is movable until this first link */
        asyncio__list_push_back(&g_waiters, &s->node);
    asyncio__mutex_unlock(&g_lock);
    sig = take_delivery(s); /* a delivery before we were linked */
    return sig != 0 ? delivered(sig, signo) : ASYNCIO_PENDING;
}

void asyncio_signal_drop(asyncio_signal *s)
{
    if (s == NULL || !s->listening)
        return;
    asyncio__mutex_lock(&g_lock);
    asyncio__list_remove(&s->node);
    asyncio_waker w = s->waker;
    s->waker = ASYNCIO_WAKER_EMPTY;
    unlisten_locked(s, s->count);
    s->listening = false;
    asyncio__mutex_unlock(&g_lock);
    asyncio_waker_drop(&w);
}

/* ------------------------------------------------------------------------ */
/* Driver side                                                               */

/* Under g_lock: workers of one multi-thread runtime may attach concurrently. */
int asyncio__signal_driver_attach(asyncio__driver *d)
{
    asyncio__mutex_lock(&g_lock);
    int rc = 0;
    if (!d->signal_attached) {
        int fd = asyncio__signal_pipe();
        rc = fd;
        if (fd >= 0) {
            asyncio_fd_source_init(&d->signal_src, fd);
            rc = asyncio_poller_register(d->poller, &d->signal_src.base, ASYNCIO__SIGNAL_TOKEN,
                                         ASYNCIO_READABLE, ASYNCIO_EDGE);
        }
        if (rc >= 0) {
            d->signal_attached = true;
            rc = 0;
        }
    }
    asyncio__mutex_unlock(&g_lock);
    return rc;
}

void asyncio__signal_driver_detach(asyncio__driver *d)
{
    if (!d->signal_attached)
        return;
    asyncio_poller_deregister(d->poller, &d->signal_src.base);
    d->signal_attached = false;
}

void asyncio__signal_dispatch(asyncio__driver *d)
{
    asyncio__signal_pipe_drain();
    /* Take every waiter under the lock; wake them outside it. */
    asyncio__list woken;
    asyncio__list_init(&woken);
    asyncio__mutex_lock(&g_lock);
    /* Under g_lock: signal_src was written by attach, maybe on another worker. */
    asyncio_poller_rearm(d->poller, &d->signal_src.base, ASYNCIO_READABLE);
    if (!asyncio__list_empty(&g_waiters)) {
        woken.next = g_waiters.next;
        woken.prev = g_waiters.prev;
        woken.next->prev = &woken;
        woken.prev->next = &woken;
        asyncio__list_init(&g_waiters);
    }
    while (!asyncio__list_empty(&woken)) {
        asyncio_signal *s = signal_of(woken.next);
        asyncio__list_remove(&s->node);
        asyncio_waker w = s->waker;
        s->waker = ASYNCIO_WAKER_EMPTY;
        /* Waking under g_lock would invert with a drop on another thread; take a copy. */
        asyncio__mutex_unlock(&g_lock);
        asyncio_waker_wake(&w);
        asyncio__mutex_lock(&g_lock);
    }
    asyncio__mutex_unlock(&g_lock);
}

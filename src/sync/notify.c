/*
 * asyncio_notify: wake one or all waiting tasks (Tokio's Notify).
 *
 * State (guarded by n->lock, except that `calls` is also read without it):
 *   waiters  queued notified futures, FIFO.
 *   permit   a notify_one that found nobody waiting (at most one is kept);
 *            the next notified future to poll consumes it.
 *   calls    notify_waiters calls so far. A future samples it at _init and
 *            completes once it differs: a notify_waiters issued between
 *            _init and the first poll is not missed.
 *
 * Notified states (asyncio_notified.state):
 *   NF_INIT     initialised, never polled: not linked.
 *   NF_WAITING  polled, pending: linked in n->waiters, or in the private
 *               list of a notify_waiters call that is waking it, or already
 *               unlinked by a notifier that set `notified`.
 *   NF_DONE     a poll returned 0 (or it was dropped).
 * `notified` says who settled a waiting future: NOTIFIED_ONE (picked by
 * notify_one: if it is dropped before observing it, the notification is
 * passed on) or NOTIFIED_ALL (notify_waiters).
 *
 * notify_waiters moves the whole queue to a list on its stack under the
 * lock, then settles and wakes its nodes in batches (unlocking between
 * batches). Futures queued after the move are not woken by that call. A
 * future dropped or completed meanwhile unlinks itself from that list under
 * the same lock, which is fine: the list head lives until the call returns.
 */
#include <stdatomic.h>

#include "sync/sync_int.h"

#include "util/alloc.h"

enum notified_state {
    NF_INIT = 0,
    NF_WAITING = 1,
    NF_DONE = 2,
};

enum notified_by {
    NOTIFIED_NONE = 0,
    NOTIFIED_ONE = 1,
    NOTIFIED_ALL = 2,
};

struct asyncio_notify {
    asyncio__mutex lock;
    asyncio__list waiters; /* asyncio_notified.link, FIFO */
    /*
     * Written only under the lock; read at _init without it. Relaxed is
     * enough: only the value matters, and coherence guarantees that an _init
     * ordered before a notify_waiters reads the older value.
     */
    _Atomic uint64_t calls;
    bool permit;
};

static asyncio_notified *notified_of(asyncio__list *n)
{
    return ASYNCIO_CONTAINER_OF(n, asyncio_notified, link);
}

int asyncio_notify_new(asyncio_notify **out)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_notify *n = asyncio__malloc(sizeof *n);
    if (n == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&n->lock);
    if (rc != 0) {
        asyncio__free(n);
        return rc;
    }
    asyncio__list_init(&n->waiters);
    atomic_init(&n->calls, 0);
    n->permit = false;
    *out = n;
    return 0;
}

int asyncio_notify_free(asyncio_notify *n)
{
    if (n == NULL)
        return 0;
    asyncio__mutex_lock(&n->lock);
    bool busy = !asyncio__list_empty(&n->waiters);
    asyncio__mutex_unlock(&n->lock);
    if (busy)
        return ASYNCIO_EBUSY;
    asyncio__mutex_destroy(&n->lock);
    asyncio__free(n);
    return 0;
}

/* notify_one under the lock: settles the oldest waiter (waker into *w) or stores the permit. */
static void notify_one_locked(asyncio_notify *n, asyncio_waker *w)
{
    asyncio__list *first = asyncio__list_first(&n->waiters);
    if (first == NULL) {
        n->permit = true;
        return;
    }
    asyncio_notified *f = notified_of(first);
    asyncio__list_remove(first);
    f->notified = NOTIFIED_ONE;
    *w = f->waker;
    f->waker = ASYNCIO_WAKER_EMPTY;
}

void asyncio_notify_one(asyncio_notify *n)
{
    if (n == NULL)
        return;
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&n->lock);
    notify_one_locked(n, &w);
    asyncio__mutex_unlock(&n->lock);
    asyncio_waker_wake(&w);
}

/* Moves every node of `from` to the empty list `to`. */
static void list_move_all(asyncio__list *from, asyncio__list *to)
{
    if (asyncio__list_empty(from))
        return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    asyncio__list_init(from);
}

void asyncio_notify_waiters(asyncio_notify *n)
{
    if (n == NULL)
        return;
    asyncio__list local;
    asyncio__list_init(&local);
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);

    asyncio__mutex_lock(&n->lock);
    atomic_store_explicit(&n->calls, atomic_load_explicit(&n->calls, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    list_move_all(&n->waiters, &local);
    asyncio__list *node;
    while ((node = asyncio__list_first(&local)) != NULL) {
        if (asyncio__wake_batch_full(&b)) {
            asyncio__mutex_unlock(&n->lock);
            asyncio__wake_batch_wake(&b);
            asyncio__mutex_lock(&n->lock);
            continue;
        }
        asyncio_notified *f = notified_of(node);
        asyncio__list_remove(node);
        f->notified = NOTIFIED_ALL;
        asyncio__wake_batch_push(&b, &f->waker);
    }
    asyncio__mutex_unlock(&n->lock);
    asyncio__wake_batch_wake(&b);
}

void asyncio_notified_init(asyncio_notified *f, asyncio_notify *n)
{
    asyncio__list_node_init(&f->link);
    f->notify = n;
    f->calls = n != NULL ? atomic_load_explicit(&n->calls, memory_order_relaxed) : 0;
    f->waker = ASYNCIO_WAKER_EMPTY;
    f->notified = NOTIFIED_NONE;
    f->state = NF_INIT;
}

/* Under the lock: has this future been notified (by either kind, or the stored permit)? */
static bool take_notification_locked(asyncio_notified *f)
{
    asyncio_notify *n = f->notify;
    if (f->notified != NOTIFIED_NONE)
        return true;
    if (atomic_load_explicit(&n->calls, memory_order_relaxed) != f->calls)
        return true; /* a notify_waiters since _init */
    if (f->state == NF_INIT && n->permit) {
        n->permit = false;
        return true;
    }
    return false;
}

int asyncio_notified_poll(asyncio_notified *f, asyncio_context *cx)
{
    if (f == NULL || cx == NULL || f->notify == NULL || f->state > NF_DONE)
        return ASYNCIO_EINVAL;
    if (f->state == NF_DONE)
        return 0;
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    asyncio_notify *n = f->notify;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    int rc = ASYNCIO_PENDING;
    asyncio__mutex_lock(&n->lock);
    if (take_notification_locked(f)) {
        /* Notified: leave whatever list we are in (a notify_waiters' local one, say). */
        asyncio__list_remove(&f->link);
        old = f->waker;
        f->waker = ASYNCIO_WAKER_EMPTY;
        f->state = NF_DONE;
        rc = 0;
    } else if (f->state == NF_INIT) { /* first poll: queue */
        asyncio__list_push_back(&n->waiters, &f->link);
        f->waker = asyncio_waker_clone(cx->waker);
        f->state = NF_WAITING;
    } else if (!asyncio_waker_will_wake(&f->waker, cx->waker)) { /* queued: refresh the waker */
        old = f->waker;
        f->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__mutex_unlock(&n->lock);
    asyncio_waker_drop(&old);
    return rc;
}

void asyncio_notified_drop(asyncio_notified *f)
{
    if (f == NULL)
        return;
    if (f->state != NF_WAITING) {
        f->state = NF_DONE;
        return;
    }
    asyncio_notify *n = f->notify;
    asyncio_waker forward = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&n->lock);
    asyncio__list_remove(&f->link);
    if (f->notified == NOTIFIED_ONE)
        notify_one_locked(n, &forward); /* picked but never observed: pass it on */
    asyncio_waker old = f->waker;
    f->waker = ASYNCIO_WAKER_EMPTY;
    f->state = NF_DONE;
    asyncio__mutex_unlock(&n->lock);
    asyncio_waker_wake(&forward);
    asyncio_waker_drop(&old);
}

/*
 * The lifetime counts and the waiting receivers of the broadcast and watch
 * channels (the protocol is in sync_int.h; each channel keeps its own data
 * and change rule under the same lock).
 */
#include "sync/sync_int.h"

int asyncio__fanout_init(asyncio__fanout *f)
{
    int rc = asyncio__mutex_init(&f->lock);
    if (rc != 0)
        return rc;
    asyncio__list_init(&f->waiters);
    f->senders = 1;
    f->receivers = 0;
    f->refs = 1;
    return 0;
}

void asyncio__fanout_destroy(asyncio__fanout *f)
{
    ASYNCIO_CHECK(asyncio__list_empty(&f->waiters));
    asyncio__mutex_destroy(&f->lock);
}

void asyncio__fanout_add_receiver_locked(asyncio__fanout *f, asyncio__fanout_waiter *w)
{
    asyncio__list_node_init(&w->link);
    w->waker = ASYNCIO_WAKER_EMPTY;
    f->receivers++;
    f->refs++;
}

/* Under the lock: drops one reference; true if it was the last (free after unlocking). */
static bool unref_locked(asyncio__fanout *f)
{
    ASYNCIO_CHECK(f->refs > 0); /* refcount underflow */
    return --f->refs == 0;
}

void asyncio__fanout_sender_clone(asyncio__fanout *f)
{
    asyncio__mutex_lock(&f->lock);
    ASYNCIO_CHECK(f->senders > 0 && f->senders < SIZE_MAX);
    f->senders++;
    f->refs++;
    asyncio__mutex_unlock(&f->lock);
}

bool asyncio__fanout_sender_drop(asyncio__fanout *f, void (*on_close)(asyncio__fanout *f))
{
    asyncio__mutex_lock(&f->lock);
    ASYNCIO_CHECK(f->senders > 0); /* refcount underflow */
    if (--f->senders == 0) {
        if (on_close != NULL)
            on_close(f);
        /*
         * Closed: waiting receivers learn it once they look. Our reference is
         * kept until they are woken: the wake unlocks between batches, and
         * every receiver could be dropped meanwhile.
         */
        asyncio__fanout_wake_all_and_unlock(f);
        asyncio__mutex_lock(&f->lock);
    }
    bool free_now = unref_locked(f);
    asyncio__mutex_unlock(&f->lock);
    return free_now;
}

bool asyncio__fanout_receiver_drop(asyncio__fanout *f, asyncio__fanout_waiter *w)
{
    asyncio__mutex_lock(&f->lock);
    asyncio__list_remove(&w->link); /* a wait left pending: the waker goes below */
    asyncio_waker old = w->waker;
    w->waker = ASYNCIO_WAKER_EMPTY;
    f->receivers--;
    bool free_now = unref_locked(f);
    asyncio__mutex_unlock(&f->lock);
    asyncio_waker_drop(&old);
    return free_now;
}

size_t asyncio__fanout_receivers(asyncio__fanout *f)
{
    asyncio__mutex_lock(&f->lock);
    size_t n = f->receivers;
    asyncio__mutex_unlock(&f->lock);
    return n;
}

void asyncio__fanout_wake_all_and_unlock(asyncio__fanout *f)
{
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);
    asyncio__list *node;
    while ((node = asyncio__list_first(&f->waiters)) != NULL) {
        if (asyncio__wake_batch_full(&b)) { /* never wake under the lock: unlock, wake, go on */
            asyncio__mutex_unlock(&f->lock);
            asyncio__wake_batch_wake(&b);
            asyncio__mutex_lock(&f->lock);
            continue;
        }
        asyncio__list_remove(node);
        asyncio__wake_batch_push(&b,
                                 &ASYNCIO_CONTAINER_OF(node, asyncio__fanout_waiter, link)->waker);
    }
    asyncio__mutex_unlock(&f->lock);
    asyncio__wake_batch_wake(&b);
}

asyncio_waker asyncio__fanout_wait_locked(asyncio__fanout *f, asyncio__fanout_waiter *w,
                                          const asyncio_waker *waker)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    if (!asyncio_waker_will_wake(&w->waker, waker)) {
        old = w->waker;
        w->waker = asyncio_waker_clone(waker);
    }
    if (!asyncio__list_linked(&w->link))
        asyncio__list_push_back(&f->waiters, &w->link);
    return old;
}

void asyncio__fanout_unwait(asyncio__fanout *f, asyncio__fanout_waiter *w)
{
    asyncio__mutex_lock(&f->lock);
    asyncio__list_remove(&w->link);
    asyncio_waker old = w->waker;
    w->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(&f->lock);
    asyncio_waker_drop(&old);
}

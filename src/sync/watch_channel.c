/*
 * Watch channel: one value, a version number, receivers that wait for the
 * version to move past the one they saw (Tokio's watch).
 *
 * One allocation holds the channel and its value slot; every sender
 * pointer is the channel's address (asyncio_watch_sender is never
 * defined; the casts below are the only conversions). Receivers are
 * objects of their own, each holding a reference on the channel.
 *
 * State word (ch->state): (version << 1) | CLOSED. CLOSED is set when the
 * last sender goes and never cleared; the version counts sends (64 bits:
 * it never wraps in practice). Every change of the word happens under
 * ch->fan.lock, together with the value it describes; the word is read without
 * the lock by the change checks (has_changed, the fast path of changed()),
 * which read no value, so a stale answer only costs a trip to the slow
 * path, which re-checks under the lock.
 *
 * Waiting: a changed() that finds nothing new links its receiver into
 * ch->fan.waiters and stores the waker there, all under the lock after a
 * re-check of the word; a send or the last sender's drop changes the word
 * under the same lock, then unlinks every waiting receiver and wakes it
 * after unlocking (in batches). So no change is missed between the check
 * and the wait.
 *
 * Lifetime: the lock, the waiters and the counts are the asyncio__fanout
 * this channel shares with the broadcast channel (sync_int.h, fanout.c):
 * `refs` counts sender references plus receivers (under the lock); the
 * channel is freed when it reaches 0.
 */
#include <stdalign.h>
#include <string.h>

#include "asyncio/watch_channel.h"

#include "sync/sync_int.h"
#include "util/alloc.h"

#define CLOSED ((uint64_t)1)

typedef struct wchan {
    _Atomic uint64_t state; /* (version << 1) | CLOSED, see above */
    asyncio__fanout fan;    /* the lock, the waiting receivers, the counts (sync_int.h) */
    size_t elem_size;
    alignas(max_align_t) unsigned char value[]; /* elem_size bytes, under lock */
} wchan;

struct asyncio_watch_receiver {
    wchan *ch;
    uint64_t seen;               /* version last marked seen (the receiver's owner only) */
    asyncio__fanout_waiter wait; /* in ch->fan.waiters while a changed() waits */
};

static wchan *tx_ch(asyncio_watch_sender *tx)
{
    return (wchan *)(void *)tx;
}

static uint64_t version_of(uint64_t s)
{
    return s >> 1;
}

/* relaxed: under the lock, the word's only writer */
static uint64_t state_locked(wchan *ch)
{
    return atomic_load_explicit(&ch->state, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */

static asyncio_watch_receiver *receiver_new_locked(wchan *ch, uint64_t seen)
{
    asyncio_watch_receiver *rx = asyncio__malloc(sizeof *rx);
    if (rx == NULL)
        return NULL;
    rx->ch = ch;
    rx->seen = seen;
    asyncio__fanout_add_receiver_locked(&ch->fan, &rx->wait);
    return rx;
}

int asyncio_watch_channel(asyncio_watch_sender **tx, asyncio_watch_receiver **rx, size_t elem_size,
                          const void *initial)
{
    if (tx == NULL || rx == NULL || initial == NULL || elem_size == 0 ||
        elem_size > SIZE_MAX - sizeof(wchan))
        return ASYNCIO_EINVAL;
    wchan *ch = asyncio__malloc(sizeof *ch + elem_size);
    if (ch == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__fanout_init(&ch->fan);
    if (rc != 0) {
        asyncio__free(ch);
        return rc;
    }
    atomic_init(&ch->state, 0);
    ch->elem_size = elem_size;
    memcpy(ch->value, initial, elem_size);
    asyncio_watch_receiver *r = receiver_new_locked(ch, 0); /* nobody else sees ch yet */
    if (r == NULL) {
        asyncio__fanout_destroy(&ch->fan);
        asyncio__free(ch);
        return ASYNCIO_ENOMEM;
    }
    *tx = (asyncio_watch_sender *)(void *)ch;
    *rx = r;
    return 0;
}

static void wchan_free(wchan *ch)
{
    asyncio__fanout_destroy(&ch->fan);
    asyncio__free(ch);
}

asyncio_watch_sender *asyncio_watch_sender_clone(asyncio_watch_sender *tx)
{
    wchan *ch = tx_ch(tx);
    ASYNCIO_CHECK(ch != NULL);
    asyncio__fanout_sender_clone(&ch->fan);
    return tx;
}

/* Under the lock, when the last sender goes: the word says closed before anyone is woken. */
static void mark_closed(asyncio__fanout *f)
{
    wchan *ch = ASYNCIO_CONTAINER_OF(f, wchan, fan);
    /* relaxed: the word changes only under this lock; waiters re-check under it */
    atomic_fetch_or_explicit(&ch->state, CLOSED, memory_order_relaxed);
}

void asyncio_watch_sender_drop(asyncio_watch_sender *tx)
{
    wchan *ch = tx_ch(tx);
    if (ch != NULL && asyncio__fanout_sender_drop(&ch->fan, mark_closed))
        wchan_free(ch);
}

static int new_receiver(wchan *ch, const asyncio_watch_receiver *like, asyncio_watch_receiver **out)
{
    asyncio__mutex_lock(&ch->fan.lock);
    uint64_t seen = like != NULL ? like->seen : version_of(state_locked(ch));
    asyncio_watch_receiver *rx = receiver_new_locked(ch, seen);
    asyncio__mutex_unlock(&ch->fan.lock);
    if (rx == NULL)
        return ASYNCIO_ENOMEM;
    *out = rx;
    return 0;
}

int asyncio_watch_subscribe(asyncio_watch_sender *tx, asyncio_watch_receiver **out)
{
    if (tx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    return new_receiver(tx_ch(tx), NULL, out);
}

int asyncio_watch_receiver_clone(asyncio_watch_receiver *rx, asyncio_watch_receiver **out)
{
    if (rx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    return new_receiver(rx->ch, rx, out);
}

void asyncio_watch_receiver_drop(asyncio_watch_receiver *rx)
{
    if (rx == NULL)
        return;
    wchan *ch = rx->ch;
    bool free_now = asyncio__fanout_receiver_drop(&ch->fan, &rx->wait);
    asyncio__free(rx);
    if (free_now)
        wchan_free(ch);
}

size_t asyncio_watch_receiver_count(asyncio_watch_sender *tx)
{
    wchan *ch = tx_ch(tx);
    return ch != NULL ? asyncio__fanout_receivers(&ch->fan) : 0;
}

/* ------------------------------------------------------------------------ */
/* Sending and reading the value                                             */

/* Under the lock (released on return): stores the value, bumps the version, wakes waiters. */
static void store_and_unlock(wchan *ch, const void *value, void *old)
{
    if (old != NULL)
        memcpy(old, ch->value, ch->elem_size);
    memcpy(ch->value, value, ch->elem_size);
    /* relaxed: the value is read under this lock; lock-free readers only compare versions */
    atomic_fetch_add_explicit(&ch->state, (uint64_t)1 << 1, memory_order_relaxed);
    if (asyncio__list_empty(&ch->fan.waiters)) {
        asyncio__mutex_unlock(&ch->fan.lock);
        return;
    }
    asyncio__fanout_wake_all_and_unlock(&ch->fan);
}

int asyncio_watch_send(asyncio_watch_sender *tx, const void *value)
{
    wchan *ch = tx_ch(tx);
    if (ch == NULL || value == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&ch->fan.lock);
    if (ch->fan.receivers == 0) {
        asyncio__mutex_unlock(&ch->fan.lock);
        return ASYNCIO_ECLOSED;
    }
    store_and_unlock(ch, value, NULL);
    return 0;
}

int asyncio_watch_send_replace(asyncio_watch_sender *tx, const void *value, void *old)
{
    wchan *ch = tx_ch(tx);
    if (ch == NULL || value == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&ch->fan.lock);
    store_and_unlock(ch, value, old);
    return 0;
}

int asyncio_watch_sender_borrow(asyncio_watch_sender *tx, void *out)
{
    wchan *ch = tx_ch(tx);
    if (ch == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&ch->fan.lock);
    memcpy(out, ch->value, ch->elem_size);
    asyncio__mutex_unlock(&ch->fan.lock);
    return 0;
}

static int borrow(asyncio_watch_receiver *rx, void *out, bool update)
{
    if (rx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    wchan *ch = rx->ch;
    asyncio__mutex_lock(&ch->fan.lock);
    memcpy(out, ch->value, ch->elem_size);
    if (update)
        rx->seen = version_of(state_locked(ch));
    asyncio__mutex_unlock(&ch->fan.lock);
    return 0;
}

int asyncio_watch_borrow(asyncio_watch_receiver *rx, void *out)
{
    return borrow(rx, out, false);
}

int asyncio_watch_borrow_and_update(asyncio_watch_receiver *rx, void *out)
{
    return borrow(rx, out, true);
}

/* 1 if changed (seen not updated), 0 if not, ASYNCIO_ECLOSED if not and closed. */
static int check(asyncio_watch_receiver *rx, uint64_t s)
{
    if (version_of(s) != rx->seen)
        return 1;
    return (s & CLOSED) ? ASYNCIO_ECLOSED : 0;
}

int asyncio_watch_has_changed(asyncio_watch_receiver *rx)
{
    if (rx == NULL)
        return ASYNCIO_EINVAL;
    /* relaxed: a snapshot of a counter; no value is read on its strength */
    return check(rx, atomic_load_explicit(&rx->ch->state, memory_order_relaxed));
}

void asyncio_watch_mark_seen(asyncio_watch_receiver *rx)
{
    if (rx == NULL)
        return;
    asyncio__mutex_lock(&rx->ch->fan.lock);
    rx->seen = version_of(state_locked(rx->ch));
    asyncio__mutex_unlock(&rx->ch->fan.lock);
}

/* ------------------------------------------------------------------------ */
/* changed()                                                                 */

void asyncio_watch_changed_init(asyncio_watch_changed *c, asyncio_watch_receiver *rx)
{
    c->rx = rx;
    c->registered = false;
}

/* Leaves the waiters (if still there) and drops the stored waker. */
static void deregister(asyncio_watch_changed *c)
{
    asyncio__fanout_unwait(&c->rx->ch->fan, &c->rx->wait);
    c->registered = false;
}

/* Nothing new at the lock-free check: re-check under the lock, then wait. */
static int wait_locked(asyncio_watch_changed *c, asyncio_context *cx)
{
    asyncio_watch_receiver *rx = c->rx;
    wchan *ch = rx->ch;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&ch->fan.lock);
    uint64_t s = state_locked(ch);
    int rc = check(rx, s);
    if (rc == 0) {
        old = asyncio__fanout_wait_locked(&ch->fan, &rx->wait, cx->waker);
        c->registered = true;
    } else if (rc == 1) {
        rx->seen = version_of(s);
    }
    asyncio__mutex_unlock(&ch->fan.lock);
    asyncio_waker_drop(&old);
    if (rc == 0)
        return ASYNCIO_PENDING;
    if (c->registered)
        deregister(c);
    return rc == 1 ? 0 : rc;
}

int asyncio_watch_changed_poll(asyncio_watch_changed *c, asyncio_context *cx)
{
    if (c == NULL || cx == NULL || c->rx == NULL)
        return ASYNCIO_EINVAL;
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    asyncio_watch_receiver *rx = c->rx;
    /* relaxed: only the version is compared; the value is read later under the lock */
    uint64_t s = atomic_load_explicit(&rx->ch->state, memory_order_relaxed);
    if (version_of(s) != rx->seen) { /* the lock-free path: something changed */
        rx->seen = version_of(s);
        if (c->registered)
            deregister(c);
        return 0;
    }
    return wait_locked(c, cx);
}

void asyncio_watch_changed_drop(asyncio_watch_changed *c)
{
    if (c != NULL && c->registered)
        deregister(c);
}

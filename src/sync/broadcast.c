/*
 * Broadcast channel: a ring of the last `cap` messages, one position per
 * receiver, overwrite-oldest sends, lag detection (Tokio's broadcast).
 *
 * One allocation holds the channel and its ring; every sender pointer is
 * the channel's address (asyncio_broadcast_sender is never defined; the
 * casts below are the only conversions). Receivers are objects of their
 * own, each holding a reference on the channel.
 *
 * Positions: messages are numbered 0, 1, 2, ... in send order; `tail` is
 * the number of the next one, and message p lives in slot p % cap until
 * message p + cap overwrites it. So the ring holds messages
 * [oldest, tail) with oldest = tail - min(tail, cap). A receiver at `next`:
 *   next == tail          nothing new (wait, or ECLOSED once no sender is left)
 *   oldest <= next < tail  message `next` is readable
 *   next < oldest         lagged: it missed oldest - next messages; it
 *                          jumps to `oldest` and reports EOVERFLOW once.
 * Positions are 64-bit: they never wrap in practice (centuries at 10^9/s).
 *
 * Everything (tail, the ring, the counts, the waiting receivers) is under
 * ch->fan.lock: a message is copied in and out under it, so a slow reader never
 * sees a half-overwritten slot. Waiting receivers are linked in
 * ch->fan.waiters through their own node, with their waker; a send unlinks
 * every one of them and wakes them after unlocking (in batches).
 *
 * Lifetime: the lock, the waiters and the counts are the asyncio__fanout
 * this channel shares with the watch channel (sync_int.h, fanout.c): `refs`
 * counts sender references plus receivers, the channel is freed when it
 * reaches 0, and `senders` alone decides "closed".
 */
#include <string.h>

#include "asyncio/broadcast.h"

#include "sync/sync_int.h"
#include "util/alloc.h"

typedef struct bcast {
    asyncio__fanout fan; /* the lock, the waiting receivers, the counts (sync_int.h) */
    uint64_t tail;       /* number of the next message */
    size_t cap;          /* ring capacity in messages */
    size_t elem_size;
    unsigned char *ring;
} bcast;

struct asyncio_broadcast_receiver {
    bcast *ch;
    uint64_t next;               /* number of the next message to read */
    uint64_t lagged;             /* missed at the last EOVERFLOW */
    asyncio__fanout_waiter wait; /* in ch->fan.waiters while a receive waits */
};

static bcast *tx_ch(asyncio_broadcast_sender *tx)
{
    return (bcast *)(void *)tx;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */

static asyncio_broadcast_receiver *receiver_new_locked(bcast *ch)
{
    asyncio_broadcast_receiver *rx = asyncio__malloc(sizeof *rx);
    if (rx == NULL)
        return NULL;
    rx->ch = ch;
    rx->next = ch->tail;
    rx->lagged = 0;
    asyncio__fanout_add_receiver_locked(&ch->fan, &rx->wait);
    return rx;
}

int asyncio_broadcast_channel(asyncio_broadcast_sender **tx, asyncio_broadcast_receiver **rx,
                              size_t elem_size, size_t capacity)
{
    if (tx == NULL || rx == NULL || elem_size == 0 || capacity == 0 ||
        capacity > ASYNCIO_BROADCAST_MAX_CAPACITY ||
        elem_size > (SIZE_MAX - sizeof(bcast)) / capacity)
        return ASYNCIO_EINVAL;
    bcast *ch = asyncio__malloc(sizeof *ch + capacity * elem_size);
    if (ch == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__fanout_init(&ch->fan);
    if (rc != 0) {
        asyncio__free(ch);
        return rc;
    }
    ch->tail = 0;
    ch->cap = capacity;
    ch->elem_size = elem_size;
    ch->ring = (unsigned char *)(ch + 1);
    asyncio_broadcast_receiver *r = receiver_new_locked(ch); /* nobody else sees ch yet */
    if (r == NULL) {
        asyncio__fanout_destroy(&ch->fan);
        asyncio__free(ch);
        return ASYNCIO_ENOMEM;
    }
    *tx = (asyncio_broadcast_sender *)(void *)ch;
    *rx = r;
    return 0;
}

static void bcast_free(bcast *ch)
{
    asyncio__fanout_destroy(&ch->fan);
    asyncio__free(ch);
}

asyncio_broadcast_sender *asyncio_broadcast_sender_clone(asyncio_broadcast_sender *tx)
{
    bcast *ch = tx_ch(tx);
    ASYNCIO_CHECK(ch != NULL);
    asyncio__fanout_sender_clone(&ch->fan);
    return tx;
}

void asyncio_broadcast_sender_drop(asyncio_broadcast_sender *tx)
{
    bcast *ch = tx_ch(tx);
    /* The last sender closes: waiting receivers learn it once drained (recv_locked). */
    if (ch != NULL && asyncio__fanout_sender_drop(&ch->fan, NULL))
        bcast_free(ch);
}

int asyncio_broadcast_subscribe(asyncio_broadcast_sender *tx, asyncio_broadcast_receiver **out)
{
    bcast *ch = tx_ch(tx);
    if (ch == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&ch->fan.lock);
    asyncio_broadcast_receiver *rx = receiver_new_locked(ch);
    asyncio__mutex_unlock(&ch->fan.lock);
    if (rx == NULL)
        return ASYNCIO_ENOMEM;
    *out = rx;
    return 0;
}

void asyncio_broadcast_receiver_drop(asyncio_broadcast_receiver *rx)
{
    if (rx == NULL)
        return;
    bcast *ch = rx->ch;
    bool free_now = asyncio__fanout_receiver_drop(&ch->fan, &rx->wait);
    asyncio__free(rx);
    if (free_now)
        bcast_free(ch);
}

size_t asyncio_broadcast_receiver_count(asyncio_broadcast_sender *tx)
{
    bcast *ch = tx_ch(tx);
    return ch != NULL ? asyncio__fanout_receivers(&ch->fan) : 0;
}

/* ------------------------------------------------------------------------ */
/* Sending and receiving                                                     */

int asyncio_broadcast_send(asyncio_broadcast_sender *tx, const void *elem)
{
    bcast *ch = tx_ch(tx);
    if (ch == NULL || elem == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&ch->fan.lock);
    if (ch->fan.receivers == 0) {
        asyncio__mutex_unlock(&ch->fan.lock);
        return ASYNCIO_ECLOSED;
    }
    memcpy(ch->ring + (size_t)(ch->tail % ch->cap) * ch->elem_size, elem, ch->elem_size);
    ch->tail++;
    if (asyncio__list_empty(&ch->fan.waiters)) {
        asyncio__mutex_unlock(&ch->fan.lock); /* every receiver is busy: nobody to wake */
        return 0;
    }
    asyncio__fanout_wake_all_and_unlock(&ch->fan);
    return 0;
}

static uint64_t oldest_locked(const bcast *ch)
{
    return ch->tail > ch->cap ? ch->tail - ch->cap : 0;
}

/* Under the lock: the receiver's next message into out (0), or EAGAIN / EOVERFLOW / ECLOSED. */
static int recv_locked(asyncio_broadcast_receiver *rx, void *out)
{
    bcast *ch = rx->ch;
    uint64_t oldest = oldest_locked(ch);
    if (rx->next < oldest) { /* overwritten before we read them */
        rx->lagged = oldest - rx->next;
        rx->next = oldest;
        return ASYNCIO_EOVERFLOW;
    }
    if (rx->next == ch->tail)
        return ch->fan.senders == 0 ? ASYNCIO_ECLOSED : ASYNCIO_EAGAIN;
    memcpy(out, ch->ring + (size_t)(rx->next % ch->cap) * ch->elem_size, ch->elem_size);
    rx->next++;
    return 0;
}

int asyncio_broadcast_try_recv(asyncio_broadcast_receiver *rx, void *out)
{
    if (rx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&rx->ch->fan.lock);
    int rc = recv_locked(rx, out);
    asyncio__mutex_unlock(&rx->ch->fan.lock);
    return rc;
}

uint64_t asyncio_broadcast_receiver_lagged(asyncio_broadcast_receiver *rx)
{
    return rx != NULL ? rx->lagged : 0;
}

size_t asyncio_broadcast_receiver_len(asyncio_broadcast_receiver *rx)
{
    if (rx == NULL)
        return 0;
    bcast *ch = rx->ch;
    asyncio__mutex_lock(&ch->fan.lock);
    uint64_t from = rx->next > oldest_locked(ch) ? rx->next : oldest_locked(ch);
    size_t n = (size_t)(ch->tail - from);
    asyncio__mutex_unlock(&ch->fan.lock);
    return n;
}

void asyncio_broadcast_recv_init(asyncio_broadcast_recv *r, asyncio_broadcast_receiver *rx)
{
    r->rx = rx;
    r->registered = false;
}

int asyncio_broadcast_recv_poll(asyncio_broadcast_recv *r, asyncio_context *cx, void *out)
{
    if (r == NULL || cx == NULL || r->rx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    asyncio_broadcast_receiver *rx = r->rx;
    bcast *ch = rx->ch;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&ch->fan.lock);
    int rc = recv_locked(rx, out);
    if (rc == ASYNCIO_EAGAIN) { /* wait: store the waker, join the waiters */
        old = asyncio__fanout_wait_locked(&ch->fan, &rx->wait, cx->waker);
        r->registered = true;
        rc = ASYNCIO_PENDING;
    } else if (r->registered) { /* finished: let go of the stored waker */
        asyncio__list_remove(&rx->wait.link);
        old = rx->wait.waker;
        rx->wait.waker = ASYNCIO_WAKER_EMPTY;
        r->registered = false;
    }
    asyncio__mutex_unlock(&ch->fan.lock);
    asyncio_waker_drop(&old);
    return rc;
}

void asyncio_broadcast_recv_drop(asyncio_broadcast_recv *r)
{
    if (r == NULL || !r->registered)
        return;
    asyncio__fanout_unwait(&r->rx->ch->fan, &r->rx->wait);
    r->registered = false;
}

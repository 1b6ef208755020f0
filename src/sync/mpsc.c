/*
 * mpsc channels: many senders, one receiver, fixed-size elements copied
 * with memcpy into a ring buffer.
 *
 * One object per channel, shared by the handles: every sender pointer and
 * the receiver pointer are the channel's address (asyncio_mpsc_sender and
 * asyncio_mpsc_receiver are never defined; the casts below are the only
 * conversions). It is freed when the last sender reference and the
 * receiver are both released.
 *
 * Bounded channel (Tokio's design): a semaphore with `capacity` permits
 * counts free slots. A send first acquires one permit (FIFO among
 * senders, the acquire future's queue is the sender wait list), then
 * pushes; a receive pops, then releases one permit, which wakes the oldest
 * waiting sender. Invariant: permits + in-flight sends + len == capacity,
 * so a push after a successful acquire always finds room, and a send
 * suspends exactly when the buffer is full. Closing the receiver closes the
 * semaphore, which fails every queued and later send with ECLOSED.
 *
 * Unbounded channel: no semaphore; the ring doubles when full (under the
 * lock), so a send never waits.
 *
 * Channel state (guarded by ch->lock): the ring (head, len, cap), the
 * sender count, rx_closed / rx_alive and the receiver's waker. Lock order:
 * ch->lock is never held while the semaphore's lock is taken; wakers are
 * woken after both are released.
 *
 * Send states (asyncio_mpsc_send.state):
 *   SEND_IDLE       initialised, never polled.
 *   SEND_ACQUIRING  bounded: waiting for a slot (the `slot` acquire is live).
 *   SEND_DONE       finished with `result`; holds nothing.
 */
#include <string.h>

#include "asyncio/channel.h"
#include "sync/sync_int.h"
#include "util/alloc.h"

#define UNBOUNDED_FIRST_CAP 16

enum send_state {
    SEND_IDLE = 0,
    SEND_ACQUIRING = 1,
    SEND_DONE = 2,
};

typedef struct chan {
    asyncio__mutex lock;
    asyncio_semaphore slots; /* bounded only: one permit per free slot */
    unsigned char *ring;
    size_t elem_size;
    size_t cap;     /* ring capacity in elements */
    size_t head;    /* index of the oldest element */
    size_t len;     /* elements buffered */
    size_t senders; /* sender references */
    asyncio_waker rx_waker;
    bool bounded;
    bool rx_alive;
    bool rx_closed; /* receiver closed or dropped: sends fail */
} chan;

static chan *tx_chan(asyncio_mpsc_sender *tx)
{
    return (chan *)(void *)tx;
}

static chan *rx_chan(asyncio_mpsc_receiver *rx)
{
    return (chan *)(void *)rx;
}

/* ------------------------------------------------------------------------ */
/* Creation and teardown                                                     */

static int chan_new(chan **out, size_t elem_size, size_t capacity, bool bounded)
{
    chan *ch = asyncio__calloc(1, sizeof *ch);
    if (ch == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&ch->lock);
    if (rc != 0)
        goto fail_free;
    if (bounded) {
        ch->ring = asyncio__malloc(capacity * elem_size);
        if (ch->ring == NULL) {
            rc = ASYNCIO_ENOMEM;
            goto fail_mutex;
        }
        rc = asyncio__semaphore_init(&ch->slots, capacity);
        if (rc != 0)
            goto fail_ring;
        ch->cap = capacity;
    }
    ch->elem_size = elem_size;
    ch->senders = 1;
    ch->rx_alive = true;
    ch->bounded = bounded;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    *out = ch;
    return 0;
fail_ring:
    asyncio__free(ch->ring);
fail_mutex:
    asyncio__mutex_destroy(&ch->lock);
fail_free:
    asyncio__free(ch);
    return rc;
}

static void chan_free(chan *ch)
{
    if (ch->bounded)
        asyncio__semaphore_destroy(&ch->slots); /* checks that no send is queued */
    asyncio__mutex_destroy(&ch->lock);
    asyncio__free(ch->ring);
    asyncio__free(ch);
}

int asyncio_mpsc_channel(asyncio_mpsc_sender **tx, asyncio_mpsc_receiver **rx, size_t elem_size,
                         size_t capacity)
{
    if (tx == NULL || rx == NULL || elem_size == 0 || capacity == 0 ||
        capacity > ASYNCIO_SEMAPHORE_MAX_PERMITS || capacity > SIZE_MAX / elem_size)
        return ASYNCIO_EINVAL;
    chan *ch;
    int rc = chan_new(&ch, elem_size, capacity, true);
    if (rc != 0)
        return rc;
    *tx = (asyncio_mpsc_sender *)(void *)ch;
    *rx = (asyncio_mpsc_receiver *)(void *)ch;
    return 0;
}

int asyncio_mpsc_unbounded_channel(asyncio_mpsc_sender **tx, asyncio_mpsc_receiver **rx,
                                   size_t elem_size)
{
    if (tx == NULL || rx == NULL || elem_size == 0)
        return ASYNCIO_EINVAL;
    chan *ch;
    int rc = chan_new(&ch, elem_size, 0, false);
    if (rc != 0)
        return rc;
    *tx = (asyncio_mpsc_sender *)(void *)ch;
    *rx = (asyncio_mpsc_receiver *)(void *)ch;
    return 0;
}

asyncio_mpsc_sender *asyncio_mpsc_sender_clone(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    ASYNCIO_CHECK(ch != NULL);
    asyncio__mutex_lock(&ch->lock);
    ASYNCIO_CHECK(ch->senders > 0 && ch->senders < SIZE_MAX);
    ch->senders++;
    asyncio__mutex_unlock(&ch->lock);
    return tx;
}

void asyncio_mpsc_sender_drop(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL)
        return;
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&ch->lock);
    ASYNCIO_CHECK(ch->senders > 0); /* refcount underflow */
    bool last = --ch->senders == 0;
    if (last) { /* the receiver learns "closed" once it drained the buffer */
        w = ch->rx_waker;
        ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    }
    bool free_now = last && !ch->rx_alive;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_wake(&w);
    if (free_now)
        chan_free(ch);
}

void asyncio_mpsc_receiver_close(asyncio_mpsc_receiver *rx)
{
    chan *ch = rx_chan(rx);
    if (ch == NULL)
        return;
    asyncio__mutex_lock(&ch->lock);
    ch->rx_closed = true; /* first: a send that got a slot meanwhile sees it when pushing */
    asyncio__mutex_unlock(&ch->lock);
    if (ch->bounded)
        asyncio_semaphore_close(&ch->slots); /* queued senders fail with ECLOSED */
}

void asyncio_mpsc_receiver_drop(asyncio_mpsc_receiver *rx)
{
    chan *ch = rx_chan(rx);
    if (ch == NULL)
        return;
    asyncio_mpsc_receiver_close(rx);
    asyncio__mutex_lock(&ch->lock);
    asyncio_waker w = ch->rx_waker;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    ch->rx_alive = false;
    ch->len = 0; /* buffered elements are discarded (plain bytes) */
    bool free_now = ch->senders == 0;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_drop(&w);
    if (free_now)
        chan_free(ch);
}

/* ------------------------------------------------------------------------ */
/* The ring                                                                  */

/* Unbounded: doubles the ring, unwrapping the buffered elements. Under the lock. */
static int grow_locked(chan *ch)
{
    size_t ncap = ch->cap == 0 ? UNBOUNDED_FIRST_CAP : ch->cap * 2;
    if (ncap < ch->cap || ncap > SIZE_MAX / ch->elem_size)
        return ASYNCIO_ENOMEM;
    unsigned char *nring = asyncio__malloc(ncap * ch->elem_size);
    if (nring == NULL)
        return ASYNCIO_ENOMEM;
    size_t es = ch->elem_size;
    size_t first = ch->cap - ch->head < ch->len ? ch->cap - ch->head : ch->len;
    if (ch->len > 0) {
        memcpy(nring, ch->ring + ch->head * es, first * es);
        memcpy(nring + first * es, ch->ring, (ch->len - first) * es);
    }
    asyncio__free(ch->ring);
    ch->ring = nring;
    ch->cap = ncap;
    ch->head = 0;
    return 0;
}

/*
 * Copies `elem` in and wakes the receiver. Bounded: the caller holds a slot
 * permit (so there is room); on ECLOSED the caller gives the permit back.
 */
static int push(chan *ch, const void *elem)
{
    asyncio__mutex_lock(&ch->lock);
    if (ch->rx_closed) {
        asyncio__mutex_unlock(&ch->lock);
        return ASYNCIO_ECLOSED;
    }
    if (ch->len == ch->cap) {
        ASYNCIO_CHECK(!ch->bounded); /* the slot permit guarantees room */
        int rc = grow_locked(ch);
        if (rc != 0) {
            asyncio__mutex_unlock(&ch->lock);
            return rc;
        }
    }
    size_t tail = ch->head + ch->len;
    if (tail >= ch->cap)
        tail -= ch->cap;
    memcpy(ch->ring + tail * ch->elem_size, elem, ch->elem_size);
    ch->len++;
    asyncio_waker w = ch->rx_waker;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_wake(&w);
    return 0;
}

/* Pops the oldest element into `out`. Under the lock; the ring must not be empty. */
static void pop_locked(chan *ch, void *out)
{
    memcpy(out, ch->ring + ch->head * ch->elem_size, ch->elem_size);
    ch->head = ch->head + 1 == ch->cap ? 0 : ch->head + 1;
    ch->len--;
}

/* After a pop, outside ch->lock: the bounded channel's slot is free again. */
static void slot_freed(chan *ch)
{
    if (!ch->bounded)
        return;
    int rc = asyncio__semaphore_release_capped(&ch->slots, 1, ch->cap);
    ASYNCIO_CHECK(rc == 0); /* more permits than slots: accounting is broken */
}

/* Bounded: pushes with the slot permit in hand, giving it back if the push fails. */
static int push_with_slot(chan *ch, const void *elem)
{
    int rc = push(ch, elem);
    if (rc != 0)
        slot_freed(ch);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

int asyncio_mpsc_try_send(asyncio_mpsc_sender *tx, const void *elem)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL || elem == NULL)
        return ASYNCIO_EINVAL;
    if (!ch->bounded)
        return push(ch, elem);
    int rc = asyncio_semaphore_try_acquire(&ch->slots, 1);
    if (rc != 0)
        return rc; /* EAGAIN (full, or senders queued) or ECLOSED */
    return push_with_slot(ch, elem);
}

bool asyncio_mpsc_sender_is_closed(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL)
        return true;
    asyncio__mutex_lock(&ch->lock);
    bool closed = ch->rx_closed;
    asyncio__mutex_unlock(&ch->lock);
    return closed;
}

size_t asyncio_mpsc_capacity(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL)
        return 0;
    return ch->bounded ? asyncio_semaphore_available_permits(&ch->slots) : SIZE_MAX;
}

size_t asyncio_mpsc_max_capacity(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL)
        return 0;
    return ch->bounded ? ch->cap : SIZE_MAX; /* the bounded cap never changes */
}

void asyncio_mpsc_send_init(asyncio_mpsc_send *s, asyncio_mpsc_sender *tx, const void *elem)
{
    chan *ch = tx_chan(tx);
    asyncio_semaphore_acquire_init(&s->slot, ch != NULL && ch->bounded ? &ch->slots : NULL, 1);
    s->tx = tx;
    s->elem = elem;
    s->result = ASYNCIO_PENDING;
    s->state = SEND_IDLE;
}

static int send_finish(asyncio_mpsc_send *s, int result)
{
    s->result = result;
    s->state = SEND_DONE;
    return result;
}

int asyncio_mpsc_send_poll(asyncio_mpsc_send *s, asyncio_context *cx)
{
    if (s == NULL || cx == NULL || s->tx == NULL || s->elem == NULL)
        return ASYNCIO_EINVAL;
    chan *ch = tx_chan(s->tx);
    switch (s->state) {
    case SEND_DONE: /* finished: the result again */
        return s->result;
    case SEND_IDLE: /* never polled */
        if (!ch->bounded) {
            if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            return send_finish(s, push(ch, s->elem));
        }
        s->state = SEND_ACQUIRING;
        /* fall through */
    case SEND_ACQUIRING: { /* bounded: waiting for a slot (the acquire does the coop check) */
        int rc = asyncio_semaphore_acquire_poll(&s->slot, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc != 0)
            return send_finish(s, rc); /* ECLOSED: the receiver went away */
        return send_finish(s, push_with_slot(ch, s->elem));
    }
    default:
        ASYNCIO_CHECK(!"asyncio_mpsc_send: corrupt state");
        return ASYNCIO_EINVAL;
    }
}

void asyncio_mpsc_send_drop(asyncio_mpsc_send *s)
{
    if (s == NULL)
        return;
    if (s->state == SEND_ACQUIRING) /* unlinks; a slot granted but unused is passed on */
        asyncio_semaphore_acquire_drop(&s->slot);
    if (s->state != SEND_DONE)
        send_finish(s, ASYNCIO_ECANCELED);
}

/* ------------------------------------------------------------------------ */
/* Receiving                                                                 */

int asyncio_mpsc_try_recv(asyncio_mpsc_receiver *rx, void *out)
{
    chan *ch = rx_chan(rx);
    if (ch == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    int rc = 0;
    asyncio__mutex_lock(&ch->lock);
    if (ch->len > 0)
        pop_locked(ch, out);
    else if (ch->senders == 0 || ch->rx_closed)
        rc = ASYNCIO_ECLOSED;
    else
        rc = ASYNCIO_EAGAIN;
    asyncio__mutex_unlock(&ch->lock);
    if (rc == 0)
        slot_freed(ch);
    return rc;
}

size_t asyncio_mpsc_len(asyncio_mpsc_receiver *rx)
{
    chan *ch = rx_chan(rx);
    if (ch == NULL)
        return 0;
    asyncio__mutex_lock(&ch->lock);
    size_t len = ch->len;
    asyncio__mutex_unlock(&ch->lock);
    return len;
}

void asyncio_mpsc_recv_init(asyncio_mpsc_recv *r, asyncio_mpsc_receiver *rx)
{
    r->rx = rx;
    r->registered = false;
}

int asyncio_mpsc_recv_poll(asyncio_mpsc_recv *r, asyncio_context *cx, void *out)
{
    if (r == NULL || cx == NULL || r->rx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    chan *ch = rx_chan(r->rx);
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    int rc = 0;
    asyncio__mutex_lock(&ch->lock);
    if (ch->len > 0) {
        pop_locked(ch, out);
    } else if (ch->senders == 0 || ch->rx_closed) {
        rc = ASYNCIO_ECLOSED;
    } else {
        rc = ASYNCIO_PENDING;
        if (!asyncio_waker_will_wake(&ch->rx_waker, cx->waker)) {
            old = ch->rx_waker;
            ch->rx_waker = asyncio_waker_clone(cx->waker);
        }
        r->registered = true;
    }
    if (rc != ASYNCIO_PENDING && r->registered) { /* finished: let go of the stored waker */
        old = ch->rx_waker;
        ch->rx_waker = ASYNCIO_WAKER_EMPTY;
        r->registered = false;
    }
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_drop(&old);
    if (rc == 0)
        slot_freed(ch);
    return rc;
}

void asyncio_mpsc_recv_drop(asyncio_mpsc_recv *r)
{
    if (r == NULL || !r->registered)
        return;
    chan *ch = rx_chan(r->rx);
    asyncio__mutex_lock(&ch->lock);
    asyncio_waker old = ch->rx_waker;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    r->registered = false;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_drop(&old);
}

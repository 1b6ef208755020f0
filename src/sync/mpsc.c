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
 * Bounded channel (Tokio's design: a slot semaphore in front of a
 * lock-free buffer). A semaphore with `capacity` permits counts free
 * slots; a send first acquires one permit (FIFO among senders: the acquire
 * future's queue is the sender wait list), then claims the next ring index
 * and publishes the element; a receive pops, then releases one permit,
 * which wakes the oldest waiting sender. Invariant: permits + in-flight
 * sends + len == capacity, so a send suspends exactly when the buffer is
 * full. When nobody waits, a message costs no lock: a semaphore CAS and a
 * tail fetch_add for the sender; for the receiver a fetch_add on a word of
 * its own (the semaphore's deferred release: senders collect those
 * permits, under the semaphore's lock, only when the count runs out, and
 * a queued sender makes the receiver hand them over at once). So the two
 * sides share no per-message cache line except the slot itself.
 *
 * The ring (bounded), Vyukov's per-slot sequence scheme:
 *   tail        (index << 1) | TAIL_CLOSED. A sender holding a permit takes
 *               index t with one fetch_add; the receiver's close sets
 *               TAIL_CLOSED with a fetch_or, which splits the indices in
 *               two: claims before it are valid and will be published,
 *               claims after it fail with ECLOSED (their index is never
 *               used) and give their permit back.
 *   seq[t % cap] == t         the slot is free for index t
 *                == t + 1     index t is published (readable)
 *   The receiver at `head` h reads slot h % cap once seq == h + 1, then
 *   stores seq = h + cap (free for the next lap) and releases a permit.
 *   Because a sender holds a permit before it claims, at most `capacity`
 *   claimed indices are unconsumed, so the slot of index t was already
 *   freed for lap t: the sender's wait for seq == t is a formality (it
 *   spins only if the receiver is preempted between its two stores).
 *   Index arithmetic wraps after 2^63 messages (centuries at 10^9 msg/s).
 *
 * Waking the receiver: `rx_waiting` says a waker is stored in rx_waker
 * (under ch->lock) and nobody has claimed it yet. The receiver stores its
 * waker, sets the flag, then checks the ring again; a sender publishes,
 * then reads the flag (both pairs seq_cst: one of the two sees the other),
 * and only if it is set exchanges it to 0 and takes the waker under the
 * lock. So a receiver that is busy costs senders no lock and no wake-up.
 * Whoever turns the flag from 1 to 0 takes the stored waker; the last
 * sender's drop and the receiver's close take it under the lock directly.
 *
 * Unbounded channel: no semaphore; the ring doubles when full, and
 * everything (u_head, u_len, the ring) is under ch->lock. Sends never wait.
 *
 * Other state: `senders` and `rx_closed` change under ch->lock and are read
 * lock-free by the receiver; closed_at is written under the lock before
 * rx_closed is set. Lock order: ch->lock is never held while the
 * semaphore's lock is taken; wakers are woken after both are released.
 *
 * Send states (asyncio_mpsc_send.state):
 *   SEND_IDLE       initialised, never polled.
 *   SEND_ACQUIRING  bounded: waiting for a slot (the `slot` acquire is live).
 *   SEND_DONE       finished with `result`; holds nothing.
 */
#include <stdatomic.h>
#include <string.h>

#include "asyncio/channel.h"
#include "sync/sync_int.h"
#include "util/alloc.h"

#define UNBOUNDED_FIRST_CAP 16
#define TAIL_CLOSED         ((size_t)1)
#define SPINS_BEFORE_YIELD  64
#define CACHE_LINE          64

enum send_state {
    SEND_IDLE = 0,
    SEND_ACQUIRING = 1,
    SEND_DONE = 2,
};

typedef struct chan {
    /* Read-mostly, by everyone. */
    _Atomic size_t *seq; /* bounded: one sequence word per slot (see the file comment) */
    unsigned char *ring; /* bounded: follows seq in the same block; unbounded: its own block */
    size_t elem_size;
    size_t cap; /* ring capacity in elements */
    bool bounded;
    _Atomic bool rx_closed; /* receiver closed or dropped: sends fail (set under lock) */
    _Atomic int rx_waiting; /* a waker is in rx_waker, unclaimed (see the file comment) */
    _Atomic size_t senders; /* sender references (changed under lock) */
    char pad0[CACHE_LINE];
    /* Written by every bounded send. */
    _Atomic size_t tail; /* (next index << 1) | TAIL_CLOSED */
    char pad1[CACHE_LINE];
    /* Written by the receiver on every bounded pop (read by asyncio_mpsc_len). */
    _Atomic size_t head; /* next index to pop */
    size_t head_slot;    /* head % cap, the receiver's own */
    char pad2[CACHE_LINE];
    asyncio_semaphore slots; /* bounded only: one permit per free slot */
    /* Guarded by lock. */
    asyncio__mutex lock;
    asyncio_waker rx_waker;
    size_t closed_at; /* bounded: the first index never published (set before rx_closed) */
    size_t u_head;    /* unbounded: index of the oldest element */
    size_t u_len;     /* unbounded: elements buffered */
    bool rx_alive;
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

/* Bounded: one block holding the sequence words, then the elements. */
static int ring_new(chan *ch, size_t elem_size, size_t capacity)
{
    size_t per = elem_size + sizeof(size_t);
    if (per < elem_size || capacity > SIZE_MAX / per)
        return ASYNCIO_ENOMEM;
    ch->seq = asyncio__malloc(capacity * per);
    if (ch->seq == NULL)
        return ASYNCIO_ENOMEM;
    for (size_t i = 0; i < capacity; i++)
        atomic_init(&ch->seq[i], i); /* slot i is free for index i */
    ch->ring = (unsigned char *)(void *)(ch->seq + capacity);
    ch->cap = capacity;
    return asyncio__semaphore_init_deferred(&ch->slots, capacity);
}

static int chan_new(chan **out, size_t elem_size, size_t capacity, bool bounded)
{
    chan *ch = asyncio__calloc(1, sizeof *ch);
    if (ch == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&ch->lock);
    if (rc != 0)
        goto fail_free;
    if (bounded && (rc = ring_new(ch, elem_size, capacity)) != 0)
        goto fail_mutex;
    ch->elem_size = elem_size;
    ch->bounded = bounded;
    atomic_init(&ch->senders, 1);
    atomic_init(&ch->rx_closed, false);
    atomic_init(&ch->rx_waiting, 0);
    atomic_init(&ch->tail, 0);
    atomic_init(&ch->head, 0);
    ch->rx_alive = true;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    *out = ch;
    return 0;
fail_mutex:
    asyncio__free(ch->seq);
    asyncio__mutex_destroy(&ch->lock);
fail_free:
    asyncio__free(ch);
    return rc;
}

static void chan_free(chan *ch)
{
    if (ch->bounded) {
        asyncio__semaphore_destroy(&ch->slots); /* checks that no send is queued */
        asyncio__free(ch->seq);                 /* and the ring with it */
    } else {
        asyncio__free(ch->ring);
    }
    asyncio_waker_drop(&ch->rx_waker);
    asyncio__mutex_destroy(&ch->lock);
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

/* Under the lock: takes the stored receiver waker (to be woken or dropped outside). */
static asyncio_waker take_rx_waker_locked(chan *ch)
{
    /* relaxed: the waker itself is read under the lock we hold */
    atomic_store_explicit(&ch->rx_waiting, 0, memory_order_relaxed);
    asyncio_waker w = ch->rx_waker;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    return w;
}

asyncio_mpsc_sender *asyncio_mpsc_sender_clone(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    ASYNCIO_CHECK(ch != NULL);
    asyncio__mutex_lock(&ch->lock);
    /* relaxed: the caller already holds a reference; nothing is published */
    size_t n = atomic_load_explicit(&ch->senders, memory_order_relaxed);
    ASYNCIO_CHECK(n > 0 && n < SIZE_MAX);
    atomic_store_explicit(&ch->senders, n + 1, memory_order_relaxed);
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
    /*
     * release: pairs with the receiver's acquire load in empty_result: once
     * it reads 0, every element this sender published is visible.
     */
    size_t n = atomic_fetch_sub_explicit(&ch->senders, 1, memory_order_release);
    ASYNCIO_CHECK(n > 0); /* refcount underflow */
    bool last = n == 1;
    if (last) /* the receiver learns "closed" once it drained the buffer */
        w = take_rx_waker_locked(ch);
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
    /* relaxed: read under the lock (idempotence) */
    bool was_closed = atomic_load_explicit(&ch->rx_closed, memory_order_relaxed);
    if (ch->bounded && !was_closed) {
        /*
         * relaxed: only tail's modification order matters: claims before
         * this are published, claims after it fail (push_bounded).
         */
        size_t t = atomic_fetch_or_explicit(&ch->tail, TAIL_CLOSED, memory_order_relaxed);
        ch->closed_at = t >> 1;
    }
    /* release: pairs with the acquire loads of rx_closed that then read closed_at */
    atomic_store_explicit(&ch->rx_closed, true, memory_order_release);
    /* A receive waiting on another thread learns it is closed (or waits for closed_at). */
    asyncio_waker w = take_rx_waker_locked(ch);
    asyncio__mutex_unlock(&ch->lock);
    if (ch->bounded)
        asyncio_semaphore_close(&ch->slots); /* queued senders fail with ECLOSED */
    asyncio_waker_wake(&w);
}

void asyncio_mpsc_receiver_drop(asyncio_mpsc_receiver *rx)
{
    chan *ch = rx_chan(rx);
    if (ch == NULL)
        return;
    asyncio_mpsc_receiver_close(rx);
    asyncio__mutex_lock(&ch->lock);
    asyncio_waker w = take_rx_waker_locked(ch);
    ch->rx_alive = false;
    ch->u_len = 0; /* buffered elements are discarded (plain bytes) */
    /* relaxed: read under the lock every sender_drop also takes */
    bool free_now = atomic_load_explicit(&ch->senders, memory_order_relaxed) == 0;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_drop(&w);
    if (free_now)
        chan_free(ch);
}

/* ------------------------------------------------------------------------ */
/* Waking the receiver                                                       */

/* After a publish: wakes the receiver if it stored a waker nobody claimed yet. */
static void rx_notify(chan *ch)
{
    /*
     * seq_cst: the Dekker pair with rx_register. Our publish (a seq_cst
     * store of the slot's sequence) precedes this load; the receiver's
     * seq_cst store of the flag precedes its seq_cst re-check of the slot.
     * In the single total order one of the two loads sees the other store.
     */
    if (!atomic_load_explicit(&ch->rx_waiting, memory_order_seq_cst))
        return;
    /* relaxed: only decides who takes the waker, which is read under ch->lock */
    if (!atomic_exchange_explicit(&ch->rx_waiting, 0, memory_order_relaxed))
        return; /* another sender (or the receiver itself) claimed it */
    asyncio__mutex_lock(&ch->lock);
    asyncio_waker w = ch->rx_waker;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_wake(&w);
}

/* The receiver found the channel empty: stores cx's waker, then raises the flag. */
static void rx_register(chan *ch, asyncio_mpsc_recv *r, asyncio_context *cx)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&ch->lock);
    if (!asyncio_waker_will_wake(&ch->rx_waker, cx->waker)) {
        old = ch->rx_waker; /* dropped outside the lock */
        ch->rx_waker = asyncio_waker_clone(cx->waker);
    }
    /* seq_cst: the Dekker pair with rx_notify (the caller re-checks the ring after this) */
    atomic_store_explicit(&ch->rx_waiting, 1, memory_order_seq_cst);
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_drop(&old);
    r->registered = true;
}

/*
 * The receive finished (or is dropped): lowers the flag and drops the
 * stored waker, unless a notifier already claimed it (it wakes it: one
 * spurious wake-up at most).
 */
static void rx_deregister(chan *ch, asyncio_mpsc_recv *r)
{
    r->registered = false;
    /* relaxed: whoever turns the flag from 1 to 0 owns the waker, read under ch->lock */
    if (!atomic_exchange_explicit(&ch->rx_waiting, 0, memory_order_relaxed))
        return;
    asyncio__mutex_lock(&ch->lock);
    asyncio_waker w = ch->rx_waker;
    ch->rx_waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_drop(&w);
}

/* ------------------------------------------------------------------------ */
/* The bounded ring                                                          */

/* After a failed push, outside ch->lock: the permit goes back. */
static void slot_freed(chan *ch)
{
    int rc = asyncio__semaphore_release_capped(&ch->slots, 1, ch->cap);
    ASYNCIO_CHECK(rc == 0); /* more permits than slots: accounting is broken */
}

/*
 * Copies `elem` in with a slot permit in hand and wakes a waiting receiver.
 * ASYNCIO_ECLOSED (permit given back) if the receiver closed first.
 */
static int push_bounded(chan *ch, const void *elem)
{
    /*
     * relaxed: only tail's modification order matters (distinct indices,
     * and which side of the receiver's close a claim falls on); the
     * element itself is ordered by the slot's sequence word.
     */
    size_t t = atomic_fetch_add_explicit(&ch->tail, 2, memory_order_relaxed);
    if (t & TAIL_CLOSED) {
        slot_freed(ch);
        return ASYNCIO_ECLOSED;
    }
    size_t idx = t >> 1;
    size_t i = idx % ch->cap;
    _Atomic size_t *seq = &ch->seq[i];
    /*
     * acquire: pairs with the receiver's release store of seq = idx after
     * it copied the previous lap's element out, so our write comes after
     * its read. Our permit guarantees that store already happened (see the
     * file comment): this loop practically never turns.
     */
    for (unsigned spins = 0; atomic_load_explicit(seq, memory_order_acquire) != idx; spins++) {
        if (spins >= SPINS_BEFORE_YIELD)
            asyncio__thread_yield();
    }
    memcpy(ch->ring + i * ch->elem_size, elem, ch->elem_size);
    /*
     * seq_cst: release pairs with the receiver's load of seq == idx + 1
     * (the element is visible); seq_cst also orders it before rx_notify's
     * load of rx_waiting (the Dekker pair with rx_register).
     */
    atomic_store_explicit(seq, idx + 1, memory_order_seq_cst);
    rx_notify(ch);
    return 0;
}

/* True if index h is published. The receiver's only. */
static bool slot_ready(chan *ch, size_t h)
{
    /*
     * seq_cst: acquire pairs with push_bounded's publishing store (the
     * element is visible); seq_cst orders a re-check after rx_register's
     * store of rx_waiting (the Dekker pair with rx_notify).
     */
    return atomic_load_explicit(&ch->seq[ch->head_slot], memory_order_seq_cst) == h + 1;
}

/*
 * Nothing published at index h: ASYNCIO_ECLOSED if nothing ever will be,
 * 0 if it was published meanwhile, else ASYNCIO_EAGAIN.
 */
static int empty_result(chan *ch, size_t h)
{
    /*
     * acquire: pairs with the release decrement in sender_drop: with no
     * sender left, every send has completed and its publish is visible,
     * so a second look at the slot is final.
     */
    if (atomic_load_explicit(&ch->senders, memory_order_acquire) == 0)
        return slot_ready(ch, h) ? 0 : ASYNCIO_ECLOSED;
    /*
     * acquire: pairs with the release store in receiver_close, after
     * closed_at was written. Indices below closed_at were claimed before the
     * close and are being published (the sender is inside its push, it
     * does not suspend there); none after it ever will be.
     */
    if (atomic_load_explicit(&ch->rx_closed, memory_order_acquire) && h == ch->closed_at)
        return ASYNCIO_ECLOSED;
    return ASYNCIO_EAGAIN;
}

/* The receiver: pops index `head` into `out` (0), or ASYNCIO_EAGAIN / ASYNCIO_ECLOSED. */
static int pop_bounded(chan *ch, void *out)
{
    /* relaxed: only the receiver writes head */
    size_t h = atomic_load_explicit(&ch->head, memory_order_relaxed);
    if (!slot_ready(ch, h)) {
        int rc = empty_result(ch, h);
        if (rc != 0)
            return rc;
    }
    size_t i = ch->head_slot;
    memcpy(out, ch->ring + i * ch->elem_size, ch->elem_size);
    /* release: pairs with push_bounded's acquire wait: the next lap's writer comes after our read
     */
    atomic_store_explicit(&ch->seq[i], h + ch->cap, memory_order_release);
    /* relaxed: a snapshot for asyncio_mpsc_len; the receiver is the only writer */
    atomic_store_explicit(&ch->head, h + 1, memory_order_relaxed);
    ch->head_slot = i + 1 == ch->cap ? 0 : i + 1;
    /* the permit goes to the receiver's own word unless a sender waits (semaphore.c) */
    asyncio__semaphore_release_deferred(&ch->slots, ch->cap);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The unbounded ring (everything under ch->lock)                            */

/* Doubles the ring, unwrapping the buffered elements. Under the lock. */
static int grow_locked(chan *ch)
{
    size_t ncap = ch->cap == 0 ? UNBOUNDED_FIRST_CAP : ch->cap * 2;
    if (ncap < ch->cap || ncap > SIZE_MAX / ch->elem_size)
        return ASYNCIO_ENOMEM;
    unsigned char *nring = asyncio__malloc(ncap * ch->elem_size);
    if (nring == NULL)
        return ASYNCIO_ENOMEM;
    size_t es = ch->elem_size;
    size_t first = ch->cap - ch->u_head < ch->u_len ? ch->cap - ch->u_head : ch->u_len;
    if (ch->u_len > 0) {
        memcpy(nring, ch->ring + ch->u_head * es, first * es);
        memcpy(nring + first * es, ch->ring, (ch->u_len - first) * es);
    }
    asyncio__free(ch->ring);
    ch->ring = nring;
    ch->cap = ncap;
    ch->u_head = 0;
    return 0;
}

/* Copies `elem` in (growing the ring if needed) and wakes a waiting receiver. */
static int push_unbounded(chan *ch, const void *elem)
{
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    int rc = 0;
    asyncio__mutex_lock(&ch->lock);
    /* relaxed: written under the lock we hold */
    if (atomic_load_explicit(&ch->rx_closed, memory_order_relaxed))
        rc = ASYNCIO_ECLOSED;
    else if (ch->u_len == ch->cap)
        rc = grow_locked(ch);
    if (rc == 0) {
        size_t tail = ch->u_head + ch->u_len;
        if (tail >= ch->cap)
            tail -= ch->cap;
        memcpy(ch->ring + tail * ch->elem_size, elem, ch->elem_size);
        ch->u_len++;
        /* relaxed: the receiver sets the flag and re-checks under this lock */
        if (atomic_load_explicit(&ch->rx_waiting, memory_order_relaxed))
            w = take_rx_waker_locked(ch);
    }
    asyncio__mutex_unlock(&ch->lock);
    asyncio_waker_wake(&w);
    return rc;
}

static int pop_unbounded(chan *ch, void *out)
{
    int rc = 0;
    asyncio__mutex_lock(&ch->lock);
    if (ch->u_len > 0) {
        memcpy(out, ch->ring + ch->u_head * ch->elem_size, ch->elem_size);
        ch->u_head = ch->u_head + 1 == ch->cap ? 0 : ch->u_head + 1;
        ch->u_len--;
    } else if (atomic_load_explicit(&ch->senders, memory_order_relaxed) == 0 ||
               atomic_load_explicit(&ch->rx_closed, memory_order_relaxed)) {
        rc = ASYNCIO_ECLOSED; /* relaxed loads: both change under the lock we hold */
    } else {
        rc = ASYNCIO_EAGAIN;
    }
    asyncio__mutex_unlock(&ch->lock);
    return rc;
}

static int pop(chan *ch, void *out)
{
    return ch->bounded ? pop_bounded(ch, out) : pop_unbounded(ch, out);
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

int asyncio_mpsc_try_send(asyncio_mpsc_sender *tx, const void *elem)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL || elem == NULL)
        return ASYNCIO_EINVAL;
    if (!ch->bounded)
        return push_unbounded(ch, elem);
    int rc = asyncio_semaphore_try_acquire(&ch->slots, 1);
    if (rc != 0)
        return rc; /* EAGAIN (full, or senders queued) or ECLOSED */
    return push_bounded(ch, elem);
}

bool asyncio_mpsc_sender_is_closed(asyncio_mpsc_sender *tx)
{
    chan *ch = tx_chan(tx);
    if (ch == NULL)
        return true;
    /* acquire: pairs with the release store in receiver_close (a snapshot) */
    return atomic_load_explicit(&ch->rx_closed, memory_order_acquire);
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
            return send_finish(s, push_unbounded(ch, s->elem));
        }
        s->state = SEND_ACQUIRING;
        /* fall through */
    case SEND_ACQUIRING: { /* bounded: waiting for a slot (the acquire does the coop check) */
        int rc = asyncio_semaphore_acquire_poll(&s->slot, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc != 0)
            return send_finish(s, rc); /* ECLOSED: the receiver went away */
        return send_finish(s, push_bounded(ch, s->elem));
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
    return pop(ch, out);
}

size_t asyncio_mpsc_len(asyncio_mpsc_receiver *rx)
{
    chan *ch = rx_chan(rx);
    if (ch == NULL)
        return 0;
    if (!ch->bounded) {
        asyncio__mutex_lock(&ch->lock);
        size_t len = ch->u_len;
        asyncio__mutex_unlock(&ch->lock);
        return len;
    }
    /* relaxed: a snapshot. head first: tail only grows, so end >= h */
    size_t h = atomic_load_explicit(&ch->head, memory_order_relaxed);
    size_t end = atomic_load_explicit(&ch->tail, memory_order_relaxed) >> 1;
    /* acquire: pairs with the release store in receiver_close (closed_at is then valid) */
    if (atomic_load_explicit(&ch->rx_closed, memory_order_acquire))
        end = ch->closed_at; /* later claims failed: their indices are never used */
    size_t len = end - h;    /* claimed, not yet consumed */
    return len < ch->cap ? len : ch->cap;
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
    int rc = pop(ch, out);
    if (rc == ASYNCIO_EAGAIN) {
        rx_register(ch, r, cx);
        rc = pop(ch, out); /* a send that missed the flag is seen here */
        if (rc == ASYNCIO_EAGAIN)
            return ASYNCIO_PENDING;
    }
    if (r->registered) /* finished: let go of the stored waker */
        rx_deregister(ch, r);
    return rc;
}

void asyncio_mpsc_recv_drop(asyncio_mpsc_recv *r)
{
    if (r == NULL || !r->registered)
        return;
    rx_deregister(rx_chan(r->rx), r);
}

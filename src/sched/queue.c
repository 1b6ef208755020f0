/*
 * Run queues: the local work-stealing ring and the global inject FIFO. The
 * bit table, invariants and ordering rules are in queue.h; each atomic below
 * says which rule it follows and what it pairs with.
 */
#include "sched/queue.h"

#include "internal.h"

#define CAPACITY ((uint32_t)ASYNCIO__QUEUE_CAPACITY)
#define MASK     ASYNCIO__QUEUE_MASK
#define HALF     (CAPACITY / 2)

/* ------------------------------------------------------------------------ */
/* Global inject queue                                                       */

int asyncio__inject_init(asyncio__inject *q)
{
    q->fifo = (asyncio__task_fifo){NULL, NULL};
    q->closed = false;
    atomic_init(&q->len, 0);
    return asyncio__mutex_init(&q->lock);
}

void asyncio__inject_destroy(asyncio__inject *q)
{
    ASYNCIO_CHECK(q->fifo.head == NULL); /* an entry left here would leak its task */
    asyncio__mutex_destroy(&q->lock);
}

bool asyncio__inject_push(asyncio__inject *q, asyncio__task *t)
{
    return asyncio__inject_push_batch(q, t, t, 1);
}

bool asyncio__inject_push_batch(asyncio__inject *q, asyncio__task *first, asyncio__task *last,
                                size_t n)
{
    ASYNCIO_ASSERT(first != NULL && last != NULL && n > 0);
    last->next = NULL;
    asyncio__mutex_lock(&q->lock);
    if (q->closed) {
        asyncio__mutex_unlock(&q->lock);
        return false;
    }
    if (q->fifo.tail != NULL)
        q->fifo.tail->next = first;
    else
        q->fifo.head = first;
    q->fifo.tail = last;
    /*
     * The lock orders the entries; len is a hint outside it. The store is
     * seq_cst for the idle protocol (sched/mt.h): the pusher's seq_cst load
     * of the idle word that follows cannot pass it.
     */
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                          memory_order_seq_cst);
    asyncio__mutex_unlock(&q->lock);
    return true;
}

asyncio__task *asyncio__inject_pop(asyncio__inject *q)
{
    /* Skip the lock when it looks empty; an entry pushed meanwhile is seen next time. */
    if (atomic_load_explicit(&q->len, memory_order_relaxed) == 0)
        return NULL;
    asyncio__mutex_lock(&q->lock);
    asyncio__task *t = asyncio__fifo_pop(&q->fifo);
    if (t != NULL) {
        atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    asyncio__mutex_unlock(&q->lock);
    return t;
}

size_t asyncio__inject_len(const asyncio__inject *q)
{
    /* seq_cst: the parker's check in the idle protocol (sched/mt.h); a plain load on x86. */
    return atomic_load_explicit(&q->len, memory_order_seq_cst);
}

bool asyncio__inject_close(asyncio__inject *q)
{
    asyncio__mutex_lock(&q->lock);
    bool was_open = !q->closed;
    q->closed = true;
    asyncio__mutex_unlock(&q->lock);
    return was_open;
}

bool asyncio__inject_is_closed(asyncio__inject *q)
{
    asyncio__mutex_lock(&q->lock);
    bool closed = q->closed;
    asyncio__mutex_unlock(&q->lock);
    return closed;
}

/* ------------------------------------------------------------------------ */
/* Local queue: head packing                                                 */

static uint64_t pack(uint32_t steal, uint32_t real)
{
    return (uint64_t)steal << 32 | real;
}

static uint32_t steal_of(uint64_t head)
{
    return (uint32_t)(head >> 32);
}

static uint32_t real_of(uint64_t head)
{
    return (uint32_t)head;
}

/* Every successful head RMW is acq_rel (queue.h); a failed one acquires the value it saw. */
static bool head_cas(asyncio__queue *q, uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(&q->head, expected, desired,
                                                   memory_order_acq_rel, memory_order_acquire);
}

void asyncio__queue_init(asyncio__queue *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->overflows, 0);
    for (uint32_t i = 0; i < CAPACITY; i++)
        q->buffer[i] = NULL;
}

void asyncio__queue_destroy(asyncio__queue *q)
{
    ASYNCIO_CHECK(asyncio__queue_is_empty(q)); /* an entry left here would leak its task */
}

uint32_t asyncio__queue_len(const asyncio__queue *q)
{
    /*
     * A snapshot (queue.h): nothing is read on the strength of it. seq_cst
     * loads (plain loads on x86) because a parking worker's "is there work?"
     * check is the reader side of the idle protocol (sched/mt.h).
     */
    uint64_t head = atomic_load_explicit(&((asyncio__queue *)q)->head, memory_order_seq_cst);
    uint32_t tail = atomic_load_explicit(&((asyncio__queue *)q)->tail, memory_order_seq_cst);
    return tail - real_of(head);
}

uint32_t asyncio__queue_remaining_slots(const asyncio__queue *q)
{
    uint64_t head = atomic_load_explicit(&((asyncio__queue *)q)->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&((asyncio__queue *)q)->tail, memory_order_relaxed);
    return CAPACITY - (tail - steal_of(head));
}

/* ------------------------------------------------------------------------ */
/* Local queue: owner side                                                   */

/*
 * The ring is full and no steal is in progress (steal == real == `head`):
 * claim the oldest HALF entries by moving both halves of head past them,
 * then hand them and `t` to the inject queue as one batch. Returns false if
 * a stealer moved head first (the caller retries: there may be room now).
 */
static bool push_overflow(asyncio__queue *q, asyncio__task *t, uint32_t head, uint32_t tail,
                          asyncio__inject *inject, asyncio__task **refused)
{
    ASYNCIO_CHECK(tail - head == CAPACITY);
    uint64_t expected = pack(head, head);
    /*
     * acq_rel (rule of every head RMW). The slots claimed were written by
     * this thread; the acquire pairs with the last stealer release, which
     * the push's head load already saw.
     */
    if (!head_cas(q, &expected, pack(head + HALF, head + HALF)))
        return false;
    asyncio__task *first = q->buffer[head & MASK];
    asyncio__task *last = first;
    for (uint32_t i = 1; i < HALF; i++) {
        asyncio__task *n = q->buffer[(head + i) & MASK];
        last->next = n;
        last = n;
    }
    last->next = t;
    *refused = asyncio__inject_push_batch(inject, first, t, HALF + 1) ? NULL : first;
    return true;
}

/* Relaxed single-writer count (metrics), on the overflow paths only. */
static void count_overflow(asyncio__queue *q)
{
    atomic_store_explicit(&q->overflows,
                          atomic_load_explicit(&q->overflows, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

asyncio__task *asyncio__queue_push_back_or_overflow(asyncio__queue *q, asyncio__task *t,
                                                    asyncio__inject *inject)
{
    ASYNCIO_ASSERT(t != NULL);
    /* Relaxed: only this thread writes tail. */
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        /*
         * Acquire pairs with the release of a stealer's final CAS (steal =
         * real): its reads of the slots we are about to reuse are done.
         */
        uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t steal = steal_of(head), real = real_of(head);
        if (tail - steal < CAPACITY)
            break; /* room at tail */
        if (steal != real) {
            /* Full, but a steal in progress frees room soon: send only t away. */
            count_overflow(q);
            if (asyncio__inject_push(inject, t))
                return NULL;
            t->next = NULL;
            return t;
        }
        asyncio__task *refused;
        if (push_overflow(q, t, real, tail, inject, &refused)) {
            count_overflow(q);
            return refused;
        }
        /* A stealer claimed entries first: look again. */
    }
    q->buffer[tail & MASK] = t;
    /*
     * Release (in seq_cst) pairs with the stealers' acquire load of tail: the
     * slot is written. seq_cst for the idle protocol (sched/mt.h): the
     * pusher's next seq_cst load of the idle word cannot pass this store.
     */
    atomic_store_explicit(&q->tail, tail + 1, memory_order_seq_cst);
    return NULL;
}

asyncio__task *asyncio__queue_pop(asyncio__queue *q)
{
    /* Acquire: a failed CAS below reloads with acquire too (head_cas); see queue.h. */
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed); /* ours */
    uint32_t idx;
    for (;;) {
        uint32_t steal = steal_of(head), real = real_of(head);
        if (real == tail)
            return NULL;
        uint32_t next_real = real + 1;
        /* With no steal in progress both halves move; else the stealer owns steal. */
        uint64_t next = steal == real ? pack(next_real, next_real) : pack(steal, next_real);
        ASYNCIO_ASSERT(steal == real || steal != next_real);
        if (head_cas(q, &head, next)) {
            idx = real & MASK;
            break;
        }
    }
    /* The slot is ours: we wrote it, and the CAS claimed it from every stealer. */
    return q->buffer[idx];
}

/* ------------------------------------------------------------------------ */
/* Local queue: stealer side                                                 */

/*
 * Claims ceil(len / 2) entries of `src` with the steal/real handshake and
 * copies them to dst->buffer from position dst_tail on (not published yet).
 * Returns the count, 0 if there was nothing to take or another steal is
 * running. Steps:
 *   1. load head and tail; give up if steal != real (someone is stealing);
 *   2. CAS head (s, r) -> (s, r + n): real moves past the claim, steal stays,
 *      so the owner still treats [s, r + n) as in use;
 *   3. copy the claimed slots;
 *   4. CAS steal up to the current real (the owner may have popped meanwhile,
 *      moving real, never steal): the slots are the owner's again.
 */
static uint32_t steal_half(asyncio__queue *src, asyncio__queue *dst, uint32_t dst_tail)
{
    /* Acquire: head RMWs are acq_rel; a head value is only acted on after an acquire. */
    uint64_t prev = atomic_load_explicit(&src->head, memory_order_acquire);
    uint64_t next;
    uint32_t n;
    for (;;) {
        uint32_t steal = steal_of(prev), real = real_of(prev);
        /* Acquire pairs with the owner's release store of tail: slots up to it are written. */
        uint32_t tail = atomic_load_explicit(&src->tail, memory_order_acquire);
        if (steal != real)
            return 0; /* step 1: another stealer is copying */
        n = tail - real;
        n -= n / 2;
        if (n == 0)
            return 0;
        next = pack(steal, real + n);
        if (head_cas(src, &prev, next)) /* step 2; acq_rel */
            break;
    }
    ASYNCIO_CHECK(n <= HALF); /* tail - real <= CAPACITY once the CAS confirmed real */
    uint32_t first = steal_of(next);
    for (uint32_t i = 0; i < n; i++) /* step 3 */
        dst->buffer[(dst_tail + i) & MASK] = src->buffer[(first + i) & MASK];
    /*
     * Step 4. Release: our reads of the slots above happen-before the
     * owner's acquire head load that sees steal move, after which it
     * overwrites them. Only we move steal, so a failure means the owner
     * popped (moved real): retry with its value.
     */
    prev = next;
    for (;;) {
        uint32_t real = real_of(prev);
        ASYNCIO_CHECK(steal_of(prev) == first && first != real);
        if (head_cas(src, &prev, pack(real, real)))
            return n;
    }
}

uint32_t asyncio__queue_steal_into(asyncio__queue *src, asyncio__queue *dst, asyncio__task **run)
{
    ASYNCIO_ASSERT(src != dst && run != NULL);
    /* Relaxed: we own dst, nobody else writes its tail. */
    uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    /*
     * Acquire pairs with the release of the final CAS of whoever last stole
     * from dst: slots below its steal were read and may be overwritten.
     */
    uint32_t dst_steal = steal_of(atomic_load_explicit(&dst->head, memory_order_acquire));
    if (dst_tail - dst_steal > HALF)
        return 0; /* dst could not take up to HALF more entries */
    uint32_t n = steal_half(src, dst, dst_tail);
    if (n == 0)
        return 0;
    /* The last one is run at once; only the others are published in dst. */
    *run = dst->buffer[(dst_tail + n - 1) & MASK];
    if (n > 1) {
        /* Release pairs with the acquire tail load of whoever steals from dst;
         * seq_cst for the idle protocol, as in push_back. */
        atomic_store_explicit(&dst->tail, dst_tail + n - 1, memory_order_seq_cst);
    }
    return n;
}

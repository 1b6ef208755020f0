/*
 * Run queues of the multi-thread scheduler: the per-worker local
 * queue that other workers steal from, and the global inject queue it
 * overflows into. Both hold queue entries (asyncio__task pointers, each
 * owning the entry's reference, see task/state.h); neither ever looks at a
 * task's state word, polls it or frees it.
 *
 * ---------------------------------------------------------------------------
 * asyncio__queue: bounded single-producer, multi-consumer ring (Tokio's
 * runtime/scheduler/multi_thread/queue.rs design).
 *
 * A fixed ring of ASYNCIO__QUEUE_CAPACITY entry pointers (a power of two,
 * default 256; a compile-time constant so tests build a tiny-capacity
 * variant with -DASYNCIO__QUEUE_CAPACITY=4). Positions are free-running
 * uint32_t counters that wrap; a position p lives in buffer[p & MASK] and
 * every distance is computed with wrapping subtraction.
 *
 *   head (64-bit atomic)                       tail (32-bit atomic)
 *   bits 63..32   steal                        the next position the owner
 *   bits 31..0    real                         writes; written only by it
 *
 *   real   the first entry nobody has claimed: pop and steal take from here.
 *   steal  the first slot still in use. steal == real except while a
 *          stealer copies [steal, real) out; only that stealer then moves
 *          steal up to real, which hands the slots back to the owner.
 *   tail   one past the last entry written.
 *
 *   buffer:   ... free | being stolen | queued entries | free ...
 *                      ^steal         ^real            ^tail
 *
 * Invariants: tail - steal <= CAPACITY (the owner never writes a slot in
 * [steal, tail)); at most one steal is in progress (a stealer gives up when
 * it sees steal != real); a claim moves real by at most CAPACITY / 2.
 *
 * Who may call what:
 *   owner (one thread at a time; the worker that owns the queue):
 *       push_back_or_overflow, pop, steal_into as the destination, init,
 *       destroy
 *   any thread: steal_into as the source, len, is_empty
 *
 * Orderings (see queue.c, at each operation):
 *   - tail is stored with release (seq_cst, which includes it) by its one
 *     writer (the owner, or a stealer filling its own queue) after writing
 *     the slots, and loaded with acquire by stealers: a stealer reads only
 *     slots it saw published. seq_cst is for the idle protocol (sched/mt.h).
 *   - every successful head read-modify-write is acq_rel and every head load
 *     that decides to write a slot is acquire: the stealer's final
 *     "steal = real" (release) pairs with the owner's head load (acquire) in
 *     push, so the stealer's reads of a slot happen-before the owner reuses it.
 *   - len / is_empty are snapshots (hints, nothing is read on them), loaded
 *     seq_cst for the idle protocol (sched/mt.h).
 *
 * ABA: the head CAS compares both halves; a stealer delayed between loading
 * head and its CAS while the counters advance exactly 2^32 positions could
 * succeed on a stale value. 32-bit halves make that unreachable in practice
 * (Tokio accepts 16-bit halves on 32-bit targets for the same reason).
 *
 * ---------------------------------------------------------------------------
 * asyncio__inject: unbounded multi-producer, multi-consumer FIFO, a mutex
 * around an intrusive singly linked list through asyncio__task.next. It is
 * the global queue: spawns and wakes from outside a worker, and local queue
 * overflow. close() (runtime shutdown) makes every later push refuse its
 * entries, which stay the caller's to drop; pop still drains what is queued.
 * Every function is safe from any thread.
 *
 * The model of the steal protocol is tests/model/queue.pml; the protocol in
 * prose is docs/scheduler.md.
 */
#ifndef ASYNCIO_SCHED_QUEUE_H
#define ASYNCIO_SCHED_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "platform/thread.h"
#include "task/task.h"

#ifndef ASYNCIO__QUEUE_CAPACITY
#define ASYNCIO__QUEUE_CAPACITY 256
#endif

ASYNCIO_STATIC_ASSERT(ASYNCIO__QUEUE_CAPACITY >= 2 &&
                          (ASYNCIO__QUEUE_CAPACITY & (ASYNCIO__QUEUE_CAPACITY - 1)) == 0,
                      "ASYNCIO__QUEUE_CAPACITY must be a power of two >= 2");
ASYNCIO_STATIC_ASSERT(ASYNCIO__QUEUE_CAPACITY <= ((uint32_t)1 << 30),
                      "ASYNCIO__QUEUE_CAPACITY must fit the 32-bit position counters");

#define ASYNCIO__QUEUE_MASK ((uint32_t)ASYNCIO__QUEUE_CAPACITY - 1)

/* ------------------------------------------------------------------------ */
/* FIFO of entries                                                           */

/*
 * A FIFO of entries linked through asyncio__task.next, NULL-terminated. No
 * synchronisation: its owner (or the lock around it) serialises access.
 * The run queue of the current-thread runtime, the pinned lists of the
 * multi-thread one and the inject queue below are all this FIFO.
 */
typedef struct asyncio__task_fifo {
    asyncio__task *head, *tail;
} asyncio__task_fifo;

static inline void asyncio__fifo_push(asyncio__task_fifo *f, asyncio__task *t)
{
    t->next = NULL;
    if (f->tail != NULL)
        f->tail->next = t;
    else
        f->head = t;
    f->tail = t;
}

static inline asyncio__task *asyncio__fifo_pop(asyncio__task_fifo *f)
{
    asyncio__task *t = f->head;
    if (t != NULL) {
        f->head = t->next;
        if (f->head == NULL)
            f->tail = NULL;
        t->next = NULL;
    }
    return t;
}

/* ------------------------------------------------------------------------ */
/* Global inject queue                                                       */

typedef struct asyncio__inject {
    asyncio__mutex lock;
    asyncio__task_fifo fifo; /* guarded by lock */
    bool closed;                /* guarded by lock */
    _Atomic size_t len;         /* written under lock; read without it as a hint */
} asyncio__inject;

/* 0, or a negative error from the mutex (nothing to close then). */
int asyncio__inject_init(asyncio__inject *q);

/* Frees the lock. The queue must be empty (checked): drain it with pop first. */
void asyncio__inject_destroy(asyncio__inject *q);

/*
 * Appends one entry. Returns false, leaving the entry (and its reference)
 * with the caller, if the queue is closed.
 */
ASYNCIO__MUST_USE bool asyncio__inject_push(asyncio__inject *q, asyncio__task *t);

/*
 * Appends `n` entries already linked first -> ... -> last through next
 * (last->next is ignored), in that order, under one lock. Returns false,
 * leaving all of them with the caller, if the queue is closed.
 */
ASYNCIO__MUST_USE bool asyncio__inject_push_batch(asyncio__inject *q, asyncio__task *first, asyncio__task *last,
                                size_t n);

/* Removes the oldest entry; NULL when empty (closed or not). */
asyncio__task *asyncio__inject_pop(asyncio__inject *q);

/* Entries queued (a snapshot: exact only if nobody pushes or pops meanwhile). */
size_t asyncio__inject_len(const asyncio__inject *q);

static inline bool asyncio__inject_is_empty(const asyncio__inject *q)
{
    return asyncio__inject_len(q) == 0;
}

/* Refuses every later push. Returns true for the call that closed it. */
bool asyncio__inject_close(asyncio__inject *q);

bool asyncio__inject_is_closed(asyncio__inject *q);

/* ------------------------------------------------------------------------ */
/* Local work-stealing queue                                                 */

typedef struct asyncio__queue {
    _Atomic uint64_t head; /* steal << 32 | real; see the table above */
    _Atomic uint32_t tail; /* written only by the owner */
    _Atomic uint64_t overflows; /* pushes that sent entries to inject (owner writes; metrics) */
    asyncio__task *buffer[ASYNCIO__QUEUE_CAPACITY];
} asyncio__queue;

void asyncio__queue_init(asyncio__queue *q);

/* The queue must be empty (checked): the owner drains it at shutdown. */
void asyncio__queue_destroy(asyncio__queue *q);

/*
 * Owner: appends `t`. When the ring is full, the oldest CAPACITY / 2 entries
 * and then `t` move to `inject` in one batch (or only `t` if a steal is in
 * progress: that steal is about to free room). Returns NULL when every entry
 * is queued somewhere; if `inject` is closed, returns the entries it refused,
 * linked through next and NULL-terminated, for the caller to drop.
 */
ASYNCIO__MUST_USE asyncio__task *asyncio__queue_push_back_or_overflow(asyncio__queue *q, asyncio__task *t,
                                                    asyncio__inject *inject);

/* Owner: removes the oldest unclaimed entry; NULL when there is none. */
asyncio__task *asyncio__queue_pop(asyncio__queue *q);

/*
 * Called by the owner of `dst` (any thread may be `src`'s owner): claims
 * half of `src`'s entries (rounded up), the oldest ones. Returns how many it
 * took: 0 if `src` is empty, another steal from `src` is in progress, or
 * `dst` has fewer than CAPACITY / 2 free slots. Otherwise the last one
 * stolen is returned in *run (to be run at once) and the others are
 * appended to `dst` in order. `src` != `dst`.
 */
uint32_t asyncio__queue_steal_into(asyncio__queue *src, asyncio__queue *dst, asyncio__task **run);

/*
 * Entries not yet claimed (tail - real). Exact for the owner when no steal
 * runs; from other threads a relaxed snapshot, good for choosing a victim.
 */
uint32_t asyncio__queue_len(const asyncio__queue *q);

static inline bool asyncio__queue_is_empty(const asyncio__queue *q)
{
    return asyncio__queue_len(q) == 0;
}

/* Owner: slots push_back can fill before it overflows (CAPACITY - (tail - steal)). */
uint32_t asyncio__queue_remaining_slots(const asyncio__queue *q);

#endif

/*
 * libasyncio: an async barrier (Tokio's Barrier).
 *
 * A barrier for n parties: each party awaits an asyncio_barrier_wait
 * future; the first n - 1 arrivals wait, and the n-th completes the
 * generation: every waiter of that generation is woken and completes, and
 * the barrier is reset for the next n arrivals (it is reusable). Exactly
 * one party of each generation is told it is the leader: the one whose
 * arrival completed it.
 *
 * An arrival is counted at the first poll of a wait future (not at _init).
 *
 * Objects and ownership: asyncio_barrier is an opaque heap object (one
 * allocation, at _new; none per wait), owned by the caller and freed with
 * asyncio_barrier_free once no wait future is queued on it.
 *
 * Futures: asyncio_barrier_wait is embeddable (full struct below; every
 * field private), with _init (never fails, allocates nothing), _poll and
 * _drop under the contract of sync.h: movable until its first poll,
 * polled and dropped by one thread at a time, a finished future's poll
 * returns its result again.
 *
 * Cancellation (what dropping loses): dropping a wait that is still
 * waiting withdraws its arrival: the generation then needs one more party
 * (Tokio keeps the arrival instead; here a cancelled party is not counted
 * as having reached the barrier). Dropping a wait whose generation already
 * completed loses nothing: the others were released all the same.
 *
 * Thread-safety: every function is safe from any thread, inside a task or
 * not. One internal lock; wakers are woken after it is released.
 */
#ifndef ASYNCIO_BARRIER_H
#define ASYNCIO_BARRIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

/** A reusable barrier for n parties. Opaque; see the file comment. */
typedef struct asyncio_barrier asyncio_barrier;

/** One party's wait at the barrier: an embeddable future (see the file comment). */
typedef struct asyncio_barrier_wait {
    /* private (guarded by the barrier's lock while queued) */
    asyncio_link link; /* in the barrier's waiter list while waiting */
    asyncio_barrier *barrier;
    asyncio_waker waker;
    uint64_t generation; /* the generation it arrived in */
    bool leader;         /* its arrival completed the generation */
    uint8_t state;       /* see src/sync/barrier.c */
} asyncio_barrier_wait;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a barrier for n parties. Errors: ASYNCIO_EINVAL (out NULL,
 * n == 0), ASYNCIO_ENOMEM. Any thread.
 */
ASYNCIO_EXTERN int asyncio_barrier_new(asyncio_barrier **out, size_t n);

/**
 * Frees the barrier. Errors: ASYNCIO_EBUSY while a wait is queued (nothing
 * freed). NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_barrier_free(asyncio_barrier *b);

/** Parties waiting right now in the current generation (a snapshot). Any thread. */
ASYNCIO_EXTERN size_t asyncio_barrier_waiting(asyncio_barrier *b);

/** Initialises a wait on `b` (which must outlive it). Allocates nothing, never fails. */
ASYNCIO_EXTERN void asyncio_barrier_wait_init(asyncio_barrier_wait *w, asyncio_barrier *b);

/**
 * Polls the wait. The first poll counts the arrival. Returns 0 once the
 * generation it arrived in is complete, with *is_leader (if non-NULL) set
 * to true for exactly one party per generation; or ASYNCIO_PENDING with
 * cx's waker stored. Errors: ASYNCIO_EINVAL (NULL w or cx, never
 * initialised). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_barrier_wait_poll(asyncio_barrier_wait *w, asyncio_context *cx,
                                             bool *is_leader);

/**
 * Cancels: a wait still waiting leaves at once and its arrival is
 * withdrawn (see the file comment). Idempotent. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_barrier_wait_drop(asyncio_barrier_wait *w);

ASYNCIO_END_DECLS

#endif

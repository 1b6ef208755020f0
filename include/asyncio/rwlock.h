/*
 * libasyncio: an async reader-writer lock (Tokio's RwLock).
 *
 * Many readers or one writer. Waiting suspends the task, not the thread.
 * The lock guards no data by itself: the caller's data is protected by
 * convention, and the lock may be held across awaits and released from
 * another thread.
 *
 * Fair and writer-preferring: requests are served strictly in arrival
 * (FIFO) order. A queued writer therefore blocks every reader that comes
 * after it, even while the lock is read-held, so a stream of readers cannot
 * starve a writer; and a writer cannot starve the readers queued before it.
 * Underneath it is a semaphore (sync.h) of ASYNCIO_RWLOCK_MAX_READERS
 * permits: a read takes one, a write takes all of them, collecting them as
 * the current readers leave (a partial grant). Uncontended read lock and
 * unlock, write lock and unlock are one atomic compare-and-swap each.
 *
 * Objects and ownership: asyncio_rwlock is an opaque heap object (one
 * allocation, at _new; none per operation), owned by the caller and freed
 * with asyncio_rwlock_free once no future refers to it.
 *
 * Futures: asyncio_rwlock_read and asyncio_rwlock_write are embeddable
 * (full structs below; every field private), with _init (never fails,
 * allocates nothing), _poll and _drop, under the contract of sync.h:
 * movable until their first poll, polled and dropped by one thread at a
 * time, a finished future's poll returns its result again.
 *
 * Cancellation (what dropping loses): nothing. A dropped queued request
 * leaves the queue at once; the permits a queued writer had already
 * collected are handed on to the next requests (or back to the lock), and
 * a lock granted to a future that no poll observed yet is passed on the
 * same way. After a poll returned 0 the caller holds the lock and _drop
 * leaves it alone: release it with the matching _unlock.
 *
 * Thread-safety: every function is safe from any thread, inside a task or
 * not; wakers are woken after the internal lock is released.
 */
#ifndef ASYNCIO_RWLOCK_H
#define ASYNCIO_RWLOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "error.h"
#include "sync.h"
#include "task.h"

/** An async reader-writer lock. Opaque; see the file comment. */
typedef struct asyncio_rwlock asyncio_rwlock;

/**
 * The largest number of readers that may hold the lock at once (below
 * ASYNCIO_SEMAPHORE_MAX_PERMITS also where size_t has 32 bits).
 */
#define ASYNCIO_RWLOCK_MAX_READERS ((size_t)1 << 28)

/** Waiting for a read lock: an embeddable future (see the file comment). */
typedef struct asyncio_rwlock_read {
    /* private */
    asyncio_semaphore_acquire acquire; /* one permit */
} asyncio_rwlock_read;

/** Waiting for the write lock: an embeddable future (see the file comment). */
typedef struct asyncio_rwlock_write {
    /* private */
    asyncio_semaphore_acquire acquire; /* every permit */
} asyncio_rwlock_write;

ASYNCIO_BEGIN_DECLS

/** Creates an unlocked rwlock. Errors: ASYNCIO_EINVAL (out NULL), ASYNCIO_ENOMEM. Any thread. */
ASYNCIO_EXTERN int asyncio_rwlock_new(asyncio_rwlock **out);

/**
 * Frees the rwlock. Errors: ASYNCIO_EBUSY while a read or write future is
 * queued (nothing freed: drop or complete it first). Freeing a held lock
 * nobody waits for is allowed. NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_rwlock_free(asyncio_rwlock *rw);

/**
 * Takes a read lock now if no writer holds the lock and nobody is queued
 * (a try never overtakes a queued writer). Errors: ASYNCIO_EAGAIN (write
 * held, requests queued, or ASYNCIO_RWLOCK_MAX_READERS readers),
 * ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_rwlock_try_read(asyncio_rwlock *rw);

/**
 * Takes the write lock now if it is entirely free and nobody is queued.
 * Errors: ASYNCIO_EAGAIN, ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_rwlock_try_write(asyncio_rwlock *rw);

/**
 * Releases one read lock (held by the caller), waking the requests it
 * unblocks. Any thread. Releasing a read lock that was not taken is a bug:
 * an always-on check catches it when the lock's count would overflow
 * (nobody holds it and nobody waits); otherwise it is not detected.
 */
ASYNCIO_EXTERN void asyncio_rwlock_read_unlock(asyncio_rwlock *rw);

/**
 * Releases the write lock (held by the caller). Any thread. Unlocking a
 * lock that is not write-held is a bug: an always-on check catches it
 * while no request is queued; with requests queued it is not detected.
 */
ASYNCIO_EXTERN void asyncio_rwlock_write_unlock(asyncio_rwlock *rw);

/**
 * Turns the caller's write lock into a read lock without letting a writer
 * in between (readers queued at the head may now join). Release it later
 * with asyncio_rwlock_read_unlock. Any thread.
 */
ASYNCIO_EXTERN void asyncio_rwlock_downgrade(asyncio_rwlock *rw);

/** Initialises a read-lock future on `rw` (which must outlive it). Allocates nothing. */
ASYNCIO_EXTERN void asyncio_rwlock_read_init(asyncio_rwlock_read *r, asyncio_rwlock *rw);

/**
 * Polls: 0 once the caller holds a read lock (release it with
 * asyncio_rwlock_read_unlock), or ASYNCIO_PENDING queued with cx's waker
 * stored. Errors: ASYNCIO_EINVAL (NULL). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_rwlock_read_poll(asyncio_rwlock_read *r, asyncio_context *cx);

/** Cancels (see the file comment: nothing is lost). Idempotent. Owner thread. */
ASYNCIO_EXTERN void asyncio_rwlock_read_drop(asyncio_rwlock_read *r);

/** Initialises a write-lock future on `rw` (which must outlive it). Allocates nothing. */
ASYNCIO_EXTERN void asyncio_rwlock_write_init(asyncio_rwlock_write *w, asyncio_rwlock *rw);

/**
 * Polls: 0 once the caller holds the write lock (release it with
 * asyncio_rwlock_write_unlock), or ASYNCIO_PENDING queued with cx's waker
 * stored; while queued it collects the lock from the readers as they
 * leave, and blocks every later request. Errors: ASYNCIO_EINVAL (NULL).
 * Owner thread.
 */
ASYNCIO_EXTERN int asyncio_rwlock_write_poll(asyncio_rwlock_write *w, asyncio_context *cx);

/**
 * Cancels: leaves the queue at once, handing the read permits it had
 * collected on to the next requests (see the file comment). Idempotent.
 * Owner thread.
 */
ASYNCIO_EXTERN void asyncio_rwlock_write_drop(asyncio_rwlock_write *w);

ASYNCIO_END_DECLS

#endif

/*
 * libasyncio: coordination primitives — semaphore, notify, async mutex.
 *
 * Objects: asyncio_semaphore, asyncio_notify and asyncio_mutex are opaque
 * heap objects (one allocation each, at _new; none per operation). The
 * caller owns them and frees them with _free once no future refers to them
 * any more (_free returns ASYNCIO_EBUSY, freeing nothing, while a waiter is
 * still queued). They are shared by reference: put the pointer wherever
 * tasks and threads need it, and make sure it outlives every future
 * initialised on it.
 *
 * Futures: asyncio_semaphore_acquire, asyncio_notified and
 * asyncio_mutex_lock are embeddable (full structs below; touch no field,
 * all are private). Each has _init (allocates nothing, never fails), _poll
 * and _drop. _drop cancels: it unlinks the future's waiter node
 * synchronously, so after it returns the primitive holds no reference to
 * the struct and its memory may be reused. _drop is idempotent and fine on
 * a never-polled or finished future; it must be called before the memory
 * goes away if the future was ever polled. A future is polled and dropped
 * by one thread at a time (its owner); polling a finished future returns
 * its result again. Each is movable until its first poll (e.g. initialised
 * in a task's initial state that asyncio_spawn copies): after it, the
 * primitive's waiter list may point at it, so it stays put until dropped.
 *
 * Thread-safety: every function on the primitives themselves is safe from
 * any thread, inside a task or not. Each primitive has one internal lock;
 * wakers are woken after it is released. The semaphore and the mutex take
 * it only when someone waits: uncontended acquire / try_acquire / release
 * (lock / try_lock / unlock) are one atomic compare-and-swap each. Futures'
 * _poll takes one unit of the task's cooperative budget
 * (asyncio_coop_proceed) before completing.
 *
 * Closed: a closed semaphore fails pending and later acquires with
 * ASYNCIO_ECLOSED. docs/sync.md has the protocols and examples.
 */
#ifndef ASYNCIO_SYNC_H
#define ASYNCIO_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                 */

/** A counting semaphore with fair (FIFO) waiters. Opaque; see above. */
typedef struct asyncio_semaphore asyncio_semaphore;

/** The largest number of permits a semaphore may hold (and an acquire may ask for). */
#define ASYNCIO_SEMAPHORE_MAX_PERMITS (SIZE_MAX >> 3)

/**
 * An acquire of n permits: an embeddable future (see the file comment).
 *
 * Fairness: waiters are served strictly in FIFO order. Released permits go
 * to the head waiter first, even partially: a waiter asking for many
 * permits collects them as they are released and later (smaller) requests
 * wait behind it, so large requests are never starved.
 */
typedef struct asyncio_semaphore_acquire {
    /* private (all fields are guarded by the semaphore's lock while queued) */
    asyncio_link link;      /* in the semaphore's waiter list while WAITING */
    asyncio_semaphore *sem; /* the semaphore */
    size_t wanted;          /* permits asked for */
    size_t needed;          /* permits not yet assigned (wanted - partial grant) */
    asyncio_waker waker;    /* woken when fully granted or closed */
    int result;             /* ASYNCIO_PENDING while queued, then 0 or ASYNCIO_ECLOSED */
    uint8_t state;          /* see src/sync/semaphore.c */
} asyncio_semaphore_acquire;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a semaphore holding `permits` permits.
 * Errors: ASYNCIO_EINVAL (out NULL, permits > ASYNCIO_SEMAPHORE_MAX_PERMITS),
 * ASYNCIO_ENOMEM. Any thread.
 */
ASYNCIO_EXTERN int asyncio_semaphore_new(asyncio_semaphore **out, size_t permits);

/**
 * Frees the semaphore. Errors: ASYNCIO_EBUSY if an acquire is still queued
 * (nothing is freed: drop or complete it first). NULL is a no-op. Nothing
 * may use the semaphore afterwards.
 */
ASYNCIO_EXTERN int asyncio_semaphore_free(asyncio_semaphore *sem);

/**
 * Takes n permits now if that is possible without overtaking a queued
 * waiter. Errors: ASYNCIO_EAGAIN (not enough permits, or waiters are
 * queued), ASYNCIO_ECLOSED (closed), ASYNCIO_EINVAL (NULL, n too large).
 * Any thread.
 */
ASYNCIO_EXTERN int asyncio_semaphore_try_acquire(asyncio_semaphore *sem, size_t n);

/**
 * Returns n permits (taken earlier by an acquire) to the semaphore, handing
 * them to queued waiters in FIFO order and waking the ones that become
 * fully granted. Also works on a closed semaphore (the permits are counted
 * but nobody waits any more). Errors: ASYNCIO_EINVAL (NULL),
 * ASYNCIO_EOVERFLOW (the total would exceed ASYNCIO_SEMAPHORE_MAX_PERMITS;
 * nothing is added). Any thread.
 */
ASYNCIO_EXTERN int asyncio_semaphore_release(asyncio_semaphore *sem, size_t n);

/**
 * Adds n new permits: the same operation as asyncio_semaphore_release,
 * named for growing a semaphore rather than giving permits back.
 */
ASYNCIO_EXTERN int asyncio_semaphore_add_permits(asyncio_semaphore *sem, size_t n);

/**
 * Permits available right now (0 while waiters are queued: released
 * permits go to them first). A snapshot: may change at once. Any thread.
 */
ASYNCIO_EXTERN size_t asyncio_semaphore_available_permits(asyncio_semaphore *sem);

/**
 * Closes the semaphore: every queued acquire completes with ASYNCIO_ECLOSED
 * (each is woken; permits partially granted to them go back to the count),
 * and every later acquire and try_acquire fails with ASYNCIO_ECLOSED.
 * Permits already held stay valid and may still be released. Idempotent.
 * Any thread.
 */
ASYNCIO_EXTERN void asyncio_semaphore_close(asyncio_semaphore *sem);

/** True once asyncio_semaphore_close was called. Any thread. */
ASYNCIO_EXTERN bool asyncio_semaphore_is_closed(asyncio_semaphore *sem);

/**
 * Initialises an acquire of n permits from `sem` (which must outlive the
 * future). Allocates nothing, touches nothing shared, never fails; an
 * invalid request (n > ASYNCIO_SEMAPHORE_MAX_PERMITS) fails at the first
 * poll with ASYNCIO_EINVAL. n == 0 completes at once (unless closed).
 */
ASYNCIO_EXTERN void asyncio_semaphore_acquire_init(asyncio_semaphore_acquire *a,
                                                   asyncio_semaphore *sem, size_t n);

/**
 * Polls the acquire. Returns 0 once the n permits are the caller's (give
 * them back with asyncio_semaphore_release), ASYNCIO_PENDING having queued
 * the future and stored a clone of cx's waker, or an error:
 * ASYNCIO_ECLOSED (closed before it was granted), ASYNCIO_EINVAL (NULL, n
 * too large). The first poll may take the permits that are available
 * right now as a partial grant. Owner thread; inside a task or with a
 * hand-made context.
 */
ASYNCIO_EXTERN int asyncio_semaphore_acquire_poll(asyncio_semaphore_acquire *a,
                                                  asyncio_context *cx);

/**
 * Cancels the acquire if it is still queued: unlinks it synchronously and
 * hands the permits granted to it so far on to the next waiters (or back
 * to the count). If it was fully granted but the grant was never observed
 * by a poll returning 0, those permits go back too. After a poll returned
 * 0 the permits belong to the caller and drop leaves them alone.
 * Idempotent. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_semaphore_acquire_drop(asyncio_semaphore_acquire *a);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Notify                                                                    */

/**
 * Wakes tasks waiting for an event (Tokio's Notify). Opaque; see above.
 *
 * notify_one wakes the oldest waiter, or, if none waits, stores one permit
 * (at most one) that the next notified future consumes at once.
 * notify_waiters wakes every notified future initialised before the call
 * and stores no permit. A notified future does not miss a notify issued
 * between its _init and its first poll: a notify_waiters is detected by a
 * call counter sampled at _init, a notify_one by the stored permit.
 */
typedef struct asyncio_notify asyncio_notify;

/** A wait for a notification: an embeddable future (see the file comment). */
typedef struct asyncio_notified {
    /* private (guarded by the notify's lock while queued) */
    asyncio_link link; /* in the notify's waiter list while WAITING */
    asyncio_notify *notify;
    uint64_t calls; /* notify_waiters calls seen at _init */
    asyncio_waker waker;
    uint8_t notified; /* NONE / ONE / ALL: set by the notifier, see src/sync/notify.c */
    uint8_t state;
} asyncio_notified;

ASYNCIO_BEGIN_DECLS

/** Creates a notify. Errors: ASYNCIO_EINVAL (out NULL), ASYNCIO_ENOMEM. */
ASYNCIO_EXTERN int asyncio_notify_new(asyncio_notify **out);

/**
 * Frees a notify. Errors: ASYNCIO_EBUSY while a notified future is queued
 * (nothing freed). NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_notify_free(asyncio_notify *n);

/** Wakes the oldest queued waiter, or stores a permit if none. Any thread. */
ASYNCIO_EXTERN void asyncio_notify_one(asyncio_notify *n);

/**
 * Wakes every notified future initialised before this call (queued or not
 * yet polled). Stores no permit. Any thread.
 */
ASYNCIO_EXTERN void asyncio_notify_waiters(asyncio_notify *n);

/**
 * Initialises a notified future on `n` (which must outlive it): samples
 * the notify_waiters counter, so a notify_waiters from now on completes
 * it. Allocates nothing, never fails. Any thread.
 */
ASYNCIO_EXTERN void asyncio_notified_init(asyncio_notified *f, asyncio_notify *n);

/**
 * Polls: 0 once notified (a notify_waiters since _init, a stored permit,
 * or a notify_one that picked this waiter), otherwise ASYNCIO_PENDING with
 * the future queued (FIFO) and cx's waker stored. Errors: ASYNCIO_EINVAL
 * (NULL or never initialised). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_notified_poll(asyncio_notified *f, asyncio_context *cx);

/**
 * Cancels: unlinks synchronously. If a notify_one had picked this waiter
 * and no poll returned 0 yet, the notification is passed on to the next
 * waiter (or stored as the permit), so it is never lost. Idempotent.
 * Owner thread.
 */
ASYNCIO_EXTERN void asyncio_notified_drop(asyncio_notified *f);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Async mutex                                                               */

/**
 * A mutual-exclusion lock for tasks: waiting for it suspends the task, not
 * the thread, and waiters get it in FIFO order (a semaphore of one permit
 * underneath). It guards no data by itself: the caller's data is protected
 * by convention. Unlike a thread mutex it may be held across an await and
 * released from another thread. Opaque; see above.
 */
typedef struct asyncio_mutex asyncio_mutex;

/** Waiting for the mutex: an embeddable future (see the file comment). */
typedef struct asyncio_mutex_lock {
    /* private */
    asyncio_semaphore_acquire acquire;
} asyncio_mutex_lock;

ASYNCIO_BEGIN_DECLS

/** Creates an unlocked mutex. Errors: ASYNCIO_EINVAL (out NULL), ASYNCIO_ENOMEM. */
ASYNCIO_EXTERN int asyncio_mutex_new(asyncio_mutex **out);

/**
 * Frees the mutex. Errors: ASYNCIO_EBUSY while a lock future is queued
 * (nothing freed). Freeing a locked mutex with no waiters is allowed.
 * NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_mutex_free(asyncio_mutex *m);

/**
 * Takes the mutex if it is free and nobody waits. Errors: ASYNCIO_EAGAIN
 * (held or contended), ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_mutex_try_lock(asyncio_mutex *m);

/**
 * Releases the mutex (held by the caller: a poll returned 0 or try_lock
 * succeeded), handing it to the oldest waiter. Unlocking an unlocked mutex
 * is a bug, caught by an always-on check. Any thread.
 */
ASYNCIO_EXTERN void asyncio_mutex_unlock(asyncio_mutex *m);

/** Initialises a lock future on `m` (which must outlive it). Allocates nothing. */
ASYNCIO_EXTERN void asyncio_mutex_lock_init(asyncio_mutex_lock *l, asyncio_mutex *m);

/**
 * Polls: 0 once the caller holds the mutex (release it with
 * asyncio_mutex_unlock), or ASYNCIO_PENDING with the future queued and cx's
 * waker stored. Errors: ASYNCIO_EINVAL (NULL). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_mutex_lock_poll(asyncio_mutex_lock *l, asyncio_context *cx);

/**
 * Cancels a queued lock synchronously; if the mutex had been handed to it
 * but no poll returned 0 yet, it is passed on to the next waiter. After a
 * poll returned 0 the caller holds the mutex and drop leaves it alone.
 * Idempotent. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_mutex_lock_drop(asyncio_mutex_lock *l);

ASYNCIO_END_DECLS

#endif

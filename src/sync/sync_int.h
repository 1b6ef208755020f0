/*
 * Internals shared by the sync primitives: the semaphore's layout (the
 * async mutex and the bounded mpsc channel embed one) and a small batch of
 * wakers gathered under a lock and woken after it is released. Waiting
 * futures embed an asyncio_link, which is the list node type itself.
 */
#ifndef ASYNCIO_SYNC_INT_H
#define ASYNCIO_SYNC_INT_H

#include <stdalign.h>
#include <stdatomic.h>

#include "asyncio/sync.h"
#include "internal.h"
#include "platform/thread.h"
#include "util/list.h"

/*
 * A semaphore: one atomic state word for the lock-free fast paths, a mutex
 * and a FIFO waiter list for the slow ones (src/sync/semaphore.c owns every
 * transition and documents the protocol).
 *
 * state (size_t):
 *   bit 0      SEM_CLOSED   set once by close (under `lock`), never cleared
 *   bit 1      SEM_WAITERS  `waiters` is non-empty; set and cleared only
 *                           under `lock`, together with the list change
 *   bits 2..   permits available, assigned to nobody
 *                           (ASYNCIO_SEMAPHORE_MAX_PERMITS leaves the room)
 * Invariant: SEM_WAITERS => permits == 0, unless SEM_CLOSED (released
 * permits always go to the head waiter first), which is what keeps the
 * lock-free try_acquire from overtaking a queued waiter.
 *
 * Deferred release (only semaphores made with asyncio__semaphore_init_deferred,
 * the bounded channel's): one releaser adds permits to `deferred`, a word
 * on its own cache line, instead of `state`; a taker that finds too few
 * permits collects them under the lock before it concludes there are none.
 * `waiters_hint` tells the releaser that someone waits, so it must hand
 * its permits over at once.
 */
#define ASYNCIO__SEM_CLOSED  ((size_t)1)
#define ASYNCIO__SEM_WAITERS ((size_t)2)
#define ASYNCIO__SEM_SHIFT   2

struct asyncio_semaphore {
    _Atomic size_t state;      /* see above */
    asyncio__mutex lock;       /* guards `waiters` and every queued acquire's fields */
    asyncio__list waiters;     /* asyncio_semaphore_acquire.link, FIFO */
    bool deferred_ok;          /* made by asyncio__semaphore_init_deferred; never changes */
    char pad[64];              /* keeps the takers' `state` off the releaser's line */
    _Atomic size_t deferred;   /* permits released by release_deferred, not yet in `state` */
    _Atomic bool waiters_hint; /* SEM_WAITERS, or a taker is collecting `deferred` */
};

int asyncio__semaphore_init(asyncio_semaphore *sem, size_t permits);
/* The same, with deferred release enabled (see above). */
int asyncio__semaphore_init_deferred(asyncio_semaphore *sem, size_t permits);
/* The semaphore must have no waiters. */
void asyncio__semaphore_destroy(asyncio_semaphore *sem);
/* True if an acquire is queued (takes the lock). */
bool asyncio__semaphore_has_waiters(asyncio_semaphore *sem);
/*
 * asyncio_semaphore_release with a ceiling on the resulting count: returns
 * ASYNCIO_EOVERFLOW (adding nothing) if permits + n would exceed `cap`.
 * The mutex and the bounded channel know their total, so a double release
 * is caught.
 */
int asyncio__semaphore_release_capped(asyncio_semaphore *sem, size_t n, size_t cap);
/*
 * Gives one permit back through `deferred` (a semaphore made with
 * asyncio__semaphore_init_deferred; one releasing thread at a time). No
 * lock and no write to the takers' word unless a waiter is queued, in
 * which case everything deferred is handed over at once (FIFO, woken).
 * `cap` as in release_capped: an always-on check catches more permits
 * than that.
 */
void asyncio__semaphore_release_deferred(asyncio_semaphore *sem, size_t cap);

/*
 * Wakers gathered under a lock, woken after it is released. When the batch
 * is full the caller unlocks, wakes, relocks and continues (Tokio's
 * WakeList), so waking N waiters never allocates.
 */
#define ASYNCIO__WAKE_BATCH 32

typedef struct asyncio__wake_batch {
    asyncio_waker w[ASYNCIO__WAKE_BATCH];
    unsigned n;
} asyncio__wake_batch;

static inline void asyncio__wake_batch_init(asyncio__wake_batch *b)
{
    b->n = 0;
}

static inline bool asyncio__wake_batch_full(const asyncio__wake_batch *b)
{
    return b->n == ASYNCIO__WAKE_BATCH;
}

/* Moves *w (which becomes empty) into the batch; the batch must not be full. */
static inline void asyncio__wake_batch_push(asyncio__wake_batch *b, asyncio_waker *w)
{
    ASYNCIO_ASSERT(b->n < ASYNCIO__WAKE_BATCH);
    b->w[b->n++] = *w;
    *w = ASYNCIO_WAKER_EMPTY;
}

/* Wakes (and releases) every waker in the batch. Call with no lock held. */
static inline void asyncio__wake_batch_wake(asyncio__wake_batch *b)
{
    for (unsigned i = 0; i < b->n; i++)
        asyncio_waker_wake(&b->w[i]);
    b->n = 0;
}

/*
 * What the broadcast and the watch channel share (src/sync/fanout.c): the
 * channel's lock, the receivers waiting for the next change (each linked
 * through its own waiter node, with its waker) and the lifetime counts.
 * Every field is under `lock`.
 *   senders    sender references; the last one's drop closes the channel
 *   receivers  receivers alive
 *   refs       senders + receivers: the channel is freed with the last
 * A drop that returns true was the last reference: the caller calls
 * asyncio__fanout_destroy and frees the channel (no lock held).
 */
typedef struct asyncio__fanout {
    asyncio__mutex lock;
    asyncio__list waiters; /* asyncio__fanout_waiter.link */
    size_t senders;
    size_t receivers;
    size_t refs;
} asyncio__fanout;

/* A receiver's place in `waiters` (guarded by the channel's lock). */
typedef struct asyncio__fanout_waiter {
    asyncio_link link; /* linked while its receiver waits */
    asyncio_waker waker;
} asyncio__fanout_waiter;

/* One sender, no receiver. Errors: those of asyncio__mutex_init. */
int asyncio__fanout_init(asyncio__fanout *f);
/* Nobody may wait any more (always-on check). */
void asyncio__fanout_destroy(asyncio__fanout *f);
/* Under the lock: counts a new receiver and initialises its waiter. */
void asyncio__fanout_add_receiver_locked(asyncio__fanout *f, asyncio__fanout_waiter *w);
/* One more sender reference (takes the lock). */
void asyncio__fanout_sender_clone(asyncio__fanout *f);
/*
 * Drops a sender reference. The last one calls on_close(f) under the lock
 * (NULL: nothing to mark), then wakes every waiter. True: free the channel.
 */
bool asyncio__fanout_sender_drop(asyncio__fanout *f, void (*on_close)(asyncio__fanout *f));
/* Drops a receiver: unlinks its waiter, releases its waker. True: free the channel. */
bool asyncio__fanout_receiver_drop(asyncio__fanout *f, asyncio__fanout_waiter *w);
/* Receivers alive (takes the lock). */
size_t asyncio__fanout_receivers(asyncio__fanout *f);
/* Wakes every waiter (in batches); the lock is held on entry and released on return. */
void asyncio__fanout_wake_all_and_unlock(asyncio__fanout *f);
/*
 * Under the lock: makes w wait with cx's waker (kept if it wakes the same
 * task). Returns the waker it replaced: drop it after unlocking.
 */
asyncio_waker asyncio__fanout_wait_locked(asyncio__fanout *f, asyncio__fanout_waiter *w,
                                          const asyncio_waker *waker);
/* Stops w waiting (takes the lock); its waker is released outside the lock. */
void asyncio__fanout_unwait(asyncio__fanout *f, asyncio__fanout_waiter *w);

#endif

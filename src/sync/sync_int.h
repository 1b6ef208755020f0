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

#endif

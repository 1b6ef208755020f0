/*
 * asyncio_rwlock: a fair, writer-preferring async reader-writer lock, a
 * semaphore of MAX permits (the Tokio design). A read acquires one permit,
 * a write acquires all MAX. Fairness, writer preference, cancellation and
 * waking outside the lock all come from src/sync/semaphore.c:
 *
 *   - FIFO: released permits go to the head waiter first, even partially.
 *     A queued writer collects the permits of leaving readers one by one;
 *     readers that arrive after it queue behind it (the semaphore's
 *     invariant "waiters queued => 0 available permits" makes try_read and
 *     a first poll fail while anyone waits), so writers are not starved.
 *   - A dropped request unlinks synchronously and hands its partial grant
 *     on; a grant no poll observed goes back the same way.
 *   - Uncontended paths are the semaphore's lock-free CAS on its state
 *     word (checked by tests/model/rwlock.pml).
 *
 * Invariant: permits + readers holding + (MAX if a writer holds) + permits
 * collected by queued writers == MAX. Unlocks release with a ceiling of
 * MAX, so an unlock that was not held is caught when it would push the
 * count past MAX (with nobody queued); permits handed to queued requests
 * are not checked against the ceiling.
 */
#include "asyncio/rwlock.h"

#include "sync/sync_int.h"
#include "util/alloc.h"

#define MAX ASYNCIO_RWLOCK_MAX_READERS

ASYNCIO_STATIC_ASSERT(MAX <= ASYNCIO_SEMAPHORE_MAX_PERMITS, "a write takes MAX permits");

struct asyncio_rwlock {
    asyncio_semaphore sem; /* MAX permits: free; 0: write-held */
};

int asyncio_rwlock_new(asyncio_rwlock **out)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_rwlock *rw = asyncio__malloc(sizeof *rw);
    if (rw == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__semaphore_init(&rw->sem, MAX);
    if (rc != 0) {
        asyncio__free(rw);
        return rc;
    }
    *out = rw;
    return 0;
}

int asyncio_rwlock_free(asyncio_rwlock *rw)
{
    if (rw == NULL)
        return 0;
    if (asyncio__semaphore_has_waiters(&rw->sem))
        return ASYNCIO_EBUSY;
    asyncio__semaphore_destroy(&rw->sem);
    asyncio__free(rw);
    return 0;
}

int asyncio_rwlock_try_read(asyncio_rwlock *rw)
{
    if (rw == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_semaphore_try_acquire(&rw->sem, 1); /* 0 or EAGAIN: never closed */
}

int asyncio_rwlock_try_write(asyncio_rwlock *rw)
{
    if (rw == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_semaphore_try_acquire(&rw->sem, MAX);
}

void asyncio_rwlock_read_unlock(asyncio_rwlock *rw)
{
    ASYNCIO_CHECK(rw != NULL);
    int rc = asyncio__semaphore_release_capped(&rw->sem, 1, MAX);
    ASYNCIO_CHECK(rc == 0 && "asyncio_rwlock_read_unlock: no read lock was held");
}

void asyncio_rwlock_write_unlock(asyncio_rwlock *rw)
{
    ASYNCIO_CHECK(rw != NULL);
    int rc = asyncio__semaphore_release_capped(&rw->sem, MAX, MAX);
    ASYNCIO_CHECK(rc == 0 && "asyncio_rwlock_write_unlock: the write lock was not held");
}

void asyncio_rwlock_downgrade(asyncio_rwlock *rw)
{
    ASYNCIO_CHECK(rw != NULL);
    /* keep one permit: the caller's read lock; the others go to the queue head first */
    int rc = asyncio__semaphore_release_capped(&rw->sem, MAX - 1, MAX);
    ASYNCIO_CHECK(rc == 0 && "asyncio_rwlock_downgrade: the write lock was not held");
}

void asyncio_rwlock_read_init(asyncio_rwlock_read *r, asyncio_rwlock *rw)
{
    asyncio_semaphore_acquire_init(&r->acquire, rw != NULL ? &rw->sem : NULL, 1);
}

int asyncio_rwlock_read_poll(asyncio_rwlock_read *r, asyncio_context *cx)
{
    if (r == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_semaphore_acquire_poll(&r->acquire, cx);
}

void asyncio_rwlock_read_drop(asyncio_rwlock_read *r)
{
    if (r != NULL)
        asyncio_semaphore_acquire_drop(&r->acquire);
}

void asyncio_rwlock_write_init(asyncio_rwlock_write *w, asyncio_rwlock *rw)
{
    asyncio_semaphore_acquire_init(&w->acquire, rw != NULL ? &rw->sem : NULL, MAX);
}

int asyncio_rwlock_write_poll(asyncio_rwlock_write *w, asyncio_context *cx)
{
    if (w == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_semaphore_acquire_poll(&w->acquire, cx);
}

void asyncio_rwlock_write_drop(asyncio_rwlock_write *w)
{
    if (w != NULL)
        asyncio_semaphore_acquire_drop(&w->acquire);
}

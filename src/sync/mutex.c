/*
 * asyncio_mutex: a FIFO-fair async mutex, a semaphore of one permit (the
 * Tokio design). The lock future is an acquire of that permit, so fairness,
 * cancellation (unlink synchronously, pass a grant nobody observed on) and
 * waking outside the lock all come from src/sync/semaphore.c.
 *
 * Invariant: permits + (1 if held) == 1. asyncio_mutex_unlock releases
 * with a ceiling of 1, so unlocking an unlocked mutex is caught.
 */
#include "sync/sync_int.h"

#include "util/alloc.h"

struct asyncio_mutex {
    asyncio_semaphore sem; /* one permit: free; zero: held */
};

int asyncio_mutex_new(asyncio_mutex **out)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_mutex *m = asyncio__malloc(sizeof *m);
    if (m == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__semaphore_init(&m->sem, 1);
    if (rc != 0) {
        asyncio__free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int asyncio_mutex_free(asyncio_mutex *m)
{
    if (m == NULL)
        return 0;
    if (asyncio__semaphore_has_waiters(&m->sem))
        return ASYNCIO_EBUSY;
    asyncio__semaphore_destroy(&m->sem);
    asyncio__free(m);
    return 0;
}

int asyncio_mutex_try_lock(asyncio_mutex *m)
{
    if (m == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_semaphore_try_acquire(&m->sem, 1); /* 0 or EAGAIN: it is never closed */
}

void asyncio_mutex_unlock(asyncio_mutex *m)
{
    ASYNCIO_CHECK(m != NULL);
    int rc = asyncio__semaphore_release_capped(&m->sem, 1, 1);
    ASYNCIO_CHECK(rc == 0 && "asyncio_mutex_unlock: the mutex was not locked");
}

void asyncio_mutex_lock_init(asyncio_mutex_lock *l, asyncio_mutex *m)
{
    asyncio_semaphore_acquire_init(&l->acquire, m != NULL ? &m->sem : NULL, 1);
}

int asyncio_mutex_lock_poll(asyncio_mutex_lock *l, asyncio_context *cx)
{
    if (l == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_semaphore_acquire_poll(&l->acquire, cx);
}

void asyncio_mutex_lock_drop(asyncio_mutex_lock *l)
{
    if (l != NULL)
        asyncio_semaphore_acquire_drop(&l->acquire);
}

/*
 * asyncio_semaphore: a counting semaphore with fair FIFO waiters, the
 * backpressure primitive (the async mutex and the bounded mpsc channel are
 * built on it). The model is Tokio's batch_semaphore.
 *
 * Protocol (everything below happens under sem->lock):
 *   - Permits are assigned to waiters in FIFO order, and partially: a
 *     release gives the head waiter as many permits as it still needs, and
 *     only when the head is fully granted does the next waiter get any. A
 *     large request at the head therefore blocks later small ones: it
 *     cannot be starved.
 *   - Invariant: waiters non-empty => permits == 0. try_acquire and a
 *     first poll never overtake a queued waiter.
 *   - A fully granted waiter is unlinked, gets result 0 and its waker is
 *     moved out to be woken after the lock is released; the permits are
 *     now its own. If it is dropped before a poll observed the grant,
 *     drop gives all of them back.
 *   - Cancel unlinks synchronously: dropping a queued acquire removes it
 *     and hands its partial grant on (to the next waiters, or the count).
 *   - Close fails every queued acquire with ASYNCIO_ECLOSED (their partial
 *     grants go back to the count) and every later one.
 *
 * Acquire states (asyncio_semaphore_acquire.state):
 *   ACQ_IDLE     initialised, never polled: not linked, holds nothing.
 *   ACQ_WAITING  polled and not finished: linked while result is PENDING;
 *                unlinked with result 0 (granted, not yet observed) or
 *                ASYNCIO_ECLOSED once a releaser / closer settled it.
 *   ACQ_DONE     a poll returned the result (or it was dropped): holds no
 *                reference to the semaphore.
 *
 * Wakers are woken outside the lock, gathered in batches of
 * ASYNCIO__WAKE_BATCH; waking any number of waiters never allocates.
 */
#include "sync/sync_int.h"

#include "util/alloc.h"

enum acquire_state {
    ACQ_IDLE = 0,
    ACQ_WAITING = 1,
    ACQ_DONE = 2,
};

static asyncio_semaphore_acquire *acquire_of(asyncio__list *n)
{
    return ASYNCIO_CONTAINER_OF((asyncio_wait_link *)(void *)n, asyncio_semaphore_acquire, link);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

int asyncio__semaphore_init(asyncio_semaphore *sem, size_t permits)
{
    if (permits > ASYNCIO_SEMAPHORE_MAX_PERMITS)
        return ASYNCIO_EINVAL;
    int rc = asyncio__mutex_init(&sem->lock);
    if (rc != 0)
        return rc;
    sem->permits = permits;
    sem->closed = false;
    asyncio__list_init(&sem->waiters);
    return 0;
}

void asyncio__semaphore_destroy(asyncio_semaphore *sem)
{
    ASYNCIO_CHECK(asyncio__list_empty(&sem->waiters));
    asyncio__mutex_destroy(&sem->lock);
}

bool asyncio__semaphore_has_waiters(asyncio_semaphore *sem)
{
    asyncio__mutex_lock(&sem->lock);
    bool busy = !asyncio__list_empty(&sem->waiters);
    asyncio__mutex_unlock(&sem->lock);
    return busy;
}

int asyncio_semaphore_new(asyncio_semaphore **out, size_t permits)
{
    if (out == NULL || permits > ASYNCIO_SEMAPHORE_MAX_PERMITS)
        return ASYNCIO_EINVAL;
    asyncio_semaphore *sem = asyncio__malloc(sizeof *sem);
    if (sem == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__semaphore_init(sem, permits);
    if (rc != 0) {
        asyncio__free(sem);
        return rc;
    }
    *out = sem;
    return 0;
}

int asyncio_semaphore_free(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return 0;
    if (asyncio__semaphore_has_waiters(sem))
        return ASYNCIO_EBUSY;
    asyncio__semaphore_destroy(sem);
    asyncio__free(sem);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Assigning permits                                                         */

/*
 * Gives available permits to the waiters, head first, moving the wakers of
 * the fully granted ones into `b`. Returns true if it stopped because the
 * batch is full (the caller wakes it outside the lock and calls again).
 */
static bool assign_locked(asyncio_semaphore *sem, asyncio__wake_batch *b)
{
    while (sem->permits > 0) {
        asyncio__list *n = asyncio__list_first(&sem->waiters);
        if (n == NULL)
            return false;
        if (asyncio__wake_batch_full(b))
            return true;
        asyncio_semaphore_acquire *a = acquire_of(n);
        size_t take = a->needed < sem->permits ? a->needed : sem->permits;
        a->needed -= take;
        sem->permits -= take;
        if (a->needed > 0)
            return false; /* the head is partially granted: later waiters wait behind it */
        asyncio__list_remove(n);
        a->result = 0;
        asyncio__wake_batch_push(b, &a->waker);
    }
    return false;
}

/* Assigns permits to waiters, releases the lock (held on entry) and wakes them. */
static void assign_and_unlock(asyncio_semaphore *sem)
{
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);
    for (;;) {
        bool more = assign_locked(sem, &b);
        asyncio__mutex_unlock(&sem->lock);
        asyncio__wake_batch_wake(&b);
        if (!more)
            return;
        asyncio__mutex_lock(&sem->lock);
    }
}

/*
 * Release with a ceiling on the resulting count (the mutex and the bounded
 * channel know their total, so a double release is caught).
 */
int asyncio__semaphore_release_capped(asyncio_semaphore *sem, size_t n, size_t cap)
{
    asyncio__mutex_lock(&sem->lock);
    if (n > cap || sem->permits > cap - n) {
        asyncio__mutex_unlock(&sem->lock);
        return ASYNCIO_EOVERFLOW;
    }
    sem->permits += n;
    assign_and_unlock(sem);
    return 0;
}

int asyncio_semaphore_release(asyncio_semaphore *sem, size_t n)
{
    if (sem == NULL)
        return ASYNCIO_EINVAL;
    if (n == 0)
        return 0;
    return asyncio__semaphore_release_capped(sem, n, ASYNCIO_SEMAPHORE_MAX_PERMITS);
}

int asyncio_semaphore_add_permits(asyncio_semaphore *sem, size_t n)
{
    return asyncio_semaphore_release(sem, n);
}

int asyncio_semaphore_try_acquire(asyncio_semaphore *sem, size_t n)
{
    if (sem == NULL || n > ASYNCIO_SEMAPHORE_MAX_PERMITS)
        return ASYNCIO_EINVAL;
    int rc = 0;
    asyncio__mutex_lock(&sem->lock);
    if (sem->closed)
        rc = ASYNCIO_ECLOSED;
    else if (!asyncio__list_empty(&sem->waiters) || sem->permits < n)
        rc = ASYNCIO_EAGAIN; /* never overtake a queued waiter */
    else
        sem->permits -= n;
    asyncio__mutex_unlock(&sem->lock);
    return rc;
}

size_t asyncio_semaphore_available_permits(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return 0;
    asyncio__mutex_lock(&sem->lock);
    size_t p = sem->permits;
    asyncio__mutex_unlock(&sem->lock);
    return p;
}

void asyncio_semaphore_close(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return;
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);
    asyncio__mutex_lock(&sem->lock);
    sem->closed = true; /* from now on nobody is queued: the list only shrinks */
    asyncio__list *n;
    while ((n = asyncio__list_first(&sem->waiters)) != NULL) {
        if (asyncio__wake_batch_full(&b)) {
            asyncio__mutex_unlock(&sem->lock);
            asyncio__wake_batch_wake(&b);
            asyncio__mutex_lock(&sem->lock);
            continue;
        }
        asyncio_semaphore_acquire *a = acquire_of(n);
        asyncio__list_remove(n);
        sem->permits += a->wanted - a->needed; /* its partial grant goes back to the count */
        a->result = ASYNCIO_ECLOSED;
        asyncio__wake_batch_push(&b, &a->waker);
    }
    asyncio__mutex_unlock(&sem->lock);
    asyncio__wake_batch_wake(&b);
}

bool asyncio_semaphore_is_closed(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return false;
    asyncio__mutex_lock(&sem->lock);
    bool closed = sem->closed;
    asyncio__mutex_unlock(&sem->lock);
    return closed;
}

/* ------------------------------------------------------------------------ */
/* The acquire future                                                        */

void asyncio_semaphore_acquire_init(asyncio_semaphore_acquire *a, asyncio_semaphore *sem, size_t n)
{
    asyncio__list_init(asyncio__link(&a->link));
    a->sem = sem;
    a->wanted = n;
    a->needed = n;
    a->waker = ASYNCIO_WAKER_EMPTY;
    a->result = ASYNCIO_PENDING;
    a->state = ACQ_IDLE;
}

static int finish(asyncio_semaphore_acquire *a, int result)
{
    a->result = result;
    a->state = ACQ_DONE;
    return result;
}

/* First poll: take the permits now, or queue (with whatever is available as a partial grant). */
static int acquire_first(asyncio_semaphore_acquire *a, asyncio_context *cx)
{
    asyncio_semaphore *sem = a->sem;
    asyncio__mutex_lock(&sem->lock);
    if (sem->closed) {
        asyncio__mutex_unlock(&sem->lock);
        return finish(a, ASYNCIO_ECLOSED);
    }
    if (a->wanted == 0) { /* nothing to wait for, even behind queued waiters */
        asyncio__mutex_unlock(&sem->lock);
        return finish(a, 0);
    }
    if (asyncio__list_empty(&sem->waiters)) {
        if (sem->permits >= a->wanted) { /* the fast path: nobody waits, enough permits */
            sem->permits -= a->wanted;
            asyncio__mutex_unlock(&sem->lock);
            return finish(a, 0);
        }
        a->needed = a->wanted - sem->permits; /* partial grant: keeps the invariant */
        sem->permits = 0;
    }
    asyncio__list_push_back(&sem->waiters, asyncio__link(&a->link));
    a->waker = asyncio_waker_clone(cx->waker);
    a->state = ACQ_WAITING;
    asyncio__mutex_unlock(&sem->lock);
    return ASYNCIO_PENDING;
}

/* Later polls: observe a grant or a close, or refresh the stored waker. */
static int acquire_again(asyncio_semaphore_acquire *a, asyncio_context *cx)
{
    asyncio_semaphore *sem = a->sem;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&sem->lock);
    int result = a->result;
    if (result == ASYNCIO_PENDING && !asyncio_waker_will_wake(&a->waker, cx->waker)) {
        old = a->waker; /* dropped outside the lock */
        a->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__mutex_unlock(&sem->lock);
    asyncio_waker_drop(&old);
    if (result == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    return finish(a, result); /* the settler moved the waker out already */
}

int asyncio_semaphore_acquire_poll(asyncio_semaphore_acquire *a, asyncio_context *cx)
{
    if (a == NULL || cx == NULL || a->sem == NULL)
        return ASYNCIO_EINVAL;
    switch (a->state) {
    case ACQ_DONE: /* finished: the result again */
        return a->result;
    case ACQ_IDLE: /* never polled */
        if (a->wanted > ASYNCIO_SEMAPHORE_MAX_PERMITS)
            return finish(a, ASYNCIO_EINVAL);
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        return acquire_first(a, cx);
    case ACQ_WAITING: /* queued, or settled and not yet observed */
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        return acquire_again(a, cx);
    default:
        ASYNCIO_CHECK(!"asyncio_semaphore_acquire: corrupt state");
        return ASYNCIO_EINVAL;
    }
}

void asyncio_semaphore_acquire_drop(asyncio_semaphore_acquire *a)
{
    if (a == NULL || a->state != ACQ_WAITING) {
        if (a != NULL)
            a->state = ACQ_DONE;
        return;
    }
    asyncio_semaphore *sem = a->sem;
    asyncio__mutex_lock(&sem->lock);
    size_t give;
    if (asyncio__list_linked(asyncio__link(&a->link))) { /* still queued: cancel */
        asyncio__list_remove(asyncio__link(&a->link));
        give = a->wanted - a->needed;
    } else if (a->result == 0) { /* granted, never observed: all of it goes back */
        give = a->wanted;
    } else { /* closed: its partial grant already went back */
        give = 0;
    }
    asyncio_waker old = a->waker;
    a->waker = ASYNCIO_WAKER_EMPTY;
    a->result = ASYNCIO_ECANCELED;
    a->state = ACQ_DONE;
    sem->permits += give; /* at most what was taken from the count */
    assign_and_unlock(sem);
    asyncio_waker_drop(&old);
}

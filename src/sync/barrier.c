/*
 * asyncio_barrier: n parties meet; the n-th arrival releases the others.
 *
 * State (all under b->lock):
 *   waiters     waits of the current generation, FIFO (arrived, pending).
 *   arrived     == the length of `waiters`: arrivals counted so far.
 *   generation  completed generations so far. A wait remembers the
 *               generation it arrived in; once b->generation moved past
 *               it, the wait is complete.
 * The n-th arrival does not queue: it increments `generation`, unlinks
 * every waiter (moving their wakers into a batch, woken after the lock is
 * released) and completes at once as the leader. Because the releaser
 * unlinks every waiter before it drops the lock for a batch wake, a waiter
 * of the completed generation is never linked while a later one queues.
 *
 * Wait states (asyncio_barrier_wait.state):
 *   W_INIT     initialised, never polled: not counted.
 *   W_WAITING  counted; linked while its generation is the current one,
 *              unlinked by the releaser once it completed.
 *   W_DONE     a poll returned 0 (or it was dropped).
 */
#include "asyncio/barrier.h"

#include "sync/sync_int.h"
#include "util/alloc.h"

enum wait_state {
    W_INIT = 0,
    W_WAITING = 1,
    W_DONE = 2,
};

struct asyncio_barrier {
    asyncio__mutex lock;
    asyncio__list waiters; /* asyncio_barrier_wait.link, current generation */
    size_t n;              /* parties per generation; never changes */
    size_t arrived;
    uint64_t generation;
};

static asyncio_barrier_wait *wait_of(asyncio__list *n)
{
    return ASYNCIO_CONTAINER_OF(n, asyncio_barrier_wait, link);
}

int asyncio_barrier_new(asyncio_barrier **out, size_t n)
{
    if (out == NULL || n == 0)
        return ASYNCIO_EINVAL;
    asyncio_barrier *b = asyncio__malloc(sizeof *b);
    if (b == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&b->lock);
    if (rc != 0) {
        asyncio__free(b);
        return rc;
    }
    asyncio__list_init(&b->waiters);
    b->n = n;
    b->arrived = 0;
    b->generation = 0;
    *out = b;
    return 0;
}

int asyncio_barrier_free(asyncio_barrier *b)
{
    if (b == NULL)
        return 0;
    asyncio__mutex_lock(&b->lock);
    bool busy = !asyncio__list_empty(&b->waiters);
    asyncio__mutex_unlock(&b->lock);
    if (busy)
        return ASYNCIO_EBUSY;
    asyncio__mutex_destroy(&b->lock);
    asyncio__free(b);
    return 0;
}

size_t asyncio_barrier_waiting(asyncio_barrier *b)
{
    if (b == NULL)
        return 0;
    asyncio__mutex_lock(&b->lock);
    size_t n = b->arrived;
    asyncio__mutex_unlock(&b->lock);
    return n;
}

void asyncio_barrier_wait_init(asyncio_barrier_wait *w, asyncio_barrier *b)
{
    asyncio__list_node_init(&w->link);
    w->barrier = b;
    w->waker = ASYNCIO_WAKER_EMPTY;
    w->generation = 0;
    w->leader = false;
    w->state = W_INIT;
}

/*
 * The last arrival (lock held on entry, released on return): completes the
 * generation, unlinks every waiter and wakes them outside the lock.
 */
static void release_generation_and_unlock(asyncio_barrier *b)
{
    asyncio__wake_batch batch;
    asyncio__wake_batch_init(&batch);
    asyncio__list local;
    asyncio__list_init(&local);
    b->generation++;
    b->arrived = 0;
    /* Unlink them all first: a waker run between batches may start the next generation. */
    asyncio__list *node;
    while ((node = asyncio__list_first(&b->waiters)) != NULL) {
        asyncio__list_remove(node);
        asyncio__list_push_back(&local, node);
    }
    while ((node = asyncio__list_first(&local)) != NULL) {
        if (asyncio__wake_batch_full(&batch)) {
            asyncio__mutex_unlock(&b->lock);
            asyncio__wake_batch_wake(&batch);
            asyncio__mutex_lock(&b->lock);
            continue;
        }
        asyncio__list_remove(node); /* a drop meanwhile unlinked it from `local` itself */
        asyncio__wake_batch_push(&batch, &wait_of(node)->waker);
    }
    asyncio__mutex_unlock(&b->lock);
    asyncio__wake_batch_wake(&batch);
}

/* First poll: count the arrival; the n-th completes the generation. */
static int arrive(asyncio_barrier_wait *w, asyncio_context *cx, bool *is_leader)
{
    asyncio_barrier *b = w->barrier;
    asyncio__mutex_lock(&b->lock);
    w->generation = b->generation;
    if (b->arrived + 1 == b->n) {
        w->leader = true;
        w->state = W_DONE;
        release_generation_and_unlock(b);
        if (is_leader != NULL)
            *is_leader = true;
        return 0;
    }
    b->arrived++;
    asyncio__list_push_back(&b->waiters, &w->link);
    w->waker = asyncio_waker_clone(cx->waker);
    w->state = W_WAITING;
    asyncio__mutex_unlock(&b->lock);
    return ASYNCIO_PENDING;
}

/* Later polls: complete once the generation moved on, else refresh the waker. */
static int wait_again(asyncio_barrier_wait *w, asyncio_context *cx, bool *is_leader)
{
    asyncio_barrier *b = w->barrier;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    int rc = ASYNCIO_PENDING;
    asyncio__mutex_lock(&b->lock);
    if (b->generation != w->generation) {
        asyncio__list_remove(&w->link); /* still in a releaser's local list, possibly */
        old = w->waker;
        w->waker = ASYNCIO_WAKER_EMPTY;
        w->state = W_DONE;
        rc = 0;
    } else if (!asyncio_waker_will_wake(&w->waker, cx->waker)) {
        old = w->waker;
        w->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__mutex_unlock(&b->lock);
    asyncio_waker_drop(&old);
    if (rc == 0 && is_leader != NULL)
        *is_leader = false;
    return rc;
}

int asyncio_barrier_wait_poll(asyncio_barrier_wait *w, asyncio_context *cx, bool *is_leader)
{
    if (w == NULL || cx == NULL || w->barrier == NULL)
        return ASYNCIO_EINVAL;
    switch (w->state) {
    case W_DONE: /* finished: the result again */
        if (is_leader != NULL)
            *is_leader = w->leader;
        return 0;
    case W_INIT: /* never polled: arrive */
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        return arrive(w, cx, is_leader);
    case W_WAITING: /* counted: is the generation complete? */
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        return wait_again(w, cx, is_leader);
    default:
        ASYNCIO_CHECK(!"asyncio_barrier_wait: corrupt state");
        return ASYNCIO_EINVAL;
    }
}

void asyncio_barrier_wait_drop(asyncio_barrier_wait *w)
{
    if (w == NULL)
        return;
    if (w->state != W_WAITING) {
        w->state = W_DONE;
        return;
    }
    asyncio_barrier *b = w->barrier;
    asyncio__mutex_lock(&b->lock);
    asyncio__list_remove(&w->link);
    if (b->generation == w->generation)
        b->arrived--; /* still waiting: withdraw the arrival */
    asyncio_waker old = w->waker;
    w->waker = ASYNCIO_WAKER_EMPTY;
    w->state = W_DONE;
    asyncio__mutex_unlock(&b->lock);
    asyncio_waker_drop(&old);
}

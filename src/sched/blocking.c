/*
 * The blocking pool.
 *
 * A job is one allocation shared by the pool and the handle (refcount 2).
 * Its result and the awaiting waker are guarded by the job's own lock (so a
 * handle never touches the pool, and may outlive the runtime): the worker
 * stores the result and takes the waker under the lock, then wakes outside
 * it; the handle checks `done` and stores its waker under the same lock.
 *
 * Threads: a job is queued; an idle thread is claimed for it (see
 * next_job_locked), else, if fewer than max_threads exist, one is started. A thread takes jobs in FIFO order and
 * exits after keep_alive_ms without work, or at shutdown once the queue is
 * empty. Shutdown steps: 1. mark shutdown and take the queue; 2. run each
 * queued job's on_cancel hook (if any) and complete it with ECANCELED
 * (outside the lock); 3. wake idle
 * threads and wait until every thread has exited (running jobs finish).
 */
#include "sched/blocking.h"

#include <stdatomic.h>

#include "asyncio/blocking.h"
#include "internal.h"
#include "util/alloc.h"

struct asyncio_blocking_handle {
    asyncio_blocking_fn fn;
    asyncio_blocking_cancel_fn on_cancel; /* may be NULL: runs instead of fn if cancelled */
    void *arg;
    asyncio__list node; /* in pool->queue while not started */
    _Atomic int refs;   /* pool side + handle */
    asyncio__mutex lock;
    /* Guarded by lock. */
    bool done;
    int result;
    asyncio_waker waker;
};

static void job_unref(asyncio_blocking_handle *j)
{
    /* acq_rel: the last owner sees the other's writes before freeing. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
        asyncio__mutex_destroy(&j->lock);
        asyncio__free(j);
    }
}

/* Records the result, then wakes the awaiting task (outside the job's lock).
 * A job must return 0 or a negative code: a positive one would read as
 * ASYNCIO_PENDING after the only wake has come (the task would sleep
 * forever), so it is reported as ASYNCIO_ERANGE instead. */
static void job_finish(asyncio_blocking_handle *j, int result)
{
    if (result > 0)
        result = ASYNCIO_ERANGE;
    asyncio__mutex_lock(&j->lock);
    j->done = true;
    j->result = result;
    asyncio_waker w = j->waker;
    j->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(&j->lock);
    asyncio_waker_wake(&w);
}

int asyncio__blocking_pool_init(asyncio__blocking_pool *bp, size_t max_threads,
                                uint64_t keep_alive_ms)
{
    *bp = (asyncio__blocking_pool){0};
    asyncio__list_init(&bp->queue);
    bp->max_threads = max_threads;
    bp->keep_alive_ms = keep_alive_ms;
    int rc = asyncio__mutex_init(&bp->lock);
    if (rc < 0)
        return rc;
    if ((rc = asyncio__cond_init(&bp->work)) < 0)
        goto fail_mutex;
    if ((rc = asyncio__cond_init(&bp->stopped)) < 0)
        goto fail_work;
    return 0;
fail_work:
    asyncio__cond_destroy(&bp->work);
fail_mutex:
    asyncio__mutex_destroy(&bp->lock);
    return rc;
}

/*
 * Lock held: waits for a job; returns NULL when the thread should exit.
 *
 * `idle` counts waiting threads that no spawn has claimed yet. A spawn that
 * finds one claims it at once (idle--, notified++) and signals, so the next
 * spawn does not count the same thread again and starts its own (before,
 * only the woken thread decremented idle: two spawns in a row both saw one
 * idle thread, and the second job queued behind the first although threads
 * < max_threads -- a deadlock if the first waits for the second). A waking
 * thread that finds `notified` > 0 takes one claim (whichever thread was
 * signalled: the counts are what matter, as in Tokio's blocking pool);
 * otherwise it un-counts itself (timeout, shutdown) or waits again.
 */
static asyncio_blocking_handle *next_job_locked(asyncio__blocking_pool *bp)
{
    while (asyncio__list_empty(&bp->queue)) {
        if (bp->shutdown)
            return NULL;
        bp->idle++;
        bool timed_out = false;
        while (bp->notified == 0 && !bp->shutdown && !timed_out)
            timed_out = !asyncio__cond_timedwait(&bp->work, &bp->lock, bp->keep_alive_ms);
        if (bp->notified > 0) {
            bp->notified--; /* claimed: the spawn already took us off `idle` */
            continue;
        }
        bp->idle--;
        if (timed_out && !bp->shutdown && asyncio__list_empty(&bp->queue))
            return NULL; /* kept alive long enough without work */
    }
    asyncio__list *n = bp->queue.next;
    asyncio__list_remove(n);
    return ASYNCIO_CONTAINER_OF(n, asyncio_blocking_handle, node);
}

static void *worker_main(void *arg)
{
    asyncio__blocking_pool *bp = arg;
    asyncio__mutex_lock(&bp->lock);
    asyncio_blocking_handle *j;
    while ((j = next_job_locked(bp)) != NULL) {
        asyncio__mutex_unlock(&bp->lock);
        job_finish(j, j->fn(j->arg));
        job_unref(j);
        asyncio__mutex_lock(&bp->lock);
    }
    bp->threads--;
    asyncio__cond_broadcast(&bp->stopped);
    /* Nothing of the pool is touched after this unlock: shutdown may free it. */
    asyncio__mutex_unlock(&bp->lock);
    return NULL;
}

int asyncio_spawn_blocking(asyncio_runtime *rt, asyncio_blocking_fn fn, void *arg,
                           asyncio_blocking_handle **out)
{
    return asyncio_spawn_blocking_with_cleanup(rt, fn, NULL, arg, out);
}

int asyncio_spawn_blocking_with_cleanup(asyncio_runtime *rt, asyncio_blocking_fn fn,
                                        asyncio_blocking_cancel_fn on_cancel, void *arg,
                                        asyncio_blocking_handle **out)
{
    if (rt == NULL || fn == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio__blocking_pool *bp = asyncio__runtime_blocking_pool(rt);
    asyncio_blocking_handle *j = asyncio__calloc(1, sizeof *j);
    if (j == NULL)
        return ASYNCIO_ENOMEM;
    j->fn = fn;
    j->on_cancel = on_cancel;
    j->arg = arg;
    atomic_init(&j->refs, 2);
    asyncio__list_node_init(&j->node);
    j->waker = ASYNCIO_WAKER_EMPTY;
    int rc = asyncio__mutex_init(&j->lock);
    if (rc < 0) {
        asyncio__free(j);
        return rc;
    }

    asyncio__mutex_lock(&bp->lock);
    if (bp->shutdown) {
        rc = ASYNCIO_ECANCELED;
    } else if (bp->idle > 0) {
        bp->idle--; /* claim an idle thread now: the next spawn will not count it */
        bp->notified++;
        asyncio__cond_signal(&bp->work);
    } else if (bp->threads < bp->max_threads) {
        rc = asyncio__thread_spawn_detached(worker_main, bp);
        if (rc == 0)
            bp->threads++;
        else if (bp->threads > 0)
            rc = 0; /* an existing thread will get to it */
    }
    if (rc == 0)
        asyncio__list_push_back(&bp->queue, &j->node);
    asyncio__mutex_unlock(&bp->lock);
    if (rc < 0) {
        asyncio__mutex_destroy(&j->lock);
        asyncio__free(j);
        return rc == ASYNCIO_ENOMEM || rc == ASYNCIO_ECANCELED ? rc : ASYNCIO_EAGAIN;
    }
    *out = j;
    return 0;
}

int asyncio_blocking_handle_poll(asyncio_blocking_handle *j, asyncio_context *cx)
{
    if (j == NULL || cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&j->lock);
    bool done = j->done;
    if (!done)
        asyncio_waker_store(&j->waker, cx->waker);
    int rc = j->result;
    asyncio__mutex_unlock(&j->lock);
    return done ? rc : ASYNCIO_PENDING;
}

void asyncio_blocking_handle_drop(asyncio_blocking_handle *j)
{
    if (j == NULL)
        return;
    asyncio__mutex_lock(&j->lock);
    asyncio_waker w = j->waker;
    j->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(&j->lock);
    asyncio_waker_drop(&w);
    job_unref(j);
}

size_t asyncio__blocking_pool_idle(asyncio__blocking_pool *bp)
{
    asyncio__mutex_lock(&bp->lock);
    size_t n = bp->idle;
    asyncio__mutex_unlock(&bp->lock);
    return n;
}

size_t asyncio__blocking_pool_threads(asyncio__blocking_pool *bp)
{
    asyncio__mutex_lock(&bp->lock);
    size_t n = bp->threads;
    asyncio__mutex_unlock(&bp->lock);
    return n;
}

size_t asyncio__blocking_pool_queued(asyncio__blocking_pool *bp)
{
    size_t n = 0;
    asyncio__mutex_lock(&bp->lock);
    for (asyncio__list *l = bp->queue.next; l != &bp->queue; l = l->next)
        n++;
    asyncio__mutex_unlock(&bp->lock);
    return n;
}

void asyncio__blocking_pool_shutdown(asyncio__blocking_pool *bp)
{
    asyncio__list cancelled;
    asyncio__list_init(&cancelled);
    asyncio__mutex_lock(&bp->lock);
    bp->shutdown = true;
    while (!asyncio__list_empty(&bp->queue)) {
        asyncio__list *n = bp->queue.next;
        asyncio__list_remove(n);
        asyncio__list_push_back(&cancelled, n);
    }
    asyncio__cond_broadcast(&bp->work);
    asyncio__mutex_unlock(&bp->lock);

    while (!asyncio__list_empty(&cancelled)) {
        asyncio__list *n = cancelled.next;
        asyncio__list_remove(n);
        asyncio_blocking_handle *j = ASYNCIO_CONTAINER_OF(n, asyncio_blocking_handle, node);
        if (j->on_cancel != NULL)
            j->on_cancel(j->arg); /* fn never runs: the hook releases arg */
        job_finish(j, ASYNCIO_ECANCELED);
        job_unref(j);
    }

    asyncio__mutex_lock(&bp->lock);
    while (bp->threads > 0)
        asyncio__cond_wait(&bp->stopped, &bp->lock);
    asyncio__mutex_unlock(&bp->lock);
}

void asyncio__blocking_pool_close(asyncio__blocking_pool *bp)
{
    asyncio__cond_destroy(&bp->work);
    asyncio__cond_destroy(&bp->stopped);
    asyncio__mutex_destroy(&bp->lock);
}

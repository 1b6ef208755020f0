/*
 * Blocking pool (internal): the runtime owns one; jobs are queued under
 * its lock and run by detached threads created on demand.
 */
#ifndef ASYNCIO_SCHED_BLOCKING_H
#define ASYNCIO_SCHED_BLOCKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/thread.h"
#include "util/list.h"

typedef struct asyncio__blocking_pool {
    asyncio__mutex lock;
    asyncio__cond work;    /* signalled when a job is queued or shutdown starts */
    asyncio__cond stopped; /* signalled when a thread exits */
    asyncio__list queue;   /* jobs not started yet */
    size_t threads;        /* alive */
    size_t idle;           /* waiting for work and not claimed by a spawn */
    size_t notified;       /* claims made by spawns that no waiting thread took yet */
    size_t max_threads;
    uint64_t keep_alive_ms;
    bool shutdown;
} asyncio__blocking_pool;

int asyncio__blocking_pool_init(asyncio__blocking_pool *bp, size_t max_threads,
                                uint64_t keep_alive_ms);

/*
 * Cancels queued jobs (their handles report ECANCELED), refuses new ones
 * (ECANCELED) and waits for running jobs to finish and every thread to exit.
 */
void asyncio__blocking_pool_shutdown(asyncio__blocking_pool *bp);

/* Releases the pool's locks (after shutdown; no spawn may follow). */
void asyncio__blocking_pool_close(asyncio__blocking_pool *bp);

/* Threads alive now (for metrics and tests). */
size_t asyncio__blocking_pool_threads(asyncio__blocking_pool *bp);

/* Jobs queued and not started (metrics: walks the queue under the lock). */
size_t asyncio__blocking_pool_queued(asyncio__blocking_pool *bp);

/* Idle threads no spawn has claimed (tests). */
size_t asyncio__blocking_pool_idle(asyncio__blocking_pool *bp);

/* Implemented by the runtime: its pool. */
struct asyncio_runtime;
asyncio__blocking_pool *asyncio__runtime_blocking_pool(struct asyncio_runtime *rt);

#endif

/*
 * libasyncio: the runtime — a scheduler that polls tasks, plus the drivers
 * (I/O readiness, timers) they wait on.
 *
 * Flavours: ASYNCIO_RUNTIME_CURRENT_THREAD runs every task on the thread
 * that calls asyncio_runtime_block_on(). (The work-stealing multi-thread
 * flavour is planned.)
 *
 * Lifecycle: new -> (spawn / block_on)* -> shutdown -> free. shutdown
 * cancels every remaining task and runs each one's drop exactly once;
 * free releases the runtime. Spawning and waking are safe from any thread;
 * block_on and shutdown are called by the thread that owns the runtime.
 */
#ifndef ASYNCIO_RUNTIME_H
#define ASYNCIO_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

typedef struct asyncio_runtime asyncio_runtime;

typedef enum asyncio_runtime_flavor {
    /** Every task runs on the thread inside asyncio_runtime_block_on(). */
    ASYNCIO_RUNTIME_CURRENT_THREAD = 0,
    /** Work-stealing workers (opts.workers threads; 0 = one per CPU). */
    ASYNCIO_RUNTIME_MULTI_THREAD = 1,
} asyncio_runtime_flavor;

/**
 * Runtime options. Zero-initialise, then set what you need; zero fields
 * take the documented defaults.
 */
typedef struct asyncio_runtime_options {
    asyncio_runtime_flavor flavor;
    /** Multi-thread flavour: worker threads (default 0 = the number of CPUs). */
    uint32_t workers;
    /** Poller events fetched per driver turn (default 256). */
    uint32_t event_capacity;
    /** Tasks polled between two non-blocking driver turns (default 61). */
    uint32_t event_interval;
    /** Start with the clock paused (tests): see asyncio_time_advance(). */
    bool start_paused;
    /** Blocking-pool threads at most (default 512). */
    uint32_t blocking_max_threads;
    /** Idle blocking-pool threads exit after this many ms (default 10,000). */
    uint32_t blocking_keep_alive_ms;
} asyncio_runtime_options;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a runtime. `opts` may be NULL for the defaults.
 * Errors: ASYNCIO_EINVAL (out NULL, unknown flavour), ASYNCIO_ENOMEM, and
 * the errors of asyncio_poller_new(). On failure nothing needs freeing.
 */
ASYNCIO_EXTERN int asyncio_runtime_new(asyncio_runtime **out, const asyncio_runtime_options *opts);

/**
 * Spawns a task: allocates it (one block), copies vt->state_size bytes from
 * `init_state` (NULL: zeroed) and queues it. If `jh` is non-NULL it
 * receives the JoinHandle (release it with asyncio_join_handle_drop);
 * if NULL the task is detached. Any thread, inside a task or not.
 *
 * Errors: ASYNCIO_EINVAL (NULL runtime / vtable / poll), ASYNCIO_ENOMEM,
 * ASYNCIO_ECANCELED (the runtime is shutting down). On error the task does
 * not exist: init_state was not taken and no callback will run.
 */
ASYNCIO_EXTERN int asyncio_spawn(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                                 const void *init_state, asyncio_join_handle **jh);

/**
 * Spawns a task and runs the runtime on the calling thread until that task
 * finishes; returns its result and moves its output to `output` (if
 * non-NULL). Other tasks keep running while it waits. Must not be called
 * from inside a task or on a runtime that is already running.
 *
 * Errors: those of asyncio_spawn, ASYNCIO_EBUSY (called re-entrantly), or
 * the task's own result.
 */
ASYNCIO_EXTERN int asyncio_runtime_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                                            const void *init_state, void *output);

/**
 * Shuts down: refuses new spawns, cancels every task (each drop runs once,
 * on this thread) and completes their JoinHandles with ASYNCIO_ECANCELED.
 * Idempotent. Must not be called from inside a task.
 */
ASYNCIO_EXTERN void asyncio_runtime_shutdown(asyncio_runtime *rt);

/**
 * Shuts down (if not done yet) and frees the runtime.
 * Errors: ASYNCIO_EBUSY if I/O registrations made through this runtime
 * are still alive (nothing is freed: close them first). NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_runtime_free(asyncio_runtime *rt);

/** The runtime whose task is running on this thread, or NULL. */
ASYNCIO_EXTERN asyncio_runtime *asyncio_runtime_current(void);

ASYNCIO_END_DECLS

#endif

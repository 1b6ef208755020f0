/*
 * libasyncio: the blocking pool — run a blocking function (file I/O, DNS,
 * CPU-heavy work) on a separate thread and await its result.
 *
 * Threads are created on demand up to the runtime's blocking_max_threads;
 * a thread idle for blocking_keep_alive_ms exits. Jobs beyond the thread
 * limit wait in a FIFO queue.
 */
#ifndef ASYNCIO_BLOCKING_H
#define ASYNCIO_BLOCKING_H

#include "common.h"
#include "error.h"
#include "runtime.h"
#include "task.h"

/**
 * A blocking job: returns 0 or a negative error code, passed to the awaiting
 * task. A positive return (which would read as ASYNCIO_PENDING) reaches the
 * task as ASYNCIO_ERANGE; pass larger results through `arg`.
 */
typedef int (*asyncio_blocking_fn)(void *arg);

/**
 * Cleanup for a job that will never run: called with the job's arg when
 * the pool cancels the job before it started (runtime shutdown), so an
 * arg owned by the job can be released. See
 * asyncio_spawn_blocking_with_cleanup().
 */
typedef void (*asyncio_blocking_cancel_fn)(void *arg);

/**
 * Awaits one blocking job. Opaque (one allocation per job); released with
 * asyncio_blocking_handle_drop exactly once.
 */
typedef struct asyncio_blocking_handle asyncio_blocking_handle;

ASYNCIO_BEGIN_DECLS

/**
 * Queues fn(arg) on the runtime's blocking pool. `arg` stays the caller's;
 * it must live until the job has run (or the handle reported
 * ASYNCIO_ECANCELED). Any thread, inside a task or not.
 *
 * Errors: ASYNCIO_EINVAL (NULL runtime / fn / out), ASYNCIO_ENOMEM,
 * ASYNCIO_ECANCELED (the runtime is shutting down), ASYNCIO_EAGAIN (no
 * thread could be started and none exists to run the job).
 */
ASYNCIO_EXTERN int asyncio_spawn_blocking(asyncio_runtime *rt, asyncio_blocking_fn fn, void *arg,
                                          asyncio_blocking_handle **out);

/**
 * As asyncio_spawn_blocking(), with a cleanup hook: once the job was
 * accepted (0 returned), EXACTLY ONE of fn(arg) and on_cancel(arg) runs,
 * on_cancel when the runtime shuts down before the job started (it runs on
 * the thread calling shutdown, before the handle reports
 * ASYNCIO_ECANCELED). This lets the job own `arg` (for example a
 * reference-counted block shared with a future that may be dropped while
 * the job is queued) and release it on both paths, instead of leaking it
 * when it is cancelled. `on_cancel` may be NULL (then this is
 * asyncio_spawn_blocking). On error neither runs: arg stays the caller's.
 * Errors and thread-safety: as asyncio_spawn_blocking().
 */
ASYNCIO_EXTERN int asyncio_spawn_blocking_with_cleanup(asyncio_runtime *rt, asyncio_blocking_fn fn,
                                                       asyncio_blocking_cancel_fn on_cancel,
                                                       void *arg, asyncio_blocking_handle **out);

/**
 * Returns ASYNCIO_PENDING (cx's waker is woken when the job finishes) or
 * the job's result; ASYNCIO_ECANCELED if the runtime shut down before the
 * job started (it never runs then); ASYNCIO_ERANGE if the job returned a
 * positive value. One thread at a time per handle.
 * Errors: ASYNCIO_EINVAL (NULL handle or context).
 */
ASYNCIO_EXTERN int asyncio_blocking_handle_poll(asyncio_blocking_handle *h, asyncio_context *cx);

/**
 * Releases the handle; a job that has not finished still runs (detached).
 * NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_blocking_handle_drop(asyncio_blocking_handle *h);

ASYNCIO_END_DECLS

#endif

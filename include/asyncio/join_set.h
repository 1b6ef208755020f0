/*
 * libasyncio: task groups (Tokio's JoinSet).
 *
 * A join set owns a group of spawned tasks: asyncio_join_set_spawn() adds
 * one, asyncio_join_set_poll_join_next() collects the next to finish, in
 * completion order (its result, output and id), asyncio_join_set_len()
 * counts the tasks not collected yet, asyncio_join_set_abort_all() asks
 * them all to stop and asyncio_join_set_poll_shutdown() aborts and waits
 * for them. Freeing the set aborts every task still in it (Tokio: dropping
 * a JoinSet aborts its tasks); their drops run on the runtime, later.
 *
 * A task in a set is an ordinary task: it may also be aborted through the
 * asyncio_abort_handle spawn returns, and it finishes on its own runtime.
 * Tasks of several runtimes may share one set.
 *
 * Memory: one block per set; a task's entry in the set (32 bytes on 64-bit
 * systems) lives in the task's block, so a spawn into a set allocates no
 * more than asyncio_spawn_with(). Tasks that finished stay in
 * the set, with their output (and block), until collected: a long-lived
 * set must be drained with join_next.
 *
 * Thread-safety: the set belongs to one owner (a task, or a thread outside
 * the runtime for spawn / len / abort_all / free): its functions are called
 * from one thread at a time. Tasks finish on any runtime thread; the set's
 * lock makes that safe.
 */
#ifndef ASYNCIO_JOIN_SET_H
#define ASYNCIO_JOIN_SET_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "future.h"
#include "runtime.h"
#include "task.h"

/** A task group. Opaque; asyncio_join_set_new() / asyncio_join_set_free(). */
typedef struct asyncio_join_set asyncio_join_set;

ASYNCIO_BEGIN_DECLS

/** Creates an empty set. Errors: ASYNCIO_EINVAL (out NULL), ASYNCIO_ENOMEM. */
ASYNCIO_EXTERN int asyncio_join_set_new(asyncio_join_set **out);

/**
 * Spawns a task on `rt` into the set (asyncio_spawn_with's options; the
 * set uses the completion callback itself and calls opts->on_complete, if
 * any, first). If `abort_out` is non-NULL it receives an AbortHandle
 * (release it with asyncio_abort_handle_drop). Errors: those of
 * asyncio_spawn_with(), ASYNCIO_EINVAL (NULL set), ASYNCIO_ENOMEM; on error
 * the task does not exist and the set is unchanged. Owner thread.
 */
ASYNCIO_EXTERN int asyncio_join_set_spawn(asyncio_join_set *js, asyncio_runtime *rt,
                                          const asyncio_task_vtable *vt, const void *init_state,
                                          const asyncio_spawn_options *opts,
                                          asyncio_abort_handle **abort_out);

/**
 * Collects the next task to finish: returns 0 with its result in *result
 * (what its poll returned, or ASYNCIO_ECANCELED if it was aborted), its
 * output moved to `output` (if non-NULL; else the output is dropped with
 * drop_output) and its id in *id (if non-NULL); ASYNCIO_PENDING when tasks
 * are running but none finished (cx's waker is woken when one does); or
 * ASYNCIO_ENOENT when the set is empty. Errors: ASYNCIO_EINVAL (NULL js,
 * cx or result). Owner thread, from a task.
 */
ASYNCIO_EXTERN int asyncio_join_set_poll_join_next(asyncio_join_set *js, asyncio_context *cx,
                                                   int *result, void *output, uint64_t *id);

/** Tasks in the set: running, or finished and not collected yet. 0 for NULL. */
ASYNCIO_EXTERN size_t asyncio_join_set_len(const asyncio_join_set *js);

/**
 * Aborts every task in the set (each is cancelled at its next scheduling
 * point; finished ones keep their result). They stay in the set until
 * collected. NULL is a no-op. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_join_set_abort_all(asyncio_join_set *js);

/**
 * Drain: collects every task that finished, discarding results and
 * outputs. Returns 0 once the set is empty, else ASYNCIO_PENDING (cx's
 * waker is woken when another task finishes). Called while serving, it
 * keeps the set holding only live tasks; with a timeout around it
 * (asyncio_join_set_drain_future), it is step 3 of the graceful-shutdown
 * pattern (cancel.h). Errors: ASYNCIO_EINVAL (NULL). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_join_set_poll_drain(asyncio_join_set *js, asyncio_context *cx);

/** asyncio_join_set_poll_drain as a future (borrows the set; no output, no drop). */
ASYNCIO_EXTERN asyncio_future asyncio_join_set_drain_future(asyncio_join_set *js);

/**
 * Shutdown: aborts every task (once, at the first call), then collects
 * them all, discarding results and outputs. Returns ASYNCIO_PENDING until
 * the set is empty, then 0. Errors: ASYNCIO_EINVAL (NULL). Owner thread,
 * from a task.
 */
ASYNCIO_EXTERN int asyncio_join_set_poll_shutdown(asyncio_join_set *js, asyncio_context *cx);

/**
 * Frees the set: every task still running is aborted and detached (its
 * drop runs on its runtime later), finished results are dropped. NULL is a
 * no-op. Owner thread; also after the runtimes were freed.
 */
ASYNCIO_EXTERN void asyncio_join_set_free(asyncio_join_set *js);

ASYNCIO_END_DECLS

#endif

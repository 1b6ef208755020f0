/*
 * libasyncio: the poll contract, wakers and tasks.
 *
 * A future is a state struct plus a poll function. Polling it either
 * finishes it (returns 0 or a negative error code) or returns
 * ASYNCIO_PENDING after arranging, through the context's waker, to be
 * polled again when progress is possible. A leaf operation that is not
 * ready clones (or keeps) cx->waker and returns ASYNCIO_PENDING; whoever
 * makes it ready later calls asyncio_waker_wake on that clone.
 *
 * A task is a future the runtime owns and polls: spawned once, polled on a
 * runtime thread until it finishes or is aborted, then dropped. Its output
 * (an int result and, optionally, output_size bytes) goes to its
 * JoinHandle. docs/writing-tasks.md teaches the contract with a worked
 * example.
 */
#ifndef ASYNCIO_TASK_H
#define ASYNCIO_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"

/* ------------------------------------------------------------------------ */
/* Wakers                                                                    */

typedef struct asyncio_waker asyncio_waker;

/**
 * How a waker works. `data` is the waker's own pointer. clone returns a
 * new waker for the same target; wake wakes and releases this waker;
 * wake_by_ref wakes and keeps it; drop releases it. Every function must be
 * safe to call from any thread.
 */
typedef struct asyncio_waker_vtable {
    asyncio_waker (*clone)(const void *data);
    void (*wake)(const void *data);
    void (*wake_by_ref)(const void *data);
    void (*drop)(const void *data);
} asyncio_waker_vtable;

/**
 * A waker: a small value (vtable + data), passed by value and owned by
 * whoever holds it. An "empty" waker has a NULL vtable; waking or dropping
 * it does nothing. Embeddable.
 */
struct asyncio_waker {
    const asyncio_waker_vtable *vtable;
    const void *data;
};

/** The empty waker. (C++ has no compound literals: there it is a braced temporary.) */
#ifdef __cplusplus
#define ASYNCIO_WAKER_EMPTY (asyncio_waker{NULL, NULL})
#else
#define ASYNCIO_WAKER_EMPTY ((asyncio_waker){NULL, NULL})
#endif

/** A new reference to the same target (the empty waker for an empty one). */
static inline asyncio_waker asyncio_waker_clone(const asyncio_waker *w)
{
    return w->vtable != NULL ? w->vtable->clone(w->data) : ASYNCIO_WAKER_EMPTY;
}

/** Wakes the target and releases *w (which becomes empty). Any thread. */
static inline void asyncio_waker_wake(asyncio_waker *w)
{
    asyncio_waker taken = *w;
    *w = ASYNCIO_WAKER_EMPTY;
    if (taken.vtable != NULL)
        taken.vtable->wake(taken.data);
}

/** Wakes the target and keeps *w. Any thread. */
static inline void asyncio_waker_wake_by_ref(const asyncio_waker *w)
{
    if (w->vtable != NULL)
        w->vtable->wake_by_ref(w->data);
}

/** Releases *w (which becomes empty). Any thread. */
static inline void asyncio_waker_drop(asyncio_waker *w)
{
    asyncio_waker taken = *w;
    *w = ASYNCIO_WAKER_EMPTY;
    if (taken.vtable != NULL)
        taken.vtable->drop(taken.data);
}

/** True if both wake the same target, so re-cloning can be skipped. */
static inline bool asyncio_waker_will_wake(const asyncio_waker *a, const asyncio_waker *b)
{
    return a->vtable == b->vtable && a->data == b->data;
}

/**
 * Stores a clone of `w` in `slot` unless the slot already wakes the same
 * target (the usual "register interest" step of a leaf future). Single
 * owner: not for slots shared between threads.
 */
static inline void asyncio_waker_store(asyncio_waker *slot, const asyncio_waker *w)
{
    if (asyncio_waker_will_wake(slot, w))
        return;
    asyncio_waker_drop(slot);
    *slot = asyncio_waker_clone(w);
}

/* ------------------------------------------------------------------------ */
/* Context                                                                   */

/**
 * What a poll function receives. Fields are read-only for futures; use
 * the functions below.
 */
typedef struct asyncio_context {
    const asyncio_waker *waker; /* read-only: the waker of the task being polled */
    bool coop;                  /* private: a runtime made it, the budget applies */
    unsigned budget;            /* private: operations left before a forced yield */
} asyncio_context;

/**
 * A context for polling a future by hand (tests, adapters): `waker` is
 * borrowed for the poll, and no cooperative budget applies.
 */
#define ASYNCIO_CONTEXT_INIT(waker_ptr) {(waker_ptr), false, 0}

/** Operations a task may complete in one poll before it is made to yield. */
#define ASYNCIO_COOP_BUDGET 128

/**
 * Cooperative scheduling: a leaf operation that is about to complete calls
 * this first. Returns 0 to proceed (one unit of budget is used), or
 * ASYNCIO_PENDING when the task has used up its budget: the task is woken
 * again right away and the operation must return ASYNCIO_PENDING so other
 * tasks and the I/O driver get a turn. Contexts not made by a runtime
 * (ASYNCIO_CONTEXT_INIT) always proceed.
 */
ASYNCIO_EXTERN int asyncio_coop_proceed(asyncio_context *cx);

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */

/**
 * A task type. The runtime allocates one block per task holding a header,
 * `state_size` bytes of state (copied from the spawner's initial value) and
 * `output_size` bytes of output.
 *
 * poll(state, cx, output): returns ASYNCIO_PENDING, or the task's result
 *   (0 or a negative error code), having written its output if any.
 *   Never called again after it returned a result, nor after the task was
 *   cancelled. With output_size 0, `output` is not NULL but names no
 *   storage (it may point just past the task's block): never write
 *   through it.
 * drop(state): cleanup, called exactly once per task, on a runtime thread,
 *   never while poll runs: after poll returned a result, or when the task
 *   is cancelled (abort, shutdown). May be NULL.
 * drop_output(output): releases an output nobody collected (the JoinHandle
 *   was dropped, or the task was detached). May be NULL.
 */
typedef struct asyncio_task_vtable {
    int (*poll)(void *state, asyncio_context *cx, void *output);
    void (*drop)(void *state);
    void (*drop_output)(void *output);
    size_t state_size;
    size_t output_size;
} asyncio_task_vtable;

/**
 * Owns the right to a task's output. Opaque. Obtained from spawn; released
 * with asyncio_join_handle_drop (exactly once), which detaches the task if
 * it is still running.
 */
typedef struct asyncio_join_handle asyncio_join_handle;

/**
 * The right to abort a task, without the right to its output (Tokio's
 * AbortHandle). Opaque. Obtained from asyncio_join_handle_abort_handle()
 * or asyncio_join_set_spawn(); released with asyncio_abort_handle_drop()
 * (exactly once). It keeps the task's block (not the task) alive.
 */
typedef struct asyncio_abort_handle asyncio_abort_handle;

/**
 * Called once when a task spawned with it (asyncio_spawn_with) finished:
 * `id` is the task's, `result` what its poll returned or ASYNCIO_ECANCELED
 * (aborted, or the runtime shut down), `output` its output_size bytes
 * (NULL when cancelled or when the task has none), valid only during the
 * call and still owned by the task (copy what you need; the JoinHandle, if
 * any, gets the output afterwards). Runs on a runtime thread (the shutdown
 * thread for tasks cancelled by shutdown), after the task's drop, before its
 * JoinHandle sees the result. It must not block; it may wake, spawn (it
 * then fails with ASYNCIO_ECANCELED during shutdown) and abort.
 */
typedef void (*asyncio_task_complete_fn)(void *arg, uint64_t id, int result, void *output);

ASYNCIO_BEGIN_DECLS

/**
 * Polls the task's completion. Returns ASYNCIO_PENDING (cx's waker will be
 * woken when it completes), or the task's result: what its poll returned,
 * or ASYNCIO_ECANCELED if it was aborted or the runtime shut down before it
 * finished. On a result, if `output` is non-NULL the task's output_size
 * bytes are moved there (only once: later calls return the result again
 * without output, and ownership of the output passes to the caller).
 * Any thread, but one at a time per handle.
 *
 * Errors: ASYNCIO_EINVAL (NULL handle or context).
 */
ASYNCIO_EXTERN int asyncio_join_handle_poll(asyncio_join_handle *jh, asyncio_context *cx,
                                            void *output);

/**
 * Asks the task to stop. If it is idle it is cancelled at its next
 * scheduling point (its drop runs on a runtime thread); if it is running,
 * when its current poll returns; if it already finished, nothing happens.
 * Does not release the handle. Any thread. Errors: ASYNCIO_EINVAL (NULL).
 */
ASYNCIO_EXTERN int asyncio_join_handle_abort(asyncio_join_handle *jh);

/** True once the task has finished (result available). Any thread. */
ASYNCIO_EXTERN bool asyncio_join_handle_is_finished(const asyncio_join_handle *jh);

/**
 * Releases the handle. If the output was never collected it is dropped
 * (drop_output) when the task finishes; the task itself keeps running
 * (detached). NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_join_handle_drop(asyncio_join_handle *jh);

/**
 * The task's id: unique within the process for its whole run (ids are
 * never reused, never 0, and the first task spawned is 1; runtime threads
 * reserve them in ranges, so ids are not in spawn order across threads).
 * 0 for NULL. Any thread.
 */
ASYNCIO_EXTERN uint64_t asyncio_join_handle_id(const asyncio_join_handle *jh);

/**
 * The name given at spawn (asyncio_spawn_options.name), or NULL when the
 * task has none. Valid while the handle is. Any thread.
 */
ASYNCIO_EXTERN const char *asyncio_join_handle_name(const asyncio_join_handle *jh);

/**
 * A new AbortHandle for the task (one more reference to its block).
 * Errors: ASYNCIO_EINVAL (NULL argument). Any thread.
 */
ASYNCIO_EXTERN int asyncio_join_handle_abort_handle(asyncio_join_handle *jh,
                                                    asyncio_abort_handle **out);

/**
 * As asyncio_join_handle_abort(): the task is cancelled at its next
 * scheduling point (its drop runs once, on a runtime thread); nothing
 * happens if it already finished. Errors: ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_abort_handle_abort(asyncio_abort_handle *ah);

/** True once the task has finished (or was cancelled). Any thread. */
ASYNCIO_EXTERN bool asyncio_abort_handle_is_finished(const asyncio_abort_handle *ah);

/** The task's id (as asyncio_join_handle_id). 0 for NULL. */
ASYNCIO_EXTERN uint64_t asyncio_abort_handle_id(const asyncio_abort_handle *ah);

/** Releases the handle (the task is not affected). NULL is a no-op. Any thread. */
ASYNCIO_EXTERN void asyncio_abort_handle_drop(asyncio_abort_handle *ah);

/**
 * The id of the task this thread is polling (or dropping), 0 outside a
 * task (Tokio's task::id). Cheap (a thread-local read).
 */
ASYNCIO_EXTERN uint64_t asyncio_task_id(void);

/** The name of the task this thread is polling, or NULL (unnamed, or outside a task). */
ASYNCIO_EXTERN const char *asyncio_task_name(void);

/** asyncio_task_set_waiting_on(): no number after the label. */
#define ASYNCIO_WAITING_NO_ARG INT64_MIN

/**
 * Sets the "waiting on" label of the task this thread is polling, shown by
 * asyncio_runtime_dump() as `what arg` (e.g. "read fd", 17; `arg`
 * ASYNCIO_WAITING_NO_ARG prints `what` alone). `what` is kept as a
 * pointer, not copied: it must stay valid as long as the runtime may dump
 * (a string literal). The label is cleared when the task is polled next, so
 * set it where the task returns ASYNCIO_PENDING; ASYNCIO_AWAIT does it for
 * you. Effective only on a runtime with opts.track_tasks; elsewhere, and
 * outside a task, it does nothing. Cheap: a thread-local read and, when
 * tracked, two relaxed stores. No errors.
 */
ASYNCIO_EXTERN void asyncio_task_set_waiting_on(const char *what, int64_t arg);

/* ------------------------------------------------------------------------ */
/* yield_now                                                                 */

/**
 * A future that is pending exactly once (waking itself), then ready: lets
 * other tasks run. Embeddable and movable at any time; initialise with
 * ASYNCIO_YIELD_INIT.
 */
typedef struct asyncio_yield {
    bool yielded; /* private */
} asyncio_yield;

#define ASYNCIO_YIELD_INIT {false}

/** Returns ASYNCIO_PENDING once (after waking cx's waker), then 0. */
ASYNCIO_EXTERN int asyncio_yield_poll(asyncio_yield *y, asyncio_context *cx);

ASYNCIO_END_DECLS

#endif

/*
 * Task harness (internal): the task block, its waker, and the poll / cancel
 * / complete paths shared by every scheduler.
 *
 * Layout: one allocation per task:
 *   [asyncio__task header][state: vt->state_size][output: vt->output_size]
 * with state and output aligned to max_align_t. The JoinHandle is a
 * pointer to the same block (it owns one reference).
 *
 * Who touches what:
 *   state word    src/task/state.c only
 *   next          the run queue currently holding the task's entry
 *   owned         the scheduler, under its lock
 *   pin           set once by the scheduler before the first entry is
 *                 queued (multi-thread: the worker a pinned task stays on)
 *   join_waker    the JOIN_WAKER protocol of state.h
 *   result,
 *   has_output    the runtime until COMPLETE is published (acq_rel), then the
 *                 JoinHandle if it still has interest, else the runtime
 */
#ifndef ASYNCIO_TASK_TASK_H
#define ASYNCIO_TASK_TASK_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>

#include "asyncio/task.h"
#include "task/state.h"
#include "util/list.h"

typedef struct asyncio__task asyncio__task;
typedef struct asyncio__scheduler asyncio__scheduler;

/* What a scheduler provides to the harness. */
typedef struct asyncio__scheduler_ops {
    /*
     * Queues an entry for `t` (the entry owns one reference, already
     * counted). `yield` says the task asked to go behind the others.
     */
    void (*schedule)(asyncio__scheduler *s, asyncio__task *t, bool yield);
    /* Removes `t` from the owned list; returns true if it was there (its ref is the caller's to
     * drop). */
    bool (*release)(asyncio__scheduler *s, asyncio__task *t);
} asyncio__scheduler_ops;

struct asyncio__scheduler {
    const asyncio__scheduler_ops *ops;
};

struct asyncio__task {
    asyncio__task_state state;
    const asyncio_task_vtable *vt;
    asyncio__scheduler *sched;
    asyncio__task *next;
    asyncio__list owned;
    asyncio_waker join_waker;
    int result;
    bool has_output;
    int32_t pin; /* -1: any worker may run it; else the index of the only one that may */
};

static inline void *asyncio__task_state_ptr(asyncio__task *t)
{
    size_t off = (sizeof(asyncio__task) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    return (char *)t + off;
}

static inline void *asyncio__task_output_ptr(asyncio__task *t)
{
    size_t sz = (t->vt->state_size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    return (char *)asyncio__task_state_ptr(t) + sz;
}

/*
 * Allocates and initialises a task (state word: 3 refs, NOTIFIED,
 * JOIN_INTEREST). The caller adds it to its owned list and schedules the
 * first entry. Returns NULL when out of memory.
 */
asyncio__task *asyncio__task_new(asyncio__scheduler *s, const asyncio_task_vtable *vt,
                                 const void *init_state);

/* Frees a task whose refs reached zero (and that was never published). */
void asyncio__task_dealloc(asyncio__task *t);

/* What asyncio__task_run did (flags, for the scheduler's metrics). */
#define ASYNCIO__RAN_POLL   1u /* the future was polled */
#define ASYNCIO__RAN_BUDGET 2u /* ... and returned PENDING with its coop budget used up */

/* Runs one queue entry of `t`: poll, cancel or let go, as its state says. */
unsigned asyncio__task_run(asyncio__task *t);

/*
 * Shutdown: cancels `t` if it is idle (claims it, runs its drop, completes
 * its JoinHandle with ECANCELED). Returns false if it was running elsewhere.
 */
bool asyncio__task_shutdown(asyncio__task *t);

/* Drops a queue entry without running it (the task is already complete). */
void asyncio__task_drop_entry(asyncio__task *t);

/*
 * Drops a queue entry that no queue accepted (the runtime is shutting down
 * and its queues are closed): only the entry's reference goes; the task
 * keeps NOTIFIED, so no later wake queues it again, and the shutdown of the
 * owned tasks cancels it. The task may be in any state.
 */
void asyncio__task_drop_notified(asyncio__task *t);

/*
 * Multi-thread shutdown: the caller took `t` off the owned list and so holds
 * the owner's reference. Cancels it if idle (that reference becomes the
 * polling one and complete() drops it); if it is running elsewhere, the
 * worker polling it sees CANCELLED in to_idle and cancels it, and the
 * reference is dropped here.
 */
void asyncio__task_shutdown_unowned(asyncio__task *t);

#endif

/*
 * Task harness (internal): the task block, its waker, and the poll / cancel
 * / complete paths shared by every scheduler.
 *
 * Layout: one block per task (task/block_cache.h: reused from the thread's
 * cache when it has one of the size class, else allocated):
 *   [set entry][record][asyncio__task header][state][output][extra]
 * with state and output aligned to max_align_t; the block ends where the
 * last part present does (no padding after a state without output).
 * `set entry` (asyncio__set_entry) only for a task spawned into a JoinSet;
 * `record` (task/obs.h) only on a runtime with track_tasks: it sits at a
 * fixed offset before the header, so the per-poll bookkeeping needs no
 * pointer load; `extra` only with spawn options or tracking. The
 * JoinHandle is a pointer to the header (it owns one reference).
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
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "asyncio/runtime.h"
#include "asyncio/task.h"
#include "task/obs.h"
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
    /*
     * Frees the scheduler's memory: its last reference is gone (see below).
     * Everything else of the runtime was torn down by asyncio_runtime_free.
     */
    void (*dealloc)(asyncio__scheduler *s);
} asyncio__scheduler_ops;

/*
 * The scheduler's lifetime (issue 12, bug 2). A waker may be woken from a
 * thread that is not the runtime's at any time, even after the runtime was
 * freed, so the memory it touches must outlive every such call:
 *
 *   refs             1 for the runtime handle (dropped by asyncio_runtime_free)
 *                    + 1 per task block (task_new .. task_dealloc). The last
 *                    drop calls ops->dealloc. Tokio: every task holds an Arc of
 *                    its scheduler handle.
 *   remote_inflight  wakes, aborts and spawns in progress on threads that are
 *                    not the runtime's, counted *before* the task's state
 *                    transition (asyncio__sched_enter_remote). Free waits for 0
 *                    after shutdown (asyncio__runtime_quiesce).
 *
 * Why this closes the window. A remote wake does: enter (relaxed RMW), the
 * state CAS (acq_rel), then maybe schedule (push, unpark), then leave
 * (release). Shutdown claims every task with an acq_rel CAS and only then
 * loads remote_inflight (acquire). If the wake's CAS came first (it queued
 * the task: SUBMIT), the claim read from it, so the enter happens-before the
 * claim and the later load sees it (or the leave): free waits. If the claim
 * came first, the wake sees a claimed / complete task and schedules nothing;
 * whatever it still touches (the counter, the task) stays allocated by the
 * references above. The counters live on their own cache line: `ops` is read
 * on every schedule, the counters written on every spawn and dealloc.
 */
struct asyncio__scheduler {
    const asyncio__scheduler_ops *ops;
    /* The task records' clock: non-NULL iff opts.track_tasks (fixed at creation). */
    const asyncio__obs_clock *track_clock;
    char pad0_[64 - 2 * sizeof(void *)];
    _Atomic size_t refs;
    _Atomic uint32_t remote_inflight;
    char pad1_[64 - sizeof(size_t) - sizeof(uint32_t)];
};

/* Sets up the counters: one reference, the runtime handle's. */
void asyncio__sched_init(asyncio__scheduler *s, const asyncio__scheduler_ops *ops);

/* One more reference (a task block, a clone of a waker whose data is the runtime). */
static inline void asyncio__sched_ref(asyncio__scheduler *s)
{
    /* Relaxed: made from a live reference (Arc::clone). */
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Drops one reference; the last one frees the scheduler (ops->dealloc). */
void asyncio__sched_unref(asyncio__scheduler *s);

/*
 * The runtime whose thread this is (a worker, a current-thread block_on or
 * a shutdown in progress), or NULL. Defined by the scheduler layer
 * (src/sched/runtime.c); asyncio_runtime starts with its asyncio__scheduler.
 */
extern _Thread_local struct asyncio_runtime *asyncio__tl_runtime;

/*
 * Brackets a call that may queue a task of `s` from outside its threads.
 * Returns true (and counts the call in remote_inflight) when the current
 * thread is not one of the runtime's; pass the result to leave.
 */
static inline bool asyncio__sched_enter_remote(asyncio__scheduler *s)
{
    if ((void *)asyncio__tl_runtime == (void *)s)
        return false;
    /* Relaxed: ordered before the free by the task state's acq_rel chain (above). */
    atomic_fetch_add_explicit(&s->remote_inflight, 1, memory_order_relaxed);
    return true;
}

/*
 * Test hook: when set, a wake or abort from outside the runtime's threads
 * calls it right after its state transition, inside the bracket (before the
 * schedule call, if any): the window of issue 12 bug 2. Tests only.
 */
extern void (*asyncio__task_remote_hook)(void);

static inline void asyncio__sched_leave_remote(asyncio__scheduler *s, bool entered)
{
    /* Release: everything this call did to the runtime happens-before the quiesce's acquire. */
    if (entered)
        atomic_fetch_sub_explicit(&s->remote_inflight, 1, memory_order_release);
}

/*
 * What asyncio_spawn_with's options leave in the task block (after the
 * output, only when the task was spawned with a name or a completion
 * callback, or its runtime tracks tasks: ASYNCIO__TASK_BLK_EXTRA in `blk`):
 * the completion callback and the name, copied, written once before the
 * task is published. On a runtime with track_tasks the task's observation
 * record (task/obs.h) sits right before the header (asyncio__task_obs_of):
 * a named task of an untracked runtime is exactly as large as without
 * tracking.
 */
typedef struct asyncio__task_extra {
    asyncio_task_complete_fn on_complete;
    void *on_complete_arg;
    char name[]; /* "" when unnamed */
} asyncio__task_extra;

/*
 * A task's entry in a JoinSet (src/task/join_set.c owns every field), at
 * the very start of its block: a task spawned into a set pays these 32
 * bytes and nothing else (no extra, no allocation of its own). `task`
 * leads back to the header (a record may sit in between).
 */
typedef struct asyncio__set_entry {
    asyncio__list link;
    void *set;
    struct asyncio__task *task;
} asyncio__set_entry;

/*
 * The JoinSet's completion step, called by the harness for a task with a
 * set entry when it completes (after the spawn options' on_complete,
 * before COMPLETE is published). Defined in src/task/join_set.c.
 */
void asyncio__join_set_task_done(asyncio__set_entry *e);

/* `blk`: the block's size class (task/block_cache.h) in the low 6 bits, and two flags. */
#define ASYNCIO__TASK_BLK_CLASS 0x3fu
#define ASYNCIO__TASK_BLK_EXTRA 0x40u /* the block has an asyncio__task_extra */
#define ASYNCIO__TASK_BLK_SET   0x80u /* the block starts with an asyncio__set_entry */

/*
 * 80 bytes on LP64 (a multiple of max_align_t: the state follows directly).
 * Every field is paid by every task, so nothing here is optional: the name
 * and callback live in the extra, the observation record before the
 * header, whether the runtime tracks tasks in the scheduler
 * (asyncio__task_tracked). `has_output` has a byte of its own: it is
 * written while other threads may read `blk` (the task dump).
 */
struct asyncio__task {
    asyncio__task_state state;
    const asyncio_task_vtable *vt;
    asyncio__scheduler *sched;
    asyncio__task *next;
    asyncio__list owned;
    asyncio_waker join_waker;
    uint64_t id; /* unique in the process, from 1 (asyncio_task_id) */
    int result;
    int16_t pin; /* -1: any worker may run it; else the index of the only one that may (<= 1024) */
    bool has_output;
    uint8_t blk; /* size class | ASYNCIO__TASK_BLK_* flags (set before publication) */
};

_Static_assert(sizeof(void *) != 8 || sizeof(asyncio__task) == 80,
               "the task header is 80 bytes on LP64: keep it so (docs/architecture.md)");

/* An observation record precedes the header: the runtime tracks tasks (fixed at its creation). */
static inline bool asyncio__task_tracked(const asyncio__task *t)
{
    return t->sched->track_clock != NULL;
}

/* The observation record of a tracked task: right before the header. */
static inline asyncio__task_obs *asyncio__task_obs_of(const asyncio__task *t)
{
    return (asyncio__task_obs *)(void *)((char *)t - sizeof(asyncio__task_obs));
}

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
 * Where a task of vt ends, from its header: after the output, or right
 * after the state when it has none (the output pointer of such a task is
 * never written through).
 */
static inline size_t asyncio__task_end_offset(const asyncio_task_vtable *vt)
{
    size_t a = alignof(max_align_t) - 1;
    size_t state = (sizeof(asyncio__task) + a) & ~a;
    if (vt->output_size == 0)
        return state + vt->state_size;
    return state + ((vt->state_size + a) & ~a) + vt->output_size;
}

/* Where the extra starts, for a task of vt: after the output, pointer-aligned. */
static inline size_t asyncio__task_extra_offset(const asyncio_task_vtable *vt)
{
    size_t a = alignof(asyncio__task_extra) - 1;
    return (asyncio__task_end_offset(vt) + a) & ~a;
}

/* Bytes of the block before the header: the set entry and the record, when present. */
static inline size_t asyncio__task_head_size(const asyncio__task *t)
{
    return (t->blk & ASYNCIO__TASK_BLK_SET ? sizeof(asyncio__set_entry) : 0) +
           (asyncio__task_tracked(t) ? sizeof(asyncio__task_obs) : 0);
}

/* The task's set entry, or NULL when it was not spawned into a set. */
static inline asyncio__set_entry *asyncio__task_set_entry(const asyncio__task *t)
{
    if (!(t->blk & ASYNCIO__TASK_BLK_SET))
        return NULL;
    return (asyncio__set_entry *)(void *)((char *)t - asyncio__task_head_size(t));
}

/* The task's extra, or NULL when it has none. */
static inline asyncio__task_extra *asyncio__task_extra_of(const asyncio__task *t)
{
    if (!(t->blk & ASYNCIO__TASK_BLK_EXTRA))
        return NULL;
    return (asyncio__task_extra *)(void *)((char *)t + asyncio__task_extra_offset(t->vt));
}

/* asyncio__task_new's flags. */
#define ASYNCIO__TASK_NEW_SET      1u /* the block starts with a set entry */
#define ASYNCIO__TASK_NEW_DETACHED 2u /* no JoinHandle: nobody will collect the output */

/*
 * Allocates and initialises a task (state word: 3 refs, NOTIFIED,
 * JOIN_INTEREST; DETACHED: 2 refs, no JoinHandle exists). The caller adds
 * it to its owned list and schedules the first entry. NEW_SET: the block
 * starts with a set entry (asyncio__task_set_entry; `task` set, the rest
 * the JoinSet's to fill before publication), as long-lived as the block.
 * Returns NULL when out of memory.
 */
asyncio__task *asyncio__task_new(asyncio__scheduler *s, const asyncio_task_vtable *vt,
                                 const void *init_state, const asyncio_spawn_options *opts,
                                 unsigned flags);

/*
 * Fills *out from t (the caller keeps t alive: an owned-list lock); now_ms
 * is the coarse clock's time (task/obs.h) for the ages.
 */
void asyncio__task_info(const asyncio__task *t, uint32_t now_ms, asyncio_task_info *out);

/* Frees a task whose refs reached zero (or that was never published); drops its scheduler ref. */
void asyncio__task_dealloc(asyncio__task *t);

/* What asyncio__task_run did (flags, for the scheduler's metrics). */
#define ASYNCIO__RAN_POLL   1u /* the future was polled */
#define ASYNCIO__RAN_BUDGET 2u /* ... and returned PENDING with its coop budget used up */

/* Runs one queue entry of `t`: poll, cancel or let go, as its state says. */
unsigned asyncio__task_run(asyncio__task *t);

/*
 * asyncio__task_run() on a runtime with an observability option: also
 * writes the worker's poll record `wo` and the task's (task/obs.h). The
 * schedulers choose once (asyncio__task_run_for), so the plain path carries
 * none of it and each observed runtime only what its options need:
 *   watched   the stall detector alone: which task the worker polls
 *   tracked   track_tasks (with or without the detector): also the task's record
 *   observed  any options, read from `wo` (poll_time_histogram)
 */
typedef unsigned (*asyncio__task_run_fn)(asyncio__task *t, asyncio__worker_obs *wo);
unsigned asyncio__task_run_watched(asyncio__task *t, asyncio__worker_obs *wo);
unsigned asyncio__task_run_tracked(asyncio__task *t, asyncio__worker_obs *wo);
unsigned asyncio__task_run_observed(asyncio__task *t, asyncio__worker_obs *wo);
/* The entry point for a worker with record `wo` (non-NULL). */
asyncio__task_run_fn asyncio__task_run_for(const asyncio__worker_obs *wo);

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

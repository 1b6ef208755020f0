/*
 * Observation records (internal): what the harness writes around each poll
 * so that the dump, the stall detector and the poll-time histogram can see
 * inside a running runtime (docs/observability.md). Everything here is off
 * unless the runtime was created with an observability option; then the
 * scheduler calls the entry point asyncio__task_run_for() picked (watched,
 * tracked or observed: task.h) with its worker's record instead of
 * asyncio__task_run(): the plain path has no observability code.
 *
 * The hot path reads no clock and does no read-modify-write: per poll, the
 * worker stores which task it polls (and NULL after), and with track_tasks
 * bumps the task's poll count and stamps it with the coarse clock, which
 * the observer thread stores into every worker's record each tick (in ms
 * since the runtime started; uint32, so ages wrap after 49 days). Only
 * poll_time_histogram reads the monotonic clock, twice per poll.
 *
 * Who writes what (every field another thread reads is atomic, with one
 * writer: a relaxed load and a relaxed or release store, never a locked
 * instruction):
 *   worker_obs.task, hist, hist_sum   the worker that owns the record
 *   worker_obs.now_ms                 the observer thread
 *   worker_obs.seen_*                 the observer thread (the dump reads them)
 *   task_obs.spawned_ms               before the task is published
 *   task_obs.polls, poll_ms, worker,  the thread polling the task (one at a
 *   wait_*                            time: the state word's acq_rel hand-offs
 *                                     order them)
 *   task_obs.longest_ms               the observer thread, under the lock of
 *                                     the owned list that holds the task
 *
 * The stall detector samples (observer thread, every tick): it reads the
 * worker's poll count, then `task` (acquire: the worker stores it with
 * release after counting the previous poll). The same non-NULL task with
 * the same poll count in two samples is one poll running across them, at
 * least as long as the time between the first of them and now (the error
 * is at most one tick). The task pointer is never dereferenced as such: it
 * is looked up on the owned lists, and the sample checked again under that
 * list's lock, which keeps the task alive.
 */
#ifndef ASYNCIO_TASK_OBS_H
#define ASYNCIO_TASK_OBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asyncio/runtime.h"

struct asyncio__task;

/* The runtime's coarse clock: ms since the runtime started (observer thread). */
typedef struct asyncio__obs_clock {
    _Atomic uint32_t now_ms;
    uint64_t origin_ns; /* asyncio__clock_now_ns() at creation */
} asyncio__obs_clock;

/* Monotonic ns (src/platform/clock.c). */
uint64_t asyncio__clock_now_ns(void);

/* One worker's poll record and histogram. Padded: workers write their own only. */
typedef struct asyncio__worker_obs {
    _Atomic(struct asyncio__task *) task; /* being polled now, or NULL */
    _Atomic uint32_t now_ms;              /* the coarse clock (observer) */
    uint32_t index;                       /* the worker's index */
    bool track;                           /* per-task records (opts.track_tasks) */
    bool hist_on;                         /* poll_time_histogram */
    const _Atomic uint64_t *polls;        /* the worker's poll counter (metrics) */
    _Atomic uint64_t hist[ASYNCIO_POLL_HISTOGRAM_BUCKETS];
    _Atomic uint64_t hist_sum; /* ns */
    /* The observer's last sample (it writes them; the dump reads them). */
    _Atomic(struct asyncio__task *) seen_task;
    _Atomic uint64_t seen_polls;
    _Atomic uint32_t seen_since_ms; /* when the sampled poll was first seen */
    bool reported;                  /* observer only: this poll was reported */
    char pad_[64];
} asyncio__worker_obs;

/* A task's record (right before its header: only tasks of a runtime with track_tasks have one). */
typedef struct asyncio__task_obs {
    uint32_t spawned_ms;
    _Atomic uint32_t polls;
    _Atomic uint32_t poll_ms;    /* coarse clock when the last (or current) poll began */
    _Atomic uint32_t longest_ms; /* longest poll seen by the observer's samples */
    _Atomic(const asyncio__worker_obs *) worker; /* the last worker that polled it */
    _Atomic(const char *) wait_what;             /* "waiting on" label, or NULL */
    _Atomic int64_t wait_arg;
    _Atomic uint32_t wait_polls; /* polls when the label was set: stale once polls moves */
} asyncio__task_obs;

/* Relaxed single-writer add (the owner thread only). */
#define ASYNCIO__OBS_ADD(field, n)                                                              \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
                          memory_order_relaxed)

/* Histogram bucket of a poll of `ns` nanoseconds (see ASYNCIO_POLL_HISTOGRAM_BUCKETS). */
static inline unsigned asyncio__obs_bucket(uint64_t ns)
{
    unsigned b = 0;
    for (uint64_t x = ns >> 10; x != 0 && b < ASYNCIO_POLL_HISTOGRAM_BUCKETS - 1; x >>= 1)
        b++;
    return b;
}

#endif

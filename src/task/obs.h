/*
 * Observation records (internal): what the harness writes around each poll
 * so that the dump, the stall detector and the poll-time histogram can see
 * inside a running runtime (docs/observability.md). Everything here is off
 * unless the runtime was created with an observability option; then the
 * scheduler hands asyncio__task_run() its worker's record, else NULL.
 *
 * Who writes what (every field read by other threads is a relaxed or
 * release atomic with one writer: no read-modify-write on the hot path):
 *   asyncio__obs_clock   coarse: the observer thread; fine: fixed at creation
 *   asyncio__worker_obs  the worker that owns it (seq, task, start, hist,
 *                        hist_sum); reported_seq: the observer thread
 *   asyncio__task_obs    spawned: before the task is published; the rest:
 *                        the thread polling the task (one at a time: the
 *                        state word's acq_rel hand-offs order them);
 *                        wait_*: the polling thread (set_waiting_on)
 *
 * The poll record protocol (a seqlock with one writer, read by the stall
 * detector without taking any lock):
 *   poll begin   task := t (release); start := now (release);
 *                seq := seq + 1 (release): odd while a poll runs
 *   poll end     seq := seq + 1 (release): even
 *   reader       s1 := seq (acquire), odd or nothing runs; p := task,
 *                s := start (acquire); ... s2 := seq (acquire); the values
 *                belong to poll s1 iff s2 == s1. If p or s was written by a
 *                later poll, its release store follows that poll's (or the
 *                end's) seq store, and the acquire load synchronises with
 *                it, so s2 sees the newer seq. The reader never dereferences
 *                p: it looks it up on the owned lists, under their locks.
 */
#ifndef ASYNCIO_TASK_OBS_H
#define ASYNCIO_TASK_OBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asyncio/runtime.h"

struct asyncio__task;

/*
 * The clock the records use, in monotonic ns: `fine` reads the clock each
 * time (poll_time_histogram); else `coarse`, which the observer thread
 * stores every tick (a relaxed load: no syscall on the hot path).
 */
typedef struct asyncio__obs_clock {
    _Atomic uint64_t coarse;
    bool fine;
} asyncio__obs_clock;

/* Monotonic ns (src/platform/clock.c). */
uint64_t asyncio__clock_now_ns(void);

static inline uint64_t asyncio__obs_now(const asyncio__obs_clock *c)
{
    if (c->fine)
        return asyncio__clock_now_ns();
    return atomic_load_explicit(&((asyncio__obs_clock *)c)->coarse, memory_order_relaxed);
}

/* One worker's poll record and histogram. Padded: workers write their own only. */
typedef struct asyncio__worker_obs {
    _Atomic uint64_t seq;                   /* odd while a poll runs */
    _Atomic(struct asyncio__task *) task;   /* the task of poll `seq` (never dereferenced) */
    _Atomic uint64_t start;                 /* clock at its start */
    const asyncio__obs_clock *clock;
    uint32_t index;                         /* the worker's index */
    bool track;                             /* per-task records (opts.track_tasks) */
    bool hist_on;                           /* poll_time_histogram */
    _Atomic uint64_t hist[ASYNCIO_POLL_HISTOGRAM_BUCKETS];
    _Atomic uint64_t hist_sum;              /* ns */
    uint64_t reported_seq;                  /* observer thread only: last poll reported */
    char pad_[64];
} asyncio__worker_obs;

/* A task's record (in its extra block: only tasks of a runtime with track_tasks have one). */
typedef struct asyncio__task_obs {
    uint64_t spawned;            /* clock at spawn */
    _Atomic uint64_t polls;
    _Atomic uint64_t poll_start; /* clock when the last (or current) poll began; 0: never */
    _Atomic uint64_t poll_end;   /* clock when the last poll ended */
    _Atomic uint64_t longest;    /* ns */
    _Atomic int32_t worker;      /* the last worker that polled it; -1: none yet */
    _Atomic(const char *) wait_what;
    _Atomic int64_t wait_arg;
} asyncio__task_obs;

/* Relaxed single-writer add (the owner thread only). */
#define ASYNCIO__OBS_ADD(field, n)                                                     \
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

/*
 * libasyncio: the runtime — a scheduler that polls tasks, plus the drivers
 * (I/O readiness, timers) they wait on.
 *
 * Flavours (chosen with asyncio_runtime_options.flavor):
 *   ASYNCIO_RUNTIME_CURRENT_THREAD  every task runs on the thread that calls
 *       asyncio_runtime_block_on(), and only while it is inside that call.
 *   ASYNCIO_RUNTIME_MULTI_THREAD    `workers` threads, started by
 *       asyncio_runtime_new(), run tasks from the moment they are spawned
 *       (work stealing: an idle worker takes half of a busy one's queue).
 *       block_on does not make the caller a worker: it blocks the calling
 *       thread until the given task finishes, while the workers run it and
 *       everything else (Tokio's semantics). Tasks may move between workers
 *       between two polls, unless spawned with asyncio_spawn_pinned().
 * The same API serves both; docs/scheduler.md describes their design.
 *
 * Lifecycle: new -> (spawn / block_on)* -> shutdown -> free. shutdown
 * stops the workers (multi-thread), cancels every remaining task and runs
 * each one's drop exactly once; free releases the runtime. Spawning and
 * waking are safe from any thread; shutdown and free are called by the
 * thread that created the runtime, never from inside one of its tasks.
 */
#ifndef ASYNCIO_RUNTIME_H
#define ASYNCIO_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "error.h"
#include "task.h"

typedef struct asyncio_runtime asyncio_runtime;

/** What the stall detector passes to asyncio_runtime_options.on_stall. */
typedef struct asyncio_stall_info {
    uint64_t task_id;   /* asyncio_task_id() of the task being polled */
    char task_name[32]; /* its name (truncated to 31 bytes), "" when unnamed */
    uint32_t worker;    /* the worker (0 on the current-thread runtime) */
    uint64_t poll_ms;   /* how long this poll has run so far (>= the threshold) */
} asyncio_stall_info;

/**
 * Stall callback: called on the runtime's observer thread (never a worker),
 * once per poll that runs longer than opts.stall_threshold_ms, while that
 * poll still runs. It may call asyncio_runtime_dump() and the other
 * read-only queries; it must not shut the runtime down or free it.
 */
typedef void (*asyncio_stall_fn)(void *arg, const asyncio_stall_info *info);

typedef enum asyncio_runtime_flavor {
    /** Every task runs on the thread inside asyncio_runtime_block_on(). */
    ASYNCIO_RUNTIME_CURRENT_THREAD = 0,
    /** Work-stealing workers (opts.workers threads; 0 = one per CPU). */
    ASYNCIO_RUNTIME_MULTI_THREAD = 1,
} asyncio_runtime_flavor;

/**
 * Runtime options. Zero-initialise, then set what you need; zero fields
 * take the documented defaults.
 *
 * Threads the runtime starts (workers, blocking pool) get at least 2 MiB of
 * stack, or the C library's default when larger (glibc: usually 8 MiB; musl's
 * 128 KiB is raised), so tasks and blocking jobs see the same minimum on every
 * C library.
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
    /*
     * Observability (docs/observability.md). All off by default, and then
     * free: no clock read, no extra store per poll, no extra thread.
     */
    /**
     * Per-task bookkeeping for asyncio_runtime_dump() / asyncio_runtime_tasks():
     * polls, worker, time since spawn / last poll, longest poll, "waiting on"
     * label. Costs a few plain stores per poll (no clock read), a larger task
     * block, and one thread (the observer) that keeps a coarse clock
     * (resolution ASYNCIO_OBSERVER_TICK_MS, or threshold / 4 with the stall
     * detector) and samples the workers for long polls.
     */
    bool track_tasks;
    /**
     * Stall detector: report every poll that runs longer than this many ms
     * (0: off) to on_stall (NULL: one line on stderr). Runs on the observer
     * thread, which samples each worker every min(threshold / 4, 10) ms, so a
     * stall is reported between threshold and threshold + one sample late.
     */
    uint32_t stall_threshold_ms;
    asyncio_stall_fn on_stall;
    void *on_stall_arg;
    /**
     * Exact poll times: every poll is timed with the monotonic clock (two
     * reads per poll) into a per-worker histogram (poll_time_histogram and
     * poll_time_ns in the metrics).
     */
    bool poll_time_histogram;
} asyncio_runtime_options;

/** The observer thread's coarse-clock period when only track_tasks is on (ms). */
#define ASYNCIO_OBSERVER_TICK_MS 10

/**
 * Buckets of the poll-time histogram. Bucket i < N-1 counts polls shorter
 * than 2^(10+i) ns and at least 2^(9+i) ns (bucket 0: shorter than 1,024 ns);
 * the last bucket counts every longer poll (>= 2^(8+N) ns, about 268 ms).
 */
#define ASYNCIO_POLL_HISTOGRAM_BUCKETS 20

/**
 * Per-worker counters of a runtime (asyncio_runtime_metrics()). Each is a
 * relaxed snapshot: counters only grow, depths are instantaneous. The
 * current-thread runtime reports everything as worker 0.
 */
typedef struct asyncio_worker_metrics {
    uint64_t tasks_spawned;     /* asyncio_spawn* calls made on this worker's thread */
    uint64_t polls;             /* task polls */
    uint64_t steals;            /* successful steal operations from other workers */
    uint64_t tasks_stolen;      /* tasks those steals took */
    uint64_t parks;             /* times the worker went idle (blocked) */
    uint64_t unparks;           /* times it was woken from idle */
    uint64_t lifo_hits;         /* polls taken from the LIFO slot */
    uint64_t budget_yields;     /* polls that ended with the coop budget used up */
    uint64_t io_events;         /* I/O readiness events dispatched by its driver turns */
    uint64_t local_queue_depth; /* tasks in its local queue (and LIFO slot) now */
    /* Runtime-wide values, the same for every worker: */
    uint64_t global_queue_depth; /* tasks in the global (inject) queue now */
    uint64_t remote_spawned;     /* spawns made outside every worker thread */
    uint64_t blocking_threads;   /* blocking-pool threads alive now */
    /* Since issue 17. Per worker (summed for ASYNCIO_ALL_WORKERS): */
    uint64_t overflows;    /* times its full local queue sent entries to the global queue */
    uint64_t poll_time_ns; /* total time spent polling (poll_time_histogram on; else 0) */
    /* Polls by duration (poll_time_histogram on; else all 0): see ASYNCIO_POLL_HISTOGRAM_BUCKETS.
     */
    uint64_t poll_time_histogram[ASYNCIO_POLL_HISTOGRAM_BUCKETS];
    /* Runtime-wide: */
    uint64_t alive_tasks;          /* spawned and not yet finished or cancelled */
    uint64_t blocking_queue_depth; /* blocking jobs queued, not started yet */
    uint64_t timers_active;        /* timers registered with the time driver now */
    uint64_t timers_fired;         /* timers that came due so far */
    uint64_t io_registrations;     /* I/O sources registered with the driver now */
    const char *backend;           /* the poller backend the driver uses ("epoll", ...): static */
} asyncio_worker_metrics;

/** What a task is doing, in asyncio_task_info. */
typedef enum asyncio_task_run_state {
    ASYNCIO_TASK_IDLE = 0,      /* waiting for a wake */
    ASYNCIO_TASK_SCHEDULED = 1, /* woken, in a run queue */
    ASYNCIO_TASK_RUNNING = 2,   /* being polled (or finishing) now */
    ASYNCIO_TASK_NOTIFIED = 3,  /* being polled, and woken meanwhile: runs again after */
} asyncio_task_run_state;

/** "idle", "scheduled", "running", "notified" (static), or "?" for other values. */
ASYNCIO_EXTERN const char *asyncio_task_run_state_name(asyncio_task_run_state s);

/**
 * One live task as asyncio_runtime_tasks() reports it. The fields after
 * `worker` need opts.track_tasks (`tracked` says so; else they are 0 / "").
 * Times come from the observer's coarse clock: whole milliseconds, late by
 * up to one tick (ASYNCIO_OBSERVER_TICK_MS, or stall threshold / 4).
 * longest_poll_us counts only polls that spanned two of the observer's
 * samples (shorter ones are below its resolution and count as 0).
 */
typedef struct asyncio_task_info {
    uint64_t id;   /* asyncio_task_id() of the task */
    char name[32]; /* its name (truncated to 31 bytes), "" when unnamed */
    asyncio_task_run_state state;
    int32_t worker;           /* pinned: its worker; else the last that polled it; -1 unknown */
    bool tracked;             /* the fields below are valid */
    uint64_t polls;           /* polls so far */
    uint64_t age_us;          /* since spawn */
    uint64_t since_poll_us;   /* since the last (or, running, the current) poll began;
                                 since spawn if never polled */
    uint64_t longest_poll_us; /* the longest poll so far */
    char waiting_on[64];      /* the "waiting on" label (asyncio_task_set_waiting_on), or "" */
} asyncio_task_info;

/** asyncio_runtime_metrics(): the sum over every worker. */
#define ASYNCIO_ALL_WORKERS UINT32_MAX

ASYNCIO_BEGIN_DECLS

/**
 * Creates a runtime. `opts` may be NULL for the defaults. The
 * multi-thread flavour starts its workers here (opts.workers, 0 = one per
 * online CPU, at most 1024).
 * Errors: ASYNCIO_EINVAL (out NULL, unknown flavour, workers > 1024),
 * ASYNCIO_ENOMEM, ASYNCIO_EAGAIN (a worker thread could not be started),
 * and the errors of asyncio_poller_new(). On failure nothing needs freeing.
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
 * As asyncio_spawn(), but the task is pinned: on the multi-thread runtime
 * it is polled (and on cancellation dropped) only by one worker, never
 * stolen, so its state need not be thread-safe. Called on a worker thread
 * (inside a task), it pins to that worker; called from any other thread it
 * pins to a worker chosen round-robin. Its JoinHandle may be awaited,
 * aborted and dropped from any task or thread; wakes from anywhere queue it
 * back on its worker. The exception is runtime shutdown: after the workers
 * have stopped, the thread calling asyncio_runtime_shutdown() drops it
 * (the worker no longer runs, so nothing is concurrent). On the
 * current-thread runtime this is asyncio_spawn().
 * Errors: those of asyncio_spawn().
 */
ASYNCIO_EXTERN int asyncio_spawn_pinned(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                                        const void *init_state, asyncio_join_handle **jh);

/**
 * Options of asyncio_spawn_with(). Zero-initialise, then set what you need.
 */
typedef struct asyncio_spawn_options {
    /** The task's name (asyncio_task_name, asyncio_join_handle_name), copied; NULL: none. */
    const char *name;
    /** As asyncio_spawn_pinned(). */
    bool pinned;
    /** Called once when the task finished or was cancelled (task.h); NULL: none. */
    asyncio_task_complete_fn on_complete;
    /** Passed to on_complete. */
    void *on_complete_arg;
} asyncio_spawn_options;

/**
 * asyncio_spawn() with options: a name (copied into the task's block, no
 * extra allocation), pinning, and a completion callback for code bridging
 * from callback-style libraries (the task's result and output are handed to
 * a function instead of, or as well as, a JoinHandle). opts NULL is
 * asyncio_spawn(). Errors: those of asyncio_spawn(); on error the callback
 * never runs. Any thread.
 */
ASYNCIO_EXTERN int asyncio_spawn_with(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                                      const void *init_state, const asyncio_spawn_options *opts,
                                      asyncio_join_handle **jh);

/**
 * Spawns a task and waits until it finishes; returns its result and moves
 * its output to `output` (if non-NULL). Current-thread: the calling thread
 * runs the runtime meanwhile (other tasks keep running); it must not be
 * running already. Multi-thread: the calling thread only waits (on a
 * condition variable) while the workers run the task; several threads may
 * block_on at once. Must not be called from inside a task of any runtime.
 * Do not pthread_cancel() a thread inside block_on: the library installs no
 * cancellation handlers, and on Linux its I/O system calls (including the
 * poller wait a current-thread block_on sleeps in) are not cancellation
 * points, so the request is not acted on there (docs/architecture.md).
 *
 * Errors: those of asyncio_spawn, ASYNCIO_EBUSY (called from inside a task,
 * or re-entrantly on a current-thread runtime), or the task's own result.
 * Current-thread only: a poller wait that fails for a reason other than a
 * passing shortage (ENOMEM, ENOBUFS, EAGAIN, EBUSY are ridden out with a
 * back-off) ends block_on with that error, e.g. ASYNCIO_EBADF when the
 * poller's fd was closed behind the runtime's back; the task stays spawned
 * and is dropped by asyncio_runtime_free. The multi-thread runtime's workers
 * back off and retry instead (docs/io-driver.md).
 */
ASYNCIO_EXTERN int asyncio_runtime_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                                            const void *init_state, void *output);

/**
 * Shuts down: refuses new spawns, stops the workers (multi-thread: each
 * finishes the poll it is in, then exits; they are joined), cancels every
 * task (each drop runs once, on this thread) and completes their
 * JoinHandles with ASYNCIO_ECANCELED; then the blocking pool's queued jobs
 * are cancelled and its running ones awaited. Idempotent. Called by the
 * thread that created the runtime, never from inside a task (ignored
 * there, and while a current-thread block_on runs).
 */
ASYNCIO_EXTERN void asyncio_runtime_shutdown(asyncio_runtime *rt);

/**
 * Shuts down (if not done yet) and frees the runtime. Before freeing it
 * waits for wakes, aborts and spawns still in progress on other threads (a
 * wake from a non-runtime thread may still be queueing its task), so waking
 * from any thread is safe at any time, even after this call: a waker or
 * JoinHandle kept past it holds its task, and the task a small part of the
 * runtime, until dropped (waking it then does nothing; the task was
 * cancelled).
 * Errors: ASYNCIO_EBUSY if I/O registrations made through this runtime
 * are still alive (nothing is freed: close them first), or if called from
 * inside a task (or, current-thread, during block_on). NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_runtime_free(asyncio_runtime *rt);

/** The runtime whose task is running on this thread, or NULL. */
ASYNCIO_EXTERN asyncio_runtime *asyncio_runtime_current(void);

/**
 * Number of workers: opts.workers resolved (multi-thread), 1
 * (current-thread), 0 for NULL. Any thread.
 */
ASYNCIO_EXTERN uint32_t asyncio_runtime_num_workers(const asyncio_runtime *rt);

/**
 * The poller backend the runtime's I/O driver runs on: "epoll", "uring", "poll" or "kqueue"
 * (ASYNCIO_BACKEND, else the platform default). When the backend asked for cannot run here
 * (uring with io_uring_setup refused by seccomp or kernel.io_uring_disabled, or a kernel
 * without the operations it needs) the runtime runs on its fallback (epoll) and this names
 * the fallback. Static string, never NULL ("none" for NULL); any thread, at any time until
 * asyncio_runtime_free().
 */
ASYNCIO_EXTERN const char *asyncio_runtime_backend(const asyncio_runtime *rt);

/**
 * Copies worker `worker`'s counters (0 <= worker < num_workers) or, with
 * ASYNCIO_ALL_WORKERS, their sum, to *out. The counters are relaxed loads;
 * the runtime-wide values take their owner's lock briefly (blocking pool,
 * timer driver, I/O driver), and alive_tasks walks the owned-task lists
 * (each shard's lock in turn: O(live tasks), so that spawning pays
 * nothing for it). Meant for scrapes, not hot paths. Any thread, at
 * any time until asyncio_runtime_free(), inside a task or not.
 * Errors: ASYNCIO_EINVAL (rt or out NULL, worker out of range).
 */
ASYNCIO_EXTERN int asyncio_runtime_metrics(const asyncio_runtime *rt, uint32_t worker,
                                           asyncio_worker_metrics *out);

/**
 * Lists the runtime's live tasks (spawned and not yet finished or
 * cancelled): fills an asyncio_task_info (id, name, state, worker and,
 * with opts.track_tasks, the tracked fields) for up to `cap` of them in
 * out[] (in no particular order) and stores how many tasks are live in *n_out
 * (which may exceed cap: call again with a larger array). A snapshot for
 * diagnostics: tasks may finish or start meanwhile. Holds each owned-task
 * list's lock while copying from it, so spawns wait that long: not for hot
 * paths. Any thread, until asyncio_runtime_free().
 * Errors: ASYNCIO_EINVAL (rt or n_out NULL, out NULL with cap > 0).
 */
ASYNCIO_EXTERN int asyncio_runtime_tasks(const asyncio_runtime *rt, asyncio_task_info *out,
                                         size_t cap, size_t *n_out);

/**
 * Writes a human-readable dump of the runtime to `out`: a header (flavour,
 * workers, backend, live tasks), one line per worker (the task it is
 * polling and for how long, with the stall detector or track_tasks on),
 * then one line per live task with the asyncio_task_info fields, as
 * `key=value` pairs (docs/observability.md shows the format). Takes the
 * asyncio_runtime_tasks() snapshot (allocating it: one block), then writes
 * with no runtime lock held, so a slow `out` delays nothing. Any thread,
 * while the runtime runs, including a task of it (the snapshot is then
 * taken while that task runs) and the stall callback.
 * Errors: ASYNCIO_EINVAL (rt or out NULL), ASYNCIO_ENOMEM, ASYNCIO_EIO
 * (writing to `out` failed).
 */
ASYNCIO_EXTERN int asyncio_runtime_dump(const asyncio_runtime *rt, FILE *out);

/**
 * Writes asyncio_runtime_metrics() in the Prometheus text exposition format
 * (version 0.0.4) to `out`: per-worker counters labelled worker="N",
 * runtime-wide gauges, the backend as asyncio_backend_info{backend=...} 1,
 * and, with opts.poll_time_histogram, the histogram
 * asyncio_poll_duration_seconds. docs/observability.md lists every series.
 * Any thread, like asyncio_runtime_metrics().
 * Errors: ASYNCIO_EINVAL (rt or out NULL), ASYNCIO_EIO (writing failed).
 */
ASYNCIO_EXTERN int asyncio_runtime_metrics_write_prometheus(const asyncio_runtime *rt, FILE *out);

ASYNCIO_END_DECLS

#endif

/*
 * The allocation-failure sweep (issue 18; docs/testing.md, "Allocation sweep").
 *
 * A scenario is a whole program in miniature: it creates its runtime, runs a
 * client-server exchange or a burst of tasks, closes everything and frees the
 * runtime, and returns 0 or the first error it met. alloc_sweep_run() runs it
 *
 *   1. once with nothing failing, counting the allocations made through the
 *      library's hook (asyncio_set_allocator): that run must succeed;
 *   2. again for k = 0, 1, 2, ... with exactly the k-th allocation of the run
 *      failing (NULL), until a run in which fewer than k + 1 allocations were
 *      made (the k-th was never reached), so every allocation the scenario
 *      reaches is failed once even when the count varies between runs.
 *
 * A site is identified by its call index: "the k-th call to the hook since
 * the scenario started". On the current-thread runtime a scenario is a fixed
 * sequence of polls over loopback sockets, so k names the same call stack on
 * every run and a failure replays exactly with ALLOC_SWEEP_K=k. On the
 * multi-thread runtime two workers may interleave their allocations, so k
 * names a position in that run's order; the sweep still fails every
 * position, and a replay of k usually but not always hits the same site
 * (rerun it a few times). Call stacks would name sites across runs, but
 * unwinding is not portable (musl has no backtrace()), costs more than the
 * scenario, and two calls from one stack (a loop) are still two sites.
 *
 * After every run the properties checked are:
 *   - result: 0 (the library retried or the allocation was optional, and the
 *     scenario verified its data), or an error the scenario lists as allowed
 *     (ASYNCIO_ENOMEM, and the errors a peer sees when the other side of an
 *     exchange failed, such as ASYNCIO_ECONNRESET or early EOF);
 *     ASYNCIO_ENOMEM is required somewhere if a run fails at all;
 *   - no leak: every block handed out by the hook was freed, and the process
 *     holds as many fds as before the run (ASan/LSan also watch libc in
 *     `make sanitize`);
 *   - no crash, no hang: a watchdog (alarm, ALLOC_SWEEP_TIMEOUT_S, default
 *     20 s) aborts the suite, printing the scenario and k.
 *
 * Environment: ALLOC_SWEEP_K=k runs only the counting run and failing run k;
 * ALLOC_SWEEP_VERBOSE=1 prints every run's result.
 */
#ifndef ASYNCIO_TEST_ALLOC_SWEEP_H
#define ASYNCIO_TEST_ALLOC_SWEEP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** A scenario: runs to completion and returns 0 or the first error it met. */
typedef int (*alloc_sweep_fn)(void);

/**
 * Errors a failed run may return besides ASYNCIO_ENOMEM: consequences of the
 * failure seen by the other side (0-terminated list; NULL: none).
 */
typedef struct alloc_sweep_scenario {
    const char *name;
    alloc_sweep_fn run;
    const int *also_allowed;
} alloc_sweep_scenario;

/**
 * Sweeps one scenario as described above; fails the current cmocka test on
 * any violated property, naming the scenario and k. Returns the number of
 * failing runs made (allocation sites covered).
 */
long alloc_sweep_run(const alloc_sweep_scenario *s);

/**
 * For scenarios: records the first error a task of the scenario met (tasks
 * run on any worker). alloc_sweep_note(0) does nothing. Reset per run.
 */
void alloc_sweep_note(int rc);

/** The first error noted in this run (0: none). */
int alloc_sweep_noted(void);

/** True while the run's failing allocation has already been refused. */
bool alloc_sweep_failed_yet(void);

/*
 * Creates a runtime of the flavour ASYNCIO_TEST_RUNTIME selects, runs
 * vt/init with block_on, frees the runtime. Returns the first of: the
 * runtime's creation error, block_on's result, asyncio_runtime_free's error
 * (ASYNCIO_EBUSY: a registration outlived the scenario), the first error a
 * task noted with alloc_sweep_note().
 */
struct asyncio_task_vtable;
int alloc_sweep_block_on(const struct asyncio_task_vtable *vt, const void *init);

/*
 * Data checks inside tasks: they may run on a worker thread, where cmocka's
 * assertions (a longjmp into the test) must not be used. A mismatch aborts.
 */
#define SWEEP_EXPECT_EQ(a, b)                                                      \
    do {                                                                           \
        if ((long long)(a) != (long long)(b)) {                                    \
            fprintf(stderr, "%s:%d: %s != %s\n", __FILE__, __LINE__, #a, #b);       \
            abort();                                                               \
        }                                                                          \
    } while (0)
#define SWEEP_EXPECT_MEM(a, b, n) SWEEP_EXPECT_EQ(memcmp((a), (b), (n)), 0)

#endif

/*
 * Shared helpers for the cmocka suites.
 *
 *   assertions   assert_ok(rc) / assert_err(rc, code) print the error's name and message.
 *   allocator    a counting allocator installed through asyncio_set_allocator(); the
 *                fixtures support_setup / support_teardown install it, check that no block
 *                and no file descriptor outlives a test, and restore the default.
 *   sockets      nonblocking socketpairs, a loopback TCP listener on port 0 and a connected
 *                nonblocking client / accepted pair, write N bytes, read until EAGAIN.
 *   events       wait once and look events up by token (support_events, expect_*).
 *   threads      support_wait_blocked(): lets a helper thread wait (without sleeping)
 *                until another thread is blocked in the kernel, so cross-thread wake-up
 *                tests exercise the "owner is already blocked" path.
 *
 * Every helper fails the current cmocka test on an unexpected system error, so tests
 * read as the behaviour they check.
 */
#ifndef ASYNCIO_TEST_SUPPORT_H
#define ASYNCIO_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/types.h>

#include "asyncio/alloc.h"
#include "asyncio/error.h"
#include "asyncio/poll.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"

/* ------------------------------------------------------------------------ */
/* Assertions                                                                */

void support_fail_rc(int got, int want, const char *expr, const char *file, int line);

/** Fails unless rc == 0, printing asyncio_err_name(rc) and asyncio_strerror(rc). */
#define assert_ok(rc)                                                 \
    do {                                                              \
        int support_rc_ = (rc);                                       \
        if (support_rc_ != 0)                                         \
            support_fail_rc(support_rc_, 0, #rc, __FILE__, __LINE__); \
    } while (0)

/** Fails unless rc == code (e.g. ASYNCIO_EINVAL), printing both names. */
#define assert_err(rc, code)                                                      \
    do {                                                                          \
        int support_rc_ = (rc);                                                   \
        int support_want_ = (code);                                               \
        if (support_rc_ != support_want_)                                         \
            support_fail_rc(support_rc_, support_want_, #rc, __FILE__, __LINE__); \
    } while (0)

/** Fails unless a libc call returned >= 0, printing errno. */
#define assert_sys(expr)                                   \
    do {                                                   \
        if ((expr) < 0)                                    \
            support_fail_errno(#expr, __FILE__, __LINE__); \
    } while (0)

void support_fail_errno(const char *expr, const char *file, int line);

/* ------------------------------------------------------------------------ */
/* Counting allocator and fixtures                                           */

/** Installs the counting allocator and resets its counters. */
void support_alloc_install(void);
/** Restores the default allocator. */
void support_alloc_uninstall(void);
/** Blocks allocated through the counting allocator and not yet freed. */
long support_alloc_live(void);
/** Total successful allocations (malloc + realloc(NULL, ..)) since install. */
long support_alloc_total(void);

/** Number of open file descriptors of this process. */
int support_open_fds(void);

/**
 * cmocka fixtures for tests that create pollers: setup installs the counting allocator
 * and records the open-fd count; teardown fails if any block is still live or any fd
 * leaked, then restores the default allocator.
 */
int support_setup(void **state);
int support_teardown(void **state);

/**
 * With ASYNCIO_ALLOC_SITES=path (glibc), appends the caller's call chain to
 * path; the counting hooks call it on every allocation. Measurement only.
 */
void support_alloc_site_note(void);

/**
 * With ASYNCIO_FAULT_SEED set, installs that seed's transparent fault plan
 * (tests/support/fault_inject.h) and prints it once; support_setup calls it,
 * support_teardown uninstalls. Does nothing without the variable.
 */
void support_faults_from_env(void);

#define support_test(f) cmocka_unit_test_setup_teardown(f, support_setup, support_teardown)

/* ------------------------------------------------------------------------ */
/* Sockets                                                                   */

/** A nonblocking, close-on-exec AF_UNIX stream socketpair. */
void support_socketpair(int fds[2]);

/** A nonblocking pipe (fds[0] read end, fds[1] write end). */
void support_pipe(int fds[2]);

/** A listening TCP socket on 127.0.0.1, port 0 (kernel-chosen). Blocking. */
int support_tcp_listener(void);

/** The port a socket is bound to (host byte order). */
int support_local_port(int fd);

/**
 * A connected TCP pair over loopback: *client is the connecting side, *server the
 * accepted side; both nonblocking and TCP_NODELAY. Uses (and keeps open) `listener`.
 */
void support_tcp_pair_on(int listener, int *client, int *server);

/** As support_tcp_pair_on() with a private listener that is closed before returning. */
void support_tcp_pair(int *client, int *server);

/** Writes exactly n bytes (fails the test on a short or failing write). */
void support_write_n(int fd, size_t n);

/** Writes until EAGAIN; returns the number of bytes written. */
size_t support_fill(int fd);

/**
 * Reads until EAGAIN; returns the number of bytes read. Fails on a read error. Stops at
 * EOF too and sets *eof (if non-NULL) to whether EOF was seen.
 */
size_t support_drain(int fd, int *eof);

/** Reads at most n bytes once; returns the count (0 if EAGAIN). */
size_t support_read_some(int fd, size_t n);

/** Closes fd (ignores -1). */
void support_close(int fd);

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

#define SUPPORT_MAX_EVENTS 256

typedef struct support_events {
    asyncio_event ev[SUPPORT_MAX_EVENTS];
    size_t n;
} support_events;

/**
 * One asyncio_poller_wait() with `capacity` (<= SUPPORT_MAX_EVENTS) into *out; fails the
 * test if the wait returns an error. Returns out->n.
 */
size_t support_wait(asyncio_poller *p, int timeout_ms, size_t capacity, support_events *out);

/** The first event for token in *e, or NULL. */
const asyncio_event *support_find(const support_events *e, uintptr_t token);

/** How many events for token are in *e. */
size_t support_count(const support_events *e, uintptr_t token);

/**
 * Waits once (capacity SUPPORT_MAX_EVENTS) and fails unless the result holds exactly one
 * event per token listed and nothing else. Tokens are a 0-terminated list, so token 0 is
 * not usable with this helper. Returns the number of events.
 */
size_t expect_events(asyncio_poller *p, int timeout_ms, ...);

/** Waits once and fails unless an event for `token` is among the results; returns its bits. */
uint32_t expect_event(asyncio_poller *p, int timeout_ms, uintptr_t token);

/** Waits once and fails if any event is returned. */
void expect_no_events(asyncio_poller *p, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Threads and time                                                          */

/** This thread's kernel id (for support_wait_blocked). */
pid_t support_gettid(void);

/**
 * Spins (yielding, never sleeping) until thread `tid` of this process is in an
 * interruptible sleep, i.e. blocked in the kernel. Gives up after a generous number of
 * checks and returns anyway: the callers' tests are correct either way, this only makes
 * them exercise the "already blocked" path.
 */
void support_wait_blocked(pid_t tid);

/** Monotonic time in microseconds. */
uint64_t support_now_us(void);

/** Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit. */
long support_raise_nofile(void);

/* ------------------------------------------------------------------------ */
/* Runtime flavour matrix                                                    */

/*
 * ASYNCIO_TEST_RUNTIME selects the runtime every runtime-level suite creates:
 *   current (default)  the current-thread runtime
 *   mt1 / mt4          the multi-thread runtime with 1 / 4 workers
 * ctest runs those suites once per value (tests/CMakeLists.txt, RUNTIMES).
 */
typedef enum support_runtime_kind {
    SUPPORT_RT_CURRENT,
    SUPPORT_RT_MT1,
    SUPPORT_RT_MT4,
} support_runtime_kind;

/** The flavour ASYNCIO_TEST_RUNTIME asks for (an unknown value fails the test). */
support_runtime_kind support_runtime_kind_get(void);

/** True when the suite runs on the multi-thread runtime. */
int support_runtime_is_mt(void);

/** Sets o->flavor and o->workers from ASYNCIO_TEST_RUNTIME; other fields untouched. */
void support_runtime_options(asyncio_runtime_options *o);

/**
 * asyncio_runtime_new() with `base` (NULL: defaults) and the flavour from
 * ASYNCIO_TEST_RUNTIME; fails the test on error.
 */
asyncio_runtime *support_runtime_new(const asyncio_runtime_options *base);

/**
 * Runs one future (fn(fut, cx) until it is not PENDING) as a task on rt
 * with block_on; returns its result. fut stays the caller's.
 */
int support_run_future(asyncio_runtime *rt, asyncio_future_poll_fn fn, void *fut);

/*
 * How much to scale a stress test: ASYNCIO_TEST_SCALE (1..1000, percent of
 * the full size; default 100). Sanitizer builds set it lower in ctest.
 */
unsigned long support_scale(unsigned long full);

#endif

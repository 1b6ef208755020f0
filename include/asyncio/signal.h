/*
 * libasyncio: awaiting POSIX signals.
 *
 * A signal listener (asyncio_signal) is a future that becomes ready each
 * time one of its signals is delivered to the process. Any number of
 * listeners, in any number of runtimes, may wait for the same signal: every
 * one of them sees every delivery (deliveries that arrive while a listener
 * is not being awaited are remembered and coalesced into one).
 *
 * Mechanism (docs/signals.md): the first listener of a signal installs a
 * handler that counts the delivery and writes a byte to a process-wide
 * self-pipe; every runtime registers that pipe with its poller through the
 * source vtable, and the driver that sees it readable drains it and wakes
 * every listener. When the last listener of a signal goes away, the
 * disposition the process had before is restored. Meanwhile the previous
 * handler does not run, except for SIGCHLD, which is chained: a handler
 * installed before (another library reaping its own children) is called
 * after ours on every delivery.
 *
 * Why a self-pipe rather than signalfd: signalfd only sees signals that are
 * blocked in every thread, which a library cannot arrange for threads it
 * does not own (and the blocked mask is inherited by exec'd children),
 * while a handler works whatever the application's threads do.
 */
#ifndef ASYNCIO_SIGNAL_H
#define ASYNCIO_SIGNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

/** Most signals one listener can watch. */
#define ASYNCIO_SIGNAL_MAX 8

/**
 * A signal listener. Embeddable and movable until its first poll (e.g. as
 * a task's initial state); initialise with asyncio_signal_init and release
 * with asyncio_signal_drop. Fields are private.
 */
typedef struct asyncio_signal {
    /* private */
    int signals[ASYNCIO_SIGNAL_MAX];
    uint64_t seen[ASYNCIO_SIGNAL_MAX]; /* delivery counts already reported */
    int count;
    bool listening;    /* handler installed, counted as a listener */
    asyncio_link node; /* in the global waiter list while waiting */
    asyncio_waker waker;
} asyncio_signal;

ASYNCIO_BEGIN_DECLS

/**
 * Starts listening for `signals[0..count)`: from this call on, deliveries
 * are remembered even before the first poll. May be called outside a task.
 *
 * Errors: ASYNCIO_EINVAL (NULL, count 0 or above ASYNCIO_SIGNAL_MAX, a
 * signal that cannot be caught: SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, or out of range), ASYNCIO_EMFILE / ENFILE (the self-pipe could not
 * be created). On failure nothing needs dropping. Thread-safe.
 */
ASYNCIO_EXTERN int asyncio_signal_init(asyncio_signal *s, const int *signals, int count);

/**
 * Returns 0 with *signo set to a signal delivered since the last time this
 * listener reported it, or ASYNCIO_PENDING after storing cx's waker. Poll
 * it again to wait for the next delivery. The number comes back through
 * `signo`, not as the return value, because SIGHUP is 1 == ASYNCIO_PENDING.
 * `signo` may be NULL when the caller only needs "a signal came". Must be
 * polled inside a runtime (ASYNCIO_EINVAL otherwise, or for NULL s / cx).
 */
ASYNCIO_EXTERN int asyncio_signal_poll(asyncio_signal *s, asyncio_context *cx, int *signo);

/**
 * Stops listening; restores a signal's previous disposition when this was
 * its last listener. Idempotent; safe on a listener whose init failed.
 */
ASYNCIO_EXTERN void asyncio_signal_drop(asyncio_signal *s);

ASYNCIO_END_DECLS

#endif

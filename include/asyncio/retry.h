/*
 * libasyncio: retrying an async operation with exponential backoff.
 *
 *   asyncio_error_classify   transient / exhaustion / fatal: the public table
 *   asyncio_backoff          the policy: base, factor, cap, jitter, attempts
 *   asyncio_backoff_delay    the delay before a given retry (a pure function)
 *   asyncio_retry            an embeddable future running an operation until
 *                            it succeeds, fails fatally or runs out of attempts
 *
 * Delays are waited on the runtime's timers (asyncio_sleep), so a runtime
 * with a paused clock (asyncio_runtime_options.start_paused) runs a whole
 * schedule instantly and deterministically.
 *
 * The schedule: attempt 1 runs at once; before attempt k + 1 (retry k) the
 * future waits
 *
 *     d(k) = min(cap, base * factor^(k-1))                (exponential, capped)
 *     delay = d(k) - floor(d(k) * jitter * u)             (u uniform in [0, 1))
 *
 * so jitter 0 is the plain schedule and jitter 1 is "full jitter" (AWS
 * architecture blog): any delay in (0, d(k)]. u comes from the policy's
 * random source, which tests replace with a deterministic one. For an
 * exhaustion error the delay is at least exhaustion_min_ms: running out of
 * descriptors or memory is not cured by a fast retry.
 *
 * Thread-safety: asyncio_error_classify and asyncio_backoff_delay are pure
 * (any thread). A retry future belongs to one task, on the runtime thread
 * (it holds a timer: see time.h).
 */
#ifndef ASYNCIO_RETRY_H
#define ASYNCIO_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"
#include "time.h"

/** What an error says about trying again. */
typedef enum asyncio_error_class {
    /** Not an error (0 or ASYNCIO_PENDING). */
    ASYNCIO_ERROR_CLASS_NONE = 0,
    /**
     * Trying again may succeed soon: ASYNCIO_EINTR, EAGAIN, ETIMEDOUT,
     * ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ENETUNREACH,
     * EHOSTUNREACH, ENETDOWN, ENETRESET, EHOSTDOWN, EBUSY, ETXTBSY,
     * EADDRINUSE, EADDRNOTAVAIL, EINPROGRESS, EALREADY, EUNEXPECTED_EOF.
     */
    ASYNCIO_ERROR_CLASS_TRANSIENT,
    /**
     * A resource of the process or system ran out: ASYNCIO_EMFILE, ENFILE,
     * ENOBUFS, ENOMEM. Retried (after at least exhaustion_min_ms) unless
     * the policy says otherwise.
     */
    ASYNCIO_ERROR_CLASS_EXHAUSTION,
    /** Everything else (EINVAL, EACCES, ENOENT, ECANCELED, ...): never retried. */
    ASYNCIO_ERROR_CLASS_FATAL,
} asyncio_error_class;

/**
 * The retry policy. Zero-initialise, then set what you need: zero fields
 * take the defaults in brackets.
 */
typedef struct asyncio_backoff {
    uint64_t base_ms;      /**< delay before the first retry [100] */
    double factor;         /**< growth per retry, >= 1.0 [2.0] */
    uint64_t cap_ms;       /**< largest delay [30,000] */
    double jitter;         /**< 0..1: fraction of each delay that may be removed at random [0] */
    uint32_t max_attempts; /**< attempts in all, the first included [5] */
    /** Exhaustion errors wait at least this long before the next attempt [1,000]. */
    uint64_t exhaustion_min_ms;
    /** true: exhaustion errors end the retry like fatal ones [false]. */
    bool fail_on_exhaustion;
    /** Classifier [NULL: asyncio_error_classify]. */
    asyncio_error_class (*classify)(void *ctx, int err);
    /**
     * Random source for jitter: uniformly distributed 64-bit values
     * [NULL: an internal xorshift generator seeded per retry future].
     * Tests pass a deterministic function here.
     */
    uint64_t (*random)(void *ctx);
    void *ctx; /**< passed to classify and random */
} asyncio_backoff;

/**
 * Called before each attempt after the first (`attempt` = 2, 3, ...): make
 * the operation ready to run again (drop the failed attempt's state,
 * initialise a fresh one). Returns 0, or an error that ends the retry
 * (returned by asyncio_retry_poll as is).
 */
typedef int (*asyncio_retry_reset_fn)(void *op, uint32_t attempt);

/**
 * A retried operation. Embeddable: initialise with asyncio_retry_init(),
 * poll with asyncio_retry_poll(), release with asyncio_retry_drop().
 * Movable until its first poll (its delay timer registers only while it
 * waits); `op` is kept as given and does not follow a move, so an
 * operation stored next to the retry in a task's initial state is best
 * bound in the task's first poll.
 */
typedef struct asyncio_retry {
    /* read-only */
    uint32_t attempts;       /* number of the current (or last) attempt, from 1 */
    int last_error;          /* error of the latest failed attempt, 0 if none failed */
    uint64_t last_delay_ms;  /* the latest delay waited (or being waited) */
    uint64_t total_delay_ms; /* all delays together */
    /* private */
    asyncio_backoff policy;
    asyncio_future_poll_fn poll;
    asyncio_retry_reset_fn reset;
    void *op;
    asyncio_sleep sleep;
    uint64_t rng;
    int result;
    uint8_t state;
} asyncio_retry;

ASYNCIO_BEGIN_DECLS

/** The class of an error code (table above). Pure; any thread. */
ASYNCIO_EXTERN asyncio_error_class asyncio_error_classify(int err);

/** "transient", "exhaustion", "fatal" or "none". Static string. */
ASYNCIO_EXTERN const char *asyncio_error_class_name(asyncio_error_class c);

/**
 * The delay before retry number `retry` (1 = before the second attempt)
 * under `policy` (NULL: defaults; zero fields: defaults), with the jitter
 * drawn from `random_value` (u = random_value / 2^64). Saturates instead
 * of overflowing; retry 0 gives 0. Pure; any thread. An invalid policy
 * (factor < 1, jitter outside [0, 1], NaN) gives 0.
 */
ASYNCIO_EXTERN uint64_t asyncio_backoff_delay(const asyncio_backoff *policy, uint32_t retry,
                                              uint64_t random_value);

/**
 * Prepares to run the operation (`poll`, `op`) with `policy` (copied; NULL
 * for the defaults). `reset` prepares each further attempt (NULL when poll
 * itself starts over after returning an error). The operation stays the
 * caller's: the retry never drops it. Allocates nothing, needs no runtime.
 *
 * Errors: ASYNCIO_EINVAL (NULL r or poll, factor < 1, jitter outside
 * [0, 1]); the future is still safe to drop and its poll returns the error.
 */
ASYNCIO_EXTERN int asyncio_retry_init(asyncio_retry *r, const asyncio_backoff *policy,
                                      asyncio_future_poll_fn poll, asyncio_retry_reset_fn reset,
                                      void *op);

/**
 * Polls: runs attempts and waits between them. Returns 0 once an attempt
 * succeeded; the error of an attempt at once when it is fatal (or
 * exhaustion with fail_on_exhaustion); the last attempt's error when
 * max_attempts attempts failed; reset's error; ASYNCIO_PENDING (cx's waker
 * is held by the attempt or by the timer). ASYNCIO_EINVAL for NULL
 * arguments or a failed init; the timer's errors (ASYNCIO_EINVAL outside a
 * runtime). After a result, later polls return it again.
 */
ASYNCIO_EXTERN int asyncio_retry_poll(asyncio_retry *r, asyncio_context *cx);

/** asyncio_retry_poll with the asyncio_future_poll_fn signature. */
ASYNCIO_EXTERN int asyncio_retry_poll_fn(void *r, asyncio_context *cx);

/**
 * Cancels: drops the timer (synchronously, see asyncio_sleep_drop). The
 * operation is the caller's to drop. Idempotent. Runtime thread.
 */
ASYNCIO_EXTERN void asyncio_retry_drop(asyncio_retry *r);

ASYNCIO_END_DECLS

#endif

/*
 * libasyncio: cancellation tokens (tokio-util's CancellationToken).
 *
 * A token is a flag that goes from "not cancelled" to "cancelled" once,
 * plus the tasks waiting for that. Tokens form trees: a child token
 * (asyncio_cancel_token_child) is cancelled when its parent is, and can be
 * cancelled on its own without affecting the parent or its siblings.
 * Waiting is a future, asyncio_cancelled, so it composes with select and
 * timeout: "read, unless we are told to stop".
 *
 * The graceful-shutdown pattern (docs/writing-tasks.md, "Graceful
 * shutdown"): the server owns a root token and a JoinSet; every connection
 * task gets a child token and selects on it next to its I/O; on SIGINT the
 * server stops accepting, cancels the root, drains the JoinSet within a
 * deadline (asyncio_timeout over a join_next loop), then aborts the rest
 * (asyncio_join_set_poll_shutdown).
 *
 * Ownership: tokens are reference-counted handles (opaque). new / child /
 * clone each give one reference, released with asyncio_cancel_token_drop.
 * A child keeps its parent alive. An asyncio_cancelled future holds its own
 * reference from init to drop.
 *
 * Thread-safety: every function may be called from any thread; one lock
 * per token tree. Cancelling wakes the waiting futures outside the lock, at
 * most 32 wakers at a time.
 */
#ifndef ASYNCIO_CANCEL_H
#define ASYNCIO_CANCEL_H

#include <stdbool.h>

#include "common.h"
#include "error.h"
#include "future.h"
#include "task.h"

/** A cancellation token. Opaque, reference-counted. */
typedef struct asyncio_cancel_token asyncio_cancel_token;

/**
 * The future "this token is cancelled". Embeddable: initialise with
 * asyncio_cancelled_init(), poll with asyncio_cancelled_poll(), release
 * with asyncio_cancelled_drop(). Movable until its first poll.
 */
typedef struct asyncio_cancelled {
    /* private */
    asyncio_link link;           /* in the token's waiters while pending */
    asyncio_cancel_token *token; /* a reference, NULL after drop */
    asyncio_waker waker;         /* guarded by the tree's lock */
} asyncio_cancelled;

ASYNCIO_BEGIN_DECLS

/** Creates a root token, not cancelled. Errors: ASYNCIO_EINVAL (out NULL), ASYNCIO_ENOMEM. */
ASYNCIO_EXTERN int asyncio_cancel_token_new(asyncio_cancel_token **out);

/**
 * Creates a child of `parent`: cancelled when the parent (or any ancestor)
 * is, and already cancelled if the parent is. Errors: ASYNCIO_EINVAL (NULL
 * argument), ASYNCIO_ENOMEM. Any thread.
 */
ASYNCIO_EXTERN int asyncio_cancel_token_child(asyncio_cancel_token *parent,
                                              asyncio_cancel_token **out);

/** One more reference to the same token (returns `t`; NULL for NULL). Any thread. */
ASYNCIO_EXTERN asyncio_cancel_token *asyncio_cancel_token_clone(asyncio_cancel_token *t);

/**
 * Cancels the token and every descendant, and wakes every future waiting
 * on any of them. Idempotent; NULL is a no-op. Any thread (not from inside
 * a waker).
 */
ASYNCIO_EXTERN void asyncio_cancel_token_cancel(asyncio_cancel_token *t);

/** True once the token (or an ancestor) was cancelled. One atomic load. false for NULL. */
ASYNCIO_EXTERN bool asyncio_cancel_token_is_cancelled(const asyncio_cancel_token *t);

/** Releases a reference. NULL is a no-op. Any thread. */
ASYNCIO_EXTERN void asyncio_cancel_token_drop(asyncio_cancel_token *t);

/** Initialises a wait for `t` (takes a reference to it; `t` may be NULL: never ready). */
ASYNCIO_EXTERN void asyncio_cancelled_init(asyncio_cancelled *f, asyncio_cancel_token *t);

/**
 * 0 once the token is cancelled, else ASYNCIO_PENDING with cx's waker
 * stored (woken by the cancel). Errors: ASYNCIO_EINVAL (NULL f / cx, no
 * token). Allocates nothing. Owner thread.
 */
ASYNCIO_EXTERN int asyncio_cancelled_poll(asyncio_cancelled *f, asyncio_context *cx);

/**
 * Stops waiting (unlinks synchronously, drops the waker) and releases the
 * token reference. Cancelling loses nothing. Idempotent. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_cancelled_drop(asyncio_cancelled *f);

/** The wait as a future (no output; drop: asyncio_cancelled_drop). */
ASYNCIO_EXTERN asyncio_future asyncio_cancelled_future(asyncio_cancelled *f);

ASYNCIO_END_DECLS

#endif

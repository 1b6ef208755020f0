/*
 * libasyncio: the watch channel — one latest value, many receivers that
 * wait for it to change (Tokio's watch). (Not to be confused with the
 * directory watcher of watch.h.)
 *
 * The channel holds one value: a fixed-size element copied in and out
 * with memcpy, as in channel.h (the element size is given at creation,
 * together with the initial value; no destructor ever runs). A send
 * replaces it and bumps a version number. Each receiver remembers the
 * version it has seen: asyncio_watch_changed completes once the value's
 * version differs from it (marking the new one seen), so a receiver that
 * is slow sees the latest value, never a queue of old ones, and never
 * misses the fact that something changed.
 *
 * Closed: once every sender is dropped, a changed() that has nothing new
 * to report returns ASYNCIO_ECLOSED (a change sent before the last sender
 * went is still reported first); the last value can still be borrowed.
 * A send with no receiver alive fails with ASYNCIO_ECLOSED and stores
 * nothing (asyncio_watch_send_replace stores in every case).
 *
 * Ownership: the channel is one reference-counted heap object holding the
 * value. Sender references (the first from asyncio_watch_channel, more
 * from asyncio_watch_sender_clone) are each released once with
 * asyncio_watch_sender_drop. Every receiver is a small heap object of its
 * own (allocated at creation, subscribe or clone, never per operation)
 * released with asyncio_watch_receiver_drop. The channel is freed with the
 * last sender or receiver.
 *
 * Futures: asyncio_watch_changed is embeddable (every field private) and
 * movable at any time: the receiver object keeps the waker, never a
 * pointer to the future. One changed() at a time per receiver.
 *
 * Cancellation (what dropping loses): nothing. Only a poll that returns 0
 * marks a version seen, so after dropping a waiting changed() the next one
 * still reports a change that happened meanwhile.
 *
 * Thread-safety: every function is safe from any thread, inside a task or
 * not. The value is copied in and out under the channel's lock; checking
 * for a change (asyncio_watch_has_changed, and changed() when there is
 * one) is one atomic load. Wakers are woken after the lock is released. A
 * receiver and its futures are used by one thread at a time.
 */
#ifndef ASYNCIO_WATCH_CHANNEL_H
#define ASYNCIO_WATCH_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

/** A sending handle of a watch channel (all references share it). Opaque. */
typedef struct asyncio_watch_sender asyncio_watch_sender;
/** One receiver: the version it has seen plus its waker. Opaque. */
typedef struct asyncio_watch_receiver asyncio_watch_receiver;

/** A wait for the value to change: an embeddable, reusable future. */
typedef struct asyncio_watch_changed {
    /* private */
    asyncio_watch_receiver *rx;
    bool registered; /* its waker is stored in the receiver */
} asyncio_watch_changed;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a watch channel holding `initial` (elem_size bytes, copied);
 * *tx and *rx receive its first sender reference and its first receiver,
 * which has seen the initial value. Errors: ASYNCIO_EINVAL (NULL, elem_size
 * 0 or too large), ASYNCIO_ENOMEM. On failure nothing needs freeing.
 * Any thread.
 */
ASYNCIO_EXTERN int asyncio_watch_channel(asyncio_watch_sender **tx, asyncio_watch_receiver **rx,
                                         size_t elem_size, const void *initial);

/** A new sender reference (the same pointer), released with its own _sender_drop. Any thread. */
ASYNCIO_EXTERN asyncio_watch_sender *asyncio_watch_sender_clone(asyncio_watch_sender *tx);

/**
 * Releases a sender reference. With the last one the channel is closed and
 * waiting receivers are woken (they get ASYNCIO_ECLOSED once they have
 * seen the last change). NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_watch_sender_drop(asyncio_watch_sender *tx);

/**
 * Replaces the value (copies elem_size bytes from `value`) and wakes every
 * waiting receiver. Errors: ASYNCIO_ECLOSED (no receiver is alive: nothing
 * is stored), ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_watch_send(asyncio_watch_sender *tx, const void *value);

/**
 * Replaces the value whether or not a receiver is alive (later subscribers
 * see it), wakes the waiting receivers, and copies the previous value to
 * `old` if non-NULL. Errors: ASYNCIO_EINVAL (NULL tx or value). Any thread.
 */
ASYNCIO_EXTERN int asyncio_watch_send_replace(asyncio_watch_sender *tx, const void *value,
                                              void *old);

/** Copies the current value to `out`. Errors: ASYNCIO_EINVAL (NULL). Any thread. */
ASYNCIO_EXTERN int asyncio_watch_sender_borrow(asyncio_watch_sender *tx, void *out);

/** Receivers alive right now (a snapshot). Any thread. */
ASYNCIO_EXTERN size_t asyncio_watch_receiver_count(asyncio_watch_sender *tx);

/**
 * A new receiver that has seen the current value. Errors: ASYNCIO_EINVAL
 * (NULL), ASYNCIO_ENOMEM. Any thread.
 */
ASYNCIO_EXTERN int asyncio_watch_subscribe(asyncio_watch_sender *tx, asyncio_watch_receiver **out);

/**
 * A new receiver that has seen what `rx` has seen. Errors: ASYNCIO_EINVAL
 * (NULL), ASYNCIO_ENOMEM. The owner of `rx` (it reads rx's seen version);
 * the new receiver may then go to any thread.
 */
ASYNCIO_EXTERN int asyncio_watch_receiver_clone(asyncio_watch_receiver *rx,
                                                asyncio_watch_receiver **out);

/**
 * Releases a receiver (a changed() on it must have been dropped or
 * finished first). NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_watch_receiver_drop(asyncio_watch_receiver *rx);

/**
 * Copies the current value to `out` without marking it seen. Errors:
 * ASYNCIO_EINVAL (NULL). The receiver's owner.
 */
ASYNCIO_EXTERN int asyncio_watch_borrow(asyncio_watch_receiver *rx, void *out);

/**
 * Copies the current value to `out` and marks it seen (atomically: the
 * copy is exactly the version marked). Errors: ASYNCIO_EINVAL (NULL). The
 * receiver's owner.
 */
ASYNCIO_EXTERN int asyncio_watch_borrow_and_update(asyncio_watch_receiver *rx, void *out);

/**
 * Has the value changed since the receiver last marked it seen? Returns 1
 * (yes) or 0 (no), with no lock. Errors: ASYNCIO_ECLOSED (nothing new and
 * every sender is gone), ASYNCIO_EINVAL (NULL). The receiver's owner.
 */
ASYNCIO_EXTERN int asyncio_watch_has_changed(asyncio_watch_receiver *rx);

/** Marks the current version seen (changed() then waits for the next send). */
ASYNCIO_EXTERN void asyncio_watch_mark_seen(asyncio_watch_receiver *rx);

/** Initialises a changed() on `rx`. Allocates nothing, never fails. */
ASYNCIO_EXTERN void asyncio_watch_changed_init(asyncio_watch_changed *c,
                                               asyncio_watch_receiver *rx);

/**
 * Polls: 0 once the value's version differs from the one the receiver has
 * seen (that version is now marked seen; read the value with
 * asyncio_watch_borrow), ASYNCIO_PENDING (cx's waker stored in the
 * receiver, woken by the next send or the last sender's drop), or
 * ASYNCIO_ECLOSED (nothing new and every sender is gone). Errors:
 * ASYNCIO_EINVAL (NULL). After a result the future may be polled again to
 * wait for the next change. The receiver's owner.
 */
ASYNCIO_EXTERN int asyncio_watch_changed_poll(asyncio_watch_changed *c, asyncio_context *cx);

/** Cancels a changed(): releases its stored waker; nothing is marked seen. Idempotent. */
ASYNCIO_EXTERN void asyncio_watch_changed_drop(asyncio_watch_changed *c);

ASYNCIO_END_DECLS

#endif

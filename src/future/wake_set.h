/*
 * The per-child wakers of the combinators (internal; future.h "Wakes").
 *
 * One block per combinator: a reference count, the task's waker (the
 * "parent"), and for each child a slot {set, index} whose address is the
 * data of that child's waker, plus a bitmap of the children woken since the
 * combinator last looked.
 *
 *   refs     1 for the combinator + 1 per clone of a child waker. The last
 *            drop frees the block (and drops the parent waker). A clone a
 *            leaf keeps after the combinator was dropped therefore points at
 *            live memory: waking it sets a bit nobody reads and wakes the
 *            task (a spurious wake, which every poll function tolerates).
 *   parent   written only by the polling thread (set_parent), under `lock`;
 *            read under `lock` by wakers (which clone it, unlock, then wake:
 *            never wake under a lock).
 *   woken    one bit per child. A child waker sets its bit (release) before
 *            waking the parent; the combinator takes the whole word with an
 *            exchange (acquire) before polling those children. A wake that
 *            lands while a child is being polled sets the bit again and
 *            notifies the task, so it is polled once more: no wake is lost.
 *
 * Thread-safety: set_parent / take are the owner's (one thread at a time);
 * the wakers and unref run on any thread.
 */
#ifndef ASYNCIO_FUTURE_WAKE_SET_H
#define ASYNCIO_FUTURE_WAKE_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asyncio/future.h"

/* Creates a set for n children (n > 0), every child marked woken. NULL when out of memory. */
asyncio_wake_set *asyncio__wake_set_new(size_t n);

/* Drops the combinator's reference (the block lives on while clones exist). NULL: no-op. */
void asyncio__wake_set_release(asyncio_wake_set *ws);

/* Makes `w` the waker to wake (keeps the current one if it wakes the same task). Owner only. */
void asyncio__wake_set_set_parent(asyncio_wake_set *ws, const asyncio_waker *w);

/* The borrowed waker of child i (valid while the combinator's reference is held). */
asyncio_waker asyncio__wake_set_child(asyncio_wake_set *ws, size_t i);

/* Number of 64-bit words of the woken bitmap. */
size_t asyncio__wake_set_words(const asyncio_wake_set *ws);

/* Takes (clears and returns) word k of the woken bitmap. Owner only. */
uint64_t asyncio__wake_set_take(asyncio_wake_set *ws, size_t k);

/* Marks child i woken again (the owner could not finish handling it). Owner only. */
void asyncio__wake_set_mark(asyncio_wake_set *ws, size_t i);

#endif

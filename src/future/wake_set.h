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

#include <stdatomic.h>

#include "asyncio/future.h"
#include "platform/thread.h"

/* A child's waker data: its set and index. */
typedef struct asyncio__wake_slot {
    asyncio_wake_set *ws;
    size_t index;
} asyncio__wake_slot;

struct asyncio_wake_set {
    _Atomic size_t refs;
    asyncio__spinlock lock; /* guards parent */
    asyncio_waker parent;
    size_t n;
    size_t words;
    asyncio__wake_slot *slots; /* n, after the bitmap */
    _Atomic uint64_t woken[];  /* words */
};

extern const asyncio_waker_vtable asyncio__wake_set_child_vt;

/* Creates a set for n children (n > 0), every child marked woken. NULL when out of memory. */
asyncio_wake_set *asyncio__wake_set_new(size_t n);

/* Drops the combinator's reference (the block lives on while clones exist). NULL: no-op. */
void asyncio__wake_set_release(asyncio_wake_set *ws);

/* Replaces the parent waker (the slow path of set_parent). Owner only. */
void asyncio__wake_set_replace_parent(asyncio_wake_set *ws, const asyncio_waker *w);

/* Makes `w` the waker to wake (keeps the current one if it wakes the same task). Owner only. */
static inline void asyncio__wake_set_set_parent(asyncio_wake_set *ws, const asyncio_waker *w)
{
    /* Only the owner writes parent, so reading it here without the lock is no race. */
    if (!asyncio_waker_will_wake(&ws->parent, w))
        asyncio__wake_set_replace_parent(ws, w);
}

/* The borrowed waker of child i (valid while the combinator's reference is held). */
static inline asyncio_waker asyncio__wake_set_child(asyncio_wake_set *ws, size_t i)
{
    asyncio_waker w = {&asyncio__wake_set_child_vt, &ws->slots[i]};
    return w;
}

/* Number of 64-bit words of the woken bitmap. */
static inline size_t asyncio__wake_set_words(const asyncio_wake_set *ws)
{
    return ws->words;
}

/* Takes (clears and returns) word k of the woken bitmap. Owner only. */
static inline uint64_t asyncio__wake_set_take(asyncio_wake_set *ws, size_t k)
{
    if (atomic_load_explicit(&ws->woken[k], memory_order_relaxed) == 0)
        return 0;
    /* Acquire: pairs with the waker's release, so what it published before waking is seen. */
    return atomic_exchange_explicit(&ws->woken[k], 0, memory_order_acquire);
}

/* Marks child i woken again (the owner could not finish handling it). Owner only. */
void asyncio__wake_set_mark(asyncio_wake_set *ws, size_t i);

#endif

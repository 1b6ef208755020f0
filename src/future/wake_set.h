/*
 * The per-child wakers of the combinators (internal; future.h "Wakes").
 *
 * One block per combinator: a reference count, the task's waker (the
 * "parent", in a cell), and for each child a slot {set, index} whose
 * address is the data of that child's waker, plus a bitmap of the children
 * woken since the combinator last looked. No lock: a child's wake is one
 * fetch_or, one load and the parent's wake_by_ref.
 *
 *   refs     1 for the combinator + 1 per clone of a child waker. The last
 *            drop frees the block (and drops the parent wakers). A clone a
 *            leaf keeps after the combinator was dropped therefore points at
 *            live memory: waking it sets a bit nobody reads and wakes the
 *            task (a spurious wake, which every poll function tolerates).
 *   parent   the cell whose waker the child wakers wake (by reference: the
 *            cell holds the set's reference to the task). Written only by
 *            the owner (replace_parent), which never frees or rewrites a
 *            cell a waker on another thread may still be reading:
 *              - refs == 1 (acquire, pairs with unref's release): no clone
 *                is out, so no other thread can be inside a child waker,
 *                and none can start (clones are made from borrowed wakers,
 *                on the owner's thread, during a poll): the current cell is
 *                rewritten in place and the retired cells are reclaimed;
 *              - otherwise the new waker goes into a fresh cell (one of two
 *                inline cells, else allocated), published with a seq_cst
 *                store, and the old cell is retired (kept, with its waker,
 *                until a later replace sees refs == 1 or the block is
 *                freed). A waker that read the old cell wakes the old task:
 *                a spurious wake.
 *            Replacing happens when a combinator moves to another task or
 *            waker, not per poll: the poll path compares (will_wake) only.
 *   woken    one bit per child. A child waker sets its bit (fetch_or), then
 *            loads `parent` and wakes it; the combinator loads each word and
 *            takes it with an exchange (acquire) before polling those
 *            children. A wake that lands while a child is being polled sets
 *            the bit again and notifies the task, so it is polled once more.
 *            Why no wake is lost when the parent changes (store-buffer
 *            shape, so all four are seq_cst): the owner stores `parent`
 *            then loads `woken`; a waker sets `woken` then loads `parent`.
 *            Either the owner's load sees the bit (the child is polled) or
 *            the waker's load follows the owner's store in the single total
 *            order and sees the new parent (tests/model/wake_set.pml).
 *
 * Thread-safety: set_parent / take / mark are the owner's (one thread at a
 * time); the wakers and unref run on any thread.
 */
#ifndef ASYNCIO_FUTURE_WAKE_SET_H
#define ASYNCIO_FUTURE_WAKE_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdatomic.h>

#include "asyncio/future.h"

/* A child's waker data: its set and index. */
typedef struct asyncio__wake_slot {
    asyncio_wake_set *ws;
    size_t index;
} asyncio__wake_slot;

/* A parent waker; `next` links retired and free cells (owner only). */
typedef struct asyncio__parent_cell {
    asyncio_waker waker;
    struct asyncio__parent_cell *next;
} asyncio__parent_cell;

struct asyncio_wake_set {
    _Atomic size_t refs;
    _Atomic(asyncio__parent_cell *) parent; /* the cell the child wakers wake */
    asyncio__parent_cell *retired;          /* replaced while clones were out: owner only */
    asyncio__parent_cell *spare;            /* unused inline cells: owner only */
    asyncio__parent_cell inline_cells[2];   /* [0] is the first parent */
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

/*
 * Replaces the parent waker (the slow path of set_parent). Owner only.
 * False when a cell was needed and could not be allocated: the old parent
 * stays, so the caller must wake `w` itself before returning pending (the
 * children's bits are still set by their wakers; it retries on the next poll).
 */
bool asyncio__wake_set_replace_parent(asyncio_wake_set *ws, const asyncio_waker *w);

/*
 * Makes `w` the waker to wake (keeps the current one if it wakes the same
 * task, the per-poll case: a compare, no atomic read-modify-write). Owner
 * only. False: see replace_parent.
 */
static inline bool asyncio__wake_set_set_parent(asyncio_wake_set *ws, const asyncio_waker *w)
{
    /* Relaxed: only the owner writes parent. */
    asyncio__parent_cell *cur = atomic_load_explicit(&ws->parent, memory_order_relaxed);
    if (asyncio_waker_will_wake(&cur->waker, w))
        return true;
    return asyncio__wake_set_replace_parent(ws, w);
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
    /* seq_cst: after a parent store, this load and the waker's fetch_or are ordered (header).
     * A plain load on x86. */
    if (atomic_load_explicit(&ws->woken[k], memory_order_seq_cst) == 0)
        return 0;
    /* Acquire: pairs with the waker's fetch_or, so what it published before waking is seen. */
    return atomic_exchange_explicit(&ws->woken[k], 0, memory_order_acquire);
}

/* Marks child i woken again (the owner could not finish handling it). Owner only. */
void asyncio__wake_set_mark(asyncio_wake_set *ws, size_t i);

#endif

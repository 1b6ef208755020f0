/*
 * The combinators' per-child wakers (protocol: wake_set.h).
 */
#include "future/wake_set.h"

#include <stdalign.h>
#include <stdatomic.h>

#include "internal.h"
#include "util/alloc.h"

typedef asyncio__wake_slot wake_slot;

asyncio_wake_set *asyncio__wake_set_new(size_t n)
{
    size_t words = (n + 63) / 64;
    if (n == 0 || n > SIZE_MAX / 64)
        return NULL;
    size_t head = sizeof(asyncio_wake_set) + words * sizeof(uint64_t);
    head = (head + alignof(wake_slot) - 1) & ~(alignof(wake_slot) - 1);
    asyncio_wake_set *ws = asyncio__malloc(head + n * sizeof(wake_slot));
    if (ws == NULL)
        return NULL;
    atomic_init(&ws->refs, 1);
    atomic_init(&ws->lock.held, false);
    ws->parent = ASYNCIO_WAKER_EMPTY;
    ws->n = n;
    ws->words = words;
    ws->slots = (wake_slot *)(void *)((char *)ws + head);
    for (size_t k = 0; k < words; k++) {
        size_t bits = n - k * 64 >= 64 ? 64 : n - k * 64;
        atomic_init(&ws->woken[k], bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1);
    }
    for (size_t i = 0; i < n; i++)
        ws->slots[i] = (wake_slot){ws, i};
    return ws;
}

static void unref(asyncio_wake_set *ws)
{
    /* acq_rel: the last holder sees every other holder's accesses before the free. */
    if (atomic_fetch_sub_explicit(&ws->refs, 1, memory_order_acq_rel) != 1)
        return;
    asyncio_waker_drop(&ws->parent);
    asyncio__free(ws);
}

void asyncio__wake_set_release(asyncio_wake_set *ws)
{
    if (ws != NULL)
        unref(ws);
}

void asyncio__wake_set_replace_parent(asyncio_wake_set *ws, const asyncio_waker *w)
{
    asyncio_waker fresh = asyncio_waker_clone(w), old;
    asyncio__spin_lock(&ws->lock);
    old = ws->parent;
    ws->parent = fresh;
    asyncio__spin_unlock(&ws->lock);
    asyncio_waker_drop(&old); /* outside the lock */
}

void asyncio__wake_set_mark(asyncio_wake_set *ws, size_t i)
{
    atomic_fetch_or_explicit(&ws->woken[i / 64], UINT64_C(1) << (i % 64), memory_order_relaxed);
}

/* ---- the child waker: data is its slot ----------------------------------- */

static asyncio_waker child_clone(const void *data)
{
    const wake_slot *slot = data;
    /* Relaxed: made from a live reference. */
    atomic_fetch_add_explicit(&slot->ws->refs, 1, memory_order_relaxed);
    return (asyncio_waker){&asyncio__wake_set_child_vt, data};
}

static void child_wake_by_ref(const void *data)
{
    const wake_slot *slot = data;
    asyncio_wake_set *ws = slot->ws;
    /* Release: pairs with the acquire exchange in asyncio__wake_set_take. */
    atomic_fetch_or_explicit(&ws->woken[slot->index / 64], UINT64_C(1) << (slot->index % 64),
                             memory_order_release);
    asyncio__spin_lock(&ws->lock);
    asyncio_waker w = asyncio_waker_clone(&ws->parent);
    asyncio__spin_unlock(&ws->lock);
    asyncio_waker_wake(&w); /* outside the lock */
}

static void child_drop(const void *data)
{
    const wake_slot *slot = data;
    unref(slot->ws);
}

static void child_wake(const void *data)
{
    child_wake_by_ref(data);
    child_drop(data);
}

const asyncio_waker_vtable asyncio__wake_set_child_vt = {child_clone, child_wake, child_wake_by_ref,
                                                         child_drop};

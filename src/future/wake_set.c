/*
 * The combinators' per-child wakers (protocol: wake_set.h).
 */
#include "future/wake_set.h"

#include <stdalign.h>
#include <stdatomic.h>

#include "internal.h"
#include "util/alloc.h"

typedef asyncio__wake_slot wake_slot;
typedef asyncio__parent_cell parent_cell;

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
    ws->inline_cells[0] = (parent_cell){ASYNCIO_WAKER_EMPTY, NULL};
    ws->inline_cells[1] = (parent_cell){ASYNCIO_WAKER_EMPTY, NULL};
    atomic_init(&ws->parent, &ws->inline_cells[0]);
    ws->retired = NULL;
    ws->spare = &ws->inline_cells[1];
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

static bool is_inline(const asyncio_wake_set *ws, const parent_cell *c)
{
    return c == &ws->inline_cells[0] || c == &ws->inline_cells[1];
}

/* Drops the retired cells' wakers; inline cells become spare, the others are freed. */
static void reclaim_retired(asyncio_wake_set *ws)
{
    while (ws->retired != NULL) {
        parent_cell *c = ws->retired;
        ws->retired = c->next;
        asyncio_waker_drop(&c->waker);
        if (is_inline(ws, c)) {
            c->next = ws->spare;
            ws->spare = c;
        } else {
            asyncio__free(c);
        }
    }
}

static void unref(asyncio_wake_set *ws)
{
    /* acq_rel: the last holder sees every other holder's accesses before the free. */
    if (atomic_fetch_sub_explicit(&ws->refs, 1, memory_order_acq_rel) != 1)
        return;
    parent_cell *cur = atomic_load_explicit(&ws->parent, memory_order_relaxed);
    cur->next = ws->retired;
    ws->retired = cur;
    reclaim_retired(ws);
    asyncio__free(ws);
}

void asyncio__wake_set_release(asyncio_wake_set *ws)
{
    if (ws != NULL)
        unref(ws);
}

bool asyncio__wake_set_replace_parent(asyncio_wake_set *ws, const asyncio_waker *w)
{
    parent_cell *cur = atomic_load_explicit(&ws->parent, memory_order_relaxed);
    /* Acquire: pairs with unref's release, so a clone's last wake is over before we rewrite. */
    if (atomic_load_explicit(&ws->refs, memory_order_acquire) == 1) {
        reclaim_retired(ws);
        asyncio_waker old = cur->waker;
        cur->waker = asyncio_waker_clone(w);
        asyncio_waker_drop(&old);
        return true;
    }
    parent_cell *fresh = ws->spare;
    if (fresh != NULL)
        ws->spare = fresh->next;
    else if ((fresh = asyncio__malloc(sizeof *fresh)) == NULL)
        return false;
    fresh->waker = asyncio_waker_clone(w);
    fresh->next = NULL;
    cur->next = ws->retired;
    ws->retired = cur;
    /* seq_cst: ordered before the next take's load of woken (store-buffer shape, header). */
    atomic_store_explicit(&ws->parent, fresh, memory_order_seq_cst);
    return true;
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
    /* seq_cst: releases what the leaf published to the owner's acquire exchange, and is
     * ordered before the parent load below (store-buffer shape with replace_parent). */
    atomic_fetch_or_explicit(&ws->woken[slot->index / 64], UINT64_C(1) << (slot->index % 64),
                             memory_order_seq_cst);
    /* The cell stays valid: our reference (or the owner's, on its own thread) keeps the set, and
     * a cell is rewritten or reclaimed only when no other thread can be here. */
    const parent_cell *p = atomic_load_explicit(&ws->parent, memory_order_seq_cst);
    asyncio_waker_wake_by_ref(&p->waker);
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

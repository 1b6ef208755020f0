/*
 * A counting waker for futures polled by hand (header-only, for the sync
 * suites): `hand` owns a borrowed waker whose clones count references, and
 * a context made from it, so a test sees exactly how often a future was
 * woken and that it released every clone it took.
 *
 * hand_new() allocates the hand on the heap and hand_free() frees it after
 * checking that no clone is left: a primitive that kept a waker after its
 * future was dropped and woke it later would then write into freed memory,
 * which ASan reports ("no waker fires into freed memory").
 */
#ifndef ASYNCIO_TEST_HAND_WAKER_H
#define ASYNCIO_TEST_HAND_WAKER_H

#include <stdatomic.h>
#include <stdlib.h>

#include "asyncio/task.h"
#include "support.h"

typedef struct hand {
    _Atomic int wakes;
    _Atomic int refs; /* clones not yet dropped or consumed */
    asyncio_waker w;
    asyncio_context cx;
} hand;

static const asyncio_waker_vtable hand_vt;

static inline asyncio_waker hand_clone(const void *d)
{
    atomic_fetch_add(&((hand *)d)->refs, 1);
    return (asyncio_waker){&hand_vt, d};
}

static inline void hand_wake(const void *d)
{
    atomic_fetch_add(&((hand *)d)->wakes, 1);
    atomic_fetch_sub(&((hand *)d)->refs, 1);
}

static inline void hand_wake_by_ref(const void *d)
{
    atomic_fetch_add(&((hand *)d)->wakes, 1);
}

static inline void hand_drop_ref(const void *d)
{
    atomic_fetch_sub(&((hand *)d)->refs, 1);
}

static const asyncio_waker_vtable hand_vt = {hand_clone, hand_wake, hand_wake_by_ref,
                                             hand_drop_ref};

static inline void hand_init(hand *h)
{
    atomic_init(&h->wakes, 0);
    atomic_init(&h->refs, 0);
    h->w = (asyncio_waker){&hand_vt, h};
    h->cx = (asyncio_context)ASYNCIO_CONTEXT_INIT(&h->w);
}

static inline hand *hand_new(void)
{
    hand *h = malloc(sizeof *h);
    assert_non_null(h);
    hand_init(h);
    return h;
}

static inline int hand_wakes(hand *h)
{
    return atomic_load(&h->wakes);
}

static inline int hand_refs(hand *h)
{
    return atomic_load(&h->refs);
}

/* Fails unless every clone was released, then frees the hand. */
static inline void hand_free(hand *h)
{
    assert_int_equal(hand_refs(h), 0);
    free(h);
}

#endif

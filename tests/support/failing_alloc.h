/*
 * An allocator that fails the n-th allocation from now (header-only, for the
 * sync suites' out-of-memory tests). failing_alloc_begin(n) installs it in
 * place of the suite's counting allocator; failing_alloc_end() checks that
 * every block it handed out was freed and reinstalls the counting
 * allocator (support_alloc_install).
 */
#ifndef ASYNCIO_TEST_FAILING_ALLOC_H
#define ASYNCIO_TEST_FAILING_ALLOC_H

#include <stdatomic.h>
#include <stdlib.h>

#include "asyncio/alloc.h"
#include "support.h"

static _Atomic long g_fail_countdown; /* allocations left before the failing one */
static _Atomic long g_fail_live;

static inline void *failing_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (atomic_fetch_sub(&g_fail_countdown, 1) == 0)
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&g_fail_live, 1);
    return p;
}

static inline void *failing_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (atomic_fetch_sub(&g_fail_countdown, 1) == 0)
        return NULL;
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        atomic_fetch_add(&g_fail_live, 1);
    return p;
}

static inline void failing_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL)
        atomic_fetch_sub(&g_fail_live, 1);
    free(ptr);
}

/* Installs the failing allocator: allocation number n (0-based) from now fails. */
static inline void failing_alloc_begin(long n)
{
    static const asyncio_allocator a = {failing_malloc, failing_realloc, failing_free, NULL};
    atomic_store(&g_fail_countdown, n);
    atomic_store(&g_fail_live, 0);
    assert_int_equal(asyncio_set_allocator(&a), 0);
}

/* True if the failing allocation has happened. */
static inline bool failing_alloc_failed(void)
{
    return atomic_load(&g_fail_countdown) < 0;
}

/* Checks that nothing it allocated is still live, then reinstalls the counting allocator. */
static inline void failing_alloc_end(void)
{
    assert_int_equal(atomic_load(&g_fail_live), 0);
    support_alloc_install();
}

#endif

/*
 * The allocation hook. The allocator is a process-wide value written only
 * by asyncio_set_allocator(), which the caller runs while no libasyncio
 * object is alive, so reads need no synchronisation.
 */
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/alloc.h"
#include "internal.h"

static void *default_malloc(void *ctx, size_t size)
{
    ASYNCIO_UNUSED(ctx);
    return malloc(size);
}

static void *default_realloc(void *ctx, void *ptr, size_t size)
{
    ASYNCIO_UNUSED(ctx);
    return realloc(ptr, size);
}

static void default_free(void *ctx, void *ptr)
{
    ASYNCIO_UNUSED(ctx);
    free(ptr);
}

static asyncio_allocator g_alloc = {default_malloc, default_realloc, default_free, NULL};

int asyncio_set_allocator(const asyncio_allocator *alloc)
{
    if (alloc == NULL) {
        g_alloc = (asyncio_allocator){default_malloc, default_realloc, default_free, NULL};
        return 0;
    }
    if (alloc->malloc == NULL || alloc->realloc == NULL || alloc->free == NULL)
        return ASYNCIO_EINVAL;
    g_alloc = *alloc;
    return 0;
}

void *asyncio__malloc(size_t size)
{
    return g_alloc.malloc(g_alloc.ctx, size ? size : 1);
}

void *asyncio__calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    size_t total = count * size;
    /*
     * The default allocator uses libc's calloc: for a large block it maps
     * fresh zero pages and touches none of them, so a big, mostly unused
     * block (the I/O slab's newest page) costs no resident memory. A user
     * hook has no calloc: zero by hand.
     */
    if (g_alloc.malloc == default_malloc)
        return calloc(count ? count : 1, size ? size : 1);
    void *p = asyncio__malloc(total);
    if (p != NULL)
        memset(p, 0, total ? total : 1);
    return p;
}

void *asyncio__realloc(void *ptr, size_t size)
{
    return g_alloc.realloc(g_alloc.ctx, ptr, size ? size : 1);
}

void asyncio__free(void *ptr)
{
    if (ptr != NULL)
        g_alloc.free(g_alloc.ctx, ptr);
}

int asyncio__grow_zeroed(void **arr, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap != 0 ? *cap : 64;
    while (n < need)
        n *= 2;
    char *grown = asyncio__realloc(*arr, n * elem_size);
    if (grown == NULL)
        return ASYNCIO_ENOMEM;
    memset(grown + *cap * elem_size, 0, (n - *cap) * elem_size);
    *arr = grown;
    *cap = n;
    return 0;
}

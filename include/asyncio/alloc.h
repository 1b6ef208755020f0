/*
 * libasyncio: the allocation hook.
 *
 * Every allocation the library makes goes through one process-wide
 * allocator, so an application can route memory to its own arena and tests
 * can count live blocks. The default is malloc / realloc / free.
 */
#ifndef ASYNCIO_ALLOC_H
#define ASYNCIO_ALLOC_H

#include "common.h"

/**
 * An allocator. `realloc` follows C's realloc contract (NULL ptr allocates,
 * size 0 is never requested); `free` accepts NULL. `ctx` is passed back to
 * each function unchanged. The library never frees memory through a
 * different allocator than the one that allocated it, so the hook must stay
 * installed while any libasyncio object is alive.
 */
typedef struct asyncio_allocator {
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} asyncio_allocator;

ASYNCIO_BEGIN_DECLS

/**
 * Installs `alloc` (copied) as the library's allocator, or restores the
 * default when `alloc` is NULL.
 *
 * Call it before creating any libasyncio object, or while none is alive.
 * Not thread-safe with respect to other libasyncio calls.
 *
 * Errors: ASYNCIO_EINVAL if any of the three function pointers is NULL.
 */
ASYNCIO_EXTERN int asyncio_set_allocator(const asyncio_allocator *alloc);

ASYNCIO_END_DECLS

#endif

/*
 * The library's single allocation path. Every allocation goes through
 * these three functions, which forward to the hook installed with
 * asyncio_set_allocator() (default: libc).
 */
#ifndef ASYNCIO_UTIL_ALLOC_H
#define ASYNCIO_UTIL_ALLOC_H

#include <stddef.h>

void *asyncio__malloc(size_t size);
void *asyncio__calloc(size_t count, size_t size);
void *asyncio__realloc(void *ptr, size_t size);
void asyncio__free(void *ptr);

#endif

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

/*
 * Grows the array *arr of *cap elements of elem_size bytes so that it holds
 * at least `need` (capacity doubles from 64; the new elements are zeroed).
 * 0, or ASYNCIO_ENOMEM with *arr and *cap unchanged. For tables indexed by
 * fd (the poll and kqueue backends).
 */
int asyncio__grow_zeroed(void **arr, size_t *cap, size_t need, size_t elem_size);

#endif

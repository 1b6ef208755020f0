/*
 * Task-block cache: see block_cache.h for the classes, bounds and threads.
 */
#include "task/block_cache.h"

#include "internal.h"
#include "util/alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define BLOCK_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BLOCK_CACHE_ASAN 1
#endif
#endif

#ifdef BLOCK_CACHE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* A cached block's first word links it to the next one of its class. */
struct asyncio__cached_block {
    asyncio__cached_block *next;
};

_Thread_local asyncio__task_cache *asyncio__tl_task_cache;

static size_t class_size(uint8_t cls)
{
    return (size_t)cls * ASYNCIO__TASK_CACHE_GRAIN;
}

/* Blocks a class may hold: its share of ASYNCIO__TASK_CACHE_CLASS_BYTES. */
static uint16_t class_depth(uint8_t cls)
{
    return (uint16_t)(ASYNCIO__TASK_CACHE_CLASS_BYTES / class_size(cls));
}

void asyncio__task_cache_init(asyncio__task_cache *c)
{
    for (unsigned i = 0; i < ASYNCIO__TASK_CACHE_CLASSES; i++) {
        c->head[i] = NULL;
        c->room[i] = class_depth((uint8_t)(i + 1)); /* a count, so free needs no division */
    }
}

void asyncio__task_cache_drain(asyncio__task_cache *c)
{
    for (unsigned i = 0; i < ASYNCIO__TASK_CACHE_CLASSES; i++) {
        asyncio__cached_block *b = c->head[i];
        while (b != NULL) {
            UNPOISON(b, class_size((uint8_t)(i + 1)));
            asyncio__cached_block *next = b->next;
            asyncio__free(b);
            b = next;
        }
    }
    asyncio__task_cache_init(c);
}

void *asyncio__task_block_alloc(size_t size, uint8_t *cls)
{
    if (size > ASYNCIO__TASK_CACHE_MAX) {
        *cls = 0;
        return asyncio__malloc(size);
    }
    uint8_t k = (uint8_t)((size + ASYNCIO__TASK_CACHE_GRAIN - 1) / ASYNCIO__TASK_CACHE_GRAIN);
    *cls = k;
    asyncio__task_cache *c = asyncio__tl_task_cache;
    if (c != NULL) {
        asyncio__cached_block *b = c->head[k - 1];
        if (b != NULL) {
            UNPOISON(b, class_size(k));
            c->head[k - 1] = b->next;
            c->room[k - 1]++;
            return b;
        }
    }
    return asyncio__malloc(class_size(k));
}

void asyncio__task_block_free(void *block, uint8_t cls)
{
    asyncio__task_cache *c = asyncio__tl_task_cache;
    if (cls == 0 || c == NULL || c->room[cls - 1] == 0) {
        asyncio__free(block);
        return;
    }
    asyncio__cached_block *b = block;
    b->next = c->head[cls - 1];
    c->head[cls - 1] = b;
    c->room[cls - 1]--;
    POISON(b, class_size(cls));
}

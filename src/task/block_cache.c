/*
 * Task-block cache: see block_cache.h for the classes, bounds and threads.
 */
#include "task/block_cache.h"

#include "internal.h"
#include "util/alloc.h"

#ifdef ASYNCIO__TASK_CACHE_ASAN
#include <sanitizer/asan_interface.h>
#endif

_Thread_local asyncio__task_cache *asyncio__tl_task_cache;

#define class_size asyncio__task_cache_class_size

/* Blocks a class may hold: its share of ASYNCIO__TASK_CACHE_CLASS_BYTES. */
static uint16_t class_depth(uint8_t cls)
{
    return (uint16_t)(ASYNCIO__TASK_CACHE_CLASS_BYTES / class_size(cls));
}

void asyncio__task_cache_init(asyncio__task_cache *c)
{
    c->head[0] = NULL;
    c->room[0] = 0; /* class 0 (too large) is never cached */
    c->id_next = c->id_end = 0; /* no ids reserved */
    for (unsigned k = 1; k <= ASYNCIO__TASK_CACHE_CLASSES; k++) {
        c->head[k] = NULL;
        c->room[k] = class_depth((uint8_t)k); /* a count, so free needs no division */
    }
}

void asyncio__task_cache_drain(asyncio__task_cache *c)
{
    for (unsigned k = 1; k <= ASYNCIO__TASK_CACHE_CLASSES; k++) {
        asyncio__cached_block *b = c->head[k];
        while (b != NULL) {
            asyncio__task_cache_unpoison(b, (uint8_t)k);
            asyncio__cached_block *next = b->next;
            asyncio__free(b);
            b = next;
        }
    }
    asyncio__task_cache_init(c);
}

#ifdef ASYNCIO__TASK_CACHE_ASAN
void asyncio__task_cache_poison(void *block, uint8_t cls)
{
    ASAN_POISON_MEMORY_REGION(block, class_size(cls));
}

void asyncio__task_cache_unpoison(void *block, uint8_t cls)
{
    ASAN_UNPOISON_MEMORY_REGION(block, class_size(cls));
}
#endif

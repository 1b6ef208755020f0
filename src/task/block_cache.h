/*
 * Task-block cache (internal): per-worker free lists of task blocks, so that
 * a spawn on a runtime's thread reuses the block of a task that finished
 * there instead of a malloc / free pair (issue 13: malloc, free and their
 * page faults were most of spawn + join).
 *
 * Size classes: a block of n bytes is in class k = (n + 8 + 15) / 16, up
 * to ASYNCIO__TASK_CACHE_MAX bytes, and is allocated with the class's full
 * size, 16 k - 8 bytes, so any block of the class can serve any request of
 * it. That size is what a 16-byte-granular malloc with an 8-byte chunk
 * header (glibc) hands out for n anyway: rounding up costs no memory, and a
 * block stays in the allocator's size bin (rounding to 16 instead moved a
 * 116-byte task out of glibc's fastbins, and its spawn benchmark paid page
 * faults for it). Larger blocks bypass the cache (class 0). The class is
 * kept in the task header (task.h: the low bits of `blk`), so freeing needs no size.
 *
 * Bounds: each class keeps at most ASYNCIO__TASK_CACHE_CLASS_BYTES worth of
 * blocks (16 KiB: 136 blocks of 120 B, 16 of 1000 B); beyond that a freed
 * block goes back to the allocator. A cache is drained (every block freed
 * through the allocation hook) when its runtime is freed.
 *
 * Ownership and threads. A cache belongs to one thread at a time: a worker
 * of the multi-thread runtime (its whole life), the thread inside a
 * current-thread block_on. That thread installs it as asyncio__tl_task_cache;
 * every other thread (blocking pool, a foreign thread dropping a waker,
 * shutdown) has none and uses the allocator directly. No atomics: a block
 * freed here was handed over by the task state's acq_rel reference drop
 * (the freeing thread saw every other thread's writes), and is reused only
 * by this thread. A block may come from another runtime's task: blocks are
 * plain allocator memory, the class is all that matters.
 *
 * Use-after-free stays visible: under AddressSanitizer a cached block is
 * poisoned (ASAN_POISON_MEMORY_REGION) while it sits in the cache, so a
 * stale JoinHandle or waker touching it is reported as with free(). A
 * reused block is a new task in every respect (task_new initialises every
 * header field and takes a fresh id; test_runtime checks it).
 */
#ifndef ASYNCIO_TASK_BLOCK_CACHE_H
#define ASYNCIO_TASK_BLOCK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "util/alloc.h"

#define ASYNCIO__TASK_CACHE_GRAIN       16u
#define ASYNCIO__TASK_CACHE_CLASSES     63u /* 6 bits in the task header (task.h: blk) */
#define ASYNCIO__TASK_CACHE_MAX         (ASYNCIO__TASK_CACHE_CLASSES * ASYNCIO__TASK_CACHE_GRAIN - 8u)
#define ASYNCIO__TASK_CACHE_CLASS_BYTES 16384u

typedef struct asyncio__cached_block asyncio__cached_block;

/* Task ids a thread with a cache reserves at a time (task.c: next_id). */
#define ASYNCIO__TASK_ID_RANGE 256u

/*
 * Indexed by class (1..ASYNCIO__TASK_CACHE_CLASSES); entry 0: class 0, never
 * cached (room 0). Also the thread's reserved range of task ids,
 * [id_next, id_end): a spawn there takes one without touching the global
 * counter (task.c).
 */
typedef struct asyncio__task_cache {
    asyncio__cached_block *head[ASYNCIO__TASK_CACHE_CLASSES + 1];
    uint16_t room[ASYNCIO__TASK_CACHE_CLASSES + 1]; /* blocks the class may still take */
    uint64_t id_next, id_end;
} asyncio__task_cache;

/* The cache of the thread running a runtime's tasks now, or NULL. */
extern _Thread_local asyncio__task_cache *asyncio__tl_task_cache;

/* An empty cache. */
void asyncio__task_cache_init(asyncio__task_cache *c);

/*
 * Frees every cached block (runtime free; no thread uses the cache any
 * more). The cache is empty and usable again afterwards.
 */
void asyncio__task_cache_drain(asyncio__task_cache *c);

/* Installs `c` as this thread's cache; returns the previous one (restore it after). */
static inline asyncio__task_cache *asyncio__task_cache_enter(asyncio__task_cache *c)
{
    asyncio__task_cache *prev = asyncio__tl_task_cache;
    asyncio__tl_task_cache = c;
    return prev;
}

/* A cached block's first word links it to the next one of its class. */
struct asyncio__cached_block {
    asyncio__cached_block *next;
};

/* AddressSanitizer: cached blocks are poisoned (block_cache.c). */
void asyncio__task_cache_poison(void *block, uint8_t cls);
void asyncio__task_cache_unpoison(void *block, uint8_t cls);
#if defined(__SANITIZE_ADDRESS__)
#define ASYNCIO__TASK_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASYNCIO__TASK_CACHE_ASAN 1
#endif
#endif
#ifndef ASYNCIO__TASK_CACHE_ASAN
#define asyncio__task_cache_poison(b, c)   ((void)(b), (void)(c))
#define asyncio__task_cache_unpoison(b, c) ((void)(b), (void)(c))
#endif

/* What a block of class cls is allocated with (above: it fills its malloc chunk). */
static inline size_t asyncio__task_cache_class_size(uint8_t cls)
{
    return (size_t)cls * ASYNCIO__TASK_CACHE_GRAIN - 8u;
}

/*
 * A block of at least `size` bytes: from cache `c` (this thread's, or NULL)
 * when it has one of the class, else from the allocator. *cls receives the class to pass to
 * asyncio__task_block_free. NULL when out of memory. Inline: a spawn's only
 * allocation, on every spawn.
 */
static inline void *asyncio__task_block_alloc_from(asyncio__task_cache *c, size_t size,
                                                   uint8_t *cls)
{
    if (size > ASYNCIO__TASK_CACHE_MAX) {
        *cls = 0;
        return asyncio__malloc(size);
    }
    size_t k = (size + 8u + ASYNCIO__TASK_CACHE_GRAIN - 1) / ASYNCIO__TASK_CACHE_GRAIN;
    *cls = (uint8_t)k;
    asyncio__cached_block *b;
    if (c == NULL || (b = c->head[k]) == NULL)
        return asyncio__malloc(k * ASYNCIO__TASK_CACHE_GRAIN - 8u);
    asyncio__task_cache_unpoison(b, (uint8_t)k);
    c->head[k] = b->next;
    c->room[k]++;
    return b;
}

/* The same from this thread's cache (asyncio__tl_task_cache, possibly NULL). */
static inline void *asyncio__task_block_alloc(size_t size, uint8_t *cls)
{
    return asyncio__task_block_alloc_from(asyncio__tl_task_cache, size, cls);
}

/* Gives a block back: to this thread's cache if it has room, else to the allocator. */
static inline void asyncio__task_block_free(void *block, uint8_t cls)
{
    asyncio__task_cache *c = asyncio__tl_task_cache;
    if (c == NULL || c->room[cls] == 0) { /* class 0 has no room */
        asyncio__free(block);
        return;
    }
    asyncio__cached_block *b = block;
    b->next = c->head[cls];
    c->head[cls] = b;
    c->room[cls]--;
    asyncio__task_cache_poison(b, cls);
}

#endif

/*
 * Task-block cache (internal): per-worker free lists of task blocks, so that
 * a spawn on a runtime's thread reuses the block of a task that finished
 * there instead of a malloc / free pair (issue 13: malloc, free and their
 * page faults were most of spawn + join).
 *
 * Size classes: a block of n bytes is in class (n + 15) / 16, up to
 * ASYNCIO__TASK_CACHE_MAX bytes; a cached block is allocated with its
 * class's full size, so any block of the class can serve any request of
 * it. Larger blocks bypass the cache (class 0). The class is kept in the
 * task header (task.h: `cls`), so freeing needs no size.
 *
 * Bounds: each class keeps at most ASYNCIO__TASK_CACHE_CLASS_BYTES worth of
 * blocks (16 KiB: 146 blocks of 112 B, 16 of 1 KiB); beyond that a freed
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

#define ASYNCIO__TASK_CACHE_GRAIN 16u
#define ASYNCIO__TASK_CACHE_MAX 1024u
#define ASYNCIO__TASK_CACHE_CLASSES (ASYNCIO__TASK_CACHE_MAX / ASYNCIO__TASK_CACHE_GRAIN)
#define ASYNCIO__TASK_CACHE_CLASS_BYTES 16384u

typedef struct asyncio__cached_block asyncio__cached_block;

typedef struct asyncio__task_cache {
    asyncio__cached_block *head[ASYNCIO__TASK_CACHE_CLASSES]; /* class i + 1 */
    uint16_t room[ASYNCIO__TASK_CACHE_CLASSES]; /* blocks the class may still take */
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

/*
 * A block of at least `size` bytes: from this thread's cache when it has one
 * of the class, else from the allocator. *cls receives the class to pass to
 * asyncio__task_block_free. NULL when out of memory.
 */
void *asyncio__task_block_alloc(size_t size, uint8_t *cls);

/* Gives a block back: to this thread's cache if it has room, else to the allocator. */
void asyncio__task_block_free(void *block, uint8_t cls);

#endif

/*
 * Task-block slab (internal): each runtime thread carves task blocks out of
 * chunks it owns, so a spawn is a pointer pop and a join's free a pointer
 * push, with no malloc / free pair per task (issue 13: glibc's malloc
 * family was 38% of the instructions of spawn + join when many tasks are
 * alive at once, which a bounded free-list cache cannot serve).
 *
 * Size classes: a block of n bytes is in class k = (n + 8 + 15) / 16, up to
 * ASYNCIO__TASK_CACHE_MAX bytes. Its slot in a chunk is 16 k bytes: the
 * block (16 k - 8 bytes, 16-byte aligned) and, in the last word, the
 * chunk's address, so a free finds its chunk without a size or an aligned
 * allocation. Larger blocks, and blocks allocated on a thread without a
 * slab (blocking pool, foreign threads), come from the allocator directly:
 * class 0. The class is kept in the task header (task.h: the low bits of
 * `blk`).
 *
 * Chunks (ASYNCIO__TASK_CHUNK_BYTES, from the allocation hook) belong to
 * one slab and hold blocks of one class. A chunk has
 *   - a local free list and a bump pointer over never-used slots, used only
 *     by the owner (no atomics): allocation pops or bumps, a free on the
 *     owning thread pushes;
 *   - a remote free list (an atomic stack): a block freed on any other
 *     thread is pushed there, and the owner takes the whole list back when
 *     its current chunk runs out (one exchange);
 *   - `used`, the blocks the owner has handed out and not taken back.
 * Each class keeps its chunks in a list, the ones with free blocks first;
 * the first is the one allocations come from. A chunk whose last block is
 * freed is released (one empty chunk per class is kept as a spare). When
 * every chunk of a class is full the owner sweeps them for remote frees,
 * but only after a quarter as many chunks as it has were allocated since
 * the last sweep: sweeps cost O(1) per chunk allocated, and blocks freed on
 * other threads wait at most that long to be reused (a class's chunk count
 * grows by at most a quarter between sweeps, and a sweep takes back every
 * block freed elsewhere and releases the chunks that emptied). A chunk is
 * only looked at by its owner, so chunks other threads emptied stay
 * allocated until their owner allocates from that class again or its
 * runtime is freed (a worker that stops spawning keeps its peak).
 *
 * Ownership and threads. A slab belongs to one thread at a time: a worker
 * of the multi-thread runtime (its whole life), the thread inside a
 * current-thread block_on. That thread installs it as asyncio__tl_task_cache.
 * The freeing thread decides by comparing the chunk's owner with its own
 * slab. Blocks handed from thread to thread are ordered by the task state's
 * acq_rel reference drop, and the remote stack's release push / acquire
 * exchange orders the block's memory for the owner.
 *
 * Orphans. A slab is drained when its runtime is freed, but JoinHandles and
 * wakers may keep blocks alive past that. Each chunk with blocks still out
 * is orphaned: its owner is cleared, its live count published, and the
 * remote word marked; every later free (from any thread) decrements the
 * count, and the one that reaches zero frees the chunk.
 *
 * Use-after-free stays visible: under AddressSanitizer a free slot is
 * poisoned (a block on a remote list keeps its first word readable until
 * its owner takes it back), so a stale JoinHandle or waker touching it is
 * reported as with free(). A reused block is a new task in every respect
 * (task_new initialises every header field and takes a fresh id;
 * test_runtime checks it).
 */
#ifndef ASYNCIO_TASK_BLOCK_CACHE_H
#define ASYNCIO_TASK_BLOCK_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/alloc.h"
#include "internal.h"

#define ASYNCIO__TASK_CACHE_GRAIN   16u
#define ASYNCIO__TASK_CACHE_CLASSES 63u /* 6 bits in the task header (task.h: blk) */
#define ASYNCIO__TASK_CACHE_MAX     (ASYNCIO__TASK_CACHE_CLASSES * ASYNCIO__TASK_CACHE_GRAIN - 8u)
#define ASYNCIO__TASK_CHUNK_BYTES   65536u

typedef struct asyncio__cached_block asyncio__cached_block;
typedef struct asyncio__task_cache asyncio__task_cache;
typedef struct asyncio__slab_chunk asyncio__slab_chunk;

/* A free block's first word links it to the next one of its list. */
struct asyncio__cached_block {
    asyncio__cached_block *next;
};

/* The remote word's mark of an orphaned chunk (block addresses are 16-byte aligned). */
#define ASYNCIO__SLAB_ORPHAN ((uintptr_t)1)

struct asyncio__slab_chunk {
    /* The owner's (no atomics but `owner`, which others only compare). */
    _Atomic(asyncio__task_cache *) owner; /* NULL once orphaned */
    asyncio__slab_chunk *prev, *next;     /* the class's list */
    asyncio__cached_block *free;          /* local free list */
    char *bump, *end;                     /* never-used slots */
    uint32_t used;                        /* blocks out, as the owner counts them */
    uint8_t cls;
    uint8_t full; /* moved to the list's tail: neither free blocks nor bump room */
    char pad_[64 - 6 * sizeof(void *) - 4 - 2];
    /* Other threads' (a line of its own: remote frees do not touch the owner's). */
    _Atomic uintptr_t remote; /* stack of blocks freed elsewhere, | ASYNCIO__SLAB_ORPHAN */
    _Atomic size_t live;      /* orphaned: blocks still out */
    char pad2_[64 - sizeof(uintptr_t) - sizeof(size_t)];
};

/* Bytes before the first slot (slots stay 16-byte aligned). */
#define ASYNCIO__SLAB_HEADER ((sizeof(asyncio__slab_chunk) + 15u) & ~(size_t)15u)

typedef struct asyncio__slab_class {
    asyncio__slab_chunk *head, *tail; /* head: where allocations come from */
    asyncio__slab_chunk *spare;       /* an empty chunk kept for the next one needed */
    uint32_t nchunks;                 /* in the list */
    uint32_t since_sweep;             /* chunks allocated since the last sweep */
} asyncio__slab_class;

/* Task ids a thread with a slab reserves at a time (task.c: next_id). */
#define ASYNCIO__TASK_ID_RANGE 256u

/*
 * A thread's slab, indexed by class (1..ASYNCIO__TASK_CACHE_CLASSES; entry
 * 0 unused). Also the thread's reserved range of task ids, [id_next,
 * id_end): a spawn there takes one without touching the global counter
 * (task.c).
 */
struct asyncio__task_cache {
    asyncio__slab_class cls[ASYNCIO__TASK_CACHE_CLASSES + 1];
    uint64_t id_next, id_end;
};

/* The slab of the thread running a runtime's tasks now, or NULL. */
extern _Thread_local asyncio__task_cache *asyncio__tl_task_cache;

/* An empty slab. */
void asyncio__task_cache_init(asyncio__task_cache *c);

/*
 * Gives up every chunk (runtime free; no thread uses the slab any more):
 * empty ones are freed, the others orphaned (above). The slab is empty and
 * usable again afterwards.
 */
void asyncio__task_cache_drain(asyncio__task_cache *c);

/* Installs `c` as this thread's slab; returns the previous one (restore it after). */
static inline asyncio__task_cache *asyncio__task_cache_enter(asyncio__task_cache *c)
{
    asyncio__task_cache *prev = asyncio__tl_task_cache;
    asyncio__tl_task_cache = c;
    return prev;
}

/* AddressSanitizer: free slots are poisoned (block_cache.c). */
#if defined(__SANITIZE_ADDRESS__)
#define ASYNCIO__TASK_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASYNCIO__TASK_CACHE_ASAN 1
#endif
#endif
#ifdef ASYNCIO__TASK_CACHE_ASAN
void asyncio__task_cache_poison(void *block, uint8_t cls);
void asyncio__task_cache_unpoison(void *block, uint8_t cls);
void asyncio__task_cache_unpoison_slot(void *slot, uint8_t cls); /* with the chunk word */
#else
#define asyncio__task_cache_poison(b, c)   ((void)(b), (void)(c))
#define asyncio__task_cache_unpoison(b, c) ((void)(b), (void)(c))
#define asyncio__task_cache_unpoison_slot(b, c) ((void)(b), (void)(c))
#endif

/* The usable bytes of a block of class cls (its slot less the chunk word). */
static inline size_t asyncio__task_cache_class_size(uint8_t cls)
{
    return (size_t)cls * ASYNCIO__TASK_CACHE_GRAIN - 8u;
}

/* The chunk a slab block of class cls belongs to (its slot's last word). */
static inline asyncio__slab_chunk **asyncio__slab_chunk_word(void *block, uint8_t cls)
{
    return (asyncio__slab_chunk **)(void *)((char *)block + asyncio__task_cache_class_size(cls));
}

/*
 * Test hook (tests/test_runtime.c): runs in chunk_orphan between the ORPHAN
 * mark and the subtraction of what the stack held, so a test can free
 * blocks exactly there. NULL outside that test.
 */
extern void (*asyncio__slab_orphan_hook)(void);

/* The slow paths (block_cache.c). */
void *asyncio__slab_alloc_slow(asyncio__task_cache *c, uint8_t cls);
void asyncio__slab_free_event(asyncio__task_cache *c, asyncio__slab_chunk *ch);
void asyncio__slab_free_remote(asyncio__slab_chunk *ch, void *block);

/*
 * A block of class k from chunk ch, which has room: its free list first,
 * then the bump area (a slot carved there gets the chunk's address in its
 * last word). Owner only.
 */
static inline void *asyncio__slab_take(asyncio__slab_chunk *ch, uint8_t k)
{
    asyncio__cached_block *b = ch->free;
    if (b != NULL) {
        asyncio__task_cache_unpoison(b, k);
        ch->free = b->next;
        ch->used++;
        return b;
    }
    char *p = ch->bump;
    ch->bump = p + (size_t)k * ASYNCIO__TASK_CACHE_GRAIN;
    ch->used++;
    asyncio__task_cache_unpoison_slot(p, k);
    *asyncio__slab_chunk_word(p, k) = ch;
    return p;
}

/*
 * A block of at least `size` bytes: from slab `c` (this thread's, or NULL)
 * when the size has a class, else from the allocator. *cls receives the
 * class to pass to asyncio__task_block_free (0: allocator). NULL when out of
 * memory. Inline: a spawn's only allocation, on every spawn.
 */
static inline void *asyncio__task_block_alloc_from(asyncio__task_cache *c, size_t size,
                                                   uint8_t *cls)
{
    if (c == NULL || size > ASYNCIO__TASK_CACHE_MAX) {
        *cls = 0;
        return asyncio__malloc(size);
    }
    uint8_t k = (uint8_t)((size + 8u + ASYNCIO__TASK_CACHE_GRAIN - 1) / ASYNCIO__TASK_CACHE_GRAIN);
    *cls = k;
    asyncio__slab_chunk *ch = c->cls[k].head;
    if (ASYNCIO_LIKELY(ch != NULL && (ch->free != NULL || ch->bump != ch->end)))
        return asyncio__slab_take(ch, k);
    return asyncio__slab_alloc_slow(c, k);
}

/* The same from this thread's slab (asyncio__tl_task_cache, possibly NULL). */
static inline void *asyncio__task_block_alloc(size_t size, uint8_t *cls)
{
    return asyncio__task_block_alloc_from(asyncio__tl_task_cache, size, cls);
}

/*
 * Gives a block back: to its chunk's local free list on the owning thread,
 * to its remote list from any other, to the allocator for class 0.
 */
static inline void asyncio__task_block_free(void *block, uint8_t cls)
{
    if (cls == 0) {
        asyncio__free(block);
        return;
    }
    asyncio__slab_chunk *ch = *asyncio__slab_chunk_word(block, cls);
    asyncio__task_cache *c = asyncio__tl_task_cache;
    if (ASYNCIO_UNLIKELY(c == NULL ||
                         atomic_load_explicit(&ch->owner, memory_order_relaxed) != c)) {
        asyncio__slab_free_remote(ch, block);
        return;
    }
    asyncio__cached_block *b = block;
    b->next = ch->free;
    ch->free = b;
    asyncio__task_cache_poison(b, cls);
    if (ASYNCIO_UNLIKELY(--ch->used == 0 || ch->full))
        asyncio__slab_free_event(c, ch);
}

#endif

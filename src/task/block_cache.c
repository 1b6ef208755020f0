/*
 * Task-block slab: see block_cache.h for the classes, chunks, lists,
 * threads and orphans. This file has the slow paths: a class whose first
 * chunk ran out, a free that changes a chunk's place in its list, frees
 * from other threads, and the drain.
 */
#include "task/block_cache.h"

#include <string.h>

#include "internal.h"
#include "util/alloc.h"

#ifdef ASYNCIO__TASK_CACHE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

_Thread_local asyncio__task_cache *asyncio__tl_task_cache;

void (*asyncio__slab_orphan_hook)(void);

#define class_size asyncio__task_cache_class_size

_Static_assert(ASYNCIO__TASK_CHUNK_BYTES >=
                   ASYNCIO__SLAB_HEADER + 16u * ASYNCIO__TASK_CACHE_CLASSES * ASYNCIO__TASK_CACHE_GRAIN,
               "a chunk holds at least 16 blocks of the largest class");
_Static_assert(sizeof(asyncio__slab_chunk) == 128, "the chunk header is two cache lines");

void asyncio__task_cache_init(asyncio__task_cache *c)
{
    memset(c->cls, 0, sizeof c->cls);
    c->id_next = c->id_end = 0; /* no ids reserved */
}

/* ---- the class's list ---------------------------------------------------- */

static void list_unlink(asyncio__slab_class *cl, asyncio__slab_chunk *ch)
{
    if (ch->prev != NULL)
        ch->prev->next = ch->next;
    else
        cl->head = ch->next;
    if (ch->next != NULL)
        ch->next->prev = ch->prev;
    else
        cl->tail = ch->prev;
    ch->prev = ch->next = NULL;
}

static void list_push_front(asyncio__slab_class *cl, asyncio__slab_chunk *ch)
{
    ch->prev = NULL;
    ch->next = cl->head;
    if (cl->head != NULL)
        cl->head->prev = ch;
    else
        cl->tail = ch;
    cl->head = ch;
}

static void list_push_back(asyncio__slab_class *cl, asyncio__slab_chunk *ch)
{
    ch->next = NULL;
    ch->prev = cl->tail;
    if (cl->tail != NULL)
        cl->tail->next = ch;
    else
        cl->head = ch;
    cl->tail = ch;
}

/* After the head (where a chunk that has free blocks again waits its turn). */
static void list_insert_second(asyncio__slab_class *cl, asyncio__slab_chunk *ch)
{
    asyncio__slab_chunk *h = cl->head;
    if (h == NULL) {
        list_push_front(cl, ch);
        return;
    }
    ch->prev = h;
    ch->next = h->next;
    if (h->next != NULL)
        h->next->prev = ch;
    else
        cl->tail = ch;
    h->next = ch;
}

/* ---- chunks -------------------------------------------------------------- */

static asyncio__slab_chunk *chunk_new(asyncio__task_cache *c, uint8_t k)
{
    asyncio__slab_chunk *ch = asyncio__malloc(ASYNCIO__TASK_CHUNK_BYTES);
    if (ch == NULL)
        return NULL;
    size_t slot = (size_t)k * ASYNCIO__TASK_CACHE_GRAIN;
    size_t n = (ASYNCIO__TASK_CHUNK_BYTES - ASYNCIO__SLAB_HEADER) / slot;
    atomic_init(&ch->owner, c);
    ch->prev = ch->next = NULL;
    ch->free = NULL;
    ch->bump = (char *)ch + ASYNCIO__SLAB_HEADER;
    ch->end = ch->bump + n * slot;
    ch->used = 0;
    ch->cls = k;
    ch->full = 0;
    atomic_init(&ch->remote, 0);
    atomic_init(&ch->live, 0);
    POISON(ch->bump, n * slot); /* unpoisoned slot by slot as they are carved */
    return ch;
}

static void chunk_free_memory(asyncio__slab_chunk *ch)
{
    UNPOISON(ch, ASYNCIO__TASK_CHUNK_BYTES);
    asyncio__free(ch);
}

/* An empty chunk out of its list: kept as the class's spare, or freed. */
static void chunk_release(asyncio__slab_class *cl, asyncio__slab_chunk *ch)
{
    if (cl->spare == NULL)
        cl->spare = ch;
    else
        chunk_free_memory(ch);
}

/*
 * Takes back the blocks other threads freed into `ch` (owner only): they
 * join its local free list. Returns how many.
 */
static uint32_t chunk_collect(asyncio__slab_chunk *ch)
{
    if (atomic_load_explicit(&ch->remote, memory_order_relaxed) == 0)
        return 0; /* the common case: no exchange (a locked instruction) */
    uintptr_t h = atomic_exchange_explicit(&ch->remote, 0, memory_order_acquire);
    uint32_t n = 0;
    while (h != 0) {
        asyncio__cached_block *b = (asyncio__cached_block *)h;
        h = (uintptr_t)b->next; /* the first word stayed readable (free_remote) */
        b->next = ch->free;
        ch->free = b;
        asyncio__task_cache_poison(b, ch->cls);
        n++;
    }
    ch->used -= n;
    return n;
}

/*
 * Every chunk of the class is full: take back what other threads freed into
 * any of them. A chunk that got blocks goes to the front; one that is empty
 * is released.
 */
static void class_sweep(asyncio__slab_class *cl)
{
    cl->since_sweep = 0;
    asyncio__slab_chunk *ch = cl->head;
    while (ch != NULL) {
        asyncio__slab_chunk *next = ch->next;
        if (chunk_collect(ch) > 0) {
            list_unlink(cl, ch);
            if (ch->used == 0) {
                cl->nchunks--;
                chunk_release(cl, ch);
            } else {
                ch->full = 0;
                list_push_front(cl, ch);
            }
        }
        ch = next;
    }
}

void *asyncio__slab_alloc_slow(asyncio__task_cache *c, uint8_t k)
{
    asyncio__slab_class *cl = &c->cls[k];
    asyncio__slab_chunk *ch = cl->head;
    if (ch != NULL) {
        if (chunk_collect(ch) > 0)
            return asyncio__slab_take(ch, k);
        /* The head ran out: to the tail; the next one has room unless all are full. */
        ch->full = 1;
        if (ch->next != NULL) {
            list_unlink(cl, ch);
            list_push_back(cl, ch);
            if (!cl->head->full)
                return asyncio__slab_take(cl->head, k);
        }
        /* All full. Sweep for remote frees once a quarter as many chunks came since the last. */
        if ((uint64_t)cl->since_sweep * 4u >= cl->nchunks) {
            class_sweep(cl);
            if (cl->head != NULL && !cl->head->full)
                return asyncio__slab_take(cl->head, k);
        }
    }
    ch = cl->spare;
    if (ch != NULL) {
        cl->spare = NULL;
        ch->full = 0;
    } else if ((ch = chunk_new(c, k)) == NULL) {
        return NULL;
    }
    list_push_front(cl, ch);
    cl->nchunks++;
    cl->since_sweep++;
    return asyncio__slab_take(ch, k);
}

void asyncio__slab_free_event(asyncio__task_cache *c, asyncio__slab_chunk *ch)
{
    asyncio__slab_class *cl = &c->cls[ch->cls];
    if (ch->full) { /* room again: next in line after the head */
        ch->full = 0;
        if (ch != cl->head) {
            list_unlink(cl, ch);
            list_insert_second(cl, ch);
        }
    }
    if (ch->used == 0 && ch != cl->head) {
        list_unlink(cl, ch);
        cl->nchunks--;
        chunk_release(cl, ch);
    }
}

void asyncio__slab_free_remote(asyncio__slab_chunk *ch, void *block)
{
    asyncio__cached_block *b = block;
    /* The first word stays readable: it links the remote list until the owner takes it. */
    POISON((char *)block + sizeof(void *), class_size(ch->cls) - sizeof(void *));
    uintptr_t h = atomic_load_explicit(&ch->remote, memory_order_acquire);
    for (;;) {
        if (h & ASYNCIO__SLAB_ORPHAN) {
            /* acquire above: `live` as the owner left it; acq_rel: the last one frees */
            if (atomic_fetch_sub_explicit(&ch->live, 1, memory_order_acq_rel) == 1)
                chunk_free_memory(ch);
            return;
        }
        b->next = (asyncio__cached_block *)h;
        if (atomic_compare_exchange_weak_explicit(&ch->remote, &h, (uintptr_t)b,
                                                  memory_order_release, memory_order_acquire))
            return;
    }
}

/*
 * A chunk whose slab goes away: freed now when no block is out, else left
 * to the free of its last block (block_cache.h: orphans).
 */
static void chunk_orphan(asyncio__slab_chunk *ch)
{
    atomic_store_explicit(&ch->owner, NULL, memory_order_relaxed);
    /*
     * The blocks out, plus one for this function: without it, when nothing
     * was on the remote stack, frees after the mark could take the count to
     * zero and free the chunk before the subtraction below reads it
     * (tests/model/slab.pml, BUG4).
     */
    atomic_store_explicit(&ch->live, (size_t)ch->used + 1u, memory_order_relaxed);
    /* release: `live` before the mark; acquire: the blocks pushed before it */
    uintptr_t h =
        atomic_exchange_explicit(&ch->remote, ASYNCIO__SLAB_ORPHAN, memory_order_acq_rel);
    if (ASYNCIO_UNLIKELY(asyncio__slab_orphan_hook != NULL))
        asyncio__slab_orphan_hook();
    size_t n = 1; /* this function's own */
    for (; h != 0; h = (uintptr_t)((asyncio__cached_block *)h)->next)
        n++;
    if (atomic_fetch_sub_explicit(&ch->live, n, memory_order_acq_rel) == n)
        chunk_free_memory(ch);
}

void asyncio__task_cache_drain(asyncio__task_cache *c)
{
    for (unsigned k = 1; k <= ASYNCIO__TASK_CACHE_CLASSES; k++) {
        asyncio__slab_class *cl = &c->cls[k];
        asyncio__slab_chunk *ch = cl->head;
        while (ch != NULL) {
            asyncio__slab_chunk *next = ch->next;
            chunk_orphan(ch);
            ch = next;
        }
        if (cl->spare != NULL) /* empty, nothing can come back to it */
            chunk_free_memory(cl->spare);
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

void asyncio__task_cache_unpoison_slot(void *slot, uint8_t cls)
{
    ASAN_UNPOISON_MEMORY_REGION(slot, (size_t)cls * ASYNCIO__TASK_CACHE_GRAIN);
}
#endif

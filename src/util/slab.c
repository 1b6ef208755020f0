/*
 * Slab of fixed-size entries with index + generation tokens (see slab.h for
 * the page layout, the token format and the entry lifecycle).
 */
#include "util/slab.h"

#include <string.h>

#include "internal.h"
#include "util/alloc.h"

#define INDEX_MASK (((uintptr_t)1 << ASYNCIO__SLAB_INDEX_BITS) - 1)

ASYNCIO_STATIC_ASSERT((uint64_t)ASYNCIO__SLAB_PAGE0 *((1u << ASYNCIO__SLAB_PAGES) - 1) <
                          (uint64_t)INDEX_MASK,
                      "slab capacity must fit the token's index bits, below all-ones");

void asyncio__slab_init(asyncio__slab *s, size_t entry_size,
                        int (*init_entry)(asyncio__slab_entry *e),
                        void (*destroy_entry)(asyncio__slab_entry *e))
{
    ASYNCIO_ASSERT(entry_size >= sizeof(asyncio__slab_entry));
    memset(s, 0, sizeof *s);
    s->entry_size = entry_size;
    s->init_entry = init_entry;
    s->destroy_entry = destroy_entry;
    for (unsigned p = 0; p < ASYNCIO__SLAB_PAGES; p++)
        atomic_init(&s->pages[p], NULL);
    asyncio__list_init(&s->free);
}

static uint32_t page_len(unsigned page)
{
    return ASYNCIO__SLAB_PAGE0 << page;
}

/* First index of page p: PAGE0 * (2^p - 1). */
static uint32_t page_base(unsigned page)
{
    return ASYNCIO__SLAB_PAGE0 * ((1u << page) - 1);
}

/* The page holding `index`: the position of the top bit of index / PAGE0 + 1. */
static unsigned page_of(uint32_t index)
{
    uint32_t v = index / ASYNCIO__SLAB_PAGE0 + 1;
    unsigned p = 0;
    while (v >>= 1)
        p++;
    return p;
}

static asyncio__slab_entry *entry_in(const asyncio__slab *s, unsigned char *page, uint32_t off)
{
    return (asyncio__slab_entry *)(void *)(page + (size_t)off * s->entry_size);
}

/* Entries of page p that were initialised (all but the newest page's fresh tail). */
static uint32_t page_initialised(const asyncio__slab *s, unsigned p)
{
    return p + 1 == s->npages ? s->fresh : page_len(p);
}

void asyncio__slab_close(asyncio__slab *s)
{
    for (unsigned p = 0; p < s->npages; p++) {
        unsigned char *page = atomic_load_explicit(&s->pages[p], memory_order_relaxed);
        uint32_t n = page_initialised(s, p);
        for (uint32_t i = 0; s->destroy_entry != NULL && i < n; i++)
            s->destroy_entry(entry_in(s, page, i));
        asyncio__free(page);
        atomic_store_explicit(&s->pages[p], NULL, memory_order_relaxed);
    }
    s->npages = 0;
    s->fresh = 0;
    asyncio__list_init(&s->free);
}

/*
 * Adds a page, zeroed (calloc: generation 0, so lookups never match its
 * entries) and otherwise untouched: entries are set up as they are handed
 * out (take_fresh). Only called when the newest page has no fresh entry.
 */
static int grow(asyncio__slab *s)
{
    if (s->npages == ASYNCIO__SLAB_PAGES)
        return ASYNCIO_ENOSPC;
    unsigned p = s->npages;
    unsigned char *page = asyncio__calloc(page_len(p), s->entry_size);
    if (page == NULL)
        return ASYNCIO_ENOMEM;
    /* Release: pairs with the acquire in slab_page(); the zeroed generations are visible. */
    atomic_store_explicit(&s->pages[p], page, memory_order_release);
    s->npages++;
    s->fresh = 0;
    return 0;
}

/* Sets up the next fresh entry of the newest page and returns it, or an error from init_entry. */
static int take_fresh(asyncio__slab *s, asyncio__slab_entry **out)
{
    unsigned p = s->npages - 1;
    unsigned char *page = atomic_load_explicit(&s->pages[p], memory_order_relaxed);
    asyncio__slab_entry *e = entry_in(s, page, s->fresh);
    e->index = page_base(p) + s->fresh;
    asyncio__list_node_init(&e->node);
    int rc = s->init_entry != NULL ? s->init_entry(e) : 0;
    if (rc < 0)
        return rc; /* stays fresh: the next alloc tries it again */
    s->fresh++;
    *out = e;
    return 0;
}

int asyncio__slab_alloc(asyncio__slab *s, asyncio__slab_entry **out)
{
    if (asyncio__list_empty(&s->free)) {
        /* Released entries first (warm); then the newest page's fresh tail; then a new page. */
        if (s->npages == 0 || s->fresh == page_len(s->npages - 1)) {
            int rc = grow(s);
            if (rc < 0)
                return rc;
        }
        return take_fresh(s, out);
    }
    asyncio__list *n = asyncio__list_first(&s->free);
    asyncio__list_remove(n);
    asyncio__slab_entry *e = ASYNCIO_CONTAINER_OF(n, asyncio__slab_entry, node);
    ASYNCIO_CHECK((atomic_load_explicit(&e->generation, memory_order_relaxed) & 1u) == 0);
    *out = e;
    return 0;
}

void asyncio__slab_publish(asyncio__slab_entry *e)
{
    uint32_t g = atomic_load_explicit(&e->generation, memory_order_relaxed);
    ASYNCIO_CHECK((g & 1u) == 0);
    /* Release: the payload written before publish is visible to asyncio__slab_get(). */
    atomic_store_explicit(&e->generation, g + 1, memory_order_release);
}

void asyncio__slab_retire(asyncio__slab_entry *e)
{
    uint32_t g = atomic_load_explicit(&e->generation, memory_order_relaxed);
    ASYNCIO_CHECK((g & 1u) == 1);
    /*
     * Relaxed is enough: a reader that still sees the odd value reaches an
     * entry whose memory stays valid until release (the owner defers it),
     * and the payload tells it the entry is shutting down.
     */
    atomic_store_explicit(&e->generation, g + 1, memory_order_relaxed);
}

void asyncio__slab_release(asyncio__slab *s, asyncio__slab_entry *e)
{
    ASYNCIO_CHECK((atomic_load_explicit(&e->generation, memory_order_relaxed) & 1u) == 0);
    /* Front: the hottest entry is reused first (its cache lines are warm). */
    asyncio__list *head = &s->free;
    ASYNCIO_ASSERT(!asyncio__list_linked(&e->node));
    e->node.next = head->next;
    e->node.prev = head;
    head->next->prev = &e->node;
    head->next = &e->node;
}

uintptr_t asyncio__slab_token(const asyncio__slab_entry *e)
{
    uintptr_t g = atomic_load_explicit(&e->generation, memory_order_relaxed);
    ASYNCIO_ASSERT((g & 1u) == 1);
    return (g << ASYNCIO__SLAB_INDEX_BITS) | e->index;
}

static unsigned char *slab_page(const asyncio__slab *s, unsigned p)
{
    /* Acquire: pairs with the release in grow(). */
    return atomic_load_explicit((_Atomic(unsigned char *) *)&s->pages[p], memory_order_acquire);
}

asyncio__slab_entry *asyncio__slab_at(const asyncio__slab *s, uint32_t index)
{
    unsigned p = page_of(index);
    if (p >= ASYNCIO__SLAB_PAGES)
        return NULL;
    unsigned char *page = slab_page(s, p);
    return page != NULL ? entry_in(s, page, index - page_base(p)) : NULL;
}

asyncio__slab_entry *asyncio__slab_get(const asyncio__slab *s, uintptr_t token)
{
    uintptr_t index = token & INDEX_MASK;
    uintptr_t gen = token >> ASYNCIO__SLAB_INDEX_BITS;
    if ((gen & 1u) == 0)
        return NULL;
    asyncio__slab_entry *e = asyncio__slab_at(s, (uint32_t)index);
    if (e == NULL)
        return NULL;
    /* Acquire: pairs with publish's release, so the payload is initialised. */
    uintptr_t cur = atomic_load_explicit(&e->generation, memory_order_acquire);
    uintptr_t mask = UINTPTR_MAX >> ASYNCIO__SLAB_INDEX_BITS;
    return (cur & mask) == gen ? e : NULL;
}

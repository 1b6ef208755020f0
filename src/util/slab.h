/*
 * A slab of fixed-size entries addressed by tokens (index + generation).
 *
 * What it owns. Pages of entries: page p holds ASYNCIO__SLAB_PAGE0 << p
 * entries, allocated the first time the free list runs dry and kept until
 * asyncio__slab_close(). Pages never move and are never freed early, so an
 * entry's address is stable for the slab's whole life and a stale pointer
 * (or a stale token resolved concurrently) always points at valid memory.
 * No allocation happens except when a new page is needed. A new page is
 * zeroed and its entries are set up one by one as they are first handed
 * out (the `fresh` tail), so the memory a slab touches follows the most
 * entries ever live at once rather than the doubled page sizes.
 *
 * Tokens. token = (generation << ASYNCIO__SLAB_INDEX_BITS) | index, where
 * the generation is the entry's counter truncated to the bits left in a
 * uintptr_t. The counter is even while the entry is free and odd while it
 * is live; it is bumped on publish (even -> odd) and on retire
 * (odd -> even). A token therefore resolves only while the registration it
 * was made for is live: every reuse of the slot gets a new odd generation,
 * so an event carrying an old token never reaches the new owner. Tokens are
 * never 0 (the generation in them is odd) and never UINTPTR_MAX (indexes
 * stay far below the all-ones value).
 *
 * Entry lifecycle (the owner's lock guards steps 1, 3 and 4):
 *   1. asyncio__slab_alloc()    pops a free entry (generation even); the
 *                               caller initialises its payload
 *   2. asyncio__slab_publish()  generation -> odd (release): tokens resolve
 *   3. asyncio__slab_retire()   generation -> even (release): tokens stop
 *                               resolving; the entry is NOT reusable yet
 *   4. asyncio__slab_release()  back on the free list (at the owner's safe
 *                               point, when no stale reference can remain)
 *
 * Thread-safety: alloc / release / close need the owner's lock (the slab
 * has none). publish / retire are atomic stores by the entry's single
 * owner. asyncio__slab_get() is lock-free and may run concurrently with
 * all of them.
 */
#ifndef ASYNCIO_UTIL_SLAB_H
#define ASYNCIO_UTIL_SLAB_H

#include <stdatomic.h>
#include <stdint.h>

#include "util/list.h"

/* Entries in page 0; page p holds PAGE0 << p. */
#define ASYNCIO__SLAB_PAGE0 32u
/* Pages: capacity is PAGE0 * (2^PAGES - 1), about 33 million entries. */
#define ASYNCIO__SLAB_PAGES 20u
/* Low token bits holding the index; the rest hold the generation. */
#define ASYNCIO__SLAB_INDEX_BITS (UINTPTR_MAX > 0xffffffffu ? 32u : 25u)

/* The header every entry starts with (embed it as the first member). */
typedef struct asyncio__slab_entry {
    _Atomic uint32_t generation; /* even: free or retired; odd: live */
    uint32_t index;              /* position in the slab, fixed */
    asyncio__list node;          /* free list, or the owner's lists (owner's lock) */
} asyncio__slab_entry;

typedef struct asyncio__slab {
    size_t entry_size;
    /* Called once per entry when its page is allocated / freed (may be NULL). */
    int (*init_entry)(asyncio__slab_entry *e);
    void (*destroy_entry)(asyncio__slab_entry *e);
    /* Page pointers: written under the owner's lock (release), read by get() (acquire). */
    _Atomic(unsigned char *) pages[ASYNCIO__SLAB_PAGES];
    unsigned npages;
    /*
     * Entries of the newest page from `fresh` on were never handed out and
     * are not initialised (init_entry not run; generation 0 from calloc, so
     * asyncio__slab_get never matches them). They are set up one at a time
     * when the free list is empty, so memory touched follows the peak of live
     * entries, not the doubled page size (resident set per connection).
     */
    uint32_t fresh;
    asyncio__list free; /* released entries, most recently released first */
} asyncio__slab;

/* Sets up an empty slab (no allocation). entry_size >= sizeof(asyncio__slab_entry). */
void asyncio__slab_init(asyncio__slab *s, size_t entry_size,
                        int (*init_entry)(asyncio__slab_entry *e),
                        void (*destroy_entry)(asyncio__slab_entry *e));

/*
 * Frees every page (calling destroy_entry on each entry). The caller makes
 * sure no entry is in use.
 */
void asyncio__slab_close(asyncio__slab *s);

/*
 * Step 1: takes a free entry, allocating a page if needed. Owner's lock.
 * Errors: ASYNCIO_ENOMEM, ASYNCIO_ENOSPC (every page in use), or what
 * init_entry returned.
 */
int asyncio__slab_alloc(asyncio__slab *s, asyncio__slab_entry **out);

/* Step 2: makes the entry's token resolve. Its payload must be ready. */
void asyncio__slab_publish(asyncio__slab_entry *e);

/* Step 3: stops the entry's token from resolving. */
void asyncio__slab_retire(asyncio__slab_entry *e);

/* Step 4: makes a retired entry reusable. Owner's lock; e must be unlinked. */
void asyncio__slab_release(asyncio__slab *s, asyncio__slab_entry *e);

/* The token of a published entry. */
uintptr_t asyncio__slab_token(const asyncio__slab_entry *e);

/*
 * The live entry the token names, or NULL if the token is malformed, names
 * no allocated page, or its generation is not the entry's current one.
 * Lock-free (acquire: pairs with publish, so the payload written before
 * publish is visible).
 */
asyncio__slab_entry *asyncio__slab_get(const asyncio__slab *s, uintptr_t token);

/* The entry at `index` whatever its state, or NULL (tests, debugging). */
asyncio__slab_entry *asyncio__slab_at(const asyncio__slab *s, uint32_t index);

#endif

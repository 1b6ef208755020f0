/*
 * Hierarchical timing wheel (see wheel.h for the invariants and
 * docs/timers.md for the design).
 *
 * advance() is a loop over two phases:
 *   1. process_slot  while the first occupied slot starts at or before now:
 *                    elapsed jumps to that slot's start, entries due exactly
 *                    then fire, the others cascade one or more levels down.
 *   2. enter_epoch   when the levels are empty, now lies in a later epoch and
 *                    the overflow list holds an entry whose epoch has begun:
 *                    elapsed jumps to that epoch's start and the overflow
 *                    list is redistributed.
 * Each step moves elapsed forward to a point no later than now, and every
 * entry is fired exactly when elapsed reaches its deadline, so the fired
 * list comes out in deadline order and nothing fires early.
 */
#include "time/wheel.h"

#include "internal.h"

#define SLOT_MASK  ((uint64_t)ASYNCIO__WHEEL_SLOTS - 1)
#define EPOCH_MASK (ASYNCIO__WHEEL_RANGE - 1)

ASYNCIO_STATIC_ASSERT(ASYNCIO__WHEEL_SLOTS == 64, "occupied bitfield is one uint64_t");
ASYNCIO_STATIC_ASSERT(ASYNCIO__WHEEL_SLOTS == 1 << ASYNCIO__WHEEL_SLOT_BITS, "slot bits");
ASYNCIO_STATIC_ASSERT(ASYNCIO__WHEEL_LEVELS < ASYNCIO__WHEEL_WHERE_DUE, "level tags");

/* Index of the lowest set bit; x != 0. */
static unsigned lowest_bit(uint64_t x)
{
    ASYNCIO_ASSERT(x != 0);
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned n = 0;
    while ((x & 1) == 0) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* log2 of the span of one slot at `level`: 6 * level. */
static unsigned slot_shift(unsigned level)
{
    return ASYNCIO__WHEEL_SLOT_BITS * level;
}

/*
 * The level for a deadline d > elapsed in the same epoch: the highest 6-bit
 * group in which the two differ.
 */
static unsigned level_for(uint64_t elapsed, uint64_t deadline)
{
    uint64_t diff = elapsed ^ deadline;
    unsigned level = ASYNCIO__WHEEL_LEVELS - 1;
    ASYNCIO_ASSERT(diff != 0 && diff < ASYNCIO__WHEEL_RANGE);
    while ((diff >> slot_shift(level)) == 0)
        level--;
    return level;
}

/* Start time of `slot` at `level`, in the level's span that contains elapsed. */
static uint64_t slot_start(uint64_t elapsed, unsigned level, unsigned slot)
{
    unsigned shift = slot_shift(level);
    uint64_t level_span_mask = (UINT64_C(1) << (shift + ASYNCIO__WHEEL_SLOT_BITS)) - 1;
    return (elapsed & ~level_span_mask) + ((uint64_t)slot << shift);
}

/*
 * Files an unlinked entry by its deadline relative to elapsed: the due list,
 * a slot, or the overflow list.
 */
static void place(asyncio__wheel *w, asyncio__timer_entry *e)
{
    uint64_t d = e->deadline;
    if (d <= w->elapsed) {
        e->level = ASYNCIO__WHEEL_WHERE_DUE;
        asyncio__list_push_back(&w->due, &e->node);
    } else if (((d ^ w->elapsed) & ~EPOCH_MASK) != 0) {
        e->level = ASYNCIO__WHEEL_WHERE_OVERFLOW;
        asyncio__list_push_back(&w->overflow, &e->node);
        if (d < w->overflow_min)
            w->overflow_min = d;
    } else {
        unsigned level = level_for(w->elapsed, d);
        unsigned slot = (unsigned)((d >> slot_shift(level)) & SLOT_MASK);
        asyncio__wheel_level *lv = &w->levels[level];
        e->level = (uint8_t)level;
        e->slot = (uint8_t)slot;
        asyncio__list_push_back(&lv->slots[slot], &e->node);
        lv->occupied |= UINT64_C(1) << slot;
        if (level == 1)
            w->count1[slot]++;
    }
}

/* The level-1 slot after elapsed's, whose entries the bank stages; 64 if none (span end). */
static unsigned next1_slot(const asyncio__wheel *w)
{
    return (unsigned)((w->elapsed >> ASYNCIO__WHEEL_SLOT_BITS) & SLOT_MASK) + 1;
}

/* Moves every element of `from` to the tail of `to`, in order; `from` ends empty. */
static void splice_tail(asyncio__list *to, asyncio__list *from)
{
    if (asyncio__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    asyncio__list_init(from);
}

/* Pops each element of `from` (in order) and either fires it or files it again. */
static size_t refile_all(asyncio__wheel *w, asyncio__list *from, asyncio__list *fired)
{
    size_t n = 0;
    asyncio__list *node;
    while ((node = asyncio__list_first(from)) != NULL) {
        asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
        asyncio__list_remove(node);
        if (e->deadline <= w->elapsed) {
            e->level = ASYNCIO__WHEEL_WHERE_NONE;
            asyncio__list_push_back(fired, node);
            n++;
        } else {
            place(w, e);
            w->moves++;
        }
    }
    return n;
}

/* Finds the first occupied slot; false if every level is empty. */
static bool first_slot(const asyncio__wheel *w, unsigned *level, unsigned *slot, uint64_t *start)
{
    for (unsigned k = 0; k < ASYNCIO__WHEEL_LEVELS; k++) {
        uint64_t occ = w->levels[k].occupied;
        if (occ == 0)
            continue;
        /*
         * By I1 every occupied slot is ahead of the current one, and a lower
         * level's slots all lie inside the current slot of every higher
         * level, so the first non-empty level holds the earliest slot.
         */
        *level = k;
        *slot = lowest_bit(occ);
        *start = slot_start(w->elapsed, k, *slot);
        return true;
    }
    return false;
}

/*
 * elapsed has just reached the start of the level-1 slot the bank staged:
 * level 0 is empty, so each bank list becomes its level-0 list in O(1);
 * bank slot 0 holds deadlines equal to elapsed, which fire. Returns the
 * number fired. The bank's entries were staged in list order, before any
 * still on the level-1 list, so equal deadlines keep their insertion order.
 */
static size_t unstage(asyncio__wheel *w, asyncio__list *fired)
{
    asyncio__wheel_level *l0 = &w->levels[0];
    size_t n = 0;

    ASYNCIO_ASSERT(l0->occupied == 0 && (w->elapsed & SLOT_MASK) == 0);
    if (w->staged.occupied & 1) {
        asyncio__list *node;
        for (node = w->staged.slots[0].next; node != &w->staged.slots[0]; node = node->next) {
            asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
            ASYNCIO_ASSERT(e->deadline == w->elapsed);
            e->level = ASYNCIO__WHEEL_WHERE_NONE;
            n++;
        }
        splice_tail(fired, &w->staged.slots[0]);
    }
    for (uint64_t occ = w->staged.occupied & ~UINT64_C(1); occ != 0; occ &= occ - 1) {
        unsigned k = lowest_bit(occ);
        splice_tail(&l0->slots[k], &w->staged.slots[k]);
    }
    l0->occupied = w->staged.occupied & ~UINT64_C(1);
    w->staged.occupied = 0;
    return n;
}

/*
 * Moves a share of the next level-1 slot's entries into the bank: enough
 * that the whole slot is staged by the time elapsed reaches it if advance
 * runs at least once per remaining millisecond. O(entries moved).
 */
static void stage_some(asyncio__wheel *w)
{
    unsigned s1 = next1_slot(w);
    if (s1 >= ASYNCIO__WHEEL_SLOTS || w->count1[s1] == 0)
        return;
    asyncio__list *list = &w->levels[1].slots[s1];
    uint64_t left_ms = slot_start(w->elapsed, 1, s1) - w->elapsed; /* 1..64 */
    uint32_t quota = (uint32_t)((w->count1[s1] + left_ms - 1) / left_ms);
    while (quota-- > 0) {
        asyncio__list *node = asyncio__list_first(list);
        asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
        unsigned k = (unsigned)(e->deadline & SLOT_MASK);
        asyncio__list_remove(node);
        w->count1[s1]--;
        w->moves++;
        e->level = 0;
        e->slot = (uint8_t)k;
        asyncio__list_push_back(&w->staged.slots[k], node);
        w->staged.occupied |= UINT64_C(1) << k;
    }
    /* The level-1 bit stays set: I2 counts the bank as part of slot s1. */
}

/* Phase 1: elapsed reaches the start of (level, slot); fire or cascade its entries. */
static size_t process_slot(asyncio__wheel *w, unsigned level, unsigned slot, uint64_t start,
                           asyncio__list *fired)
{
    asyncio__wheel_level *lv = &w->levels[level];
    asyncio__list taken;

    size_t n = 0;

    ASYNCIO_ASSERT(start > w->elapsed);
    /* A non-empty bank belongs to the next level-1 slot: nothing later comes first. */
    ASYNCIO_ASSERT(w->staged.occupied == 0 || level == 0 || (level == 1 && slot == next1_slot(w)));
    w->elapsed = start;
    asyncio__list_init(&taken);
    splice_tail(&taken, &lv->slots[slot]);
    lv->occupied &= ~(UINT64_C(1) << slot);
    if (level == 1) {
        w->count1[slot] = 0;
        if (w->staged.occupied != 0)
            n += unstage(w, fired);
    }
    /* Deadlines lie in [start, start + 64^level): each fires now or drops a level. */
    return n + refile_all(w, &taken, fired);
}

static bool levels_empty(const asyncio__wheel *w)
{
    for (unsigned k = 0; k < ASYNCIO__WHEEL_LEVELS; k++) {
        if (w->levels[k].occupied != 0)
            return false;
    }
    return true;
}

/* Smallest deadline on the (non-empty) overflow list. O(overflow). */
static uint64_t scan_overflow_min(const asyncio__wheel *w)
{
    uint64_t min = UINT64_MAX;
    for (const asyncio__list *n = w->overflow.next; n != &w->overflow; n = n->next) {
        const asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(n, asyncio__timer_entry, node);
        if (e->deadline < min)
            min = e->deadline;
    }
    return min;
}

/*
 * Phase 2, once phase 1 has nothing left to do before now: if now lies in a
 * later epoch (then the levels are empty) and the earliest overflow
 * deadline's epoch has begun, jumps to that epoch's start and redistributes
 * the overflow list. Returns false if there is nothing to do.
 */
static bool enter_epoch(asyncio__wheel *w, uint64_t now, asyncio__list *fired, size_t *n)
{
    asyncio__list taken;
    uint64_t start;

    if (asyncio__list_empty(&w->overflow) || ((now ^ w->elapsed) & ~EPOCH_MASK) == 0)
        return false;
    /* overflow_min is a lower bound (I4): if its epoch has not begun, none has. */
    if ((w->overflow_min & ~EPOCH_MASK) > now)
        return false;
    /* Refresh the bound: it may be stale-low after a cancel. */
    w->overflow_min = scan_overflow_min(w);
    start = w->overflow_min & ~EPOCH_MASK;
    if (start > now)
        return false;
    /* Every slot lies in elapsed's epoch, before now: phase 1 has emptied them. */
    ASYNCIO_ASSERT(start > w->elapsed && levels_empty(w));
    w->elapsed = start;
    asyncio__list_init(&taken);
    splice_tail(&taken, &w->overflow);
    w->overflow_min = UINT64_MAX; /* place() lowers it again */
    *n += refile_all(w, &taken, fired);
    return true;
}

void asyncio__wheel_init(asyncio__wheel *w, uint64_t now_ms)
{
    w->elapsed = now_ms;
    asyncio__list_init(&w->due);
    asyncio__list_init(&w->overflow);
    w->overflow_min = UINT64_MAX;
    for (unsigned k = 0; k < ASYNCIO__WHEEL_LEVELS; k++) {
        w->levels[k].occupied = 0;
        for (unsigned s = 0; s < ASYNCIO__WHEEL_SLOTS; s++)
            asyncio__list_init(&w->levels[k].slots[s]);
    }
    w->staged.occupied = 0;
    for (unsigned s = 0; s < ASYNCIO__WHEEL_SLOTS; s++) {
        asyncio__list_init(&w->staged.slots[s]);
        w->count1[s] = 0;
    }
    w->moves = 0;
}

void asyncio__timer_entry_init(asyncio__timer_entry *e)
{
    e->deadline = 0;
    asyncio__list_node_init(&e->node);
    e->level = ASYNCIO__WHEEL_WHERE_NONE;
    e->slot = 0;
}

bool asyncio__timer_entry_linked(const asyncio__timer_entry *e)
{
    return asyncio__list_linked(&e->node);
}

void asyncio__wheel_insert(asyncio__wheel *w, asyncio__timer_entry *e, uint64_t deadline)
{
    ASYNCIO_ASSERT(!asyncio__list_linked(&e->node));
    e->deadline = deadline;
    place(w, e);
}

void asyncio__wheel_cancel(asyncio__wheel *w, asyncio__timer_entry *e)
{
    unsigned level = e->level;

    if (!asyncio__list_linked(&e->node))
        return;
    asyncio__list_remove(&e->node);
    e->level = ASYNCIO__WHEEL_WHERE_NONE;
    switch (level) {
    case ASYNCIO__WHEEL_WHERE_DUE:
    case ASYNCIO__WHEEL_WHERE_NONE:
        /* The due list or the caller's fired list: unlinking was all. */
        break;
    case ASYNCIO__WHEEL_WHERE_OVERFLOW:
        /* overflow_min may stay stale-low (I4), unless nothing is left. */
        if (asyncio__list_empty(&w->overflow))
            w->overflow_min = UINT64_MAX;
        break;
    case 0: {
        /* A level-0 slot or the bank's slot of the same number: refresh both bits. */
        uint64_t bit = UINT64_C(1) << e->slot;
        if (asyncio__list_empty(&w->levels[0].slots[e->slot]))
            w->levels[0].occupied &= ~bit;
        if ((w->staged.occupied & bit) && asyncio__list_empty(&w->staged.slots[e->slot])) {
            w->staged.occupied &= ~bit;
            unsigned s1 = next1_slot(w);
            if (w->staged.occupied == 0 && asyncio__list_empty(&w->levels[1].slots[s1]))
                w->levels[1].occupied &= ~(UINT64_C(1) << s1);
        }
        break;
    }
    default:
        /* A slot: keep I2 by clearing the occupied bit when it empties. */
        ASYNCIO_ASSERT(level < ASYNCIO__WHEEL_LEVELS && e->slot < ASYNCIO__WHEEL_SLOTS);
        if (level == 1) {
            w->count1[e->slot]--;
            if (e->slot == next1_slot(w) && w->staged.occupied != 0)
                break; /* the bank keeps the slot occupied */
        }
        if (asyncio__list_empty(&w->levels[level].slots[e->slot]))
            w->levels[level].occupied &= ~(UINT64_C(1) << e->slot);
        break;
    }
}

uint64_t asyncio__wheel_next_expiration(const asyncio__wheel *w)
{
    unsigned level, slot;
    uint64_t start;

    if (!asyncio__list_empty(&w->due))
        return w->elapsed;
    if (first_slot(w, &level, &slot, &start))
        return start;
    if (!asyncio__list_empty(&w->overflow)) {
        /* The start of the first epoch that may hold an overflow deadline (I4). */
        ASYNCIO_ASSERT((w->overflow_min & ~EPOCH_MASK) > w->elapsed);
        return w->overflow_min & ~EPOCH_MASK;
    }
    return UINT64_MAX;
}

size_t asyncio__wheel_advance(asyncio__wheel *w, uint64_t now_ms, asyncio__list *fired)
{
    size_t n = 0;
    unsigned level, slot;
    uint64_t start;

    /* Already due: deadline <= elapsed, fire before anything later. */
    n += refile_all(w, &w->due, fired);
    if (now_ms <= w->elapsed)
        return n;
    for (;;) {
        if (first_slot(w, &level, &slot, &start) && start <= now_ms) {
            n += process_slot(w, level, slot, start, fired);
            continue;
        }
        if (enter_epoch(w, now_ms, fired, &n))
            continue;
        break;
    }
    /* Everything left is due after now_ms, so I1..I4 hold for the new elapsed. */
    ASYNCIO_ASSERT(w->staged.occupied == 0 ||
                   ((now_ms ^ w->elapsed) >> ASYNCIO__WHEEL_SLOT_BITS) == 0);
    w->elapsed = now_ms;
    stage_some(w);
    return n;
}

bool asyncio__wheel_is_empty(const asyncio__wheel *w)
{
    return asyncio__list_empty(&w->due) && asyncio__list_empty(&w->overflow) && levels_empty(w);
}

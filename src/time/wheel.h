/*
 * Hierarchical timing wheel: the data structure under the timer driver.
 *
 * What it owns. The wheel owns the intrusive links of every timer entry
 * inserted into it, and nothing else: entries are embedded by their users
 * (sleep, interval, timeout futures), the wheel never allocates and never
 * calls back. Due entries are handed to the caller on a list the caller
 * owns (advance's `fired`), and the caller fires them one by one.
 *
 * Time. All times are uint64_t milliseconds since the clock's origin. The
 * wheel's notion of "now" is `elapsed`; it only moves forward, and only in
 * asyncio__wheel_advance().
 *
 * Shape: 6 levels x 64 slots, 1 ms resolution (docs/timers.md has pictures).
 *
 *   level k, slot s  holds deadlines d with  d >> (6 * (k + 1)) == elapsed >> (6 * (k + 1))
 *                                      and  (d >> (6 * k)) & 63 == s
 *   slot span        64^k ms  (level 0: 1 ms, level 5: 2^30 ms ~ 12.4 days)
 *   level span       64^(k+1) ms  (level 5: 2^36 ms ~ 795 days, the "epoch")
 *
 * An entry with deadline d > elapsed goes to the level of the highest 6-bit
 * group in which d and elapsed differ (level = (63 - clz((d ^ elapsed) | 63)) / 6)
 * when d lies in the same 2^36 ms epoch as elapsed, otherwise to the
 * overflow list. An entry with d <= elapsed goes to the due list.
 *
 * Invariants (between calls):
 *   I1  Every entry on level k, slot s has a deadline d > elapsed in the slot
 *       described above, and s > (elapsed >> 6k) & 63: occupied slots always
 *       lie strictly ahead of the current position, so no slot ever "wraps".
 *   I2  Bit s of levels[k].occupied is set exactly when slot s is non-empty.
 *   I3  Entries on the overflow list have deadlines in a later epoch than
 *       elapsed; entries on the due list have deadlines <= elapsed.
 *   I4  While the overflow list is non-empty, overflow_min is <= each of its
 *       deadlines and lies in a later epoch than elapsed (insert lowers it,
 *       cancel leaves it, advance recomputes it when it scans the list).
 *   I5  An entry's `node` has NULL links exactly when it is in no list
 *       (neither in the wheel nor on a caller's fired list).
 *
 * Never early. A slot is processed when elapsed reaches the slot's start;
 * its entries whose deadline equals that start fire, the others cascade to
 * a lower level relative to the new elapsed. An entry is only ever moved to
 * `fired` when its deadline <= elapsed <= the `now` passed to advance.
 *
 * Spread cascading. With many timers, one level-1 slot (64 ms) can hold
 * tens of thousands of entries; cascading them all when elapsed reaches the
 * slot would stall the thread for milliseconds and make the first timers of
 * that slot late. So every advance also moves a share of the NEXT level-1
 * slot's entries (ceil(count / ms left before it starts)) into a staging
 * bank of 64 level-0 lists; when elapsed reaches that slot the bank is
 * spliced into level 0 in O(64) and only the rest is refiled. The level-1
 * slot's occupied bit stays set while its list or the bank is non-empty
 * (I2 counts the bank as part of the slot), and the bank is empty whenever
 * elapsed is in another level-1 slot. If no advance happens before the slot
 * starts (the thread slept: no earlier timer), the slot is cascaded whole,
 * which is then cheap relative to nothing having happened.
 *
 * Complexity. Insert and cancel are O(1). Each entry cascades at most 5
 * times before it fires, so advance is O(fired + cascaded), independent of
 * how far time jumps, plus a scan of the overflow list when time crosses
 * into a new 2^36 ms epoch that holds an overflow deadline (a once-per-795-
 * days event).
 *
 * Thread-safety: none. A wheel and the entries in it belong to one thread
 * (the timer driver's owner); every function here must be called from it.
 */
#ifndef ASYNCIO_TIME_WHEEL_H
#define ASYNCIO_TIME_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asyncio/time.h"
#include "util/list.h"

#define ASYNCIO__WHEEL_LEVELS    6
#define ASYNCIO__WHEEL_SLOTS     64
#define ASYNCIO__WHEEL_SLOT_BITS 6
/* Milliseconds covered by the whole wheel (one epoch): 64^6 = 2^36. */
#define ASYNCIO__WHEEL_RANGE (UINT64_C(1) << (ASYNCIO__WHEEL_SLOT_BITS * ASYNCIO__WHEEL_LEVELS))

/*
 * A timer entry, embedded in its user's struct. It is the public
 * asyncio_timer_entry (include/asyncio/time.h: futures embed the real type).
 *   deadline  read-only for users: set by insert.
 *   node      private: links the entry into a slot, the due or overflow list,
 *             or (after advance) the caller's fired list.
 *   level     private: 0..5 for a wheel level, or one of the
 *             ASYNCIO__WHEEL_WHERE_* values below.
 *   slot      private: the slot within `level`, when level is 0..5.
 */
typedef asyncio_timer_entry asyncio__timer_entry;

/* Values of asyncio__timer_entry.level that are not wheel levels. */
enum {
    ASYNCIO__WHEEL_WHERE_DUE = 0xFD,      /* on the due list */
    ASYNCIO__WHEEL_WHERE_OVERFLOW = 0xFE, /* on the overflow list */
    ASYNCIO__WHEEL_WHERE_NONE = 0xFF      /* unlinked, or on a caller's fired list */
};

typedef struct asyncio__wheel_level {
    uint64_t occupied; /* bit s set <=> slots[s] non-empty */
    asyncio__list slots[ASYNCIO__WHEEL_SLOTS];
} asyncio__wheel_level;

typedef struct asyncio__wheel {
    uint64_t elapsed;       /* the wheel's current time, ms */
    asyncio__list due;      /* deadline <= elapsed, returned by the next advance */
    asyncio__list overflow; /* deadline in a later 2^36 ms epoch than elapsed */
    uint64_t overflow_min;  /* <= every overflow deadline (may be stale-low after cancel) */
    asyncio__wheel_level levels[ASYNCIO__WHEEL_LEVELS];
    /*
     * The staging bank (see "Spread cascading" above): level-0 slots for the
     * NEXT level-1 slot, filled a little on every advance. Entries here are
     * tagged level 0 with their slot, exactly as they will be after the swap.
     */
    asyncio__wheel_level staged;
    uint32_t count1[ASYNCIO__WHEEL_SLOTS]; /* entries on each level-1 slot list */
    uint64_t moves; /* entries advance cascaded or staged so far, firing excluded (tests) */
} asyncio__wheel;

/*
 * Initialises an empty wheel whose current time is now_ms. Never fails.
 * There is no _close: the wheel owns no resources; it must be empty (every
 * entry cancelled or fired) before its memory is reused.
 */
void asyncio__wheel_init(asyncio__wheel *w, uint64_t now_ms);

/* Initialises an entry as unlinked (in no wheel). Call once before first use. */
void asyncio__timer_entry_init(asyncio__timer_entry *e);

/*
 * True while the entry is in a wheel or on a fired list that has not yet
 * been consumed; false after init, cancel, or once the caller has removed it
 * from its fired list.
 */
bool asyncio__timer_entry_linked(const asyncio__timer_entry *e);

/*
 * Inserts an unlinked entry to fire at `deadline` (ms; any value, UINT64_MAX
 * included: it then fires only when advance is called with UINT64_MAX). A
 * deadline <= elapsed puts the entry on the due list: the next advance
 * returns it. Insert never fires anything itself. O(1).
 * Precondition (debug-asserted): the entry is not linked; to move a timer,
 * cancel it first.
 */
void asyncio__wheel_insert(asyncio__wheel *w, asyncio__timer_entry *e, uint64_t deadline);

/*
 * Unlinks the entry synchronously, wherever it is: a slot (clearing the
 * slot's occupied bit when it empties), the due or overflow list, or the
 * fired list advance put it on (so a callback can cancel a sibling that
 * fired in the same batch before it runs). Idempotent: cancelling an
 * unlinked entry does nothing. O(1).
 */
void asyncio__wheel_cancel(asyncio__wheel *w, asyncio__timer_entry *e);

/*
 * The earliest time at which an advance could move something to `fired`,
 * for computing the poller's timeout: elapsed if the due list is non-empty,
 * else the start of the first occupied slot (which may be earlier than any
 * deadline in it: reaching it cascades; for level 0 it is the deadline),
 * else the start of the epoch of overflow_min if only the overflow list
 * holds entries, else UINT64_MAX. Never later than the earliest deadline in the wheel. O(1).
 */
uint64_t asyncio__wheel_next_expiration(const asyncio__wheel *w);

/*
 * Moves every entry with deadline <= now_ms onto the tail of `fired` (an
 * initialised list head owned by the caller), then sets elapsed = now_ms.
 * Order: the due list first (insertion order), then the rest by deadline;
 * entries with equal deadlines keep their insertion order. Higher-level
 * entries cascade down as their slots come due. Returns how many entries
 * were moved.
 *
 * Time never moves backwards: with now_ms < elapsed, elapsed stays put and
 * only the due list (deadlines <= elapsed) is returned.
 *
 * Entries on `fired` are still linked (level NONE). The caller pops them one
 * at a time from the head and fires each; a callback may insert or cancel
 * any timer, including one still waiting on `fired` (cancel unlinks it), so
 * the caller must not hold a saved `next` pointer across a callback.
 */
size_t asyncio__wheel_advance(asyncio__wheel *w, uint64_t now_ms, asyncio__list *fired);

/* True when no entry is in the wheel (slots, due list, overflow list). O(1). */
bool asyncio__wheel_is_empty(const asyncio__wheel *w);

#endif

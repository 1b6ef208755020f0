/*
 * Hierarchical timing wheel (src/time/wheel.c).
 *
 * Time is mocked: it is just the numbers passed to asyncio__wheel_advance().
 * Every test checks the two promises that matter to the timer driver: an
 * entry never fires before its deadline, and it fires at the first advance
 * that reaches its deadline.
 */
#include "support.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "time/wheel.h"

#define MS_PER_DAY (UINT64_C(24) * 60 * 60 * 1000)
#define POW64(k)   (UINT64_C(1) << (6 * (k)))

/* A timer as its user would embed it. */
typedef struct tmr {
    asyncio__timer_entry entry;
    uint64_t seq; /* insertion order, for the equal-deadline rule */
    size_t fired; /* how many times it came out of advance */
    bool active;  /* reference model: in the wheel */
    bool pending; /* on the fired list, not yet popped */
} tmr;

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed;
}

/* splitmix64 */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. Modulo bias is irrelevant here. */
static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t next_seq;

static void tmr_init(tmr *t)
{
    memset(t, 0, sizeof(*t));
    asyncio__timer_entry_init(&t->entry);
}

static void tmr_insert(asyncio__wheel *w, tmr *t, uint64_t deadline)
{
    asyncio__wheel_insert(w, &t->entry, deadline);
    assert_true(asyncio__timer_entry_linked(&t->entry));
    assert_int_equal(t->entry.deadline, deadline);
    t->seq = next_seq++;
    t->active = true;
}

static tmr *tmr_of(asyncio__list *node)
{
    asyncio__timer_entry *e = ASYNCIO_CONTAINER_OF(node, asyncio__timer_entry, node);
    return ASYNCIO_CONTAINER_OF(e, tmr, entry);
}

/* Pops the head of a fired list, as a driver does before running a callback. */
static tmr *pop_fired(asyncio__list *fired)
{
    asyncio__list *node = asyncio__list_first(fired);
    if (node == NULL)
        return NULL;
    asyncio__list_remove(node);
    return tmr_of(node);
}

/*
 * Advances to `now` and pops everything that fired, checking that each
 * entry is due (deadline <= now), that deadlines come out in order after
 * those that were already due and that equal deadlines keep insertion
 * order. Returns the count; `out` (if non-NULL) receives the entries.
 */
static size_t advance_check(asyncio__wheel *w, uint64_t now, tmr **out, size_t cap)
{
    asyncio__list fired;
    uint64_t before = w->elapsed;
    uint64_t last_deadline = 0;
    uint64_t last_seq = 0;
    bool any = false;
    size_t n = 0, moved;
    tmr *t;

    asyncio__list_init(&fired);
    moved = asyncio__wheel_advance(w, now, &fired);
    assert_int_equal(w->elapsed, now > before ? now : before);
    while ((t = pop_fired(&fired)) != NULL) {
        uint64_t d = t->entry.deadline;
        assert_false(asyncio__timer_entry_linked(&t->entry));
        assert_true(d <= w->elapsed);
        /* Already-due entries (d <= before) first, in insertion order; then by deadline. */
        if (any && d <= before) {
            assert_true(last_deadline <= before);
            assert_true(t->seq > last_seq);
        } else if (any) {
            assert_true(last_deadline <= d);
            if (last_deadline == d)
                assert_true(t->seq > last_seq);
        }
        any = true;
        last_deadline = d;
        last_seq = t->seq;
        t->fired++;
        t->active = false;
        if (out != NULL && n < cap)
            out[n] = t;
        n++;
    }
    assert_int_equal(n, moved);
    return n;
}

/* Like advance_check but fails unless exactly `want` entries fire. */
static void advance_expect(asyncio__wheel *w, uint64_t now, size_t want)
{
    assert_int_equal(advance_check(w, now, NULL, 0), want);
}

/* ---- exact firing through every level --------------------------------- */

/* clang-format off */
static const uint64_t level_deltas[] = {
    1, 2, 63, 64, 65, 127, 4095, 4096, 4097,
    POW64(3) - 1, POW64(3) + 7, POW64(4) + 1, POW64(5) - 1, POW64(5) + 123, POW64(5) * 63 + 5,
    POW64(6) - 2, POW64(6) - 1, POW64(6), POW64(6) + 1, POW64(6) * 3 + 99,
};
/* clang-format on */

static const uint64_t start_times[] = {
    0, 12345, (UINT64_C(1) << 30) - 5, POW64(6) - 3, POW64(6) * 7 + POW64(5) * 63 + 17,
};

/* advance(deadline - 1) fires nothing; advance(deadline) fires it. */
static void test_wheel_fires_at_deadline_never_one_ms_early(void **state)
{
    (void)state;
    for (size_t s = 0; s < ASYNCIO_ARRAY_LEN(start_times); s++) {
        for (size_t i = 0; i < ASYNCIO_ARRAY_LEN(level_deltas); i++) {
            asyncio__wheel w;
            tmr t;
            uint64_t start = start_times[s];
            uint64_t d = start + level_deltas[i];

            asyncio__wheel_init(&w, start);
            tmr_init(&t);
            tmr_insert(&w, &t, d);
            assert_true(asyncio__wheel_next_expiration(&w) <= d);
            advance_expect(&w, d - 1, 0);
            assert_true(asyncio__timer_entry_linked(&t.entry));
            assert_int_equal(asyncio__wheel_next_expiration(&w), d);
            advance_expect(&w, d, 1);
            assert_int_equal(t.fired, 1);
            assert_true(asyncio__wheel_is_empty(&w));
            assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX);
        }
    }
}

/*
 * Same deadlines, but the driver follows next_expiration step by step, so
 * the entry cascades through every level on the way down. Every step must
 * be <= the deadline and fire nothing until the deadline itself.
 */
static void test_wheel_cascades_through_every_level_following_next_expiration(void **state)
{
    (void)state;
    for (size_t s = 0; s < ASYNCIO_ARRAY_LEN(start_times); s++) {
        for (size_t i = 0; i < ASYNCIO_ARRAY_LEN(level_deltas); i++) {
            asyncio__wheel w;
            tmr t;
            uint64_t start = start_times[s];
            uint64_t d = start + level_deltas[i];
            size_t steps = 0;

            asyncio__wheel_init(&w, start);
            tmr_init(&t);
            tmr_insert(&w, &t, d);
            for (;;) {
                uint64_t next = asyncio__wheel_next_expiration(&w);
                assert_true(next > w.elapsed);
                assert_true(next <= d);
                if (next == d)
                    break;
                advance_expect(&w, next, 0);
                steps++;
                assert_true(steps <= 8);
            }
            advance_expect(&w, d, 1);
            assert_true(asyncio__wheel_is_empty(&w));
        }
    }
}

/* ---- many random timers ----------------------------------------------- */

#define MANY 100000
static tmr many[MANY];

/* 100,000 timers within 1 s, advancing 1 ms at a time: each fires exactly at its deadline. */
static void test_wheel_random_deadlines_within_1s_fire_exactly_on_time(void **state)
{
    asyncio__wheel w;
    uint64_t start = 987654321;
    size_t total = 0;
    (void)state;

    rng_seed(1);
    asyncio__wheel_init(&w, start);
    for (size_t i = 0; i < MANY; i++) {
        tmr_init(&many[i]);
        tmr_insert(&w, &many[i], start + 1 + rng_below(1000));
    }
    for (uint64_t now = start + 1; now <= start + 1000; now++) {
        static tmr *out[MANY];
        uint64_t next = asyncio__wheel_next_expiration(&w);
        size_t n;

        if (!asyncio__wheel_is_empty(&w))
            assert_true(next >= now);
        n = advance_check(&w, now, out, MANY);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out[i]->entry.deadline, now);
        if (n > 0)
            assert_int_equal(next, now);
        total += n;
    }
    assert_int_equal(total, MANY);
    assert_true(asyncio__wheel_is_empty(&w));
    for (size_t i = 0; i < MANY; i++)
        assert_int_equal(many[i].fired, 1);
}

/*
 * 100,000 timers within 10 days, advanced in random jumps: each fires at
 * the first advance >= its deadline and never before.
 */
static void test_wheel_random_deadlines_within_10_days_fire_at_first_advance_after(void **state)
{
    asyncio__wheel w;
    uint64_t start = (UINT64_C(1) << 33) + 77;
    uint64_t now = start;
    size_t total = 0;
    (void)state;

    rng_seed(2);
    asyncio__wheel_init(&w, start);
    for (size_t i = 0; i < MANY; i++) {
        tmr_init(&many[i]);
        tmr_insert(&w, &many[i], start + 1 + rng_below(10 * MS_PER_DAY));
    }
    while (!asyncio__wheel_is_empty(&w)) {
        static tmr *out[MANY];
        uint64_t prev = now;
        size_t n;

        assert_true(asyncio__wheel_next_expiration(&w) > prev);
        now += 1 + rng_below(rng_below(4) == 0 ? 50 * 1000 * 1000 : 5000);
        n = advance_check(&w, now, out, MANY);
        for (size_t i = 0; i < n; i++) {
            assert_true(out[i]->entry.deadline > prev);
            assert_true(out[i]->entry.deadline <= now);
        }
        total += n;
    }
    assert_int_equal(total, MANY);
    for (size_t i = 0; i < MANY; i++)
        assert_int_equal(many[i].fired, 1);
}

/* Timers over 30 days, one 10-day jump: everything due fires, nothing else. */
static void test_wheel_big_jump_fires_everything_due_and_nothing_else(void **state)
{
    asyncio__wheel w;
    uint64_t start = 5;
    uint64_t now = start + 10 * MS_PER_DAY;
    size_t due = 0;
    (void)state;

    rng_seed(3);
    asyncio__wheel_init(&w, start);
    for (size_t i = 0; i < 20000; i++) {
        uint64_t d = start + 1 + rng_below(30 * MS_PER_DAY);
        tmr_init(&many[i]);
        tmr_insert(&w, &many[i], d);
        due += d <= now;
    }
    advance_expect(&w, now, due);
    for (size_t i = 0; i < 20000; i++) {
        assert_int_equal(many[i].fired, many[i].entry.deadline <= now ? 1 : 0);
        assert_int_equal(asyncio__timer_entry_linked(&many[i].entry), many[i].entry.deadline > now);
    }
    advance_expect(&w, now + 20 * MS_PER_DAY, 20000 - due);
    assert_true(asyncio__wheel_is_empty(&w));
}

/* ---- equal deadlines -------------------------------------------------- */

/*
 * Entries sharing a deadline fire in one advance in insertion order, even
 * when inserted at different times (and so at different levels first).
 */
static void test_wheel_equal_deadlines_fire_together_in_insertion_order(void **state)
{
    asyncio__wheel w;
    uint64_t d = 3 * POW64(4) + 11;
    static tmr *out[1000];
    (void)state;

    asyncio__wheel_init(&w, 0);
    for (size_t i = 0; i < 1000; i++) {
        tmr_init(&many[i]);
        if (i % 100 == 0 && i > 0)
            advance_expect(&w, d * i / 1000, 0);
        tmr_insert(&w, &many[i], d);
    }
    advance_expect(&w, d - 1, 0);
    assert_int_equal(advance_check(&w, d, out, 1000), 1000);
    for (size_t i = 0; i < 1000; i++)
        assert_ptr_equal(out[i], &many[i]);
}

/* ---- cancel ------------------------------------------------------------ */

static void test_wheel_cancel_before_firing_never_fires(void **state)
{
    asyncio__wheel w;
    tmr a, b;
    (void)state;

    asyncio__wheel_init(&w, 100);
    tmr_init(&a);
    tmr_init(&b);
    tmr_insert(&w, &a, 110);
    tmr_insert(&w, &b, 110);
    asyncio__wheel_cancel(&w, &a.entry);
    assert_false(asyncio__timer_entry_linked(&a.entry));
    advance_expect(&w, 110, 1);
    assert_int_equal(a.fired, 0);
    assert_int_equal(b.fired, 1);
    advance_expect(&w, 10000, 0);
}

/* Cancelling the only entry of a high level clears its occupied bit. */
static void test_wheel_cancel_in_higher_level_empties_the_wheel(void **state)
{
    (void)state;
    for (unsigned level = 0; level < ASYNCIO__WHEEL_LEVELS; level++) {
        asyncio__wheel w;
        tmr t;
        uint64_t d = 1000 + POW64(level) * 2;

        asyncio__wheel_init(&w, 1000);
        tmr_init(&t);
        tmr_insert(&w, &t, d);
        assert_int_equal(t.entry.level, level);
        assert_true(w.levels[level].occupied != 0);
        asyncio__wheel_cancel(&w, &t.entry);
        assert_int_equal(w.levels[level].occupied, 0);
        assert_true(asyncio__wheel_is_empty(&w));
        assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX);
        advance_expect(&w, d + POW64(level), 0);
    }
}

/* The slot keeps its bit while another entry remains in it. */
static void test_wheel_cancel_one_of_two_in_a_slot_keeps_the_other(void **state)
{
    asyncio__wheel w;
    tmr a, b;
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&a);
    tmr_init(&b);
    tmr_insert(&w, &a, POW64(2) * 5 + 1);
    tmr_insert(&w, &b, POW64(2) * 5 + 2);
    asyncio__wheel_cancel(&w, &a.entry);
    assert_false(asyncio__wheel_is_empty(&w));
    assert_true(asyncio__wheel_next_expiration(&w) <= POW64(2) * 5 + 2);
    advance_expect(&w, POW64(2) * 5 + 1, 0);
    advance_expect(&w, POW64(2) * 5 + 2, 1);
    assert_int_equal(b.fired, 1);
}

static void test_wheel_cancel_twice_is_harmless(void **state)
{
    asyncio__wheel w;
    tmr t;
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&t);
    asyncio__wheel_cancel(&w, &t.entry); /* never inserted */
    tmr_insert(&w, &t, POW64(3) + 1);
    asyncio__wheel_cancel(&w, &t.entry);
    asyncio__wheel_cancel(&w, &t.entry);
    assert_false(asyncio__timer_entry_linked(&t.entry));
    assert_true(asyncio__wheel_is_empty(&w));
    advance_expect(&w, POW64(4), 0);
}

static void test_wheel_cancel_after_fired_is_harmless(void **state)
{
    asyncio__wheel w;
    tmr t, other;
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&t);
    tmr_init(&other);
    tmr_insert(&w, &t, 5);
    tmr_insert(&w, &other, 5 + POW64(1));
    advance_expect(&w, 5, 1);
    asyncio__wheel_cancel(&w, &t.entry);
    asyncio__wheel_cancel(&w, &t.entry);
    assert_true(asyncio__timer_entry_linked(&other.entry));
    advance_expect(&w, 5 + POW64(1), 1);
    assert_int_equal(t.fired, 1);
    assert_int_equal(other.fired, 1);
}

/* A callback cancels a sibling that fired in the same batch: it is unlinked and not run. */
static void test_wheel_cancel_sibling_still_on_fired_list(void **state)
{
    asyncio__wheel w;
    asyncio__list fired;
    tmr a, b, c;
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&a);
    tmr_init(&b);
    tmr_init(&c);
    tmr_insert(&w, &a, 7);
    tmr_insert(&w, &b, 8);
    tmr_insert(&w, &c, 9);
    asyncio__list_init(&fired);
    assert_int_equal(asyncio__wheel_advance(&w, 9, &fired), 3);
    assert_ptr_equal(pop_fired(&fired), &a);
    asyncio__wheel_cancel(&w, &b.entry); /* "a's callback" */
    assert_false(asyncio__timer_entry_linked(&b.entry));
    assert_ptr_equal(pop_fired(&fired), &c);
    assert_null(pop_fired(&fired));
    assert_true(asyncio__wheel_is_empty(&w));
}

/* ---- due list, next_expiration ----------------------------------------- */

static void test_wheel_insert_in_the_past_or_now_fires_at_next_advance(void **state)
{
    asyncio__wheel w;
    tmr past, now, zero, later;
    static tmr *out[4];
    (void)state;

    asyncio__wheel_init(&w, 5000);
    tmr_init(&past);
    tmr_init(&now);
    tmr_init(&zero);
    tmr_init(&later);
    tmr_insert(&w, &later, 5001);
    tmr_insert(&w, &past, 4000);
    tmr_insert(&w, &now, 5000);
    tmr_insert(&w, &zero, 0);
    /* Insert never fires: they wait for the next advance. */
    assert_int_equal(past.fired + now.fired + zero.fired, 0);
    assert_int_equal(asyncio__wheel_next_expiration(&w), 5000);
    /* Same time (and even an older time) still returns the due list, in insertion order. */
    assert_int_equal(advance_check(&w, 4999, out, 4), 3);
    assert_ptr_equal(out[0], &past);
    assert_ptr_equal(out[1], &now);
    assert_ptr_equal(out[2], &zero);
    assert_int_equal(w.elapsed, 5000);
    advance_expect(&w, 5000, 0);
    advance_expect(&w, 5001, 1);
}

/* An older now does not move time backwards and fires nothing new. */
static void test_wheel_advance_to_an_older_time_is_a_no_op(void **state)
{
    asyncio__wheel w;
    tmr t;
    (void)state;

    asyncio__wheel_init(&w, 1000);
    tmr_init(&t);
    tmr_insert(&w, &t, 1010);
    advance_expect(&w, 500, 0);
    assert_int_equal(w.elapsed, 1000);
    advance_expect(&w, 1009, 0);
    advance_expect(&w, 1000, 0);
    assert_int_equal(w.elapsed, 1009);
    advance_expect(&w, 1010, 1);
}

static void test_wheel_next_expiration_never_later_than_earliest_deadline(void **state)
{
    (void)state;
    rng_seed(4);
    for (int round = 0; round < 2000; round++) {
        asyncio__wheel w;
        tmr t[8];
        uint64_t start = rng_next() >> (1 + rng_below(40));
        uint64_t min = UINT64_MAX;
        uint64_t next;
        size_t count = 1 + rng_below(8), at_min = 0, steps = 0;

        asyncio__wheel_init(&w, start);
        for (size_t i = 0; i < count; i++) {
            uint64_t d = sat_add(start, 1 + (rng_next() >> rng_below(64)));
            tmr_init(&t[i]);
            tmr_insert(&w, &t[i], d);
            if (d < min)
                min = d;
        }
        for (size_t i = 0; i < count; i++)
            at_min += t[i].entry.deadline == min;
        next = asyncio__wheel_next_expiration(&w);
        assert_true(next > start);
        assert_true(next <= min);
        if (((min ^ start) >> 6) == 0)
            assert_int_equal(next, min); /* level 0: exact */
        /*
         * Following next_expiration reaches the earliest deadline in a few
         * steps (at most one per level, plus one epoch jump) and fires
         * nothing before it.
         */
        for (;;) {
            next = asyncio__wheel_next_expiration(&w);
            assert_true(next > w.elapsed);
            assert_true(next <= min);
            advance_expect(&w, next, next == min ? at_min : 0);
            if (next == min)
                break;
            assert_true(++steps <= 7);
        }
    }
}

/* A level-0 entry: next_expiration is exactly its deadline. */
static void test_wheel_next_expiration_is_exact_for_level_zero(void **state)
{
    asyncio__wheel w;
    tmr a, b;
    (void)state;

    asyncio__wheel_init(&w, 640);
    assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX);
    tmr_init(&a);
    tmr_init(&b);
    tmr_insert(&w, &a, 650);
    tmr_insert(&w, &b, 645);
    assert_int_equal(asyncio__wheel_next_expiration(&w), 645);
    advance_expect(&w, 645, 1);
    assert_int_equal(asyncio__wheel_next_expiration(&w), 650);
}

/* ---- range, UINT64_MAX, wrap ------------------------------------------- */

/*
 * The timer-wheel-wrap hazard (tokio#8334): with the clock near 2^30 ms (the
 * span of one top-level slot), a 10 ms timer next to a UINT64_MAX deadline
 * still fires at +10 ms. Also checked near every top-level slot boundary
 * and near the 2^36 ms end of the wheel's range.
 */
static void test_wheel_short_timer_next_to_max_deadline_fires_near_2_30(void **state)
{
    static const uint64_t bases[] = {
        UINT64_C(1) << 30,  UINT64_C(2) << 30,  UINT64_C(31) << 30,
        UINT64_C(63) << 30, UINT64_C(64) << 30, (UINT64_C(64) << 30) * 5 + (UINT64_C(63) << 30),
        UINT64_C(1) << 40,
    };
    (void)state;
    for (size_t b = 0; b < ASYNCIO_ARRAY_LEN(bases); b++) {
        for (uint64_t back = 1; back <= 12; back++) {
            asyncio__wheel w;
            tmr far, near;
            uint64_t now = bases[b] - back;

            asyncio__wheel_init(&w, now);
            tmr_init(&far);
            tmr_init(&near);
            tmr_insert(&w, &far, UINT64_MAX);
            tmr_insert(&w, &near, now + 10);
            assert_true(asyncio__wheel_next_expiration(&w) <= now + 10);
            advance_expect(&w, now + 9, 0);
            advance_expect(&w, now + 10, 1);
            assert_int_equal(near.fired, 1);
            assert_int_equal(far.fired, 0);
            assert_true(asyncio__timer_entry_linked(&far.entry));
            /* And again with the wheel already past the boundary. */
            tmr_insert(&w, &near, now + 20);
            advance_expect(&w, now + 19, 0);
            advance_expect(&w, now + 20, 1);
            asyncio__wheel_cancel(&w, &far.entry);
            assert_true(asyncio__wheel_is_empty(&w));
        }
    }
}

static void test_wheel_max_deadline_never_fires_before_max(void **state)
{
    asyncio__wheel w;
    tmr t, u;
    (void)state;

    /* One giant jump. */
    asyncio__wheel_init(&w, 0);
    tmr_init(&t);
    tmr_insert(&w, &t, UINT64_MAX);
    assert_true(asyncio__wheel_next_expiration(&w) <= UINT64_MAX);
    advance_expect(&w, UINT64_MAX - 1, 0);
    assert_true(asyncio__timer_entry_linked(&t.entry));
    assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX);
    advance_expect(&w, UINT64_MAX, 1);
    assert_true(asyncio__wheel_is_empty(&w));

    /* Several jumps, then following next_expiration through the last epoch. */
    asyncio__wheel_init(&w, 3);
    tmr_init(&t);
    tmr_init(&u);
    tmr_insert(&w, &t, UINT64_MAX);
    tmr_insert(&w, &u, UINT64_MAX - 1);
    advance_expect(&w, UINT64_C(1) << 40, 0);
    advance_expect(&w, UINT64_C(1) << 63, 0);
    advance_expect(&w, UINT64_MAX - POW64(6) - 1, 0);
    for (int steps = 0;; steps++) {
        uint64_t next = asyncio__wheel_next_expiration(&w);
        assert_true(steps <= 7);
        assert_true(next > w.elapsed);
        if (next == UINT64_MAX - 1)
            break;
        assert_true(next < UINT64_MAX - 1);
        advance_expect(&w, next, 0);
    }
    advance_expect(&w, UINT64_MAX - 2, 0);
    assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX - 1);
    advance_expect(&w, UINT64_MAX - 1, 1);
    assert_int_equal(u.fired, 1);
    advance_expect(&w, UINT64_MAX, 1);
    assert_int_equal(t.fired, 1);

    /* The clock itself at UINT64_MAX: inserting "now" is due, nothing breaks. */
    tmr_init(&t);
    tmr_insert(&w, &t, UINT64_MAX);
    assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX);
    advance_expect(&w, UINT64_MAX, 1);
    assert_true(asyncio__wheel_is_empty(&w));
}

/* Deadlines beyond the 2^36 ms range wait on the overflow list and still fire exactly. */
static void test_wheel_deadlines_beyond_range_fire_exactly(void **state)
{
    asyncio__wheel w;
    tmr t[4];
    uint64_t start = 1000;
    uint64_t d[4] = {start + POW64(6) * 2 + 5, start + POW64(6) * 2 + 5, start + POW64(6) * 9,
                     start + POW64(6) * 2 + 6};
    (void)state;

    asyncio__wheel_init(&w, start);
    for (int i = 0; i < 4; i++) {
        tmr_init(&t[i]);
        tmr_insert(&w, &t[i], d[i]);
        assert_int_equal(t[i].entry.level, ASYNCIO__WHEEL_WHERE_OVERFLOW);
    }
    assert_true(asyncio__wheel_next_expiration(&w) <= d[0]);
    advance_expect(&w, d[0] - 1, 0);
    advance_expect(&w, d[0], 2);
    advance_expect(&w, d[3], 1);
    advance_expect(&w, d[2] - 1, 0);
    advance_expect(&w, d[2], 1);
    assert_true(asyncio__wheel_is_empty(&w));
}

/*
 * A far entry is cancelled, time moves past its epoch, then another far
 * entry arrives: the overflow bookkeeping must not remember the first one.
 */
static void test_wheel_cancel_beyond_range_then_time_passes(void **state)
{
    asyncio__wheel w;
    tmr a, b, c;
    uint64_t now;
    (void)state;

    asyncio__wheel_init(&w, 10);
    tmr_init(&a);
    tmr_init(&b);
    tmr_init(&c);
    tmr_insert(&w, &a, POW64(6) + 50);
    tmr_insert(&w, &c, POW64(6) * 5);
    asyncio__wheel_cancel(&w, &a.entry);
    /* The bound may be stale-low: advancing into a's epoch fires nothing. */
    advance_expect(&w, POW64(6) + 60, 0);
    asyncio__wheel_cancel(&w, &c.entry);
    assert_true(asyncio__wheel_is_empty(&w));
    now = POW64(6) * 6 + 7; /* past c's epoch too */
    advance_expect(&w, now, 0);
    tmr_insert(&w, &b, now + POW64(6) + 1);
    assert_int_equal(b.entry.level, ASYNCIO__WHEEL_WHERE_OVERFLOW);
    assert_true(asyncio__wheel_next_expiration(&w) > now);
    assert_true(asyncio__wheel_next_expiration(&w) <= now + POW64(6) + 1);
    advance_expect(&w, now + POW64(6), 0);
    advance_expect(&w, now + POW64(6) + 1, 1);
    assert_true(asyncio__wheel_is_empty(&w));
}

/* ---- re-insertion ------------------------------------------------------- */

static void test_wheel_reinsert_fired_entry(void **state)
{
    asyncio__wheel w;
    tmr t;
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&t);
    for (uint64_t i = 1; i <= 200; i++) {
        uint64_t d = w.elapsed + i * i * 37;
        tmr_insert(&w, &t, d);
        advance_expect(&w, d - 1, 0);
        advance_expect(&w, d, 1);
        assert_int_equal(t.fired, i);
    }
}

/*
 * "Callbacks" run between two advances insert and re-arm timers, including
 * one that is already due and one earlier than timers already in the wheel.
 */
static void test_wheel_insert_from_inside_a_firing(void **state)
{
    asyncio__wheel w;
    asyncio__list fired;
    tmr a, b, c, late;
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&a);
    tmr_init(&b);
    tmr_init(&c);
    tmr_init(&late);
    tmr_insert(&w, &a, 100);
    tmr_insert(&w, &late, 5000);
    asyncio__list_init(&fired);
    assert_int_equal(asyncio__wheel_advance(&w, 150, &fired), 1);
    assert_ptr_equal(pop_fired(&fired), &a);
    /* a's callback: an interval re-arms itself, and it starts two more timers. */
    tmr_insert(&w, &a, 200);
    tmr_insert(&w, &b, 151);
    tmr_insert(&w, &c, 120); /* already in the past: due at the next advance */
    assert_null(pop_fired(&fired));
    assert_int_equal(asyncio__wheel_next_expiration(&w), 150);
    advance_expect(&w, 150, 1); /* c */
    assert_int_equal(c.fired, 1);
    advance_expect(&w, 151, 1); /* b */
    advance_expect(&w, 199, 0);
    advance_expect(&w, 200, 1); /* a again */
    advance_expect(&w, 4999, 0);
    advance_expect(&w, 5000, 1);
    assert_true(asyncio__wheel_is_empty(&w));
}

/* The wheel never allocates: no block goes through the library's allocator. */
static void test_wheel_never_allocates(void **state)
{
    asyncio__wheel w;
    (void)state;

    support_alloc_install();
    rng_seed(5);
    asyncio__wheel_init(&w, 0);
    for (size_t i = 0; i < 1000; i++) {
        tmr_init(&many[i]);
        tmr_insert(&w, &many[i], 1 + rng_below(1u << 20));
    }
    advance_expect(&w, 1u << 20, 1000);
    assert_int_equal(support_alloc_total(), 0);
    support_alloc_uninstall();
}

/* ---- stress against a reference model ------------------------------------ */

#define POOL 512
static tmr pool[POOL];
static bool stress_callbacks; /* fired entries' "callbacks" cancel and re-arm timers */

/* Short-horizon mode: deadlines within ~300 ms, steps of 0..3 ms (exercises staging). */
static bool stress_short;

static uint64_t random_deadline(uint64_t now)
{
    if (stress_short)
        return rng_below(20) == 0 ? now - rng_below(now < 5 ? now + 1 : 5)
                                  : sat_add(now, rng_below(300));
    switch (rng_below(10)) {
    case 0:
        return now - rng_below(now < 1000 ? now + 1 : 1000); /* past or now */
    case 1:
        return sat_add(now, rng_below(64));
    case 2:
    case 3:
        return sat_add(now, rng_below(5000));
    case 4:
    case 5:
        return sat_add(now, rng_below(UINT64_C(1) << 24));
    case 6:
        return sat_add(now, rng_below(UINT64_C(1) << 34));
    case 7:
        return sat_add(now, rng_below(UINT64_C(1) << 40)); /* often beyond the range */
    case 8:
        return rng_below(50) == 0 ? UINT64_MAX : sat_add(now, 1 + rng_below(3));
    default:
        return sat_add(now, rng_below(100000));
    }
}

static uint64_t random_step(void)
{
    if (stress_short)
        return rng_below(4);
    switch (rng_below(20)) {
    case 0:
        return 0;
    case 1:
        return rng_below(UINT64_C(1) << 36);
    case 2:
        return rng_below(UINT64_C(1) << 31);
    case 3:
    case 4:
        return rng_below(UINT64_C(1) << 20);
    case 5:
    case 6:
    case 7:
        return rng_below(5000);
    default:
        return rng_below(70);
    }
}

static void stress_check_next_expiration(const asyncio__wheel *w)
{
    uint64_t min = UINT64_MAX;
    bool any = false;

    for (size_t i = 0; i < POOL; i++) {
        if (pool[i].active) {
            any = true;
            if (pool[i].entry.deadline < min)
                min = pool[i].entry.deadline;
        }
    }
    assert_int_equal(asyncio__wheel_is_empty(w), !any);
    if (!any) {
        assert_int_equal(asyncio__wheel_next_expiration(w), UINT64_MAX);
        return;
    }
    assert_true(asyncio__wheel_next_expiration(w) <= (min > w->elapsed ? min : w->elapsed));
}

/* Advance, compare the fired set with the model, then "fire" with random callbacks. */
static void stress_advance(asyncio__wheel *w, uint64_t now)
{
    asyncio__list fired;
    uint64_t before = w->elapsed;
    uint64_t effective = now > before ? now : before;
    size_t want = 0, got = 0, moved;
    uint64_t last_d = 0, last_seq = 0;
    bool in_due_prefix = true, any = false;
    tmr *t;

    for (size_t i = 0; i < POOL; i++)
        want += pool[i].active && pool[i].entry.deadline <= effective;
    asyncio__list_init(&fired);
    moved = asyncio__wheel_advance(w, now, &fired);
    assert_int_equal(moved, want);
    for (asyncio__list *n = fired.next; n != &fired; n = n->next) {
        t = tmr_of(n);
        assert_true(t->active);
        assert_true(t->entry.deadline <= effective);
        if (t->entry.deadline > before)
            in_due_prefix = false;
        if (in_due_prefix) {
            /* already due: insertion order */
            assert_true(t->entry.deadline <= before);
            assert_true(!any || t->seq > last_seq);
        } else {
            assert_true(t->entry.deadline > before);
            assert_true(!any || last_d <= before || last_d <= t->entry.deadline);
            if (any && last_d == t->entry.deadline)
                assert_true(t->seq > last_seq);
        }
        any = true;
        last_d = t->entry.deadline;
        last_seq = t->seq;
        t->active = false;
        t->pending = true;
        got++;
    }
    assert_int_equal(got, want);
    while ((t = pop_fired(&fired)) != NULL) {
        assert_true(t->pending);
        t->pending = false;
        t->fired++;
        if (stress_callbacks && rng_below(8) == 0) {
            /* the callback cancels someone, maybe a sibling still on `fired` */
            tmr *v = &pool[rng_below(POOL)];
            asyncio__wheel_cancel(w, &v->entry);
            v->active = false;
            v->pending = false;
        }
        if (stress_callbacks && rng_below(4) == 0) {
            /* the callback re-arms itself */
            tmr_insert(w, t, random_deadline(w->elapsed));
        }
    }
}

static void stress_run(uint64_t seed, int ops);

static void test_wheel_stress_matches_reference_model(void **state)
{
    (void)state;
    stress_short = false;
    stress_run(6, 200000);
}

/* Timers within a few hundred ms and small steps: the staging bank is always in use. */
static void test_wheel_short_horizon_stress_with_staging_matches_reference_model(void **state)
{
    (void)state;
    stress_short = true;
    stress_run(7, 300000);
    stress_short = false;
}

static void stress_run(uint64_t seed, int ops)
{
    asyncio__wheel w;
    uint64_t now;

    rng_seed(seed);
    stress_callbacks = true;
    now = rng_below(UINT64_C(1) << 45);
    asyncio__wheel_init(&w, now);
    for (size_t i = 0; i < POOL; i++)
        tmr_init(&pool[i]);
    for (int op = 0; op < ops; op++) {
        tmr *t = &pool[rng_below(POOL)];
        switch (rng_below(3)) {
        case 0:
            if (t->active)
                asyncio__wheel_cancel(&w, &t->entry);
            tmr_insert(&w, t, random_deadline(w.elapsed));
            break;
        case 1:
            asyncio__wheel_cancel(&w, &t->entry);
            t->active = false;
            break;
        default:
            if (rng_below(50) == 0)
                now = w.elapsed - rng_below(w.elapsed < 10 ? w.elapsed + 1 : 10); /* older */
            else
                now = sat_add(w.elapsed, random_step());
            stress_advance(&w, now);
            break;
        }
        stress_check_next_expiration(&w);
        assert_int_equal(asyncio__timer_entry_linked(&t->entry), t->active);
    }
    /* Drain: everything but UINT64_MAX deadlines fires before UINT64_MAX. */
    stress_callbacks = false;
    stress_advance(&w, UINT64_MAX - 1);
    stress_advance(&w, UINT64_MAX);
    assert_true(asyncio__wheel_is_empty(&w));
}

/* ---- spread cascading ------------------------------------------------------ */

#define SPREAD_N (64 * 1000)
static tmr spread[SPREAD_N];

/*
 * 64,000 timers in the next 64 ms slot, advanced one millisecond at a time:
 * no single advance moves more than about 1/60 of them (before the staging
 * bank, the advance reaching the slot moved all 64,000 at once).
 */
static void test_wheel_cascading_a_full_slot_is_spread_over_the_slot_before_it(void **state)
{
    asyncio__wheel w;
    uint64_t max_moves = 0;
    size_t fired = 0;
    (void)state;

    rng_seed(11);
    asyncio__wheel_init(&w, 0);
    for (size_t i = 0; i < SPREAD_N; i++) {
        tmr_init(&spread[i]);
        tmr_insert(&w, &spread[i], 64 + rng_below(64));
    }
    for (uint64_t now = 1; now <= 128; now++) {
        uint64_t before = w.moves;
        fired += advance_check(&w, now, NULL, 0);
        if (w.moves - before > max_moves)
            max_moves = w.moves - before;
    }
    assert_int_equal(fired, SPREAD_N);
    assert_true(asyncio__wheel_is_empty(&w));
    assert_true(max_moves <= SPREAD_N / 60);
}

/* Equal deadlines keep insertion order across the bank and the level-1 list. */
static void test_wheel_staged_and_unstaged_equal_deadlines_keep_insertion_order(void **state)
{
    asyncio__wheel w;
    tmr a, b, c;
    tmr *out[3];
    (void)state;

    asyncio__wheel_init(&w, 0);
    tmr_init(&a);
    tmr_init(&b);
    tmr_init(&c);
    tmr_insert(&w, &a, 100);
    advance_expect(&w, 40, 0); /* a is staged */
    assert_int_equal(a.entry.level, 0);
    tmr_insert(&w, &b, 100); /* b waits on the level-1 list */
    tmr_insert(&w, &c, 64);  /* the slot's first millisecond */
    advance_expect(&w, 63, 0);
    assert_int_equal(advance_check(&w, 100, out, 3), 3);
    assert_ptr_equal(out[0], &c);
    assert_ptr_equal(out[1], &a);
    assert_ptr_equal(out[2], &b);
}

/* Cancelling staged entries empties the slot: nothing is left to wake for. */
static void test_wheel_cancel_staged_entries_empties_the_wheel(void **state)
{
    asyncio__wheel w;
    tmr t[10];
    (void)state;

    asyncio__wheel_init(&w, 0);
    for (int i = 0; i < 10; i++) {
        tmr_init(&t[i]);
        tmr_insert(&w, &t[i], 64 + (uint64_t)i * 6);
    }
    advance_expect(&w, 60, 0); /* left 4 ms: most are staged */
    for (int i = 0; i < 10; i++)
        asyncio__wheel_cancel(&w, &t[i].entry);
    assert_true(asyncio__wheel_is_empty(&w));
    assert_int_equal(asyncio__wheel_next_expiration(&w), UINT64_MAX);
    advance_expect(&w, 200, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wheel_short_horizon_stress_with_staging_matches_reference_model),
        cmocka_unit_test(test_wheel_cascading_a_full_slot_is_spread_over_the_slot_before_it),
        cmocka_unit_test(test_wheel_staged_and_unstaged_equal_deadlines_keep_insertion_order),
        cmocka_unit_test(test_wheel_cancel_staged_entries_empties_the_wheel),
        cmocka_unit_test(test_wheel_fires_at_deadline_never_one_ms_early),
        cmocka_unit_test(test_wheel_cascades_through_every_level_following_next_expiration),
        cmocka_unit_test(test_wheel_random_deadlines_within_1s_fire_exactly_on_time),
        cmocka_unit_test(test_wheel_random_deadlines_within_10_days_fire_at_first_advance_after),
        cmocka_unit_test(test_wheel_big_jump_fires_everything_due_and_nothing_else),
        cmocka_unit_test(test_wheel_equal_deadlines_fire_together_in_insertion_order),
        cmocka_unit_test(test_wheel_cancel_before_firing_never_fires),
        cmocka_unit_test(test_wheel_cancel_in_higher_level_empties_the_wheel),
        cmocka_unit_test(test_wheel_cancel_one_of_two_in_a_slot_keeps_the_other),
        cmocka_unit_test(test_wheel_cancel_twice_is_harmless),
        cmocka_unit_test(test_wheel_cancel_after_fired_is_harmless),
        cmocka_unit_test(test_wheel_cancel_sibling_still_on_fired_list),
        cmocka_unit_test(test_wheel_insert_in_the_past_or_now_fires_at_next_advance),
        cmocka_unit_test(test_wheel_advance_to_an_older_time_is_a_no_op),
        cmocka_unit_test(test_wheel_next_expiration_never_later_than_earliest_deadline),
        cmocka_unit_test(test_wheel_next_expiration_is_exact_for_level_zero),
        cmocka_unit_test(test_wheel_short_timer_next_to_max_deadline_fires_near_2_30),
        cmocka_unit_test(test_wheel_max_deadline_never_fires_before_max),
        cmocka_unit_test(test_wheel_deadlines_beyond_range_fire_exactly),
        cmocka_unit_test(test_wheel_cancel_beyond_range_then_time_passes),
        cmocka_unit_test(test_wheel_reinsert_fired_entry),
        cmocka_unit_test(test_wheel_insert_from_inside_a_firing),
        cmocka_unit_test(test_wheel_never_allocates),
        cmocka_unit_test(test_wheel_stress_matches_reference_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

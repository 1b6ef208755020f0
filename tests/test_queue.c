/*
 * Run queues (src/sched/queue.c): the local work-stealing ring and the
 * global inject FIFO. Single-threaded behaviour first (order, overflow,
 * steal-half, wrap of the position counters), then a threaded stress test
 * (run under TSan by `make tsan`): one owner pushing and popping, three
 * stealers, every item consumed exactly once.
 *
 * The suite is built twice: with the default 256-slot ring (test_queue) and
 * with a 4-slot ring (test_queue_tinycap), so every expectation is written in
 * terms of ASYNCIO__QUEUE_CAPACITY. Entries are dummy asyncio__task blocks:
 * the queues only store the pointers and link `next`.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "sched/queue.h"

#define CAP    ((uint32_t)ASYNCIO__QUEUE_CAPACITY)
#define HALF   (CAP / 2)
#define NITEMS (4 * ASYNCIO__QUEUE_CAPACITY + 8)

static asyncio__task g_items[NITEMS];

static asyncio__task *item(size_t i)
{
    return &g_items[i];
}

static size_t index_of(const asyncio__task *t)
{
    return (size_t)(t - g_items);
}

typedef struct fixture {
    asyncio__queue q, dst;
    asyncio__inject inject;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    asyncio__queue_init(&f->q);
    asyncio__queue_init(&f->dst);
    if (asyncio__inject_init(&f->inject) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Every test leaves its queues drained: destroy checks they are empty. */
static int teardown(void **state)
{
    fixture *f = *state;
    asyncio__queue_destroy(&f->q);
    asyncio__queue_destroy(&f->dst);
    asyncio__inject_destroy(&f->inject);
    free(f);
    return 0;
}

static void push(fixture *f, asyncio__queue *q, size_t i)
{
    assert_null(asyncio__queue_push_back_or_overflow(q, item(i), &f->inject));
}

/* Pops everything from q and the inject queue, counting each item into seen[]. */
static void drain_counting(fixture *f, asyncio__queue *q, int *seen)
{
    asyncio__task *t;
    while ((t = asyncio__queue_pop(q)) != NULL)
        seen[index_of(t)]++;
    while ((t = asyncio__inject_pop(&f->inject)) != NULL)
        seen[index_of(t)]++;
}

/* White box: sets head (steal << 32 | real) and tail as queue.h's table lays them out. */
static void set_positions(asyncio__queue *q, uint32_t steal, uint32_t real, uint32_t tail)
{
    atomic_store(&q->head, (uint64_t)steal << 32 | real);
    atomic_store(&q->tail, tail);
}

/* ---- local queue, owner side ---------------------------------------------- */

static void test_queue_push_pop_fifo_order(void **state)
{
    fixture *f = *state;
    assert_true(asyncio__queue_is_empty(&f->q));
    assert_null(asyncio__queue_pop(&f->q));
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    assert_int_equal(asyncio__queue_len(&f->q), CAP);
    assert_int_equal(asyncio__queue_remaining_slots(&f->q), 0);
    assert_true(asyncio__inject_is_empty(&f->inject)); /* exactly full is not overflow */
    for (size_t i = 0; i < CAP; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(i));
    assert_null(asyncio__queue_pop(&f->q));
    assert_int_equal(asyncio__queue_remaining_slots(&f->q), CAP);
}

static void test_queue_interleaved_push_pop_keeps_order_around_the_ring(void **state)
{
    fixture *f = *state;
    size_t next_push = 0, next_pop = 0;
    while (next_push < NITEMS) {
        for (int k = 0; k < 3 && next_push < NITEMS; k++)
            push(f, &f->q, next_push++);
        for (int k = 0; k < 2; k++)
            assert_ptr_equal(asyncio__queue_pop(&f->q), item(next_pop++));
        while (asyncio__queue_len(&f->q) + 3 > CAP)
            assert_ptr_equal(asyncio__queue_pop(&f->q), item(next_pop++));
    }
    while (next_pop < NITEMS)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(next_pop++));
    assert_null(asyncio__queue_pop(&f->q));
    assert_true(asyncio__inject_is_empty(&f->inject));
}

static void test_queue_overflow_moves_half_and_the_new_task_to_inject(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i <= CAP; i++)
        push(f, &f->q, i);
    /* The oldest half, then the task that did not fit, in that order. */
    assert_int_equal(asyncio__inject_len(&f->inject), HALF + 1);
    for (size_t i = 0; i < HALF; i++)
        assert_ptr_equal(asyncio__inject_pop(&f->inject), item(i));
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(CAP));
    assert_null(asyncio__inject_pop(&f->inject));
    /* The newer half stays local, still FIFO. */
    assert_int_equal(asyncio__queue_len(&f->q), CAP - HALF);
    for (size_t i = HALF; i < CAP; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(i));
    assert_null(asyncio__queue_pop(&f->q));
}

static void test_queue_repeated_overflow_loses_and_duplicates_nothing(void **state)
{
    fixture *f = *state;
    int seen[NITEMS] = {0};
    for (size_t i = 0; i < NITEMS; i++) {
        push(f, &f->q, i);
        if (i % 3 == 2) {
            asyncio__task *t = asyncio__queue_pop(&f->q);
            assert_non_null(t);
            seen[index_of(t)]++;
        }
    }
    assert_true(asyncio__inject_len(&f->inject) > 0);
    drain_counting(f, &f->q, seen);
    for (size_t i = 0; i < NITEMS; i++)
        assert_int_equal(seen[i], 1);
}

static void test_queue_overflow_into_closed_inject_returns_the_entries(void **state)
{
    fixture *f = *state;
    assert_true(asyncio__inject_close(&f->inject));
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    asyncio__task *refused = asyncio__queue_push_back_or_overflow(&f->q, item(CAP), &f->inject);
    /* The batch comes back whole, in order, NULL-terminated: the caller drops it. */
    for (size_t i = 0; i < HALF; i++) {
        assert_ptr_equal(refused, item(i));
        refused = refused->next;
    }
    assert_ptr_equal(refused, item(CAP));
    assert_null(refused->next);
    assert_true(asyncio__inject_is_empty(&f->inject));
    for (size_t i = HALF; i < CAP; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(i));
    assert_null(asyncio__queue_pop(&f->q));
}

static void test_queue_full_during_a_steal_sends_only_the_new_task_to_inject(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    /* White box: a stealer has claimed entry 0 and is still copying it (steal != real). */
    set_positions(&f->q, 0, 1, CAP);
    push(f, &f->q, CAP);
    assert_int_equal(asyncio__inject_len(&f->inject), 1);
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(CAP));
    /* Nothing local moved; the owner still pops (real moves, steal stays). */
    assert_int_equal(asyncio__queue_len(&f->q), CAP - 1);
    assert_ptr_equal(asyncio__queue_pop(&f->q), item(1));
    assert_int_equal(atomic_load(&f->q.head) >> 32, 0);
    /* The stealer finishes: steal catches up with real. */
    uint64_t h = atomic_load(&f->q.head);
    set_positions(&f->q, (uint32_t)h, (uint32_t)h, CAP);
    for (size_t i = 2; i < CAP; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(i));
    assert_null(asyncio__queue_pop(&f->q));
}

static void test_queue_positions_wrap_around_uint32(void **state)
{
    fixture *f = *state;
    int seen[NITEMS] = {0};
    const uint32_t start = UINT32_MAX - HALF; /* the counters wrap during the first fill */
    set_positions(&f->q, start, start, start);
    set_positions(&f->dst, start - 1, start - 1, start - 1);
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    assert_int_equal(asyncio__queue_len(&f->q), CAP);
    assert_int_equal(asyncio__queue_remaining_slots(&f->q), 0);
    push(f, &f->q, CAP); /* overflow across the wrap */
    assert_int_equal(asyncio__inject_len(&f->inject), HALF + 1);
    asyncio__task *run = NULL;
    uint32_t n = asyncio__queue_steal_into(&f->q, &f->dst, &run);
    assert_int_equal(n, HALF - HALF / 2);
    seen[index_of(run)]++;
    for (size_t i = CAP + 1; i < NITEMS; i++)
        push(f, &f->q, i);
    drain_counting(f, &f->q, seen);
    drain_counting(f, &f->dst, seen);
    for (size_t i = 0; i < NITEMS; i++)
        assert_int_equal(seen[i], 1);
}

/* ---- local queue, stealer side --------------------------------------------- */

static void test_queue_steal_takes_half_and_leaves_the_rest(void **state)
{
    fixture *f = *state;
    const uint32_t k = CAP - 1;
    const uint32_t want = k - k / 2; /* half, rounded up */
    for (size_t i = 0; i < k; i++)
        push(f, &f->q, i);
    asyncio__task *run = NULL;
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), want);
    /* The oldest `want` move: the last of them runs now, the others queue in dst in order. */
    assert_ptr_equal(run, item(want - 1));
    assert_int_equal(asyncio__queue_len(&f->dst), want - 1);
    for (size_t i = 0; i + 1 < want; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->dst), item(i));
    assert_null(asyncio__queue_pop(&f->dst));
    assert_int_equal(asyncio__queue_len(&f->q), k - want);
    for (size_t i = want; i < k; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(i));
    assert_null(asyncio__queue_pop(&f->q));
    /* The handshake ended: steal == real again, so the full capacity is the owner's. */
    assert_int_equal(asyncio__queue_remaining_slots(&f->q), CAP);
}

static void test_queue_steal_from_full_takes_exactly_half(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    asyncio__task *run = NULL;
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), HALF);
    assert_ptr_equal(run, item(HALF - 1));
    assert_int_equal(asyncio__queue_len(&f->q), CAP - HALF);
    assert_int_equal(asyncio__queue_len(&f->dst), HALF - 1);
    int seen[NITEMS] = {0};
    seen[index_of(run)]++;
    drain_counting(f, &f->q, seen);
    drain_counting(f, &f->dst, seen);
    for (size_t i = 0; i < CAP; i++)
        assert_int_equal(seen[i], 1);
}

static void test_queue_steal_one_entry_runs_it_directly(void **state)
{
    fixture *f = *state;
    push(f, &f->q, 7);
    asyncio__task *run = NULL;
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), 1);
    assert_ptr_equal(run, item(7));
    assert_true(asyncio__queue_is_empty(&f->dst));
    assert_true(asyncio__queue_is_empty(&f->q));
}

static void test_queue_steal_from_empty_returns_zero(void **state)
{
    fixture *f = *state;
    asyncio__task *run = item(0);
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), 0);
    assert_ptr_equal(run, item(0)); /* untouched */
    assert_true(asyncio__queue_is_empty(&f->dst));
    /* Emptied again after use: still nothing to steal. */
    push(f, &f->q, 1);
    assert_ptr_equal(asyncio__queue_pop(&f->q), item(1));
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), 0);
}

static void test_queue_steal_refuses_destination_without_room_for_half(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    for (size_t i = CAP; i < CAP + HALF + 1; i++)
        push(f, &f->dst, i);
    asyncio__task *run = NULL;
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), 0);
    assert_null(run);
    assert_int_equal(asyncio__queue_len(&f->q), CAP);
    assert_int_equal(asyncio__queue_len(&f->dst), HALF + 1);

    /* With exactly HALF queued, dst takes a full half and still never exceeds capacity. */
    assert_ptr_equal(asyncio__queue_pop(&f->dst), item(CAP));
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), HALF);
    assert_int_equal(asyncio__queue_len(&f->dst), HALF + HALF - 1);
    assert_true(asyncio__queue_remaining_slots(&f->dst) >= 1);
    assert_true(asyncio__inject_is_empty(&f->inject));
    int seen[NITEMS] = {0};
    seen[index_of(run)]++;
    seen[CAP]++; /* popped above */
    drain_counting(f, &f->q, seen);
    drain_counting(f, &f->dst, seen);
    for (size_t i = 0; i < CAP + HALF + 1; i++)
        assert_int_equal(seen[i], 1);
}

static void test_queue_steal_skips_a_source_already_being_stolen_from(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < CAP; i++)
        push(f, &f->q, i);
    set_positions(&f->q, 0, 1, CAP); /* white box: entry 0 is being copied out */
    asyncio__task *run = NULL;
    assert_int_equal(asyncio__queue_steal_into(&f->q, &f->dst, &run), 0);
    assert_int_equal(asyncio__queue_len(&f->q), CAP - 1);
    set_positions(&f->q, 1, 1, CAP); /* that steal completes */
    for (size_t i = 1; i < CAP; i++)
        assert_ptr_equal(asyncio__queue_pop(&f->q), item(i));
}

/* ---- inject queue ---------------------------------------------------------- */

static void test_inject_fifo_batch_len_and_close(void **state)
{
    fixture *f = *state;
    assert_null(asyncio__inject_pop(&f->inject));
    assert_true(asyncio__inject_push(&f->inject, item(0)));
    /* A batch of 1 -> 2 -> 3 (3's stale next is ignored). */
    item(1)->next = item(2);
    item(2)->next = item(3);
    item(3)->next = item(9);
    assert_true(asyncio__inject_push_batch(&f->inject, item(1), item(3), 3));
    assert_true(asyncio__inject_push(&f->inject, item(4)));
    assert_int_equal(asyncio__inject_len(&f->inject), 5);
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(0));
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(1));

    assert_false(asyncio__inject_is_closed(&f->inject));
    assert_true(asyncio__inject_close(&f->inject));
    assert_false(asyncio__inject_close(&f->inject)); /* only the first call closes */
    assert_true(asyncio__inject_is_closed(&f->inject));
    assert_false(asyncio__inject_push(&f->inject, item(5)));
    assert_false(asyncio__inject_push_batch(&f->inject, item(6), item(6), 1));
    assert_int_equal(asyncio__inject_len(&f->inject), 3);
    /* Closed still drains, in order. */
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(2));
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(3));
    assert_ptr_equal(asyncio__inject_pop(&f->inject), item(4));
    assert_null(asyncio__inject_pop(&f->inject));
    assert_true(asyncio__inject_is_empty(&f->inject));
}

/* ---- threaded stress ------------------------------------------------------- */

#define STRESS_ITEMS      1000000
#define STRESS_STEALERS   3
#define STRESS_DEADLINE_S 100

typedef struct stress {
    asyncio__task *tasks;
    _Atomic unsigned char *consumed; /* per item: times it was taken out of a queue */
    _Atomic size_t total;
    _Atomic int failures;
    _Atomic bool timed_out;
    _Atomic size_t steals, stolen, from_inject; /* statistics, printed */
    time_t deadline;
    asyncio__queue owner;
    asyncio__queue stealers[STRESS_STEALERS];
    asyncio__inject inject;
} stress;

typedef struct stealer_arg {
    stress *s;
    int id;
} stealer_arg;

static uint32_t rng_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void consume(stress *s, asyncio__task *t)
{
    size_t i = (size_t)(t - s->tasks);
    if (i >= STRESS_ITEMS ||
        atomic_fetch_add_explicit(&s->consumed[i], 1, memory_order_relaxed) != 0)
        atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->total, 1, memory_order_relaxed);
}

/* True while items remain and the deadline has not passed. */
static bool keep_going(stress *s)
{
    if (atomic_load_explicit(&s->total, memory_order_relaxed) >= STRESS_ITEMS)
        return false;
    if (time(NULL) > s->deadline) {
        atomic_store(&s->timed_out, true);
        return false;
    }
    return true;
}

static bool take_from_inject(stress *s)
{
    asyncio__task *t = asyncio__inject_pop(&s->inject);
    if (t == NULL)
        return false;
    atomic_fetch_add_explicit(&s->from_inject, 1, memory_order_relaxed);
    consume(s, t);
    return true;
}

static void *stress_owner(void *arg)
{
    stress *s = arg;
    uint32_t rng = 0x9e3779b9u;
    for (size_t i = 0; i < STRESS_ITEMS; i++) {
        if (asyncio__queue_push_back_or_overflow(&s->owner, &s->tasks[i], &s->inject) != NULL)
            atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed); /* never closed */
        uint32_t r = rng_next(&rng);
        if (r % 4 == 0) { /* pops in bursts, so the ring fills, drains and overflows */
            for (uint32_t k = (r >> 8) % 8; k > 0; k--) {
                asyncio__task *t = asyncio__queue_pop(&s->owner);
                if (t == NULL)
                    break;
                consume(s, t);
            }
        } else if (r % 61 == 1) {
            take_from_inject(s);
        }
        if ((i & 0xfff) == 0 && time(NULL) > s->deadline) {
            atomic_store(&s->timed_out, true);
            return NULL;
        }
    }
    while (keep_going(s)) {
        asyncio__task *t = asyncio__queue_pop(&s->owner);
        if (t != NULL)
            consume(s, t);
        else if (!take_from_inject(s))
            sched_yield();
    }
    return NULL;
}

static void *stress_stealer(void *arg)
{
    stealer_arg *a = arg;
    stress *s = a->s;
    asyncio__queue *mine = &s->stealers[a->id];
    uint32_t rng = 0x12345u * (uint32_t)(a->id + 1);
    while (keep_going(s)) {
        uint32_t r = rng_next(&rng);
        if (!asyncio__queue_is_empty(mine) && r % 2 == 0) {
            asyncio__task *t = asyncio__queue_pop(mine);
            if (t != NULL)
                consume(s, t);
            continue;
        }
        /* Mostly the owner; sometimes another stealer's queue. */
        int v = (int)((r >> 4) % (STRESS_STEALERS + 2)) - 1;
        asyncio__queue *victim = v <= 0 || v - 1 == a->id ? &s->owner : &s->stealers[v - 1];
        asyncio__task *run = NULL;
        uint32_t n = asyncio__queue_steal_into(victim, mine, &run);
        if (n > 0) {
            atomic_fetch_add_explicit(&s->steals, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->stolen, n, memory_order_relaxed);
            consume(s, run);
            continue;
        }
        if (!take_from_inject(s) && asyncio__queue_is_empty(mine))
            sched_yield();
    }
    return NULL; /* every item was consumed, so this queue is empty (or we timed out) */
}

static void test_queue_stress_owner_and_three_stealers_consume_each_item_once(void **state)
{
    (void)state;
    stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->tasks = calloc(STRESS_ITEMS, sizeof *s->tasks);
    s->consumed = calloc(STRESS_ITEMS, sizeof *s->consumed);
    assert_non_null(s->tasks);
    assert_non_null(s->consumed);
    atomic_init(&s->total, 0);
    atomic_init(&s->failures, 0);
    atomic_init(&s->timed_out, false);
    s->deadline = time(NULL) + STRESS_DEADLINE_S;
    asyncio__queue_init(&s->owner);
    for (int i = 0; i < STRESS_STEALERS; i++)
        asyncio__queue_init(&s->stealers[i]);
    assert_int_equal(asyncio__inject_init(&s->inject), 0);

    pthread_t owner, thieves[STRESS_STEALERS];
    stealer_arg args[STRESS_STEALERS];
    assert_int_equal(pthread_create(&owner, NULL, stress_owner, s), 0);
    for (int i = 0; i < STRESS_STEALERS; i++) {
        args[i] = (stealer_arg){s, i};
        assert_int_equal(pthread_create(&thieves[i], NULL, stress_stealer, &args[i]), 0);
    }
    pthread_join(owner, NULL);
    for (int i = 0; i < STRESS_STEALERS; i++)
        pthread_join(thieves[i], NULL);

    print_message("capacity %u: %zu steals took %zu entries; %zu entries went through inject\n",
                  (unsigned)CAP, atomic_load(&s->steals), atomic_load(&s->stolen),
                  atomic_load(&s->from_inject));
    assert_false(atomic_load(&s->timed_out));
    assert_int_equal(atomic_load(&s->failures), 0);
    assert_int_equal(atomic_load(&s->total), STRESS_ITEMS);
    size_t wrong = 0;
    for (size_t i = 0; i < STRESS_ITEMS; i++)
        wrong += atomic_load_explicit(&s->consumed[i], memory_order_relaxed) != 1;
    assert_int_equal(wrong, 0);
    asyncio__queue_destroy(&s->owner);
    for (int i = 0; i < STRESS_STEALERS; i++)
        asyncio__queue_destroy(&s->stealers[i]);
    asyncio__inject_destroy(&s->inject);
    free(s->consumed);
    free(s->tasks);
    free(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_queue_push_pop_fifo_order),
        T(test_queue_interleaved_push_pop_keeps_order_around_the_ring),
        T(test_queue_overflow_moves_half_and_the_new_task_to_inject),
        T(test_queue_repeated_overflow_loses_and_duplicates_nothing),
        T(test_queue_overflow_into_closed_inject_returns_the_entries),
        T(test_queue_full_during_a_steal_sends_only_the_new_task_to_inject),
        T(test_queue_positions_wrap_around_uint32),
        T(test_queue_steal_takes_half_and_leaves_the_rest),
        T(test_queue_steal_from_full_takes_exactly_half),
        T(test_queue_steal_one_entry_runs_it_directly),
        T(test_queue_steal_from_empty_returns_zero),
        T(test_queue_steal_refuses_destination_without_room_for_half),
        T(test_queue_steal_skips_a_source_already_being_stolen_from),
        T(test_inject_fifo_batch_len_and_close),
        cmocka_unit_test(test_queue_stress_owner_and_three_stealers_consume_each_item_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

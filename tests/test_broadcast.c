/*
 * Broadcast channel: every receiver sees every message in order; a
 * receiver that falls behind gets ASYNCIO_EOVERFLOW with the number it
 * missed and continues at the oldest message held; closing; waiting and
 * waking (more receivers than one wake batch); cancellation at every step
 * (a dropped receive loses no message, a dropped receiver leaks nothing);
 * no allocation per message; and a thread stress where each receiver's
 * messages plus its reported losses account for every message sent.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/broadcast.h"
#include "asyncio/runtime.h"
#include "failing_alloc.h"
#include "hand_waker.h"
#include "support.h"

static void send_u64(asyncio_broadcast_sender *tx, uint64_t v)
{
    assert_ok(asyncio_broadcast_send(tx, &v));
}

static void test_broadcast_invalid_arguments(void **state)
{
    (void)state;
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx;
    assert_err(asyncio_broadcast_channel(NULL, &rx, 8, 4), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_channel(&tx, NULL, 8, 4), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_channel(&tx, &rx, 0, 4), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_channel(&tx, &rx, 8, 0), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_channel(&tx, &rx, 8, ASYNCIO_BROADCAST_MAX_CAPACITY + 1),
               ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_channel(&tx, &rx, SIZE_MAX / 2, 4), ASYNCIO_EINVAL);
    assert_ok(asyncio_broadcast_channel(&tx, &rx, 8, 4));
    uint64_t v = 0;
    assert_err(asyncio_broadcast_send(NULL, &v), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_send(tx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_try_recv(NULL, &v), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_try_recv(rx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_subscribe(NULL, &rx), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_subscribe(tx, NULL), ASYNCIO_EINVAL);
    hand *h = hand_new();
    asyncio_broadcast_recv r;
    asyncio_broadcast_recv_init(&r, rx);
    assert_err(asyncio_broadcast_recv_poll(&r, &h->cx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_broadcast_recv_poll(NULL, &h->cx, &v), ASYNCIO_EINVAL);
    hand_free(h);
    asyncio_broadcast_receiver_drop(rx);
    asyncio_broadcast_sender_drop(tx);
    asyncio_broadcast_sender_drop(NULL);
    asyncio_broadcast_receiver_drop(NULL);
}

static void test_broadcast_every_receiver_sees_every_message_in_order(void **state)
{
    (void)state;
    enum { RX = 3, MSGS = 6 };
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx[RX];
    assert_ok(asyncio_broadcast_channel(&tx, &rx[0], sizeof(uint64_t), 8));
    for (int i = 1; i < RX; i++)
        assert_ok(asyncio_broadcast_subscribe(tx, &rx[i]));
    assert_int_equal(asyncio_broadcast_receiver_count(tx), RX);
    for (uint64_t m = 0; m < MSGS; m++)
        send_u64(tx, 100 + m);
    for (int i = 0; i < RX; i++) {
        assert_int_equal(asyncio_broadcast_receiver_len(rx[i]), MSGS);
        for (uint64_t m = 0; m < MSGS; m++) {
            uint64_t v;
            assert_ok(asyncio_broadcast_try_recv(rx[i], &v));
            assert_int_equal(v, 100 + m);
        }
        uint64_t v;
        assert_err(asyncio_broadcast_try_recv(rx[i], &v), ASYNCIO_EAGAIN);
        assert_int_equal(asyncio_broadcast_receiver_lagged(rx[i]), 0);
    }
    /* A late subscriber sees only what is sent after it subscribed. */
    asyncio_broadcast_receiver *late;
    assert_ok(asyncio_broadcast_subscribe(tx, &late));
    uint64_t v;
    assert_err(asyncio_broadcast_try_recv(late, &v), ASYNCIO_EAGAIN);
    send_u64(tx, 999);
    assert_ok(asyncio_broadcast_try_recv(late, &v));
    assert_int_equal(v, 999);
    asyncio_broadcast_receiver_drop(late);
    for (int i = 0; i < RX; i++)
        asyncio_broadcast_receiver_drop(rx[i]);
    asyncio_broadcast_sender_drop(tx);
}

static void test_broadcast_lagging_receiver_gets_overflow_with_count_then_continues(void **state)
{
    (void)state;
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *slow, *fast;
    assert_ok(asyncio_broadcast_channel(&tx, &slow, sizeof(uint64_t), 4));
    assert_ok(asyncio_broadcast_subscribe(tx, &fast));
    uint64_t v;
    for (uint64_t m = 0; m < 10; m++) {
        send_u64(tx, m);
        assert_ok(asyncio_broadcast_try_recv(fast, &v)); /* keeps up: never lags */
        assert_int_equal(v, m);
    }
    assert_int_equal(asyncio_broadcast_receiver_len(slow), 4);
    assert_err(asyncio_broadcast_try_recv(slow, &v), ASYNCIO_EOVERFLOW);
    assert_int_equal(asyncio_broadcast_receiver_lagged(slow), 6); /* 0..5 were overwritten */
    for (uint64_t m = 6; m < 10; m++) {
        assert_ok(asyncio_broadcast_try_recv(slow, &v));
        assert_int_equal(v, m);
    }
    assert_err(asyncio_broadcast_try_recv(slow, &v), ASYNCIO_EAGAIN);
    /* The same through the future. */
    for (uint64_t m = 10; m < 15; m++)
        send_u64(tx, m);
    hand *h = hand_new();
    asyncio_broadcast_recv r;
    asyncio_broadcast_recv_init(&r, slow);
    assert_err(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_EOVERFLOW);
    assert_int_equal(asyncio_broadcast_receiver_lagged(slow), 1);
    assert_ok(asyncio_broadcast_recv_poll(&r, &h->cx, &v));
    assert_int_equal(v, 11);
    asyncio_broadcast_recv_drop(&r);
    hand_free(h);
    asyncio_broadcast_receiver_drop(slow);
    asyncio_broadcast_receiver_drop(fast);
    asyncio_broadcast_sender_drop(tx);
}

static void test_broadcast_send_wakes_every_waiting_receiver(void **state)
{
    (void)state;
    enum { RX = 40 }; /* more than one wake batch */
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx[RX];
    assert_ok(asyncio_broadcast_channel(&tx, &rx[0], sizeof(uint64_t), 2));
    for (int i = 1; i < RX; i++)
        assert_ok(asyncio_broadcast_subscribe(tx, &rx[i]));
    hand *h[RX];
    asyncio_broadcast_recv r[RX];
    uint64_t v;
    for (int i = 0; i < RX; i++) {
        h[i] = hand_new();
        asyncio_broadcast_recv_init(&r[i], rx[i]);
        assert_int_equal(asyncio_broadcast_recv_poll(&r[i], &h[i]->cx, &v), ASYNCIO_PENDING);
        assert_int_equal(asyncio_broadcast_recv_poll(&r[i], &h[i]->cx, &v), ASYNCIO_PENDING);
    }
    send_u64(tx, 42);
    for (int i = 0; i < RX; i++) {
        assert_int_equal(hand_wakes(h[i]), 1);
        assert_int_equal(hand_refs(h[i]), 0); /* the stored waker was consumed */
        assert_ok(asyncio_broadcast_recv_poll(&r[i], &h[i]->cx, &v));
        assert_int_equal(v, 42);
        asyncio_broadcast_recv_drop(&r[i]);
        hand_free(h[i]);
        asyncio_broadcast_receiver_drop(rx[i]);
    }
    assert_err(asyncio_broadcast_send(tx, &v), ASYNCIO_ECLOSED); /* nobody listens */
    asyncio_broadcast_sender_drop(tx);
}

static void test_broadcast_last_sender_drop_closes_after_the_backlog(void **state)
{
    (void)state;
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx, *idle;
    assert_ok(asyncio_broadcast_channel(&tx, &rx, sizeof(uint64_t), 4));
    assert_ok(asyncio_broadcast_subscribe(tx, &idle));
    asyncio_broadcast_sender *tx2 = asyncio_broadcast_sender_clone(tx);
    hand *h = hand_new();
    asyncio_broadcast_recv r;
    asyncio_broadcast_recv_init(&r, rx);
    uint64_t v;
    assert_int_equal(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_PENDING);
    send_u64(tx2, 5);
    asyncio_broadcast_sender_drop(tx);
    assert_int_equal(hand_wakes(h), 1);
    assert_ok(asyncio_broadcast_recv_poll(&r, &h->cx, &v));
    assert_int_equal(v, 5);
    assert_int_equal(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_PENDING);
    asyncio_broadcast_sender_drop(tx2); /* the last one: the waiting receive is woken */
    assert_int_equal(hand_wakes(h), 2);
    assert_err(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_ECLOSED);
    assert_err(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_ECLOSED); /* final */
    asyncio_broadcast_recv_drop(&r);
    assert_ok(asyncio_broadcast_try_recv(idle, &v)); /* the backlog first */
    assert_int_equal(v, 5);
    assert_err(asyncio_broadcast_try_recv(idle, &v), ASYNCIO_ECLOSED);
    hand_free(h);
    asyncio_broadcast_receiver_drop(rx);
    asyncio_broadcast_receiver_drop(idle); /* the last reference frees the channel */
}

/*
 * A receive dropped after every step of a script (wait; two sends; two
 * receives; wait; the sender goes; closed) loses no message: a new receive
 * on the same receiver gets exactly the ones not yet returned, in order.
 * The hand is freed after the drop (ASan catches a stored waker woken
 * later). A second pass drops the whole receiver at that point instead:
 * the other receiver is unaffected and nothing leaks (counting allocator).
 */
static void run_cut(int cut, bool drop_receiver)
{
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx, *other;
    assert_ok(asyncio_broadcast_channel(&tx, &rx, sizeof(uint64_t), 4));
    assert_ok(asyncio_broadcast_subscribe(tx, &other));
    hand *h = hand_new();
    asyncio_broadcast_recv r;
    asyncio_broadcast_recv_init(&r, rx);
    uint64_t got[4], v;
    int n = 0, sent = 0;
    bool tx_alive = true;
    for (int step = 0; step < cut; step++) {
        switch (step) {
        case 0:
        case 5:
            assert_int_equal(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_PENDING);
            break;
        case 1:
        case 2:
            send_u64(tx, 10 + (uint64_t)sent++);
            break;
        case 3:
        case 4:
            assert_ok(asyncio_broadcast_recv_poll(&r, &h->cx, &got[n]));
            n++;
            break;
        case 6:
            asyncio_broadcast_sender_drop(tx);
            tx_alive = false;
            break;
        default:
            assert_err(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_ECLOSED);
            break;
        }
    }
    asyncio_broadcast_recv_drop(&r);
    memset(&r, 0xA5, sizeof r);
    hand_free(h); /* nothing may wake it any more */
    if (drop_receiver)
        asyncio_broadcast_receiver_drop(rx);
    while (sent < 2)
        send_u64(tx, 10 + (uint64_t)sent++);
    if (tx_alive)
        asyncio_broadcast_sender_drop(tx);
    if (!drop_receiver) { /* the rest, through a fresh receive */
        hand *h2 = hand_new();
        asyncio_broadcast_recv r2;
        asyncio_broadcast_recv_init(&r2, rx);
        int rc;
        while ((rc = asyncio_broadcast_recv_poll(&r2, &h2->cx, &v)) == 0)
            got[n++] = v;
        assert_err(rc, ASYNCIO_ECLOSED);
        asyncio_broadcast_recv_drop(&r2);
        hand_free(h2);
        assert_int_equal(n, 2); /* each message exactly once, in order */
        assert_int_equal(got[0], 10);
        assert_int_equal(got[1], 11);
        asyncio_broadcast_receiver_drop(rx);
    }
    for (uint64_t m = 10; m < 12; m++) {
        assert_ok(asyncio_broadcast_try_recv(other, &v));
        assert_int_equal(v, m);
    }
    assert_err(asyncio_broadcast_try_recv(other, &v), ASYNCIO_ECLOSED);
    asyncio_broadcast_receiver_drop(other); /* the last reference: freed (teardown counts) */
}

static void test_broadcast_dropping_a_receive_at_every_step_loses_no_message(void **state)
{
    (void)state;
    for (int cut = 0; cut <= 8; cut++)
        run_cut(cut, false);
}

static void test_broadcast_dropping_a_receiver_at_every_step_leaks_nothing(void **state)
{
    (void)state;
    for (int cut = 0; cut <= 8; cut++)
        run_cut(cut, true);
}

static void test_broadcast_send_and_recv_allocate_nothing(void **state)
{
    (void)state;
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx;
    assert_ok(asyncio_broadcast_channel(&tx, &rx, sizeof(uint64_t), 4));
    hand *h = hand_new();
    asyncio_broadcast_recv r;
    asyncio_broadcast_recv_init(&r, rx);
    long before = support_alloc_total();
    uint64_t v;
    for (uint64_t m = 0; m < 100; m++) {
        assert_int_equal(asyncio_broadcast_recv_poll(&r, &h->cx, &v), ASYNCIO_PENDING);
        send_u64(tx, m);
        assert_ok(asyncio_broadcast_recv_poll(&r, &h->cx, &v));
        assert_int_equal(v, m);
    }
    assert_int_equal(support_alloc_total(), before);
    asyncio_broadcast_recv_drop(&r);
    hand_free(h);
    asyncio_broadcast_receiver_drop(rx);
    asyncio_broadcast_sender_drop(tx);
}

/*
 * Regression: the last sender's drop wakes the waiting receivers in batches,
 * unlocking in between. A wake that drops every receiver (here: the first
 * woken task's waker does it) released the channel's last reference while
 * the closer still had batches to go, and the closer relocked freed memory.
 * The closer now keeps its reference until the wake-up is over.
 */
enum { CLOSE_RX = 40 }; /* more than one wake batch */

typedef struct dropping_waker {
    asyncio_broadcast_receiver *rx[CLOSE_RX];
    asyncio_broadcast_recv r[CLOSE_RX];
    _Atomic int wakes;
} dropping_waker;

static asyncio_waker dw_clone(const void *d);

static void dw_wake(const void *d)
{
    dropping_waker *dw = (dropping_waker *)d;
    if (atomic_fetch_add(&dw->wakes, 1) != 0)
        return;
    for (int i = 0; i < CLOSE_RX; i++) { /* every receiver goes, from inside the wake */
        asyncio_broadcast_recv_drop(&dw->r[i]);
        asyncio_broadcast_receiver_drop(dw->rx[i]);
    }
}

static void dw_drop(const void *d)
{
    (void)d;
}

static const asyncio_waker_vtable dw_vt = {dw_clone, dw_wake, dw_wake, dw_drop};

static asyncio_waker dw_clone(const void *d)
{
    return (asyncio_waker){&dw_vt, d};
}

static void
test_broadcast_receivers_dropped_by_a_wake_during_close_keep_the_channel_alive(void **state)
{
    (void)state;
    dropping_waker *dw = calloc(1, sizeof *dw);
    assert_non_null(dw);
    asyncio_waker w = {&dw_vt, dw};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&w);
    asyncio_broadcast_sender *tx;
    assert_ok(asyncio_broadcast_channel(&tx, &dw->rx[0], sizeof(uint64_t), 2));
    for (int i = 1; i < CLOSE_RX; i++)
        assert_ok(asyncio_broadcast_subscribe(tx, &dw->rx[i]));
    uint64_t v;
    for (int i = 0; i < CLOSE_RX; i++) {
        asyncio_broadcast_recv_init(&dw->r[i], dw->rx[i]);
        assert_int_equal(asyncio_broadcast_recv_poll(&dw->r[i], &cx, &v), ASYNCIO_PENDING);
    }
    asyncio_broadcast_sender_drop(tx); /* the first wake drops every receiver */
    assert_true(atomic_load(&dw->wakes) >= 1);
    free(dw); /* the channel went with the closer's reference (teardown counts the blocks) */
}

/* ---- stress: a sender thread, receiver tasks on runtime threads --------- */

#define STRESS_RX   4
#define STRESS_MSGS 20000
#define STRESS_CAP  16

typedef struct rx_task {
    asyncio_broadcast_receiver *rx;
    asyncio_broadcast_recv r;
    uint64_t expect; /* next message number expected */
    uint64_t received, lagged;
} rx_task;

static int rx_task_poll(void *state, asyncio_context *cx, void *output)
{
    rx_task *t = state;
    for (;;) {
        uint64_t v;
        int rc = asyncio_broadcast_recv_poll(&t->r, cx, &v);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_ECLOSED) {
            memcpy(output, t, sizeof *t);
            return 0;
        }
        if (rc == ASYNCIO_EOVERFLOW) {
            uint64_t n = asyncio_broadcast_receiver_lagged(t->rx);
            assert_true(n > 0);
            t->lagged += n;
            t->expect += n; /* the next message is exactly the one after the gap */
            continue;
        }
        assert_ok(rc);
        assert_int_equal(v, t->expect); /* in order, nothing skipped silently */
        t->expect++;
        t->received++;
    }
}

static void rx_task_drop(void *state)
{
    asyncio_broadcast_recv_drop(&((rx_task *)state)->r);
}

static const asyncio_task_vtable rx_task_vt = {rx_task_poll, rx_task_drop, NULL, sizeof(rx_task),
                                               sizeof(rx_task)};

typedef struct rx_arg {
    asyncio_broadcast_receiver *rx;
    rx_task out;
} rx_arg;

static void *rx_thread(void *p)
{
    rx_arg *a = p;
    asyncio_runtime *rt = support_runtime_new(NULL);
    rx_task t = {.rx = a->rx};
    asyncio_broadcast_recv_init(&t.r, a->rx);
    assert_ok(asyncio_runtime_block_on(rt, &rx_task_vt, &t, &a->out));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void stress(size_t capacity)
{
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx[STRESS_RX];
    assert_ok(asyncio_broadcast_channel(&tx, &rx[0], sizeof(uint64_t), capacity));
    for (int i = 1; i < STRESS_RX; i++)
        assert_ok(asyncio_broadcast_subscribe(tx, &rx[i]));
    pthread_t th[STRESS_RX];
    rx_arg args[STRESS_RX];
    for (int i = 0; i < STRESS_RX; i++) {
        args[i] = (rx_arg){.rx = rx[i]};
        assert_int_equal(pthread_create(&th[i], NULL, rx_thread, &args[i]), 0);
    }
    uint64_t msgs = support_scale(STRESS_MSGS);
    for (uint64_t m = 0; m < msgs; m++) {
        send_u64(tx, m);
        if (m % 64 == 0)
            sched_yield(); /* let receivers keep up sometimes, and lag other times */
    }
    asyncio_broadcast_sender_drop(tx);
    for (int i = 0; i < STRESS_RX; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].out.received + args[i].out.lagged, msgs);
        assert_int_equal(args[i].out.expect, msgs);
        asyncio_broadcast_receiver_drop(rx[i]);
    }
}

static void test_broadcast_each_receiver_accounts_for_every_message_across_threads(void **state)
{
    (void)state;
    stress(STRESS_CAP);
}

/* The same with a one-slot ring: nearly every receive races an overwrite or lags. */
static void test_broadcast_one_slot_ring_accounts_for_every_message_across_threads(void **state)
{
    (void)state;
    stress(1);
}

/* Every allocation of creation and subscribe failing in turn: ENOMEM, nothing leaks. */
static void test_broadcast_out_of_memory_at_each_allocation_leaves_nothing(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        failing_alloc_begin(n);
        asyncio_broadcast_sender *tx;
        asyncio_broadcast_receiver *rx, *rx2;
        int rc = asyncio_broadcast_channel(&tx, &rx, sizeof(uint64_t), 4);
        if (rc == 0) {
            rc = asyncio_broadcast_subscribe(tx, &rx2);
            if (rc == 0)
                asyncio_broadcast_receiver_drop(rx2);
            uint64_t v = 1;
            assert_ok(asyncio_broadcast_send(tx, &v)); /* the channel still works */
            asyncio_broadcast_receiver_drop(rx);
            asyncio_broadcast_sender_drop(tx);
        }
        bool failed = failing_alloc_failed();
        failing_alloc_end();
        if (!failed) {
            assert_ok(rc);
            break;
        }
        assert_err(rc, ASYNCIO_ENOMEM);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_broadcast_invalid_arguments),
        support_test(test_broadcast_every_receiver_sees_every_message_in_order),
        support_test(test_broadcast_lagging_receiver_gets_overflow_with_count_then_continues),
        support_test(test_broadcast_send_wakes_every_waiting_receiver),
        support_test(test_broadcast_last_sender_drop_closes_after_the_backlog),
        support_test(
            test_broadcast_receivers_dropped_by_a_wake_during_close_keep_the_channel_alive),
        support_test(test_broadcast_dropping_a_receive_at_every_step_loses_no_message),
        support_test(test_broadcast_dropping_a_receiver_at_every_step_leaks_nothing),
        support_test(test_broadcast_send_and_recv_allocate_nothing),
        support_test(test_broadcast_out_of_memory_at_each_allocation_leaves_nothing),
        support_test(test_broadcast_each_receiver_accounts_for_every_message_across_threads),
        support_test(test_broadcast_one_slot_ring_accounts_for_every_message_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Watch channel: the latest value, changed() and its seen-version
 * bookkeeping (a slow receiver sees the latest value once, never a queue),
 * borrow / borrow_and_update, subscribe and clone, closing, waking every
 * waiting receiver, cancellation at every step (a dropped changed() never
 * swallows a change), no allocation per send, and a thread stress where
 * receivers only ever see newer values and all end on the last one.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/runtime.h"
#include "failing_alloc.h"
#include "asyncio/watch_channel.h"
#include "hand_waker.h"
#include "support.h"

typedef struct pair {
    uint64_t a, b; /* b == 2 * a always: a torn copy would show */
} pair;

static pair mk(uint64_t a)
{
    return (pair){a, 2 * a};
}

static void send_pair(asyncio_watch_sender *tx, uint64_t a)
{
    pair p = mk(a);
    assert_ok(asyncio_watch_send(tx, &p));
}

static uint64_t borrow_a(asyncio_watch_receiver *rx)
{
    pair p;
    assert_ok(asyncio_watch_borrow(rx, &p));
    assert_int_equal(p.b, 2 * p.a);
    return p.a;
}

static void test_watch_invalid_arguments(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx;
    pair p = mk(1);
    assert_err(asyncio_watch_channel(NULL, &rx, sizeof p, &p), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_channel(&tx, NULL, sizeof p, &p), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_channel(&tx, &rx, 0, &p), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_channel(&tx, &rx, sizeof p, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_channel(&tx, &rx, SIZE_MAX, &p), ASYNCIO_EINVAL);
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
    assert_err(asyncio_watch_send(NULL, &p), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_send(tx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_send_replace(tx, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_borrow(rx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_borrow(NULL, &p), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_sender_borrow(tx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_has_changed(NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_subscribe(tx, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_watch_receiver_clone(NULL, &rx), ASYNCIO_EINVAL);
    hand *h = hand_new();
    assert_err(asyncio_watch_changed_poll(NULL, &h->cx), ASYNCIO_EINVAL);
    hand_free(h);
    asyncio_watch_receiver_drop(rx);
    asyncio_watch_sender_drop(tx);
    asyncio_watch_sender_drop(NULL);
    asyncio_watch_receiver_drop(NULL);
}

static void test_watch_changed_reports_a_send_once_and_borrow_reads_the_latest(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx;
    pair p = mk(1);
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
    assert_int_equal(borrow_a(rx), 1);
    assert_int_equal(asyncio_watch_has_changed(rx), 0); /* the initial value counts as seen */
    hand *h = hand_new();
    asyncio_watch_changed c;
    asyncio_watch_changed_init(&c, rx);
    assert_int_equal(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_PENDING);
    send_pair(tx, 2);
    assert_int_equal(hand_wakes(h), 1);
    assert_int_equal(asyncio_watch_has_changed(rx), 1);
    assert_ok(asyncio_watch_changed_poll(&c, &h->cx));
    assert_int_equal(asyncio_watch_has_changed(rx), 0);
    assert_int_equal(borrow_a(rx), 2);
    /* A slow receiver: three sends, one change, the latest value. */
    send_pair(tx, 3);
    send_pair(tx, 4);
    send_pair(tx, 5);
    assert_ok(asyncio_watch_changed_poll(&c, &h->cx));
    assert_int_equal(borrow_a(rx), 5);
    assert_int_equal(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_PENDING);
    asyncio_watch_changed_drop(&c);
    /* borrow_and_update marks seen; mark_seen too. */
    send_pair(tx, 6);
    assert_ok(asyncio_watch_borrow_and_update(rx, &p));
    assert_int_equal(p.a, 6);
    assert_int_equal(asyncio_watch_has_changed(rx), 0);
    send_pair(tx, 7);
    asyncio_watch_mark_seen(rx);
    assert_int_equal(asyncio_watch_has_changed(rx), 0);
    assert_ok(asyncio_watch_sender_borrow(tx, &p));
    assert_int_equal(p.a, 7);
    hand_free(h);
    asyncio_watch_receiver_drop(rx);
    asyncio_watch_sender_drop(tx);
}

static void test_watch_subscribe_starts_seen_and_clone_copies_what_was_seen(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx, *sub, *cl;
    pair p = mk(1);
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
    send_pair(tx, 2); /* rx has not seen it */
    assert_ok(asyncio_watch_subscribe(tx, &sub));
    assert_ok(asyncio_watch_receiver_clone(rx, &cl));
    assert_int_equal(asyncio_watch_receiver_count(tx), 3);
    assert_int_equal(asyncio_watch_has_changed(sub), 0);
    assert_int_equal(asyncio_watch_has_changed(cl), 1);
    assert_int_equal(asyncio_watch_has_changed(rx), 1);
    asyncio_watch_receiver_drop(sub);
    asyncio_watch_receiver_drop(cl);
    asyncio_watch_receiver_drop(rx);
    assert_int_equal(asyncio_watch_receiver_count(tx), 0);
    assert_err(asyncio_watch_send(tx, &p), ASYNCIO_ECLOSED); /* nobody listens: not stored */
    pair old, q = mk(9);
    assert_ok(asyncio_watch_sender_borrow(tx, &old));
    assert_int_equal(old.a, 2);
    assert_ok(asyncio_watch_send_replace(tx, &q, &old)); /* stored anyway */
    assert_int_equal(old.a, 2);
    assert_ok(asyncio_watch_subscribe(tx, &sub));
    assert_int_equal(borrow_a(sub), 9);
    asyncio_watch_receiver_drop(sub);
    asyncio_watch_sender_drop(tx);
}

static void test_watch_send_wakes_every_waiting_receiver(void **state)
{
    (void)state;
    enum { RX = 40 }; /* more than one wake batch */
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx[RX];
    pair p = mk(0);
    assert_ok(asyncio_watch_channel(&tx, &rx[0], sizeof p, &p));
    for (int i = 1; i < RX; i++)
        assert_ok(asyncio_watch_subscribe(tx, &rx[i]));
    hand *h[RX];
    asyncio_watch_changed c[RX];
    for (int i = 0; i < RX; i++) {
        h[i] = hand_new();
        asyncio_watch_changed_init(&c[i], rx[i]);
        assert_int_equal(asyncio_watch_changed_poll(&c[i], &h[i]->cx), ASYNCIO_PENDING);
        assert_int_equal(asyncio_watch_changed_poll(&c[i], &h[i]->cx), ASYNCIO_PENDING);
    }
    send_pair(tx, 1);
    for (int i = 0; i < RX; i++) {
        assert_int_equal(hand_wakes(h[i]), 1);
        assert_ok(asyncio_watch_changed_poll(&c[i], &h[i]->cx));
        assert_int_equal(borrow_a(rx[i]), 1);
        asyncio_watch_changed_drop(&c[i]);
        hand_free(h[i]);
        asyncio_watch_receiver_drop(rx[i]);
    }
    asyncio_watch_sender_drop(tx);
}

static void test_watch_last_sender_drop_reports_the_final_change_then_closed(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx, *other;
    pair p = mk(1);
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
    assert_ok(asyncio_watch_subscribe(tx, &other));
    asyncio_watch_sender *tx2 = asyncio_watch_sender_clone(tx);
    hand *h = hand_new();
    asyncio_watch_changed c;
    asyncio_watch_changed_init(&c, rx);
    assert_int_equal(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_PENDING);
    asyncio_watch_sender_drop(tx); /* one left: not closed */
    assert_int_equal(hand_wakes(h), 0);
    send_pair(tx2, 2);
    asyncio_watch_sender_drop(tx2);
    assert_int_equal(hand_wakes(h), 1);
    assert_ok(asyncio_watch_changed_poll(&c, &h->cx)); /* the change sent before closing first */
    assert_err(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_ECLOSED);
    assert_err(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_ECLOSED);
    assert_int_equal(borrow_a(rx), 2); /* the last value stays readable */
    assert_int_equal(asyncio_watch_has_changed(other), 1);
    asyncio_watch_mark_seen(other);
    assert_err(asyncio_watch_has_changed(other), ASYNCIO_ECLOSED);
    asyncio_watch_changed_drop(&c);
    hand_free(h);
    asyncio_watch_receiver_drop(rx);
    asyncio_watch_receiver_drop(other);
}

static void test_watch_waiting_changed_is_woken_by_the_close(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx;
    pair p = mk(1);
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
    hand *h = hand_new();
    asyncio_watch_changed c;
    asyncio_watch_changed_init(&c, rx);
    assert_int_equal(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_PENDING);
    asyncio_watch_sender_drop(tx);
    assert_int_equal(hand_wakes(h), 1);
    assert_err(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_ECLOSED);
    asyncio_watch_changed_drop(&c);
    hand_free(h);
    asyncio_watch_receiver_drop(rx); /* the last reference frees the channel */
}

/*
 * The last sender's drop wakes the waiting receivers in batches, unlocking
 * in between; a wake that drops every receiver must not free the channel
 * under the closer (it keeps its reference until the wake-up is over).
 */
enum { CLOSE_RX = 40 }; /* more than one wake batch */

typedef struct dropping_waker {
    asyncio_watch_receiver *rx[CLOSE_RX];
    asyncio_watch_changed c[CLOSE_RX];
    _Atomic int wakes;
} dropping_waker;

static asyncio_waker dw_clone(const void *d);

static void dw_wake(const void *d)
{
    dropping_waker *dw = (dropping_waker *)d;
    if (atomic_fetch_add(&dw->wakes, 1) != 0)
        return;
    for (int i = 0; i < CLOSE_RX; i++) {
        asyncio_watch_changed_drop(&dw->c[i]);
        asyncio_watch_receiver_drop(dw->rx[i]);
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

static void test_watch_receivers_dropped_by_a_wake_during_close_keep_the_channel_alive(void **state)
{
    (void)state;
    dropping_waker *dw = calloc(1, sizeof *dw);
    assert_non_null(dw);
    asyncio_waker w = {&dw_vt, dw};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&w);
    asyncio_watch_sender *tx;
    pair p = mk(1);
    assert_ok(asyncio_watch_channel(&tx, &dw->rx[0], sizeof p, &p));
    for (int i = 1; i < CLOSE_RX; i++)
        assert_ok(asyncio_watch_subscribe(tx, &dw->rx[i]));
    for (int i = 0; i < CLOSE_RX; i++) {
        asyncio_watch_changed_init(&dw->c[i], dw->rx[i]);
        assert_int_equal(asyncio_watch_changed_poll(&dw->c[i], &cx), ASYNCIO_PENDING);
    }
    asyncio_watch_sender_drop(tx); /* the first wake drops every receiver */
    assert_true(atomic_load(&dw->wakes) >= 1);
    free(dw); /* the channel went with the closer's reference (teardown counts the blocks) */
}

/*
 * A changed() dropped after every step of a script (wait; send 2; observe;
 * wait; send 3; the sender goes; observe; closed) never swallows a change:
 * a fresh changed() on the same receiver reports exactly the change the
 * script had not observed yet (if any), then ECLOSED, and the value is the
 * last one sent. The hand is freed after the drop (ASan catches a later
 * wake into it).
 */
static void test_watch_dropping_changed_at_every_step_never_swallows_a_change(void **state)
{
    (void)state;
    for (int cut = 0; cut <= 8; cut++) {
        asyncio_watch_sender *tx;
        asyncio_watch_receiver *rx;
        pair p = mk(1);
        assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
        hand *h = hand_new();
        asyncio_watch_changed c;
        asyncio_watch_changed_init(&c, rx);
        bool unseen = false, tx_alive = true;
        uint64_t last = 1;
        for (int step = 0; step < cut; step++) {
            switch (step) {
            case 0:
            case 3:
                assert_int_equal(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_PENDING);
                break;
            case 1:
            case 4:
                send_pair(tx, ++last);
                unseen = true;
                break;
            case 2:
            case 6:
                assert_ok(asyncio_watch_changed_poll(&c, &h->cx));
                unseen = false;
                break;
            case 5:
                asyncio_watch_sender_drop(tx);
                tx_alive = false;
                break;
            default:
                assert_err(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_ECLOSED);
                break;
            }
        }
        asyncio_watch_changed_drop(&c);
        memset(&c, 0xA5, sizeof c);
        hand_free(h);
        hand *h2 = hand_new();
        asyncio_watch_changed c2;
        asyncio_watch_changed_init(&c2, rx);
        if (unseen)
            assert_ok(asyncio_watch_changed_poll(&c2, &h2->cx)); /* not swallowed */
        if (tx_alive) {
            assert_int_equal(asyncio_watch_changed_poll(&c2, &h2->cx), ASYNCIO_PENDING);
            send_pair(tx, ++last);
            asyncio_watch_sender_drop(tx);
            assert_true(hand_wakes(h2) >= 1);
            assert_ok(asyncio_watch_changed_poll(&c2, &h2->cx));
        }
        assert_err(asyncio_watch_changed_poll(&c2, &h2->cx), ASYNCIO_ECLOSED);
        assert_int_equal(borrow_a(rx), last);
        asyncio_watch_changed_drop(&c2);
        hand_free(h2);
        asyncio_watch_receiver_drop(rx);
    }
}

static void test_watch_send_and_changed_allocate_nothing(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx;
    pair p = mk(0);
    assert_ok(asyncio_watch_channel(&tx, &rx, sizeof p, &p));
    hand *h = hand_new();
    asyncio_watch_changed c;
    asyncio_watch_changed_init(&c, rx);
    long before = support_alloc_total();
    for (uint64_t i = 1; i <= 100; i++) {
        assert_int_equal(asyncio_watch_changed_poll(&c, &h->cx), ASYNCIO_PENDING);
        send_pair(tx, i);
        assert_ok(asyncio_watch_changed_poll(&c, &h->cx));
        assert_int_equal(borrow_a(rx), i);
    }
    assert_int_equal(support_alloc_total(), before);
    asyncio_watch_changed_drop(&c);
    hand_free(h);
    asyncio_watch_receiver_drop(rx);
    asyncio_watch_sender_drop(tx);
}

/* ---- stress: a sender thread, receiver tasks on runtime threads --------- */

#define STRESS_RX    4
#define STRESS_SENDS 20000

typedef struct watcher {
    asyncio_watch_receiver *rx;
    asyncio_watch_changed c;
    uint64_t last;    /* newest value seen */
    uint64_t changes; /* changed() results */
} watcher;

static int watcher_poll(void *state, asyncio_context *cx, void *output)
{
    watcher *w = state;
    for (;;) {
        int rc = asyncio_watch_changed_poll(&w->c, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_ECLOSED) {
            memcpy(output, w, sizeof *w);
            return 0;
        }
        assert_ok(rc);
        pair p;
        assert_ok(asyncio_watch_borrow_and_update(w->rx, &p));
        assert_int_equal(p.b, 2 * p.a); /* never a torn copy */
        assert_true(p.a > w->last);     /* only ever newer */
        w->last = p.a;
        w->changes++;
    }
}

static void watcher_drop(void *state)
{
    asyncio_watch_changed_drop(&((watcher *)state)->c);
}

static const asyncio_task_vtable watcher_vt = {watcher_poll, watcher_drop, NULL, sizeof(watcher),
                                               sizeof(watcher)};

typedef struct w_arg {
    asyncio_watch_receiver *rx;
    watcher out;
} w_arg;

static void *watcher_thread(void *p)
{
    w_arg *a = p;
    asyncio_runtime *rt = support_runtime_new(NULL);
    watcher w = {.rx = a->rx};
    asyncio_watch_changed_init(&w.c, a->rx);
    assert_ok(asyncio_runtime_block_on(rt, &watcher_vt, &w, &a->out));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void test_watch_receivers_on_threads_see_only_newer_values_and_end_on_the_last(void **state)
{
    (void)state;
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx[STRESS_RX];
    pair p = mk(0);
    assert_ok(asyncio_watch_channel(&tx, &rx[0], sizeof p, &p));
    for (int i = 1; i < STRESS_RX; i++)
        assert_ok(asyncio_watch_subscribe(tx, &rx[i]));
    pthread_t th[STRESS_RX];
    w_arg args[STRESS_RX];
    for (int i = 0; i < STRESS_RX; i++) {
        args[i] = (w_arg){.rx = rx[i]};
        assert_int_equal(pthread_create(&th[i], NULL, watcher_thread, &args[i]), 0);
    }
    uint64_t n = support_scale(STRESS_SENDS);
    for (uint64_t i = 1; i <= n; i++) {
        send_pair(tx, i);
        if (i % 32 == 0)
            sched_yield();
    }
    asyncio_watch_sender_drop(tx);
    for (int i = 0; i < STRESS_RX; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].out.last, n); /* the final value was always seen */
        assert_true(args[i].out.changes >= 1 && args[i].out.changes <= n);
        asyncio_watch_receiver_drop(rx[i]);
    }
}

/* Every allocation of creation, subscribe and clone failing in turn: ENOMEM, nothing leaks. */
static void test_watch_out_of_memory_at_each_allocation_leaves_nothing(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        failing_alloc_begin(n);
        asyncio_watch_sender *tx;
        asyncio_watch_receiver *rx, *rx2, *rx3;
        pair p = mk(1);
        int rc = asyncio_watch_channel(&tx, &rx, sizeof p, &p);
        if (rc == 0) {
            rc = asyncio_watch_subscribe(tx, &rx2);
            if (rc == 0) {
                rc = asyncio_watch_receiver_clone(rx2, &rx3);
                if (rc == 0)
                    asyncio_watch_receiver_drop(rx3);
                asyncio_watch_receiver_drop(rx2);
            }
            send_pair(tx, 2); /* the channel still works */
            asyncio_watch_receiver_drop(rx);
            asyncio_watch_sender_drop(tx);
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
        support_test(test_watch_invalid_arguments),
        support_test(test_watch_changed_reports_a_send_once_and_borrow_reads_the_latest),
        support_test(test_watch_subscribe_starts_seen_and_clone_copies_what_was_seen),
        support_test(test_watch_send_wakes_every_waiting_receiver),
        support_test(test_watch_last_sender_drop_reports_the_final_change_then_closed),
        support_test(test_watch_waiting_changed_is_woken_by_the_close),
        support_test(test_watch_receivers_dropped_by_a_wake_during_close_keep_the_channel_alive),
        support_test(test_watch_dropping_changed_at_every_step_never_swallows_a_change),
        support_test(test_watch_send_and_changed_allocate_nothing),
        support_test(test_watch_out_of_memory_at_each_allocation_leaves_nothing),
        support_test(test_watch_receivers_on_threads_see_only_newer_values_and_end_on_the_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

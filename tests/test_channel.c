/*
 * Channels: the bounded mpsc suspends senders exactly at capacity and
 * resumes them (FIFO) as slots free; closed-channel semantics on both
 * sides; cancelled sends leave the queue at once; no allocation per
 * message; the unbounded channel keeps order while it grows; oneshot send /
 * recv with sender-dropped and receiver-dropped detection; the receiver's
 * deferred slot release (freed slots usable at once, queued senders served
 * at once); and threaded stress tests (producers on their own runtimes and
 * plain threads, one consumer; tiny capacities with cancelled sends; a
 * close racing the senders) that must deliver everything in per-producer
 * order (TSan).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "asyncio/channel.h"
#include "asyncio/runtime.h"
#include "hand_waker.h"
#include "support.h"

/* Receives one int by hand-polling; fails unless the result is `want_rc`. */
static int recv_int(asyncio_mpsc_receiver *rx, hand *h, int want_rc)
{
    asyncio_mpsc_recv r;
    asyncio_mpsc_recv_init(&r, rx);
    int v = -1;
    assert_err(asyncio_mpsc_recv_poll(&r, &h->cx, &v), want_rc);
    asyncio_mpsc_recv_drop(&r);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Bounded mpsc                                                              */

static void test_mpsc_bounded_send_suspends_exactly_at_capacity(void **state)
{
    (void)state;
    enum { CAP = 4 };
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), CAP));
    assert_int_equal(asyncio_mpsc_max_capacity(tx), CAP);
    hand h, hr;
    hand_init(&h);
    hand_init(&hr);
    int vals[CAP + 1];
    asyncio_mpsc_send s[CAP + 1];
    for (int i = 0; i < CAP; i++) {
        vals[i] = 100 + i;
        asyncio_mpsc_send_init(&s[i], tx, &vals[i]);
        assert_ok(asyncio_mpsc_send_poll(&s[i], &h.cx));
        assert_int_equal(asyncio_mpsc_capacity(tx), CAP - 1 - i);
    }
    vals[CAP] = 100 + CAP;
    asyncio_mpsc_send_init(&s[CAP], tx, &vals[CAP]);
    assert_int_equal(asyncio_mpsc_send_poll(&s[CAP], &h.cx), ASYNCIO_PENDING); /* full */
    assert_int_equal(asyncio_mpsc_len(rx), CAP);
    assert_int_equal(hand_wakes(&h), 0);
    assert_int_equal(recv_int(rx, &hr, 0), 100); /* frees a slot: the sender resumes */
    assert_int_equal(hand_wakes(&h), 1);
    assert_ok(asyncio_mpsc_send_poll(&s[CAP], &h.cx));
    assert_int_equal(asyncio_mpsc_capacity(tx), 0);
    for (int i = 1; i <= CAP; i++)
        assert_int_equal(recv_int(rx, &hr, 0), 100 + i);
    assert_int_equal(asyncio_mpsc_capacity(tx), CAP);
    for (int i = 0; i <= CAP; i++)
        asyncio_mpsc_send_drop(&s[i]);
    assert_int_equal(hand_refs(&h) + hand_refs(&hr), 0);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_waiting_senders_resume_in_fifo_order(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 1));
    int first = 0;
    assert_ok(asyncio_mpsc_try_send(tx, &first));
    hand h[3], hr;
    hand_init(&hr);
    int vals[3] = {1, 2, 3};
    asyncio_mpsc_send s[3];
    for (int i = 0; i < 3; i++) {
        hand_init(&h[i]);
        asyncio_mpsc_send_init(&s[i], tx, &vals[i]);
        assert_int_equal(asyncio_mpsc_send_poll(&s[i], &h[i].cx), ASYNCIO_PENDING);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(recv_int(rx, &hr, 0), i); /* 0, then each sender's value */
        for (int j = 0; j < 3; j++)
            assert_int_equal(hand_wakes(&h[j]), j <= i ? 1 : 0);
        assert_ok(asyncio_mpsc_send_poll(&s[i], &h[i].cx));
        asyncio_mpsc_send_drop(&s[i]);
    }
    assert_int_equal(recv_int(rx, &hr, 0), 3);
    assert_int_equal(hand_refs(&h[0]) + hand_refs(&h[1]) + hand_refs(&h[2]), 0);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_try_send_when_full_is_eagain_and_never_overtakes(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 2));
    int v = 7;
    assert_ok(asyncio_mpsc_try_send(tx, &v));
    assert_ok(asyncio_mpsc_try_send(tx, &v));
    assert_err(asyncio_mpsc_try_send(tx, &v), ASYNCIO_EAGAIN);
    hand h, hr;
    hand_init(&h);
    hand_init(&hr);
    int w = 8;
    asyncio_mpsc_send s;
    asyncio_mpsc_send_init(&s, tx, &w);
    assert_int_equal(asyncio_mpsc_send_poll(&s, &h.cx), ASYNCIO_PENDING);
    assert_int_equal(recv_int(rx, &hr, 0), 7); /* the slot goes to the queued sender */
    assert_err(asyncio_mpsc_try_send(tx, &v), ASYNCIO_EAGAIN);
    assert_ok(asyncio_mpsc_send_poll(&s, &h.cx));
    assert_int_equal(recv_int(rx, &hr, 0), 7);
    assert_int_equal(recv_int(rx, &hr, 0), 8);
    int out;
    assert_err(asyncio_mpsc_try_recv(rx, &out), ASYNCIO_EAGAIN);
    asyncio_mpsc_send_drop(&s);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_recv_is_closed_once_senders_are_gone_and_buffer_drained(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 4));
    asyncio_mpsc_sender *tx2 = asyncio_mpsc_sender_clone(tx);
    int a = 1, b = 2;
    assert_ok(asyncio_mpsc_try_send(tx, &a));
    assert_ok(asyncio_mpsc_try_send(tx2, &b));
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_sender_drop(tx2);
    hand h;
    hand_init(&h);
    assert_int_equal(recv_int(rx, &h, 0), 1);
    assert_int_equal(recv_int(rx, &h, 0), 2);
    recv_int(rx, &h, ASYNCIO_ECLOSED);
    recv_int(rx, &h, ASYNCIO_ECLOSED); /* and again */
    int out;
    assert_err(asyncio_mpsc_try_recv(rx, &out), ASYNCIO_ECLOSED);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_pending_recv_is_woken_by_the_last_sender_drop(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 4));
    asyncio_mpsc_sender *tx2 = asyncio_mpsc_sender_clone(tx);
    hand h;
    hand_init(&h);
    asyncio_mpsc_recv r;
    asyncio_mpsc_recv_init(&r, rx);
    int v;
    assert_int_equal(asyncio_mpsc_recv_poll(&r, &h.cx, &v), ASYNCIO_PENDING);
    asyncio_mpsc_sender_drop(tx);
    assert_int_equal(hand_wakes(&h), 0); /* one sender is left */
    assert_int_equal(asyncio_mpsc_recv_poll(&r, &h.cx, &v), ASYNCIO_PENDING);
    asyncio_mpsc_sender_drop(tx2);
    assert_int_equal(hand_wakes(&h), 1);
    assert_err(asyncio_mpsc_recv_poll(&r, &h.cx, &v), ASYNCIO_ECLOSED);
    asyncio_mpsc_recv_drop(&r);
    assert_int_equal(hand_refs(&h), 0);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_receiver_close_fails_waiting_and_later_senders(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 1));
    int a = 5, b = 6;
    assert_ok(asyncio_mpsc_try_send(tx, &a));
    hand h, hr;
    hand_init(&h);
    hand_init(&hr);
    asyncio_mpsc_send s;
    asyncio_mpsc_send_init(&s, tx, &b);
    assert_int_equal(asyncio_mpsc_send_poll(&s, &h.cx), ASYNCIO_PENDING);
    assert_false(asyncio_mpsc_sender_is_closed(tx));
    asyncio_mpsc_receiver_close(rx);
    assert_true(asyncio_mpsc_sender_is_closed(tx));
    assert_int_equal(hand_wakes(&h), 1);
    assert_err(asyncio_mpsc_send_poll(&s, &h.cx), ASYNCIO_ECLOSED);
    asyncio_mpsc_send_drop(&s);
    assert_err(asyncio_mpsc_try_send(tx, &b), ASYNCIO_ECLOSED);
    assert_int_equal(recv_int(rx, &hr, 0), 5); /* buffered elements are still delivered */
    recv_int(rx, &hr, ASYNCIO_ECLOSED);        /* then closed, though a sender lives */
    assert_int_equal(hand_refs(&h) + hand_refs(&hr), 0);
    asyncio_mpsc_receiver_drop(rx);
    assert_err(asyncio_mpsc_try_send(tx, &b), ASYNCIO_ECLOSED);
    asyncio_mpsc_sender_drop(tx); /* the last reference frees the channel */
}

static void test_mpsc_cancelled_send_leaves_the_queue_at_once(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 1));
    int a = 1, b = 2, c = 3;
    assert_ok(asyncio_mpsc_try_send(tx, &a));
    hand hb, hc, hr;
    hand_init(&hb);
    hand_init(&hc);
    hand_init(&hr);
    asyncio_mpsc_send sb, sc;
    asyncio_mpsc_send_init(&sb, tx, &b);
    asyncio_mpsc_send_init(&sc, tx, &c);
    assert_int_equal(asyncio_mpsc_send_poll(&sb, &hb.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_mpsc_send_poll(&sc, &hc.cx), ASYNCIO_PENDING);
    asyncio_mpsc_send_drop(&sb);
    memset(&sb, 0x5A, sizeof sb); /* reused memory: the channel must not touch it */
    assert_int_equal(hand_refs(&hb), 0);
    assert_int_equal(recv_int(rx, &hr, 0), 1);
    assert_int_equal(hand_wakes(&hc), 1);
    assert_ok(asyncio_mpsc_send_poll(&sc, &hc.cx));
    assert_int_equal(recv_int(rx, &hr, 0), 3);
    /* A send granted a slot and dropped before it used it hands the slot on. */
    assert_ok(asyncio_mpsc_try_send(tx, &a));
    asyncio_mpsc_send_init(&sb, tx, &b);
    asyncio_mpsc_send_init(&sc, tx, &c);
    assert_int_equal(asyncio_mpsc_send_poll(&sb, &hb.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_mpsc_send_poll(&sc, &hc.cx), ASYNCIO_PENDING);
    assert_int_equal(recv_int(rx, &hr, 0), 1); /* slot granted to sb */
    asyncio_mpsc_send_drop(&sb);               /* ... which gives it to sc */
    assert_ok(asyncio_mpsc_send_poll(&sc, &hc.cx));
    assert_int_equal(recv_int(rx, &hr, 0), 3);
    asyncio_mpsc_send_drop(&sc);
    assert_int_equal(hand_refs(&hb) + hand_refs(&hc) + hand_refs(&hr), 0);
    assert_int_equal(asyncio_mpsc_capacity(tx), 1);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_send_and_recv_allocate_nothing(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(uint64_t), 2));
    long before = support_alloc_total();
    hand h, hr;
    hand_init(&h);
    hand_init(&hr);
    asyncio_mpsc_recv r;
    asyncio_mpsc_recv_init(&r, rx);
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t out = 0;
        if (i % 3 == 0) /* sometimes the receiver waits first */
            assert_int_equal(asyncio_mpsc_recv_poll(&r, &hr.cx, &out), ASYNCIO_PENDING);
        asyncio_mpsc_send s[3];
        uint64_t v[3] = {i, i + 1, i + 2};
        for (int k = 0; k < 3; k++) {
            asyncio_mpsc_send_init(&s[k], tx, &v[k]);
            assert_int_equal(asyncio_mpsc_send_poll(&s[k], &h.cx), k < 2 ? 0 : ASYNCIO_PENDING);
        }
        for (int k = 0; k < 3; k++) {
            assert_ok(asyncio_mpsc_recv_poll(&r, &hr.cx, &out));
            assert_true(out == v[k]);
            if (k == 0)
                assert_ok(asyncio_mpsc_send_poll(&s[2], &h.cx));
        }
        for (int k = 0; k < 3; k++)
            asyncio_mpsc_send_drop(&s[k]);
    }
    asyncio_mpsc_recv_drop(&r);
    assert_int_equal(support_alloc_total(), before);
    assert_int_equal(hand_refs(&h) + hand_refs(&hr), 0);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_invalid_arguments(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_err(asyncio_mpsc_channel(NULL, &rx, 4, 4), ASYNCIO_EINVAL);
    assert_err(asyncio_mpsc_channel(&tx, &rx, 0, 4), ASYNCIO_EINVAL);
    assert_err(asyncio_mpsc_channel(&tx, &rx, 4, 0), ASYNCIO_EINVAL);
    assert_err(asyncio_mpsc_channel(&tx, &rx, SIZE_MAX / 2, 4), ASYNCIO_EINVAL);
    assert_err(asyncio_mpsc_unbounded_channel(&tx, &rx, 0), ASYNCIO_EINVAL);
    assert_err(asyncio_mpsc_try_send(NULL, &tx), ASYNCIO_EINVAL);
    assert_err(asyncio_mpsc_try_recv(NULL, &tx), ASYNCIO_EINVAL);
    asyncio_mpsc_sender_drop(NULL);
    asyncio_mpsc_receiver_drop(NULL);
}

/* ------------------------------------------------------------------------ */
/* Unbounded mpsc                                                            */

static void test_mpsc_unbounded_never_suspends_and_keeps_order_while_growing(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_unbounded_channel(&tx, &rx, sizeof(uint32_t)));
    assert_true(asyncio_mpsc_max_capacity(tx) == SIZE_MAX);
    hand h;
    hand_init(&h);
    long before = support_alloc_total();
    uint32_t next_out = 0, next_in = 0, got;
    /* Wrap the ring before each growth: push 10, pop 5, then keep pushing. */
    for (; next_in < 10; next_in++)
        assert_ok(asyncio_mpsc_try_send(tx, &next_in));
    for (int i = 0; i < 5; i++, next_out++) {
        assert_ok(asyncio_mpsc_try_recv(rx, &got));
        assert_int_equal(got, next_out);
    }
    for (; next_in < 10000; next_in++) {
        asyncio_mpsc_send s;
        asyncio_mpsc_send_init(&s, tx, &next_in);
        assert_ok(asyncio_mpsc_send_poll(&s, &h.cx)); /* never pending */
        asyncio_mpsc_send_drop(&s);
        if (next_in % 7 == 0) {
            assert_ok(asyncio_mpsc_try_recv(rx, &got));
            assert_int_equal(got, next_out++);
        }
    }
    assert_true(support_alloc_total() - before <= 12); /* doubling: amortised */
    while (next_out < next_in) {
        assert_ok(asyncio_mpsc_try_recv(rx, &got));
        assert_int_equal(got, next_out++);
    }
    assert_err(asyncio_mpsc_try_recv(rx, &got), ASYNCIO_EAGAIN);
    asyncio_mpsc_sender_drop(tx);
    assert_err(asyncio_mpsc_try_recv(rx, &got), ASYNCIO_ECLOSED);
    asyncio_mpsc_receiver_drop(rx);
}

static void test_mpsc_receiver_dropped_discards_buffer_and_fails_senders(void **state)
{
    (void)state;
    for (int bounded = 0; bounded < 2; bounded++) {
        asyncio_mpsc_sender *tx;
        asyncio_mpsc_receiver *rx;
        if (bounded)
            assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 8));
        else
            assert_ok(asyncio_mpsc_unbounded_channel(&tx, &rx, sizeof(int)));
        int v = 3;
        assert_ok(asyncio_mpsc_try_send(tx, &v));
        asyncio_mpsc_receiver_drop(rx);
        assert_true(asyncio_mpsc_sender_is_closed(tx));
        assert_err(asyncio_mpsc_try_send(tx, &v), ASYNCIO_ECLOSED);
        hand h;
        hand_init(&h);
        asyncio_mpsc_send s;
        asyncio_mpsc_send_init(&s, tx, &v);
        assert_err(asyncio_mpsc_send_poll(&s, &h.cx), ASYNCIO_ECLOSED);
        asyncio_mpsc_send_drop(&s);
        asyncio_mpsc_sender_drop(tx);
    }
}

/* ---- stress: producers on runtimes and plain threads, one consumer ------ */

#define PRODUCERS_RT    3
#define PRODUCERS_PLAIN 1
#define PRODUCERS       (PRODUCERS_RT + PRODUCERS_PLAIN)
#define PER_PRODUCER    20000

typedef struct producer_task {
    asyncio_mpsc_sender *tx;
    uint64_t id;
    uint64_t seq;
    uint64_t msg;
    bool sending;
    asyncio_mpsc_send s;
} producer_task;

static int producer_poll(void *state, asyncio_context *cx, void *output)
{
    producer_task *p = state;
    (void)output;
    while (p->seq < PER_PRODUCER) {
        if (!p->sending) {
            p->msg = p->id << 32 | p->seq;
            asyncio_mpsc_send_init(&p->s, p->tx, &p->msg);
            p->sending = true;
        }
        int rc = asyncio_mpsc_send_poll(&p->s, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        asyncio_mpsc_send_drop(&p->s);
        p->sending = false;
        p->seq++;
    }
    return 0;
}

static void producer_drop(void *state)
{
    producer_task *p = state;
    if (p->sending)
        asyncio_mpsc_send_drop(&p->s);
    asyncio_mpsc_sender_drop(p->tx); /* each producer owns one sender reference */
}

static const asyncio_task_vtable producer_vt = {producer_poll, producer_drop, NULL,
                                                sizeof(producer_task), 0};

typedef struct producer_arg {
    asyncio_mpsc_sender *tx;
    uint64_t id;
} producer_arg;

static void *producer_runtime_thread(void *arg)
{
    producer_arg *a = arg;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    producer_task p = {.tx = a->tx, .id = a->id};
    assert_ok(asyncio_runtime_block_on(rt, &producer_vt, &p, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void *producer_plain_thread(void *arg)
{
    producer_arg *a = arg;
    for (uint64_t seq = 0; seq < PER_PRODUCER;) {
        uint64_t msg = a->id << 32 | seq;
        int rc = asyncio_mpsc_try_send(a->tx, &msg);
        if (rc == ASYNCIO_EAGAIN) {
            sched_yield();
            continue;
        }
        assert_ok(rc);
        seq++;
    }
    asyncio_mpsc_sender_drop(a->tx);
    return NULL;
}

typedef struct consumer_task {
    asyncio_mpsc_receiver *rx;
    asyncio_mpsc_recv r;
    uint64_t next[PRODUCERS];
    uint64_t total;
} consumer_task;

static int consumer_poll(void *state, asyncio_context *cx, void *output)
{
    consumer_task *c = state;
    (void)output;
    for (;;) {
        uint64_t msg;
        int rc = asyncio_mpsc_recv_poll(&c->r, cx, &msg);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_ECLOSED)
            return 0; /* every sender is gone and the buffer is drained */
        assert_ok(rc);
        uint64_t id = msg >> 32, seq = msg & 0xffffffffu;
        assert_true(id < PRODUCERS);
        assert_true(seq == c->next[id]); /* per-producer order */
        c->next[id]++;
        c->total++;
    }
}

static void consumer_drop(void *state)
{
    consumer_task *c = state;
    asyncio_mpsc_recv_drop(&c->r);
}

static int consumer_poll_out(void *state, asyncio_context *cx, void *output)
{
    int rc = consumer_poll(state, cx, output);
    if (rc != ASYNCIO_PENDING)
        memcpy(output, state, sizeof(consumer_task));
    return rc;
}

static const asyncio_task_vtable consumer_out_vt = {consumer_poll_out, consumer_drop, NULL,
                                                    sizeof(consumer_task), sizeof(consumer_task)};

static void test_mpsc_many_producers_on_threads_deliver_everything_in_order(void **state)
{
    (void)state;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(uint64_t), 8));
    pthread_t th[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg){asyncio_mpsc_sender_clone(tx), (uint64_t)i};
        assert_int_equal(
            pthread_create(&th[i], NULL,
                           i < PRODUCERS_RT ? producer_runtime_thread : producer_plain_thread,
                           &args[i]),
            0);
    }
    asyncio_mpsc_sender_drop(tx); /* only the producers' references are left */
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    consumer_task c;
    memset(&c, 0, sizeof c);
    c.rx = rx;
    asyncio_mpsc_recv_init(&c.r, rx);
    consumer_task out;
    assert_ok(asyncio_runtime_block_on(rt, &consumer_out_vt, &c, &out));
    assert_ok(asyncio_runtime_free(rt));
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(out.next[i], PER_PRODUCER);
    }
    assert_int_equal(out.total, (uint64_t)PRODUCERS * PER_PRODUCER);
    asyncio_mpsc_receiver_drop(rx);
}

/* ---- the receiver's deferred slot release and its wake-ups ---------------- */

static void test_mpsc_freed_slots_are_usable_at_once_by_later_sends(void **state)
{
    (void)state;
    enum { CAP = 4 };
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), CAP));
    hand h, hr;
    hand_init(&h);
    hand_init(&hr);
    int next_in = 0, next_out = 0;
    for (; next_in < CAP; next_in++)
        assert_ok(asyncio_mpsc_try_send(tx, &next_in));
    /* The receiver frees two slots (its permits are deferred): both are free at once. */
    assert_int_equal(recv_int(rx, &hr, 0), next_out++);
    assert_int_equal(recv_int(rx, &hr, 0), next_out++);
    assert_int_equal(asyncio_mpsc_capacity(tx), 2);
    asyncio_mpsc_send s;
    asyncio_mpsc_send_init(&s, tx, &next_in);
    assert_ok(asyncio_mpsc_send_poll(&s, &h.cx)); /* no suspension while a slot is free */
    asyncio_mpsc_send_drop(&s);
    next_in++;
    assert_ok(asyncio_mpsc_try_send(tx, &next_in));
    next_in++;
    assert_int_equal(asyncio_mpsc_capacity(tx), 0);
    assert_err(asyncio_mpsc_try_send(tx, &next_in), ASYNCIO_EAGAIN); /* full: exactly */
    /* A queued sender is served by the very next receive. */
    asyncio_mpsc_send_init(&s, tx, &next_in);
    assert_int_equal(asyncio_mpsc_send_poll(&s, &h.cx), ASYNCIO_PENDING);
    assert_int_equal(recv_int(rx, &hr, 0), next_out++);
    assert_int_equal(hand_wakes(&h), 1);
    assert_ok(asyncio_mpsc_send_poll(&s, &h.cx));
    asyncio_mpsc_send_drop(&s);
    next_in++;
    while (next_out < next_in)
        assert_int_equal(recv_int(rx, &hr, 0), next_out++);
    assert_int_equal(asyncio_mpsc_capacity(tx), CAP);
    assert_int_equal(asyncio_mpsc_len(rx), 0);
    assert_int_equal(hand_refs(&h) + hand_refs(&hr), 0);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
}

/* Regression: receiver_close did not wake a receive already waiting (it hung). */
static void test_mpsc_pending_recv_is_woken_by_receiver_close(void **state)
{
    (void)state;
    for (int bounded = 0; bounded < 2; bounded++) {
        asyncio_mpsc_sender *tx;
        asyncio_mpsc_receiver *rx;
        if (bounded)
            assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(int), 2));
        else
            assert_ok(asyncio_mpsc_unbounded_channel(&tx, &rx, sizeof(int)));
        hand h;
        hand_init(&h);
        asyncio_mpsc_recv r;
        asyncio_mpsc_recv_init(&r, rx);
        int v;
        assert_int_equal(asyncio_mpsc_recv_poll(&r, &h.cx, &v), ASYNCIO_PENDING);
        asyncio_mpsc_receiver_close(rx); /* e.g. from another thread */
        assert_int_equal(hand_wakes(&h), 1);
        assert_err(asyncio_mpsc_recv_poll(&r, &h.cx, &v), ASYNCIO_ECLOSED);
        asyncio_mpsc_recv_drop(&r);
        assert_int_equal(hand_refs(&h), 0);
        asyncio_mpsc_receiver_drop(rx);
        asyncio_mpsc_sender_drop(tx);
    }
}

/* ---- stress: tiny capacities, cancelled sends, producers on threads ------ */

#define TINY_RT    2
#define TINY_PLAIN 2
#define TINY_PROD  (TINY_RT + TINY_PLAIN)
#define TINY_PER   20000

typedef struct tiny_producer {
    asyncio_mpsc_sender *tx;
    uint64_t id, seq, count, msg;
    unsigned rng;
    bool sending;
    asyncio_mpsc_send s;
} tiny_producer;

/*
 * Sends count messages; now and then cancels a pending send and sends the
 * same message again (a slot granted to the cancelled send is handed on).
 */
static int tiny_producer_poll(void *state, asyncio_context *cx, void *output)
{
    tiny_producer *p = state;
    (void)output;
    bool cancelled = false;
    while (p->seq < p->count) {
        if (!p->sending) {
            p->msg = p->id << 32 | p->seq;
            asyncio_mpsc_send_init(&p->s, p->tx, &p->msg);
            p->sending = true;
        }
        int rc = asyncio_mpsc_send_poll(&p->s, cx);
        if (rc == ASYNCIO_PENDING) {
            p->rng = p->rng * 1103515245u + 12345u;
            if (cancelled || (p->rng >> 16) % 4 != 0)
                return rc;
            asyncio_mpsc_send_drop(&p->s); /* not sent: the same message goes again */
            p->sending = false;
            cancelled = true; /* at most once per poll: the next pending poll waits */
            continue;
        }
        assert_ok(rc);
        asyncio_mpsc_send_drop(&p->s);
        p->sending = false;
        p->seq++;
    }
    return 0;
}

static void tiny_producer_drop(void *state)
{
    tiny_producer *p = state;
    if (p->sending)
        asyncio_mpsc_send_drop(&p->s);
    asyncio_mpsc_sender_drop(p->tx);
}

static const asyncio_task_vtable tiny_producer_vt = {tiny_producer_poll, tiny_producer_drop, NULL,
                                                     sizeof(tiny_producer), 0};

static void *tiny_producer_runtime_thread(void *arg)
{
    tiny_producer *p = arg;
    asyncio_runtime *rt = support_runtime_new(NULL);
    assert_ok(asyncio_runtime_block_on(rt, &tiny_producer_vt, p, NULL));
    assert_ok(asyncio_runtime_free(rt));
    return NULL;
}

static void *tiny_producer_plain_thread(void *arg)
{
    tiny_producer *p = arg;
    while (p->seq < p->count) {
        uint64_t msg = p->id << 32 | p->seq;
        int rc = asyncio_mpsc_try_send(p->tx, &msg);
        if (rc == ASYNCIO_EAGAIN) {
            sched_yield();
            continue;
        }
        assert_ok(rc);
        p->seq++;
    }
    asyncio_mpsc_sender_drop(p->tx);
    return NULL;
}

typedef struct tiny_consumer {
    asyncio_mpsc_recv r;
    uint64_t next[TINY_PROD];
    uint64_t total;
} tiny_consumer;

static int tiny_consumer_poll(void *state, asyncio_context *cx, void *output)
{
    tiny_consumer *c = state;
    for (;;) {
        uint64_t msg;
        int rc = asyncio_mpsc_recv_poll(&c->r, cx, &msg);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_ECLOSED) {
            memcpy(output, c, sizeof *c);
            return 0;
        }
        assert_ok(rc);
        uint64_t id = msg >> 32;
        assert_true(id < TINY_PROD);
        assert_true((msg & 0xffffffffu) == c->next[id]); /* per-producer order, no duplicate */
        c->next[id]++;
        c->total++;
    }
}

static void tiny_consumer_drop(void *state)
{
    asyncio_mpsc_recv_drop(&((tiny_consumer *)state)->r);
}

static const asyncio_task_vtable tiny_consumer_vt = {tiny_consumer_poll, tiny_consumer_drop, NULL,
                                                     sizeof(tiny_consumer), sizeof(tiny_consumer)};

static void test_mpsc_tiny_capacity_with_cancelled_sends_delivers_everything_in_order(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 3};
    uint64_t per = support_scale(TINY_PER);
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        asyncio_mpsc_sender *tx;
        asyncio_mpsc_receiver *rx;
        assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(uint64_t), caps[k]));
        pthread_t th[TINY_PROD];
        tiny_producer p[TINY_PROD];
        for (int i = 0; i < TINY_PROD; i++) {
            memset(&p[i], 0, sizeof p[i]);
            p[i].tx = asyncio_mpsc_sender_clone(tx);
            p[i].id = (uint64_t)i;
            p[i].count = per;
            p[i].rng = 77u + (unsigned)i;
            assert_int_equal(pthread_create(&th[i], NULL,
                                            i < TINY_RT ? tiny_producer_runtime_thread
                                                        : tiny_producer_plain_thread,
                                            &p[i]),
                             0);
        }
        asyncio_mpsc_sender_drop(tx);
        asyncio_runtime *rt = support_runtime_new(NULL);
        tiny_consumer c, out;
        memset(&c, 0, sizeof c);
        asyncio_mpsc_recv_init(&c.r, rx);
        assert_ok(asyncio_runtime_block_on(rt, &tiny_consumer_vt, &c, &out));
        assert_ok(asyncio_runtime_free(rt));
        for (int i = 0; i < TINY_PROD; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(out.next[i], per);
        }
        assert_int_equal(out.total, per * TINY_PROD);
        asyncio_mpsc_receiver_drop(rx);
    }
}

/* ---- stress: the receiver closes while senders race to get in ------------ */

#define CLOSE_SENDERS 3
#define CLOSE_ROUNDS  60

typedef struct close_sender {
    asyncio_mpsc_sender *tx;
    uint64_t id;
    uint64_t accepted; /* sends that returned 0 */
} close_sender;

static void *close_sender_thread(void *arg)
{
    close_sender *s = arg;
    for (;;) {
        uint64_t msg = s->id << 32 | s->accepted;
        int rc = asyncio_mpsc_try_send(s->tx, &msg);
        if (rc == ASYNCIO_EAGAIN) {
            sched_yield();
            continue;
        }
        if (rc == ASYNCIO_ECLOSED)
            break;
        assert_ok(rc);
        s->accepted++;
    }
    asyncio_mpsc_sender_drop(s->tx);
    return NULL;
}

/*
 * Every send that returned 0 is received (the receiver drains after its
 * close), none after the first ECLOSED, which stays ECLOSED.
 */
static void
test_mpsc_close_under_load_delivers_every_accepted_message_then_stays_closed(void **state)
{
    (void)state;
    unsigned long rounds = support_scale(CLOSE_ROUNDS);
    for (unsigned long round = 0; round < rounds; round++) {
        asyncio_mpsc_sender *tx;
        asyncio_mpsc_receiver *rx;
        assert_ok(asyncio_mpsc_channel(&tx, &rx, sizeof(uint64_t), 1 + round % 4));
        pthread_t th[CLOSE_SENDERS];
        close_sender s[CLOSE_SENDERS];
        for (int i = 0; i < CLOSE_SENDERS; i++) {
            s[i] = (close_sender){asyncio_mpsc_sender_clone(tx), (uint64_t)i, 0};
            assert_int_equal(pthread_create(&th[i], NULL, close_sender_thread, &s[i]), 0);
        }
        asyncio_mpsc_sender_drop(tx);
        uint64_t next[CLOSE_SENDERS] = {0}, total = 0;
        unsigned long close_after = 50 + round * 37 % 400;
        bool closed = false;
        for (;;) {
            uint64_t msg;
            int rc = asyncio_mpsc_try_recv(rx, &msg);
            if (rc == ASYNCIO_EAGAIN) { /* empty, or (after the close) a send finishing its push */
                sched_yield();
                continue;
            }
            if (rc == ASYNCIO_ECLOSED)
                break;
            assert_ok(rc);
            uint64_t id = msg >> 32;
            assert_true(id < CLOSE_SENDERS);
            assert_true((msg & 0xffffffffu) == next[id]);
            next[id]++;
            if (++total == close_after) {
                asyncio_mpsc_receiver_close(rx);
                closed = true;
            }
        }
        assert_true(closed);
        for (int k = 0; k < 3; k++) { /* closed for good */
            uint64_t msg;
            assert_err(asyncio_mpsc_try_recv(rx, &msg), ASYNCIO_ECLOSED);
        }
        for (int i = 0; i < CLOSE_SENDERS; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(next[i], s[i].accepted); /* every accepted message arrived */
        }
        uint64_t msg;
        assert_err(asyncio_mpsc_try_recv(rx, &msg), ASYNCIO_ECLOSED);
        asyncio_mpsc_receiver_drop(rx);
    }
}

/* ------------------------------------------------------------------------ */
/* oneshot                                                                   */

static void test_oneshot_send_then_recv_delivers_the_value_once(void **state)
{
    (void)state;
    asyncio_oneshot_sender *tx;
    asyncio_oneshot_receiver *rx;
    assert_ok(asyncio_oneshot_channel(&tx, &rx, sizeof(double)));
    assert_false(asyncio_oneshot_sender_is_closed(tx));
    double v = 2.5, out = 0;
    assert_err(asyncio_oneshot_try_recv(rx, &out), ASYNCIO_EAGAIN);
    assert_ok(asyncio_oneshot_send(tx, &v));
    hand h;
    hand_init(&h);
    assert_ok(asyncio_oneshot_recv_poll(rx, &h.cx, &out));
    assert_true(out == 2.5);
    assert_err(asyncio_oneshot_recv_poll(rx, &h.cx, &out), ASYNCIO_ECLOSED); /* only once */
    assert_int_equal(hand_refs(&h), 0);
    asyncio_oneshot_receiver_drop(rx);
}

static void test_oneshot_pending_recv_is_woken_by_send(void **state)
{
    (void)state;
    asyncio_oneshot_sender *tx;
    asyncio_oneshot_receiver *rx;
    assert_ok(asyncio_oneshot_channel(&tx, &rx, sizeof(int)));
    hand h;
    hand_init(&h);
    int out = 0, v = 99;
    assert_int_equal(asyncio_oneshot_recv_poll(rx, &h.cx, &out), ASYNCIO_PENDING);
    assert_ok(asyncio_oneshot_send(tx, &v));
    assert_int_equal(hand_wakes(&h), 1);
    assert_ok(asyncio_oneshot_recv_poll(rx, &h.cx, &out));
    assert_int_equal(out, 99);
    asyncio_oneshot_receiver_drop(rx);
    assert_int_equal(hand_refs(&h), 0);
}

static void test_oneshot_sender_dropped_without_sending_gives_closed(void **state)
{
    (void)state;
    asyncio_oneshot_sender *tx;
    asyncio_oneshot_receiver *rx;
    assert_ok(asyncio_oneshot_channel(&tx, &rx, sizeof(int)));
    hand h;
    hand_init(&h);
    int out;
    assert_int_equal(asyncio_oneshot_recv_poll(rx, &h.cx, &out), ASYNCIO_PENDING);
    asyncio_oneshot_sender_drop(tx);
    assert_int_equal(hand_wakes(&h), 1);
    assert_err(asyncio_oneshot_recv_poll(rx, &h.cx, &out), ASYNCIO_ECLOSED);
    assert_err(asyncio_oneshot_try_recv(rx, &out), ASYNCIO_ECLOSED);
    asyncio_oneshot_receiver_drop(rx);
    assert_int_equal(hand_refs(&h), 0);
}

static void test_oneshot_receiver_dropped_fails_send_and_wakes_poll_closed(void **state)
{
    (void)state;
    asyncio_oneshot_sender *tx;
    asyncio_oneshot_receiver *rx;
    assert_ok(asyncio_oneshot_channel(&tx, &rx, sizeof(int)));
    hand h, hr;
    hand_init(&h);
    hand_init(&hr);
    int out;
    assert_int_equal(asyncio_oneshot_recv_poll(rx, &hr.cx, &out), ASYNCIO_PENDING);
    assert_int_equal(asyncio_oneshot_sender_poll_closed(tx, &h.cx), ASYNCIO_PENDING);
    asyncio_oneshot_receiver_drop(rx); /* cancels the pending receive too */
    assert_int_equal(hand_refs(&hr), 0);
    assert_int_equal(hand_wakes(&h), 1);
    assert_true(asyncio_oneshot_sender_is_closed(tx));
    assert_ok(asyncio_oneshot_sender_poll_closed(tx, &h.cx));
    int v = 1;
    assert_err(asyncio_oneshot_send(tx, &v), ASYNCIO_ECLOSED); /* releases the sender too */
    assert_int_equal(hand_refs(&h), 0);
}

static void test_oneshot_value_sent_and_never_received_is_discarded(void **state)
{
    (void)state;
    asyncio_oneshot_sender *tx;
    asyncio_oneshot_receiver *rx;
    assert_ok(asyncio_oneshot_channel(&tx, &rx, 64));
    char v[64] = "payload";
    assert_ok(asyncio_oneshot_send(tx, v));
    asyncio_oneshot_receiver_drop(rx); /* frees it: the counting allocator checks */
    assert_err(asyncio_oneshot_channel(&tx, &rx, 0), ASYNCIO_EINVAL);
}

/* A task awaits a oneshot filled from another thread. */
typedef struct oneshot_waiter {
    asyncio_oneshot_receiver *rx;
    int value;
} oneshot_waiter;

static int oneshot_waiter_poll(void *state, asyncio_context *cx, void *output)
{
    oneshot_waiter *w = state;
    int rc = asyncio_oneshot_recv_poll(w->rx, cx, &w->value);
    if (rc == 0)
        memcpy(output, &w->value, sizeof w->value);
    return rc;
}

static const asyncio_task_vtable oneshot_waiter_vt = {oneshot_waiter_poll, NULL, NULL,
                                                      sizeof(oneshot_waiter), sizeof(int)};

static void *oneshot_sender_thread(void *arg)
{
    asyncio_oneshot_sender *tx = arg;
    int v = 4242;
    assert_ok(asyncio_oneshot_send(tx, &v));
    return NULL;
}

static void test_oneshot_sent_from_another_thread_wakes_the_task(void **state)
{
    (void)state;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    for (int i = 0; i < 200; i++) {
        asyncio_oneshot_sender *tx;
        asyncio_oneshot_receiver *rx;
        assert_ok(asyncio_oneshot_channel(&tx, &rx, sizeof(int)));
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, oneshot_sender_thread, tx), 0);
        oneshot_waiter w = {.rx = rx};
        int out = 0;
        assert_ok(asyncio_runtime_block_on(rt, &oneshot_waiter_vt, &w, &out));
        assert_int_equal(out, 4242);
        assert_int_equal(pthread_join(th, NULL), 0);
        asyncio_oneshot_receiver_drop(rx);
    }
    assert_ok(asyncio_runtime_free(rt));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_mpsc_bounded_send_suspends_exactly_at_capacity),
        support_test(test_mpsc_waiting_senders_resume_in_fifo_order),
        support_test(test_mpsc_try_send_when_full_is_eagain_and_never_overtakes),
        support_test(test_mpsc_recv_is_closed_once_senders_are_gone_and_buffer_drained),
        support_test(test_mpsc_pending_recv_is_woken_by_the_last_sender_drop),
        support_test(test_mpsc_receiver_close_fails_waiting_and_later_senders),
        support_test(test_mpsc_cancelled_send_leaves_the_queue_at_once),
        support_test(test_mpsc_send_and_recv_allocate_nothing),
        support_test(test_mpsc_invalid_arguments),
        support_test(test_mpsc_unbounded_never_suspends_and_keeps_order_while_growing),
        support_test(test_mpsc_receiver_dropped_discards_buffer_and_fails_senders),
        support_test(test_mpsc_many_producers_on_threads_deliver_everything_in_order),
        support_test(test_mpsc_freed_slots_are_usable_at_once_by_later_sends),
        support_test(test_mpsc_pending_recv_is_woken_by_receiver_close),
        support_test(test_mpsc_tiny_capacity_with_cancelled_sends_delivers_everything_in_order),
        support_test(test_mpsc_close_under_load_delivers_every_accepted_message_then_stays_closed),
        support_test(test_oneshot_send_then_recv_delivers_the_value_once),
        support_test(test_oneshot_pending_recv_is_woken_by_send),
        support_test(test_oneshot_sender_dropped_without_sending_gives_closed),
        support_test(test_oneshot_receiver_dropped_fails_send_and_wakes_poll_closed),
        support_test(test_oneshot_value_sent_and_never_received_is_discarded),
        support_test(test_oneshot_sent_from_another_thread_wakes_the_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

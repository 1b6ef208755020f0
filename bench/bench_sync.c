/*
 * bench_sync: costs of the coordination primitives, next to the plain
 * pthread equivalents measured in the same run.
 *
 * Rows:
 *   sem-try             asyncio_semaphore_try_acquire(1) + _release(1), one thread (ns/op)
 *   sem-future          acquire future: _init + _poll (ready at once) + _release (ns/op)
 *   pthread-mutex       pthread_mutex_lock + _unlock, one thread (ns/op): the floor
 *   mpsc-1to1           bounded mpsc (capacity --cap): 1 producer task on its own
 *                       current-thread runtime thread, awaiting asyncio_mpsc_send
 *                       futures; 1 consumer task on the main thread's runtime
 *                       awaiting asyncio_mpsc_recv (messages/s)
 *   mpsc-4to1           the same with 4 producer threads (each its own runtime)
 *   mpsc-*-mt           producers and the consumer as tasks of one multi-thread
 *                       runtime with 2 workers (producers spawned from the main
 *                       thread, the consumer run by block_on): the setting
 *   condvar-1to1/4to1   a bounded ring guarded by one pthread mutex with two
 *                       condition variables (not_full / not_empty), producers and
 *                       the consumer blocking on them (messages/s)
 *   bcast-1to1/1to8     broadcast channel (capacity --cap): a plain sender thread
 *                       sends --msgs messages (never waits: a slow receiver lags);
 *                       1 or 8 receiver tasks on a multi-thread runtime (2 workers)
 *                       await asyncio_broadcast_recv until ECLOSED. Rate: messages
 *                       delivered (summed over receivers) per second
 *   cvbcast-1to1/1to8   the same semantics with one pthread mutex + one condvar
 *                       (broadcast on every send) and receiver threads
 *   watch-4rx           watch channel: a plain sender thread sends --msgs updates;
 *                       4 receiver tasks (multi-thread runtime, 2 workers) loop on
 *                       changed() + borrow_and_update until ECLOSED. Rate: updates
 *                       sent per second, until every receiver saw the last
 *   cvwatch-4rx         the same with a pthread mutex + condvar + version counter
 *                       and receiver threads
 *
 * Messages are 8-byte integers; the consumer checks per-producer order and
 * the total. Producer threads and runtimes are created before the clock
 * starts (a start flag releases them); the clock stops when the consumer has
 * seen every producer finish (the mpsc consumer gets ASYNCIO_ECLOSED).
 *
 * Reps are interleaved (every row once, then every row again, ...) so that
 * drift in machine load hits all rows alike; each row reports the median,
 * min and max over its reps.
 *
 * Options: --reps N (5), --iters N (5000000, for the ns/op rows),
 * --msgs N (1000000 per mpsc/condvar rep), --cap N (1024), --only SUBSTR
 * (run only the rows whose name contains SUBSTR, e.g. "mpsc" or "4to1"),
 * --quick (a smoke run: 1 rep, 100000 iters, 20000 msgs; checks that every
 * row runs and its checks pass, numbers are meaningless).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asyncio/broadcast.h"
#include "asyncio/channel.h"
#include "asyncio/error.h"
#include "asyncio/runtime.h"
#include "asyncio/sync.h"
#include "asyncio/watch_channel.h"

#define MAX_PRODUCERS 4
#define MAX_REPS      64
#define MAX_RX        8

typedef struct options {
    size_t reps;
    size_t iters;
    size_t msgs;
    size_t cap;
    const char *only; /* run only rows whose name contains this, or NULL */
} options;

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "bench_sync: %s: %s (%s)\n", what, asyncio_strerror(rc),
                asyncio_err_name(rc));
        exit(1);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "bench_sync: %s\n", what);
    exit(1);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Uncontended costs (ns/op)                                                 */

static double run_sem_try(const options *o)
{
    asyncio_semaphore *sem;
    check(asyncio_semaphore_new(&sem, 1), "asyncio_semaphore_new");
    double t0 = now_ns();
    for (size_t i = 0; i < o->iters; i++) {
        if (asyncio_semaphore_try_acquire(sem, 1) != 0)
            die("try_acquire failed uncontended");
        asyncio_semaphore_release(sem, 1);
    }
    double t1 = now_ns();
    check(asyncio_semaphore_free(sem), "asyncio_semaphore_free");
    return (t1 - t0) / (double)o->iters;
}

static asyncio_waker noop_clone(const void *d)
{
    (void)d;
    die("the uncontended acquire never stores a waker");
    return ASYNCIO_WAKER_EMPTY;
}

static void noop_fn(const void *d)
{
    (void)d;
}

static const asyncio_waker_vtable g_noop_vt = {noop_clone, noop_fn, noop_fn, noop_fn};

static double run_sem_future(const options *o)
{
    asyncio_semaphore *sem;
    check(asyncio_semaphore_new(&sem, 1), "asyncio_semaphore_new");
    asyncio_waker w = {&g_noop_vt, NULL};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&w);
    double t0 = now_ns();
    for (size_t i = 0; i < o->iters; i++) {
        asyncio_semaphore_acquire a;
        asyncio_semaphore_acquire_init(&a, sem, 1);
        if (asyncio_semaphore_acquire_poll(&a, &cx) != 0)
            die("acquire pending uncontended");
        asyncio_semaphore_release(sem, 1);
        asyncio_semaphore_acquire_drop(&a);
    }
    double t1 = now_ns();
    check(asyncio_semaphore_free(sem), "asyncio_semaphore_free");
    return (t1 - t0) / (double)o->iters;
}

static double run_pthread_mutex(const options *o)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    double t0 = now_ns();
    for (size_t i = 0; i < o->iters; i++) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    double t1 = now_ns();
    pthread_mutex_destroy(&m);
    return (t1 - t0) / (double)o->iters;
}

/* ------------------------------------------------------------------------ */
/* Bounded mpsc throughput (messages/s)                                      */

static atomic_bool g_go;

static void wait_go(void)
{
    while (!atomic_load_explicit(&g_go, memory_order_acquire))
        sched_yield();
}

typedef struct producer {
    asyncio_mpsc_sender *tx;
    uint64_t id, count, seq, msg;
    bool sending;
    asyncio_mpsc_send s;
} producer;

static int producer_poll(void *state, asyncio_context *cx, void *output)
{
    producer *p = state;
    (void)output;
    while (p->seq < p->count) {
        if (!p->sending) {
            p->msg = p->id << 40 | p->seq;
            asyncio_mpsc_send_init(&p->s, p->tx, &p->msg);
            p->sending = true;
        }
        int rc = asyncio_mpsc_send_poll(&p->s, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        check(rc, "asyncio_mpsc_send_poll");
        p->sending = false;
        p->seq++;
    }
    return 0;
}

static void producer_drop(void *state)
{
    producer *p = state;
    if (p->sending)
        asyncio_mpsc_send_drop(&p->s);
    asyncio_mpsc_sender_drop(p->tx);
}

static const asyncio_task_vtable g_producer_vt = {producer_poll, producer_drop, NULL,
                                                  sizeof(producer), 0};

static void *producer_thread(void *arg)
{
    producer *p = arg;
    asyncio_runtime *rt;
    check(asyncio_runtime_new(&rt, NULL), "asyncio_runtime_new");
    wait_go();
    check(asyncio_runtime_block_on(rt, &g_producer_vt, p, NULL), "producer block_on");
    check(asyncio_runtime_free(rt), "asyncio_runtime_free");
    return NULL;
}

typedef struct consumer {
    asyncio_mpsc_recv r;
    uint64_t next[MAX_PRODUCERS];
    uint64_t total;
} consumer;

static int consumer_poll(void *state, asyncio_context *cx, void *output)
{
    consumer *c = state;
    for (;;) {
        uint64_t msg;
        int rc = asyncio_mpsc_recv_poll(&c->r, cx, &msg);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_ECLOSED) {
            memcpy(output, c, sizeof *c);
            return 0;
        }
        uint64_t id = msg >> 40;
        if (id >= MAX_PRODUCERS || (msg & ((1ull << 40) - 1)) != c->next[id])
            die("mpsc: message out of order");
        c->next[id]++;
        c->total++;
    }
}

static void consumer_drop(void *state)
{
    asyncio_mpsc_recv_drop(&((consumer *)state)->r);
}

static const asyncio_task_vtable g_consumer_vt = {consumer_poll, consumer_drop, NULL,
                                                  sizeof(consumer), sizeof(consumer)};

static double run_mpsc(const options *o, size_t nprod)
{
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    check(asyncio_mpsc_channel(&tx, &rx, sizeof(uint64_t), o->cap), "asyncio_mpsc_channel");
    asyncio_runtime *rt;
    check(asyncio_runtime_new(&rt, NULL), "asyncio_runtime_new");
    atomic_store(&g_go, false);
    pthread_t th[MAX_PRODUCERS];
    producer p[MAX_PRODUCERS];
    for (size_t i = 0; i < nprod; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].tx = asyncio_mpsc_sender_clone(tx);
        p[i].id = i;
        p[i].count = o->msgs / nprod;
        if (pthread_create(&th[i], NULL, producer_thread, &p[i]) != 0)
            die("pthread_create");
    }
    asyncio_mpsc_sender_drop(tx);
    consumer c, out;
    memset(&c, 0, sizeof c);
    asyncio_mpsc_recv_init(&c.r, rx);
    double t0 = now_ns();
    atomic_store_explicit(&g_go, true, memory_order_release);
    check(asyncio_runtime_block_on(rt, &g_consumer_vt, &c, &out), "consumer block_on");
    double t1 = now_ns();
    for (size_t i = 0; i < nprod; i++)
        pthread_join(th[i], NULL);
    if (out.total != (o->msgs / nprod) * nprod)
        die("mpsc: messages lost");
    check(asyncio_runtime_free(rt), "asyncio_runtime_free");
    asyncio_mpsc_receiver_drop(rx);
    return (double)out.total / ((t1 - t0) / 1e9);
}

/* The same producers and consumer, all tasks of one multi-thread runtime. */
static double run_mpsc_mt(const options *o, size_t nprod)
{
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    check(asyncio_mpsc_channel(&tx, &rx, sizeof(uint64_t), o->cap), "asyncio_mpsc_channel");
    asyncio_runtime_options ro = {0};
    ro.flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
    ro.workers = 2;
    asyncio_runtime *rt;
    check(asyncio_runtime_new(&rt, &ro), "asyncio_runtime_new (multi-thread)");
    consumer c, out;
    memset(&c, 0, sizeof c);
    asyncio_mpsc_recv_init(&c.r, rx);
    double t0 = now_ns();
    for (size_t i = 0; i < nprod; i++) {
        producer p;
        memset(&p, 0, sizeof p);
        p.tx = asyncio_mpsc_sender_clone(tx);
        p.id = i;
        p.count = o->msgs / nprod;
        check(asyncio_spawn(rt, &g_producer_vt, &p, NULL), "asyncio_spawn"); /* p is copied */
    }
    asyncio_mpsc_sender_drop(tx);
    check(asyncio_runtime_block_on(rt, &g_consumer_vt, &c, &out), "consumer block_on");
    double t1 = now_ns();
    if (out.total != (o->msgs / nprod) * nprod)
        die("mpsc-mt: messages lost");
    check(asyncio_runtime_free(rt), "asyncio_runtime_free");
    asyncio_mpsc_receiver_drop(rx);
    return (double)out.total / ((t1 - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/* The reference: a pthread mutex + condvar bounded queue                    */

typedef struct cv_queue {
    pthread_mutex_t m;
    pthread_cond_t not_full, not_empty;
    uint64_t *ring;
    size_t cap, head, len;
    size_t producers_left;
} cv_queue;

typedef struct cv_producer {
    cv_queue *q;
    uint64_t id, count;
} cv_producer;

static void *cv_producer_thread(void *arg)
{
    cv_producer *p = arg;
    cv_queue *q = p->q;
    wait_go();
    for (uint64_t seq = 0; seq < p->count; seq++) {
        pthread_mutex_lock(&q->m);
        while (q->len == q->cap)
            pthread_cond_wait(&q->not_full, &q->m);
        q->ring[(q->head + q->len) % q->cap] = p->id << 40 | seq;
        q->len++;
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->m);
    }
    pthread_mutex_lock(&q->m);
    q->producers_left--;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->m);
    return NULL;
}

static double run_condvar(const options *o, size_t nprod)
{
    cv_queue q = {.cap = o->cap, .producers_left = nprod};
    pthread_mutex_init(&q.m, NULL);
    pthread_cond_init(&q.not_full, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    q.ring = malloc(o->cap * sizeof *q.ring);
    if (q.ring == NULL)
        die("malloc");
    atomic_store(&g_go, false);
    pthread_t th[MAX_PRODUCERS];
    cv_producer p[MAX_PRODUCERS];
    for (size_t i = 0; i < nprod; i++) {
        p[i] = (cv_producer){&q, i, o->msgs / nprod};
        if (pthread_create(&th[i], NULL, cv_producer_thread, &p[i]) != 0)
            die("pthread_create");
    }
    uint64_t next[MAX_PRODUCERS] = {0}, total = 0;
    double t0 = now_ns();
    atomic_store_explicit(&g_go, true, memory_order_release);
    pthread_mutex_lock(&q.m);
    for (;;) {
        while (q.len == 0 && q.producers_left > 0)
            pthread_cond_wait(&q.not_empty, &q.m);
        if (q.len == 0)
            break;
        uint64_t msg = q.ring[q.head];
        q.head = (q.head + 1) % q.cap;
        q.len--;
        pthread_cond_signal(&q.not_full);
        uint64_t id = msg >> 40;
        if (id >= MAX_PRODUCERS || (msg & ((1ull << 40) - 1)) != next[id])
            die("condvar: message out of order");
        next[id]++;
        total++;
    }
    pthread_mutex_unlock(&q.m);
    double t1 = now_ns();
    for (size_t i = 0; i < nprod; i++)
        pthread_join(th[i], NULL);
    if (total != (o->msgs / nprod) * nprod)
        die("condvar: messages lost");
    free(q.ring);
    pthread_cond_destroy(&q.not_full);
    pthread_cond_destroy(&q.not_empty);
    pthread_mutex_destroy(&q.m);
    return (double)total / ((t1 - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/* Broadcast 1 -> N (deliveries/s)                                           */

typedef struct bcast_rx_task {
    asyncio_broadcast_receiver *rx;
    asyncio_broadcast_recv r;
    uint64_t expect, received, lagged;
} bcast_rx_task;

static int bcast_rx_poll(void *state, asyncio_context *cx, void *output)
{
    bcast_rx_task *t = state;
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
            t->lagged += n;
            t->expect += n;
            continue;
        }
        check(rc, "asyncio_broadcast_recv_poll");
        if (v != t->expect)
            die("bcast: message out of order");
        t->expect++;
        t->received++;
    }
}

static void bcast_rx_drop(void *state)
{
    bcast_rx_task *t = state;
    asyncio_broadcast_recv_drop(&t->r);
}

static const asyncio_task_vtable g_bcast_rx_vt = {bcast_rx_poll, bcast_rx_drop, NULL,
                                                  sizeof(bcast_rx_task), sizeof(bcast_rx_task)};

typedef struct join_rx {
    asyncio_join_handle *jh[MAX_RX];
    size_t n, next;
    uint64_t delivered, lagged;
} join_rx;

/* Joins every receiver task and sums what they received and missed. */
static int join_bcast_poll(void *state, asyncio_context *cx, void *output)
{
    join_rx *j = state;
    (void)output;
    while (j->next < j->n) {
        bcast_rx_task out;
        int rc = asyncio_join_handle_poll(j->jh[j->next], cx, &out);
        if (rc == ASYNCIO_PENDING)
            return rc;
        check(rc, "broadcast receiver task");
        j->delivered += out.received;
        j->lagged += out.lagged;
        asyncio_join_handle_drop(j->jh[j->next]);
        j->next++;
    }
    memcpy(output, j, sizeof *j);
    return 0;
}

static const asyncio_task_vtable g_join_bcast_vt = {join_bcast_poll, NULL, NULL, sizeof(join_rx),
                                                    sizeof(join_rx)};

typedef struct bcast_sender {
    asyncio_broadcast_sender *tx;
    uint64_t msgs;
} bcast_sender;

static void *bcast_sender_thread(void *arg)
{
    bcast_sender *s = arg;
    wait_go();
    for (uint64_t m = 0; m < s->msgs; m++)
        check(asyncio_broadcast_send(s->tx, &m), "asyncio_broadcast_send");
    asyncio_broadcast_sender_drop(s->tx);
    return NULL;
}

static asyncio_runtime *mt_runtime(void)
{
    asyncio_runtime_options ro = {0};
    ro.flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
    ro.workers = 2;
    asyncio_runtime *rt;
    check(asyncio_runtime_new(&rt, &ro), "asyncio_runtime_new (multi-thread)");
    return rt;
}

static double run_bcast(const options *o, size_t nrx)
{
    asyncio_broadcast_sender *tx;
    asyncio_broadcast_receiver *rx[MAX_RX];
    check(asyncio_broadcast_channel(&tx, &rx[0], sizeof(uint64_t), o->cap),
          "asyncio_broadcast_channel");
    for (size_t i = 1; i < nrx; i++)
        check(asyncio_broadcast_subscribe(tx, &rx[i]), "asyncio_broadcast_subscribe");
    asyncio_runtime *rt = mt_runtime();
    join_rx j, out;
    memset(&j, 0, sizeof j);
    j.n = nrx;
    for (size_t i = 0; i < nrx; i++) {
        bcast_rx_task t;
        memset(&t, 0, sizeof t);
        t.rx = rx[i];
        asyncio_broadcast_recv_init(&t.r, rx[i]);
        check(asyncio_spawn(rt, &g_bcast_rx_vt, &t, &j.jh[i]), "asyncio_spawn");
    }
    atomic_store(&g_go, false);
    bcast_sender s = {tx, o->msgs};
    pthread_t th;
    if (pthread_create(&th, NULL, bcast_sender_thread, &s) != 0)
        die("pthread_create");
    double t0 = now_ns();
    atomic_store_explicit(&g_go, true, memory_order_release);
    check(asyncio_runtime_block_on(rt, &g_join_bcast_vt, &j, &out), "join block_on");
    double t1 = now_ns();
    pthread_join(th, NULL);
    if (out.delivered + out.lagged != o->msgs * nrx)
        die("bcast: messages neither delivered nor reported lagged");
    check(asyncio_runtime_free(rt), "asyncio_runtime_free");
    for (size_t i = 0; i < nrx; i++)
        asyncio_broadcast_receiver_drop(rx[i]);
    return (double)out.delivered / ((t1 - t0) / 1e9);
}

/* The reference: the same lossy ring under one pthread mutex + one condvar. */
typedef struct cv_bcast {
    pthread_mutex_t m;
    pthread_cond_t changed;
    uint64_t *ring;
    size_t cap;
    uint64_t tail;
    bool closed;
} cv_bcast;

typedef struct cv_bcast_rx {
    cv_bcast *b;
    uint64_t received, lagged;
} cv_bcast_rx;

static void *cv_bcast_rx_thread(void *arg)
{
    cv_bcast_rx *r = arg;
    cv_bcast *b = r->b;
    uint64_t next = 0;
    pthread_mutex_lock(&b->m);
    for (;;) {
        while (next == b->tail && !b->closed)
            pthread_cond_wait(&b->changed, &b->m);
        uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;
        if (next < oldest) {
            r->lagged += oldest - next;
            next = oldest;
        }
        if (next == b->tail)
            break; /* closed and drained */
        uint64_t v = b->ring[next % b->cap];
        if (v != next)
            die("cvbcast: message out of order");
        next++;
        r->received++;
    }
    pthread_mutex_unlock(&b->m);
    return NULL;
}

static double run_cv_bcast(const options *o, size_t nrx)
{
    cv_bcast b = {.cap = o->cap};
    pthread_mutex_init(&b.m, NULL);
    pthread_cond_init(&b.changed, NULL);
    b.ring = malloc(o->cap * sizeof *b.ring);
    if (b.ring == NULL)
        die("malloc");
    pthread_t th[MAX_RX];
    cv_bcast_rx r[MAX_RX];
    for (size_t i = 0; i < nrx; i++) {
        r[i] = (cv_bcast_rx){&b, 0, 0};
        if (pthread_create(&th[i], NULL, cv_bcast_rx_thread, &r[i]) != 0)
            die("pthread_create");
    }
    double t0 = now_ns();
    for (uint64_t m = 0; m < o->msgs; m++) {
        pthread_mutex_lock(&b.m);
        b.ring[b.tail % b.cap] = m;
        b.tail++;
        pthread_cond_broadcast(&b.changed);
        pthread_mutex_unlock(&b.m);
    }
    pthread_mutex_lock(&b.m);
    b.closed = true;
    pthread_cond_broadcast(&b.changed);
    pthread_mutex_unlock(&b.m);
    uint64_t delivered = 0;
    for (size_t i = 0; i < nrx; i++) {
        pthread_join(th[i], NULL);
        if (r[i].received + r[i].lagged != o->msgs)
            die("cvbcast: messages neither delivered nor reported lagged");
        delivered += r[i].received;
    }
    double t1 = now_ns();
    free(b.ring);
    pthread_cond_destroy(&b.changed);
    pthread_mutex_destroy(&b.m);
    return (double)delivered / ((t1 - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/* Watch: one sender, 4 receivers (updates/s)                                */

#define WATCH_RX 4

typedef struct watch_rx_task {
    asyncio_watch_receiver *rx;
    asyncio_watch_changed c;
    uint64_t last, changes;
} watch_rx_task;

static int watch_rx_poll(void *state, asyncio_context *cx, void *output)
{
    watch_rx_task *t = state;
    for (;;) {
        int rc = asyncio_watch_changed_poll(&t->c, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_ECLOSED) {
            memcpy(output, t, sizeof *t);
            return 0;
        }
        check(rc, "asyncio_watch_changed_poll");
        uint64_t v;
        check(asyncio_watch_borrow_and_update(t->rx, &v), "asyncio_watch_borrow_and_update");
        if (v <= t->last && t->changes > 0)
            die("watch: an older value after a newer one");
        t->last = v;
        t->changes++;
    }
}

static void watch_rx_drop(void *state)
{
    watch_rx_task *t = state;
    asyncio_watch_changed_drop(&t->c);
}

static const asyncio_task_vtable g_watch_rx_vt = {watch_rx_poll, watch_rx_drop, NULL,
                                                  sizeof(watch_rx_task), sizeof(watch_rx_task)};

typedef struct join_watch {
    asyncio_join_handle *jh[WATCH_RX];
    size_t next;
    uint64_t final_min; /* the smallest last value any receiver saw */
} join_watch;

static int join_watch_poll(void *state, asyncio_context *cx, void *output)
{
    join_watch *j = state;
    while (j->next < WATCH_RX) {
        watch_rx_task out;
        int rc = asyncio_join_handle_poll(j->jh[j->next], cx, &out);
        if (rc == ASYNCIO_PENDING)
            return rc;
        check(rc, "watch receiver task");
        if (j->next == 0 || out.last < j->final_min)
            j->final_min = out.last;
        asyncio_join_handle_drop(j->jh[j->next]);
        j->next++;
    }
    memcpy(output, j, sizeof *j);
    return 0;
}

static const asyncio_task_vtable g_join_watch_vt = {join_watch_poll, NULL, NULL,
                                                    sizeof(join_watch), sizeof(join_watch)};

typedef struct watch_sender {
    asyncio_watch_sender *tx;
    uint64_t msgs;
} watch_sender;

static void *watch_sender_thread(void *arg)
{
    watch_sender *s = arg;
    wait_go();
    for (uint64_t v = 1; v <= s->msgs; v++)
        check(asyncio_watch_send(s->tx, &v), "asyncio_watch_send");
    asyncio_watch_sender_drop(s->tx);
    return NULL;
}

static double run_watch(const options *o)
{
    asyncio_watch_sender *tx;
    asyncio_watch_receiver *rx[WATCH_RX];
    uint64_t zero = 0;
    check(asyncio_watch_channel(&tx, &rx[0], sizeof zero, &zero), "asyncio_watch_channel");
    for (size_t i = 1; i < WATCH_RX; i++)
        check(asyncio_watch_subscribe(tx, &rx[i]), "asyncio_watch_subscribe");
    asyncio_runtime *rt = mt_runtime();
    join_watch j, out;
    memset(&j, 0, sizeof j);
    for (size_t i = 0; i < WATCH_RX; i++) {
        watch_rx_task t;
        memset(&t, 0, sizeof t);
        t.rx = rx[i];
        asyncio_watch_changed_init(&t.c, rx[i]);
        check(asyncio_spawn(rt, &g_watch_rx_vt, &t, &j.jh[i]), "asyncio_spawn");
    }
    atomic_store(&g_go, false);
    watch_sender s = {tx, o->msgs};
    pthread_t th;
    if (pthread_create(&th, NULL, watch_sender_thread, &s) != 0)
        die("pthread_create");
    double t0 = now_ns();
    atomic_store_explicit(&g_go, true, memory_order_release);
    check(asyncio_runtime_block_on(rt, &g_join_watch_vt, &j, &out), "join block_on");
    double t1 = now_ns();
    pthread_join(th, NULL);
    if (out.final_min != o->msgs)
        die("watch: a receiver missed the last value");
    check(asyncio_runtime_free(rt), "asyncio_runtime_free");
    for (size_t i = 0; i < WATCH_RX; i++)
        asyncio_watch_receiver_drop(rx[i]);
    return (double)o->msgs / ((t1 - t0) / 1e9);
}

/* The reference: a value + version under one pthread mutex and one condvar. */
typedef struct cv_watch {
    pthread_mutex_t m;
    pthread_cond_t changed;
    uint64_t value, version;
    bool closed;
} cv_watch;

typedef struct cv_watch_rx {
    cv_watch *w;
    uint64_t last;
} cv_watch_rx;

static void *cv_watch_rx_thread(void *arg)
{
    cv_watch_rx *r = arg;
    cv_watch *w = r->w;
    uint64_t seen = 0;
    pthread_mutex_lock(&w->m);
    for (;;) {
        while (w->version == seen && !w->closed)
            pthread_cond_wait(&w->changed, &w->m);
        if (w->version == seen)
            break; /* closed, nothing new */
        seen = w->version;
        if (w->value <= r->last && r->last != 0)
            die("cvwatch: an older value after a newer one");
        r->last = w->value;
    }
    pthread_mutex_unlock(&w->m);
    return NULL;
}

static double run_cv_watch(const options *o)
{
    cv_watch w = {.value = 0};
    pthread_mutex_init(&w.m, NULL);
    pthread_cond_init(&w.changed, NULL);
    pthread_t th[WATCH_RX];
    cv_watch_rx r[WATCH_RX];
    for (size_t i = 0; i < WATCH_RX; i++) {
        r[i] = (cv_watch_rx){&w, 0};
        if (pthread_create(&th[i], NULL, cv_watch_rx_thread, &r[i]) != 0)
            die("pthread_create");
    }
    double t0 = now_ns();
    for (uint64_t v = 1; v <= o->msgs; v++) {
        pthread_mutex_lock(&w.m);
        w.value = v;
        w.version++;
        pthread_cond_broadcast(&w.changed);
        pthread_mutex_unlock(&w.m);
    }
    pthread_mutex_lock(&w.m);
    w.closed = true;
    pthread_cond_broadcast(&w.changed);
    pthread_mutex_unlock(&w.m);
    for (size_t i = 0; i < WATCH_RX; i++) {
        pthread_join(th[i], NULL);
        if (r[i].last != o->msgs)
            die("cvwatch: a receiver missed the last value");
    }
    double t1 = now_ns();
    pthread_cond_destroy(&w.changed);
    pthread_mutex_destroy(&w.m);
    return (double)o->msgs / ((t1 - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

enum row {
    ROW_SEM_TRY,
    ROW_SEM_FUTURE,
    ROW_PTHREAD_MUTEX,
    ROW_MPSC_1,
    ROW_CONDVAR_1,
    ROW_MPSC_4,
    ROW_CONDVAR_4,
    ROW_MPSC_1_MT,
    ROW_MPSC_4_MT,
    ROW_BCAST_1,
    ROW_CV_BCAST_1,
    ROW_BCAST_8,
    ROW_CV_BCAST_8,
    ROW_WATCH,
    ROW_CV_WATCH,
    ROW_COUNT
};

static const char *const g_row_name[ROW_COUNT] = {"sem-try (acquire+release)",
                                                  "sem-future (init+poll+release)",
                                                  "pthread-mutex (lock+unlock)",
                                                  "mpsc-1to1",
                                                  "condvar-1to1",
                                                  "mpsc-4to1",
                                                  "condvar-4to1",
                                                  "mpsc-1to1-mt",
                                                  "mpsc-4to1-mt",
                                                  "bcast-1to1",
                                                  "cvbcast-1to1",
                                                  "bcast-1to8",
                                                  "cvbcast-1to8",
                                                  "watch-4rx",
                                                  "cvwatch-4rx"};

static double run_row(enum row r, const options *o)
{
    switch (r) {
    case ROW_SEM_TRY:
        return run_sem_try(o);
    case ROW_SEM_FUTURE:
        return run_sem_future(o);
    case ROW_PTHREAD_MUTEX:
        return run_pthread_mutex(o);
    case ROW_MPSC_1:
        return run_mpsc(o, 1);
    case ROW_CONDVAR_1:
        return run_condvar(o, 1);
    case ROW_MPSC_4:
        return run_mpsc(o, 4);
    case ROW_CONDVAR_4:
        return run_condvar(o, 4);
    case ROW_MPSC_1_MT:
        return run_mpsc_mt(o, 1);
    case ROW_MPSC_4_MT:
        return run_mpsc_mt(o, 4);
    case ROW_BCAST_1:
        return run_bcast(o, 1);
    case ROW_CV_BCAST_1:
        return run_cv_bcast(o, 1);
    case ROW_BCAST_8:
        return run_bcast(o, 8);
    case ROW_CV_BCAST_8:
        return run_cv_bcast(o, 8);
    case ROW_WATCH:
        return run_watch(o);
    default:
        return run_cv_watch(o);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t parse_size(const char *s, const char *opt)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v == 0) {
        fprintf(stderr, "bench_sync: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    options o = {.reps = 5, .iters = 5000000, .msgs = 1000000, .cap = 1024};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            o.reps = 1;
            o.iters = 100000;
            o.msgs = 20000;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: bench_sync [--reps N] [--iters N] [--msgs N] [--cap N] "
                            "[--only SUBSTR] [--quick]\n");
            return 2;
        }
        if (strcmp(argv[i], "--reps") == 0)
            o.reps = parse_size(argv[++i], "--reps");
        else if (strcmp(argv[i], "--iters") == 0)
            o.iters = parse_size(argv[++i], "--iters");
        else if (strcmp(argv[i], "--msgs") == 0)
            o.msgs = parse_size(argv[++i], "--msgs");
        else if (strcmp(argv[i], "--cap") == 0)
            o.cap = parse_size(argv[++i], "--cap");
        else if (strcmp(argv[i], "--only") == 0)
            o.only = argv[++i];
        else {
            fprintf(stderr, "bench_sync: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (o.reps > MAX_REPS)
        o.reps = MAX_REPS;
    static double res[ROW_COUNT][MAX_REPS];
    bool on[ROW_COUNT];
    for (int r = 0; r < ROW_COUNT; r++)
        on[r] = o.only == NULL || strstr(g_row_name[r], o.only) != NULL;
    for (size_t rep = 0; rep < o.reps; rep++)
        for (int r = 0; r < ROW_COUNT; r++)
            if (on[r])
                res[r][rep] = run_row((enum row)r, &o);

    printf("bench_sync: reps %zu (interleaved), iters %zu, msgs %zu, capacity %zu\n", o.reps,
           o.iters, o.msgs, o.cap);
    printf("%-32s %14s %14s %14s  %s\n", "row", "median", "min", "max", "unit");
    for (int r = 0; r < ROW_COUNT; r++) {
        if (!on[r])
            continue;
        qsort(res[r], o.reps, sizeof(double), cmp_double);
        bool rate = r >= ROW_MPSC_1;
        printf("%-32s %14.1f %14.1f %14.1f  %s\n", g_row_name[r], res[r][o.reps / 2], res[r][0],
               res[r][o.reps - 1], rate ? "msg/s" : "ns/op");
    }
    return 0;
}

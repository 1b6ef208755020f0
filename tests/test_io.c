/*
 * The I/O driver and the async fd, white-box: each test drives the driver by
 * hand (no scheduler). A poller and an I/O driver are set up in a zeroed
 * asyncio__driver made current on this thread; tasks are stood in for by
 * hand-made contexts whose waker counts wakes, clones and drops; a "turn" is
 * asyncio_poller_wait + asyncio__io_dispatch per event + asyncio__io_maintain.
 * Synthetic events (asyncio__io_dispatch with a made-up event) place a
 * readiness event exactly between two steps of a task.
 *
 * Built twice: test_io with the default tick width and test_io_tinytick with
 * ASYNCIO_IO_TICK_BITS=2, where any tick wrap would show up as a lost wake.
 * Runs once per backend (ctest sets ASYNCIO_BACKEND).
 */
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "asyncio/async_fd.h"
#include "reactor/driver.h"
#include "reactor/io.h"

#define R     ASYNCIO_READABLE
#define W     ASYNCIO_WRITABLE
#define TICKS (1u << ASYNCIO_IO_TICK_BITS)

/* ------------------------------------------------------------------------ */
/* Test waker: counts everything, refs must come back to 0                   */

typedef struct test_waker {
    atomic_int wakes; /* wake + wake_by_ref */
    atomic_int clones;
    atomic_int drops;
    atomic_int refs; /* clones not yet consumed by wake / drop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} test_waker;

static asyncio_waker tw_clone(const void *data);

static void tw_signal(test_waker *t)
{
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->wakes, 1);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void tw_wake(const void *data)
{
    test_waker *t = (test_waker *)data;
    atomic_fetch_sub(&t->refs, 1);
    tw_signal(t);
}

static void tw_wake_by_ref(const void *data)
{
    tw_signal((test_waker *)data);
}

static void tw_drop(const void *data)
{
    test_waker *t = (test_waker *)data;
    atomic_fetch_add(&t->drops, 1);
    atomic_fetch_sub(&t->refs, 1);
}

static const asyncio_waker_vtable tw_vtable = {tw_clone, tw_wake, tw_wake_by_ref, tw_drop};

static asyncio_waker tw_clone(const void *data)
{
    test_waker *t = (test_waker *)data;
    atomic_fetch_add(&t->clones, 1);
    atomic_fetch_add(&t->refs, 1);
    return (asyncio_waker){&tw_vtable, data};
}

/* A task stand-in: its waker (borrowed by the context) and the context. */
typedef struct test_task {
    test_waker tw;
    asyncio_waker waker;
    asyncio_context cx;
} test_task;

static void task_init(test_task *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->tw.mu, NULL);
    pthread_cond_init(&t->tw.cv, NULL);
    t->waker = (asyncio_waker){&tw_vtable, &t->tw};
    t->cx = (asyncio_context)ASYNCIO_CONTEXT_INIT(&t->waker);
}

static int wakes(test_task *t)
{
    return atomic_load(&t->tw.wakes);
}

/* Every clone the driver took was woken or dropped. */
static void task_done(test_task *t)
{
    assert_int_equal(atomic_load(&t->tw.refs), 0);
    pthread_mutex_destroy(&t->tw.mu);
    pthread_cond_destroy(&t->tw.cv);
}

/* ------------------------------------------------------------------------ */
/* Driver fixture                                                            */

typedef struct fixture {
    asyncio__driver d;
    asyncio__driver *prev;
} fixture;

static void drv_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    assert_ok(asyncio_poller_new(&f->d.poller));
    assert_ok(asyncio__io_driver_init(&f->d.io, f->d.poller));
    f->prev = asyncio__driver_enter(&f->d);
}

static void drv_close(fixture *f)
{
    assert_ok(asyncio__io_driver_close(&f->d.io));
    asyncio__driver_enter(f->prev);
    assert_ok(asyncio_poller_free(f->d.poller));
}

/* One driver turn; returns the number of events dispatched. */
static size_t turn(fixture *f, int timeout_ms)
{
    support_events e;
    support_wait(f->d.poller, timeout_ms, SUPPORT_MAX_EVENTS, &e);
    for (size_t i = 0; i < e.n; i++)
        asyncio__io_dispatch(&f->d.io, &e.ev[i]);
    asyncio__io_maintain(&f->d.io);
    return e.n;
}

/* Turns (bounded) until the task was woken at least `n` times in total. */
static void turn_until_woken(fixture *f, test_task *t, int n)
{
    for (int i = 0; i < 200 && wakes(t) < n; i++)
        turn(f, 10);
    assert_int_equal(wakes(t), n);
}

/* Synthetic event for a registration. */
static void inject(fixture *f, asyncio__io_reg *reg, uint32_t bits)
{
    asyncio_event ev = {asyncio__io_token(reg), bits};
    asyncio__io_dispatch(&f->d.io, &ev);
}

/* A socketpair end registered through the internal API. */
typedef struct treg {
    int fds[2];
    asyncio_fd_source src;
    asyncio__io_reg *reg;
} treg;

static void treg_open(fixture *f, treg *r)
{
    support_socketpair(r->fds);
    asyncio_fd_source_init(&r->src, r->fds[0]);
    assert_ok(asyncio__io_register(&f->d.io, &r->src.base, R, &r->reg));
}

static void treg_close(fixture *f, treg *r)
{
    assert_ok(asyncio__io_deregister(&f->d.io, r->reg, &r->src.base));
    support_close(r->fds[0]);
    support_close(r->fds[1]);
}

static int poll_reg(test_task *t, asyncio__io_reg *reg, uint32_t dir, asyncio_ready_guard *g)
{
    return asyncio__io_poll_ready(reg, &t->cx, dir, g);
}

static void new_async_fd(asyncio_async_fd **a, int fd)
{
    assert_ok(asyncio_async_fd_new(a, fd, R | W));
    assert_int_equal(asyncio_async_fd_fd(*a), fd);
}

/* ------------------------------------------------------------------------ */
/* Readiness and wakes                                                       */

static void test_async_fd_readable_wakes_once_and_clears_on_eagain(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);

    asyncio_ready_guard g;
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    turn(&f, 0); /* the initial writable edge: not the reader's business */
    assert_int_equal(wakes(&t), 0);

    support_write_n(s[1], 3);
    turn_until_woken(&f, &t, 1);
    assert_ok(asyncio_async_fd_poll_ready(a, &t.cx, R, &g));
    assert_true(g.readiness & R);
    assert_int_equal(g.direction, R);

    char buf[16];
    size_t n = 0;
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 3);
    /* Drained: the next read hits EAGAIN, clears readiness and waits. */
    assert_int_equal(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n), ASYNCIO_PENDING);
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    /* No new data: no wake, however many turns. */
    for (int i = 0; i < 3; i++)
        turn(&f, 0);
    assert_int_equal(wakes(&t), 1);

    support_write_n(s[1], 1);
    turn_until_woken(&f, &t, 2);
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 1);

    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&t);
    drv_close(&f);
}

static void test_async_fd_short_stream_read_clears_readiness_without_eagain(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);

    asyncio_ready_guard g;
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    support_write_n(s[1], 5);
    turn_until_woken(&f, &t, 1);
    char buf[64];
    size_t n = 0;
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 5);
    /* 5 < 64 on a stream socket: drained, so readiness is already cleared (no EAGAIN read). */
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    /* And new data still wakes the reader. */
    support_write_n(s[1], 2);
    turn_until_woken(&f, &t, 2);
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 2);

    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&t);
    drv_close(&f);
}

/* io.h: a zero-length read or write returns 0 bytes at once, even with nothing to read. */
static void test_async_fd_zero_length_read_and_write_return_at_once(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);

    size_t n = 99;
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, NULL, 0, &n));
    assert_int_equal(n, 0);
    n = 99;
    assert_ok(asyncio_async_fd_poll_write(a, &t.cx, NULL, 0, &n));
    assert_int_equal(n, 0);
    /* Nothing was consumed or waited for: real data still reads normally. */
    support_write_n(s[1], 3);
    asyncio_ready_guard g;
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    turn_until_woken(&f, &t, 1);
    char buf[8];
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 3);

    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&t);
    drv_close(&f);
}

static void test_async_fd_writer_waker_independent_of_reader(void **state)
{
    (void)state;
    fixture f;
    test_task rd, wr;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&rd);
    task_init(&wr);
    support_socketpair(s);
    new_async_fd(&a, s[0]);

    asyncio_ready_guard g;
    assert_int_equal(asyncio_async_fd_poll_ready(a, &rd.cx, R, &g), ASYNCIO_PENDING);
    assert_int_equal(asyncio_async_fd_poll_ready(a, &wr.cx, W, &g), ASYNCIO_PENDING);
    turn_until_woken(&f, &wr, 1);
    assert_int_equal(wakes(&rd), 0); /* a write event does not wake the reader */
    assert_ok(asyncio_async_fd_poll_ready(a, &wr.cx, W, &g));
    assert_true(g.readiness & W);

    support_write_n(s[1], 1);
    turn_until_woken(&f, &rd, 1);
    assert_int_equal(wakes(&wr), 1); /* and a read event does not wake the writer */

    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&rd);
    task_done(&wr);
    drv_close(&f);
}

/* tokio#8054: a write event between read-ready and clear must not keep the reader spinning. */
static void test_io_write_event_does_not_cancel_read_clear(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    treg r;
    drv_open(&f);
    task_init(&t);
    treg_open(&f, &r);

    asyncio_ready_guard g;
    inject(&f, r.reg, R);
    assert_ok(poll_reg(&t, r.reg, R, &g));
    inject(&f, r.reg, W); /* the write direction sees a new event ... */
    assert_int_equal(support_drain(r.fds[0], NULL), 0);
    assert_true(asyncio__io_clear_ready(r.reg, &g)); /* ... the read clear still applies */
    assert_int_equal(poll_reg(&t, r.reg, R, &g), ASYNCIO_PENDING);
    turn(&f, 0);
    assert_int_equal(wakes(&t), 0); /* idle: nothing to do until new data */

    treg_close(&f, &r);
    task_done(&t);
    drv_close(&f);
}

static void test_io_event_racing_clear_keeps_readiness(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    treg r;
    drv_open(&f);
    task_init(&t);
    treg_open(&f, &r);

    asyncio_ready_guard g, g2;
    inject(&f, r.reg, R);
    assert_ok(poll_reg(&t, r.reg, R, &g));
    inject(&f, r.reg, R); /* lands between the operation's EAGAIN and the clear */
    assert_false(asyncio__io_clear_ready(r.reg, &g));
    assert_ok(poll_reg(&t, r.reg, R, &g2)); /* still ready at once */
    assert_int_not_equal(g2.tick, g.tick);
    assert_true(asyncio__io_clear_ready(r.reg, &g2)); /* with the fresh guard it clears */
    assert_int_equal(poll_reg(&t, r.reg, R, &g), ASYNCIO_PENDING);

    treg_close(&f, &r);
    task_done(&t);
    drv_close(&f);
}

/* tokio#6133: any number of events between observe and clear, across tick wraps. */
static void test_io_tick_wrap_loses_no_readiness(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    treg r;
    drv_open(&f);
    task_init(&t);
    treg_open(&f, &r);

    const unsigned counts[] = {1, 2, 3, TICKS - 1, TICKS, TICKS + 1, 2 * TICKS, 2 * TICKS + 1};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        asyncio_ready_guard g, g2;
        inject(&f, r.reg, R);
        assert_ok(poll_reg(&t, r.reg, R, &g));
        for (unsigned k = 0; k < counts[i]; k++)
            inject(&f, r.reg, R);
        assert_false(asyncio__io_clear_ready(r.reg, &g));
        assert_ok(poll_reg(&t, r.reg, R, &g2));
        /* The tick moved exactly once however many events came: it cannot wrap onto g. */
        assert_int_equal(g2.tick, (g.tick + 1) % TICKS);
        assert_true(asyncio__io_clear_ready(r.reg, &g2));
        assert_int_equal(poll_reg(&t, r.reg, R, &g), ASYNCIO_PENDING);
    }
    /* Each round's pending poll stored the waker; each next event woke it exactly once. */
    inject(&f, r.reg, R);
    assert_int_equal(wakes(&t), (int)ASYNCIO_ARRAY_LEN(counts));

    treg_close(&f, &r);
    task_done(&t);
    drv_close(&f);
}

/* The same through real sockets: many edges between EAGAIN and clear; the reader never hangs. */
static void test_async_fd_many_edges_between_eagain_and_clear_no_hang(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);
    turn(&f, 0);

    support_write_n(s[1], 1);
    asyncio_ready_guard g;
    for (int i = 0; i < 100 && asyncio_async_fd_poll_ready(a, &t.cx, R, &g) != 0; i++)
        turn(&f, 10);
    assert_int_equal(support_drain(s[0], NULL), 1); /* EAGAIN now */
    for (unsigned k = 0; k < 4 * TICKS && k < 64; k++) {
        support_write_n(s[1], 1); /* each one an edge on epoll */
        turn(&f, 0);
    }
    asyncio_async_fd_clear_ready(a, &g);
    /* Ready at once (epoll), or after the re-armed edge is reported (poll). */
    int rc = asyncio_async_fd_poll_ready(a, &t.cx, R, &g);
    for (int i = 0; i < 100 && rc == ASYNCIO_PENDING; i++) {
        turn(&f, 10);
        rc = asyncio_async_fd_poll_ready(a, &t.cx, R, &g);
    }
    assert_ok(rc);
    assert_true(support_drain(s[0], NULL) > 0);

    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&t);
    drv_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Tokens and deferred release                                               */

/*
 * mio#219: two events in one batch; handling the first frees the second's
 * registration, closes its fd and registers a new socket (which may get the
 * same fd number). The second, stale event must not reach the new socket.
 */
static void test_io_stale_event_in_batch_never_reaches_new_registration(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    treg r1, r2, r3;
    drv_open(&f);
    task_init(&t);
    treg_open(&f, &r1);
    treg_open(&f, &r2);
    turn(&f, 0);
    support_write_n(r1.fds[1], 1);
    support_write_n(r2.fds[1], 1);

    support_events e;
    e.n = 0;
    for (int i = 0; i < 100 && e.n < 2; i++) {
        support_events more;
        support_wait(f.d.poller, 10, SUPPORT_MAX_EVENTS, &more);
        for (size_t k = 0; k < more.n && e.n < SUPPORT_MAX_EVENTS; k++)
            e.ev[e.n++] = more.ev[k];
    }
    assert_int_equal(e.n, 2);
    /* Handle them in the order that makes the second one stale. */
    treg *first = e.ev[0].token == asyncio__io_token(r1.reg) ? &r1 : &r2;
    treg *second = first == &r1 ? &r2 : &r1;
    const asyncio_event *stale =
        e.ev[0].token == asyncio__io_token(second->reg) ? &e.ev[0] : &e.ev[1];
    const asyncio_event *live = stale == &e.ev[0] ? &e.ev[1] : &e.ev[0];
    asyncio__io_dispatch(&f.d.io, live);

    uint32_t old_index = second->reg->entry.index;
    treg_close(&f, second); /* "while handling the first event" */
    treg_open(&f, &r3);     /* likely the same fd numbers; never the same token */
    assert_int_not_equal(asyncio__io_token(r3.reg), stale->token);
    assert_int_not_equal(r3.reg->entry.index, old_index); /* the old slot is not reusable yet */

    asyncio__io_dispatch(&f.d.io, stale);
    asyncio_ready_guard g;
    assert_int_equal(poll_reg(&t, r3.reg, R, &g), ASYNCIO_PENDING);
    asyncio__io_maintain(&f.d.io);
    assert_int_equal(wakes(&t), 0);

    treg_close(&f, &r3);
    treg_close(&f, first);
    asyncio__io_maintain(&f.d.io);
    task_done(&t);
    drv_close(&f);
}

/* After the safe point the slot is reused, under a new generation: the old token misses. */
static void test_io_stale_token_after_slot_reuse_is_ignored(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    treg a, b;
    drv_open(&f);
    task_init(&t);
    treg_open(&f, &a);
    uintptr_t old = asyncio__io_token(a.reg);
    uint32_t index = a.reg->entry.index;
    treg_close(&f, &a);
    asyncio_event ev = {old, R | W};
    asyncio__io_dispatch(&f.d.io, &ev); /* same batch as the free: ignored */
    asyncio__io_maintain(&f.d.io);

    treg_open(&f, &b);
    assert_int_equal(b.reg->entry.index, index);         /* reused ... */
    assert_int_not_equal(asyncio__io_token(b.reg), old); /* ... under a new generation */
    asyncio_ready_guard g;
    assert_int_equal(poll_reg(&t, b.reg, R, &g), ASYNCIO_PENDING);
    asyncio__io_dispatch(&f.d.io, &ev);
    assert_int_equal(wakes(&t), 0);
    assert_int_equal(poll_reg(&t, b.reg, R, &g), ASYNCIO_PENDING);
    /* Malformed tokens are ignored too. */
    asyncio_event bogus = {((uintptr_t)3 << ASYNCIO__SLAB_INDEX_BITS) | 12345u, R};
    asyncio__io_dispatch(&f.d.io, &bogus);
    assert_int_equal(wakes(&t), 0);

    treg_close(&f, &b);
    asyncio__io_maintain(&f.d.io);
    task_done(&t);
    drv_close(&f);
}

/* ---- slab: entries are set up lazily ------------------------------------- */

static int g_slab_inits, g_slab_destroys;

static int counting_init(asyncio__slab_entry *e)
{
    (void)e;
    g_slab_inits++;
    return 0;
}

static void counting_destroy(asyncio__slab_entry *e)
{
    (void)e;
    g_slab_destroys++;
}

static void test_slab_sets_up_only_entries_handed_out_not_whole_pages(void **state)
{
    (void)state;
    g_slab_inits = g_slab_destroys = 0;
    asyncio__slab s;
    asyncio__slab_init(&s, sizeof(asyncio__slab_entry) + 40, counting_init, counting_destroy);
    /* Page 0 holds PAGE0 entries, page 1 twice that: take all of page 0 and 3 of page 1. */
    uint32_t n = ASYNCIO__SLAB_PAGE0 + 3;
    asyncio__slab_entry *e[ASYNCIO__SLAB_PAGE0 + 3];
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(asyncio__slab_alloc(&s, &e[i]), 0);
        assert_int_equal(e[i]->index, i); /* fresh entries come in index order */
        asyncio__slab_publish(e[i]);
    }
    assert_int_equal(g_slab_inits, (int)n);
    /* A token for an index that was never handed out resolves to nothing. */
    uintptr_t tok = asyncio__slab_token(e[n - 1]);
    assert_null(asyncio__slab_get(&s, tok + 1));
    /* A released entry is reused before another fresh one is set up. */
    asyncio__slab_retire(e[5]);
    asyncio__slab_release(&s, e[5]);
    asyncio__slab_entry *again;
    assert_int_equal(asyncio__slab_alloc(&s, &again), 0);
    assert_ptr_equal(again, e[5]);
    assert_int_equal(g_slab_inits, (int)n);
    asyncio__slab_close(&s);
    assert_int_equal(g_slab_destroys, (int)n); /* never a destroy without its init */
}

static void test_io_slab_grows_without_moving_entries(void **state)
{
    (void)state;
    fixture f;
    drv_open(&f);
    enum { N = 100 }; /* pages of 32, 64, 128 */
    static treg r[N];
    asyncio__io_reg *seen[N];
    for (int i = 0; i < N; i++) {
        treg_open(&f, &r[i]);
        seen[i] = r[i].reg;
    }
    for (int i = 0; i < N; i++) {
        asyncio__slab_entry *e = asyncio__slab_get(&f.d.io.slab, asyncio__io_token(r[i].reg));
        assert_ptr_equal(e, &seen[i]->entry);
    }
    for (int i = 0; i < N; i++)
        treg_close(&f, &r[i]);
    asyncio__io_maintain(&f.d.io);
    drv_close(&f);
}

static void test_io_driver_close_with_live_registration_is_busy(void **state)
{
    (void)state;
    fixture f;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    support_socketpair(s);
    new_async_fd(&a, s[0]);
    assert_err(asyncio__io_driver_close(&f.d.io), ASYNCIO_EBUSY);
    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    drv_close(&f); /* frees the pending slot too */
}

/* ------------------------------------------------------------------------ */
/* Custom sources through the vtable                                         */

/* A pipe as a user-defined source: the read end is what gets registered. */
typedef struct pipe_source {
    asyncio_source base;
    int fds[2];
    int registers, deregisters, rearms;
} pipe_source;

static int ps_register(asyncio_source *src, asyncio_poller *p, uintptr_t token, uint32_t interest,
                       asyncio_trigger mode)
{
    pipe_source *ps = (pipe_source *)src;
    ps->registers++;
    assert_int_equal(mode, ASYNCIO_EDGE);
    return asyncio_poller_register_fd(p, ps->fds[0], token, interest, mode);
}

static int ps_reregister(asyncio_source *src, asyncio_poller *p, uintptr_t token, uint32_t interest,
                         asyncio_trigger mode)
{
    pipe_source *ps = (pipe_source *)src;
    return asyncio_poller_reregister_fd(p, ps->fds[0], token, interest, mode);
}

static int ps_deregister(asyncio_source *src, asyncio_poller *p)
{
    pipe_source *ps = (pipe_source *)src;
    ps->deregisters++;
    return asyncio_poller_deregister_fd(p, ps->fds[0]);
}

static int ps_rearm(asyncio_source *src, asyncio_poller *p, uint32_t dirs)
{
    pipe_source *ps = (pipe_source *)src;
    ps->rearms++;
    return asyncio_poller_rearm_fd(p, ps->fds[0], dirs);
}

static const asyncio_source_vtable ps_vtable = {ps_register, ps_reregister, ps_deregister,
                                                ps_rearm};

static void test_async_fd_custom_source_through_vtable(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    pipe_source ps = {.base = {&ps_vtable}};
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_pipe(ps.fds);
    assert_ok(asyncio_async_fd_new_source(&a, &ps.base, R));
    assert_int_equal(ps.registers, 1);
    assert_int_equal(asyncio_async_fd_fd(a), -1);
    size_t n;
    char buf[8];
    assert_err(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n), ASYNCIO_EINVAL);
    asyncio_ready_guard g;
    assert_err(asyncio_async_fd_poll_ready(a, &t.cx, ASYNCIO_PRIORITY, &g), ASYNCIO_EINVAL);

    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    support_write_n(ps.fds[1], 2);
    turn_until_woken(&f, &t, 1);
    assert_ok(asyncio_async_fd_poll_ready(a, &t.cx, R, &g));
    assert_int_equal(support_drain(ps.fds[0], NULL), 2);
    asyncio_async_fd_clear_ready(a, &g);
    assert_int_equal(ps.rearms, 1); /* the edge is re-armed through the vtable */
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);

    support_write_n(ps.fds[1], 1);
    turn_until_woken(&f, &t, 2);
    assert_ok(asyncio_async_fd_free(a));
    assert_int_equal(ps.deregisters, 1);
    support_close(ps.fds[0]);
    support_close(ps.fds[1]);
    task_done(&t);
    drv_close(&f);
}

static void test_async_fd_user_source_readiness_is_delivered(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    asyncio_user_source *u = NULL;
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    assert_ok(asyncio_user_source_new(&u));
    assert_ok(asyncio_async_fd_new_source(&a, asyncio_user_source_base(u), R));
    asyncio_ready_guard g;
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    assert_ok(asyncio_user_source_set_readiness(u, R));
    turn_until_woken(&f, &t, 1);
    assert_ok(asyncio_async_fd_poll_ready(a, &t.cx, R, &g));
    assert_ok(asyncio_user_source_set_readiness(u, 0));
    asyncio_async_fd_clear_ready(a, &g);
    assert_int_equal(asyncio_async_fd_poll_ready(a, &t.cx, R, &g), ASYNCIO_PENDING);
    assert_ok(asyncio_async_fd_free(a)); /* drops the stored waker */
    assert_int_equal(atomic_load(&t.tw.drops), 1);
    assert_ok(asyncio_user_source_free(u));
    task_done(&t);
    drv_close(&f);
}

/* ------------------------------------------------------------------------ */
/* EOF, errors, SIGPIPE                                                      */

static void test_async_fd_peer_close_reads_zero_bytes(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);
    char buf[8];
    size_t n = 99;
    assert_int_equal(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n), ASYNCIO_PENDING);
    support_close(s[1]);
    turn_until_woken(&f, &t, 1);
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 0);
    /* EOF is final: READ_CLOSED is never cleared, later reads return 0 at once. */
    assert_ok(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n));
    assert_int_equal(n, 0);
    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    task_done(&t);
    drv_close(&f);
}

/* Writes until an error (bounded), turning the driver while pending; returns the error. */
static int write_until_error(fixture *f, test_task *t, asyncio_async_fd *a)
{
    static const char data[4096];
    for (int i = 0; i < 1000; i++) {
        size_t n = 0;
        int rc = asyncio_async_fd_poll_write(a, &t->cx, data, sizeof data, &n);
        if (rc < 0)
            return rc;
        if (rc == ASYNCIO_PENDING)
            turn(f, 10);
    }
    fail_msg("writing to a closed peer never failed");
    return 0;
}

static void test_async_fd_write_to_closed_peer_errors_without_sigpipe(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2], p[2];
    asyncio_async_fd *a = NULL, *b = NULL;
    signal(SIGPIPE, SIG_DFL); /* the default disposition kills the process */
    drv_open(&f);
    task_init(&t);

    support_socketpair(s);
    new_async_fd(&a, s[0]);
    support_close(s[1]);
    assert_err(write_until_error(&f, &t, a), ASYNCIO_EPIPE);

    support_pipe(p);
    assert_ok(asyncio_async_fd_new(&b, p[1], W));
    support_close(p[0]);
    assert_err(write_until_error(&f, &t, b), ASYNCIO_EPIPE);
    sigset_t pending;
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE)); /* and none left pending */

    assert_ok(asyncio_async_fd_free(a));
    assert_ok(asyncio_async_fd_free(b));
    support_close(s[0]);
    support_close(p[1]);
    task_done(&t);
    drv_close(&f);
}

static void test_async_fd_write_to_reset_tcp_peer_errors(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int client, server;
    asyncio_async_fd *a = NULL;
    signal(SIGPIPE, SIG_DFL);
    drv_open(&f);
    task_init(&t);
    support_tcp_pair(&client, &server);
    new_async_fd(&a, client);
    struct linger lg = {1, 0};
    assert_sys(setsockopt(server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    support_close(server); /* RST */
    int rc = write_until_error(&f, &t, a);
    assert_true(rc == ASYNCIO_ECONNRESET || rc == ASYNCIO_EPIPE);
    assert_ok(asyncio_async_fd_free(a));
    support_close(client);
    task_done(&t);
    drv_close(&f);
}

static void test_async_fd_new_rejects_bad_arguments(void **state)
{
    (void)state;
    fixture f;
    asyncio_async_fd *a = NULL;
    int s[2];
    support_socketpair(s);
    /* No runtime on this thread. */
    assert_err(asyncio_async_fd_new(&a, s[0], R), ASYNCIO_EINVAL);
    drv_open(&f);
    assert_err(asyncio_async_fd_new(NULL, s[0], R), ASYNCIO_EINVAL);
    assert_err(asyncio_async_fd_new(&a, s[0], 0), ASYNCIO_EINVAL);
    assert_err(asyncio_async_fd_new(&a, s[0], 1u << 7), ASYNCIO_EINVAL);
    assert_err(asyncio_async_fd_new(&a, -1, R), ASYNCIO_EBADF);
    assert_err(asyncio_async_fd_new_source(&a, NULL, R), ASYNCIO_EINVAL);
    new_async_fd(&a, s[0]);
    asyncio_async_fd *dup = NULL;
    assert_err(asyncio_async_fd_new(&dup, s[0], R), ASYNCIO_EEXIST);
    assert_ok(asyncio_async_fd_free(a));
    assert_ok(asyncio_async_fd_free(NULL));
    support_close(s[0]);
    support_close(s[1]);
    drv_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */

static void test_io_no_allocation_per_poll_dispatch_clear(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);
    treg r;
    treg_open(&f, &r); /* warm: the page exists */

    long before = support_alloc_total();
    for (int i = 0; i < 100; i++) {
        asyncio_ready_guard g;
        char buf[4];
        size_t n;
        inject(&f, r.reg, R | W);
        assert_ok(poll_reg(&t, r.reg, R, &g));
        asyncio__io_clear_ready(r.reg, &g);
        assert_int_equal(poll_reg(&t, r.reg, R, &g), ASYNCIO_PENDING);
        assert_int_equal(asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n),
                         ASYNCIO_PENDING);
        asyncio__io_maintain(&f.d.io);
    }
    assert_int_equal(support_alloc_total(), before);

    treg_close(&f, &r);
    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&t);
    drv_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */

#define THREAD_BYTES 2000

typedef struct thread_ctx {
    fixture *f;
    int peer;
    atomic_bool stop;
} thread_ctx;

static void *driver_thread(void *arg)
{
    thread_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        asyncio_event ev[64];
        size_t n = 0;
        if (asyncio_poller_wait(c->f->d.poller, ev, 64, 5, &n) < 0)
            break;
        for (size_t i = 0; i < n; i++)
            asyncio__io_dispatch(&c->f->d.io, &ev[i]);
        asyncio__io_maintain(&c->f->d.io);
    }
    return NULL;
}

static void *writer_thread(void *arg)
{
    thread_ctx *c = arg;
    const char byte = 'x';
    for (int sent = 0; sent < THREAD_BYTES;) {
        ssize_t n = write(c->peer, &byte, 1);
        if (n == 1)
            sent++;
        else
            sched_yield();
    }
    return NULL;
}

/* One thread reads through the async fd, one dispatches, one writes: all bytes arrive. */
static void test_async_fd_threaded_poll_clear_dispatch_terminates(void **state)
{
    (void)state;
    fixture f;
    test_task t;
    int s[2];
    asyncio_async_fd *a = NULL;
    drv_open(&f);
    task_init(&t);
    support_socketpair(s);
    new_async_fd(&a, s[0]);
    thread_ctx c = {&f, s[1], false};
    pthread_t drv, wr;
    assert_int_equal(pthread_create(&drv, NULL, driver_thread, &c), 0);
    assert_int_equal(pthread_create(&wr, NULL, writer_thread, &c), 0);

    size_t got = 0;
    uint64_t deadline = support_now_us() + 20u * 1000 * 1000;
    while (got < THREAD_BYTES && support_now_us() < deadline) {
        char buf[64];
        size_t n = 0;
        int seen = wakes(&t);
        int rc = asyncio_async_fd_poll_read(a, &t.cx, buf, sizeof buf, &n);
        if (rc == 0) {
            assert_true(n > 0);
            got += n;
            continue;
        }
        assert_int_equal(rc, ASYNCIO_PENDING);
        pthread_mutex_lock(&t.tw.mu);
        while (atomic_load(&t.tw.wakes) == seen && support_now_us() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&t.tw.cv, &t.tw.mu, &ts);
        }
        pthread_mutex_unlock(&t.tw.mu);
    }
    assert_int_equal(pthread_join(wr, NULL), 0);
    atomic_store(&c.stop, true);
    assert_int_equal(pthread_join(drv, NULL), 0);
    assert_int_equal(got, THREAD_BYTES);

    assert_ok(asyncio_async_fd_free(a));
    support_close(s[0]);
    support_close(s[1]);
    task_done(&t);
    drv_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_async_fd_readable_wakes_once_and_clears_on_eagain),
        support_test(test_async_fd_short_stream_read_clears_readiness_without_eagain),
        support_test(test_async_fd_zero_length_read_and_write_return_at_once),
        support_test(test_async_fd_writer_waker_independent_of_reader),
        support_test(test_io_write_event_does_not_cancel_read_clear),
        support_test(test_io_event_racing_clear_keeps_readiness),
        support_test(test_io_tick_wrap_loses_no_readiness),
        support_test(test_async_fd_many_edges_between_eagain_and_clear_no_hang),
        support_test(test_io_stale_event_in_batch_never_reaches_new_registration),
        support_test(test_io_stale_token_after_slot_reuse_is_ignored),
        support_test(test_io_slab_grows_without_moving_entries),
        support_test(test_slab_sets_up_only_entries_handed_out_not_whole_pages),
        support_test(test_io_driver_close_with_live_registration_is_busy),
        support_test(test_async_fd_custom_source_through_vtable),
        support_test(test_async_fd_user_source_readiness_is_delivered),
        support_test(test_async_fd_peer_close_reads_zero_bytes),
        support_test(test_async_fd_write_to_closed_peer_errors_without_sigpipe),
        support_test(test_async_fd_write_to_reset_tcp_peer_errors),
        support_test(test_async_fd_new_rejects_bad_arguments),
        support_test(test_io_no_allocation_per_poll_dispatch_clear),
        support_test(test_async_fd_threaded_poll_clear_dispatch_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

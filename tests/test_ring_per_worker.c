/*
 * A ring per multi-thread worker (src/reactor/comp.h "Rings",
 * docs/backends.md "Ring per worker"): each worker of a uring multi-thread
 * runtime makes an io_uring of its own; a request goes on the ring of the
 * thread that starts it (a receive stays where it was armed); a close on
 * another thread closes the fd at once when the kernel took every SQE of
 * the stream on other rings, else such a ring closes it behind its queue; a
 * receive's cancel for another ring goes by mail; a worker that leaves
 * (runtime shutdown) ends everything on its ring.
 *
 * Every test skips itself when the kernel gives no worker ring (no
 * io_uring, or no DEFER_TASKRUN: the runtime then uses its shared ring,
 * which the uring_comp suite covers).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio/io.h"
#include "asyncio/net.h"
#include "asyncio/poll.h"
#include "asyncio/runtime.h"
#include "poller/completion.h"
#include "reactor/comp.h"
#include "reactor/driver.h"
#include "reactor/io.h"
#include "support.h"

#define CLOSED         \
    {                  \
        NULL, NULL, -1 \
    }

#define WORKERS 2

static asyncio__comp_driver *comp_here(void)
{
    asyncio__driver *d = asyncio__driver_current();
    assert_non_null(d);
    return &d->comp;
}

/* The ring a stream's requests go to (0: the shared ring). */
static unsigned home_of(const asyncio_tcp_stream *s)
{
    const asyncio__io_reg *reg = s->reg;
    return asyncio__cstream_ring(reg->comp);
}

static asyncio_runtime *mt_runtime(void)
{
    asyncio_runtime_options o = {.flavor = ASYNCIO_RUNTIME_MULTI_THREAD, .workers = WORKERS};
    asyncio_runtime *rt;
    assert_ok(asyncio_runtime_new(&rt, &o));
    return rt;
}

/* Reads until EOF or `deadline_ms` passes; returns the bytes read, -1 on timeout. */
static ssize_t peer_read_all(int fd, char *buf, size_t cap, int deadline_ms)
{
    size_t got = 0;
    for (int waited = 0; waited < deadline_ms;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 50);
        waited += 50;
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
        if (n == 0)
            return (ssize_t)got;
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            continue;
        }
        got += (size_t)n;
        assert_true(got < cap);
    }
    return -1;
}

/* Whether the runtime running this task made a ring per worker (polled until they all did). */
static bool rings_made(void)
{
    asyncio__comp_driver *cd = comp_here();
    return cd->nwrings > 0 && atomic_load(&cd->worker_rings) > 0;
}

/*
 * Tasks get a copy of their initial state (asyncio_spawn copies it): these
 * tests pass a pointer to state the main thread owns, read after the task.
 */
#define SHARED_VT(name, fn) \
    static int name##_shim(void *state, asyncio_context *cx, void *out) \
    { \
        return fn(*(void **)state, cx, out); \
    } \
    static const asyncio_task_vtable name = {name##_shim, NULL, NULL, sizeof(void *), 0}

/* ---- a stream's requests run on its worker's own ring -------------------------------- */

typedef struct {
    asyncio_tcp_stream s;
    int fd, peer; /* the pair, made by the main thread */
    int step;
    bool skip;
    unsigned home;
    uint64_t posted_before;
    size_t got;
    char buf[64];
} echo_task;

static int echo_poll(void *state, asyncio_context *cx, void *out)
{
    echo_task *t = state;
    (void)out;
    if (t->step == 0) {
        if (!rings_made()) {
            t->skip = true;
            support_close(t->fd);
            return 0;
        }
        assert_ok(asyncio_tcp_stream_from_fd(&t->s, t->fd));
        t->step = 1;
    }
    while (t->step == 1) {
        /* Nothing has come yet: the receive is armed on this worker's ring, and it parks. */
        size_t n = 0;
        int rc = asyncio_tcp_stream_poll_read(&t->s, cx, t->buf + t->got, sizeof t->buf - t->got,
                                              &n);
        if (rc == ASYNCIO_PENDING) {
            t->home = home_of(&t->s);
            return rc; /* the pinger writes "ping" in a while */
        }
        assert_ok(rc);
        t->got += n;
        if (t->got >= 4) {
            assert_memory_equal(t->buf, "ping", 4);
            t->step = 2;
        }
    }
    size_t n = 0;
    int rc = asyncio_tcp_stream_poll_write(&t->s, cx, "pong", 4, &n);
    if (rc == ASYNCIO_PENDING)
        return rc;
    assert_ok(rc);
    assert_int_equal(n, 4);
    assert_ok(asyncio_tcp_stream_close(&t->s));
    return 0;
}
SHARED_VT(echo_vt, echo_poll);

static void *pinger(void *arg)
{
    int peer = *(int *)arg;
    usleep(50 * 1000); /* the task armed its receive and every worker parked */
    assert_int_equal(write(peer, "ping", 4), 4);
    return NULL;
}

static void test_stream_receives_and_sends_on_its_workers_ring_woken_while_every_worker_sleeps(
    void **state)
{
    (void)state;
    echo_task t = {.s = CLOSED};
    support_tcp_pair(&t.fd, &t.peer);
    asyncio_runtime *rt = mt_runtime();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pinger, &t.peer), 0);
    void *tp = &t;
    assert_ok(asyncio_runtime_block_on(rt, &echo_vt, &tp, NULL));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_ok(asyncio_runtime_free(rt));
    if (t.skip) {
        support_close(t.peer);
        skip();
    }
    assert_true(t.home != 0); /* a worker's ring, not the shared one */
    char buf[16];
    assert_int_equal(peer_read_all(t.peer, buf, sizeof buf, 5000), 4);
    assert_memory_equal(buf, "pong", 4);
    support_close(t.peer);
}

/* ---- a stream armed on one worker, then read, written and closed on another ---------- */
/* (the close mails the receive's cancel to the first worker's ring) */

typedef struct {
    asyncio_tcp_stream s; /* A's, then B's (handed over through `handed`) */
    int fd, peer;
    atomic_int handed, done;
    bool skip;
    unsigned home, ring_b;
    uint64_t posted_before;
    size_t got;
    char buf[64];
} hand_state;

static int hand_a_poll(void *state, asyncio_context *cx, void *out)
{
    hand_state *h = state;
    (void)out;
    if (!rings_made()) {
        h->skip = true;
        support_close(h->fd);
        atomic_store(&h->done, 1);
        atomic_store(&h->handed, 1);
        return 0;
    }
    assert_ok(asyncio_tcp_stream_from_fd(&h->s, h->fd));
    size_t n;
    assert_int_equal(asyncio_tcp_stream_poll_read(&h->s, cx, h->buf, sizeof h->buf, &n),
                     ASYNCIO_PENDING);
    h->home = home_of(&h->s);
    h->posted_before = atomic_load(&comp_here()->posted);
    atomic_store(&h->handed, 1); /* the read future is dropped; its receive stays armed */
    return 0;
}
SHARED_VT(hand_a_vt, hand_a_poll);

static int hand_b_poll(void *state, asyncio_context *cx, void *out)
{
    hand_state *h = state;
    (void)out;
    if (!atomic_load(&h->handed) || h->skip) {
        if (h->skip)
            return 0;
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    h->ring_b = asyncio__comp_ring_here(comp_here());
    while (h->got < 5) {
        /* The receive armed on A's ring delivers to this task's waker. */
        size_t n = 0;
        int rc = asyncio_tcp_stream_poll_read(&h->s, cx, h->buf + h->got, sizeof h->buf - h->got,
                                              &n);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        h->got += n;
    }
    assert_memory_equal(h->buf, "hello", 5);
    /* The receive stays armed on A's ring; the send goes on this worker's own ring. */
    assert_int_equal(home_of(&h->s), h->home);
    size_t n = 0;
    int rc = asyncio_tcp_stream_poll_write(&h->s, cx, "world", 5, &n);
    if (rc == ASYNCIO_PENDING)
        return rc;
    assert_ok(rc);
    assert_int_equal(n, 5);
    assert_int_equal(atomic_load(&comp_here()->posted), h->posted_before); /* no mail for it */
    /* Closed here, on B: the fd goes now or behind A's queue; the reply is sent first. */
    assert_ok(asyncio_tcp_stream_close(&h->s));
    /* A's ring got the receive's cancel (or the close itself) by mail. */
    assert_true(atomic_load(&comp_here()->posted) > h->posted_before);
    atomic_store(&h->done, 1);
    return 0;
}
SHARED_VT(hand_b_vt, hand_b_poll);

static void wait_done(atomic_int *done)
{
    for (int i = 0; i < 10000 && !atomic_load(done); i++)
        usleep(1000);
    assert_true(atomic_load(done));
}

static void test_stream_armed_on_one_worker_is_read_written_and_closed_on_another(void **state)
{
    (void)state;
    hand_state h = {.s = CLOSED};
    support_tcp_pair(&h.fd, &h.peer);
    asyncio_runtime *rt = mt_runtime();
    void *hp = &h;
    /* Pinned from a plain thread: round-robin, so A and B run on different workers. */
    asyncio_join_handle *ja, *jb;
    assert_ok(asyncio_spawn_pinned(rt, &hand_a_vt, &hp, &ja));
    assert_ok(asyncio_spawn_pinned(rt, &hand_b_vt, &hp, &jb));
    for (int i = 0; i < 10000 && !atomic_load(&h.handed); i++)
        usleep(1000);
    assert_true(atomic_load(&h.handed));
    assert_int_equal(write(h.peer, "hello", 5), 5);
    wait_done(&h.done);
    asyncio_join_handle_drop(ja);
    asyncio_join_handle_drop(jb);
    if (!h.skip) {
        assert_true(h.home != 0);
        assert_true(h.ring_b != h.home); /* B ran elsewhere */
        char buf[16];
        assert_int_equal(peer_read_all(h.peer, buf, sizeof buf, 5000), 5);
        assert_memory_equal(buf, "world", 5);
    }
    assert_ok(asyncio_runtime_free(rt));
    support_close(h.peer);
    if (h.skip)
        skip();
}

/* ---- closed from a plain thread while its receive is armed on a worker's ring --------- */

typedef struct {
    asyncio_tcp_stream s;
    int fd;
    bool skip;
    unsigned home;
} park_state;

static int park_poll(void *state, asyncio_context *cx, void *out)
{
    park_state *p = state;
    (void)out;
    if (!rings_made()) {
        p->skip = true;
        support_close(p->fd);
        return 0;
    }
    assert_ok(asyncio_tcp_stream_from_fd(&p->s, p->fd));
    size_t n;
    char c;
    assert_int_equal(asyncio_tcp_stream_poll_read(&p->s, cx, &c, 1, &n), ASYNCIO_PENDING);
    p->home = home_of(&p->s);
    return 0;
}
SHARED_VT(park_vt, park_poll);

static void test_stream_closed_from_a_plain_thread_ends_its_receive_on_the_workers_ring(void **state)
{
    (void)state;
    asyncio_runtime *rt = mt_runtime();
    for (int round = 0; round < 20; round++) {
        park_state p = {.s = CLOSED};
        int peer;
        support_tcp_pair(&p.fd, &peer);
        void *pp = &p;
        assert_ok(asyncio_runtime_block_on(rt, &park_vt, &pp, NULL));
        if (p.skip) {
            support_close(peer);
            assert_ok(asyncio_runtime_free(rt));
            skip();
        }
        assert_true(p.home != 0);
        struct stat st;
        assert_sys(fstat(p.s.fd, &st));
        int fd = p.s.fd;
        /* This thread is no worker: the ring's owner cancels the receive (and maybe closes). */
        assert_ok(asyncio_tcp_stream_close(&p.s));
        char buf[4];
        assert_int_equal(peer_read_all(peer, buf, sizeof buf, 5000), 0); /* EOF: the file let go */
        struct stat now;
        assert_true(fstat(fd, &now) < 0 || now.st_ino != st.st_ino);
        support_close(peer);
    }
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- runtime freed with receives armed on every worker's ring ------------------------- */

typedef struct {
    asyncio_tcp_stream s;
    int fd;
    atomic_int *armed;
    bool *skip;
} stuck_state;

static int stuck_poll(void *state, asyncio_context *cx, void *out)
{
    stuck_state *s = state; /* the task's own copy */
    (void)out;
    if (s->fd >= 0) {
        if (!rings_made()) {
            *s->skip = true;
            support_close(s->fd);
            s->fd = -1;
            atomic_fetch_add(s->armed, 1);
            return 0;
        }
        assert_ok(asyncio_tcp_stream_from_fd(&s->s, s->fd));
        s->fd = -1;
        char c;
        size_t n;
        assert_int_equal(asyncio_tcp_stream_poll_read(&s->s, cx, &c, 1, &n), ASYNCIO_PENDING);
        atomic_fetch_add(s->armed, 1);
        return ASYNCIO_PENDING;
    }
    char c;
    size_t n;
    int rc = asyncio_tcp_stream_poll_read(&s->s, cx, &c, 1, &n);
    /* Nothing comes; at shutdown the worker's ring cancels the receive (it may report that). */
    return rc == ASYNCIO_PENDING ? rc : 0;
}

static void stuck_drop(void *state)
{
    stuck_state *s = state;
    (void)asyncio_tcp_stream_close(&s->s);
}

static const asyncio_task_vtable stuck_vt = {stuck_poll, stuck_drop, NULL, sizeof(stuck_state), 0};

static void test_runtime_freed_with_receives_armed_on_worker_rings_reaps_and_closes_them(
    void **state)
{
    (void)state;
    enum { N = 4 * WORKERS };
    asyncio_runtime *rt = mt_runtime();
    atomic_int armed = 0;
    bool skip_it = false;
    int peers[N];
    for (int i = 0; i < N; i++) {
        stuck_state s = {.s = CLOSED, .armed = &armed, .skip = &skip_it};
        support_tcp_pair(&s.fd, &peers[i]);
        asyncio_join_handle *jh;
        assert_ok(asyncio_spawn_pinned(rt, &stuck_vt, &s, &jh)); /* round-robin over workers */
        asyncio_join_handle_drop(jh);
    }
    for (int i = 0; i < 10000 && atomic_load(&armed) < N; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&armed), N);
    /* Workers leave (each ends its ring's requests), then the tasks are dropped. */
    assert_ok(asyncio_runtime_free(rt));
    for (int i = 0; i < N; i++) {
        char buf[4];
        assert_int_equal(peer_read_all(peers[i], buf, sizeof buf, 5000), 0);
        support_close(peers[i]);
    }
    if (skip_it)
        skip();
}

/* ---- a worker ring's every signal reaches ring 0 ------------------------------------ */
/*
 * The thread here plays a worker that sleeps in ring 0 (it holds the driver
 * flag): its own ring's completions reach it through the ring's eventfd,
 * which ring 0 watches. io_uring ends ring 0's poll of that eventfd at each
 * of its own signals (EPOLL_URING_WAKE); a completion posted before ring 0
 * re-armed the poll must still wake ring 0's next wait. It did not: the
 * eventfd was never drained, and the re-armed poll's first report (the fd
 * still readable) was held back as a repeat of the last one, so the worker
 * slept on with a completion on its ring (the rare hang of the stream
 * suites with a ring per worker).
 */

static atomic_int g_ring_wakes;

static void count_ring_wake(void *ctx, uint32_t i)
{
    (void)ctx;
    assert_int_equal(i, 0);
    atomic_fetch_add(&g_ring_wakes, 1);
}

static asyncio_waker quiet_clone(const void *d)
{
    return (asyncio_waker){NULL, d};
}

static void quiet_wake(const void *d)
{
    (void)d;
}

static const asyncio_waker_vtable quiet_vt = {quiet_clone, quiet_wake, quiet_wake, quiet_wake};

/* Waits on ring 0 up to `ms`; hands worker ring 0's event on as the driver does. Whether it came. */
static bool ring0_hears_ring(asyncio__comp_driver *cd, int ms)
{
    asyncio_event ev[8];
    size_t n = 0;
    assert_ok(asyncio_poller_wait(cd->poller, ev, ASYNCIO_ARRAY_LEN(ev), ms, &n));
    bool heard = false;
    for (size_t k = 0; k < n; k++) {
        if (ev[k].token == ASYNCIO__COMP_RING_TOKEN(0)) {
            asyncio__comp_ring_event(cd, 0);
            heard = true;
        }
    }
    return heard;
}

/* Until the ring has posted a completion (its eventfd or its CQ says so), 5 s at most. */
static void wait_posted(asyncio__comp_driver *cd)
{
    for (int i = 0; i < 5000 && !asyncio__poller_comp_pending(cd->wrings[0].poller); i++) {
        struct pollfd p = {.fd = cd->wrings[0].efd, .events = POLLIN};
        if (poll(&p, 1, 1) > 0)
            return;
    }
}

/*
 * One thread playing a worker that holds the driver flag: a comp driver on
 * a uring ring 0 with one worker ring (this thread's), and a socketpair
 * whose receive is armed on that ring, submitted, and watched by ring 0.
 * False (everything released) when io_uring or a worker ring is refused.
 */
typedef struct {
    asyncio_poller *p0;
    asyncio__comp_driver *cd;
    asyncio__cstream *cs;
    int sv[2]; /* sv[0]: the stream's, sv[1]: the peer */
} lone_ring;

static bool lone_ring_open(lone_ring *lr)
{
    *lr = (lone_ring){.sv = {-1, -1}};
    if (asyncio_poller_new_backend(&lr->p0, "uring") < 0)
        return false;
    if (strcmp(asyncio_poller_backend(lr->p0), "uring") != 0) {
        assert_ok(asyncio_poller_free(lr->p0)); /* io_uring refused: the epoll fallback has no rings */
        return false;
    }
    lr->cd = calloc(1, sizeof *lr->cd);
    assert_non_null(lr->cd);
    assert_ok(asyncio__comp_driver_init(lr->cd, lr->p0, 1));
    assert_ok(asyncio__comp_driver_workers(lr->cd, 1, count_ring_wake, NULL));
    asyncio__comp_worker_enter(lr->cd, 0);
    if (!asyncio__comp_worker_can_wait(lr->cd)) {
        asyncio__comp_driver_close(lr->cd);
        free(lr->cd);
        assert_ok(asyncio_poller_free(lr->p0));
        return false;
    }
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, lr->sv), 0);
    assert_ok(asyncio__cstream_new(lr->cd, lr->sv[0], &lr->cs));
    const asyncio_waker w = {&quiet_vt, NULL};
    asyncio_context cx = {.waker = &w};
    char buf[8];
    size_t got = 0;
    assert_int_equal(asyncio__cstream_poll_read(lr->cs, &cx, buf, sizeof buf, &got),
                     ASYNCIO_PENDING);
    (void)asyncio__comp_worker_turn(lr->cd);   /* the receive goes to the kernel on our ring */
    assert_false(ring0_hears_ring(lr->cd, 0)); /* ring 0 arms its watch of our eventfd */
    asyncio__comp_worker_sleep(lr->cd, true);  /* "asleep in ring 0": the signals are on */
    atomic_store(&g_ring_wakes, 0);
    return true;
}

/* A completion on the worker ring: a byte for the armed receive, then until it is posted. */
static void lone_ring_complete(lone_ring *lr, char byte)
{
    assert_int_equal(send(lr->sv[1], &byte, 1, MSG_NOSIGNAL), 1);
    wait_posted(lr->cd);
}

/* Closes the stream (our ring closes its fd), leaves the ring, frees it all; the peer sees EOF. */
static void lone_ring_close(lone_ring *lr)
{
    asyncio__comp_worker_sleep(lr->cd, false);
    if (!asyncio__cstream_close_queued(lr->cs)) {
        (void)asyncio__poller_comp_flush(lr->cd->poller);
        support_close(lr->sv[0]);
    }
    (void)asyncio__comp_worker_turn(lr->cd); /* our ring closes it, behind the cancel */
    asyncio__comp_worker_leave(lr->cd);
    asyncio__comp_driver_close(lr->cd);
    free(lr->cd);
    assert_ok(asyncio_poller_free(lr->p0));
    char c;
    assert_int_equal(recv(lr->sv[1], &c, 1, 0), 0);
    support_close(lr->sv[1]);
}

static void test_ring_signal_while_its_watch_is_rearmed_still_wakes_ring_0(void **state)
{
    (void)state;
    lone_ring lr;
    if (!lone_ring_open(&lr))
        skip();
    /* A completion: ring 0 hears of it (and its poll of the eventfd ended). */
    lone_ring_complete(&lr, 'a');
    assert_true(ring0_hears_ring(lr.cd, 5000));
    assert_int_equal(atomic_load(&g_ring_wakes), 1);
    /* Another, before ring 0 waits again (its poll is only queued): it must be heard too. */
    lone_ring_complete(&lr, 'b');
    assert_true(ring0_hears_ring(lr.cd, 5000));
    assert_int_equal(atomic_load(&g_ring_wakes), 2);
    lone_ring_close(&lr);
}

/*
 * The same signals seen by a plain user of the uring poller (the ring's
 * eventfd registered edge-triggered): it drains the fd after a report, a
 * signal comes before ring 0 re-armed its poll, and ring 0's next wait runs
 * before the user calls rearm_fd. The re-armed poll's first report carries
 * that new edge but looks like a repeat (the fd was readable at the last
 * report too), so it is held back; rearm_fd must then have ring 0 poll
 * afresh, or the edge is lost for good.
 */
static void test_uring_edge_held_back_before_a_late_rearm_is_reported_after_it(void **state)
{
    (void)state;
    lone_ring lr;
    if (!lone_ring_open(&lr))
        skip();
    int efd = lr.cd->wrings[0].efd;
    asyncio_event ev[8];
    size_t n = 0;
    uint64_t count;
    /* A signal: reported (io_uring ended our poll of the eventfd; one is queued again). */
    lone_ring_complete(&lr, 'a');
    assert_ok(asyncio_poller_wait(lr.p0, ev, 8, 5000, &n));
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].token, ASYNCIO__COMP_RING_TOKEN(0));
    /* The user drains it ... */
    assert_int_equal(read(efd, &count, sizeof count), (ssize_t)sizeof count);
    /* ... a new signal comes (a new edge) before the new poll is armed ... */
    lone_ring_complete(&lr, 'b');
    /* ... ring 0 arms it and reaps its first report, all before the user's rearm_fd. */
    for (int i = 0; i < 3; i++)
        assert_ok(asyncio_poller_wait(lr.p0, ev, 8, 20, &n));
    assert_ok(asyncio_poller_rearm_fd(lr.p0, efd, ASYNCIO_READABLE));
    n = 0;
    for (int i = 0; i < 50 && n == 0; i++)
        assert_ok(asyncio_poller_wait(lr.p0, ev, 8, 100, &n));
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].token, ASYNCIO__COMP_RING_TOKEN(0));
    lone_ring_close(&lr);
}

int main(void)
{
    /* The rings are opt-in (docs/backends.md, "Ring per worker"). */
    setenv("ASYNCIO_URING_RING_PER_WORKER", "1", 1);
    const struct CMUnitTest tests[] = {
        support_test(
            test_stream_receives_and_sends_on_its_workers_ring_woken_while_every_worker_sleeps),
        support_test(test_stream_armed_on_one_worker_is_read_written_and_closed_on_another),
        support_test(test_stream_closed_from_a_plain_thread_ends_its_receive_on_the_workers_ring),
        support_test(test_runtime_freed_with_receives_armed_on_worker_rings_reaps_and_closes_them),
        support_test(test_ring_signal_while_its_watch_is_rearmed_still_wakes_ring_0),
        support_test(test_uring_edge_held_back_before_a_late_rearm_is_reported_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

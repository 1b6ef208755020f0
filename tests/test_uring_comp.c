/*
 * The completion path of the I/O driver (src/reactor/comp.c over the uring backend's
 * uring_comp.c): byte streams whose receives (multishot RECV into the shared buffer ring)
 * and sends (SEND from a stream-owned copy) the ring runs. ctest runs this suite on uring
 * (completion path on) and on epoll (readiness path): every behaviour below must hold on
 * both; the white-box checks of the completion path itself run where it is on.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "asyncio/io.h"
#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "poller/poller_int.h"
#include "poller/uring_int.h"
#include "reactor/comp.h"
#include "reactor/driver.h"
#include "reactor/io.h"
#include "support.h"

#define AWAIT(expr)                       \
    do {                                  \
        int await_rc_ = (expr);           \
        if (await_rc_ == ASYNCIO_PENDING) \
            return ASYNCIO_PENDING;       \
        assert_ok(await_rc_);             \
    } while (0)

#define CLOSED         \
    {                  \
        NULL, NULL, -1 \
    }

/* The completion driver of the runtime running this task. */
static asyncio__comp_driver *comp_here(void)
{
    asyncio__driver *d = asyncio__driver_current();
    assert_non_null(d);
    return &d->comp;
}

static bool comp_on(void)
{
    return asyncio__comp_enabled(comp_here());
}

/* Adopts a connected TCP pair: `s` ours, *peer a plain blocking fd. */
static void adopt(asyncio_tcp_stream *s, int *peer)
{
    int fd;
    support_tcp_pair(&fd, peer);
    assert_ok(asyncio_tcp_stream_from_fd(s, fd));
}

static void run(const asyncio_task_vtable *vt, void *state)
{
    asyncio_runtime *rt = support_runtime_new(NULL);
    assert_ok(asyncio_runtime_block_on(rt, vt, state, NULL));
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * As run(), with every stream on ring 0 (ASYNCIO_URING_RING_PER_WORKER=0, for
 * the ctest entries that turn the worker rings on):
 * for the tests that count one ring's shared buffers and starve them. On the
 * multi-thread runtime each worker's ring has buffers of its own and a task
 * may move between workers mid-test (tests/test_ring_per_worker.c covers
 * those rings).
 */
static void run_shared(const asyncio_task_vtable *vt, void *state)
{
    assert_sys(setenv("ASYNCIO_URING_RING_PER_WORKER", "0", 1));
    asyncio_runtime *rt = support_runtime_new(NULL);
    assert_sys(unsetenv("ASYNCIO_URING_RING_PER_WORKER"));
    assert_ok(asyncio_runtime_block_on(rt, vt, state, NULL));
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * Reads the peer's side without blocking the runtime: 0 once buf[0..n) is in,
 * else ASYNCIO_PENDING after asking to be polled again. (On the completion path a
 * write's bytes leave with the next driver turn, so a blocking read inside the task
 * would wait for a turn that cannot come.)
 */
static int peer_read(asyncio_context *cx, int fd, char *buf, size_t n, size_t *got)
{
    while (*got < n) {
        ssize_t r = recv(fd, buf + *got, n - *got, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        assert_true(r > 0);
        *got += (size_t)r;
    }
    return 0;
}

/* 0 once the peer reads EOF (ASYNCIO_PENDING meanwhile); fails on data. */
static int peer_eof(asyncio_context *cx, int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    assert_int_equal(r, 0);
    return 0;
}

/* ---- the stream picks the completion path where the backend has one -------------- */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    int step;
    size_t n;
    char buf[64];
} basic_task;

static int basic_poll(void *state, asyncio_context *cx, void *out)
{
    basic_task *t = state;
    (void)out;
    switch (t->step) {
    case 0: {
        adopt(&t->s, &t->peer);
        asyncio__io_reg *reg = t->s.reg;
        asyncio__comp_driver *cd = comp_here();
        /* One mechanism per stream, chosen when it is attached. */
        assert_int_equal(reg->comp != NULL, comp_on());
        assert_int_equal(asyncio__cstream_reads(reg->comp), comp_on() && cd->recv);
        assert_int_equal(asyncio__cstream_writes(reg->comp), comp_on() && cd->send);
        /* Both directions on the ring: not registered with the poller (no fstat, no poll). */
        assert_int_equal(asyncio__io_polled(reg), !(comp_on() && cd->recv && cd->send));
        t->step = 1;
    }
    /* fallthrough */
    case 1: /* an idle read: nothing arrives, it stays pending */
        assert_int_equal(asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &t->n),
                         ASYNCIO_PENDING);
        assert_sys(write(t->peer, "ping", 4));
        t->step = 2;
        return ASYNCIO_PENDING; /* the read's waker wakes us */
    case 2:
        AWAIT(asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &t->n));
        assert_int_equal(t->n, 4);
        assert_memory_equal(t->buf, "ping", 4);
        AWAIT(asyncio_tcp_stream_poll_write(&t->s, cx, "pong!", 5, &t->n));
        assert_int_equal(t->n, 5);
        t->n = 0;
        t->step = 3;
    /* fallthrough */
    case 3:
        AWAIT(peer_read(cx, t->peer, t->buf, 5, &t->n));
        assert_memory_equal(t->buf, "pong!", 5);
        assert_ok(asyncio_tcp_stream_close(&t->s));
        support_close(t->peer);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static const asyncio_task_vtable basic_vt = {basic_poll, NULL, NULL, sizeof(basic_task), 0};

static void test_comp_stream_reads_and_writes_on_the_path_its_backend_gives(void **state)
{
    (void)state;
    basic_task t = {.s = CLOSED, .peer = -1};
    run(&basic_vt, &t);
}

/* ---- a write owns its bytes: the caller's buffer is free once poll_write returned -- */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    int step;
    size_t n;
    char buf[4096], got[4096];
} own_task;

static int own_poll(void *state, asyncio_context *cx, void *out)
{
    own_task *t = state;
    (void)out;
    if (t->step == 0) {
        adopt(&t->s, &t->peer);
        t->step = 1;
    }
    if (t->step == 1) {
        memset(t->buf, 'a', sizeof t->buf);
        AWAIT(asyncio_tcp_stream_poll_write(&t->s, cx, t->buf, sizeof t->buf, &t->n));
        assert_int_equal(t->n, sizeof t->buf);
        memset(t->buf, 'X', sizeof t->buf); /* the kernel has not sent a byte yet */
        t->n = 0;
        t->step = 2;
    }
    AWAIT(peer_read(cx, t->peer, t->got, sizeof t->got, &t->n));
    for (size_t i = 0; i < sizeof t->got; i++)
        assert_int_equal(t->got[i], 'a');
    assert_ok(asyncio_tcp_stream_close(&t->s));
    support_close(t->peer);
    return 0;
}

static const asyncio_task_vtable own_vt = {own_poll, NULL, NULL, sizeof(own_task), 0};

static void test_comp_write_copies_so_a_reused_caller_buffer_is_never_sent(void **state)
{
    (void)state;
    own_task t = {.s = CLOSED, .peer = -1};
    run(&own_vt, &t);
}

/* ---- close with a receive in flight: cancelled, memory kept until its CQE ----------- */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    int step;
    int fd;
    ino_t ino;
    size_t n;
    char buf[16];
} drop_task;

static int drop_poll(void *state, asyncio_context *cx, void *out)
{
    drop_task *t = state;
    (void)out;
    if (t->step == 0) {
        adopt(&t->s, &t->peer);
        /* Arms the receive (completion path) or stores the waker (readiness). */
        assert_int_equal(asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &t->n),
                         ASYNCIO_PENDING);
        t->step = 1;
        asyncio_waker_wake_by_ref(cx->waker); /* one driver turn: the receive is in the kernel */
        return ASYNCIO_PENDING;
    }
    if (t->step == 1) {
        /* The read future is dropped: the stream closes with its receive in flight. */
        t->fd = t->s.fd;
        struct stat st;
        assert_sys(fstat(t->fd, &st));
        t->ino = st.st_ino;
        assert_ok(asyncio_tcp_stream_close(&t->s));
        /*
         * Closed when close returns (on io_uring: by the ring, in close's own
         * enter) -- unless the multi-thread runtime moved the task to another
         * worker while its receive was still queued, unsubmitted, on the first
         * worker's ring: that ring closes the fd behind it, in its next turn
         * (docs/backends.md, "Ring per worker").
         */
        if (!support_runtime_is_mt()) {
            assert_int_equal(fcntl(t->fd, F_GETFD), -1);
            assert_int_equal(errno, EBADF);
        }
        t->step = 2;
    }
    if (t->step == 2) {
        /* Still our socket under that number? (Once closed, the number may be reused.) */
        struct stat st;
        if (fstat(t->fd, &st) == 0 && st.st_ino == t->ino) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        t->step = 3;
    }
    /* The peer sees the close (the cancelled receive lets go of the file). */
    AWAIT(peer_eof(cx, t->peer));
    /* Bytes for a closed stream are not delivered anywhere (and not leaked: teardown). */
    support_close(t->peer);
    return 0;
}

static const asyncio_task_vtable drop_vt = {drop_poll, NULL, NULL, sizeof(drop_task), 0};

static void test_comp_close_with_receive_in_flight_cancels_and_frees_it(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        drop_task t = {.s = CLOSED, .peer = -1};
        run(&drop_vt, &t);
    }
}

/* ---- runtime shutdown with operations in flight: reaped, nothing leaked ------------ */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    char buf[65536];
} stuck_task;

/* Reads forever (nothing comes) or, with a peer that never reads, writes until pending. */
static int stuck_poll(void *state, asyncio_context *cx, void *out)
{
    stuck_task *t = state;
    (void)out;
    for (;;) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_write(&t->s, cx, t->buf, sizeof t->buf, &n);
        if (rc == ASYNCIO_PENDING)
            break; /* a send waits in the kernel for room that never comes */
        assert_ok(rc);
    }
    return asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &(size_t){0});
}

static void stuck_drop(void *state)
{
    stuck_task *t = state;
    asyncio_tcp_stream_close(&t->s); /* a task dropped at shutdown closes its stream */
}

static const asyncio_task_vtable stuck_vt = {stuck_poll, stuck_drop, NULL, sizeof(stuck_task), 0};

typedef struct {
    asyncio_runtime *rt;
    int peers[4];
    int step;
} spawner;

static int spawner_poll(void *state, asyncio_context *cx, void *out)
{
    spawner *sp = *(spawner **)state; /* the test keeps the state */
    (void)out;
    if (sp->step == 0) {
        for (int i = 0; i < 4; i++) {
            stuck_task *init = calloc(1, sizeof *init);
            assert_non_null(init);
            adopt(&init->s, &sp->peers[i]);
            assert_ok(asyncio_spawn(sp->rt, &stuck_vt, init, NULL));
            free(init);
        }
        sp->step = 1;
    }
    /* Let them reach their pending sends and receives, then return: shutdown drops them. */
    if (sp->step++ < 50) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static const asyncio_task_vtable spawner_vt = {spawner_poll, NULL, NULL, sizeof(spawner *), 0};

static void test_comp_runtime_shutdown_with_operations_in_flight_reaps_them(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    spawner sp = {.rt = rt};
    spawner *spp = &sp;
    assert_ok(asyncio_runtime_block_on(rt, &spawner_vt, &spp, NULL));
    /* Shutdown drops the four tasks; their closes leave sends and receives to cancel. */
    assert_ok(asyncio_runtime_free(rt));
    for (int i = 0; i < 4; i++) {
        /*
         * Every stream really closed: the peer reads our bytes, then EOF or a reset
         * (blocking, bounded: the last file reference may go a moment after free).
         */
        int fl = fcntl(sp.peers[i], F_GETFL);
        assert_sys(fcntl(sp.peers[i], F_SETFL, fl & ~O_NONBLOCK));
        struct timeval tv = {.tv_sec = 10};
        assert_sys(setsockopt(sp.peers[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
        char buf[65536];
        ssize_t r;
        /* EINTR: io_uring's task work for the last cancels may interrupt this thread. */
        while ((r = read(sp.peers[i], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
            ;
        if (!(r == 0 || (r < 0 && errno == ECONNRESET)))
            fail_msg("peer %d: read gave %zd, errno %d", i, r, errno);
        support_close(sp.peers[i]);
    }
    /* support_teardown: no block of the library left live (cstreams, chunks, buffers). */
}

/* ---- the shared buffers run out: the receive starves, re-arms, loses nothing ------- */

#define FLOOD_BYTES ((size_t)6 << 20) /* well over the shared buffers (2 MiB) */

typedef struct {
    asyncio_tcp_stream r, w; /* two ends of one connection, both ours */
    int step;
    bool reading;
    size_t sent, got;
    uint64_t starved_before, grows_before;
    char buf[65536];
} flood_task;

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 12));
}

static int flood_poll(void *state, asyncio_context *cx, void *out)
{
    flood_task *t = state;
    (void)out;
    if (t->step == 0) {
        int a, b;
        support_tcp_pair(&a, &b);
        assert_ok(asyncio_tcp_stream_from_fd(&t->r, a));
        assert_ok(asyncio_tcp_stream_from_fd(&t->w, b));
        t->starved_before = atomic_load(&comp_here()->starvations);
        t->grows_before = atomic_load(&comp_here()->grows);
        /* Arm the receive without reading: arrivals fill the shared buffers. */
        assert_int_equal(asyncio_tcp_stream_poll_read_ready(&t->r, cx), ASYNCIO_PENDING);
        t->step = 1;
    }
    while (t->sent < FLOOD_BYTES) {
        size_t n = FLOOD_BYTES - t->sent < sizeof t->buf ? FLOOD_BYTES - t->sent : sizeof t->buf;
        for (size_t i = 0; i < n; i++)
            t->buf[i] = (char)pattern(t->sent + i);
        size_t done = 0;
        int rc = asyncio_tcp_stream_poll_write(&t->w, cx, t->buf, n, &done);
        if (rc == ASYNCIO_PENDING) {
            /* The reader starts only once the writer is stuck (or done): buffers fill first. */
            break;
        }
        assert_ok(rc);
        t->sent += done;
    }
    if (t->sent == FLOOD_BYTES && t->step == 1) {
        assert_ok(asyncio_tcp_stream_poll_shutdown(&t->w, cx));
        t->step = 2;
    }
    /*
     * On the completion path nothing is read until the receive starved (the shared
     * buffers all hold unread bytes); the readiness path has no such state to reach.
     */
    if (!t->reading) {
        bool comp = comp_on() && comp_here()->recv;
        t->reading = !comp || t->sent == FLOOD_BYTES ||
                     atomic_load(&comp_here()->starvations) > t->starved_before;
        if (!t->reading) {
            asyncio_waker_wake_by_ref(cx->waker); /* look again after a driver turn */
            return ASYNCIO_PENDING;
        }
    }
    for (;;) {
        size_t n = 0;
        int rc = asyncio_tcp_stream_poll_read(&t->r, cx, t->buf, sizeof t->buf, &n);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            assert_int_equal((unsigned char)t->buf[i], pattern(t->got + i));
        t->got += n;
        if (t->sent < FLOOD_BYTES) {
            asyncio_waker_wake_by_ref(cx->waker); /* room made: write more */
            return ASYNCIO_PENDING;
        }
    }
    assert_int_equal(t->got, FLOOD_BYTES);
    if (comp_on() && comp_here()->recv) {
        assert_true(atomic_load(&comp_here()->starvations) > t->starved_before);
        /* the first starvation put more buffers in circulation (64 -> 128, ...) */
        assert_true(atomic_load(&comp_here()->grows) > t->grows_before);
    }
    assert_ok(asyncio_tcp_stream_close(&t->r));
    assert_ok(asyncio_tcp_stream_close(&t->w));
    return 0;
}

static const asyncio_task_vtable flood_vt = {flood_poll, NULL, NULL, sizeof(flood_task), 0};

/* ---- buffers given back are used again: the first 64 serve a sequential stream ------ */

#define SEQ_MSGS 300 /* each one fills a 4 KiB buffer: over four times the first 64 */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    int sent; /* messages the peer wrote */
    size_t got;
    uint64_t grows_before, starved_before;
    char msg[ASYNCIO__COMP_BUF_SIZE];
    char buf[ASYNCIO__COMP_BUF_SIZE];
} seq_task;

/* How many of the shared buffers [from, to) have a resident page (mincore). */
static unsigned resident_buffers(asyncio__comp_driver *cd, unsigned from, unsigned to)
{
    unsigned n = 0;
    for (unsigned bid = from; bid < to; bid++) {
        unsigned char v = 0;
        void *a = asyncio__poller_comp_buffer(cd->poller, (uint16_t)bid);
        assert_sys(mincore(a, 1, &v));
        n += v & 1u;
    }
    return n;
}

static int seq_poll(void *state, asyncio_context *cx, void *out)
{
    seq_task *t = state;
    (void)out;
    if (t->peer < 0) {
        adopt(&t->s, &t->peer);
        t->grows_before = atomic_load(&comp_here()->grows);
        t->starved_before = atomic_load(&comp_here()->starvations);
        memset(t->msg, 'q', sizeof t->msg);
    }
    while (t->got < (size_t)SEQ_MSGS * sizeof t->msg) {
        /* One message in flight at a time: the next is written once this one is read. */
        if (t->got == (size_t)t->sent * sizeof t->msg) {
            assert_int_equal(write(t->peer, t->msg, sizeof t->msg), (ssize_t)sizeof t->msg);
            t->sent++;
        }
        size_t n = 0;
        AWAIT(asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &n));
        assert_true(n > 0);
        t->got += n;
    }
    if (comp_on() && comp_here()->recv) {
        /* 300 buffers' worth went through; given back after each read, 64 were plenty */
        assert_int_equal(atomic_load(&comp_here()->starvations), t->starved_before);
        assert_int_equal(atomic_load(&comp_here()->grows), t->grows_before);
        /* and the kernel never wrote to (so never faulted in) the buffers that did not circulate */
        assert_int_equal(resident_buffers(comp_here(), ASYNCIO__COMP_BUF_FIRST, ASYNCIO__COMP_BUF_COUNT),
                         0);
    }
    assert_ok(asyncio_tcp_stream_close(&t->s));
    support_close(t->peer);
    return 0;
}

static const asyncio_task_vtable seq_vt = {seq_poll, NULL, NULL, sizeof(seq_task), 0};

/*
 * Only ASYNCIO__COMP_BUF_FIRST (64) of the 512 shared buffers circulate at
 * first (completion.h): a stream reading 300 buffers' worth one message at
 * a time gets every byte without a starvation and without putting more in
 * circulation, so the other 448 are never touched (mincore: not one of
 * their pages is resident; when all 512 circulated from the start, the
 * kernel's walk through the ring had faulted in ~300 of them). The flood test above shows them added,
 * one doubling per starvation, when receives do run out.
 */
static void test_comp_buffers_given_back_serve_again_without_more_circulating(void **state)
{
    (void)state;
    seq_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->s = (asyncio_tcp_stream)CLOSED;
    t->peer = -1;
    run_shared(&seq_vt, t);
    free(t);
}

static void test_comp_buffers_run_out_the_receive_rearms_and_loses_nothing(void **state)
{
    (void)state;
    flood_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->r = (asyncio_tcp_stream)CLOSED;
    t->w = (asyncio_tcp_stream)CLOSED;
    run_shared(&flood_vt, t);
    free(t);
}

/* ---- a burst's buffers go back to the kernel once the runtime is quiet ------------- */

enum { BURST_CONNS = 160, BURST_MSG = 1000 };

typedef struct {
    asyncio_tcp_stream s[BURST_CONNS];
    int peer[BURST_CONNS];
    size_t got[BURST_CONNS];
    int step, round;
    asyncio_sleep nap;
    bool napping;
    char buf[BURST_MSG];
} burst_task;

/* The byte peer i's message carries in round r. */
static char burst_byte(int i, int r)
{
    return (char)('a' + (i * 7 + r * 3) % 26);
}

/* Sleeps ms on the runtime (the driver waits meanwhile): 0 when done, else PENDING. */
static int burst_nap(burst_task *t, asyncio_context *cx, uint64_t ms)
{
    if (!t->napping) {
        asyncio_sleep_init(&t->nap, ms);
        t->napping = true;
    }
    int rc = asyncio_sleep_poll(&t->nap, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_sleep_drop(&t->nap);
    t->napping = false;
    return 0;
}

static int burst_poll(void *state, asyncio_context *cx, void *out)
{
    burst_task *t = state;
    (void)out;
    for (;;) {
        switch (t->step) {
        case 0: /* every stream's receive armed, then every peer writes at once */
            for (int i = 0; i < BURST_CONNS; i++) {
                adopt(&t->s[i], &t->peer[i]);
                size_t n = 0;
                assert_int_equal(asyncio_tcp_stream_poll_read(&t->s[i], cx, t->buf, 1, &n),
                                 ASYNCIO_PENDING);
            }
            t->step = 1;
            break;
        case 1: {
            char msg[BURST_MSG];
            for (int i = 0; i < BURST_CONNS; i++) {
                memset(msg, burst_byte(i, t->round), sizeof msg);
                assert_int_equal(write(t->peer[i], msg, sizeof msg), (ssize_t)sizeof msg);
                t->got[i] = 0;
            }
            t->step = 2;
            break;
        }
        case 2: /* a pause: the receives complete before anything is read (the burst) */
            AWAIT(burst_nap(t, cx, 50));
            t->step = 3;
            break;
        case 3: /* every byte, in order, on every stream */
            for (int i = 0; i < BURST_CONNS; i++) {
                while (t->got[i] < BURST_MSG) {
                    size_t n = 0;
                    AWAIT(asyncio_tcp_stream_poll_read(&t->s[i], cx, t->buf,
                                                       BURST_MSG - t->got[i], &n));
                    assert_true(n > 0);
                    for (size_t k = 0; k < n; k++)
                        assert_int_equal(t->buf[k], burst_byte(i, t->round));
                    t->got[i] += n;
                }
            }
            if (t->round == 1) {
                t->step = 6;
                break;
            }
            if (comp_on() && comp_here()->recv && !support_runtime_is_mt()) {
                /* 160 at once: more than the first 64 came into circulation, and stay resident */
                assert_true(atomic_load(&comp_here()->grows) > 0);
                assert_true(resident_buffers(comp_here(), 0, ASYNCIO__COMP_BUF_COUNT) >
                            ASYNCIO__COMP_BUF_FIRST);
            }
            t->step = 4;
            break;
        case 4: /* quiet for longer than the trim waits for (the driver's waits find nothing) */
            AWAIT(burst_nap(t, cx, 1600));
            t->step = 5;
            break;
        case 5:
            if (comp_on() && comp_here()->recv && !support_runtime_is_mt()) {
                /* every free buffer's page went back to the kernel (the kept ones refault on use) */
                assert_int_equal(resident_buffers(comp_here(), 0, ASYNCIO__COMP_BUF_COUNT), 0);
            }
            t->round = 1; /* and the streams still receive, every byte intact */
            t->step = 1;
            break;
        default:
            for (int i = 0; i < BURST_CONNS; i++) {
                assert_ok(asyncio_tcp_stream_close(&t->s[i]));
                support_close(t->peer[i]);
            }
            return 0;
        }
    }
}

static void burst_drop(void *state)
{
    burst_task *t = state;
    if (t->napping)
        asyncio_sleep_drop(&t->nap);
}

static const asyncio_task_vtable burst_vt = {burst_poll, burst_drop, NULL, sizeof(burst_task), 0};

/*
 * The buffers a burst brought into circulation (160 receives at once: 64 ->
 * 128 -> 256) are given back once the runtime has been quiet for a second
 * (current-thread runtime: every receive was submitted by the thread that
 * waits, so the ring can be replaced safely; docs/backends.md, "Giving
 * buffers back after a burst"): not one buffer page stays resident, and the
 * same streams then receive another burst intact. (On the multi-thread
 * runtime the ring has several submitters and keeps its buffers: the test
 * only checks the bytes there.)
 */
static void test_comp_buffers_of_a_burst_go_back_to_the_kernel_when_quiet(void **state)
{
    (void)state;
    burst_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    run_shared(&burst_vt, t);
    free(t);
}

/* ---- trims while bytes keep arriving: nothing lost, nothing out of order ----------- */

enum { TRIM_CONNS = 120, TRIM_BYTES = 48 * 1024 };

typedef struct {
    asyncio_tcp_stream s[TRIM_CONNS];
    int peer[TRIM_CONNS];
    size_t got[TRIM_CONNS];
    pthread_t writer;
    bool started;
    unsigned trims, parked;
    char buf[1500];
} trim_race_task;

/* Byte k of every stream's sequence. */
static char seq_byte(size_t k)
{
    return (char)(k % 251);
}

/* Another thread: writes each peer's sequence in small pieces, round robin. */
static void *trim_writer(void *arg)
{
    trim_race_task *t = arg;
    size_t sent[TRIM_CONNS] = {0};
    char piece[700];
    for (bool more = true; more;) {
        more = false;
        for (int i = 0; i < TRIM_CONNS; i++) {
            if (sent[i] == TRIM_BYTES)
                continue;
            size_t n = TRIM_BYTES - sent[i] < sizeof piece ? TRIM_BYTES - sent[i] : sizeof piece;
            for (size_t k = 0; k < n; k++)
                piece[k] = seq_byte(sent[i] + k);
            ssize_t w = write(t->peer[i], piece, n);
            assert_true(w > 0);
            sent[i] += (size_t)w;
            more = true;
        }
    }
    return NULL;
}

static int trim_race_poll(void *state, asyncio_context *cx, void *out)
{
    trim_race_task *t = state;
    (void)out;
    if (!t->started) {
        for (int i = 0; i < TRIM_CONNS; i++)
            adopt(&t->s[i], &t->peer[i]);
        assert_int_equal(pthread_create(&t->writer, NULL, trim_writer, t), 0);
        t->started = true;
    }
    asyncio_poller *p = comp_here()->poller;
    bool can_trim = comp_on() && comp_here()->recv && !support_runtime_is_mt() &&
                    strcmp(asyncio_poller_backend(p), "uring") == 0;
    size_t reads = 0;
    for (int i = 0; i < TRIM_CONNS; i++) {
        while (t->got[i] < TRIM_BYTES) {
            size_t n = 0;
            int rc = asyncio_tcp_stream_poll_read(&t->s[i], cx, t->buf, sizeof t->buf, &n);
            if (rc == ASYNCIO_PENDING)
                break; /* the next stream; this one is polled again when woken */
            assert_ok(rc);
            assert_true(n > 0);
            for (size_t k = 0; k < n; k++)
                assert_int_equal(t->buf[k], seq_byte(t->got[i] + k));
            t->got[i] += n;
            /* Replace the ring now and then, whatever is arriving or held meanwhile. */
            if (can_trim && ++reads % 16 == 0) {
                unsigned parked = asyncio__uring_comp_trim(p->backend);
                t->trims += parked > 0;
                t->parked += parked;
            }
        }
    }
    for (int i = 0; i < TRIM_CONNS; i++)
        if (t->got[i] < TRIM_BYTES)
            return ASYNCIO_PENDING;
    assert_int_equal(pthread_join(t->writer, NULL), 0);
    if (can_trim)
        assert_true(t->trims > 0); /* the ring was replaced while bytes were in flight */
    for (int i = 0; i < TRIM_CONNS; i++) {
        assert_ok(asyncio_tcp_stream_close(&t->s[i]));
        support_close(t->peer[i]);
    }
    return 0;
}

static const asyncio_task_vtable trim_race_vt = {trim_race_poll, NULL, NULL,
                                                 sizeof(trim_race_task), 0};

/*
 * The ring replaced (asyncio__uring_comp_trim) again and again while another
 * thread keeps writing to 120 connections and the reader holds buffers:
 * receives that tried to take a buffer while no ring was registered ended
 * with ENOBUFS and were re-armed, buffers the kernel had taken were counted
 * out and come back by recycle, and every stream gets its 48 KiB exactly, in
 * order.
 */
static void test_comp_ring_replaced_while_bytes_arrive_loses_nothing(void **state)
{
    (void)state;
    trim_race_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    run_shared(&trim_race_vt, t);
    free(t);
}

/* ---- peer reset: queued bytes first, then the error, then the same error ------------ */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    int step;
    size_t got;
    char buf[64];
} reset_task;

static int reset_poll(void *state, asyncio_context *cx, void *out)
{
    reset_task *t = state;
    (void)out;
    if (t->step == 0) {
        adopt(&t->s, &t->peer);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        assert_sys(setsockopt(t->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
        support_close(t->peer); /* RST */
        t->step = 1;
    }
    for (;;) {
        size_t n = 0;
        int rc = asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &n);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == 0 && n == 0)
            break; /* EOF (a reset seen as a close by this kernel) */
        if (rc < 0) {
            assert_int_equal(rc, ASYNCIO_ECONNRESET);
            break;
        }
    }
    /* Writing to a reset peer: an error, never SIGPIPE, never a hang. */
    for (int i = 0; i < 64; i++) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_write(&t->s, cx, "x", 1, &n);
        if (rc == ASYNCIO_PENDING)
            return rc; /* the error arrives with the send's completion */
        if (rc < 0) {
            assert_true(rc == ASYNCIO_EPIPE || rc == ASYNCIO_ECONNRESET);
            assert_ok(asyncio_tcp_stream_close(&t->s));
            return 0;
        }
    }
    fail_msg("64 writes to a reset peer all succeeded");
    return 0;
}

static const asyncio_task_vtable reset_vt = {reset_poll, NULL, NULL, sizeof(reset_task), 0};

static void test_comp_peer_reset_ends_reads_and_fails_writes(void **state)
{
    (void)state;
    reset_task t = {.s = CLOSED, .peer = -1};
    run(&reset_vt, &t);
}

/* ---- half-close both ways: EOF read, writes still work; our FIN after our bytes ---- */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    int step;
    size_t n;
    char buf[64];
} half_task;

static int half_poll(void *state, asyncio_context *cx, void *out)
{
    half_task *t = state;
    (void)out;
    size_t n = 0;
    switch (t->step) {
    case 0:
        adopt(&t->s, &t->peer);
        assert_sys(write(t->peer, "last", 4));
        assert_sys(shutdown(t->peer, SHUT_WR));
        t->step = 1;
    /* fallthrough */
    case 1:
        AWAIT(asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &n));
        if (n > 0) {
            assert_int_equal(n, 4);
            return half_poll(state, cx, out); /* then EOF */
        }
        /* EOF, and again EOF. */
        AWAIT(asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &n));
        assert_int_equal(n, 0);
        t->step = 2;
    /* fallthrough */
    case 2:
        AWAIT(asyncio_tcp_stream_poll_write(&t->s, cx, "reply", 5, &n));
        assert_int_equal(n, 5);
        /* Shutdown right after the write: the FIN follows the accepted bytes. */
        assert_ok(asyncio_tcp_stream_poll_shutdown(&t->s, cx));
        size_t n2;
        assert_err(asyncio_tcp_stream_poll_write(&t->s, cx, "x", 1, &n2), ASYNCIO_EPIPE);
        t->n = 0;
        t->step = 3;
    /* fallthrough */
    case 3:
        AWAIT(peer_read(cx, t->peer, t->buf, 5, &t->n));
        assert_memory_equal(t->buf, "reply", 5);
        t->step = 4;
    /* fallthrough */
    case 4:
        AWAIT(peer_eof(cx, t->peer));
        assert_ok(asyncio_tcp_stream_close(&t->s));
        support_close(t->peer);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static const asyncio_task_vtable half_vt = {half_poll, NULL, NULL, sizeof(half_task), 0};

static void test_comp_half_close_reads_eof_and_shutdown_follows_accepted_bytes(void **state)
{
    (void)state;
    half_task t = {.s = CLOSED, .peer = -1};
    run(&half_vt, &t);
}

/* ---- a write accepted just before block_on returns still leaves ------------------- */

typedef struct {
    asyncio_tcp_stream *s;
    int *peer;
} last_task;

static int last_poll(void *state, asyncio_context *cx, void *out)
{
    last_task *t = state;
    (void)out;
    if (t->s->fd < 0)
        adopt(t->s, t->peer); /* once: the write may be pending on the readiness path */
    size_t n = 0;
    AWAIT(asyncio_tcp_stream_poll_write(t->s, cx, "bye", 3, &n));
    assert_int_equal(n, 3);
    return 0; /* block_on returns with the send only queued on the completion path */
}

static const asyncio_task_vtable last_vt = {last_poll, NULL, NULL, sizeof(last_task), 0};

static void test_comp_write_accepted_before_block_on_returns_is_sent(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_tcp_stream s = CLOSED;
    int peer = -1;
    last_task t = {&s, &peer};
    assert_ok(asyncio_runtime_block_on(rt, &last_vt, &t, NULL));
    /* Nobody turns the current-thread runtime now: the bytes must already be out. */
    int fl = fcntl(peer, F_GETFL);
    assert_sys(fcntl(peer, F_SETFL, fl & ~O_NONBLOCK));
    struct timeval tv = {.tv_sec = 10};
    assert_sys(setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    char buf[3];
    ssize_t r;
    while ((r = recv(peer, buf, 3, MSG_WAITALL)) < 0 && errno == EINTR)
        ;
    assert_int_equal(r, 3);
    assert_memory_equal(buf, "bye", 3);
    assert_ok(asyncio_tcp_stream_close(&s));
    support_close(peer);
    assert_ok(asyncio_runtime_free(rt));
}

/* ---- a stream closed while its receive is starved: freed once, by the re-arm pass ---- */

/* Cstreams the driver has not freed (on its live or starved list). */
static size_t cstreams_alive(void)
{
    asyncio__comp_driver *cd = comp_here();
    size_t n = 0;
    asyncio__spin_lock(&cd->lock);
    for (asyncio__list *l = cd->live.next; l != &cd->live; l = l->next)
        n++;
    for (asyncio__list *l = cd->starved.next; l != &cd->starved; l = l->next)
        n++;
    asyncio__spin_unlock(&cd->lock);
    return n;
}

typedef struct {
    asyncio_tcp_stream hog, starved; /* ours */
    int hog_peer, starved_peer;      /* plain non-blocking fds */
    int step;
    size_t alive_before, spins;
    uint64_t starvations_before, grows_before;
    size_t sent, got; /* by the hog's peer, by the hog */
    char buf[65536];
} starve_task;

static bool comp_recv_on(void)
{
    return comp_on() && comp_here()->recv;
}

/*
 * Whether every shared buffer circulates and the hog's receive is starved
 * (completion.h: 64 circulate at first, doubled by each starvation until
 * all 512 do; only a starvation after that stays on the starved list).
 */
static bool hog_starved_with_every_buffer(const starve_task *t)
{
    unsigned grows = 0;
    for (unsigned n = ASYNCIO__COMP_BUF_FIRST; n < ASYNCIO__COMP_BUF_COUNT; n *= 2)
        grows++;
    return atomic_load(&comp_here()->grows) - t->grows_before >= grows &&
           atomic_load(&comp_here()->n_starved) > 0;
}

/* Writes the pattern to the hog's peer until the socket is full (EAGAIN). */
static void fill_hog(starve_task *t)
{
    for (;;) {
        for (size_t i = 0; i < sizeof t->buf; i++)
            t->buf[i] = (char)pattern(t->sent + i);
        ssize_t w = send(t->hog_peer, t->buf, sizeof t->buf, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return;
        }
        t->sent += (size_t)w;
    }
}

static int starve_poll(void *state, asyncio_context *cx, void *out)
{
    starve_task *t = state;
    (void)out;
    switch (t->step) {
    case 0:
        t->alive_before = comp_on() ? cstreams_alive() : 0;
        adopt(&t->hog, &t->hog_peer);
        adopt(&t->starved, &t->starved_peer);
        assert_sys(fcntl(t->hog_peer, F_SETFL, fcntl(t->hog_peer, F_GETFL) | O_NONBLOCK));
        t->starvations_before = atomic_load(&comp_here()->starvations);
        t->grows_before = atomic_load(&comp_here()->grows);
        /* The hog's receive is armed and never read: arrivals take every shared buffer. */
        assert_int_equal(asyncio_tcp_stream_poll_read_ready(&t->hog, cx), ASYNCIO_PENDING);
        t->step = 1;
    /* fallthrough */
    case 1: /* flood until the hog's receive starved (the readiness path: until full) */
        fill_hog(t);
        if (comp_recv_on() && !hog_starved_with_every_buffer(t)) {
            asyncio_waker_wake_by_ref(cx->waker); /* after a driver turn drained the socket */
            return ASYNCIO_PENDING;
        }
        /* Now the other stream's receive finds no buffer: it starves too. */
        assert_sys(write(t->starved_peer, "x", 1));
        int ready = asyncio_tcp_stream_poll_read_ready(&t->starved, cx);
        assert_true(ready == 0 || ready == ASYNCIO_PENDING); /* readiness: may see it already */
        t->step = 2;
    /* fallthrough */
    case 2:
        if (comp_recv_on() && atomic_load(&comp_here()->n_starved) < 2) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        /*
         * Closed while starved: the starved list keeps its hold until the next
         * re-arm pass (the close's own) takes it off and frees it; the same pass
         * re-arms the hog (which starves again: no buffer came back). Exactly
         * once: ASan sees a second free, the count and teardown a leak.
         */
        assert_ok(asyncio_tcp_stream_close(&t->starved));
        t->step = 3;
    /* fallthrough */
    case 3:
        /*
         * Freed by that pass (at once on the current-thread runtime; a worker
         * turning the driver may be the one to take it off the list on mt).
         */
        if (comp_recv_on() && cstreams_alive() != t->alive_before + 1) {
            if (++t->spins > 100000)
                fail_msg("the starved stream was not freed: %zu cstreams, want %zu",
                         cstreams_alive(), t->alive_before + 1);
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        t->step = 4;
    /* fallthrough */
    case 4: /* the hog reads everything back: its buffers return, nothing was lost */
        for (;;) {
            size_t n = 0;
            int rc = asyncio_tcp_stream_poll_read(&t->hog, cx, t->buf, sizeof t->buf, &n);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            assert_true(n > 0);
            for (size_t i = 0; i < n; i++)
                assert_int_equal((unsigned char)t->buf[i], pattern(t->got + i));
            t->got += n;
            if (t->got == t->sent)
                break;
        }
        assert_ok(asyncio_tcp_stream_close(&t->hog)); /* freed with its cancel's completion */
        support_close(t->hog_peer);
        support_close(t->starved_peer);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static const asyncio_task_vtable starve_vt = {starve_poll, NULL, NULL, sizeof(starve_task), 0};

static void
test_comp_stream_closed_while_starved_is_freed_once_and_the_other_loses_nothing(void **state)
{
    (void)state;
    starve_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->hog = (asyncio_tcp_stream)CLOSED;
    t->starved = (asyncio_tcp_stream)CLOSED;
    run_shared(&starve_vt, t);
    free(t);
}

/*
 * ---- a starved stream closed while its re-arm is queued: no receive on the reused fd ---
 *
 * The re-arm pass runs on whatever thread gave buffers back. It once decided to re-arm
 * under the stream's lock but queued the receive's SQE after letting go of it: a close
 * in between queued its cancel and the fd's close first, and the receive then went to the
 * kernel for an fd number already free, where a new socket took it over (its bytes went
 * to a freed stream). The hook runs right after the re-arm was decided; it closes the
 * stream and puts another socket at its fd number.
 */

typedef struct {
    starve_task st;
    asyncio__cstream *target; /* the starved stream's completion state */
    int old_fd;               /* its fd number, reused by reuse[0] */
    int reuse[2];             /* a socket pair: [0] dup2'd onto old_fd, [1] writes to it */
    bool hooked;
    int polls;
} rearm_task;

static rearm_task *g_rearm;

static void rearm_hook(asyncio__cstream *cs)
{
    rearm_task *t = g_rearm;
    if (t == NULL || t->hooked || cs != t->target)
        return;
    t->hooked = true;
    t->old_fd = t->st.starved.fd;
    /* Made first, so neither end takes the number the close frees. */
    assert_sys(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t->reuse));
    assert_ok(asyncio_tcp_stream_close(&t->st.starved));
    /* The number is free now: another socket takes it. */
    assert_sys(dup2(t->reuse[0], t->old_fd));
    support_close(t->reuse[0]);
    t->reuse[0] = t->old_fd;
}

static int rearm_poll(void *state, asyncio_context *cx, void *out)
{
    rearm_task *t = state;
    starve_task *s = &t->st;
    (void)out;
    switch (s->step) {
    case 0:
        adopt(&s->hog, &s->hog_peer);
        adopt(&s->starved, &s->starved_peer);
        assert_sys(fcntl(s->hog_peer, F_SETFL, fcntl(s->hog_peer, F_GETFL) | O_NONBLOCK));
        s->grows_before = atomic_load(&comp_here()->grows);
        if (!comp_recv_on()) { /* no receives on a ring: nothing to re-arm */
            s->step = 9;
            return rearm_poll(state, cx, out);
        }
        assert_int_equal(asyncio_tcp_stream_poll_read_ready(&s->hog, cx), ASYNCIO_PENDING);
        s->step = 1;
    /* fallthrough */
    case 1: /* the hog's receive takes every buffer and starves */
        fill_hog(s);
        if (!hog_starved_with_every_buffer(s)) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        assert_sys(write(s->starved_peer, "x", 1));
        assert_int_equal(asyncio_tcp_stream_poll_read_ready(&s->starved, cx), ASYNCIO_PENDING);
        s->step = 2;
    /* fallthrough */
    case 2: /* the other stream starves too */
        if (atomic_load(&comp_here()->n_starved) < 2) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        t->target = ((asyncio__io_reg *)s->starved.reg)->comp;
        g_rearm = t;
        asyncio__comp_rearm_hook = rearm_hook;
        s->step = 3;
    /* fallthrough */
    case 3: /* the hog reads: buffers return, the re-arm pass re-arms (and the hook closes) */
        for (;;) {
            size_t n = 0;
            int rc = asyncio_tcp_stream_poll_read(&s->hog, cx, s->buf, sizeof s->buf, &n);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            s->got += n;
            if (s->got == s->sent)
                break;
        }
        asyncio__comp_rearm_hook = NULL;
        g_rearm = NULL;
        assert_true(t->hooked);
        /* Bytes for the new socket at the old number: nobody but its reader may take them. */
        assert_int_equal(write(t->reuse[1], "y", 1), 1);
        s->step = 4;
    /* fallthrough */
    case 4: /* a few driver turns: a stray receive on the number would have its byte by now */
        if (t->polls++ < 20) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        char c = 0;
        ssize_t r = recv(t->reuse[0], &c, 1, MSG_DONTWAIT);
        if (r != 1)
            fail_msg("the new socket at fd %d lost its byte (recv: %zd): a receive of the "
                     "closed stream was armed on the reused number",
                     t->reuse[0], r);
        assert_int_equal(c, 'y');
        assert_ok(asyncio_tcp_stream_close(&s->hog));
        support_close(s->hog_peer);
        support_close(s->starved_peer);
        support_close(t->reuse[0]);
        support_close(t->reuse[1]);
        return 0;
    default:
        asyncio_tcp_stream_close(&s->hog);
        asyncio_tcp_stream_close(&s->starved);
        support_close(s->hog_peer);
        support_close(s->starved_peer);
        return 0;
    }
}

static const asyncio_task_vtable rearm_vt = {rearm_poll, NULL, NULL, sizeof(rearm_task), 0};

static void test_comp_starved_stream_closed_while_rearmed_leaves_no_receive_on_the_reused_fd(
    void **state)
{
    (void)state;
    if (support_runtime_is_mt())
        skip(); /* the hook closes on the re-arming thread: one runtime thread keeps it simple */
    rearm_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->st.hog = (asyncio_tcp_stream)CLOSED;
    t->st.starved = (asyncio_tcp_stream)CLOSED;
    t->reuse[0] = t->reuse[1] = -1;
    run_shared(&rearm_vt, t);
    free(t);
}

/* ---- writes of every send-chunk class boundary arrive whole ------------------------ */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    size_t k;     /* which size */
    size_t off;   /* bytes of this size accepted so far */
    size_t total; /* bytes written in all */
    size_t got;
    char out[70000];
    char in[70000];
} sizes_task;

/* Around the 512 B, 4 KiB and 64 KiB chunk classes, and past the largest. */
static const size_t k_sizes[] = {1, 511, 512, 513, 4095, 4096, 4097, 65535, 65536, 65537, 70000};

static int sizes_poll(void *state, asyncio_context *cx, void *out)
{
    sizes_task *t = state;
    (void)out;
    if (t->peer < 0) {
        adopt(&t->s, &t->peer);
        assert_sys(fcntl(t->peer, F_SETFL, fcntl(t->peer, F_GETFL) | O_NONBLOCK));
    }
    while (t->k < ASYNCIO_ARRAY_LEN(k_sizes)) {
        size_t len = k_sizes[t->k];
        if (t->off < len) {
            for (size_t i = t->off; i < len; i++)
                t->out[i] = (char)pattern(t->total + i);
            size_t n = 0;
            int rc = asyncio_tcp_stream_poll_write(&t->s, cx, t->out + t->off, len - t->off, &n);
            if (rc == ASYNCIO_PENDING)
                return rc;
            assert_ok(rc);
            /* One write takes what one chunk holds: all of it up to 64 KiB. */
            assert_true(n > 0);
            if (comp_on() && comp_here()->send)
                assert_int_equal(n, len - t->off < 65536 ? len - t->off : 65536);
            t->off += n;
            if (t->off < len)
                continue;
        }
        /* The peer reads this size back, byte for byte. */
        size_t want = t->total + len;
        while (t->got < want) {
            ssize_t r =
                recv(t->peer, t->in, want - t->got < sizeof t->in ? want - t->got : sizeof t->in,
                     MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                asyncio_waker_wake_by_ref(cx->waker);
                return ASYNCIO_PENDING;
            }
            assert_true(r > 0);
            for (ssize_t i = 0; i < r; i++)
                assert_int_equal((unsigned char)t->in[i], pattern(t->got + (size_t)i));
            t->got += (size_t)r;
        }
        t->total = want;
        t->k++;
        t->off = 0;
    }
    assert_ok(asyncio_tcp_stream_close(&t->s));
    support_close(t->peer);
    return 0;
}

static const asyncio_task_vtable sizes_vt = {sizes_poll, NULL, NULL, sizeof(sizes_task), 0};

static void test_comp_writes_at_every_send_chunk_size_boundary_arrive_whole(void **state)
{
    (void)state;
    sizes_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->s = (asyncio_tcp_stream)CLOSED;
    t->peer = -1;
    run(&sizes_vt, t);
    free(t);
}


/* ---- listeners: accepts on the ring (one multishot accept) ----------------------- */

#define ACC_CONNS 200 /* > 3 x ASYNCIO__CACCEPT_HIGH: the queue limit is crossed */

typedef struct {
    asyncio_tcp_listener *l;
    asyncio_sockaddr addr;
    int clients[ACC_CONNS];
    bool seen[ACC_CONNS];
    int step, accepted, spins;
    uint64_t completed_before;
} acc_task;

/* A client socket connected (blocking connect: loopback completes in the backlog). */
static int acc_client(const asyncio_sockaddr *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_sys(fd);
    assert_sys(connect(fd, &addr->u.sa, addr->len));
    return fd;
}

/* Which client a server-side fd belongs to (its peer is that client's local address). */
static int acc_which(acc_task *t, const asyncio_sockaddr *peer)
{
    for (int i = 0; i < ACC_CONNS; i++) {
        asyncio_sockaddr local;
        socklen_t len = sizeof local.u;
        assert_sys(getsockname(t->clients[i], &local.u.sa, &len));
        if (len == peer->len && memcmp(&local.u, &peer->u, len) == 0)
            return i;
    }
    fail_msg("an accepted connection matches no client");
    return -1;
}

static int acc_poll(void *state, asyncio_context *cx, void *out)
{
    acc_task *t = state;
    (void)out;
    for (;;) {
        switch (t->step) {
        case 0: {
            asyncio_sockaddr any;
            assert_ok(asyncio_addr_from_ip("127.0.0.1", 0, &any));
            asyncio_tcp_listener_options o = {.backlog = 4 * ACC_CONNS};
            assert_ok(asyncio_tcp_listener_bind(&t->l, &any, &o));
            assert_ok(asyncio_tcp_listener_local_addr(t->l, &t->addr));
            t->completed_before = atomic_load(&comp_here()->completed);
            asyncio_tcp_stream s;
            /* Arms the accept (on the ring: the multishot request) before anyone connects. */
            assert_int_equal(asyncio_tcp_listener_poll_accept(t->l, cx, &s, NULL),
                             ASYNCIO_PENDING);
            for (int i = 0; i < ACC_CONNS; i++)
                t->clients[i] = acc_client(&t->addr);
            t->step = 1;
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        case 1: /* let the driver turn: the ring accepts until its queue is full */
            if (t->spins++ < 50) {
                asyncio_waker_wake_by_ref(cx->waker);
                return ASYNCIO_PENDING;
            }
            t->step = 2;
            break;
        case 2: /* every connection arrives exactly once, peer address right */
            while (t->accepted < ACC_CONNS) {
                asyncio_tcp_stream s;
                asyncio_sockaddr peer;
                AWAIT(asyncio_tcp_listener_poll_accept(t->l, cx, &s, &peer));
                int i = acc_which(t, &peer);
                assert_false(t->seen[i]);
                t->seen[i] = true;
                /* A live connection, not one reset by a cancelled accept. */
                assert_int_equal(write(t->clients[i], "x", 1), 1);
                char c = 0;
                struct pollfd pfd = {.fd = s.fd, .events = POLLIN};
                assert_int_equal(poll(&pfd, 1, 10000), 1);
                assert_int_equal(recv(s.fd, &c, 1, 0), 1);
                assert_int_equal(c, 'x');
                assert_ok(asyncio_tcp_stream_close(&s));
                t->accepted++;
            }
            if (asyncio__comp_accepts(comp_here())) /* the ring took them: a completion each */
                assert_true(atomic_load(&comp_here()->completed) - t->completed_before >=
                            ACC_CONNS);
            for (int i = 0; i < ACC_CONNS; i++)
                support_close(t->clients[i]);
            return asyncio_tcp_listener_close(t->l);
        }
    }
}

static const asyncio_task_vtable acc_vt = {acc_poll, NULL, NULL, sizeof(acc_task), 0};

static void test_comp_listener_accepts_every_connection_once_across_the_queue_limit(void **state)
{
    (void)state;
    acc_task *t = calloc(1, sizeof *t);
    run(&acc_vt, t);
    free(t);
}


typedef struct {
    asyncio_tcp_listener *l;
    asyncio_sockaddr addr;
    int queued[3];
    int step, spins;
} accclose_task;

static int accclose_poll(void *state, asyncio_context *cx, void *out)
{
    accclose_task *t = state;
    (void)out;
    asyncio_tcp_stream s;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr any;
        assert_ok(asyncio_addr_from_ip("127.0.0.1", 0, &any));
        assert_ok(asyncio_tcp_listener_bind(&t->l, &any, NULL));
        assert_ok(asyncio_tcp_listener_local_addr(t->l, &t->addr));
        assert_int_equal(asyncio_tcp_listener_poll_accept(t->l, cx, &s, NULL), ASYNCIO_PENDING);
        for (int i = 0; i < 3; i++)
            t->queued[i] = acc_client(&t->addr);
        t->step = 1;
    }
    /* fallthrough */
    case 1: /* the ring (if it runs accepts) takes them into the listener's queue */
        if (t->spins++ < 20) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        /* Closed with its accept armed and connections waiting, never accepted. */
        assert_ok(asyncio_tcp_listener_close(t->l));
        t->l = NULL;
        /* Refused at once, on every runtime flavour (the armed request held the file). */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_sys(fd);
        assert_int_equal(connect(fd, &t->addr.u.sa, t->addr.len), -1);
        assert_int_equal(errno, ECONNREFUSED);
        support_close(fd);
        /* The waiting connections were closed, not leaked: their clients see the end. */
        for (int i = 0; i < 3; i++) {
            struct pollfd pfd = {.fd = t->queued[i], .events = POLLIN};
            assert_int_equal(poll(&pfd, 1, 10000), 1);
            char c;
            ssize_t r = recv(t->queued[i], &c, 1, 0);
            assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
            support_close(t->queued[i]);
        }
        return 0;
    }
    return 0;
}

static const asyncio_task_vtable accclose_vt = {accclose_poll, NULL, NULL, sizeof(accclose_task),
                                                0};

static void test_comp_listener_closed_with_accept_armed_refuses_and_closes_waiting(void **state)
{
    (void)state;
    accclose_task t = {0};
    run(&accclose_vt, &t);
}


/* ---- connect: IORING_OP_CONNECT where the ring has it ------------------------------ */

typedef struct {
    asyncio_tcp_connect conn;
    asyncio_tcp_stream s;
    int listener, server;
    int step;
    uint64_t completed_before;
} conn_task;

static int conn_poll(void *state, asyncio_context *cx, void *out)
{
    conn_task *t = state;
    (void)out;
    if (t->step == 0) {
        t->listener = support_tcp_listener();
        asyncio_sockaddr addr;
        assert_ok(asyncio_addr_from_ip("127.0.0.1", (uint16_t)support_local_port(t->listener),
                                       &addr));
        asyncio_tcp_connect_init(&t->conn, &addr);
        t->completed_before = atomic_load(&comp_here()->completed);
        t->step = 1;
    }
    AWAIT(asyncio_tcp_connect_poll(&t->conn, cx, &t->s));
    if (asyncio__comp_has(comp_here(), ASYNCIO__COP_CONNECT)) /* the ring ran it */
        assert_true(atomic_load(&comp_here()->completed) > t->completed_before);
    /* A working stream: the server side sees our byte. */
    t->server = accept(t->listener, NULL, NULL);
    assert_sys(t->server);
    size_t n = 0;
    AWAIT(asyncio_tcp_stream_poll_write(&t->s, cx, "c", 1, &n));
    assert_int_equal(n, 1);
    assert_ok(asyncio_tcp_stream_close(&t->s)); /* the accepted byte still goes out */
    char c = 0;
    assert_int_equal(recv(t->server, &c, 1, MSG_WAITALL), 1);
    assert_int_equal(c, 'c');
    support_close(t->server);
    support_close(t->listener);
    return 0;
}

static const asyncio_task_vtable conn_vt = {conn_poll, NULL, NULL, sizeof(conn_task), 0};

static void test_comp_tcp_connect_completes_on_the_ring_and_the_stream_works(void **state)
{
    (void)state;
    conn_task t = {0};
    run(&conn_vt, &t);
}


/* ---- the poller joins on the first readiness operation --------------------------- */

typedef struct {
    asyncio_tcp_stream s;
    int peer;
    bool ran;
} rawjoin_task;

static int rawjoin_write(void *arg, int fd, size_t *n_out)
{
    bool *ran = arg;
    ssize_t n = send(fd, "r", 1, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN ? ASYNCIO_EAGAIN : -errno;
    *ran = true;
    *n_out = (size_t)n;
    return 0;
}

static int rawjoin_poll(void *state, asyncio_context *cx, void *out)
{
    rawjoin_task *t = state;
    (void)out;
    if (t->s.fd < 0)
        adopt(&t->s, &t->peer);
    /* A raw write (the copy's sendfile uses one) waits for writability: it needs the poller. */
    asyncio_writer w = asyncio_tcp_stream_writer(&t->s);
    size_t n = 0;
    AWAIT(w.vtable->poll_raw_io(w.self, cx, rawjoin_write, &t->ran, &n));
    assert_true(t->ran);
    assert_true(asyncio__io_polled(t->s.reg));
    char c = 0;
    assert_int_equal(recv(t->peer, &c, 1, MSG_WAITALL), 1);
    assert_int_equal(c, 'r');
    assert_ok(asyncio_tcp_stream_close(&t->s));
    support_close(t->peer);
    return 0;
}

static const asyncio_task_vtable rawjoin_vt = {rawjoin_poll, NULL, NULL, sizeof(rawjoin_task), 0};

static void test_comp_stream_joins_the_poller_on_its_first_raw_write(void **state)
{
    (void)state;
    rawjoin_task t = {.s = CLOSED, .peer = -1};
    run(&rawjoin_vt, &t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_comp_stream_reads_and_writes_on_the_path_its_backend_gives),
        support_test(test_comp_write_copies_so_a_reused_caller_buffer_is_never_sent),
        support_test(test_comp_close_with_receive_in_flight_cancels_and_frees_it),
        support_test(test_comp_runtime_shutdown_with_operations_in_flight_reaps_them),
        support_test(test_comp_buffers_run_out_the_receive_rearms_and_loses_nothing),
        support_test(test_comp_buffers_given_back_serve_again_without_more_circulating),
        support_test(test_comp_buffers_of_a_burst_go_back_to_the_kernel_when_quiet),
        support_test(test_comp_ring_replaced_while_bytes_arrive_loses_nothing),
        support_test(test_comp_peer_reset_ends_reads_and_fails_writes),
        support_test(test_comp_half_close_reads_eof_and_shutdown_follows_accepted_bytes),
        support_test(test_comp_write_accepted_before_block_on_returns_is_sent),
        support_test(
            test_comp_stream_closed_while_starved_is_freed_once_and_the_other_loses_nothing),
        support_test(
            test_comp_starved_stream_closed_while_rearmed_leaves_no_receive_on_the_reused_fd),
        support_test(test_comp_writes_at_every_send_chunk_size_boundary_arrive_whole),
        support_test(test_comp_listener_accepts_every_connection_once_across_the_queue_limit),
        support_test(test_comp_listener_closed_with_accept_armed_refuses_and_closes_waiting),
        support_test(test_comp_tcp_connect_completes_on_the_ring_and_the_stream_works),
        support_test(test_comp_stream_joins_the_poller_on_its_first_raw_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * I/O helpers (read_exact, read_to_end, write_all, write_vectored_all,
 * copy, copy_bidirectional) over a local stream type: an async fd over a
 * socketpair or pipe end, exposed as asyncio_reader / asyncio_writer, with
 * or without the zero-copy members (raw_fd, poll_raw_io). Tests run real
 * tasks on a current-thread runtime: a "feeder" task writes a known pattern
 * into one end, a "drainer" task reads (slowly when asked: small chunks and
 * a yield between reads) and checks it, and the main task runs the helper
 * under test in between. Zero-copy paths are asserted by the copy's own
 * counter and the process-wide ones, never by timing.
 */
#include "support.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "asyncio/async_fd.h"
#include "asyncio/bufio.h"
#include "asyncio/io_util.h"
#include "asyncio/runtime.h"
#include "platform/zero_copy.h"

static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 9));
}

#define BIG (1u << 20)
static unsigned char g_big[BIG]; /* pat(0..BIG) */

/* ------------------------------------------------------------------------ */
/* The local stream type                                                     */

typedef struct tstream {
    int fd;
    bool is_socket;
    bool refuse_raw_write; /* poll_raw_io of the writer says EINVAL (a kernel refusal) */
    asyncio_async_fd *afd;
} tstream;

static int ts_open(tstream *s, int fd)
{
    s->fd = fd;
    int type;
    socklen_t len = sizeof type;
    s->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
    return asyncio_async_fd_new(&s->afd, fd, ASYNCIO_READABLE | ASYNCIO_WRITABLE);
}

static void ts_close(tstream *s)
{
    if (s->afd != NULL)
        asyncio_async_fd_free(s->afd);
    s->afd = NULL;
    support_close(s->fd);
    s->fd = -1;
}

static int ts_poll_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n)
{
    tstream *s = self;
    if (len == 0) {
        *n = 0;
        return 0;
    }
    return asyncio_async_fd_poll_read(s->afd, cx, buf, len, n);
}

static int ts_poll_write(void *self, asyncio_context *cx, const void *buf, size_t len, size_t *n)
{
    tstream *s = self;
    if (len == 0) {
        *n = 0;
        return 0;
    }
    return asyncio_async_fd_poll_write(s->afd, cx, buf, len, n);
}

static int ts_poll_write_vectored(void *self, asyncio_context *cx, const asyncio_iovec *iov,
                                  int iovcnt, size_t *n)
{
    tstream *s = self;
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio_async_fd_poll_ready(s->afd, cx, ASYNCIO_WRITABLE, &g);
        if (rc != 0)
            return rc;
        struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t r = s->is_socket ? sendmsg(s->fd, &msg, MSG_NOSIGNAL)
                                 : writev(s->fd, (const struct iovec *)iov, iovcnt);
        if (r >= 0) {
            *n = (size_t)r;
            return 0;
        }
        if (errno == EAGAIN)
            asyncio_async_fd_clear_ready(s->afd, &g);
        else if (errno != EINTR)
            return -errno;
    }
}

static int ts_flush(void *self, asyncio_context *cx)
{
    (void)self;
    (void)cx;
    return 0;
}

static int ts_shutdown(void *self, asyncio_context *cx)
{
    tstream *s = self;
    (void)cx;
    if (s->is_socket && shutdown(s->fd, SHUT_WR) != 0 && errno != ENOTCONN)
        return -errno;
    return 0;
}

static int ts_raw_fd(void *self)
{
    return ((tstream *)self)->fd;
}

static int ts_raw_read(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg, size_t *n)
{
    tstream *s = self;
    return asyncio_raw_io_poll_async_fd(s->afd, cx, ASYNCIO_READABLE, op, arg, n);
}

static int ts_raw_write(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg, size_t *n)
{
    tstream *s = self;
    if (s->refuse_raw_write)
        return ASYNCIO_EINVAL;
    return asyncio_raw_io_poll_async_fd(s->afd, cx, ASYNCIO_WRITABLE, op, arg, n);
}

static const asyncio_reader_vtable zc_reader_vt = {ts_poll_read, ts_raw_fd, ts_raw_read};
static const asyncio_writer_vtable zc_writer_vt = {
    ts_poll_write, ts_poll_write_vectored, ts_flush, ts_shutdown, ts_raw_fd, ts_raw_write};
static const asyncio_reader_vtable plain_reader_vt = {ts_poll_read, NULL, NULL};
static const asyncio_writer_vtable plain_writer_vt = {ts_poll_write, NULL, ts_flush,
                                                      ts_shutdown,   NULL, NULL};

static asyncio_reader ts_reader(tstream *s, bool zc)
{
    return (asyncio_reader){zc ? &zc_reader_vt : &plain_reader_vt, s};
}

static asyncio_writer ts_writer(tstream *s, bool zc)
{
    return (asyncio_writer){zc ? &zc_writer_vt : &plain_writer_vt, s};
}

/* A regular file as a reader: read(2) (files are always ready) and its fd for sendfile. */
static int file_poll_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n)
{
    (void)cx;
    ssize_t r = read(*(int *)self, buf, len);
    if (r < 0)
        return -errno;
    *n = (size_t)r;
    return 0;
}

static int file_raw_fd(void *self)
{
    return *(int *)self;
}

static const asyncio_reader_vtable file_reader_vt = {file_poll_read, file_raw_fd, NULL};

/* ------------------------------------------------------------------------ */
/* Feeder and drainer tasks                                                  */

static atomic_size_t g_progress; /* bytes the drainer has checked so far */

typedef struct feeder {
    int fd;
    size_t total, chunk, sent;
    size_t wait_progress; /* before EOF, wait until the drainer saw this many bytes */
    int step;
    long yields;
    tstream ts;
    asyncio_yield y;
} feeder;

enum { FEED_OPEN, FEED_WRITE, FEED_YIELD, FEED_WAIT, FEED_WAIT_YIELD, FEED_EOF };

static int feeder_poll(void *state, asyncio_context *cx, void *output)
{
    feeder *f = state;
    (void)output;
    for (;;) {
        int rc;
        switch (f->step) {
        case FEED_OPEN:
            rc = ts_open(&f->ts, f->fd);
            if (rc != 0)
                return rc;
            f->step = FEED_WRITE;
            break;
        case FEED_WRITE: { /* one chunk of the pattern, then a yield */
            if (f->sent == f->total) {
                f->step = FEED_WAIT;
                break;
            }
            unsigned char tmp[16384];
            size_t len = f->total - f->sent;
            len = len < f->chunk ? len : f->chunk;
            len = len < sizeof tmp ? len : sizeof tmp;
            for (size_t k = 0; k < len; k++)
                tmp[k] = pat(f->sent + k);
            size_t n = 0;
            rc = ts_poll_write(&f->ts, cx, tmp, len, &n);
            if (rc != 0)
                return rc;
            f->sent += n;
            f->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            f->step = FEED_YIELD;
            break;
        }
        case FEED_YIELD:
        case FEED_WAIT_YIELD:
            if (asyncio_yield_poll(&f->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            f->step = f->step == FEED_YIELD ? FEED_WRITE : FEED_WAIT;
            break;
        case FEED_WAIT: /* before EOF, until the drainer saw wait_progress bytes */
            if (atomic_load(&g_progress) >= f->wait_progress) {
                f->step = FEED_EOF;
                break;
            }
            if (++f->yields > 1000000)
                return ASYNCIO_ETIMEDOUT; /* the bytes never reached the drainer */
            f->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            f->step = FEED_WAIT_YIELD;
            break;
        default: /* FEED_EOF: FIN on a socket, close on a pipe */
            if (f->ts.is_socket)
                return ts_shutdown(&f->ts, cx);
            ts_close(&f->ts);
            return 0;
        }
    }
}

static void feeder_drop(void *state)
{
    feeder *f = state;
    if (f->step == 0)
        support_close(f->fd);
    else
        ts_close(&f->ts);
}

static const asyncio_task_vtable feeder_vt = {feeder_poll, feeder_drop, NULL, sizeof(feeder), 0};

typedef struct drainer {
    int fd;
    size_t chunk;
    bool slow;          /* yield between reads */
    size_t close_after; /* stop (and close) after this many bytes; 0: read to EOF */
    int step;
    size_t got;
    tstream ts;
    asyncio_yield y;
} drainer;

static int drainer_poll(void *state, asyncio_context *cx, void *output)
{
    drainer *d = state;
    if (d->step == 0) {
        int rc = ts_open(&d->ts, d->fd);
        if (rc != 0)
            return rc;
        d->step = 1;
    }
    for (;;) {
        if (d->step == 2) {
            if (asyncio_yield_poll(&d->y, cx) == ASYNCIO_PENDING)
                return ASYNCIO_PENDING;
            d->step = 1;
        }
        unsigned char tmp[65536];
        size_t n = 0;
        size_t want = d->chunk < sizeof tmp ? d->chunk : sizeof tmp;
        int rc = ts_poll_read(&d->ts, cx, tmp, want, &n);
        if (rc != 0)
            return rc;
        for (size_t k = 0; k < n; k++) {
            if (tmp[k] != pat(d->got + k))
                return ASYNCIO_EPROTO; /* corrupted, reordered or lost bytes */
        }
        d->got += n;
        atomic_store(&g_progress, d->got);
        if (n == 0 || (d->close_after > 0 && d->got >= d->close_after)) {
            memcpy(output, &d->got, sizeof d->got);
            return 0;
        }
        if (d->slow) {
            d->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
            d->step = 2;
        }
    }
}

static void drainer_drop(void *state)
{
    drainer *d = state;
    if (d->step == 0)
        support_close(d->fd);
    else
        ts_close(&d->ts);
}

static const asyncio_task_vtable drainer_vt = {drainer_poll, drainer_drop, NULL, sizeof(drainer),
                                               sizeof(size_t)};

/* Polls a join handle; on a result drops it and stores the output. */
static int join(asyncio_join_handle **jh, asyncio_context *cx, void *out)
{
    if (*jh == NULL)
        return 0;
    int rc = asyncio_join_handle_poll(*jh, cx, out);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_join_handle_drop(*jh);
    *jh = NULL;
    return rc;
}

static int spawn_drainer(int fd, size_t chunk, bool slow, size_t close_after,
                         asyncio_join_handle **jh)
{
    drainer d = {.fd = fd, .chunk = chunk, .slow = slow, .close_after = close_after};
    return asyncio_spawn(asyncio_runtime_current(), &drainer_vt, &d, jh);
}

static int spawn_feeder(int fd, size_t total, size_t chunk, size_t wait_progress,
                        asyncio_join_handle **jh)
{
    feeder f = {.fd = fd, .total = total, .chunk = chunk, .wait_progress = wait_progress};
    return asyncio_spawn(asyncio_runtime_current(), &feeder_vt, &f, jh);
}

static int run(const asyncio_task_vtable *vt, const void *init, void *out)
{
    atomic_store(&g_progress, 0);
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    int rc = asyncio_runtime_block_on(rt, vt, init, out);
    assert_ok(asyncio_runtime_free(rt));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* write_all / write_vectored_all to a slow reader                           */

typedef struct writer_main {
    int fd, peer;
    bool vectored;
    int step;
    tstream ts;
    asyncio_join_handle *drainer;
    asyncio_write_all wa;
    asyncio_write_vectored_all wv;
    asyncio_iovec iov[150];
    size_t drained;
} writer_main;

static int writer_main_poll(void *state, asyncio_context *cx, void *output)
{
    writer_main *m = state;
    int rc;
    switch (m->step) {
    case 0:
        rc = ts_open(&m->ts, m->fd);
        if (rc == 0)
            rc = spawn_drainer(m->peer, 997, true, 0, &m->drainer);
        if (rc != 0)
            return rc;
        m->peer = -1;
        if (m->vectored) {
            /* 150 buffers of uneven sizes (some empty) covering g_big in order. */
            size_t off = 0;
            for (int i = 0; i < 150; i++) {
                size_t len = i % 7 == 3 ? 0 : (size_t)(i * 97 % 13000);
                m->iov[i] = (asyncio_iovec){g_big + off, len};
                off += len;
            }
            asyncio_write_vectored_all_init(&m->wv, ts_writer(&m->ts, false), m->iov, 150);
        } else {
            asyncio_write_all_init(&m->wa, ts_writer(&m->ts, false), g_big, BIG);
        }
        m->step = 1;
        /* fall through */
    case 1:
        rc = m->vectored ? asyncio_write_vectored_all_poll(&m->wv, cx)
                         : asyncio_write_all_poll(&m->wa, cx);
        if (rc != 0)
            return rc;
        rc = ts_shutdown(&m->ts, cx);
        if (rc != 0)
            return rc;
        m->step = 2;
        /* fall through */
    default:
        rc = join(&m->drainer, cx, &m->drained);
        if (rc != 0)
            return rc;
        memcpy(output, &m->drained, sizeof m->drained);
        return 0;
    }
}

static void writer_main_drop(void *state)
{
    writer_main *m = state;
    asyncio_join_handle_drop(m->drainer);
    support_close(m->peer);
    if (m->step == 0)
        support_close(m->fd);
    else
        ts_close(&m->ts);
}

static const asyncio_task_vtable writer_main_vt = {writer_main_poll, writer_main_drop, NULL,
                                                   sizeof(writer_main), sizeof(size_t)};

/* A writer that takes at most 3 bytes a call, says pending on every other call, and 0 bytes
 * once `room` is used up (a writer that can take no more). */
typedef struct trickle {
    unsigned char got[32];
    size_t len, room;
    int calls, woken;
} trickle;

static int trickle_write(void *self, asyncio_context *cx, const void *buf, size_t len, size_t *n)
{
    trickle *t = self;
    (void)cx;
    if (t->calls++ % 2 == 0) {
        /* the pending half (a real writer would store cx's waker first) */
        t->woken++;
        return ASYNCIO_PENDING;
    }
    *n = len < 3 ? len : 3;
    if (*n > t->room - t->len)
        *n = t->room - t->len;
    memcpy(t->got + t->len, buf, *n);
    t->len += *n;
    return 0;
}

static int trickle_flush(void *self, asyncio_context *cx)
{
    (void)self, (void)cx;
    return 0;
}

static const asyncio_writer_vtable trickle_vt = {trickle_write, NULL, trickle_flush,
                                                 trickle_flush, NULL, NULL};

static void test_poll_write_all_advances_the_callers_counter_across_partial_writes(void **state)
{
    (void)state;
    trickle t = {.room = sizeof t.got};
    asyncio_writer w = {&trickle_vt, &t};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(NULL);
    const char msg[] = "hello, partial world"; /* 20 bytes: 7 writes of at most 3 */
    size_t done = 0;
    int rc, pendings = 0;
    while ((rc = asyncio_poll_write_all(w, &cx, msg, 20, &done)) == ASYNCIO_PENDING) {
        pendings++;
        assert_true(done <= 20 && done % 3 == 0); /* exact after every pending */
    }
    assert_ok(rc);
    assert_int_equal(done, 20);
    assert_int_equal(t.len, 20);
    assert_memory_equal(t.got, msg, 20);
    assert_int_equal(pendings, 7);
    /* Done is done: another poll writes nothing. */
    assert_ok(asyncio_poll_write_all(w, &cx, msg, 20, &done));
    assert_int_equal(t.len, 20);
}

static void test_poll_write_all_rejects_bad_input_and_stops_on_a_zero_write(void **state)
{
    (void)state;
    trickle t = {.room = 4};
    asyncio_writer w = {&trickle_vt, &t};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(NULL);
    size_t done = 5;
    assert_int_equal(asyncio_poll_write_all(w, &cx, "abc", 3, NULL), ASYNCIO_EINVAL);
    assert_int_equal(asyncio_poll_write_all(w, &cx, "abc", 3, &done), ASYNCIO_EINVAL);
    done = 0;
    assert_int_equal(asyncio_poll_write_all(w, &cx, NULL, 3, &done), ASYNCIO_EINVAL);
    assert_ok(asyncio_poll_write_all(w, &cx, NULL, 0, &done));
    assert_int_equal(t.calls, 0); /* bad input never reaches the writer */
    int rc;
    while ((rc = asyncio_poll_write_all(w, &cx, "abcdefgh", 8, &done)) == ASYNCIO_PENDING)
        ;
    assert_int_equal(rc, ASYNCIO_EWRITE_ZERO); /* room for 4: then 0 bytes, never a spin */
    assert_int_equal(done, 4);
    asyncio_writer none = {NULL, NULL};
    done = 0;
    assert_int_equal(asyncio_poll_write_all(none, &cx, "a", 1, &done), ASYNCIO_EINVAL);
}

static void test_write_all_1mib_to_slow_reader_completes_intact(void **state)
{
    (void)state;
    int sv[2];
    support_socketpair(sv);
    writer_main m = {.fd = sv[0], .peer = sv[1]};
    size_t drained = 0;
    assert_ok(run(&writer_main_vt, &m, &drained));
    assert_int_equal(drained, BIG);
}

static void test_write_vectored_all_advances_across_partial_writes(void **state)
{
    (void)state;
    int sv[2];
    support_socketpair(sv);
    writer_main m = {.fd = sv[0], .peer = sv[1], .vectored = true};
    size_t drained = 0;
    assert_ok(run(&writer_main_vt, &m, &drained));
    size_t want = 0;
    for (int i = 0; i < 150; i++)
        want += i % 7 == 3 ? 0 : (size_t)(i * 97 % 13000);
    assert_int_equal(drained, want);
}

/* A user writer that takes at most 7 bytes per call and is pending every other call. */
typedef struct tiny_writer {
    unsigned char out[4096];
    size_t len;
    bool pend;
    int vectored_calls;
} tiny_writer;

static int tiny_write(void *self, asyncio_context *cx, const void *buf, size_t len, size_t *n)
{
    tiny_writer *w = self;
    w->pend = !w->pend;
    if (w->pend) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    *n = len < 7 ? len : 7;
    memcpy(w->out + w->len, buf, *n);
    w->len += *n;
    return 0;
}

static int tiny_write_vectored(void *self, asyncio_context *cx, const asyncio_iovec *iov,
                               int iovcnt, size_t *n)
{
    tiny_writer *w = self;
    w->vectored_calls++;
    /* Takes 7 bytes across buffer boundaries, like a short writev. */
    w->pend = !w->pend;
    if (w->pend) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    size_t took = 0;
    for (int i = 0; i < iovcnt && took < 7; i++) {
        size_t k = iov[i].len < 7 - took ? iov[i].len : 7 - took;
        memcpy(w->out + w->len, iov[i].base, k);
        w->len += k;
        took += k;
    }
    *n = took;
    return 0;
}

static const asyncio_writer_vtable tiny_vt = {
    tiny_write, tiny_write_vectored, ts_flush, ts_shutdown, NULL, NULL};
static const asyncio_writer_vtable tiny_novec_vt = {tiny_write,  NULL, ts_flush,
                                                    ts_shutdown, NULL, NULL};

static asyncio_waker nop_clone(const void *d)
{
    return (asyncio_waker){NULL, d};
}

static void nop(const void *d)
{
    (void)d;
}

static const asyncio_waker_vtable nop_waker_vt = {nop_clone, nop, nop, nop};

static void test_write_vectored_all_user_writer_partial_and_pending(void **state)
{
    (void)state;
    const asyncio_waker wk = {&nop_waker_vt, NULL};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&wk);
    const char *parts[] = {"", "hello", "", "", ", ", "vectored", " world", "", "!"};
    asyncio_iovec iov[9];
    for (int i = 0; i < 9; i++)
        iov[i] = (asyncio_iovec){(void *)parts[i], strlen(parts[i])};
    for (int variant = 0; variant < 2; variant++) {
        static tiny_writer w;
        memset(&w, 0, sizeof w);
        asyncio_writer wr = {variant == 0 ? &tiny_vt : &tiny_novec_vt, &w};
        asyncio_write_vectored_all f;
        asyncio_write_vectored_all_init(&f, wr, iov, 9);
        int rc, polls = 0;
        while ((rc = asyncio_write_vectored_all_poll(&f, &cx)) == ASYNCIO_PENDING)
            assert_true(++polls < 100);
        assert_ok(rc);
        assert_int_equal(f.done, strlen("hello, vectored world!"));
        assert_memory_equal(w.out, "hello, vectored world!", f.done);
        assert_int_equal(w.vectored_calls > 0, variant == 0);
    }
    /* Nothing to write is done at once, and a bad array is refused. */
    asyncio_write_vectored_all f;
    asyncio_write_vectored_all_init(&f, (asyncio_writer){&tiny_vt, NULL}, iov, 1);
    assert_ok(asyncio_write_vectored_all_poll(&f, &cx));
    asyncio_write_vectored_all_init(&f, (asyncio_writer){&tiny_vt, NULL}, NULL, 2);
    assert_err(asyncio_write_vectored_all_poll(&f, &cx), ASYNCIO_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* read_exact / read_to_end                                                  */

typedef struct reader_main {
    int fd, peer;
    size_t feed, feed_chunk;
    int op; /* 0 read_exact, 1 read_to_end */
    size_t want;
    int step;
    tstream ts;
    asyncio_join_handle *feeder;
    asyncio_read_exact re;
    asyncio_read_to_end rte;
    int op_rc;
    unsigned char buf[8192];
} reader_main;

typedef struct reader_out {
    int rc;
    size_t done;
    bool has_extra;
    unsigned char extra;
    bool intact;
} reader_out;

static int reader_main_poll(void *state, asyncio_context *cx, void *output)
{
    reader_main *m = state;
    int rc;
    switch (m->step) {
    case 0:
        rc = ts_open(&m->ts, m->fd);
        if (rc == 0)
            rc = spawn_feeder(m->peer, m->feed, m->feed_chunk, 0, &m->feeder);
        if (rc != 0)
            return rc;
        m->peer = -1;
        asyncio_read_exact_init(&m->re, ts_reader(&m->ts, false), m->buf, m->want);
        asyncio_read_to_end_init(&m->rte, ts_reader(&m->ts, false), m->buf, m->want);
        m->step = 1;
        /* fall through */
    case 1:
        rc = m->op == 0 ? asyncio_read_exact_poll(&m->re, cx)
                        : asyncio_read_to_end_poll(&m->rte, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        m->op_rc = rc;
        m->step = 2;
        /* fall through */
    default: {
        reader_out out = {.rc = m->op_rc};
        out.done = m->op == 0 ? m->re.done : m->rte.done;
        out.has_extra = m->rte.has_extra;
        out.extra = m->rte.extra;
        out.intact = true;
        for (size_t k = 0; k < out.done; k++)
            out.intact = out.intact && m->buf[k] == pat(k);
        if (m->feeder != NULL)
            asyncio_join_handle_abort(m->feeder); /* it may still be blocked on a full socket */
        rc = join(&m->feeder, cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        memcpy(output, &out, sizeof out);
        return 0;
    }
    }
}

static void reader_main_drop(void *state)
{
    reader_main *m = state;
    asyncio_join_handle_drop(m->feeder);
    support_close(m->peer);
    if (m->step == 0)
        support_close(m->fd);
    else
        ts_close(&m->ts);
}

static const asyncio_task_vtable reader_main_vt = {reader_main_poll, reader_main_drop, NULL,
                                                   sizeof(reader_main), sizeof(reader_out)};

static reader_out run_reader(int op, size_t feed, size_t chunk, size_t want)
{
    int sv[2];
    support_socketpair(sv);
    reader_main m = {
        .fd = sv[1], .peer = sv[0], .feed = feed, .feed_chunk = chunk, .op = op, .want = want};
    reader_out out;
    assert_ok(run(&reader_main_vt, &m, &out));
    assert_true(out.intact);
    return out;
}

static void test_read_exact_fills_across_small_chunks(void **state)
{
    (void)state;
    reader_out out = run_reader(0, 5000, 100, 5000);
    assert_ok(out.rc);
    assert_int_equal(out.done, 5000);
}

static void test_read_exact_early_eof_is_unexpected_eof(void **state)
{
    (void)state;
    reader_out out = run_reader(0, 10, 3, 20);
    assert_err(out.rc, ASYNCIO_EUNEXPECTED_EOF);
    assert_int_equal(out.done, 10); /* what arrived is kept */
}

static void test_read_to_end_within_limit(void **state)
{
    (void)state;
    reader_out out = run_reader(1, 3000, 700, 8192);
    assert_ok(out.rc);
    assert_int_equal(out.done, 3000);
    assert_false(out.has_extra);
}

static void test_read_to_end_over_limit_is_emsgsize_and_keeps_extra_byte(void **state)
{
    (void)state;
    reader_out out = run_reader(1, 3000, 700, 1000);
    assert_err(out.rc, ASYNCIO_EMSGSIZE);
    assert_int_equal(out.done, 1000);
    assert_true(out.has_extra);
    assert_int_equal(out.extra, pat(1000));
}

static void test_read_to_end_exactly_at_limit_is_ok(void **state)
{
    (void)state;
    reader_out out = run_reader(1, 1000, 1000, 1000);
    assert_ok(out.rc);
    assert_int_equal(out.done, 1000);
}

/* ------------------------------------------------------------------------ */
/* copy                                                                      */

typedef struct copy_cfg {
    int rfd, wfd;          /* the copy's two ends */
    int feed_fd, drain_fd; /* the other ends (-1: none) */
    bool file_reader;      /* rfd is a regular file */
    bool zc_reader, zc_writer, refuse_raw_write, buf_writer;
    size_t feed, feed_chunk, feed_wait;
    size_t drain_chunk, drain_close_after;
    bool drain_slow;
} copy_cfg;

typedef struct copy_out {
    int copy_rc, drain_rc, feed_rc;
    uint64_t read, written, zero_copy;
    asyncio_copy_path path;
    size_t drained;
} copy_out;

typedef struct copy_main {
    copy_cfg cfg;
    int step;
    tstream r, w;
    int file_fd;
    asyncio_buf_writer bw;
    unsigned char bw_buf[4096];
    asyncio_copy copy;
    asyncio_join_handle *feeder, *drainer;
    copy_out out;
} copy_main;

static int copy_main_start(copy_main *m)
{
    copy_cfg *c = &m->cfg;
    asyncio_reader rd;
    int rc = 0;
    if (c->file_reader) {
        m->file_fd = c->rfd;
        rd = (asyncio_reader){&file_reader_vt, &m->file_fd};
    } else {
        rc = ts_open(&m->r, c->rfd);
        rd = ts_reader(&m->r, c->zc_reader);
    }
    c->rfd = -1;
    if (rc == 0)
        rc = ts_open(&m->w, c->wfd);
    c->wfd = -1;
    m->w.refuse_raw_write = c->refuse_raw_write;
    asyncio_writer wr = ts_writer(&m->w, c->zc_writer);
    if (rc == 0 && c->buf_writer) {
        rc = asyncio_buf_writer_init(&m->bw, wr, m->bw_buf, sizeof m->bw_buf);
        wr = asyncio_buf_writer_as_writer(&m->bw);
    }
    if (rc == 0 && c->feed_fd >= 0)
        rc = spawn_feeder(c->feed_fd, c->feed, c->feed_chunk, c->feed_wait, &m->feeder);
    c->feed_fd = -1;
    if (rc == 0)
        rc = spawn_drainer(c->drain_fd, c->drain_chunk, c->drain_slow, c->drain_close_after,
                           &m->drainer);
    c->drain_fd = -1;
    asyncio_copy_init(&m->copy, rd, wr);
    return rc;
}

static int copy_main_poll(void *state, asyncio_context *cx, void *output)
{
    copy_main *m = state;
    int rc;
    switch (m->step) {
    case 0:
        m->step = 1;
        rc = copy_main_start(m);
        if (rc != 0)
            return rc;
        /* fall through */
    case 1:
        rc = asyncio_copy_poll(&m->copy, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        m->out.copy_rc = rc;
        m->out.read = m->copy.read;
        m->out.written = m->copy.written;
        m->out.zero_copy = m->copy.zero_copy;
        m->out.path = m->copy.path;
        if (rc != 0 && m->feeder != NULL)
            asyncio_join_handle_abort(m->feeder);
        /* EOF for the drainer: FIN on a socket, close on a pipe. */
        if (m->w.is_socket)
            (void)ts_shutdown(&m->w, cx);
        else
            ts_close(&m->w);
        m->step = 2;
        /* fall through */
    case 2:
        m->out.drain_rc = join(&m->drainer, cx, &m->out.drained);
        if (m->out.drain_rc == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        m->step = 3;
        /* fall through */
    default:
        m->out.feed_rc = join(&m->feeder, cx, NULL);
        if (m->out.feed_rc == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        memcpy(output, &m->out, sizeof m->out);
        return 0;
    }
}

static void copy_main_drop(void *state)
{
    copy_main *m = state;
    asyncio_copy_drop(&m->copy);
    if (m->cfg.buf_writer) {
        asyncio_buf_writer_discard(&m->bw); /* an aborted copy may leave bytes behind */
        asyncio_buf_writer_free(&m->bw);
    }
    asyncio_join_handle_drop(m->feeder);
    asyncio_join_handle_drop(m->drainer);
    if (m->cfg.file_reader)
        support_close(m->file_fd);
    else
        ts_close(&m->r);
    ts_close(&m->w);
    support_close(m->cfg.rfd);
    support_close(m->cfg.wfd);
    support_close(m->cfg.feed_fd);
    support_close(m->cfg.drain_fd);
}

static const asyncio_task_vtable copy_main_vt = {copy_main_poll, copy_main_drop, NULL,
                                                 sizeof(copy_main), sizeof(copy_out)};

static copy_out run_copy(const copy_cfg *cfg)
{
    copy_main *m = calloc(1, sizeof *m); /* big: not on the test's stack */
    assert_non_null(m);
    m->cfg = *cfg;
    m->r.fd = m->w.fd = m->file_fd = -1;
    copy_out out;
    assert_ok(run(&copy_main_vt, m, &out));
    free(m);
    return out;
}

/* Ends: [0] feeds / drains, [1] is the copy's side. */
enum { SOCK, PIPE };

static void make_ends(int kind, int copy_reads, int ends[2])
{
    int fds[2];
    if (kind == SOCK) {
        support_socketpair(fds);
        ends[0] = fds[0];
        ends[1] = fds[1];
    } else {
        support_pipe(fds); /* fds[0] read end, fds[1] write end */
        ends[0] = copy_reads ? fds[1] : fds[0];
        ends[1] = copy_reads ? fds[0] : fds[1];
    }
}

static copy_out copy_between(int in_kind, int out_kind, bool zc, size_t total)
{
    int in[2], out[2];
    make_ends(in_kind, 1, in);
    make_ends(out_kind, 0, out);
    copy_cfg cfg = {.rfd = in[1],
                    .wfd = out[1],
                    .feed_fd = in[0],
                    .drain_fd = out[0],
                    .zc_reader = zc,
                    .zc_writer = zc,
                    .feed = total,
                    .feed_chunk = 16384,
                    .drain_chunk = 4000,
                    .drain_slow = true};
    return run_copy(&cfg);
}

static void expect_copied(const copy_out *o, size_t total)
{
    assert_ok(o->copy_rc);
    assert_ok(o->drain_rc);
    assert_ok(o->feed_rc); /* no feeder (file source) counts as 0 */
    assert_int_equal(o->read, total);
    assert_int_equal(o->written, total);
    assert_int_equal(o->drained, total);
}

static void test_copy_socket_to_socket_takes_splice_path(void **state)
{
    (void)state;
    uint64_t before = atomic_load(&asyncio__zero_copy_splice_bytes);
    copy_out o = copy_between(SOCK, SOCK, true, 300000);
    expect_copied(&o, 300000);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_SPLICE);
    assert_int_equal(o.zero_copy, 300000);
    assert_int_equal(atomic_load(&asyncio__zero_copy_splice_bytes) - before, 300000);
}

static void test_copy_pipe_to_socket_takes_splice_path(void **state)
{
    (void)state;
    copy_out o = copy_between(PIPE, SOCK, true, 200000);
    expect_copied(&o, 200000);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_SPLICE);
    assert_int_equal(o.zero_copy, 200000);
}

static void test_copy_socket_to_pipe_takes_splice_path(void **state)
{
    (void)state;
    copy_out o = copy_between(SOCK, PIPE, true, 200000);
    expect_copied(&o, 200000);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_SPLICE);
    assert_int_equal(o.zero_copy, 200000);
}

static void test_copy_without_raw_io_uses_buffer(void **state)
{
    (void)state;
    uint64_t splice_before = atomic_load(&asyncio__zero_copy_splice_bytes);
    copy_out o = copy_between(SOCK, SOCK, false, 300000);
    expect_copied(&o, 300000);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_BUFFER);
    assert_int_equal(o.zero_copy, 0);
    assert_int_equal(atomic_load(&asyncio__zero_copy_splice_bytes), splice_before);
}

static void test_copy_refused_splice_falls_back_without_losing_bytes(void **state)
{
    (void)state;
    int in[2], out[2];
    make_ends(SOCK, 1, in);
    make_ends(SOCK, 0, out);
    /* Splicing in works; splicing out is refused after bytes are already in the pipe. */
    copy_cfg cfg = {.rfd = in[1],
                    .wfd = out[1],
                    .feed_fd = in[0],
                    .drain_fd = out[0],
                    .zc_reader = true,
                    .zc_writer = true,
                    .refuse_raw_write = true,
                    .feed = 250000,
                    .feed_chunk = 16384,
                    .drain_chunk = 4000,
                    .drain_slow = true};
    copy_out o = run_copy(&cfg);
    expect_copied(&o, 250000);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_BUFFER);
    assert_int_equal(o.zero_copy, 0);
}

static int make_file(size_t total)
{
    char path[] = "/tmp/asyncio_io_util_XXXXXX";
    int fd = mkstemp(path);
    assert_sys(fd);
    unlink(path);
    for (size_t off = 0; off < total;) {
        size_t len = total - off < BIG ? total - off : BIG;
        ssize_t n = write(fd, g_big, len); /* pat() restarts at each BIG; total <= BIG here */
        assert_sys(n);
        off += (size_t)n;
    }
    assert_sys(lseek(fd, 0, SEEK_SET));
    return fd;
}

static void test_copy_file_to_socket_takes_sendfile_path(void **state)
{
    (void)state;
    const size_t total = 700000;
    uint64_t before = atomic_load(&asyncio__zero_copy_sendfile_bytes);
    int out[2];
    make_ends(SOCK, 0, out);
    copy_cfg cfg = {.rfd = make_file(total),
                    .wfd = out[1],
                    .feed_fd = -1,
                    .drain_fd = out[0],
                    .file_reader = true,
                    .zc_writer = true,
                    .drain_chunk = 3000,
                    .drain_slow = true};
    copy_out o = run_copy(&cfg);
    expect_copied(&o, total);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_SENDFILE);
    assert_int_equal(o.zero_copy, total);
    assert_int_equal(atomic_load(&asyncio__zero_copy_sendfile_bytes) - before, total);
}

static void test_copy_file_to_plain_writer_uses_buffer(void **state)
{
    (void)state;
    const size_t total = 100000;
    int out[2];
    make_ends(SOCK, 0, out);
    copy_cfg cfg = {.rfd = make_file(total),
                    .wfd = out[1],
                    .feed_fd = -1,
                    .drain_fd = out[0],
                    .file_reader = true,
                    .zc_writer = false,
                    .drain_chunk = 3000};
    copy_out o = run_copy(&cfg);
    expect_copied(&o, total);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_BUFFER);
}

static void test_copy_flushes_buffered_writer_while_reader_pending(void **state)
{
    (void)state;
    int in[2], out[2];
    make_ends(SOCK, 1, in);
    make_ends(SOCK, 0, out);
    /* The feeder sends 10 bytes, then waits for the drainer to see them before EOF:
     * unless copy flushes the buffered writer while its reader is pending, it never does. */
    copy_cfg cfg = {.rfd = in[1],
                    .wfd = out[1],
                    .feed_fd = in[0],
                    .drain_fd = out[0],
                    .buf_writer = true,
                    .zc_reader = true,
                    .zc_writer = true,
                    .feed = 10,
                    .feed_chunk = 10,
                    .feed_wait = 10,
                    .drain_chunk = 100};
    copy_out o = run_copy(&cfg);
    expect_copied(&o, 10);
    assert_int_equal(o.path, ASYNCIO_COPY_PATH_BUFFER); /* a buffered writer has no raw fd */
}

static void test_copy_to_closed_peer_returns_error_without_sigpipe(void **state)
{
    (void)state;
    for (int zc = 0; zc < 2; zc++) {
        int in[2], out[2];
        make_ends(SOCK, 1, in);
        make_ends(PIPE, 0, out);
        copy_cfg cfg = {.rfd = in[1],
                        .wfd = out[1],
                        .feed_fd = in[0],
                        .drain_fd = out[0],
                        .zc_reader = zc,
                        .zc_writer = zc,
                        .feed = 900000,
                        .feed_chunk = 16384,
                        .drain_chunk = 1000,
                        .drain_close_after = 1000};
        copy_out o = run_copy(&cfg);
        assert_err(o.copy_rc, ASYNCIO_EPIPE);
        assert_ok(o.drain_rc);
        assert_true(o.written >= 1000);
    }
}

/* ------------------------------------------------------------------------ */
/* copy_bidirectional: a proxy between a client and a server                 */

#define REQ  150000
#define RESP 90000

/* Client: sends REQ bytes, half-closes, reads the response to EOF. Server: the reverse. */
typedef struct peer {
    int fd;
    size_t send;
    bool send_first; /* client: send, FIN, then read; server: read to EOF, then send, FIN */
    int step;
    tstream ts;
    size_t sent, got;
} peer;

static int peer_send(peer *p, asyncio_context *cx)
{
    while (p->sent < p->send) {
        size_t n = 0;
        int rc = ts_poll_write(&p->ts, cx, g_big + p->sent, p->send - p->sent, &n);
        if (rc != 0)
            return rc;
        p->sent += n;
    }
    return ts_shutdown(&p->ts, cx);
}

static int peer_recv(peer *p, asyncio_context *cx)
{
    for (;;) {
        unsigned char tmp[8192];
        size_t n = 0;
        int rc = ts_poll_read(&p->ts, cx, tmp, sizeof tmp, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return 0;
        for (size_t k = 0; k < n; k++) {
            if (tmp[k] != pat(p->got + k))
                return ASYNCIO_EPROTO;
        }
        p->got += n;
    }
}

static int peer_poll(void *state, asyncio_context *cx, void *output)
{
    peer *p = state;
    int rc;
    if (p->step == 0) {
        rc = ts_open(&p->ts, p->fd);
        if (rc != 0)
            return rc;
        p->step = 1;
    }
    if (p->step == 1) {
        rc = p->send_first ? peer_send(p, cx) : peer_recv(p, cx);
        if (rc != 0)
            return rc;
        p->step = 2;
    }
    rc = p->send_first ? peer_recv(p, cx) : peer_send(p, cx);
    if (rc != 0)
        return rc;
    memcpy(output, &p->got, sizeof p->got);
    return 0;
}

static void peer_drop(void *state)
{
    peer *p = state;
    if (p->step == 0)
        support_close(p->fd);
    else
        ts_close(&p->ts);
}

static const asyncio_task_vtable peer_vt = {peer_poll, peer_drop, NULL, sizeof(peer),
                                            sizeof(size_t)};

typedef struct proxy_main {
    int a_fd, b_fd, client_fd, server_fd;
    bool zc;
    int step;
    tstream a, b;
    asyncio_copy_bidirectional cb;
    asyncio_join_handle *client, *server;
    size_t client_got, server_got;
    int rc;
} proxy_main;

typedef struct proxy_out {
    int rc;
    uint64_t a_to_b, b_to_a, zero_copy;
    size_t client_got, server_got;
} proxy_out;

static int proxy_poll(void *state, asyncio_context *cx, void *output)
{
    proxy_main *m = state;
    int rc;
    switch (m->step) {
    case 0: {
        m->step = 1;
        peer client = {.fd = m->client_fd, .send = REQ, .send_first = true};
        peer server = {.fd = m->server_fd, .send = RESP, .send_first = false};
        m->client_fd = m->server_fd = -1;
        rc = asyncio_spawn(asyncio_runtime_current(), &peer_vt, &client, &m->client);
        if (rc == 0)
            rc = asyncio_spawn(asyncio_runtime_current(), &peer_vt, &server, &m->server);
        if (rc == 0)
            rc = ts_open(&m->a, m->a_fd);
        m->a_fd = -1;
        if (rc == 0)
            rc = ts_open(&m->b, m->b_fd);
        m->b_fd = -1;
        if (rc != 0)
            return rc;
        asyncio_copy_bidirectional_init(&m->cb, ts_reader(&m->a, m->zc), ts_writer(&m->a, m->zc),
                                        ts_reader(&m->b, m->zc), ts_writer(&m->b, m->zc));
    }
        /* fall through */
    case 1:
        rc = asyncio_copy_bidirectional_poll(&m->cb, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        m->rc = rc;
        m->step = 2;
        /* fall through */
    case 2:
        rc = join(&m->client, cx, &m->client_got);
        if (rc != 0)
            return rc;
        m->step = 3;
        /* fall through */
    default:
        rc = join(&m->server, cx, &m->server_got);
        if (rc != 0)
            return rc;
        proxy_out out = {m->rc,
                         m->cb.a_to_b.written,
                         m->cb.b_to_a.written,
                         m->cb.a_to_b.zero_copy + m->cb.b_to_a.zero_copy,
                         m->client_got,
                         m->server_got};
        memcpy(output, &out, sizeof out);
        return 0;
    }
}

static void proxy_drop(void *state)
{
    proxy_main *m = state;
    asyncio_copy_bidirectional_drop(&m->cb);
    asyncio_join_handle_drop(m->client);
    asyncio_join_handle_drop(m->server);
    ts_close(&m->a);
    ts_close(&m->b);
    support_close(m->a_fd);
    support_close(m->b_fd);
    support_close(m->client_fd);
    support_close(m->server_fd);
}

static const asyncio_task_vtable proxy_vt = {proxy_poll, proxy_drop, NULL, sizeof(proxy_main),
                                             sizeof(proxy_out)};

static void run_proxy(bool zc)
{
    int c[2], s[2];
    support_socketpair(c);
    support_socketpair(s);
    proxy_main *m = calloc(1, sizeof *m);
    assert_non_null(m);
    *m = (proxy_main){.client_fd = c[0], .a_fd = c[1], .b_fd = s[0], .server_fd = s[1], .zc = zc};
    m->a.fd = m->b.fd = -1;
    proxy_out out;
    assert_ok(run(&proxy_vt, m, &out));
    free(m);
    assert_ok(out.rc);
    assert_int_equal(out.a_to_b, REQ);
    assert_int_equal(out.b_to_a, RESP);
    assert_int_equal(out.server_got, REQ);  /* the server saw EOF: half-close went through */
    assert_int_equal(out.client_got, RESP); /* and the client got the reply after its FIN */
    assert_int_equal(out.zero_copy, zc ? REQ + RESP : 0);
}

static void test_copy_bidirectional_propagates_half_close(void **state)
{
    (void)state;
    run_proxy(false);
}

static void test_copy_bidirectional_spliced_propagates_half_close(void **state)
{
    (void)state;
    run_proxy(true);
}

/* ------------------------------------------------------------------------ */
/* Zero-initialised interfaces (docs/errors.md: bad input is -EINVAL, never a crash) */

static void test_poll_read_on_zeroed_reader_returns_einval(void **state)
{
    (void)state;
    asyncio_reader r = {0};
    asyncio_context cx = {0};
    char buf[4];
    size_t n = 0;
    assert_err(asyncio_poll_read(r, &cx, buf, sizeof buf, &n), ASYNCIO_EINVAL);
}

static void test_poll_write_on_zeroed_writer_returns_einval(void **state)
{
    (void)state;
    asyncio_writer w = {0};
    asyncio_context cx = {0};
    size_t n = 0;
    assert_err(asyncio_poll_write(w, &cx, "x", 1, &n), ASYNCIO_EINVAL);
}

static void test_poll_flush_on_zeroed_writer_returns_einval(void **state)
{
    (void)state;
    asyncio_writer w = {0};
    asyncio_context cx = {0};
    assert_err(asyncio_poll_flush(w, &cx), ASYNCIO_EINVAL);
}

static void test_poll_shutdown_on_zeroed_writer_returns_einval(void **state)
{
    (void)state;
    asyncio_writer w = {0};
    asyncio_context cx = {0};
    assert_err(asyncio_poll_shutdown(w, &cx), ASYNCIO_EINVAL);
}

static void test_poll_write_vectored_on_zeroed_writer_returns_einval(void **state)
{
    (void)state;
    asyncio_writer w = {0};
    asyncio_context cx = {0};
    asyncio_iovec iov = {(void *)"x", 1};
    size_t n = 0;
    assert_err(asyncio_poll_write_vectored(w, &cx, &iov, 1, &n), ASYNCIO_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Splice pipes are held only while bytes are in them                        */

#define IDLE_COPIES 8

typedef struct idle_main {
    int src[IDLE_COPIES][2], dst[IDLE_COPIES][2]; /* [0] ours, [1] the copy's */
    tstream r[IDLE_COPIES], w[IDLE_COPIES];
    asyncio_copy copy[IDLE_COPIES];
    int fds_before; /* open fds once the streams exist, before any copy ran */
    bool started;
} idle_main;

typedef struct idle_out {
    int extra_fds; /* fds open beyond fds_before while every copy waits for its reader */
    uint64_t zero_copy;
} idle_out;

static int idle_poll(void *state, asyncio_context *cx, void *output)
{
    idle_main *m = state;
    idle_out *o = output;
    if (!m->started) {
        for (int i = 0; i < IDLE_COPIES; i++) {
            support_socketpair(m->src[i]);
            support_socketpair(m->dst[i]);
            assert_ok(ts_open(&m->r[i], m->src[i][1]));
            assert_ok(ts_open(&m->w[i], m->dst[i][1]));
            asyncio_copy_init(&m->copy[i], ts_reader(&m->r[i], true), ts_writer(&m->w[i], true));
            assert_int_equal(write(m->src[i][0], g_big, 1000), 1000);
        }
        m->fds_before = support_open_fds();
        m->started = true;
    }
    bool all = true;
    for (int i = 0; i < IDLE_COPIES; i++) {
        int rc = asyncio_copy_poll(&m->copy[i], cx);
        assert_int_equal(rc, ASYNCIO_PENDING); /* no EOF: each waits for more input */
        all = all && m->copy[i].written == 1000;
    }
    if (!all)
        return ASYNCIO_PENDING;
    o->extra_fds = support_open_fds() - m->fds_before;
    o->zero_copy = 0;
    for (int i = 0; i < IDLE_COPIES; i++)
        o->zero_copy += m->copy[i].zero_copy;
    return 0;
}

static void idle_drop(void *state)
{
    idle_main *m = state;
    for (int i = 0; i < IDLE_COPIES && m->started; i++) {
        asyncio_copy_drop(&m->copy[i]);
        ts_close(&m->r[i]);
        ts_close(&m->w[i]);
        for (int k = 0; k < 2; k++) {
            support_close(m->src[i][k]);
            support_close(m->dst[i][k]);
        }
    }
}

static const asyncio_task_vtable idle_vt = {idle_poll, idle_drop, NULL, sizeof(idle_main),
                                            sizeof(idle_out)};

/*
 * Eight spliced copies that moved their bytes and now wait for their
 * readers hold no pipe (a proxy with many quiet connections would
 * otherwise spend 4 extra fds on each): at most the runtime's one spare
 * pipe is open beyond the streams' own fds.
 */
static void test_copy_waiting_for_its_reader_holds_no_splice_pipe(void **state)
{
    (void)state;
    idle_main *m = calloc(1, sizeof *m);
    assert_non_null(m);
    idle_out o = {0};
    assert_ok(run(&idle_vt, m, &o));
    free(m);
    assert_int_equal(o.zero_copy, IDLE_COPIES * 1000); /* still spliced */
    if (o.extra_fds > 2)
        print_error("%d fds beyond the streams' own\n", o.extra_fds);
    assert_true(o.extra_fds <= 2);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    for (size_t i = 0; i < BIG; i++)
        g_big[i] = pat(i);
    const struct CMUnitTest tests[] = {
        support_test(test_write_all_1mib_to_slow_reader_completes_intact),
        support_test(test_poll_write_all_advances_the_callers_counter_across_partial_writes),
        support_test(test_poll_write_all_rejects_bad_input_and_stops_on_a_zero_write),
        support_test(test_write_vectored_all_advances_across_partial_writes),
        support_test(test_write_vectored_all_user_writer_partial_and_pending),
        support_test(test_read_exact_fills_across_small_chunks),
        support_test(test_read_exact_early_eof_is_unexpected_eof),
        support_test(test_read_to_end_within_limit),
        support_test(test_read_to_end_over_limit_is_emsgsize_and_keeps_extra_byte),
        support_test(test_read_to_end_exactly_at_limit_is_ok),
        support_test(test_copy_socket_to_socket_takes_splice_path),
        support_test(test_copy_pipe_to_socket_takes_splice_path),
        support_test(test_copy_socket_to_pipe_takes_splice_path),
        support_test(test_copy_without_raw_io_uses_buffer),
        support_test(test_copy_refused_splice_falls_back_without_losing_bytes),
        support_test(test_copy_file_to_socket_takes_sendfile_path),
        support_test(test_copy_file_to_plain_writer_uses_buffer),
        support_test(test_copy_flushes_buffered_writer_while_reader_pending),
        support_test(test_copy_to_closed_peer_returns_error_without_sigpipe),
        support_test(test_copy_bidirectional_propagates_half_close),
        support_test(test_copy_bidirectional_spliced_propagates_half_close),
        support_test(test_poll_read_on_zeroed_reader_returns_einval),
        support_test(test_poll_write_on_zeroed_writer_returns_einval),
        support_test(test_poll_flush_on_zeroed_writer_returns_einval),
        support_test(test_poll_shutdown_on_zeroed_writer_returns_einval),
        support_test(test_poll_write_vectored_on_zeroed_writer_returns_einval),
        support_test(test_copy_waiting_for_its_reader_holds_no_splice_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unix-domain sockets: stream echo through a path listener (via the
 * AsyncRead / AsyncWrite interfaces, writev included), half-close, peer
 * credentials equal to ours, Linux abstract names, datagrams bound and
 * unbound (an unbound sender to a bound receiver), truncation, pairs, a
 * read pending until the peer writes, no SIGPIPE, the stale-socket-file
 * behaviour (EADDRINUSE; unlink_existing removes only a socket) and the
 * error paths (bad path length, wrong family, missing directories...).
 *
 * Every test runs a current-thread runtime with asyncio_runtime_block_on()
 * and a main task written as an explicit state machine; its drop closes
 * what it holds. Paths live in a fresh mkdtemp directory removed at the
 * end of each test; the fixtures check blocks and fds.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio/io_util.h"
#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "asyncio/unix.h"
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

static char g_dir[64];

/* A fresh directory for this test's socket files. */
static void make_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/asyncio-unix-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
}

/* Removes the directory and anything the test left in it. */
static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

static asyncio_sockaddr path_addr(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_unix(path, &a));
    return a;
}

/* A Linux abstract name unique to this process and test. */
static asyncio_sockaddr abstract_addr(const char *tag)
{
    char name[96];
    snprintf(name, sizeof name, "@asyncio-test-%ld-%s", (long)getpid(), tag);
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_unix(name, &a));
    return a;
}

static bool path_exists(const asyncio_sockaddr *a)
{
    struct stat st;
    return stat(a->u.un.sun_path, &st) == 0;
}

static asyncio_runtime *new_runtime(void)
{
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    return rt;
}

static void free_runtime(asyncio_runtime *rt)
{
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_free(rt));
}

/* ------------------------------------------------------------------------ */
/* Stream: listener + connect + accept, then an exchange                     */

typedef enum exch_mode {
    EXCH_ECHO,       /* client writes (writev), server echoes, client reads */
    EXCH_HALF_CLOSE, /* client writes then shuts down; server reads to EOF, replies */
} exch_mode;

typedef struct stream_task {
    int step;
    exch_mode mode;
    asyncio_sockaddr addr;
    asyncio_unix_listener *l;
    asyncio_unix_connect conn;
    asyncio_unix_stream client, server;
    size_t off, n;
    char buf[256];
} stream_task;

static const char MSG[] = "hello over a unix stream";

static int stream_setup(stream_task *t, asyncio_context *cx)
{
    switch (t->step) {
    case 0:
        assert_ok(asyncio_unix_listener_bind(&t->l, &t->addr, NULL));
        asyncio_unix_connect_init(&t->conn, &t->addr);
        t->step = 1;
        /* fallthrough */
    case 1:
        AWAIT(asyncio_unix_connect_poll(&t->conn, cx, &t->client));
        t->step = 2;
        /* fallthrough */
    case 2: {
        asyncio_sockaddr peer;
        AWAIT(asyncio_unix_listener_poll_accept(t->l, cx, &t->server, &peer));
        assert_int_equal(asyncio_addr_family(&peer), AF_UNIX);
        asyncio_sockaddr local, cpeer;
        assert_ok(asyncio_unix_listener_local_addr(t->l, &local));
        assert_true(asyncio_addr_equal(&local, &t->addr));
        assert_ok(asyncio_unix_stream_peer_addr(&t->client, &cpeer));
        assert_true(asyncio_addr_equal(&cpeer, &t->addr));
        t->step = 3;
        return 0;
    }
    }
    return 0;
}

static int stream_poll(void *state, asyncio_context *cx, void *out)
{
    stream_task *t = state;
    (void)out;
    if (t->step < 3) {
        int rc = stream_setup(t, cx);
        if (rc != 0)
            return rc;
    }
    asyncio_reader cr = asyncio_unix_stream_reader(&t->client);
    asyncio_writer cw = asyncio_unix_stream_writer(&t->client);
    asyncio_reader sr = asyncio_unix_stream_reader(&t->server);
    asyncio_writer sw = asyncio_unix_stream_writer(&t->server);
    switch (t->step) {
    case 3: { /* the client writes MSG in two gathered pieces */
        asyncio_iovec iov[2] = {{(void *)MSG, 5}, {(void *)(MSG + 5), sizeof MSG - 5}};
        AWAIT(cw.vtable->poll_write_vectored(cw.self, cx, iov, 2, &t->n));
        assert_int_equal(t->n, sizeof MSG);
        AWAIT(asyncio_poll_flush(cw, cx));
        if (t->mode == EXCH_HALF_CLOSE)
            assert_ok(asyncio_poll_shutdown(cw, cx));
        t->off = 0;
        t->step = 4;
    }
    /* fallthrough */
    case 4: /* the server reads it all (and EOF in half-close mode) */
        while (t->off < sizeof MSG || t->mode == EXCH_HALF_CLOSE) {
            AWAIT(asyncio_poll_read(sr, cx, t->buf + t->off, sizeof t->buf - t->off, &t->n));
            if (t->n == 0)
                break; /* EOF */
            t->off += t->n;
        }
        assert_int_equal(t->off, sizeof MSG);
        assert_memory_equal(t->buf, MSG, sizeof MSG);
        t->step = 5;
        /* fallthrough */
    case 5: /* the server answers (its write side is still open after the client's FIN) */
        AWAIT(asyncio_poll_write(sw, cx, t->buf, t->off, &t->n));
        assert_int_equal(t->n, t->off);
        if (t->mode == EXCH_HALF_CLOSE) {
            /* Writing after our own shutdown: EPIPE, never SIGPIPE. */
            size_t n;
            assert_err(asyncio_poll_write(cw, cx, "x", 1, &n), ASYNCIO_EPIPE);
        }
        memset(t->buf, 0, sizeof t->buf);
        t->off = 0;
        t->step = 6;
        /* fallthrough */
    case 6:
        while (t->off < sizeof MSG) {
            AWAIT(asyncio_poll_read(cr, cx, t->buf + t->off, sizeof t->buf - t->off, &t->n));
            assert_true(t->n > 0);
            t->off += t->n;
        }
        assert_memory_equal(t->buf, MSG, sizeof MSG);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void stream_drop(void *state)
{
    stream_task *t = state;
    asyncio_unix_connect_drop(&t->conn);
    asyncio_unix_stream_close(&t->client);
    asyncio_unix_stream_close(&t->server);
    asyncio_unix_listener_close(t->l);
}

static const asyncio_task_vtable stream_vt = {stream_poll, stream_drop, NULL, sizeof(stream_task),
                                              0};

static void run_stream(const asyncio_sockaddr *addr, exch_mode mode)
{
    asyncio_runtime *rt = new_runtime();
    stream_task t = {.mode = mode, .addr = *addr, .client = CLOSED, .server = CLOSED};
    asyncio_unix_connect_init(&t.conn, addr);
    assert_ok(asyncio_runtime_block_on(rt, &stream_vt, &t, NULL));
    free_runtime(rt);
}

static void test_unix_stream_echo(void **state)
{
    (void)state;
    make_dir();
    asyncio_sockaddr a = path_addr("echo.sock");
    run_stream(&a, EXCH_ECHO);
    assert_true(path_exists(&a)); /* close never unlinks (stale-file rule) */
    remove_dir();
}

static void test_unix_stream_half_close(void **state)
{
    (void)state;
    make_dir();
    asyncio_sockaddr a = path_addr("half.sock");
    run_stream(&a, EXCH_HALF_CLOSE);
    remove_dir();
}

static void test_unix_abstract_name_bind_connect(void **state)
{
    (void)state;
    asyncio_sockaddr a = abstract_addr("stream");
    char text[ASYNCIO_ADDRSTRLEN];
    assert_ok(asyncio_addr_format(&a, text, sizeof text));
    assert_int_equal(text[0], '@');
    run_stream(&a, EXCH_ECHO);
    /* The name went away with the listener: nobody holds it now. */
    run_stream(&a, EXCH_HALF_CLOSE);
}

/* ------------------------------------------------------------------------ */
/* Peer credentials, pairs, pending reads                                    */

static int cred_poll(void *state, asyncio_context *cx, void *out)
{
    stream_task *t = state;
    (void)out;
    if (t->step < 3) {
        int rc = stream_setup(t, cx);
        if (rc != 0)
            return rc;
    }
    asyncio_unix_cred c;
    const asyncio_unix_stream *ends[2] = {&t->client, &t->server};
    for (int i = 0; i < 2; i++) {
        memset(&c, 0xff, sizeof c);
        assert_ok(asyncio_unix_stream_peer_cred(ends[i], &c));
        assert_int_equal(c.pid, getpid());
        assert_int_equal(c.uid, getuid());
        assert_int_equal(c.gid, getgid());
    }
    /* A socketpair carries the creator's credentials too. */
    asyncio_unix_stream a = CLOSED, b = CLOSED;
    assert_ok(asyncio_unix_stream_pair(&a, &b));
    assert_ok(asyncio_unix_stream_peer_cred(&b, &c));
    assert_int_equal(c.pid, getpid());
    assert_int_equal(c.uid, getuid());
    assert_ok(asyncio_unix_stream_close(&a));
    assert_ok(asyncio_unix_stream_close(&b));
    assert_ok(asyncio_unix_stream_close(&b)); /* twice: a no-op */
    return 0;
}

static const asyncio_task_vtable cred_vt = {cred_poll, stream_drop, NULL, sizeof(stream_task), 0};

static void test_unix_peer_cred_matches_self(void **state)
{
    (void)state;
    asyncio_sockaddr a = abstract_addr("cred");
    asyncio_runtime *rt = new_runtime();
    stream_task t = {.addr = a, .client = CLOSED, .server = CLOSED};
    asyncio_unix_connect_init(&t.conn, &a);
    assert_ok(asyncio_runtime_block_on(rt, &cred_vt, &t, NULL));
    free_runtime(rt);
}

/*
 * Set by the reader when its read went pending. The writer waits for it,
 * so "pending at least once" also holds on the multi-thread runtime, where
 * the writer may run on another worker before the reader's first poll.
 */
static atomic_bool g_reader_pending;

typedef struct late_writer {
    asyncio_unix_stream *s; /* borrowed from the reader task, which outlives us */
    int yields;
    asyncio_yield y;
} late_writer;

static int late_writer_poll(void *state, asyncio_context *cx, void *out)
{
    late_writer *t = state;
    (void)out;
    while (t->yields > 0 || !atomic_load(&g_reader_pending)) {
        if (asyncio_yield_poll(&t->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        t->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        if (t->yields > 0)
            t->yields--;
    }
    size_t n;
    AWAIT(asyncio_unix_stream_poll_write(t->s, cx, "wake", 4, &n));
    return 0;
}

static const asyncio_task_vtable late_writer_vt = {late_writer_poll, NULL, NULL,
                                                   sizeof(late_writer), 0};

typedef struct pair_task {
    int step;
    asyncio_unix_stream a, b;
    asyncio_join_handle *writer;
    int pending_polls;
    size_t n;
    char buf[16];
} pair_task;

static int pair_poll(void *state, asyncio_context *cx, void *out)
{
    pair_task *t = state;
    (void)out;
    switch (t->step) {
    case 0: {
        assert_ok(asyncio_unix_stream_pair(&t->a, &t->b));
        atomic_store(&g_reader_pending, false);
        late_writer w = {.s = &t->b, .yields = 5};
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &late_writer_vt, &w, &t->writer));
        t->step = 1;
    }
    /* fallthrough */
    case 1: {
        int rc = asyncio_unix_stream_poll_read(&t->a, cx, t->buf, sizeof t->buf, &t->n);
        if (rc == ASYNCIO_PENDING) {
            t->pending_polls++;
            atomic_store(&g_reader_pending, true);
            return rc;
        }
        assert_ok(rc);
        assert_int_equal(t->n, 4);
        assert_memory_equal(t->buf, "wake", 4);
        assert_true(t->pending_polls >= 1);
        t->step = 2;
    }
    /* fallthrough */
    case 2:
        AWAIT(asyncio_join_handle_poll(t->writer, cx, NULL));
        /* The peer goes away: EOF for the reader, EPIPE (no SIGPIPE) for a writer. */
        assert_ok(asyncio_unix_stream_close(&t->b));
        t->step = 3;
        /* fallthrough */
    case 3:
        AWAIT(asyncio_unix_stream_poll_read(&t->a, cx, t->buf, sizeof t->buf, &t->n));
        assert_int_equal(t->n, 0);
        t->step = 4;
        /* fallthrough */
    case 4: {
        int rc = asyncio_unix_stream_poll_write(&t->a, cx, "x", 1, &t->n);
        if (rc == ASYNCIO_PENDING)
            return rc; /* the hang-up event has not been dispatched yet */
        assert_err(rc, ASYNCIO_EPIPE);
        return 0;
    }
    }
    return ASYNCIO_EINVAL;
}

static void pair_drop(void *state)
{
    pair_task *t = state;
    asyncio_join_handle_drop(t->writer);
    asyncio_unix_stream_close(&t->a);
    asyncio_unix_stream_close(&t->b);
}

static const asyncio_task_vtable pair_vt = {pair_poll, pair_drop, NULL, sizeof(pair_task), 0};

static void test_unix_pair_read_pending_until_written_no_sigpipe(void **state)
{
    (void)state;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old); /* a SIGPIPE would kill the test */
    asyncio_runtime *rt = new_runtime();
    pair_task t = {.a = CLOSED, .b = CLOSED};
    assert_ok(asyncio_runtime_block_on(rt, &pair_vt, &t, NULL));
    free_runtime(rt);
    sigaction(SIGPIPE, &old, NULL);
}

/*
 * The peer first shuts down writing (EOF, no hang-up: the socket is still
 * writable), the reader sees the EOF, then the peer closes and the reader
 * writes at once, before any turn of the driver could report the hang-up.
 * The write must fail with EPIPE there and then, on every backend: on the
 * io_uring completion path a write accepted into the ring would only fail
 * later (it once returned 0 here).
 */
typedef struct eof_then_write_task {
    int step;
    asyncio_unix_stream a, b;
    char buf[8];
    size_t n;
} eof_then_write_task;

static int eof_then_write_poll(void *state, asyncio_context *cx, void *out)
{
    eof_then_write_task *t = state;
    (void)out;
    switch (t->step) {
    case 0:
        assert_ok(asyncio_unix_stream_pair(&t->a, &t->b));
        t->step = 1;
        /* fallthrough */
    case 1:
        AWAIT(asyncio_unix_stream_poll_shutdown(&t->b, cx));
        t->step = 2;
        /* fallthrough */
    case 2:
        AWAIT(asyncio_unix_stream_poll_read(&t->a, cx, t->buf, sizeof t->buf, &t->n));
        assert_int_equal(t->n, 0);
        assert_ok(asyncio_unix_stream_close(&t->b));
        t->step = 3;
        /* fallthrough */
    case 3: {
        /*
         * Never accepted (0): EPIPE, at once or, on the multi-thread runtime,
         * after the writable report of the socket reached the stream (the
         * receive's EOF can be handed to this task first, by another worker).
         */
        int rc = asyncio_unix_stream_poll_write(&t->a, cx, "x", 1, &t->n);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_err(rc, ASYNCIO_EPIPE);
        return 0;
    }
    }
    return ASYNCIO_EINVAL;
}

static void eof_then_write_drop(void *state)
{
    eof_then_write_task *t = state;
    asyncio_unix_stream_close(&t->a);
    asyncio_unix_stream_close(&t->b);
}

static const asyncio_task_vtable eof_then_write_vt = {eof_then_write_poll, eof_then_write_drop,
                                                      NULL, sizeof(eof_then_write_task), 0};

static void test_unix_write_after_eof_from_a_closed_peer_fails_at_once_with_epipe(void **state)
{
    (void)state;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old); /* a SIGPIPE would kill the test */
    asyncio_runtime *rt = new_runtime();
    eof_then_write_task t = {.a = CLOSED, .b = CLOSED};
    assert_ok(asyncio_runtime_block_on(rt, &eof_then_write_vt, &t, NULL));
    free_runtime(rt);
    sigaction(SIGPIPE, &old, NULL);
}

/* asyncio_copy between two Unix streams takes the splice path (poll_raw_io). */
#define COPY_BYTES (256 * 1024)

static unsigned char g_copy_src[COPY_BYTES],
    g_copy_dst[COPY_BYTES + 1]; /* +1: room to see extra bytes */

typedef struct copy_task {
    int step;
    asyncio_unix_stream a1, b1, a2, b2; /* a1 -> b1 =copy=> a2 -> b2 */
    asyncio_copy copy;
    size_t wr, rd;
} copy_task;

static int copy_poll(void *state, asyncio_context *cx, void *out)
{
    copy_task *t = state;
    (void)out;
    for (;;) {
        switch (t->step) {
        case 0:
            assert_ok(asyncio_unix_stream_pair(&t->a1, &t->b1));
            assert_ok(asyncio_unix_stream_pair(&t->a2, &t->b2));
            for (size_t i = 0; i < COPY_BYTES; i++)
                g_copy_src[i] = (unsigned char)(i * 13 + 5);
            asyncio_copy_init(&t->copy, asyncio_unix_stream_reader(&t->b1),
                              asyncio_unix_stream_writer(&t->a2));
            t->step = 1;
            break;
        case 1: { /* feed a1, run the copy, drain b2, in whatever order makes progress */
            int progress = 0;
            size_t n;
            if (t->wr < COPY_BYTES) {
                int rc = asyncio_unix_stream_poll_write(&t->a1, cx, g_copy_src + t->wr,
                                                        COPY_BYTES - t->wr, &n);
                if (rc != ASYNCIO_PENDING) {
                    assert_ok(rc);
                    t->wr += n;
                    progress = 1;
                    if (t->wr == COPY_BYTES)
                        assert_ok(asyncio_unix_stream_poll_shutdown(&t->a1, cx));
                }
            }
            int crc = asyncio_copy_poll(&t->copy, cx);
            if (crc == 0) {
                assert_ok(asyncio_unix_stream_poll_shutdown(&t->a2, cx));
                t->step = 2;
                break;
            }
            if (crc != ASYNCIO_PENDING)
                assert_ok(crc);
            int rrc = asyncio_unix_stream_poll_read(&t->b2, cx, g_copy_dst + t->rd,
                                                    COPY_BYTES - t->rd, &n);
            if (rrc != ASYNCIO_PENDING) {
                assert_ok(rrc);
                t->rd += n;
                progress = 1;
            }
            if (!progress)
                return ASYNCIO_PENDING; /* every leaf stored the waker */
            break;
        }
        default: { /* the rest, until EOF */
            size_t n;
            AWAIT(asyncio_unix_stream_poll_read(&t->b2, cx, g_copy_dst + t->rd,
                                                COPY_BYTES - t->rd + (t->rd == COPY_BYTES), &n));
            if (n == 0) {
                assert_int_equal(t->rd, COPY_BYTES);
                assert_memory_equal(g_copy_dst, g_copy_src, COPY_BYTES);
                assert_int_equal(t->copy.written, COPY_BYTES);
                assert_int_equal(t->copy.path, ASYNCIO_COPY_PATH_SPLICE);
                assert_int_equal(t->copy.zero_copy, COPY_BYTES);
                return 0;
            }
            t->rd += n;
            break;
        }
        }
    }
}

static void copy_drop(void *state)
{
    copy_task *t = state;
    asyncio_copy_drop(&t->copy);
    asyncio_unix_stream_close(&t->a1);
    asyncio_unix_stream_close(&t->b1);
    asyncio_unix_stream_close(&t->a2);
    asyncio_unix_stream_close(&t->b2);
}

static const asyncio_task_vtable copy_vt = {copy_poll, copy_drop, NULL, sizeof(copy_task), 0};

static void test_unix_stream_copy_takes_splice_path(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    copy_task t = {.a1 = CLOSED, .b1 = CLOSED, .a2 = CLOSED, .b2 = CLOSED};
    asyncio_copy_init(&t.copy, asyncio_unix_stream_reader(&t.b1),
                      asyncio_unix_stream_writer(&t.a2));
    assert_ok(asyncio_runtime_block_on(rt, &copy_vt, &t, NULL));
    free_runtime(rt);
}

/* ------------------------------------------------------------------------ */
/* Datagrams                                                                 */

typedef struct dgram_task {
    int step;
    bool abstract;
    asyncio_unix_datagram rx, tx, bound_tx;
    asyncio_sockaddr rx_addr, tx_addr, from;
    size_t n;
    bool truncated;
    char buf[2048];
} dgram_task;

static unsigned char g_big[2000];

static int dgram_poll(void *state, asyncio_context *cx, void *out)
{
    dgram_task *t = state;
    (void)out;
    switch (t->step) {
    case 0:
        assert_ok(asyncio_unix_datagram_bind(&t->rx, &t->rx_addr, NULL));
        assert_ok(asyncio_unix_datagram_unbound(&t->tx));
        t->step = 1;
        /* fallthrough */
    case 1: /* unbound sender -> bound receiver */
        AWAIT(asyncio_unix_datagram_poll_send_to(&t->tx, cx, "anon", 4, &t->rx_addr, &t->n));
        assert_int_equal(t->n, 4);
        t->step = 2;
        /* fallthrough */
    case 2: {
        AWAIT(asyncio_unix_datagram_poll_recv_from(&t->rx, cx, t->buf, sizeof t->buf, &t->n,
                                                   &t->from, &t->truncated));
        assert_int_equal(t->n, 4);
        assert_false(t->truncated);
        assert_memory_equal(t->buf, "anon", 4);
        /* The sender has no name: the family only, formatted as "". */
        assert_int_equal(t->from.len, sizeof(sa_family_t));
        char text[ASYNCIO_ADDRSTRLEN];
        assert_ok(asyncio_addr_format(&t->from, text, sizeof text));
        assert_string_equal(text, "");
        /* A bound sender is named, so the receiver can reply. */
        assert_ok(asyncio_unix_datagram_bind(&t->bound_tx, &t->tx_addr, NULL));
        for (size_t i = 0; i < sizeof g_big; i++)
            g_big[i] = (unsigned char)(i * 7);
        t->step = 3;
    }
    /* fallthrough */
    case 3: /* 2,000 bytes into a 100-byte buffer: truncated, reported */
        AWAIT(asyncio_unix_datagram_poll_send_to(&t->bound_tx, cx, g_big, sizeof g_big, &t->rx_addr,
                                                 &t->n));
        assert_int_equal(t->n, sizeof g_big);
        t->step = 4;
        /* fallthrough */
    case 4:
        AWAIT(asyncio_unix_datagram_poll_recv_from(&t->rx, cx, t->buf, 100, &t->n, &t->from,
                                                   &t->truncated));
        assert_int_equal(t->n, 100);
        assert_true(t->truncated);
        assert_memory_equal(t->buf, g_big, 100);
        assert_true(asyncio_addr_equal(&t->from, &t->tx_addr));
        t->step = 5;
        /* fallthrough */
    case 5: /* reply to the named sender */
        AWAIT(asyncio_unix_datagram_poll_send_to(&t->rx, cx, "reply", 5, &t->from, &t->n));
        t->step = 6;
        /* fallthrough */
    case 6:
        AWAIT(asyncio_unix_datagram_poll_recv(&t->bound_tx, cx, t->buf, sizeof t->buf, &t->n,
                                              &t->truncated));
        assert_int_equal(t->n, 5);
        assert_false(t->truncated);
        assert_memory_equal(t->buf, "reply", 5);
        /* connect + send */
        assert_ok(asyncio_unix_datagram_connect(&t->tx, &t->rx_addr));
        t->step = 7;
        /* fallthrough */
    case 7:
        AWAIT(asyncio_unix_datagram_poll_send(&t->tx, cx, "conn", 4, &t->n));
        t->step = 8;
        /* fallthrough */
    case 8: {
        AWAIT(asyncio_unix_datagram_poll_recv(&t->rx, cx, t->buf, sizeof t->buf, &t->n, NULL));
        assert_int_equal(t->n, 4);
        assert_memory_equal(t->buf, "conn", 4);
        asyncio_sockaddr peer;
        assert_ok(asyncio_unix_datagram_peer_addr(&t->tx, &peer));
        assert_true(asyncio_addr_equal(&peer, &t->rx_addr));
        assert_ok(asyncio_unix_datagram_local_addr(&t->rx, &peer));
        assert_true(asyncio_addr_equal(&peer, &t->rx_addr));
        return 0;
    }
    }
    return ASYNCIO_EINVAL;
}

static void dgram_drop(void *state)
{
    dgram_task *t = state;
    asyncio_unix_datagram_close(&t->rx);
    asyncio_unix_datagram_close(&t->tx);
    asyncio_unix_datagram_close(&t->bound_tx);
}

static const asyncio_task_vtable dgram_vt = {dgram_poll, dgram_drop, NULL, sizeof(dgram_task), 0};

static void test_unix_datagram_bound_and_unbound(void **state)
{
    (void)state;
    make_dir();
    asyncio_runtime *rt = new_runtime();
    dgram_task t = {.rx = CLOSED, .tx = CLOSED, .bound_tx = CLOSED};
    t.rx_addr = path_addr("rx.sock");
    t.tx_addr = path_addr("tx.sock");
    assert_ok(asyncio_runtime_block_on(rt, &dgram_vt, &t, NULL));
    free_runtime(rt);
    remove_dir();
}

static void test_unix_datagram_abstract_names(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    dgram_task t = {.rx = CLOSED, .tx = CLOSED, .bound_tx = CLOSED};
    t.rx_addr = abstract_addr("drx");
    t.tx_addr = abstract_addr("dtx");
    assert_ok(asyncio_runtime_block_on(rt, &dgram_vt, &t, NULL));
    free_runtime(rt);
}

typedef struct dpair_task {
    int step;
    asyncio_unix_datagram a, b;
} dpair_task;

static int dpair_poll(void *state, asyncio_context *cx, void *out)
{
    dpair_task *t = state;
    (void)out;
    size_t n;
    char buf[8];
    bool tr;
    switch (t->step) {
    case 0:
        assert_ok(asyncio_unix_datagram_pair(&t->a, &t->b));
        t->step = 1;
        /* fallthrough */
    case 1:
        AWAIT(asyncio_unix_datagram_poll_send(&t->a, cx, "one", 3, &n));
        assert_ok(asyncio_unix_datagram_poll_send(&t->a, cx, "two", 3, &n)); /* writable now */
        t->step = 2;
        /* fallthrough */
    case 2:
        AWAIT(asyncio_unix_datagram_poll_recv(&t->b, cx, buf, sizeof buf, &n, &tr));
        assert_int_equal(n, 3);
        assert_memory_equal(buf, "one", 3); /* datagram boundaries are kept */
        assert_ok(asyncio_unix_datagram_poll_recv(&t->b, cx, buf, sizeof buf, &n, &tr));
        assert_memory_equal(buf, "two", 3);
        assert_int_equal(asyncio_unix_datagram_poll_recv(&t->b, cx, buf, sizeof buf, &n, &tr),
                         ASYNCIO_PENDING);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void dpair_drop(void *state)
{
    dpair_task *t = state;
    asyncio_unix_datagram_close(&t->a);
    asyncio_unix_datagram_close(&t->b);
}

static const asyncio_task_vtable dpair_vt = {dpair_poll, dpair_drop, NULL, sizeof(dpair_task), 0};

static void test_unix_datagram_pair_keeps_boundaries(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    dpair_task t = {.a = CLOSED, .b = CLOSED};
    assert_ok(asyncio_runtime_block_on(rt, &dpair_vt, &t, NULL));
    free_runtime(rt);
}

/* ------------------------------------------------------------------------ */
/* Stale socket files                                                        */

typedef struct stale_task {
    int step;
    asyncio_unix_datagram d;
    asyncio_sockaddr addr, file_addr;
    asyncio_unix_listener *l;
    asyncio_unix_connect conn;
} stale_task;

static int stale_poll(void *state, asyncio_context *cx, void *out)
{
    stale_task *t = state;
    (void)out;
    asyncio_unix_listener *l2 = NULL;
    assert_ok(asyncio_unix_listener_bind(&t->l, &t->addr, NULL));
    /* A live listener holds the path. */
    assert_err(asyncio_unix_listener_bind(&l2, &t->addr, NULL), ASYNCIO_EADDRINUSE);
    assert_ok(asyncio_unix_listener_close(t->l));
    t->l = NULL;
    /* Its file stays: a stale socket file, which nobody listens on... */
    assert_true(path_exists(&t->addr));
    asyncio_unix_connect_init(&t->conn, &t->addr);
    assert_err(asyncio_unix_connect_poll(&t->conn, cx, NULL), ASYNCIO_ECONNREFUSED);
    assert_err(asyncio_unix_connect_poll(&t->conn, cx, NULL), ASYNCIO_ECONNREFUSED); /* again */
    /* ...and binding there fails until it is removed. */
    assert_err(asyncio_unix_listener_bind(&l2, &t->addr, NULL), ASYNCIO_EADDRINUSE);
    asyncio_unix_datagram d = CLOSED;
    assert_err(asyncio_unix_datagram_bind(&d, &t->addr, NULL), ASYNCIO_EADDRINUSE);
    assert_true(path_exists(&t->addr)); /* never unlinked silently */
    /* unlink_existing removes the stale socket and binds. */
    asyncio_unix_bind_options o = {.unlink_existing = true};
    assert_ok(asyncio_unix_listener_bind(&t->l, &t->addr, &o));
    /* ...but never a file that is not a socket. */
    FILE *f = fopen(t->file_addr.u.un.sun_path, "w");
    assert_non_null(f);
    fclose(f);
    assert_err(asyncio_unix_datagram_bind(&d, &t->file_addr, &o), ASYNCIO_EADDRINUSE);
    assert_true(path_exists(&t->file_addr));
    return 0;
}

static void stale_drop(void *state)
{
    stale_task *t = state;
    asyncio_unix_datagram_close(&t->d);
    asyncio_unix_connect_drop(&t->conn);
    asyncio_unix_listener_close(t->l);
}

static const asyncio_task_vtable stale_vt = {stale_poll, stale_drop, NULL, sizeof(stale_task), 0};

static void test_unix_stale_socket_file_eaddrinuse(void **state)
{
    (void)state;
    make_dir();
    asyncio_runtime *rt = new_runtime();
    stale_task t = {
        .d = CLOSED, .addr = path_addr("stale.sock"), .file_addr = path_addr("plain.file")};
    asyncio_unix_connect_init(&t.conn, &t.addr);
    assert_ok(asyncio_runtime_block_on(rt, &stale_vt, &t, NULL));
    free_runtime(rt);
    remove_dir();
}

/* ------------------------------------------------------------------------ */
/* Error paths                                                               */

/* Datagram send errors on an unbound socket, once it is writable. */
static int dgram_errors(stale_task *t, asyncio_context *cx)
{
    asyncio_sockaddr ip;
    size_t n;
    assert_ok(asyncio_addr_from_ip("127.0.0.1", 80, &ip));
    if (t->d.fd < 0)
        assert_ok(asyncio_unix_datagram_unbound(&t->d));
    /* The first result may wait for the socket's first writability event. */
    int rc = asyncio_unix_datagram_poll_send_to(&t->d, cx, "x", 1, &t->addr, &n);
    if (rc == ASYNCIO_PENDING)
        return rc;
    assert_err(rc, ASYNCIO_ENOENT); /* nobody bound there */
    assert_err(asyncio_unix_datagram_poll_send_to(&t->d, cx, "x", 1, &ip, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_datagram_poll_send(&t->d, cx, "x", 1, &n), ASYNCIO_ENOTCONN);
    assert_err(asyncio_unix_datagram_connect(&t->d, &t->addr), ASYNCIO_ENOENT);
    assert_ok(asyncio_unix_datagram_close(&t->d));
    return 0;
}

static int errors_poll(void *state, asyncio_context *cx, void *out)
{
    stale_task *t = state;
    (void)out;
    if (t->step == 1)
        return dgram_errors(t, cx);
    asyncio_sockaddr a, ip;
    char longp[300];
    memset(longp, 'p', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    /* Bad path lengths: too long -> ENAMETOOLONG, empty -> EINVAL (asyncio_addr_unix). */
    assert_err(asyncio_addr_unix(longp, &a), ASYNCIO_ENAMETOOLONG);
    longp[sizeof a.u.un.sun_path] = '\0'; /* exactly sun_path bytes: no room for the NUL */
    assert_err(asyncio_addr_unix(longp, &a), ASYNCIO_ENAMETOOLONG);
    longp[sizeof a.u.un.sun_path - 1] = '\0'; /* the longest that fits */
    assert_ok(asyncio_addr_unix(longp, &a));
    assert_err(asyncio_addr_unix("", &a), ASYNCIO_EINVAL);
    /* Addresses that are not usable Unix addresses: EINVAL, nothing created. */
    asyncio_unix_listener *l = NULL;
    asyncio_unix_datagram d = CLOSED;
    asyncio_unix_stream s = CLOSED;
    assert_ok(asyncio_addr_from_ip("127.0.0.1", 80, &ip));
    assert_err(asyncio_unix_listener_bind(&l, &ip, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_listener_bind(&l, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_listener_bind(NULL, &t->addr, NULL), ASYNCIO_EINVAL);
    asyncio_sockaddr bad = t->addr;
    bad.len = 0;
    assert_err(asyncio_unix_listener_bind(&l, &bad, NULL), ASYNCIO_EINVAL);
    bad.len = sizeof bad.u.un + 1;
    assert_err(asyncio_unix_datagram_bind(&d, &bad, NULL), ASYNCIO_EINVAL);
    bad.len = sizeof(sa_family_t); /* unnamed: no name to listen on */
    assert_err(asyncio_unix_listener_bind(&l, &bad, NULL), ASYNCIO_EINVAL);
    asyncio_unix_bind_options neg = {.backlog = -1};
    assert_err(asyncio_unix_listener_bind(&l, &t->addr, &neg), ASYNCIO_EINVAL);
    assert_null(l);
    assert_false(path_exists(&t->addr));
    /* A missing directory, and nobody at the path. */
    asyncio_sockaddr missing = path_addr("no/such/dir.sock");
    assert_err(asyncio_unix_listener_bind(&l, &missing, NULL), ASYNCIO_ENOENT);
    asyncio_unix_connect_init(&t->conn, &t->addr);
    assert_err(asyncio_unix_connect_poll(&t->conn, cx, NULL), ASYNCIO_ENOENT);
    asyncio_unix_connect_drop(&t->conn);
    asyncio_unix_connect_init(&t->conn, &ip);
    assert_err(asyncio_unix_connect_poll(&t->conn, cx, NULL), ASYNCIO_EINVAL);
    asyncio_unix_connect_drop(&t->conn);
    assert_err(asyncio_unix_connect_poll(&t->conn, cx, NULL), ASYNCIO_ECANCELED);
    assert_err(asyncio_unix_connect_take(&t->conn, &s), ASYNCIO_EINVAL);
    /* Closed objects. */
    size_t n;
    char buf[4];
    asyncio_unix_cred c;
    assert_err(asyncio_unix_stream_poll_read(&s, cx, buf, sizeof buf, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_poll_write(&s, cx, "x", 1, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_poll_shutdown(&s, cx), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_poll_flush(&s, cx), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_peer_cred(&s, &c), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_datagram_poll_send(&d, cx, "x", 1, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_datagram_poll_recv(&d, cx, buf, 4, &n, NULL), ASYNCIO_EINVAL);
    assert_ok(asyncio_unix_stream_close(&s));
    assert_ok(asyncio_unix_datagram_close(&d));
    assert_ok(asyncio_unix_listener_close(NULL));
    assert_int_equal(asyncio_unix_listener_fd(NULL), -1);
    /* Autobind: an unnamed address gives a datagram socket a fresh abstract name. */
    assert_ok(asyncio_unix_datagram_bind(&d, &bad, NULL));
    asyncio_sockaddr got;
    assert_ok(asyncio_unix_datagram_local_addr(&d, &got));
    assert_true(got.len > sizeof(sa_family_t));
    assert_int_equal(got.u.un.sun_path[0], '\0');
    assert_ok(asyncio_unix_datagram_close(&d));
    /* Wrong argument shapes on a live stream. */
    asyncio_unix_stream p = CLOSED, q = CLOSED;
    assert_ok(asyncio_unix_stream_pair(&p, &q));
    assert_err(asyncio_unix_stream_poll_read(&p, cx, NULL, 4, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_poll_write_vectored(&p, cx, NULL, 1, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_poll_write_vectored(&p, cx, NULL, -1, &n), ASYNCIO_EINVAL);
    assert_ok(asyncio_unix_stream_poll_write_vectored(&p, cx, NULL, 0, &n));
    assert_int_equal(n, 0);
    assert_ok(asyncio_unix_stream_close(&p));
    assert_ok(asyncio_unix_stream_close(&q));
    t->step = 1;
    return dgram_errors(t, cx);
}

static const asyncio_task_vtable errors_vt = {errors_poll, stale_drop, NULL, sizeof(stale_task), 0};

static void test_unix_error_paths(void **state)
{
    (void)state;
    make_dir();
    asyncio_runtime *rt = new_runtime();
    stale_task t = {.d = CLOSED, .addr = path_addr("err.sock")};
    asyncio_unix_connect_init(&t.conn, &t.addr);
    assert_ok(asyncio_runtime_block_on(rt, &errors_vt, &t, NULL));
    free_runtime(rt);
    remove_dir();
}

/* ------------------------------------------------------------------------ */
/* EMFILE on accept: back off on a timer, never spin, recover                */

#define MAX_FILLERS 512

typedef struct acceptor {
    asyncio_unix_listener *l; /* borrowed from the main task */
    _Atomic int *polls;       /* atomic: the main task reads it, maybe on another worker */
    asyncio_unix_stream s;
} acceptor;

static int acceptor_poll(void *state, asyncio_context *cx, void *out)
{
    acceptor *t = state;
    (void)out;
    atomic_fetch_add(t->polls, 1);
    AWAIT(asyncio_unix_listener_poll_accept(t->l, cx, &t->s, NULL));
    return asyncio_unix_stream_close(&t->s);
}

static const asyncio_task_vtable acceptor_vt = {acceptor_poll, NULL, NULL, sizeof(acceptor), 0};

typedef struct emfile_task {
    int step;
    asyncio_unix_listener *l;
    asyncio_unix_connect conn;
    asyncio_unix_stream client;
    asyncio_join_handle *acc;
    asyncio_sleep sleep;
    struct rlimit saved;
    int fillers[MAX_FILLERS];
    int nfillers;
    _Atomic int polls;
    int polls_during;
} emfile_task;

/* Lowers RLIMIT_NOFILE just above the open fds and fills the table. */
static void emfile_fill(emfile_task *t)
{
    assert_sys(getrlimit(RLIMIT_NOFILE, &t->saved));
    struct rlimit low = t->saved;
    low.rlim_cur = (rlim_t)support_open_fds() + 64;
    if (low.rlim_cur > t->saved.rlim_cur)
        low.rlim_cur = t->saved.rlim_cur;
    assert_sys(setrlimit(RLIMIT_NOFILE, &low));
    /* Kept full: a number another thread held for a moment is taken too (test_tcp.c's emfile_fill). */
    for (int settled = 0; settled < 3;) {
        int fd = dup(0);
        if (fd < 0) {
            assert_int_equal(errno, EMFILE);
            settled++;
            usleep(2000);
            continue;
        }
        settled = 0;
        assert_true(t->nfillers < MAX_FILLERS);
        t->fillers[t->nfillers++] = fd;
    }
}

static void emfile_release(emfile_task *t)
{
    while (t->nfillers > 0)
        close(t->fillers[--t->nfillers]);
    if (t->saved.rlim_cur != 0) {
        assert_sys(setrlimit(RLIMIT_NOFILE, &t->saved));
        t->saved.rlim_cur = 0;
    }
}

static int emfile_poll(void *state, asyncio_context *cx, void *out)
{
    emfile_task *t = state;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr a = abstract_addr("emfile");
        asyncio_unix_bind_options o = {.accept_backoff_ms = 100};
        assert_ok(asyncio_unix_listener_bind(&t->l, &a, &o));
        asyncio_unix_connect_init(&t->conn, &a);
        assert_ok(asyncio_unix_connect_poll(&t->conn, cx, &t->client)); /* queued at once */
        emfile_fill(t);
        acceptor acc = {.l = t->l, .polls = &t->polls, .s = CLOSED};
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &acceptor_vt, &acc, &t->acc));
        asyncio_sleep_init(&t->sleep, 1000);
        t->step = 1;
    }
    /* fallthrough */
    case 1: /* one second (paused clock) with a full fd table */
        AWAIT(asyncio_sleep_poll(&t->sleep, cx));
        t->polls_during = atomic_load(&t->polls);
        assert_false(asyncio_join_handle_is_finished(t->acc)); /* not accepted yet */
        emfile_release(t);
        t->step = 2;
        /* fallthrough */
    case 2: /* fds are free: the next retry accepts */
        AWAIT(asyncio_join_handle_poll(t->acc, cx, NULL));
        memcpy(out, &t->polls_during, sizeof t->polls_during);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void emfile_drop(void *state)
{
    emfile_task *t = state;
    emfile_release(t);
    asyncio_join_handle_drop(t->acc);
    asyncio_sleep_drop(&t->sleep);
    asyncio_unix_connect_drop(&t->conn);
    asyncio_unix_stream_close(&t->client);
    asyncio_unix_listener_close(t->l);
}

static const asyncio_task_vtable emfile_vt = {emfile_poll, emfile_drop, NULL, sizeof(emfile_task),
                                              sizeof(int)};

static void test_unix_accept_emfile_backs_off_and_recovers(void **state)
{
    (void)state;
    asyncio_runtime_options ro = {.start_paused = true}; /* back-off timers on the paused clock */
    asyncio_runtime *rt;
    rt = support_runtime_new(&ro);
    emfile_task t = {.client = CLOSED};
    asyncio_unix_connect_init(&t.conn, NULL);
    asyncio_sleep_init(&t.sleep, 0);
    int polls = -1;
    assert_ok(asyncio_runtime_block_on(rt, &emfile_vt, &t, &polls));
    free_runtime(rt);
    /* 1000 ms of 100 ms back-offs: about 10 accept attempts, not a spin. */
    print_message("EMFILE: %d acceptor polls in 1 s (paused clock)\n", polls);
    assert_true(polls >= 5 && polls <= 20);
}

/* Outside a runtime: EINVAL, and no socket file is created. */
static void test_unix_bind_outside_runtime_creates_nothing(void **state)
{
    (void)state;
    make_dir();
    asyncio_sockaddr a = path_addr("outside.sock");
    asyncio_unix_listener *l = NULL;
    asyncio_unix_datagram d = CLOSED;
    asyncio_unix_stream x = CLOSED, y = CLOSED;
    assert_err(asyncio_unix_listener_bind(&l, &a, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_datagram_bind(&d, &a, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_unix_stream_pair(&x, &y), ASYNCIO_EINVAL);
    assert_false(path_exists(&a));
    assert_int_equal(x.fd, -1);
    remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_unix_stream_echo),
        support_test(test_unix_stream_half_close),
        support_test(test_unix_abstract_name_bind_connect),
        support_test(test_unix_peer_cred_matches_self),
        support_test(test_unix_pair_read_pending_until_written_no_sigpipe),
        support_test(test_unix_write_after_eof_from_a_closed_peer_fails_at_once_with_epipe),
        support_test(test_unix_stream_copy_takes_splice_path),
        support_test(test_unix_datagram_bound_and_unbound),
        support_test(test_unix_datagram_abstract_names),
        support_test(test_unix_datagram_pair_keeps_boundaries),
        support_test(test_unix_stale_socket_file_eaddrinuse),
        support_test(test_unix_error_paths),
        support_test(test_unix_accept_emfile_backs_off_and_recovers),
        support_test(test_unix_bind_outside_runtime_creates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

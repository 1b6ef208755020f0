/*
 * Files and path operations on the io_uring completion path (src/fs/file.c,
 * ops.c over reactor/comp.c): which operations take the ring (the driver's
 * submitted-requests counter, never timing), the per-operation fallback to
 * the blocking pool (ASYNCIO_URING_NO_OPS, read when the runtime is
 * created), reads in flight when their file closes or the runtime shuts
 * down (cancelled and reaped: the counting allocator and the fd check of
 * the fixtures see nothing left), and many reads in flight at once on the
 * multi-thread runtime (TSan). Runs on uring (path on, or off where the
 * kernel refuses it) and epoll (path off): each test asserts what its
 * backend gives. The fs suite itself runs unchanged on uring too.
 */
#include "support.h"
#include "tmpdir.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio/fs.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "reactor/comp.h"
#include "reactor/driver.h"

/* The completion driver of the runtime running this task. */
static asyncio__comp_driver *comp_here(void)
{
    asyncio__driver *d = asyncio__driver_current();
    assert_non_null(d);
    return &d->comp;
}

static uint64_t submitted(void)
{
    return atomic_load(&comp_here()->submitted);
}

/* ---- a scripted sequence of file operations, as one future ------------------- */

enum { S_OPEN_W, S_WRITE, S_FLUSH, S_SYNC, S_STAT, S_OPEN_R, S_READ, S_DONE };

typedef struct script {
    const char *path;
    int step;
    asyncio_fs_op op;
    asyncio_file *w, *r;
    asyncio_fs_metadata md;
    char got[32];
    size_t n_got;
    bool op_live, sampled;
    uint64_t before, after;
    bool ring_read, ring_write; /* what the driver said, sampled inside the task */
} script;

static int open_step(script *s, asyncio_context *cx, uint32_t flags, asyncio_file **out)
{
    if (!s->op_live) {
        asyncio_open_options o = {.flags = flags};
        assert_ok(asyncio_fs_open_init(&s->op, s->path, &o));
        s->op_live = true;
    }
    int rc = asyncio_fs_op_poll(&s->op, cx);
    if (rc == 0)
        rc = asyncio_fs_op_take_file(&s->op, out);
    if (rc != ASYNCIO_PENDING) {
        asyncio_fs_op_drop(&s->op);
        s->op_live = false;
    }
    return rc;
}

static int script_step(script *s, asyncio_context *cx)
{
    size_t n;
    switch (s->step) {
    case S_OPEN_W:
        return open_step(s, cx, ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE, &s->w);
    case S_WRITE: {
        int rc = asyncio_file_poll_write(s->w, cx, "hello", 5, &n);
        assert_true(rc != 0 || n == 5);
        return rc;
    }
    case S_FLUSH:
        return asyncio_file_poll_flush(s->w, cx);
    case S_SYNC:
        return asyncio_file_poll_sync(s->w, cx, false);
    case S_STAT:
        return asyncio_file_poll_metadata(s->w, cx, &s->md);
    case S_OPEN_R:
        return open_step(s, cx, ASYNCIO_OPEN_READ, &s->r);
    default: { /* S_READ: to the end */
        int rc = asyncio_file_poll_read(s->r, cx, s->got + s->n_got, sizeof s->got - s->n_got, &n);
        if (rc != 0)
            return rc;
        s->n_got += n;
        return n == 0 ? 0 : ASYNCIO_PENDING - 100; /* not the end yet: read again */
    }
    }
}

static int script_poll(void *p, asyncio_context *cx)
{
    script *s = p;
    if (!s->sampled) {
        s->sampled = true;
        s->before = submitted();
        s->ring_read = asyncio__comp_has(comp_here(), ASYNCIO__COP_READ);
        s->ring_write = asyncio__comp_has(comp_here(), ASYNCIO__COP_WRITE);
    }
    while (s->step < S_DONE) {
        int rc = script_step(s, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == ASYNCIO_PENDING - 100)
            continue; /* another read */
        if (rc < 0)
            return rc;
        s->step++;
    }
    s->after = submitted();
    return 0;
}

static void run_script(script *s)
{
    asyncio_runtime *rt = support_runtime_new(NULL);
    assert_ok(support_run_future(rt, script_poll, s));
    assert_ok(asyncio_file_close(s->w));
    assert_ok(asyncio_file_close(s->r));
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(s->n_got, 5);
    assert_memory_equal(s->got, "hello", 5);
    assert_int_equal(s->md.size, 5);
    assert_int_equal(s->md.type, ASYNCIO_FILE_TYPE_FILE);
}

/* Whether this run expects the ring for files: uring backend, path on, no switch. */
static bool ring_expected(const script *s)
{
    return s->ring_read;
}

static void test_fs_uring_file_operations_take_the_ring_when_the_backend_has_it(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256];
    script s = {.path = path_in(p, "f")};
    run_script(&s);
    /*
     * On the ring: open, write, sync, stat, open, read (5 bytes), read (EOF)
     * = 7 requests, exactly. Elsewhere (epoll; uring with the path off): none.
     */
    const char *backend = getenv("ASYNCIO_BACKEND");
    bool uring = backend != NULL && strcmp(backend, "uring") == 0;
    /* ctest's uring-fallback entries: io_uring refused, the runtime fell back to epoll. */
    const char *expect = getenv("ASYNCIO_TEST_EXPECT_BACKEND");
    if (expect != NULL && strcmp(expect, "uring") != 0)
        uring = false;
    if (!uring)
        assert_false(ring_expected(&s));
    assert_int_equal(s.after - s.before, ring_expected(&s) ? 7 : 0);
    support_tmpdir_remove();
}

static void test_fs_uring_an_operation_the_kernel_lacks_falls_back_to_the_pool_alone(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256];
    /* As if the probe lacked READ and STATX: read and metadata run on the pool. */
    const char *old = getenv("ASYNCIO_URING_NO_OPS");
    char *saved = old != NULL ? strdup(old) : NULL;
    setenv("ASYNCIO_URING_NO_OPS", "read,statx", 1);
    script s = {.path = path_in(p, "g")};
    run_script(&s);
    if (saved != NULL)
        setenv("ASYNCIO_URING_NO_OPS", saved, 1);
    else
        unsetenv("ASYNCIO_URING_NO_OPS");
    free(saved);
    assert_false(s.ring_read);
    /* Where writes run on the ring: open, write, sync, open = 4; the read and stat took the pool.
     */
    assert_int_equal(s.after - s.before, s.ring_write ? 4 : 0);
    support_tmpdir_remove();
}

/* ---- reads in flight on a FIFO (a read that does not finish by itself) -------- */

#define FIFOS 4

typedef struct fifo_task {
    asyncio_file *f[FIFOS];
    unsigned char buf[FIFOS][64];
    bool close_them; /* close each file while its read is in flight */
    bool ring;
} fifo_task;

static int fifo_poll(void *p, asyncio_context *cx)
{
    fifo_task *t = p;
    t->ring = asyncio__comp_has(comp_here(), ASYNCIO__COP_READ);
    if (!t->ring)
        return 0; /* a pool read of an empty FIFO never returns: nothing to test here */
    for (int i = 0; i < FIFOS; i++) {
        size_t n;
        memset(t->buf[i], 0xAB, sizeof t->buf[i]);
        assert_int_equal(asyncio_file_poll_read(t->f[i], cx, t->buf[i], sizeof t->buf[i], &n),
                         ASYNCIO_PENDING);
        if (t->close_them) {
            assert_ok(asyncio_file_close(t->f[i])); /* cancels the read */
            t->f[i] = NULL;
        }
    }
    return 0;
}

/* Opens FIFOS FIFOs read-write (so the open does not wait for a writer). */
static void open_fifos(asyncio_runtime *rt, fifo_task *t)
{
    for (int i = 0; i < FIFOS; i++) {
        char p[256], name[16];
        snprintf(name, sizeof name, "fifo%d", i);
        assert_int_equal(mkfifo(path_in(p, name), 0600), 0);
        asyncio_fs_op op;
        asyncio_open_options o = {.flags = ASYNCIO_OPEN_READ | ASYNCIO_OPEN_WRITE};
        assert_ok(asyncio_fs_open_init(&op, p, &o));
        assert_ok(support_run_future(rt, asyncio_fs_op_poll_fn, &op));
        assert_ok(asyncio_fs_op_take_file(&op, &t->f[i]));
        asyncio_fs_op_drop(&op);
    }
}

/* Turns the runtime once more (a no-op future after a yield's worth of work). */
static int idle_poll(void *p, asyncio_context *cx)
{
    int *turns = p;
    if ((*turns)++ < 3) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static void
test_fs_uring_a_file_closed_with_a_read_in_flight_cancels_it_and_leaks_nothing(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    asyncio_runtime *rt = support_runtime_new(NULL);
    fifo_task t = {.close_them = true};
    open_fifos(rt, &t);
    assert_ok(support_run_future(rt, fifo_poll, &t));
    if (!t.ring) {
        for (int i = 0; i < FIFOS; i++)
            assert_ok(asyncio_file_close(t.f[i]));
        assert_ok(asyncio_runtime_free(rt));
        support_tmpdir_remove();
        skip(); /* the completion path is off here */
    }
    int turns = 0;
    assert_ok(support_run_future(rt, idle_poll, &turns));
    /* The caller's buffers were never the kernel's: untouched. */
    for (int i = 0; i < FIFOS; i++)
        for (size_t j = 0; j < sizeof t.buf[i]; j++)
            assert_int_equal(t.buf[i][j], 0xAB);
    /* Freeing reaps the cancels; the fixture counts blocks and fds left. */
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

static void test_fs_uring_runtime_shutdown_with_reads_in_flight_reaps_them(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    asyncio_runtime *rt = support_runtime_new(NULL);
    fifo_task t = {.close_them = false};
    open_fifos(rt, &t);
    assert_ok(support_run_future(rt, fifo_poll, &t));
    /* Shutdown cancels the reads; their completions reach the files, whose owner still holds them.
     */
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_free(rt));
    for (int i = 0; i < FIFOS; i++) {
        for (size_t j = 0; t.ring && j < sizeof t.buf[i]; j++)
            assert_int_equal(t.buf[i][j], 0xAB);
        assert_ok(asyncio_file_close(t.f[i])); /* the result nobody took is dropped */
    }
    support_tmpdir_remove();
    if (!t.ring)
        skip();
}

/*
 * An open of a FIFO for writing waits for a reader (with CREATE the ring
 * runs it on a kernel worker, where it blocks): dropped while in flight, it
 * is cancelled (the worker's open is interrupted) and reaped.
 */
typedef struct open_drop {
    asyncio_fs_op op;
    bool ring;
} open_drop;

static int open_drop_poll(void *p, asyncio_context *cx)
{
    open_drop *t = p;
    t->ring = asyncio__comp_has(comp_here(), ASYNCIO__COP_OPENAT);
    if (!t->ring)
        return 0;
    assert_int_equal(asyncio_fs_op_poll(&t->op, cx), ASYNCIO_PENDING);
    asyncio_fs_op_drop(&t->op);
    return 0;
}

static void test_fs_uring_an_open_dropped_in_flight_is_cancelled(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256];
    assert_int_equal(mkfifo(path_in(p, "wait"), 0600), 0);
    asyncio_runtime *rt = support_runtime_new(NULL);
    open_drop t;
    asyncio_open_options o = {.flags = ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE};
    assert_ok(asyncio_fs_open_init(&t.op, p, &o));
    assert_ok(support_run_future(rt, open_drop_poll, &t));
    if (!t.ring)
        asyncio_fs_op_drop(&t.op);
    assert_ok(asyncio_runtime_free(rt)); /* reaps the cancelled open: no fd, no block left */
    support_tmpdir_remove();
    if (!t.ring)
        skip();
}

/*
 * A read polled once and then abandoned (its future dropped: the caller
 * stops polling and reuses its buffer) finishes into the file's buffer:
 * the caller's memory is never written, and the bytes are not lost — the
 * next read returns them.
 */
typedef struct dropped_read {
    asyncio_file *f;
    int writer, step;
    unsigned char first[64], second[64];
    size_t n;
} dropped_read;

static int dropped_read_poll(void *p, asyncio_context *cx)
{
    dropped_read *t = p;
    if (t->step == 0) {
        assert_int_equal(asyncio_file_poll_read(t->f, cx, t->first, sizeof t->first, &t->n),
                         ASYNCIO_PENDING);
        memset(t->first, 0xCD, sizeof t->first); /* the caller reuses its buffer */
        assert_int_equal(write(t->writer, "hello", 5), 5);
        t->step = 1;
    }
    int rc = asyncio_file_poll_read(t->f, cx, t->second, sizeof t->second, &t->n);
    return rc;
}

static void test_fs_uring_a_read_abandoned_in_flight_never_writes_the_callers_buffer(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    asyncio_runtime *rt = support_runtime_new(NULL);
    fifo_task ft = {0};
    open_fifos(rt, &ft); /* read-write, so a writer can open without blocking */
    char p[256];
    dropped_read t = {.f = ft.f[0], .writer = open(path_in(p, "fifo0"), O_WRONLY | O_CLOEXEC)};
    assert_true(t.writer >= 0);
    assert_ok(support_run_future(rt, dropped_read_poll, &t));
    assert_int_equal(t.n, 5);
    assert_memory_equal(t.second, "hello", 5);
    for (size_t j = 0; j < sizeof t.first; j++)
        assert_int_equal(t.first[j], 0xCD);
    close(t.writer);
    for (int i = 0; i < FIFOS; i++)
        assert_ok(asyncio_file_close(ft.f[i]));
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* An open of a FIFO for reading waits for a writer, as open(2) does (on the pool and the ring). */
typedef struct fifo_open {
    const char *path;
    int step, writer;
    asyncio_fs_op op;
    asyncio_sleep sleep;
    asyncio_file *f;
} fifo_open;

static int fifo_open_poll(void *p, asyncio_context *cx)
{
    fifo_open *t = p;
    int rc;
    switch (t->step) {
    case 0: /* the open starts, and must not finish while there is no writer */
        assert_int_equal(asyncio_fs_op_poll(&t->op, cx), ASYNCIO_PENDING);
        asyncio_sleep_init(&t->sleep, 50);
        t->step = 1;
        /* fall through */
    case 1:
        if ((rc = asyncio_sleep_poll(&t->sleep, cx)) != 0)
            return rc;
        asyncio_sleep_drop(&t->sleep);
        assert_int_equal(asyncio_fs_op_poll(&t->op, cx), ASYNCIO_PENDING);
        /* A writer comes (non-blocking: a reader is waiting in open, so it succeeds). */
        t->writer = open(t->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        assert_true(t->writer >= 0);
        t->step = 2;
        /* fall through */
    default:
        if ((rc = asyncio_fs_op_poll(&t->op, cx)) != 0)
            return rc;
        return asyncio_fs_op_take_file(&t->op, &t->f);
    }
}

static void test_fs_uring_opening_a_fifo_for_reading_waits_for_a_writer_as_open_does(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256];
    assert_int_equal(mkfifo(path_in(p, "rd"), 0600), 0);
    asyncio_runtime *rt = support_runtime_new(NULL);
    fifo_open t = {.path = p, .writer = -1};
    asyncio_open_options o = {.flags = ASYNCIO_OPEN_READ};
    assert_ok(asyncio_fs_open_init(&t.op, p, &o));
    assert_ok(support_run_future(rt, fifo_open_poll, &t));
    asyncio_fs_op_drop(&t.op);
    assert_ok(asyncio_file_close(t.f));
    close(t.writer);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* ---- many reads in flight at once (the benchmark's shape, checked for content) ---- */

#define READERS    32
#define FILE_BYTES (256 * 1024)

typedef struct readers {
    asyncio_file *f[READERS];
    size_t got[READERS];
    uint64_t sum[READERS];
    bool done[READERS];
} readers;

static unsigned char pat(size_t i)
{
    return (unsigned char)(i * 7u + (i >> 12));
}

static int readers_poll(void *p, asyncio_context *cx)
{
    readers *r = p;
    unsigned char buf[4096];
    int pending = 0;
    for (int i = 0; i < READERS; i++) {
        while (!r->done[i]) {
            size_t n;
            int rc = asyncio_file_poll_read(r->f[i], cx, buf, sizeof buf, &n);
            if (rc == ASYNCIO_PENDING) {
                pending++;
                break;
            }
            assert_ok(rc);
            for (size_t k = 0; k < n; k++)
                assert_int_equal(buf[k], pat(r->got[i] + k));
            r->got[i] += n;
            r->done[i] = n == 0;
        }
    }
    return pending > 0 ? ASYNCIO_PENDING : 0;
}

static void test_fs_uring_many_reads_in_flight_each_get_their_own_bytes(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256];
    FILE *fp = fopen(path_in(p, "big"), "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < FILE_BYTES; i++)
        fputc(pat(i), fp);
    fclose(fp);
    asyncio_runtime *rt = support_runtime_new(NULL);
    readers r = {0};
    for (int i = 0; i < READERS; i++) {
        asyncio_fs_op op;
        asyncio_open_options o = {.flags = ASYNCIO_OPEN_READ};
        assert_ok(asyncio_fs_open_init(&op, p, &o));
        assert_ok(support_run_future(rt, asyncio_fs_op_poll_fn, &op));
        assert_ok(asyncio_fs_op_take_file(&op, &r.f[i]));
        asyncio_fs_op_drop(&op);
    }
    assert_ok(support_run_future(rt, readers_poll, &r));
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(r.got[i], FILE_BYTES);
        assert_ok(asyncio_file_close(r.f[i]));
    }
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* ---- whole-file jobs (read_file, write_file, append_file, create_dir_all) ---- */

/* One fs op awaited in a task, with the ring requests it submitted counted. */
typedef struct counted_op {
    asyncio_fs_op *op;
    bool sampled, ring;
    uint64_t before, after;
    int rc; /* the op's result */
} counted_op;

static int counted_poll(void *p, asyncio_context *cx)
{
    counted_op *c = p;
    if (!c->sampled) {
        c->sampled = true;
        c->before = submitted();
        c->ring = asyncio__comp_has(comp_here(), ASYNCIO__COP_OPENAT) &&
                  asyncio__comp_has(comp_here(), ASYNCIO__COP_READ) &&
                  asyncio__comp_has(comp_here(), ASYNCIO__COP_WRITE) &&
                  asyncio__comp_has(comp_here(), ASYNCIO__COP_STATX);
    }
    int rc = asyncio_fs_op_poll(c->op, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    c->after = submitted();
    c->rc = rc;
    return 0;
}

/* Runs op to its end on rt: its result; *reqs = ring requests it submitted, *ring = expected. */
static int run_counted(asyncio_runtime *rt, asyncio_fs_op *op, uint64_t *reqs, bool *ring)
{
    counted_op c = {.op = op};
    assert_ok(support_run_future(rt, counted_poll, &c));
    *reqs = c.after - c.before;
    *ring = c.ring;
    return c.rc;
}

static void test_fs_uring_whole_file_jobs_run_as_chains_of_ring_requests(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256], d[256];
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_fs_op op;
    uint64_t reqs;
    bool ring;
    /* write_file: open, write, close. */
    assert_ok(asyncio_fs_write_file_init(&op, path_in(p, "w"), "hello", 5));
    assert_ok(run_counted(rt, &op, &reqs, &ring));
    asyncio_fs_op_drop(&op);
    assert_int_equal(reqs, ring ? 3 : 0);
    /* append_file: the same three. */
    assert_ok(asyncio_fs_append_file_init(&op, p, " world", 6));
    assert_ok(run_counted(rt, &op, &reqs, &ring));
    asyncio_fs_op_drop(&op);
    assert_int_equal(reqs, ring ? 3 : 0);
    /* read_file: open, statx, read (11 bytes into a 12-byte buffer), read (EOF), close. */
    assert_ok(asyncio_fs_read_file_init(&op, p, 1024));
    assert_ok(run_counted(rt, &op, &reqs, &ring));
    void *data;
    size_t len;
    assert_ok(asyncio_fs_op_take_data(&op, &data, &len));
    asyncio_fs_op_drop(&op);
    assert_int_equal(len, 11);
    assert_memory_equal(data, "hello world", 11);
    asyncio_fs_free_data(data);
    assert_int_equal(reqs, ring ? 5 : 0);
    /*
     * create_dir_all: one mkdirat per component; the two that exist already
     * (/tmp and the test's directory) answer EEXIST and take a statx each.
     */
    assert_ok(asyncio_fs_create_dir_all_init(&op, path_in(d, "a/b/c"), 0));
    assert_ok(run_counted(rt, &op, &reqs, &ring));
    asyncio_fs_op_drop(&op);
    size_t components = 0;
    for (const char *q = d; *q != '\0'; q++)
        components += *q == '/';
    assert_int_equal(reqs, ring ? components + 2 : 0);
    struct stat st;
    assert_int_equal(stat(d, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* ---- the same inputs on the ring and on the pool ------------------------------ */

#define BIG_BYTES (300 * 1024) /* several doublings of the read buffer from 4 KiB */

enum case_kind { C_READ, C_WRITE, C_APPEND, C_MKDIR };

typedef struct fs_case {
    enum case_kind kind;
    const char *name; /* in the temporary directory, or an absolute path */
    size_t limit;     /* C_READ */
    size_t wlen;      /* C_WRITE, C_APPEND: bytes of the pattern */
    bool root_skips;  /* permission checks do not apply to root */
} fs_case;

static const fs_case k_cases[] = {
    {C_READ, "missing", 1024, 0, false},
    {C_READ, "small", 1024, 0, false},
    {C_READ, "small", 11, 0, false}, /* exactly the size */
    {C_READ, "small", 10, 0, false}, /* one byte short: EFBIG */
    {C_READ, "empty", 1024, 0, false},
    {C_READ, "big", SIZE_MAX, 0, false},
    {C_READ, "big", BIG_BYTES - 1, 0, false},
    {C_READ, "dir", 1024, 0, false},
    {C_READ, "noperm", 1024, 0, true},
    {C_READ, "small/x", 1024, 0, false},               /* a file as a directory: ENOTDIR */
    {C_READ, "/proc/self/status", 16, 0, false},       /* reports size 0, has more: EFBIG */
    {C_READ, "/proc/self/cmdline", 1 << 20, 0, false}, /* size 0, grows the buffer */
    {C_WRITE, "new", 0, 5, false},
    {C_WRITE, "small", 0, 0, false}, /* truncates to nothing */
    {C_WRITE, "bigw", 0, BIG_BYTES, false},
    {C_WRITE, "nodir/f", 0, 5, false},
    {C_WRITE, "dir", 0, 5, false},
    {C_WRITE, "/dev/full", 0, 5, false}, /* the write fails: ENOSPC */
    {C_WRITE, "noperm", 0, 5, true},
    {C_APPEND, "app", 0, 7, false},
    {C_APPEND, "app", 0, 7, false}, /* appends after the first */
    {C_MKDIR, "m/n/o", 0, 0, false},
    {C_MKDIR, "m/n/o", 0, 0, false}, /* exists: fine */
    {C_MKDIR, "small/sub", 0, 0, false},
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

typedef struct case_result {
    int rc;
    size_t len;
    uint64_t sum; /* of the bytes read, or of the file after a write */
} case_result;

static uint64_t checksum(const unsigned char *b, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211u;
    return h;
}

/* The file after a write, read back with plain calls: length and checksum. */
static void file_sum(const char *path, case_result *r)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return;
    unsigned char buf[4096];
    size_t n;
    uint64_t h = 0;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        h = h * 31u + checksum(buf, n);
        r->len += n;
    }
    fclose(fp);
    r->sum = h;
}

static void make_inputs(void)
{
    char p[256];
    FILE *fp = fopen(path_in(p, "small"), "wb");
    assert_non_null(fp);
    fputs("hello world", fp);
    fclose(fp);
    fp = fopen(path_in(p, "empty"), "wb");
    assert_non_null(fp);
    fclose(fp);
    fp = fopen(path_in(p, "big"), "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < BIG_BYTES; i++)
        fputc(pat(i), fp);
    fclose(fp);
    fp = fopen(path_in(p, "noperm"), "wb");
    assert_non_null(fp);
    fputs("secret", fp);
    fclose(fp);
    assert_int_equal(chmod(p, 0), 0);
    assert_int_equal(mkdir(path_in(p, "dir"), 0700), 0);
}

static void run_case(asyncio_runtime *rt, const fs_case *c, case_result *r)
{
    char p[256];
    const char *path = c->name[0] == '/' ? c->name : path_in(p, c->name);
    unsigned char *w = malloc(c->wlen + 1);
    assert_non_null(w);
    for (size_t i = 0; i < c->wlen; i++)
        w[i] = pat(i + c->wlen);
    asyncio_fs_op op;
    switch (c->kind) {
    case C_READ:
        assert_ok(asyncio_fs_read_file_init(&op, path, c->limit));
        break;
    case C_WRITE:
        assert_ok(asyncio_fs_write_file_init(&op, path, w, c->wlen));
        break;
    case C_APPEND:
        assert_ok(asyncio_fs_append_file_init(&op, path, w, c->wlen));
        break;
    default:
        assert_ok(asyncio_fs_create_dir_all_init(&op, path, 0));
        break;
    }
    free(w);
    memset(r, 0, sizeof *r);
    uint64_t reqs;
    bool ring;
    r->rc = run_counted(rt, &op, &reqs, &ring);
    void *data;
    if (c->kind == C_READ && r->rc == 0) {
        assert_ok(asyncio_fs_op_take_data(&op, &data, &r->len));
        /* /proc files differ from one read to the next: their length is enough. */
        r->sum = c->name[0] == '/' ? 0 : checksum(data, r->len);
        r->len = c->name[0] == '/' ? r->len > 0 : r->len;
        asyncio_fs_free_data(data);
    } else if ((c->kind == C_WRITE || c->kind == C_APPEND) && c->name[0] != '/') {
        file_sum(path, r);
    }
    asyncio_fs_op_drop(&op);
}

/* Runs every case in a fresh directory with ASYNCIO_URING_NO_OPS = no_ops (NULL: unset). */
static void run_cases(const char *no_ops, case_result *res, uint64_t *reqs)
{
    const char *old = getenv("ASYNCIO_URING_NO_OPS");
    char *saved = old != NULL ? strdup(old) : NULL;
    if (no_ops != NULL)
        setenv("ASYNCIO_URING_NO_OPS", no_ops, 1);
    support_tmpdir_make("asyncio_fsu_");
    make_inputs();
    asyncio_runtime *rt = support_runtime_new(NULL); /* reads the switch */
    if (saved != NULL)
        setenv("ASYNCIO_URING_NO_OPS", saved, 1);
    else
        unsetenv("ASYNCIO_URING_NO_OPS");
    free(saved);
    *reqs = 0;
    for (size_t i = 0; i < N_CASES; i++) {
        if (k_cases[i].root_skips && geteuid() == 0) {
            res[i] = (case_result){0};
            continue;
        }
        run_case(rt, &k_cases[i], &res[i]);
    }
    /* The ring's requests, read after the runtime has turned for every case. */
    asyncio_fs_op op;
    char p[256];
    assert_ok(asyncio_fs_read_file_init(&op, path_in(p, "small"), 1024));
    bool ring;
    uint64_t last;
    assert_ok(run_counted(rt, &op, &last, &ring));
    asyncio_fs_op_drop(&op);
    *reqs = ring ? last : 0;
    assert_ok(asyncio_runtime_free(rt));
    char mode_back[256];
    (void)chmod(path_in(mode_back, "noperm"), 0600);
    support_tmpdir_remove();
}

static void test_fs_uring_whole_file_jobs_give_the_pools_results_on_every_input(void **state)
{
    (void)state;
    static case_result here[N_CASES], pool[N_CASES];
    uint64_t reqs_here, reqs_pool;
    run_cases(NULL, here, &reqs_here);
    run_cases("all", pool, &reqs_pool);
    assert_int_equal(reqs_pool, 0); /* the pool did every job */
    for (size_t i = 0; i < N_CASES; i++) {
        print_message("case %zu (%s): here %d (%zu bytes), pool %d (%zu bytes)\n", i,
                      k_cases[i].name, here[i].rc, here[i].len, pool[i].rc, pool[i].len);
        assert_int_equal(here[i].rc, pool[i].rc);
        assert_int_equal(here[i].len, pool[i].len);
        assert_true(here[i].sum == pool[i].sum);
    }
    /* Spot checks that the inputs cover what they claim (on the pool, the reference). */
    assert_int_equal(pool[0].rc, ASYNCIO_ENOENT);
    assert_int_equal(pool[2].rc, 0);
    assert_int_equal(pool[3].rc, ASYNCIO_EFBIG);
    assert_int_equal(pool[5].len, BIG_BYTES);
    assert_int_equal(pool[6].rc, ASYNCIO_EFBIG);
    assert_int_equal(pool[7].rc, ASYNCIO_EISDIR);
    assert_int_equal(pool[8].rc, geteuid() == 0 ? 0 : ASYNCIO_EACCES);
    assert_int_equal(pool[10].rc, ASYNCIO_EFBIG);
    assert_int_equal(pool[11].len, 1);
    assert_int_equal(pool[17].rc, ASYNCIO_ENOSPC);
    assert_int_equal(pool[20].len, 14);
    assert_int_equal(pool[23].rc, ASYNCIO_ENOTDIR);
}

/* ---- a whole-file job dropped with a request in flight --------------------------- */

typedef struct drop_chain {
    asyncio_fs_op op;
    uint64_t before;
    unsigned wait_reqs; /* drop once this many requests were submitted (0: at once) */
    int turns;
    bool ring, started;
} drop_chain;

static int drop_chain_poll(void *p, asyncio_context *cx)
{
    drop_chain *t = p;
    if (!t->started) {
        t->ring = asyncio__comp_has(comp_here(), ASYNCIO__COP_READ) &&
                  asyncio__comp_has(comp_here(), ASYNCIO__COP_OPENAT) &&
                  asyncio__comp_has(comp_here(), ASYNCIO__COP_STATX);
        if (!t->ring)
            return 0; /* a pool read of an empty FIFO never returns: nothing to test here */
        t->before = submitted();
        t->started = true;
        assert_int_equal(asyncio_fs_op_poll(&t->op, cx), ASYNCIO_PENDING);
    }
    /* Turn the runtime until the chain reached its read (bounded), then let go. */
    if (submitted() - t->before < t->wait_reqs && ++t->turns < 1000000) {
        assert_int_equal(asyncio_fs_op_poll(&t->op, cx), ASYNCIO_PENDING);
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    assert_true(submitted() - t->before >= t->wait_reqs);
    asyncio_fs_op_drop(&t->op);
    return 0;
}

static void
test_fs_uring_a_whole_file_read_dropped_in_flight_closes_its_fd_and_leaks_nothing(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fsu_");
    char p[256];
    assert_int_equal(mkfifo(path_in(p, "never"), 0600), 0);
    /* A writer that never writes: the open succeeds, the read waits forever. */
    int writer = open(p, O_RDWR | O_CLOEXEC);
    assert_true(writer >= 0);
    bool ring = false;
    for (unsigned wait = 0; wait <= 3; wait += 3) { /* the open in flight; the read */
        asyncio_runtime *rt = support_runtime_new(NULL);
        drop_chain t = {.wait_reqs = wait};
        assert_ok(asyncio_fs_read_file_init(&t.op, p, 1024));
        assert_ok(support_run_future(rt, drop_chain_poll, &t));
        if (!t.ring)
            asyncio_fs_op_drop(&t.op);
        int turns = 0;
        assert_ok(support_run_future(rt, idle_poll, &turns));
        /* Freeing reaps the cancel and the close; the fixture counts blocks and fds. */
        assert_ok(asyncio_runtime_free(rt));
        ring = t.ring;
    }
    close(writer);
    support_tmpdir_remove();
    if (!ring)
        skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_fs_uring_file_operations_take_the_ring_when_the_backend_has_it),
        support_test(test_fs_uring_an_operation_the_kernel_lacks_falls_back_to_the_pool_alone),
        support_test(
            test_fs_uring_a_file_closed_with_a_read_in_flight_cancels_it_and_leaks_nothing),
        support_test(test_fs_uring_runtime_shutdown_with_reads_in_flight_reaps_them),
        support_test(test_fs_uring_an_open_dropped_in_flight_is_cancelled),
        support_test(test_fs_uring_a_read_abandoned_in_flight_never_writes_the_callers_buffer),
        support_test(test_fs_uring_opening_a_fifo_for_reading_waits_for_a_writer_as_open_does),
        support_test(test_fs_uring_many_reads_in_flight_each_get_their_own_bytes),
        support_test(test_fs_uring_whole_file_jobs_run_as_chains_of_ring_requests),
        support_test(test_fs_uring_whole_file_jobs_give_the_pools_results_on_every_input),
        support_test(
            test_fs_uring_a_whole_file_read_dropped_in_flight_closes_its_fd_and_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

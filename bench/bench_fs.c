/*
 * bench_fs: file I/O through libasyncio, two sections in one run.
 *
 * copy: a file copied to a TCP socket over loopback, two ways:
 *   sendfile   asyncio_copy(file reader, stream writer): the copy sees the
 *              file's raw fd and sends with sendfile(2) (zero copy)
 *   buffered   the same copy through an asyncio_buf_reader (64 KiB) over the
 *              file: reads through the file's jobs, bytes through user space
 * A plain thread drains the receiving socket.
 *
 * random: 4 KiB reads at random 4 KiB-aligned offsets of the file, with
 * --inflight (default 64) reads in flight at once (one asyncio_file each,
 * positioned with lseek on its fd while idle), --reads in all per rep, on a
 * current-thread runtime over the uring backend two ways:
 *   pool       ASYNCIO_URING_COMPLETION=0: every read is a blocking-pool job
 *   ring       the completion path: every read is an IORING_OP_READ
 * (where the kernel refuses io_uring both rows run on epoll's pool path:
 * the line says so). Reported in reads/s, and the ring/pool ratio per rep
 * pair (the target: >= 2).
 *
 * Reps alternate the rows (so drift in machine load hits both alike); each
 * row reports the median, min and max over its reps.
 *
 * Options: --size-mb N (size of the file, default 1024 = 1 GiB), --reps N
 * (default 5), --dir D (default /tmp), --only copy|random, --reads N
 * (default 200000), --inflight N (default 64), --row pool|ring (that row
 * alone, e.g. under strace -c), --quick (64 MiB, 1 rep, 20000 reads: a
 * smoke run). The file is created before the clock starts
 * and removed at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "asyncio/bufio.h"
#include "asyncio/fs.h"
#include "asyncio/io_util.h"
#include "asyncio/net.h"
#include "asyncio/runtime.h"

#define MAX_REPS 64

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_fs: %s: %s\n", what, rc < 0 ? asyncio_strerror(rc) : strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the file ----------------------------------------------------------------- */

static void make_file(const char *path, uint64_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("create file", 0);
    static unsigned char chunk[1 << 20];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (unsigned char)(i * 131u);
    for (uint64_t left = size; left > 0;) {
        size_t n = left < sizeof chunk ? (size_t)left : sizeof chunk;
        ssize_t w = write(fd, chunk, n);
        if (w <= 0)
            die("write file", 0);
        left -= (uint64_t)w;
    }
    close(fd);
}

/* ---- a loopback TCP pair and the draining thread -------------------------------- */

static void tcp_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        die("listener", 0);
    *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect", 0);
    *server = accept(l, NULL, NULL);
    if (*server < 0)
        die("accept", 0);
    close(l);
}

typedef struct drain {
    int fd;
    uint64_t bytes;
} drain;

static void *drain_main(void *arg)
{
    drain *d = arg;
    static unsigned char buf[1 << 18];
    for (;;) {
        ssize_t n = read(d->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        d->bytes += (uint64_t)n;
    }
    return NULL;
}

/* ---- the copy task ----------------------------------------------------------------- */

typedef struct copy_task {
    const char *path;
    int sock;
    bool buffered;
    int step;
    asyncio_fs_op open;
    asyncio_file *file;
    asyncio_tcp_stream stream;
    asyncio_buf_reader br;
    asyncio_copy copy;
} copy_task;

static int copy_poll(void *state, asyncio_context *cx, void *output)
{
    copy_task *t = state;
    int rc;
    switch (t->step) {
    case 0: {
        asyncio_open_options o = {.flags = ASYNCIO_OPEN_READ};
        if ((rc = asyncio_fs_open_init(&t->open, t->path, &o)) < 0)
            return rc;
        t->step = 1;
    } /* fall through */
    case 1:
        if ((rc = asyncio_fs_op_poll(&t->open, cx)) != 0)
            return rc;
        if ((rc = asyncio_fs_op_take_file(&t->open, &t->file)) < 0)
            return rc;
        if ((rc = asyncio_tcp_stream_from_fd(&t->stream, t->sock)) < 0)
            return rc;
        asyncio_reader r = asyncio_file_reader(t->file);
        if (t->buffered) {
            if ((rc = asyncio_buf_reader_init(&t->br, r, NULL, 1 << 16)) < 0)
                return rc;
            r = asyncio_buf_reader_as_reader(&t->br);
        }
        asyncio_copy_init(&t->copy, r, asyncio_tcp_stream_writer(&t->stream));
        t->step = 2;
        /* fall through */
    case 2:
        if ((rc = asyncio_copy_poll(&t->copy, cx)) != 0)
            return rc;
        *(int *)output = t->copy.path;
        t->step = 3;
        /* fall through */
    default:
        return asyncio_tcp_stream_poll_shutdown(&t->stream, cx);
    }
}

static void copy_drop(void *state)
{
    copy_task *t = state;
    asyncio_fs_op_drop(&t->open);
    if (t->step >= 2) {
        asyncio_copy_drop(&t->copy);
        if (t->buffered)
            asyncio_buf_reader_free(&t->br);
        asyncio_tcp_stream_close(&t->stream); /* closes the socket */
    }
    asyncio_file_close(t->file);
}

static const asyncio_task_vtable copy_vt = {copy_poll, copy_drop, NULL, sizeof(copy_task),
                                            sizeof(int)};

/* One rep: returns MB/s. */
static double one_rep(const char *path, uint64_t size, bool buffered)
{
    int client, server;
    tcp_pair(&client, &server);
    drain d = {server, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, drain_main, &d) != 0)
        die("thread", 0);
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, NULL);
    if (rc < 0)
        die("runtime", rc);
    copy_task t = {.path = path, .sock = client, .buffered = buffered};
    int path_used = -1;
    double t0 = now_s();
    rc = asyncio_runtime_block_on(rt, &copy_vt, &t, &path_used);
    pthread_join(th, NULL);
    double dt = now_s() - t0;
    if (rc < 0)
        die("copy", rc);
    asyncio_runtime_free(rt);
    close(server);
    if (d.bytes != size)
        die("short copy", ASYNCIO_EPROTO);
    if ((path_used == ASYNCIO_COPY_PATH_SENDFILE) == buffered)
        die("unexpected copy path", ASYNCIO_EPROTO);
    return (double)size / 1e6 / dt;
}

/* ---- random reads ------------------------------------------------------------------- */

#define READ_SIZE    4096u
#define MAX_INFLIGHT 1024

typedef struct rand_slot {
    asyncio_fs_op open;
    asyncio_file *file;
    bool opened, busy;
} rand_slot;

typedef struct rand_task {
    const char *path;
    uint64_t blocks; /* 4 KiB blocks in the file */
    size_t inflight;
    uint64_t reads, started, done;
    uint64_t rng;
    rand_slot *slots;
    unsigned char (*bufs)[READ_SIZE];
} rand_task;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Opens every slot's file (all in flight at once). 0, PENDING or an error. */
static int rand_open(rand_task *t, asyncio_context *cx)
{
    int pending = 0;
    for (size_t i = 0; i < t->inflight; i++) {
        rand_slot *sl = &t->slots[i];
        if (sl->file != NULL)
            continue;
        if (!sl->opened) {
            asyncio_open_options o = {.flags = ASYNCIO_OPEN_READ};
            int rc = asyncio_fs_open_init(&sl->open, t->path, &o);
            if (rc < 0)
                return rc;
            sl->opened = true;
        }
        int rc = asyncio_fs_op_poll(&sl->open, cx);
        if (rc == ASYNCIO_PENDING) {
            pending = 1;
            continue;
        }
        if (rc == 0)
            rc = asyncio_fs_op_take_file(&sl->open, &sl->file);
        asyncio_fs_op_drop(&sl->open);
        if (rc < 0)
            return rc;
    }
    return pending ? ASYNCIO_PENDING : 0;
}

/* Polls slot i: finishes its read, starts the next while reads remain. 0 or an error. */
static int rand_slot_poll(rand_task *t, size_t i, asyncio_context *cx)
{
    rand_slot *sl = &t->slots[i];
    for (;;) {
        if (!sl->busy) {
            if (t->started == t->reads)
                return 0;
            off_t off = (off_t)(next_rand(&t->rng) % t->blocks) * READ_SIZE;
            if (lseek(asyncio_file_fd(sl->file), off, SEEK_SET) < 0)
                die("lseek", 0);
            sl->busy = true;
            t->started++;
        }
        size_t n = 0;
        int rc = asyncio_file_poll_read(sl->file, cx, t->bufs[i], READ_SIZE, &n);
        if (rc == ASYNCIO_PENDING)
            return 0;
        if (rc < 0)
            return rc;
        if (n != READ_SIZE)
            die("short read", ASYNCIO_EPROTO);
        sl->busy = false;
        t->done++;
    }
}

static int rand_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    rand_task *t = state;
    int rc = rand_open(t, cx);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < t->inflight; i++)
        if ((rc = rand_slot_poll(t, i, cx)) < 0)
            return rc;
    return t->done == t->reads ? 0 : ASYNCIO_PENDING;
}

static void rand_drop(void *state)
{
    rand_task *t = state;
    for (size_t i = 0; i < t->inflight; i++) {
        if (t->slots[i].opened && t->slots[i].file == NULL)
            asyncio_fs_op_drop(&t->slots[i].open);
        asyncio_file_close(t->slots[i].file);
        t->slots[i] = (rand_slot){0};
    }
}

static const asyncio_task_vtable rand_vt = {rand_poll, rand_drop, NULL, sizeof(rand_task), 0};

/*
 * One rep of random reads; ring: the completion path (else the pool).
 * Returns reads/s; *backend_out: the backend the runtime ran on.
 */
static double rand_rep(const char *path, uint64_t size, size_t inflight, uint64_t reads, bool ring,
                       uint64_t seed, const char **backend_out)
{
    setenv("ASYNCIO_BACKEND", "uring", 1);
    setenv("ASYNCIO_URING_COMPLETION", ring ? "1" : "0", 1);
    asyncio_runtime_options o = {.blocking_max_threads = (uint32_t)inflight + 8};
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, &o);
    if (rc < 0)
        die("runtime", rc);
    *backend_out = asyncio_runtime_backend(rt);
    rand_task t = {
        .path = path,
        .blocks = size / READ_SIZE,
        .inflight = inflight,
        .reads = reads,
        .rng = seed | 1,
        .slots = calloc(inflight, sizeof(rand_slot)),
        .bufs = malloc(inflight * READ_SIZE),
    };
    if (t.slots == NULL || t.bufs == NULL)
        die("malloc", ASYNCIO_ENOMEM);
    /* Timed from the first open: 64 opens weigh nothing beside the reads. */
    double t0 = now_s();
    rc = asyncio_runtime_block_on(rt, &rand_vt, &t, NULL);
    double dt = now_s() - t0;
    if (rc < 0)
        die("random reads", rc);
    asyncio_runtime_free(rt);
    free(t.slots);
    free(t.bufs);
    return (double)reads / dt;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_row(const char *name, double *v, size_t reps, const char *fmt)
{
    qsort(v, reps, sizeof(double), cmp_double);
    printf("  %-9s ", name);
    printf(fmt, v[reps / 2], v[0], v[reps - 1]);
    printf("\n");
}

static void run_copy(const char *path, uint64_t size_mb, size_t reps)
{
    uint64_t size = size_mb << 20;
    double mbps[2][MAX_REPS];
    for (size_t r = 0; r < reps; r++)
        for (int row = 0; row < 2; row++)
            mbps[row][r] = one_rep(path, size, row == 1);
    printf("file -> loopback TCP, %llu MiB, %zu reps (MB/s: median [min, max])\n",
           (unsigned long long)size_mb, reps);
    static const char *names[2] = {"sendfile", "buffered"};
    for (int row = 0; row < 2; row++)
        print_row(names[row], mbps[row], reps, "%10.1f  [%.1f, %.1f]");
}

/* rows: bit 0 pool, bit 1 ring (--row: one of them alone, e.g. under strace -c). */
static void run_random(const char *path, uint64_t size_mb, size_t reps, size_t inflight,
                       uint64_t reads, unsigned rows)
{
    double rps[2][MAX_REPS] = {{0}}, ratio[MAX_REPS] = {0};
    const char *backend[2] = {"?", "?"};
    for (size_t r = 0; r < reps; r++) {
        for (int row = 0; row < 2; row++)
            if (rows & (1u << row))
                rps[row][r] = rand_rep(path, size_mb << 20, inflight, reads, row == 1,
                                       0x9e3779b97f4a7c15ull * (r + 1), &backend[row]);
        ratio[r] = rows == 3 ? rps[1][r] / rps[0][r] : 0;
    }
    printf("random %u B reads, %zu in flight, %llu MiB file, %llu reads per rep, %zu reps "
           "(reads/s: median [min, max]); backend %s\n",
           READ_SIZE, inflight, (unsigned long long)size_mb, (unsigned long long)reads, reps,
           backend[rows & 2 ? 1 : 0]);
    if (rows & 1)
        print_row("pool", rps[0], reps, "%10.0f  [%.0f, %.0f]");
    if (rows & 2)
        print_row("ring", rps[1], reps, "%10.0f  [%.0f, %.0f]");
    if (rows == 3)
        print_row("ring/pool", ratio, reps, "%10.2f  [%.2f, %.2f]");
    if (strcmp(backend[rows & 2 ? 1 : 0], "uring") != 0)
        printf("  (io_uring unavailable: the rows ran the blocking pool on %s)\n",
               backend[rows & 2 ? 1 : 0]);
}

int main(int argc, char **argv)
{
    uint64_t size_mb = 1024, reads = 200000;
    size_t reps = 5, inflight = 64;
    const char *dir = "/tmp", *only = NULL;
    unsigned rows = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            size_mb = 64;
            reps = 1;
            reads = 20000;
            continue;
        }
        if (i + 1 >= argc)
            goto usage;
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--size-mb") == 0)
            size_mb = strtoull(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--reps") == 0)
            reps = strtoul(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--dir") == 0)
            dir = v;
        else if (strcmp(argv[i - 1], "--only") == 0)
            only = v;
        else if (strcmp(argv[i - 1], "--reads") == 0)
            reads = strtoull(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--inflight") == 0)
            inflight = strtoul(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--row") == 0)
            rows = strcmp(v, "pool") == 0 ? 1 : strcmp(v, "ring") == 0 ? 2 : 0;
        else
            goto usage;
    }
    if (reps == 0 || reps > MAX_REPS || size_mb == 0 || inflight == 0 || rows == 0 ||
        inflight > MAX_INFLIGHT || reads == 0 ||
        (only != NULL && strcmp(only, "copy") != 0 && strcmp(only, "random") != 0)) {
        fprintf(stderr,
                "bench_fs: --reps 1..%d, --size-mb >= 1, --inflight 1..%d, --reads >= 1, "
                "--only copy|random, --row pool|ring\n",
                MAX_REPS, MAX_INFLIGHT);
        return 2;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/asyncio_bench_fs.%ld", dir, (long)getpid());
    make_file(path, size_mb << 20);
    if (only == NULL || strcmp(only, "copy") == 0)
        run_copy(path, size_mb, reps);
    if (only == NULL || strcmp(only, "random") == 0)
        run_random(path, size_mb, reps, inflight, reads, rows);
    unlink(path);
    return 0;
usage:
    fprintf(stderr, "usage: bench_fs [--quick] [--size-mb N] [--reps N] [--dir D] "
                    "[--only copy|random] [--reads N] [--inflight N] [--row pool|ring]\n");
    return 2;
}

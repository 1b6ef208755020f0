/*
 * bench_fs: a file copied to a TCP socket over loopback, two ways, in one
 * run:
 *
 *   sendfile   asyncio_copy(file reader, stream writer): the copy sees the
 *              file's raw fd and sends with sendfile(2) (zero copy)
 *   buffered   the same copy through an asyncio_buf_reader (64 KiB) over the
 *              file: reads on the blocking pool, bytes through user space
 *
 * A plain thread drains the receiving socket. Reps alternate the two rows
 * (so drift in machine load hits both alike); each row reports MB/s
 * (10^6 bytes per second) as the median, min and max over its reps.
 *
 * Options: --size-mb N (size of the file, default 1024 = 1 GiB), --reps N
 * (default 5), --dir D (default /tmp). The file is created before the clock
 * starts and removed at the end.
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint64_t size_mb = 1024;
    size_t reps = 5;
    const char *dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--size-mb") == 0)
            size_mb = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_fs [--size-mb N] [--reps N] [--dir D]\n");
            return 2;
        }
    }
    if (reps == 0 || reps > MAX_REPS || size_mb == 0) {
        fprintf(stderr, "bench_fs: --reps 1..%d, --size-mb >= 1\n", MAX_REPS);
        return 2;
    }
    uint64_t size = size_mb << 20;
    char path[512];
    snprintf(path, sizeof path, "%s/asyncio_bench_fs.%ld", dir, (long)getpid());
    make_file(path, size);
    double mbps[2][MAX_REPS];
    for (size_t r = 0; r < reps; r++)
        for (int row = 0; row < 2; row++)
            mbps[row][r] = one_rep(path, size, row == 1);
    unlink(path);
    printf("file -> loopback TCP, %llu MiB, %zu reps (MB/s: median [min, max])\n",
           (unsigned long long)size_mb, reps);
    static const char *names[2] = {"sendfile", "buffered"};
    for (int row = 0; row < 2; row++) {
        qsort(mbps[row], reps, sizeof(double), cmp_double);
        printf("  %-9s %10.1f  [%.1f, %.1f]\n", names[row], mbps[row][reps / 2], mbps[row][0],
               mbps[row][reps - 1]);
    }
    return 0;
}
